// gemm_int_ref.cpp — integer-dot weights (q8_0, int4_B, int4a_B, mxint8, mxfp6, mxfp4, nl4_32, q5_0,
// q4_k, q6_k) times
// block_q8x activations: the reference of gemm_fn (kernels.h) for every int_dot dtype.
//
// Y[c * ldy + r] = Σ over the n/32 activation blocks k of row r, column c, in order k = 0, 1, ...:
//   isum  = Σ_{i<32} wc_i * x.q_i                    exact int32 (|isum| ≤ 32·127·127 < 2^24, so
//                                                    (float)isum is exact too)
//   sumf += (sw * x.d) * (float)isum                 f32, sumf starting at 0.0f
//   int4a also: sumf += m * x.s  (same statement: sumf += (sw*x.d)*(float)isum + m*x.s)
// where wc are integer weight codes and sw the f32 weight scale of the weight block holding
// activation block k (a B = 64/128 weight block covers 2/4 activation blocks; its scale is reused):
//   q8_0     wc = q               sw = f16 d
//   int4_B   wc = q - 8           sw = f16 d
//   int4a_B  wc = q               sw = f16 d, m = f16 m   (x·(d q + m) = d x.d Σ q x.q + m x.s)
//   mxint8   wc = q               sw = 2^(e-127) / 64
//   mxfp6    wc = 8 · e2m3(q)     sw = 2^(e-127) / 8      (integers in [-60, 60])
//   mxfp4    wc = 2 · e2m1(q)     sw = 2^(e-127) / 2      ({0,±1,±2,±3,±4,±6,±8,±12})
//   nl4_32 wc = kNl4Values[q] sw = f16 d             (int8 in [-127, 113], quant.h)
//   q5_0     wc = q - 16          sw = f16 d              (in [-16, 15])
//   q4_k     wc = q               sw = d·sc_j, and sumf += (sw*x.d)*isum - (dmin·m_j)*x.s (one statement,
//                                 like int4a; d·sc_j and dmin·m_j are exact f32 products; sub-block j
//                                 of 32 = activation block k)
//   q6_k     wc = sc·(q − 32)     sw = f16 d              (the activation block covers two 16-element
//                                 sub-blocks: isum = sc_a·Σ_a + sc_b·Σ_b, |isum| ≤ 2·16·32·127·128 < 2^24)
// Rounding: each block term has ≤ 3 f32 roundings and the running sum one per add; vs the exact
// product of dequant(W) and dequant(Xq) (x = x.d·q, and x.s's own rounding for int4a) the error is
// ≤ (n/32 + 4)·2^-24·Σ|block terms| — the bound tests/test_quant.py checks. SIMD variants may reorder
// the f32 sum (kernels.h states their bound against this reference).
// Pointers: W, X and Y may be unaligned; rows and columns are independent, so any r/c order is valid.
#include "ref.h"

#include "../../common.h"

namespace edge {

namespace {

// One activation block's fields.
struct Q8x {
    float d, s;
    const int8_t* q;
};

inline Q8x q8x_at(const uint8_t* xb) {
    return {load_f32(xb), load_f32(xb + 4), (const int8_t*)(xb + 8)};
}

float dot_q8_0(const uint8_t* w, const uint8_t* x, int64_t n) {
    float sumf = 0.0f;
    for (int64_t k = 0; k < n / 32; ++k, w += sizeof(block_q8_0), x += sizeof(block_q8x)) {
        Q8x a = q8x_at(x);
        const int8_t* q = (const int8_t*)(w + 2);
        int32_t isum = 0;
        for (int i = 0; i < 32; ++i) isum += (int32_t)q[i] * a.q[i];
        sumf += (f16_to_f32(load_u16(w)) * a.d) * (float)isum;
    }
    return sumf;
}

// Code of element i (0 <= i < B) of a split-half nibble block.
template <int B>
inline int nibble(const uint8_t* qs, int i) {
    return i < B / 2 ? qs[i] & 15 : qs[i - B / 2] >> 4;
}

template <int B>
float dot_int4(const uint8_t* w, const uint8_t* x, int64_t n) {
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / B; ++b, w += sizeof(block_int4<B>)) {
        float d = f16_to_f32(load_u16(w));
        const uint8_t* qs = w + 2;
        for (int k = 0; k < B / 32; ++k, x += sizeof(block_q8x)) {
            Q8x a = q8x_at(x);
            int32_t isum = 0;
            for (int i = 0; i < 32; ++i) isum += (nibble<B>(qs, 32 * k + i) - 8) * a.q[i];
            sumf += (d * a.d) * (float)isum;
        }
    }
    return sumf;
}

template <int B>
float dot_int4a(const uint8_t* w, const uint8_t* x, int64_t n) {
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / B; ++b, w += sizeof(block_int4a<B>)) {
        float d = f16_to_f32(load_u16(w));
        float m = f16_to_f32(load_u16(w + 2));
        const uint8_t* qs = w + 4;
        for (int k = 0; k < B / 32; ++k, x += sizeof(block_q8x)) {
            Q8x a = q8x_at(x);
            int32_t isum = 0;
            for (int i = 0; i < 32; ++i) isum += nibble<B>(qs, 32 * k + i) * a.q[i];
            sumf += (d * a.d) * (float)isum + m * a.s;
        }
    }
    return sumf;
}

