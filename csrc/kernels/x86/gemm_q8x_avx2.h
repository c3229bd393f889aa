// gemm_q8x_avx2.h — the tiled AVX2 driver shared by every integer-dot gemm_fn (weights in a block
// format × block_q8x activations). Include only from *_avx2.cpp files (AVX2 + FMA + F16C).
//
// Computes what gemm_fn (kernels.h) and csrc/kernels/ref/gemm_int_ref.cpp state, for rows × ncols,
// any n that is a multiple of the dtype's block (and of 32), any alignment of W, X, Y:
//   Y[c*ldy + r] = Σ_k (sw(r,k) · x_k.d) · isum(r,c,k)  [+ m(r,k) · x_k.s for int4a]
//   isum(r,c,k) = Σ_i wc(r, 32k+i) · x_k.q[i]           exact int32, k = activation block
//
// The same scheme as gemm_q8x_avx512vnni.h with 256-bit vectors: a "step" is one activation block
// (32 codes, one ymm), a "pair" two. Per row and step, vpmaddubsw (u8 × s8 -> pairs summed in s16)
// and vpmaddwd with ones give 8 int32 lane sums; 4 rows × 2 steps of them go through the transpose-add
// tree to one ymm of 8 EXACT block sums (lane 4g + r: block g of the pair, row r). Then
// acc += (float)isum · (sw·x.d) per block term, as the reference (only the f32 order differs), so the
// bound is kernels.h's |Δ| ≤ 1e-5·Σ|block terms| + 1e-30.
// vpmaddubsw saturates a pair sum at ±32767; every format keeps |u|·127·2 below that:
//   4-bit codes u ≤ 15 (K = 8 or 0); E2M1 u = v + 12 ≤ 24; E2M3 u = v + 64 ≤ 124; int8 weights use the
//   sign trick (|w| ≤ 128 against sign(q, w), K = 0) instead of an offset.
// Rows past the end of a 4-row group reuse the group's last row (valid memory, results dropped).
// Gather offsets are int32: r·w_stride for r ≤ 3 must fit (w_stride < 512 MiB).
// The schedule (row blocks, column groups, k-chunks) is sched::gemm_q8x (gemm_schedule.h); this header
// is the activation layout and the tile (Tile2).
//
// A format policy F provides (all static):
//   kBlock, kBlockBytes, kAsym, kKey   as in gemm_q8x_avx512vnni.h
//   kSign                              weights are signed int8 codes: dot by the sign trick
//   kNarrow                            tree levels (0..2) whose partial sums fit in int16; 3: a block half's 16
//                                      products fit (4-bit codes, u ≤ 15), so the tree adds vpmaddubsw's pair
//                                      sums in int16 without vpmaddwd (block_sums16; needs !kSign, no lane scale)
//   load_pair(row, j, elems, w)        steps 2j, 2j+1 of a row -> w[0], w[1] (u bytes, or the signed
//                                      codes when kSign); elems = 64, or 32 at the end of a row
//   scale(dw), offset(dw)              8 block scales (int4a: offsets) from the first 4 bytes of 8 blocks
//   super_scales(row[4], sw, m)        kBlock = 256 instead (q4_k, q6_k): the scales (q4_k: and offsets)
//                                      of the 4 pairs of one super-block of rows row[0..3], lanes as above
//                                      (vector code: each row's scale bytes loaded once, no per-lane decode)
//   kLaneScale, lane_scale(row, k)     optional (q6_k): int16 factors of activation block k's vpmaddubsw
//                                      pair sums (lanes 0-7: elements 0..15, 8-15: 16..31), taken by the
//                                      vpmaddwd that widens them (in place of ones): exact in int32
#pragma once

#include <cstring>

#include "avx2_util.h"
#include "../gemm_schedule.h"
#include "../kernels.h"
#include "../q8x_traits.h"

