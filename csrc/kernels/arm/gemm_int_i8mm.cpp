// gemm_int_i8mm.cpp — gemm_fn for every integer-dot dtype (q8_0, int4_32/64/128, int4a_32/64/128,
// mxint8, mxfp6, mxfp4, nl4_32, q5_0, q4_k, q6_k) × block_q8x activations with SMMLA (armv8.6-a i8mm: Cortex-A510/A710/X2+,
// Neoverse V1/N2; not the Pi 5). Built with -march=armv8.2-a+dotprod+fp16+i8mm and used only when
// AT_HWCAP2 has I8MM (dispatch.cpp). The reference is gemm_<dtype>_ref.
//
// SMMLA multiplies a 2×8 int8 matrix by the transpose of another and adds the 2×2 int32 result: with
// [row r0 | row r1] × [column c0 | column c1] (8 elements each) one instruction gives the four dot
// products (r0,c0) (r0,c1) (r1,c0) (r1,c1), exactly (int32; |Σ| ≤ 32·128·127 per block). A tile is
// 4 weight rows (2 row pairs) × up to 4 columns (2 column pairs): per 32-element activation block,
// 4 SMMLAs per (row pair, column pair) give the exact block sums in lanes [r0c0, r0c1, r1c0, r1c1] with
// no reduction tree, half the instructions of SDOT (q6_k: the SMMLAs of each 16-element half apart, times
// the halves' int8 scales, exact in int32). Weights are decoded by the same format policies as
// the neon/dotprod levels (q8x_formats_arm.h) and paired with ZIP1/ZIP2 on 64-bit lanes; activations are
// paired once per k-chunk. Then acc += (float)isum · (sw·x.d) (+ m·x.s), lanes as above: the reference's
// block terms, only the f32 order differs, so the bound is kernels.h's |Δ| ≤ 1e-5·Σ|block terms| + 1e-30.
// A single column (decode) has nothing to pair and runs the SDOT driver of gemm_q8x_arm.h; an odd last
// column is paired with itself (the duplicate's results are dropped). Rows past the end of a 4-row group
// reuse the group's last row (valid memory, results dropped).
#include "arm.h"
#include "dot_sdot_arm.h"
#include "q8x_formats_arm.h"