float dot_mxint8(const uint8_t* w, const uint8_t* x, int64_t n) {
    float sumf = 0.0f;
    for (int64_t k = 0; k < n / 32; ++k, w += sizeof(block_mxint8), x += sizeof(block_q8x)) {
        Q8x a = q8x_at(x);
        const int8_t* q = (const int8_t*)(w + 1);
        int32_t isum = 0;
        for (int i = 0; i < 32; ++i) isum += (int32_t)q[i] * a.q[i];
        sumf += (e8m0_to_f32(w[0]) * 0.015625f * a.d) * (float)isum;
    }
    return sumf;
}

float dot_mxfp6(const uint8_t* w, const uint8_t* x, int64_t n) {
    float sumf = 0.0f;
    for (int64_t k = 0; k < n / 32; ++k, w += sizeof(block_mxfp6), x += sizeof(block_q8x)) {
        Q8x a = q8x_at(x);
        const uint8_t* q = w + 1;
        int32_t isum = 0;
        for (int g = 0; g < 8; ++g) {
            uint32_t v = (uint32_t)q[3 * g] | (uint32_t)q[3 * g + 1] << 8 | (uint32_t)q[3 * g + 2] << 16;
            for (int i = 0; i < 4; ++i) isum += e2m3_x8((uint8_t)((v >> (6 * i)) & 63)) * a.q[4 * g + i];
        }
        sumf += (e8m0_to_f32(w[0]) * 0.125f * a.d) * (float)isum;
    }
    return sumf;
}

float dot_mxfp4(const uint8_t* w, const uint8_t* x, int64_t n) {
    float sumf = 0.0f;
    for (int64_t k = 0; k < n / 32; ++k, w += sizeof(block_mxfp4), x += sizeof(block_q8x)) {
        Q8x a = q8x_at(x);
        const uint8_t* qs = w + 1;
        int32_t isum = 0;
        for (int j = 0; j < 16; ++j) isum += kE2M1x2[qs[j] & 15] * a.q[j] + kE2M1x2[qs[j] >> 4] * a.q[j + 16];
        sumf += (e8m0_to_f32(w[0]) * 0.5f * a.d) * (float)isum;
    }
    return sumf;
}

float dot_nl4(const uint8_t* w, const uint8_t* x, int64_t n) {
    float sumf = 0.0f;
    for (int64_t k = 0; k < n / 32; ++k, w += sizeof(block_nl4), x += sizeof(block_q8x)) {
        Q8x a = q8x_at(x);
        const uint8_t* qs = w + 2;
        int32_t isum = 0;
        for (int j = 0; j < 16; ++j)
            isum += kNl4Values[qs[j] & 15] * a.q[j] + kNl4Values[qs[j] >> 4] * a.q[j + 16];
        sumf += (f16_to_f32(load_u16(w)) * a.d) * (float)isum;
    }
    return sumf;
}