namespace edge {
namespace x86 {

constexpr int kChunkPairs2 = 32;  // pairs per k-chunk: 2048 elements
constexpr int kTileCols2 = 4;
// Column groups per act_prep (gemm_schedule.h kGroups): each row group's scales (row_scales2: ~10 % of a prefill
// GEMM when redone per group, s24) and its chunk of weights, hot in L1, then serve 16 columns.
constexpr int kGroups2 = 4;
constexpr int64_t kRowBlockBytes2 = 512 << 10;  // weights per row block (L2-resident)

// One column's activations for one k-chunk; per-pair vectors have lane 4g + r (block g, row r).
struct alignas(32) ActChunk2 {
    __m256i qa[2 * kChunkPairs2];  // per step: the 32 codes (zero past the end of the row)
    __m256i negk[kChunkPairs2];    // per pair: -K·Σq of block g
    __m256 d[kChunkPairs2];        // per pair: x.d of block g (0 past the end)
    __m256 s[kChunkPairs2];        // per pair: x.s of block g (kAsym only)
};

// One column's activation blocks [0, nact) of a k-chunk (a: the chunk's first block) -> out.
template <class F>
inline void act_prep2(const block_q8x* a, int nact, ActChunk2* out) {
    const int npairs = (nact + 1) / 2;
    for (int k = 0; k < 2 * npairs; ++k)
        out->qa[k] = k < nact ? _mm256_loadu_si256((const __m256i*)a[k].q) : _mm256_setzero_si256();
    for (int p = 0; p < npairs; ++p) {
        alignas(32) float d[8], s[8];
        alignas(32) int32_t nk[8];
        for (int g = 0; g < 2; ++g) {
            const int k = 2 * p + g;
            float dk = 0.0f, sk = 0.0f;
            int32_t sum = 0;
            if (k < nact) {
                dk = load_f32u(&a[k].d);
                sk = load_f32u(&a[k].s);
                for (int i = 0; i < 32; ++i) sum += a[k].q[i];
            }
            for (int r = 0; r < 4; ++r) d[4 * g + r] = dk, s[4 * g + r] = sk, nk[4 * g + r] = -F::kKey * sum;
        }
        out->d[p] = _mm256_load_ps(d);
        if (F::kAsym) out->s[p] = _mm256_load_ps(s);
        out->negk[p] = _mm256_load_si256((const __m256i*)nk);
    }
}

// Weight scales (int4a: offsets) of 4 rows × activation blocks [2·p0, 2·p0 + nact); lane 4g + r of
// pair p = the scale of the weight block under activation block 2p + g of row r (0 past R / nact; for
// super-blocks, whose chunks never end inside one, rows past R get row R - 1's, as the tile reads them).
template <class F>
inline void row_scales2(const uint8_t* w, int64_t w_stride, int R, int nact, __m256* sw, __m256* m) {
    if constexpr (F::kBlock == 256) {  // super-blocks of 4 pairs; rows past R repeat row R - 1 (dropped)
        for (int b = 0; 8 * b < nact; ++b) {
            const uint8_t* row[4];
            for (int r = 0; r < 4; ++r) row[r] = w + (r < R ? r : R - 1) * w_stride + b * F::kBlockBytes;
            F::super_scales(row, sw + 4 * b, F::kAsym ? m + 4 * b : m);
        }
    } else {
        // The first 4 bytes of each lane's weight block by plain loads, not vpgatherdd: on Zen 1 / Zen 2 a gather is
        // microcoded (~20 cycles per 8 lanes) and took 14 % of a prefill (perf, s22); 8 loads + inserts are cheap
        // everywhere. Lanes past R / nact are zero.
        constexpr int shift = F::kBlock == 32 ? 0 : F::kBlock == 64 ? 1 : 2;  // activation -> weight block
        const uint8_t* row[4];
        for (int r = 0; r < 4; ++r) row[r] = r < R ? w + r * w_stride : nullptr;
        auto word = [&](int r, int k) -> int32_t {
            int32_t v = 0;
            if (row[r] && k < nact) std::memcpy(&v, row[r] + (int64_t)(k >> shift) * F::kBlockBytes, 4);
            return v;
        };
        for (int p = 0; p * 2 < nact; ++p) {
            const int k0 = 2 * p, k1 = 2 * p + 1;
            const __m256i dw = _mm256_setr_epi32(word(0, k0), word(1, k0), word(2, k0), word(3, k0), word(0, k1), word(1, k1),
                                                 word(2, k1), word(3, k1));
            const __m256i ok = _mm256_setr_epi32(-(R > 0), -(R > 1), -(R > 2), -(R > 3), -(R > 0 && k1 < nact),
                                                 -(R > 1 && k1 < nact), -(R > 2 && k1 < nact), -(R > 3 && k1 < nact));
            sw[p] = _mm256_and_ps(F::scale(dw), _mm256_castsi256_ps(ok));
            if (F::kAsym) m[p] = _mm256_and_ps(F::offset(dw), _mm256_castsi256_ps(ok));
        }
    }
}

// 8 int32 lane sums of one step: u·q (or |w|·sign(q, w)), the pair sums weighted by f (ones, or the
// format's lane scales).
template <class F>
inline __m256i step_dot(__m256i w, __m256i q, __m256i f) {
    if (F::kSign) return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(q, w)), f);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(w, q), f);
}

