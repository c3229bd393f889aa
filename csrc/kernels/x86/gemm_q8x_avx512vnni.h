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
//   * The format turns its weight bytes into unsigned bytes u = f·wc + K per step, in the activation's
//     element order (K = 8 for int4, 128 for q8_0/mxint8, 12 for mxfp4 and 64 for mxfp6 via a LUT,
//     0 for int4a; f = 16 for the high nibbles that int4_64/128 use in place in GEMV, else 1).
//   * vpdpbusd gives 16 int32 lane sums of u·q per (row, step), starting from -Σ K·q of the lane
//     (precomputed per activation step). For 4 rows × 2 steps (8 vectors) a transpose-add tree adds
//     the 8 lanes of every block, giving one vector of the 16 EXACT block sums f·isum (4 activation
//     blocks × 4 rows). When the format bounds the partial sums to int16 (4-bit codes, E2M1 + 12),
//     the first tree levels use vpackssdw + vpmaddwd, which take half the shuffle-port slots.
//   * Then, once per 16 block terms: acc += (float)(f·isum) · (sw·x.d/f) — the same two roundings
//     per block term as the reference ((sw·x.d) rounded once, then the product, fused with the add
//     here; the power of two f changes nothing unless sw·x.d is below 2^-122). int4a adds m·x.s per
//     block the same way. Only the order of the f32 additions differs from the reference (per
//     4-block group, then per 2048-element chunk, then across chunks), which kernels.h allows:
//     |Δ| ≤ 1e-5·Σ|block terms| + 1e-30.
//   * Per column and 2048-element k-chunk the activation codes, -K·q lane sums and x.d/f (x.s) are
//     laid out once for all rows. Per 4-row group the weight scales of 4 rows × 4 blocks come from
//     vpermw over each row's first 64 pair bytes (int4_32, int4a_32, mxfp4) or one gather (other
//     formats; for 64/128-element blocks one gather serves 2 or 4 pairs).
// Rows past the end of a 4-row group reuse the group's last row (valid memory, results dropped).
// Gather offsets are int32: r·w_stride for r ≤ 3 must fit (w_stride < 512 MiB).
// The schedule (row blocks, column groups, k-chunks) is sched::gemm_q8x (gemm_schedule.h); this header
// is the activation layout, the scales and the tile.
//
// A format policy F provides (all static):
//   kBlock, kBlockBytes, kAsym   the dtype's block (elements, bytes); int4a's m·x.s term
//   kKey, key(st)                K != 0, and the K bytes of step st (0 or 1) of a pair
//   act_mult(g)                  1/f of activation block g (0..3) of a pair
//   kNarrow                      tree levels (0..2) whose sums fit in int16
//   kLoTimes16                   32-element blocks whose high halves are 16·code in place: the tree
//                                multiplies the low halves' sums by 16 before adding the halves
//   kScaleBytes                  2 (f16 scale, int4a: then the f16 offset) or 1 (E8M0) at block start
//   load_pair(p, elems, w)       the pair whose first block is at p -> w[0], w[1] (u bytes); elems is
//                                128, or 32/64/96 at the end of a row (never read past those blocks;
//                                lanes past them may hold anything, their activation codes are 0)
//   scale(dw), offset(dw)        16 block scales (int4a: offsets) from the first 4 bytes of 16 blocks
// or, for kBlock = 256 (q4_k, q6_k: a super-block is two pairs), instead of load_pair / scale / offset:
//   load_half(blk, h, w)         pair h (0, 1) of the super-block at blk -> w[0], w[1]
//   super_scales(row[4], sw, m)  the scales (q4_k: and offsets) of the 2 pairs of one super-block of rows
//                                row[0..3], lanes as above (vector code, no per-lane decode)
// and optionally (q6_k):
//   kLaneScale, lane_scale(row, p, st)   int16 factors of the pair sums of step st of pair p (the signed
//                                codes' |w|·±q through vpmaddubsw, widened by a vpmaddwd that takes them
//                                in place of ones: exact in int32), in place of vpdpbusd (K = 0)
#pragma once

#include <cstring>

#include "avx512_util.h"
#include "../gemm_schedule.h"
#include "../kernels.h"
#include "../q8x_traits.h"

