// gemm_q8x_avx512vnni.h — the tiled AVX-512 VNNI driver shared by every integer-dot gemm_fn
// (weights in a block format × block_q8x activations). Include only from *_avx512vnni.cpp files.
//
// Computes what gemm_fn (kernels.h) and csrc/kernels/ref/gemm_int_ref.cpp state, for rows × ncols,
// any n that is a multiple of the dtype's block (and of 32), any alignment of W, X, Y:
//   Y[c*ldy + r] = Σ_k (sw(r,k) · x_k.d) · isum(r,c,k)  [+ m(r,k) · x_k.s for int4a]
//   isum(r,c,k) = Σ_i wc(r, 32k+i) · x_k.q[i]           exact int32, k = activation block
//
// How. A "step" is 64 elements (two activation blocks, one zmm of int8 codes); a "pair" is two steps
// (four activation blocks). Tiles are 4 rows × up to 4 columns.
//   * The format turns its weight bytes into unsigned bytes u = wc + K per step, in the activation's
//     element order (K = 8 for int4, 128 for q8_0/mxint8/mxfp4 via a LUT, 64 for mxfp6, 0 for int4a).
//   * vpdpbusd gives 16 int32 lane sums of u·q per (row, step). For 4 rows × 2 steps (8 vectors) a
//     transpose-add tree (unpack 32/64-bit, shuffle 128-bit) adds the 8 lanes of every block, giving
//     one vector z of the 16 EXACT block sums (4 activation blocks × 4 rows); z - K·Σq is isum.
//   * Then, once per 16 block terms: acc += (float)isum · (sw·x.d) — the same two roundings per block
//     term as the reference ((sw·x.d) rounded once, then the product, here fused with the add).
//     int4a adds m·x.s per block the same way. Only the order of the f32 additions differs from the
//     reference (per 4-block group, then per 2048-element chunk, then across chunks), which is what
//     kernels.h allows: |Δ| ≤ 1e-5·Σ|block terms| + 1e-30.
//   * Per column and 2048-element k-chunk the activation codes, K·Σq and x.d (x.s) are laid out once
//     for all rows; per 4-row group the weight scales of 4 rows × 4 blocks come from one gather.
// Rows past the end of a 4-row group reuse the group's last row (valid memory, results dropped).
// Gather offsets are int32: r·w_stride for r ≤ 3 must fit (w_stride < 512 MiB).
//
// A format policy F provides (all static):
//   kBlock, kBlockBytes, kAsym   the dtype's block (elements, bytes); int4a's m·x.s term
//   kKey                          K, the byte offset added to every signed code
//   load_pair(p, elems, w)        the pair whose first block is at p -> w[0], w[1] (u bytes); elems is
//                                 128, or 32/64/96 at the end of a row (never read past those blocks;
//                                 lanes past them may hold anything, their activation codes are 0)
//   scale(dw), offset(dw)         16 block scales (int4a: offsets) from the first 4 bytes of 16 blocks
#pragma once

#include <cstring>

#include "avx512_util.h"
#include "../kernels.h"