float dot_q5_0(const uint8_t* w, const uint8_t* x, int64_t n) {
    float sumf = 0.0f;
    for (int64_t k = 0; k < n / 32; ++k, w += sizeof(block_q5_0), x += sizeof(block_q8x)) {
        Q8x a = q8x_at(x);
        const uint32_t qh = (uint32_t)w[2] | (uint32_t)w[3] << 8 | (uint32_t)w[4] << 16 | (uint32_t)w[5] << 24;
        const uint8_t* qs = w + 6;
        int32_t isum = 0;
        for (int j = 0; j < 16; ++j) {
            isum += ((int)((qs[j] & 15) | ((qh >> j) & 1) << 4) - 16) * a.q[j];
            isum += ((int)((qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4) - 16) * a.q[j + 16];
        }
        sumf += (f16_to_f32(load_u16(w)) * a.d) * (float)isum;
    }
    return sumf;
}

float dot_q4_k(const uint8_t* w, const uint8_t* x, int64_t n) {
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / 256; ++b, w += sizeof(block_q4_k)) {
        const float d = f16_to_f32(load_u16(w)), dmin = f16_to_f32(load_u16(w + 2));
        for (int j = 0; j < 8; ++j, x += sizeof(block_q8x)) {
            Q8x a = q8x_at(x);
            int sc, m;
            q4_k_scale_min(w + 4, j, &sc, &m);
            const uint8_t* q = w + 16 + 32 * (j / 2);
            const int sh = 4 * (j & 1);
            int32_t isum = 0;
            for (int i = 0; i < 32; ++i) isum += ((q[i] >> sh) & 15) * a.q[i];
            sumf += ((d * (float)sc) * a.d) * (float)isum - (dmin * (float)m) * a.s;
        }
    }
    return sumf;
}

float dot_q6_k(const uint8_t* w, const uint8_t* x, int64_t n) {
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / 256; ++b, w += sizeof(block_q6_k)) {
        const float d = f16_to_f32(load_u16(w + 208));
        const int8_t* sc = (const int8_t*)(w + 192);
        for (int k = 0; k < 8; ++k, x += sizeof(block_q8x)) {  // activation block k = (half h, group g)
            Q8x a = q8x_at(x);
            const int h = k / 4, g = k % 4;
            int32_t part[2] = {0, 0};
            for (int l = 0; l < 32; ++l) {
                const int lo = (w[64 * h + l + 32 * (g & 1)] >> (g < 2 ? 0 : 4)) & 15;
                const int hi = (w[128 + 32 * h + l] >> (2 * g)) & 3;
                part[l / 16] += ((lo | hi << 4) - 32) * a.q[l];
            }
            const int32_t isum = sc[8 * h + 2 * g] * part[0] + sc[8 * h + 2 * g + 1] * part[1];
            sumf += (d * a.d) * (float)isum;
        }
    }
    return sumf;
}

}  // namespace

#define EDGE_GEMM_REF(name, dot)                                                                       \
    void name(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X, int64_t x_stride, \
              int64_t ncols, float* Y, int64_t ldy) {                                                  \
        gemm_ref_drive<sizeof(block_q8x), dot>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy);                             \
    }

EDGE_GEMM_REF(gemm_q8_0_ref, dot_q8_0)
EDGE_GEMM_REF(gemm_int4_32_ref, dot_int4<32>)
EDGE_GEMM_REF(gemm_int4_64_ref, dot_int4<64>)
EDGE_GEMM_REF(gemm_int4_128_ref, dot_int4<128>)
EDGE_GEMM_REF(gemm_int4a_32_ref, dot_int4a<32>)
EDGE_GEMM_REF(gemm_int4a_64_ref, dot_int4a<64>)
EDGE_GEMM_REF(gemm_int4a_128_ref, dot_int4a<128>)
EDGE_GEMM_REF(gemm_mxint8_ref, dot_mxint8)
EDGE_GEMM_REF(gemm_mxfp6_ref, dot_mxfp6)
EDGE_GEMM_REF(gemm_mxfp4_ref, dot_mxfp4)
EDGE_GEMM_REF(gemm_nl4_32_ref, dot_nl4)
EDGE_GEMM_REF(gemm_q5_0_ref, dot_q5_0)
EDGE_GEMM_REF(gemm_q4_k_ref, dot_q4_k)
EDGE_GEMM_REF(gemm_q6_k_ref, dot_q6_k)

#undef EDGE_GEMM_REF

}  // namespace edge