// v[r][g] (8 lanes, all of block g) -> lane 4g + r = Σ of v[r][g]'s lanes. Transpose-add tree as in
// gemm_q8x_avx512vnni.h: kNarrow levels use vpackssdw + vpmaddwd instead of unpack lo/hi + add; the
// format guarantees those levels' partial sums fit in int16.
template <int kNarrow>
inline __m256i block_sums2(const __m256i (&v)[4][2]) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i u[2];
    for (int g = 0; g < 2; ++g) {
        __m256i t01, t23;
        if (kNarrow >= 1) {  // [v0(0+1), v0(2+3), v1(0+1), v1(2+3)] per 128-bit lane
            t01 = _mm256_madd_epi16(_mm256_packs_epi32(v[0][g], v[1][g]), ones);
            t23 = _mm256_madd_epi16(_mm256_packs_epi32(v[2][g], v[3][g]), ones);
        } else {  // [v0(0+2), v1(0+2), v0(1+3), v1(1+3)]
            t01 = _mm256_add_epi32(_mm256_unpacklo_epi32(v[0][g], v[1][g]), _mm256_unpackhi_epi32(v[0][g], v[1][g]));
            t23 = _mm256_add_epi32(_mm256_unpacklo_epi32(v[2][g], v[3][g]), _mm256_unpackhi_epi32(v[2][g], v[3][g]));
        }
        if (kNarrow >= 2) {
            u[g] = _mm256_madd_epi16(_mm256_packs_epi32(t01, t23), ones);
        } else if (kNarrow == 1) {  // even + odd 32-bit lanes
            const __m256 a = _mm256_castsi256_ps(t01), b = _mm256_castsi256_ps(t23);
            u[g] = _mm256_add_epi32(_mm256_castps_si256(_mm256_shuffle_ps(a, b, 0x88)), _mm256_castps_si256(_mm256_shuffle_ps(a, b, 0xDD)));
        } else {
            u[g] = _mm256_add_epi32(_mm256_unpacklo_epi64(t01, t23), _mm256_unpackhi_epi64(t01, t23));
        }
    }
    return _mm256_add_epi32(_mm256_permute2x128_si256(u[0], u[1], 0x20), _mm256_permute2x128_si256(u[0], u[1], 0x31));
}

// kNarrow 3: v[r][g] = vpmaddubsw's 16 int16 pair sums of row r, block g (lanes 0-7: elements 0..15, 8-15: 16..31),
// each |·| ≤ 2·15·128 -> lane 4g + r = Σ of them as int32, exact. Unpack-and-add levels in int16 (rows 0+1 / 2+3,
// then 32-bit units, then 64-bit halves: 16 products per lane), then one sign extension per 128-bit half and an add.
// No multiply: on Zen 1 / Zen 2 vpmaddwd shares pipe 0 with vpmaddubsw, which bounded the kNarrow 2 tree (s24).
inline __m256i block_sums16(const __m256i (&v)[4][2]) {
    __m256i c[2];
    for (int g = 0; g < 2; ++g) {
        const __m256i a01 = _mm256_add_epi16(_mm256_unpacklo_epi16(v[0][g], v[1][g]), _mm256_unpackhi_epi16(v[0][g], v[1][g]));
        const __m256i a23 = _mm256_add_epi16(_mm256_unpacklo_epi16(v[2][g], v[3][g]), _mm256_unpackhi_epi16(v[2][g], v[3][g]));
        const __m256i b = _mm256_add_epi16(_mm256_unpacklo_epi32(a01, a23), _mm256_unpackhi_epi32(a01, a23));
        c[g] = _mm256_add_epi16(b, _mm256_shuffle_epi32(b, 0x4E));  // int16 lane r (and 4 + r): row r's half sum
    }
    const __m256i d = _mm256_unpacklo_epi64(c[0], c[1]);  // per half: block 0 rows 0..3, block 1 rows 0..3
    return _mm256_add_epi32(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(d)), _mm256_cvtepi16_epi32(_mm256_extracti128_si256(d, 1)));
}