namespace edge {
namespace x86 {

constexpr int kChunkPairs = 16;  // pairs per k-chunk: 2048 elements, bounds the stack buffers
constexpr int kTileCols = 4;

inline float load_f32u(const void* p) {
    float v;
    std::memcpy(&v, p, 4);
    return v;
}

// One column's activations for one k-chunk, in the layouts the tile consumes. The 16 lanes of the
// per-pair vectors are (block g = 0..3 of the pair) × (row 0..3): lane 4g + r.
struct alignas(64) ActChunk {
    __m512i qa[2 * kChunkPairs];  // per step: the 64 codes (zero past the end of the row)
    __m512i negk[kChunkPairs];    // per pair: -K·Σq of block g, in lanes 4g..4g+3
    __m512 d[kChunkPairs];        // per pair: x.d of block g (0 past the end)
    __m512 s[kChunkPairs];        // per pair: x.s of block g (kAsym only)
};

// Columns' activation blocks [4·p0, 4·p0 + nact) -> out (nact ≤ 4·kChunkPairs).
template <class F>
inline void act_prep(const block_q8x* x, int64_t p0, int nact, ActChunk* out) {
    const __m512i zero = _mm512_setzero_si512();
    const block_q8x* a = x + 4 * p0;
    const int npairs = (nact + 3) / 4;
    for (int st = 0; st < 2 * npairs; ++st) {
        const int k = 2 * st;
        const __m256i q0 = k < nact ? _mm256_loadu_si256((const __m256i*)a[k].q) : _mm256_setzero_si256();
        const __m256i q1 = k + 1 < nact ? _mm256_loadu_si256((const __m256i*)a[k + 1].q) : _mm256_setzero_si256();
        out->qa[st] = _mm512_inserti64x4(_mm512_castsi256_si512(q0), q1, 1);
    }
    for (int p = 0; p < npairs; ++p) {
        alignas(64) float d[16], s[16];
        alignas(64) int32_t nk[16];
        for (int g = 0; g < 4; ++g) {
            const int k = 4 * p + g;
            float dk = 0.0f, sk = 0.0f;
            int32_t sum = 0;
            if (k < nact) {
                dk = load_f32u(&a[k].d);
                sk = load_f32u(&a[k].s);
                for (int i = 0; i < 32; ++i) sum += a[k].q[i];
            }
            for (int r = 0; r < 4; ++r) d[4 * g + r] = dk, s[4 * g + r] = sk, nk[4 * g + r] = -F::kKey * sum;
        }
        out->d[p] = _mm512_load_ps(d);
        if (F::kAsym) out->s[p] = _mm512_load_ps(s);
        out->negk[p] = F::kKey ? _mm512_load_si512(nk) : zero;
    }
}

// Weight scales (and int4a offsets) of 4 rows × activation blocks [4·p0, 4·p0 + nact), lane 4g + r
// of pair p holding the scale of the weight block under activation block 4p + g of row r (0 for
// rows ≥ R and blocks past nact). w: row 0 at the chunk's first weight block.
template <class F>
inline void row_scales(const uint8_t* w, int64_t w_stride, int R, int nact, __m512* sw, __m512* m) {
    constexpr int per = F::kBlock / 32;  // activation blocks per weight block
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i r = _mm512_and_si512(lane, _mm512_set1_epi32(3));
    const __m512i g = _mm512_srli_epi32(lane, 2);
    const __m512i rmask_idx = r;
    const __mmask16 rows_ok = _mm512_cmplt_epi32_mask(rmask_idx, _mm512_set1_epi32(R));
    for (int p = 0; p * 4 < nact; ++p) {
        // Offsets (int32) of the scale word of block (4p + g) / per of row r, from w.
        const __m512i blk = _mm512_srli_epi32(_mm512_add_epi32(g, _mm512_set1_epi32(4 * p)), per == 1 ? 0 : per == 2 ? 1 : 2);
        const __m512i idx = _mm512_add_epi32(_mm512_mullo_epi32(r, _mm512_set1_epi32((int)w_stride)),
                                             _mm512_mullo_epi32(blk, _mm512_set1_epi32(F::kBlockBytes)));
        const __mmask16 ok = rows_ok & _mm512_cmplt_epi32_mask(_mm512_add_epi32(g, _mm512_set1_epi32(4 * p)), _mm512_set1_epi32(nact));
        const __m512i dw = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), ok, idx, w, 1);
        sw[p] = _mm512_maskz_mov_ps(ok, F::scale(dw));
        if (F::kAsym) m[p] = _mm512_maskz_mov_ps(ok, F::offset(dw));
    }
}

// The 16 block sums of 4 rows × 2 steps of lane sums: v[r][st] (16 lanes; lanes 8h..8h+7 belong to
// block 2·st + h) -> lane 4g + r = Σ of the 8 lanes of block g of row r.
inline __m512i block_sums(const __m512i (&v)[4][2]) {
    __m512i u[2];
    for (int st = 0; st < 2; ++st) {
        const __m512i t01 = _mm512_add_epi32(_mm512_unpacklo_epi32(v[0][st], v[1][st]), _mm512_unpackhi_epi32(v[0][st], v[1][st]));
        const __m512i t23 = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2][st], v[3][st]), _mm512_unpackhi_epi32(v[2][st], v[3][st]));
        // per 128-bit lane L: [row0, row1, row2, row3] sums of that lane's 4 int32
        u[st] = _mm512_add_epi32(_mm512_unpacklo_epi64(t01, t23), _mm512_unpackhi_epi64(t01, t23));
    }
    // 128-bit lanes 0+1 are block 2st, 2+3 block 2st+1: [u0.L0+u0.L1, u0.L2+u0.L3, u1.L0+u1.L1, u1.L2+u1.L3]
    return _mm512_add_epi32(_mm512_shuffle_i64x2(u[0], u[1], 0x88), _mm512_shuffle_i64x2(u[0], u[1], 0xDD));
}