namespace edge {
namespace x86 {

constexpr int kChunkPairs = 16;  // pairs per k-chunk: 2048 elements, bounds the stack buffers
constexpr int kTileCols = 4;
constexpr int64_t kRowBlockBytes = 512 << 10;  // weights per row block (L2-resident)

// One column's activations for one k-chunk, in the layouts the tile consumes. The 16 lanes of the
// per-pair vectors are (block g = 0..3 of the pair) × (row 0..3): lane 4g + r.
struct alignas(64) ActChunk {
    __m512i qa[2 * kChunkPairs];   // per step: the 64 codes (zero past the end of the row)
    __m512i neg[2 * kChunkPairs];  // per step: -Σ K·q of each int32 lane's 4 codes (vpdpbusd's start)
    __m512 d[kChunkPairs];         // per pair: x.d / f of block g (0 past the end)
    __m512 s[kChunkPairs];         // per pair: x.s of block g (kAsym only)
};

// One column's activation blocks [0, nact) of a k-chunk (a: the chunk's first block) -> out
// (nact ≤ 4·kChunkPairs).
template <class F>
inline void act_prep(const block_q8x* a, int nact, ActChunk* out) {
    const __m512i zero = _mm512_setzero_si512();
    const int npairs = (nact + 3) / 4;
    for (int st = 0; st < 2 * npairs; ++st) {
        const int k = 2 * st;
        const __m256i q0 = k < nact ? _mm256_loadu_si256((const __m256i*)a[k].q) : _mm256_setzero_si256();
        const __m256i q1 = k + 1 < nact ? _mm256_loadu_si256((const __m256i*)a[k + 1].q) : _mm256_setzero_si256();
        const __m512i qa = _mm512_inserti64x4(_mm512_castsi256_si512(q0), q1, 1);
        out->qa[st] = qa;
        out->neg[st] = F::kKey ? _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, F::key(st & 1), qa)) : zero;
    }
    for (int p = 0; p < npairs; ++p) {
        alignas(64) float d[16], s[16];
        for (int g = 0; g < 4; ++g) {
            const int k = 4 * p + g;
            const float dk = k < nact ? load_f32u(&a[k].d) * F::act_mult(g) : 0.0f;
            const float sk = k < nact ? load_f32u(&a[k].s) : 0.0f;
            for (int r = 0; r < 4; ++r) d[4 * g + r] = dk, s[4 * g + r] = sk;
        }
        out->d[p] = _mm512_load_ps(d);
        if (F::kAsym) out->s[p] = _mm512_load_ps(s);
    }
}

// Bytes -> their low nibble where `hi` (one bit per 16-bit word) is clear, high nibble where set.
inline __m512i nibbles(__m512i v, __mmask32 hi) {
    return _mm512_and_si512(_mm512_mask_srli_epi16(v, hi, v, 4), _mm512_set1_epi8(0x0F));
}

// The nibbles of two split-half 32-element blocks (16 bytes at p + kData and p + kBytes + kData; nb = 1:
// the first block twice) as one step: [low | high nibbles of block 0 | low | high of block 1] per 128 bits.
template <int kData, int kBytes>
inline __m512i nibble_step(const uint8_t* p, int nb) {
    const __m128i b0 = _mm_loadu_si128((const __m128i*)(p + kData));
    const __m128i b1 = nb == 2 ? _mm_loadu_si128((const __m128i*)(p + kBytes + kData)) : b0;
    return nibbles(_mm512_inserti64x4(_mm512_castsi256_si512(_mm256_broadcastsi128_si256(b0)), _mm256_broadcastsi128_si256(b1), 1),
                   0xFF00FF00u);
}

// load_pair of the 32-element formats whose step D::step(p, nb) decodes nb (1, 2) blocks at p.
template <class D>
struct Steps32 {
    static void load_pair(const uint8_t* p, int elems, __m512i* w) {
        w[0] = D::step(p, elems >= 64 ? 2 : 1);
        w[1] = elems > 64 ? D::step(p + 2 * D::kBlockBytes, elems == 128 ? 2 : 1) : w[0];
    }
};

// Word index (and right shift of the 16-bit word: 8 for a byte at an odd offset) of the scale of
// block g in a 4-block pair, for result word L = 4g + r, and of the int4a offset for L = 16 + 4g + r.
template <int bb>
struct ScaleWords {
    struct Table {
        alignas(64) int16_t idx[32];
        alignas(64) int16_t shift[32];
    };
    static constexpr Table make() {
        Table t{};
        for (int L = 0; L < 32; ++L) {
            const int o = ((L & 15) >> 2) * bb + (L >= 16 ? 2 : 0);
            t.idx[L] = (int16_t)(o >> 1);
            t.shift[L] = (int16_t)(8 * (o & 1));
        }
        return t;
    }
    static constexpr Table kTable = make();
};