namespace edge {
namespace arm {
namespace {

inline int8x16_t zip_lo64(int8x16_t a, int8x16_t b) {
    return vreinterpretq_s8_s64(vzip1q_s64(vreinterpretq_s64_s8(a), vreinterpretq_s64_s8(b)));
}
inline int8x16_t zip_hi64(int8x16_t a, int8x16_t b) {
    return vreinterpretq_s8_s64(vzip2q_s64(vreinterpretq_s64_s8(a), vreinterpretq_s64_s8(b)));
}

// Two columns' activations for one k-chunk, paired for SMMLA; lanes [c0, c1, c0, c1].
struct PairChunk {
    int8x16_t q[kChunkAct][4];  // per block: elements 8t..8t+7 of c0 then of c1, t = 0..3
    float32x4_t d[kChunkAct];
    float32x4_t s[kChunkAct];   // kAsym only
    int32x4_t negk[kChunkAct];  // kKey only: -K·Σq
};

template <class F>
void pair_prep(const uint8_t* x0, const uint8_t* x1, int nact, PairChunk* p) {
    for (int k = 0; k < nact; ++k) {
        const uint8_t* b0 = x0 + (int64_t)k * sizeof(block_q8x);
        const uint8_t* b1 = x1 + (int64_t)k * sizeof(block_q8x);
        const int8x16_t a0 = vld1q_s8((const int8_t*)b0 + 8), a1 = vld1q_s8((const int8_t*)b0 + 24);
        const int8x16_t c0 = vld1q_s8((const int8_t*)b1 + 8), c1 = vld1q_s8((const int8_t*)b1 + 24);
        p->q[k][0] = zip_lo64(a0, c0);
        p->q[k][1] = zip_hi64(a0, c0);
        p->q[k][2] = zip_lo64(a1, c1);
        p->q[k][3] = zip_hi64(a1, c1);
        const float32x2_t d = {load_f32u(b0), load_f32u(b1)};
        p->d[k] = vcombine_f32(d, d);
        if (F::kAsym) {
            const float32x2_t s = {load_f32u(b0 + 4), load_f32u(b1 + 4)};
            p->s[k] = vcombine_f32(s, s);
        }
        if (F::kKey) {
            const int32_t n0 = -F::kKey * vaddlvq_s16(vpadalq_s8(vpaddlq_s8(a0), a1));
            const int32_t n1 = -F::kKey * vaddlvq_s16(vpadalq_s8(vpaddlq_s8(c0), c1));
            const int32x2_t nk = {n0, n1};
            p->negk[k] = vcombine_s32(nk, nk);
        }
    }
}

template <class F, int CP>
void mmla_tile(const uint8_t* w, int64_t w_stride, int R, int C, int nact, const PairChunk* pc, float* Y, int64_t ldy,
               bool accumulate) {
    constexpr int S = F::kBlock / 32;
    constexpr int NS = q8x::scale_count<F>::value;
    constexpr bool kHalves = q8x::half_scaled<F>::value;
    const uint8_t* row[4];
    for (int r = 0; r < 4; ++r) row[r] = w + (r < R ? r : R - 1) * w_stride;
    float32x4_t acc[2][CP];
    for (int rp = 0; rp < 2; ++rp)
        for (int cp = 0; cp < CP; ++cp) acc[rp][cp] = vdupq_n_f32(0.0f);
    for (int j = 0; j < nact / S; ++j) {
        const uint8_t* blk[4];
        for (int r = 0; r < 4; ++r) blk[r] = row[r] + (int64_t)j * F::kBlockBytes;
        float32x4_t sw[NS], m[NS];
        for (int i = 0; i < NS; ++i) m[i] = vdupq_n_f32(0.0f);
        F::scales(blk, sw, m);
        int32x4_t hs[kHalves ? 2 * S : 1];
        if constexpr (kHalves) F::half_scales(blk, hs);
        unroll<S>([&](auto s) {
            constexpr int i = NS == 1 ? 0 : (int)s;
            const int k = j * S + s;
            // row-pair lanes: [s0 s0 s1 s1], [s2 s2 s3 s3]
            const float32x4_t swp[2] = {vzip1q_f32(sw[i], sw[i]), vzip2q_f32(sw[i], sw[i])};
            const float32x4_t mp[2] = {vzip1q_f32(m[i], m[i]), vzip2q_f32(m[i], m[i])};
            int8x16_t w0[4], w1[4], A[2][4];
            for (int r = 0; r < 4; ++r) F::template load<s>(blk[r], w0[r], w1[r]);
            for (int rp = 0; rp < 2; ++rp) {
                A[rp][0] = zip_lo64(w0[2 * rp], w0[2 * rp + 1]);
                A[rp][1] = zip_hi64(w0[2 * rp], w0[2 * rp + 1]);
                A[rp][2] = zip_lo64(w1[2 * rp], w1[2 * rp + 1]);
                A[rp][3] = zip_hi64(w1[2 * rp], w1[2 * rp + 1]);
            }
            for (int cp = 0; cp < CP; ++cp) {
                const int8x16_t* b = pc[cp].q[k];
                for (int rp = 0; rp < 2; ++rp) {
                    int32x4_t z = vmmlaq_s32(vdupq_n_s32(0), A[rp][0], b[0]);
                    z = vmmlaq_s32(z, A[rp][1], b[1]);
                    if constexpr (kHalves) {  // elements 0..15 in z, 16..31 in z1
                        int32x4_t z1 = vmmlaq_s32(vdupq_n_s32(0), A[rp][2], b[2]);
                        z1 = vmmlaq_s32(z1, A[rp][3], b[3]);
                        const int32x4_t ha = hs[2 * s], hb = hs[2 * s + 1];
                        z = vmlaq_s32(vmulq_s32(z, rp ? vzip2q_s32(ha, ha) : vzip1q_s32(ha, ha)), z1,
                                      rp ? vzip2q_s32(hb, hb) : vzip1q_s32(hb, hb));
                    } else {
                        z = vmmlaq_s32(z, A[rp][2], b[2]);
                        z = vmmlaq_s32(z, A[rp][3], b[3]);
                    }
                    if (F::kKey) z = vaddq_s32(z, pc[cp].negk[k]);
                    acc[rp][cp] = vfmaq_f32(acc[rp][cp], vcvtq_f32_s32(z), vmulq_f32(swp[rp], pc[cp].d[k]));
                    if (F::kAsym) acc[rp][cp] = vfmaq_f32(acc[rp][cp], mp[rp], pc[cp].s[k]);
                }
            }
        });
    }
    for (int rp = 0; rp < 2; ++rp)
        for (int cp = 0; cp < CP; ++cp) {
            float v[4];
            vst1q_f32(v, acc[rp][cp]);
            for (int l = 0; l < 4; ++l) {
                const int r = 2 * rp + (l >> 1), c = 2 * cp + (l & 1);
                if (r >= R || c >= C) continue;
                float* y = Y + c * ldy + r;
                float t = v[l];
                if (accumulate) t += load_f32u(y);
                std::memcpy(y, &t, 4);
            }
        }
}

// The tile policy of sched::gemm_q8x (gemm_schedule.h) for two or more columns: 4 rows × up to 4 columns
// (2 column pairs), k-chunks of 64 blocks, as gemm_q8x_arm.h's.
template <class F>
struct MmlaTile : sched::Q8xShape<F, 4, kTileCols, kChunkAct, kRowBlockBytes> {
    struct Act {
        PairChunk pc[2];
    };
    static void act_prep(const block_q8x* x, int64_t x_stride, int C, int nact, Act* act) {
        for (int cp = 0; cp < (C + 1) / 2; ++cp) {
            const int64_t ca = 2 * cp, cb = ca + 1 < C ? ca + 1 : ca;  // an odd last column pairs with itself
            pair_prep<F>((const uint8_t*)(x + ca * x_stride), (const uint8_t*)(x + cb * x_stride), nact, &act->pc[cp]);
        }
    }
    static void row_prep(Act&, const uint8_t*, int64_t, int, int) {}  // scales are read in the tile
    template <int C>
    static void tile(Act& act, const uint8_t* w, int64_t w_stride, int R, int nact, float* y, int64_t ldy,
                     bool accumulate) {
        mmla_tile<F, (C + 1) / 2>(w, w_stride, R, C, nact, act.pc, y, ldy, accumulate);
    }
};

template <class F>
void gemm_mmla(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X, int64_t x_stride, int64_t ncols,
               float* Y, int64_t ldy) {
    if (ncols == 1) return gemm_q8x<F, DotSdot>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy);
    sched::gemm_q8x<MmlaTile<F>>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy);
}

}  // namespace
}  // namespace arm