// 4 rows (R valid) × C columns over one k-chunk of nact activation blocks.
template <class F, int C>
void tile(const uint8_t* w, int64_t w_stride, int R, int nact, const ActChunk* act, const __m512* sw,
          const __m512* m, float* Y, int64_t ldy, bool accumulate) {
    const uint8_t* row[4];
    for (int r = 0; r < 4; ++r) row[r] = w + (r < R ? r : R - 1) * w_stride;
    constexpr int kPairBytes = 128 / F::kBlock * F::kBlockBytes;
    __m512 acc[C];
    for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
    const int npairs = (nact + 3) / 4;
    for (int p = 0; p < npairs; ++p) {
        const int elems = nact - 4 * p >= 4 ? 128 : 32 * (nact - 4 * p);
        __m512i wv[4][2];
        if (elems == 128) {
            for (int r = 0; r < 4; ++r) F::load_pair(row[r] + p * kPairBytes, 128, wv[r]);
        } else {
            for (int r = 0; r < 4; ++r) F::load_pair(row[r] + p * kPairBytes, elems, wv[r]);
        }
#pragma GCC unroll 4
        for (int c = 0; c < C; ++c) {
            __m512i v[4][2];
            for (int r = 0; r < 4; ++r)
                for (int st = 0; st < 2; ++st)
                    v[r][st] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[r][st], act[c].qa[2 * p + st]);
            __m512i z = block_sums(v);
            if (F::kKey) z = _mm512_add_epi32(z, act[c].negk[p]);
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(z), _mm512_mul_ps(sw[p], act[c].d[p]), acc[c]);
            if (F::kAsym) acc[c] = _mm512_fmadd_ps(m[p], act[c].s[p], acc[c]);
        }
    }
    const __mmask8 keep = (__mmask8)((1u << R) - 1);
    for (int c = 0; c < C; ++c) {
        // lane 4g + r -> Σ_g: rows 0..3 in one xmm
        const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(acc[c]), _mm512_extractf32x8_ps(acc[c], 1));
        __m128 y = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
        float* out = Y + c * ldy;
        if (accumulate) y = _mm_add_ps(y, _mm_maskz_loadu_ps(keep, out));
        _mm_mask_storeu_ps(out, keep, y);
    }
}

// The gemm_fn body for format F.
template <class F>
void gemm_q8x(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X, int64_t x_stride,
              int64_t ncols, float* Y, int64_t ldy) {
    ActChunk act[kTileCols];
    __m512 sw[kChunkPairs], m[F::kAsym ? kChunkPairs : 1];
    const uint8_t* wb = (const uint8_t*)W;
    const block_q8x* xb = (const block_q8x*)X;
    const int64_t nact_total = n / 32;
    constexpr int64_t kChunkAct = 4 * kChunkPairs;
    for (int64_t c0 = 0; c0 < ncols; c0 += kTileCols) {
        const int C = (int)(ncols - c0 < kTileCols ? ncols - c0 : kTileCols);
        for (int64_t k0 = 0; k0 < nact_total; k0 += kChunkAct) {
            const int nact = (int)(nact_total - k0 < kChunkAct ? nact_total - k0 : kChunkAct);
            for (int c = 0; c < C; ++c) act_prep<F>(xb + (c0 + c) * x_stride, k0 / 4, nact, &act[c]);
            const int64_t wofs = k0 * 32 / F::kBlock * F::kBlockBytes;
            for (int64_t r0 = 0; r0 < rows; r0 += 4) {
                const int R = (int)(rows - r0 < 4 ? rows - r0 : 4);
                const uint8_t* w = wb + r0 * w_stride + wofs;
                row_scales<F>(w, w_stride, R, nact, sw, m);
                float* y = Y + c0 * ldy + r0;
                switch (C) {
                    case 1: tile<F, 1>(w, w_stride, R, nact, act, sw, m, y, ldy, k0 > 0); break;
                    case 2: tile<F, 2>(w, w_stride, R, nact, act, sw, m, y, ldy, k0 > 0); break;
                    case 3: tile<F, 3>(w, w_stride, R, nact, act, sw, m, y, ldy, k0 > 0); break;
                    default: tile<F, 4>(w, w_stride, R, nact, act, sw, m, y, ldy, k0 > 0); break;
                }
            }
        }
    }
}

}  // namespace x86
}  // namespace edge
