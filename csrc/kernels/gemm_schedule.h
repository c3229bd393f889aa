// gemm_schedule.h — the row-block schedules of the gemm_fn kernels (kernels.h), written once per kind;
// an ISA file supplies only its tile (the micro-kernel) and its weight decode, as a policy struct of
// static functions, and instantiates the schedule with it.
//
//   gemm_float<T>  float activations (f32 X): the f32/f16/bf16/mxfp8 gemms of every ISA.
//   gemm_q8x<T>    integer-dot weights × block_q8x activations, in k-chunks: the q8_0/int4*/mx* gemms.
//
// Both compute what gemm_fn states; the tile decides the arithmetic, so a schedule changes no result bit:
// it only chooses which tile computes which (rows, columns) and in what order the weights are walked.
// A tile computes R rows × C columns; past the end of the rows it may compute from a valid row but must
// store only its valid_rows rows (R) — the schedule hands it R = min(tile rows, rows left).
//
// Include only from the ISA kernel files (*_avx2.cpp, *_neon.cpp, *_rvv.cpp, ...), which compile these
// templates with their own -m flags: everything here has internal linkage, so copies built with other
// flags are never merged by the linker (an AVX-512 copy must never serve an AVX2-only caller).
#pragma once

#include <cstdint>
#include <cstring>

#include "../quant.h"