#define EDGE_ARM_MMLA_DEF(fn, Fmt)                                                                        \
    void fn(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols, \
            float* Y, int64_t ldy) {                                                                      \
        arm::gemm_mmla<Fmt>(W, ws, rows, n, X, xs, ncols, Y, ldy);                                        \
    }
EDGE_ARM_MMLA_DEF(gemm_q8_0_i8mm, arm::Int8<2 EDGE_ARM_COMMA false>)
EDGE_ARM_MMLA_DEF(gemm_mxint8_i8mm, arm::Int8<1 EDGE_ARM_COMMA true>)
EDGE_ARM_MMLA_DEF(gemm_int4_32_i8mm, arm::Int4<32 EDGE_ARM_COMMA false>)
EDGE_ARM_MMLA_DEF(gemm_int4_64_i8mm, arm::Int4<64 EDGE_ARM_COMMA false>)
EDGE_ARM_MMLA_DEF(gemm_int4_128_i8mm, arm::Int4<128 EDGE_ARM_COMMA false>)
EDGE_ARM_MMLA_DEF(gemm_int4a_32_i8mm, arm::Int4<32 EDGE_ARM_COMMA true>)
EDGE_ARM_MMLA_DEF(gemm_int4a_64_i8mm, arm::Int4<64 EDGE_ARM_COMMA true>)
EDGE_ARM_MMLA_DEF(gemm_int4a_128_i8mm, arm::Int4<128 EDGE_ARM_COMMA true>)
EDGE_ARM_MMLA_DEF(gemm_mxfp6_i8mm, arm::MxFp6)
EDGE_ARM_MMLA_DEF(gemm_mxfp4_i8mm, arm::MxFp4)
EDGE_ARM_MMLA_DEF(gemm_nl4_32_i8mm, arm::Nl4)
EDGE_ARM_MMLA_DEF(gemm_q5_0_i8mm, arm::Q5_0)
EDGE_ARM_MMLA_DEF(gemm_q4_k_i8mm, arm::Q4K)
EDGE_ARM_MMLA_DEF(gemm_q6_k_i8mm, arm::Q6K)
#undef EDGE_ARM_MMLA_DEF

}  // namespace edge