template <class F, int C>
void tile2(const uint8_t* w, int64_t w_stride, int R, int nact, const ActChunk2* act, const __m256* sw,
           const __m256* m, float* Y, int64_t ldy, bool accumulate) {
    const uint8_t* row[4];
    for (int r = 0; r < 4; ++r) row[r] = w + (r < R ? r : R - 1) * w_stride;
    __m256 acc[C];
    for (int c = 0; c < C; ++c) acc[c] = _mm256_setzero_ps();
    const int npairs = (nact + 1) / 2;
    for (int p = 0; p < npairs; ++p) {
        const int elems = nact - 2 * p >= 2 ? 64 : 32;
        __m256i wv[4][2];
        if (elems == 64) {
            for (int r = 0; r < 4; ++r) F::load_pair(row[r], p, 64, wv[r]);
        } else {
            for (int r = 0; r < 4; ++r) F::load_pair(row[r], p, 32, wv[r]);
        }
        __m256i f[4][2];
        for (int r = 0; r < 4; ++r)
            for (int g = 0; g < 2; ++g) {
                if constexpr (q8x::lane_scaled<F>::value) f[r][g] = F::lane_scale(row[r], 2 * p + g);
                else f[r][g] = _mm256_set1_epi16(1);
            }
        for (int c = 0; c < C; ++c) {
            __m256i v[4][2];
            __m256i z;
            if constexpr (F::kNarrow == 3) {
                static_assert(!F::kSign && !q8x::lane_scaled<F>::value, "block_sums16 takes plain u·q pair sums");
                for (int r = 0; r < 4; ++r)
                    for (int g = 0; g < 2; ++g) v[r][g] = _mm256_maddubs_epi16(wv[r][g], act[c].qa[2 * p + g]);
                z = block_sums16(v);
            } else {
                for (int r = 0; r < 4; ++r)
                    for (int g = 0; g < 2; ++g) v[r][g] = step_dot<F>(wv[r][g], act[c].qa[2 * p + g], f[r][g]);
                z = block_sums2<F::kNarrow>(v);
            }
            if (F::kKey) z = _mm256_add_epi32(z, act[c].negk[p]);
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(z), _mm256_mul_ps(sw[p], act[c].d[p]), acc[c]);
            if (F::kAsym) acc[c] = _mm256_fmadd_ps(m[p], act[c].s[p], acc[c]);
        }
    }
    for (int c = 0; c < C; ++c) {
        const __m128 y = _mm_add_ps(_mm256_castps256_ps128(acc[c]), _mm256_extractf128_ps(acc[c], 1));
        alignas(16) float out[4];
        _mm_store_ps(out, y);
        for (int r = 0; r < R; ++r) {
            float* dst = Y + c * ldy + r;
            float v = out[r];
            if (accumulate) v += load_f32u(dst);
            std::memcpy(dst, &v, 4);
        }
    }
}

// The codes of a split-half 32-element block from its 16 nibble bytes at qs: elements 0..15 (low
// nibbles) in the lower 128 bits, 16..31 (high nibbles) in the upper.
inline __m256i nibbles32(const uint8_t* qs) {
    const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)qs));
    return _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)), _mm256_set1_epi8(0x0F));
}

// The common part of the 32-element formats with one f16 scale at byte 0 and no offset (q5_0, nl4_32):
// a pair is two consecutive blocks, each decoded to one step by D::block(p).
template <class D>
struct F16Block32 {
    static constexpr int kBlock = 32;
    static constexpr bool kAsym = false;
    static void load_pair(const uint8_t* row, int64_t j, int elems, __m256i* w) {
        const uint8_t* p = row + 2 * j * D::kBlockBytes;
        w[0] = D::block(p);
        w[1] = elems == 64 ? D::block(p + D::kBlockBytes) : w[0];
    }
    static __m256 scale(__m256i dw) { return f16x8(dw); }
    static __m256 offset(__m256i) { return _mm256_setzero_ps(); }
};

// The tile policy of sched::gemm_q8x (gemm_schedule.h): 4 rows × up to 4 columns, k-chunks of 64 blocks, kGroups2
// column groups per act_prep.
template <class F>
struct Tile2 : sched::Q8xShape<F, 4, kTileCols2, 2 * kChunkPairs2, kRowBlockBytes2, kGroups2> {
    struct Act {
        ActChunk2 col[kTileCols2 * kGroups2];
        __m256 sw[kChunkPairs2], m[F::kAsym ? kChunkPairs2 : 1];  // one row group's scales (offsets)
    };
    static void act_prep(const block_q8x* x, int64_t x_stride, int C, int nact, Act* act) {
        for (int c = 0; c < C; ++c) act_prep2<F>(x + c * x_stride, nact, &act->col[c]);
    }
    static void row_prep(Act& act, const uint8_t* w, int64_t w_stride, int R, int nact) {
        row_scales2<F>(w, w_stride, R, nact, act.sw, act.m);
    }
    template <int C>
    static void tile(Act& act, int g, const uint8_t* w, int64_t w_stride, int R, int nact, float* y, int64_t ldy,
                     bool accumulate) {
        tile2<F, C>(w, w_stride, R, nact, act.col + g * kTileCols2, act.sw, act.m, y, ldy, accumulate);
    }
};

// The gemm_fn body for format F.
template <class F>
void gemm_q8x_avx2(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X, int64_t x_stride,
                   int64_t ncols, float* Y, int64_t ldy) {
    sched::gemm_q8x<Tile2<F>>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy);
}

}  // namespace x86
}  // namespace edge