// Whether the scales of a pair (4 blocks of 32) lie in its first 64 bytes: int4_32, int4a_32, mxfp4.
// Those use row_scales32; wider blocks (q8_0, mxint8, mxfp6) are faster with a gather than with the
// two-source vpermt2w.
template <class F>
constexpr bool scales_in_64_bytes() {
    return F::kBlock == 32 && 3 * F::kBlockBytes + (F::kAsym ? 4 : F::kScaleBytes) <= 64;
}

// Scales (int4a: also offsets) of 32-element blocks, 4 rows × 4 blocks per pair, without a gather:
// each row's first 64 pair bytes are loaded and vpermw picks the scale words into lane 4g + r (int4a
// offsets into lanes 16 + 4g + r).
template <class F>
inline void row_scales32(const uint8_t* w, int64_t w_stride, int R, int nact, __m512* sw, __m512* m) {
    constexpr int bb = F::kBlockBytes;
    static_assert(scales_in_64_bytes<F>(), "row_scales32 reads the first 64 bytes of a pair");
    const __m512i idx = _mm512_load_si512(ScaleWords<bb>::kTable.idx);
    const __m512i shift = _mm512_load_si512(ScaleWords<bb>::kTable.shift);
    const uint8_t* row[4];
    for (int r = 0; r < 4; ++r) row[r] = w + (r < R ? r : R - 1) * w_stride;
    for (int p = 0; 4 * p < nact; ++p) {
        const int nb = nact - 4 * p < 4 ? nact - 4 * p : 4;
        const int have = nb * bb;  // bytes of the pair that exist
        const __mmask64 k0 = have >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << have) - 1);
        __m512i words = _mm512_setzero_si512();
        for (int r = 0; r < 4; ++r) {
            const uint8_t* q = row[r] + (int64_t)p * 4 * bb;
            const __m512i bytes = have >= 64 ? _mm512_loadu_si512(q) : _mm512_maskz_loadu_epi8(k0, q);
            words = _mm512_mask_permutexvar_epi16(words, (__mmask32)(0x11111111u << r), idx, bytes);
        }
        const __mmask16 ok = (__mmask16)((1u << (4 * nb)) - 1);  // blocks past nact: 0
        if (F::kScaleBytes == 2) {
            sw[p] = _mm512_maskz_mov_ps(ok, _mm512_cvtph_ps(_mm512_castsi512_si256(words)));
            if (F::kAsym) m[p] = _mm512_maskz_mov_ps(ok, _mm512_cvtph_ps(_mm512_extracti64x4_epi64(words, 1)));
        } else {
            const __m512i e = _mm512_cvtepu16_epi32(_mm512_castsi512_si256(_mm512_srlv_epi16(words, shift)));
            sw[p] = _mm512_maskz_mov_ps(ok, F::scale(e));
        }
    }
}

// Weight scales (and int4a offsets) of 4 rows for activation blocks [0, nact) of a chunk: lane 4g + r
// of pair p = the scale of the weight block under activation block 4p + g of row r (0 for rows ≥ R
// and past nact). One gather fetches 4 rows × 4 weight blocks (1, 2 or 4 pairs' worth) and vpermps
// spreads it over the pairs. w: row 0 at the chunk's first weight block. (Blocks of 32..128 elements.)
template <class F>
inline void row_scales_gather(const uint8_t* w, int64_t w_stride, int R, int nact, __m512* sw, __m512* m) {
    constexpr int kPer = F::kBlock / 32;  // activation blocks per weight block = pairs per gather
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i r = _mm512_and_si512(lane, _mm512_set1_epi32(3));
    const __m512i j = _mm512_srli_epi32(lane, 2);  // weight block within the gather
    const __m512i idx0 = _mm512_add_epi32(_mm512_mullo_epi32(r, _mm512_set1_epi32((int)w_stride)),
                                          _mm512_mullo_epi32(j, _mm512_set1_epi32(F::kBlockBytes)));
    const __mmask16 rows_ok = _mm512_cmplt_epi32_mask(r, _mm512_set1_epi32(R));
    const int nwb = nact / kPer;  // weight blocks in the chunk (n is a multiple of the block)
    const __m512i g = j;          // in a pair's layout, lane 4g + r
    for (int j0 = 0; j0 < nwb; j0 += 4) {
        const __mmask16 ok = rows_ok & _mm512_cmplt_epi32_mask(_mm512_add_epi32(j, _mm512_set1_epi32(j0)), _mm512_set1_epi32(nwb));
        const __m512i dw = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), ok, idx0, w + (int64_t)j0 * F::kBlockBytes, 1);
        const __m512 s = _mm512_maskz_mov_ps(ok, F::scale(dw));
        const __m512 o = F::kAsym ? _mm512_maskz_mov_ps(ok, F::offset(dw)) : _mm512_setzero_ps();
        for (int q = 0; q < kPer && (j0 * kPer / 4 + q) * 4 < nact; ++q) {
            const int p = j0 * kPer / 4 + q;
            if (kPer == 1) {
                sw[p] = s;
                if (F::kAsym) m[p] = o;
            } else {
                // activation block 4p + g lies in weight block (4q + g) / kPer of this gather
                const __m512i src = _mm512_add_epi32(
                    _mm512_slli_epi32(_mm512_srli_epi32(_mm512_add_epi32(g, _mm512_set1_epi32(4 * q)), kPer == 2 ? 1 : 2), 2), r);
                sw[p] = _mm512_permutexvar_ps(src, s);
                if (F::kAsym) m[p] = _mm512_permutexvar_ps(src, o);
            }
        }
    }
}

