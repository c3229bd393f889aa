// gemm_t_tiled.h — the loop nest the SIMD gemm_t_fn kernels (backward.h) share:
//   dX[c·ldx + j] += Σ_r W[r][j] · dY[c·ldy + r]
// W is dequantized kGemmTRows rows × kGemmTCols columns at a time into a 16 KB stack tile by the level's
// own dequant_fn (bit-exact with the reference); the level's TileApply then adds the tile's product to
// every dY column. Loops: column strips of kGemmTCols, then groups of kGemmTColsY dY columns, then row
// tiles ascending (so every dX element still sums its rows in ascending order), which keeps one dX strip,
// its dY values and the tile in L1 together.
// deq == nullptr: f32 weights, read in place (stride w_stride) when there are fewer than 8 dY columns
// (no copy to amortize), else copied into the tile (contiguous rows instead of rows a W stride apart).
// TileApply(T, ts, rt, len, dY, ldy, ncols, dX, ldx): dX[c][0..len) += Σ_{r<rt} T_r[0..len)·dY[c][r],
// T_r at T + r·ts bytes (any alignment). Header-only: each ISA's file instantiates it with its own flags.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels.h"

namespace edge {

constexpr int64_t kGemmTRows = 32, kGemmTCols = 128, kGemmTColsY = 32;

using gemm_t_tile_fn = void (*)(const char* T, int64_t ts, int64_t rt, int64_t len, const float* dY, int64_t ldy,
                                int64_t ncols, float* dX, int64_t ldx);

inline void gemm_t_copy_f32(const void* src, float* y, int64_t n) { std::memcpy(y, src, (size_t)n * 4); }

template <gemm_t_tile_fn TileApply>
inline void gemm_t_tiled(dequant_fn deq, int64_t block, int64_t block_bytes, const void* W, int64_t w_stride, int64_t rows,
                         int64_t n, const float* dY, int64_t ldy, int64_t ncols, float* dX, int64_t ldx) {
    alignas(64) float tile[kGemmTRows * kGemmTCols];
    const char* w = (const char*)W;
    if (!deq && ncols >= 8) deq = gemm_t_copy_f32;
    for (int64_t j0 = 0; j0 < n; j0 += kGemmTCols) {
        const int64_t len = n - j0 < kGemmTCols ? n - j0 : kGemmTCols, off = j0 / block * block_bytes;
        for (int64_t c0 = 0; c0 < ncols; c0 += kGemmTColsY) {
            const int64_t nc = ncols - c0 < kGemmTColsY ? ncols - c0 : kGemmTColsY;
            const float* y = dY + c0 * ldy;
            float* x = dX + c0 * ldx + j0;
            for (int64_t r0 = 0; r0 < rows; r0 += kGemmTRows) {
                const int64_t rt = rows - r0 < kGemmTRows ? rows - r0 : kGemmTRows;
                if (!deq) {
                    TileApply(w + r0 * w_stride + off, w_stride, rt, len, y + r0, ldy, nc, x, ldx);
                    continue;
                }
                for (int64_t r = 0; r < rt; ++r) deq(w + (r0 + r) * w_stride + off, tile + r * kGemmTCols, len);
                TileApply((const char*)tile, kGemmTCols * 4, rt, len, y + r0, ldy, nc, x, ldx);
            }
        }
    }
}

// Defines `name` (a gemm_t_fn) as gemm_t_tiled<apply> over dtype blocks of `block` values in `bytes` bytes.
#define EDGE_GEMM_T_TILED(name, apply, deq, block, bytes)                                                             \
    void name(const void* W, int64_t w_stride, int64_t rows, int64_t n, const float* dY, int64_t ldy, int64_t ncols,     \
              float* dX, int64_t ldx) {                                                                              \
        gemm_t_tiled<apply>(deq, block, bytes, W, w_stride, rows, n, dY, ldy, ncols, dX, ldx);                       \
    }

}  // namespace edge