namespace edge {
namespace sched {
namespace {  // internal linkage on purpose: see above

// Rows per block when several column groups pass over the same rows: about `bytes` of weights (rows of
// row_bytes each) so that a block stays in L2, rounded down to a multiple of `align` (every tile height
// used on it), at least `align`. One block (all rows) when a single column group passes.
inline int64_t row_block(int64_t rows, int64_t ncols, int64_t group_cols, int64_t bytes, int64_t row_bytes,
                         int64_t align) {
    if (ncols <= group_cols) return rows;
    int64_t rblk = bytes / (row_bytes > 0 ? row_bytes : 1) / align * align;
    return rblk < align ? align : rblk;
}

// Decode (one column, or the first column batch of a row block) streams every weight row from memory once.
// While a row group computes, the lines of the group kPrefetchGroups ahead are prefetched (one hint per 64
// bytes): SmolLM2-135M int4 decode on a 2-core Xeon (AVX-512 VNNI), 2 threads, went from ~160 to ~215 tok/s
// (session 26; prefetching 1..4 groups ahead all gave 205-220, none 160); the hardware prefetcher alone left the
// first touch of each row group (its block scales) waiting on memory. A hint changes no result.
constexpr int kPrefetchGroups = 2;

// Hint rows [0, rows) of `bytes` bytes each, stride apart, starting at p.
inline void prefetch_rows(const uint8_t* p, int rows, int64_t stride, int64_t bytes) {
    for (int r = 0; r < rows; ++r)
        for (int64_t o = 0; o < bytes; o += 64) __builtin_prefetch(p + r * stride + o);
}

// ---------------------------------------------------------------- float activations

// The shape of a gemm_float tile policy (its base class):
//   kGemvRows          rows of the one-column tile (decode: ncols == 1)
//   kRows, kCols       rows × columns of the multi-column tiles; the last ncols % kCols columns take a
//                      kRows × (ncols % kCols) tile
//   kRestGemv          a last single column of a multi-column call takes the one-column tile instead
//   kRowBlockBytes     weights per row block (row_block above; a row is w_stride bytes here)
template <int GemvRows, int Rows, int Cols, bool RestGemv, int64_t RowBlockBytes>
struct FloatShape {
    static constexpr int kGemvRows = GemvRows, kRows = Rows, kCols = Cols;
    static constexpr bool kRestGemv = RestGemv;
    static constexpr int64_t kRowBlockBytes = RowBlockBytes;
};

// Tile policy T of gemm_float: a FloatShape and (static)
//   tile<R, C>(w, w_stride, valid_rows, n, x, x_stride, y, ldy)
//                      Y[c·ldy + r] for r < valid_rows <= R, c < C: W row r at w + r·w_stride,
//                      X column c at x + c·x_stride (floats)
// prefetch: the weights are streamed (decode; see kPrefetchGroups).
template <class T, int R, int C>
inline void float_tiles(const uint8_t* w, int64_t w_stride, int64_t r0, int64_t r1, int64_t n, const float* x,
                        int64_t x_stride, float* Y, int64_t ldy, bool prefetch = false) {
    for (int64_t r = r0; r < r1; r += R) {
        if (prefetch && r + (kPrefetchGroups + 1) * R <= r1)
            prefetch_rows(w + (r + kPrefetchGroups * R) * w_stride, R, w_stride, w_stride);
        T::template tile<R, C>(w + r * w_stride, w_stride, (int)(r1 - r < R ? r1 - r : R), n, x, x_stride, Y + r, ldy);
    }
}

// The last `rest` (< kCols) columns of rows [r0, r1).
template <class T, int C = 1>
inline void float_rest(int rest, const uint8_t* w, int64_t w_stride, int64_t r0, int64_t r1, int64_t n,
                       const float* x, int64_t x_stride, float* Y, int64_t ldy) {
    if constexpr (C < T::kCols) {
        if (rest != C) return float_rest<T, C + 1>(rest, w, w_stride, r0, r1, n, x, x_stride, Y, ldy);
        if constexpr (C == 1 && T::kRestGemv) float_tiles<T, T::kGemvRows, 1>(w, w_stride, r0, r1, n, x, x_stride, Y, ldy);
        else float_tiles<T, T::kRows, C>(w, w_stride, r0, r1, n, x, x_stride, Y, ldy);
    }
}

// The gemm_fn body: per row block, decode (ncols == 1) runs one-column tiles down the block; otherwise
// groups of kCols columns, then the rest, each over every row of the block.
template <class T>
void gemm_float(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X, int64_t x_stride,
                int64_t ncols, float* Y, int64_t ldy) {
    const uint8_t* wb = (const uint8_t*)W;
    const float* xb = (const float*)X;
    constexpr int64_t kAlign = T::kRestGemv && T::kGemvRows > T::kRows ? T::kGemvRows : T::kRows;
    const int64_t rblk = row_block(rows, ncols, T::kCols, T::kRowBlockBytes, w_stride, kAlign);
    for (int64_t rb0 = 0; rb0 < rows; rb0 += rblk) {
        const int64_t rb1 = rows - rb0 < rblk ? rows : rb0 + rblk;
        if (ncols == 1) {
            float_tiles<T, T::kGemvRows, 1>(wb, w_stride, rb0, rb1, n, xb, x_stride, Y, ldy, true);
            continue;
        }
        int64_t c0 = 0;
        for (; c0 + T::kCols <= ncols; c0 += T::kCols)
            float_tiles<T, T::kRows, T::kCols>(wb, w_stride, rb0, rb1, n, xb + c0 * x_stride, x_stride, Y + c0 * ldy, ldy);
        if (c0 < ncols)
            float_rest<T>((int)(ncols - c0), wb, w_stride, rb0, rb1, n, xb + c0 * x_stride, x_stride, Y + c0 * ldy, ldy);
    }
}

// ---------------------------------------------------------------- integer dot, block_q8x activations

// The shape of a gemm_q8x tile policy (its base class):
//   Fmt                the weight format: Fmt::kBlock elements in Fmt::kBlockBytes bytes per block
//   kRows, kCols       rows × columns of a tile; the last ncols % kCols columns take a narrower tile
//   kChunk             activation blocks per k-chunk (a multiple of 4: a chunk never splits a weight block)
//   kRowBlockBytes     weights per row block (row_block above; a row is n / kBlock · kBlockBytes bytes)
//   kGroups            column groups (of kCols) one act_prep lays out, so that each row group's row_prep (its block
//                      scales) and its weights, hot in L1, serve all of them; > 1: the tile takes the group's index
template <class Format, int Rows, int Cols, int Chunk, int64_t RowBlockBytes, int Groups = 1>
struct Q8xShape {
    using Fmt = Format;
    static constexpr int kRows = Rows, kCols = Cols, kChunk = Chunk, kGroups = Groups;
    static constexpr int64_t kRowBlockBytes = RowBlockBytes;
    static_assert(Chunk % 4 == 0, "a k-chunk must not split a 128-element weight block");
};

// Tile policy T of gemm_q8x: a Q8xShape and (static)
//   Act                one k-chunk of up to kGroups·kCols activation columns in the tile's layout (+ its scratch)
//   act_prep(x, x_stride, C, nact, &act)
//                      columns c < C (<= kGroups·kCols) at x + c·x_stride (block_q8x), blocks [0, nact) of the chunk
//   row_prep(act, w, w_stride, R, nact)
//                      per row group, before its tile (whatever C): e.g. the rows' block scales (or empty)
//   tile<C>(act, w, w_stride, R, nact, y, ldy, accumulate)
//                      R <= kRows rows (row r at w + r·w_stride, at the chunk's first weight block) × C
//                      columns over the chunk: y[c·ldy + r] = (accumulate ? y[c·ldy + r] : 0) + the
//                      chunk's block terms (accumulate is false for the first chunk)
//                      (kGroups > 1: tile<C>(act, g, w, ...), the columns g·kCols .. g·kCols + C - 1 of act)
// The tile of `cols` (1..kCols) columns. A switch, as a hand-written driver has, so that the compiler
// inlines every tile into gemm_q8x the same way.
template <class T, int C>
inline void q8x_tile_c(typename T::Act& act, int g, const uint8_t* w, int64_t w_stride, int R, int nact, float* y,
                       int64_t ldy, bool accumulate) {
    if constexpr (T::kGroups == 1) T::template tile<C>(act, w, w_stride, R, nact, y, ldy, accumulate);
    else T::template tile<C>(act, g, w, w_stride, R, nact, y, ldy, accumulate);
}
template <class T>
inline void q8x_tile(int cols, typename T::Act& act, int g, const uint8_t* w, int64_t w_stride, int R, int nact, float* y,
                     int64_t ldy, bool accumulate) {
    static_assert(T::kCols >= 1 && T::kCols <= 4, "q8x tiles have 1..4 columns");
    switch (cols) {
        case 1: q8x_tile_c<T, 1>(act, g, w, w_stride, R, nact, y, ldy, accumulate); break;
        case 2: if constexpr (T::kCols >= 2) q8x_tile_c<T, 2>(act, g, w, w_stride, R, nact, y, ldy, accumulate); break;
        case 3: if constexpr (T::kCols >= 3) q8x_tile_c<T, 3>(act, g, w, w_stride, R, nact, y, ldy, accumulate); break;
        default: q8x_tile_c<T, T::kCols>(act, g, w, w_stride, R, nact, y, ldy, accumulate); break;
    }
}

// The gemm_fn body: per row block, per batch of up to kGroups·kCols columns, per k-chunk: the chunk's
// activations are laid out once (act_prep), then every kRows rows of the block run one tile per column group over it.
// Per (row, column) the chunks are summed in k order whatever kGroups is, so it changes no result bit.
template <class T>
void gemm_q8x(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X, int64_t x_stride,
              int64_t ncols, float* Y, int64_t ldy) {
    using F = typename T::Fmt;
    const int64_t nact_total = n / 32;
    if (nact_total <= 0) {  // an empty dot product is 0, as in the reference
        for (int64_t c = 0; c < ncols; ++c)
            for (int64_t r = 0; r < rows; ++r) std::memset(Y + c * ldy + r, 0, 4);
        return;
    }
    const uint8_t* wb = (const uint8_t*)W;
    const block_q8x* xb = (const block_q8x*)X;
    const int64_t row_bytes = n / F::kBlock * F::kBlockBytes;
    constexpr int64_t kBatch = (int64_t)T::kGroups * T::kCols;
    const int64_t rblk = row_block(rows, ncols, kBatch, T::kRowBlockBytes, row_bytes, T::kRows);
    typename T::Act act;
    for (int64_t rb0 = 0; rb0 < rows; rb0 += rblk) {
        const int64_t rb1 = rows - rb0 < rblk ? rows : rb0 + rblk;
        for (int64_t c0 = 0; c0 < ncols; c0 += kBatch) {
            const int CB = (int)(ncols - c0 < kBatch ? ncols - c0 : kBatch);
            for (int64_t k0 = 0; k0 < nact_total; k0 += T::kChunk) {
                const int nact = (int)(nact_total - k0 < T::kChunk ? nact_total - k0 : T::kChunk);
                T::act_prep(xb + c0 * x_stride + k0, x_stride, CB, nact, &act);
                const int64_t wofs = k0 * 32 / F::kBlock * F::kBlockBytes;
                for (int64_t r0 = rb0; r0 < rb1; r0 += T::kRows) {
                    const int R = (int)(rb1 - r0 < T::kRows ? rb1 - r0 : T::kRows);
                    const uint8_t* w = wb + r0 * w_stride + wofs;
                    if (c0 == 0 && r0 + (kPrefetchGroups + 1) * T::kRows <= rb1)  // later batches find the block in L2
                        prefetch_rows(w + kPrefetchGroups * T::kRows * w_stride, T::kRows, w_stride,
                                      (int64_t)nact * 32 / F::kBlock * F::kBlockBytes);
                    T::row_prep(act, w, w_stride, R, nact);
                    for (int g = 0; g * T::kCols < CB; ++g) {
                        const int C = CB - g * T::kCols < T::kCols ? CB - g * T::kCols : T::kCols;
                        q8x_tile<T>(C, act, g, w, w_stride, R, nact, Y + (c0 + g * T::kCols) * ldy + r0, ldy, k0 > 0);
                    }
                }
            }
        }
    }
}

}  // namespace
}  // namespace sched
}  // namespace edge