// The scales of any block size: super-blocks (256) by F::super_scales, 2 pairs each (rows past R get row
// R - 1's, as the tile reads them; a chunk never ends inside a super-block), else row_scales_gather.
template <class F>
inline void row_scales(const uint8_t* w, int64_t w_stride, int R, int nact, __m512* sw, __m512* m) {
    if constexpr (F::kBlock == 256) {
        for (int b = 0; 8 * b < nact; ++b) {
            const uint8_t* row[4];
            for (int r = 0; r < 4; ++r) row[r] = w + (r < R ? r : R - 1) * w_stride + b * F::kBlockBytes;
            F::super_scales(row, sw + 2 * b, F::kAsym ? m + 2 * b : m);
        }
    } else {
        row_scales_gather<F>(w, w_stride, R, nact, sw, m);
    }
}

// The 16 block sums of 4 rows × 2 steps of lane sums: v[r][st] (16 lanes; lanes 8h..8h+7 belong to
// block 2·st + h) -> lane 4g + r = Σ of the 8 lanes of block g of row r. A transpose-add tree: level 1
// adds lane pairs of two rows, level 2 lane quads of four rows ([row0..row3] per 128-bit lane), level 3
// the two 128-bit lanes of each block. kNarrow levels use vpackssdw + vpmaddwd (2 instructions, one of
// them off port 5) instead of unpack lo/hi + add; the format guarantees the partial sums of those
// levels fit in int16 (so the saturating pack is exact).
template <int kNarrow, bool kLoTimes16>
inline __m512i block_sums(const __m512i (&v)[4][2]) {
    const __m512i ones = _mm512_set1_epi16(1);
    __m512i u[2];
    for (int st = 0; st < 2; ++st) {
        __m512i t01, t23;
        if (kNarrow >= 1) {  // [v0(0+1), v0(2+3), v1(0+1), v1(2+3)] per 128-bit lane
            t01 = _mm512_madd_epi16(_mm512_packs_epi32(v[0][st], v[1][st]), ones);
            t23 = _mm512_madd_epi16(_mm512_packs_epi32(v[2][st], v[3][st]), ones);
        } else {  // [v0(0+2), v1(0+2), v0(1+3), v1(1+3)]
            t01 = _mm512_add_epi32(_mm512_unpacklo_epi32(v[0][st], v[1][st]), _mm512_unpackhi_epi32(v[0][st], v[1][st]));
            t23 = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2][st], v[3][st]), _mm512_unpackhi_epi32(v[2][st], v[3][st]));
        }
        if (kNarrow >= 2) {
            u[st] = _mm512_madd_epi16(_mm512_packs_epi32(t01, t23), ones);
        } else if (kNarrow == 1) {  // even + odd 32-bit lanes
            const __m512 a = _mm512_castsi512_ps(t01), b = _mm512_castsi512_ps(t23);
            u[st] = _mm512_add_epi32(_mm512_castps_si512(_mm512_shuffle_ps(a, b, 0x88)), _mm512_castps_si512(_mm512_shuffle_ps(a, b, 0xDD)));
        } else {
            u[st] = _mm512_add_epi32(_mm512_unpacklo_epi64(t01, t23), _mm512_unpackhi_epi64(t01, t23));
        }
        // 32-element blocks with in-place high nibbles: 128-bit lanes 0, 2 hold 1·(low half) and
        // lanes 1, 3 16·(high half) of blocks 2st, 2st+1; scale the low halves to 16· as well.
        if (kLoTimes16) u[st] = _mm512_mask_slli_epi32(u[st], 0x0F0F, u[st], 4);
    }
    // 128-bit lanes 0+1 are block 2st, 2+3 block 2st+1
    return _mm512_add_epi32(_mm512_shuffle_i64x2(u[0], u[1], 0x88), _mm512_shuffle_i64x2(u[0], u[1], 0xDD));
}

// 4 rows (R valid) × C columns over one k-chunk of nact activation blocks.
template <class F, int C>
void tile(const uint8_t* w, int64_t w_stride, int R, int nact, const ActChunk* act, const __m512* sw,
          const __m512* m, float* Y, int64_t ldy, bool accumulate) {
    const uint8_t* row[4];
    for (int r = 0; r < 4; ++r) row[r] = w + (r < R ? r : R - 1) * w_stride;
    constexpr bool kLaneScale = q8x::lane_scaled<F>::value;
    __m512 acc[C];
    for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
    const int npairs = (nact + 3) / 4;
    for (int p = 0; p < npairs; ++p) {
        const int elems = nact - 4 * p >= 4 ? 128 : 32 * (nact - 4 * p);
        __m512i wv[4][2];
        if constexpr (F::kBlock == 256) {  // a chunk never ends inside a super-block
            for (int r = 0; r < 4; ++r) F::load_half(row[r] + (p / 2) * F::kBlockBytes, p % 2, wv[r]);
        } else {
            constexpr int kPairBytes = 128 / F::kBlock * F::kBlockBytes;
            if (elems == 128) {
                for (int r = 0; r < 4; ++r) F::load_pair(row[r] + p * kPairBytes, 128, wv[r]);
            } else {
                for (int r = 0; r < 4; ++r) F::load_pair(row[r] + p * kPairBytes, elems, wv[r]);
            }
        }
        __m512i f[4][2], wa[4][2];  // kLaneScale: the factors, |w|, and w's sign bits
        __mmask64 neg[4][2];
        if constexpr (kLaneScale)
            for (int r = 0; r < 4; ++r)
                for (int st = 0; st < 2; ++st) {
                    f[r][st] = F::lane_scale(row[r], p, st);
                    wa[r][st] = _mm512_abs_epi8(wv[r][st]);
                    neg[r][st] = _mm512_movepi8_mask(wv[r][st]);
                }
#pragma GCC unroll 4
        for (int c = 0; c < C; ++c) {
            __m512i v[4][2];
            for (int r = 0; r < 4; ++r)
                for (int st = 0; st < 2; ++st) {
                    const __m512i qa = act[c].qa[2 * p + st];
                    if constexpr (kLaneScale) {
                        const __m512i qs = _mm512_mask_sub_epi8(qa, neg[r][st], _mm512_setzero_si512(), qa);
                        v[r][st] = _mm512_madd_epi16(_mm512_maddubs_epi16(wa[r][st], qs), f[r][st]);
                    } else {
                        v[r][st] = _mm512_dpbusd_epi32(act[c].neg[2 * p + st], wv[r][st], qa);
                    }
                }
            const __m512i z = block_sums<F::kNarrow, F::kLoTimes16>(v);
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

// The tile policy of sched::gemm_q8x (gemm_schedule.h): 4 rows × up to 4 columns, k-chunks of 64 blocks.
template <class F>
struct Tile : sched::Q8xShape<F, 4, kTileCols, 4 * kChunkPairs, kRowBlockBytes> {
    struct Act {
        ActChunk col[kTileCols];
        __m512 sw[kChunkPairs], m[F::kAsym ? kChunkPairs : 1];  // one row group's scales (offsets)
    };
    static void act_prep(const block_q8x* x, int64_t x_stride, int C, int nact, Act* act) {
        for (int c = 0; c < C; ++c) x86::act_prep<F>(x + c * x_stride, nact, &act->col[c]);
    }
    static void row_prep(Act& act, const uint8_t* w, int64_t w_stride, int R, int nact) {
        if constexpr (scales_in_64_bytes<F>()) row_scales32<F>(w, w_stride, R, nact, act.sw, act.m);
        else row_scales<F>(w, w_stride, R, nact, act.sw, act.m);
    }
    template <int C>
    static void tile(Act& act, const uint8_t* w, int64_t w_stride, int R, int nact, float* y, int64_t ldy,
                     bool accumulate) {
        x86::tile<F, C>(w, w_stride, R, nact, act.col, act.sw, act.m, y, ldy, accumulate);
    }
};

// The gemm_fn body for format F.
template <class F>
void gemm_q8x(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X, int64_t x_stride,
              int64_t ncols, float* Y, int64_t ldy) {
    sched::gemm_q8x<Tile<F>>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy);
}

}  // namespace x86
}  // namespace edge
