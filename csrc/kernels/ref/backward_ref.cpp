// backward_ref.cpp — the scalar references of the training kernels (backward.h): the spec every SIMD
// level is tested against. Plain loops, f32 accumulation in the order stated by each contract:
//   gemm_t       dX[c][j] += W[r][j] · dY[c][r], r ascending (accumulated into dX itself); W is
//                dequantized kChunk elements at a time with the dtype's dequant reference (never a
//                whole matrix), so the values used are exactly the forward's dequantized weights
//   gemm_tn_f32  C[i][j] += A[t][i] · B[t][j], t ascending (accumulated into C itself)
//   rmsnorm_bwd  Σx² and Σg·x in index order, inv exactly as the forward rmsnorm (float_ops.cpp)
//   silu_mul_bwd, attention_bwd, lse_update, xent_grad: expf; adamw: sqrtf
// Pointers: W any byte alignment (the dequant refs load unaligned); float arrays naturally aligned.
#include <cmath>

#include "ref.h"

namespace edge {

namespace {

// Elements dequantized at once: a multiple of every block size (1, 32, 64, 128, 256). The r loop is
// outside the chunks, so the chunk length does not change any element's order of accumulation.
constexpr int64_t kChunk = 256;

template <dequant_fn deq, int64_t Block, int64_t BlockBytes>
void gemm_t_drive(const void* W, int64_t w_stride, int64_t rows, int64_t n, const float* dY, int64_t ldy,
                  int64_t ncols, float* dX, int64_t ldx) {
    float w[kChunk];
    for (int64_t r = 0; r < rows; ++r) {
        const uint8_t* wr = (const uint8_t*)W + r * w_stride;
        for (int64_t j0 = 0; j0 < n; j0 += kChunk) {
            const int64_t len = n - j0 < kChunk ? n - j0 : kChunk;  // a multiple of Block (n and kChunk are)
            deq(wr + j0 / Block * BlockBytes, w, len);
            for (int64_t c = 0; c < ncols; ++c) {
                const float d = dY[c * ldy + r];
                float* x = dX + c * ldx + j0;
                for (int64_t j = 0; j < len; ++j) x[j] += w[j] * d;
            }
        }
    }
}

}  // namespace

#define EDGE_GEMM_T_REF(name, deq, block, bytes)                                                               \
    void name(const void* W, int64_t w_stride, int64_t rows, int64_t n, const float* dY, int64_t ldy,          \
              int64_t ncols, float* dX, int64_t ldx) {                                                         \
        gemm_t_drive<deq, block, bytes>(W, w_stride, rows, n, dY, ldy, ncols, dX, ldx);                       \
    }

EDGE_GEMM_T_REF(gemm_t_f32_ref, dequant_f32_ref, 1, 4)
EDGE_GEMM_T_REF(gemm_t_f16_ref, dequant_f16_ref, 1, 2)
EDGE_GEMM_T_REF(gemm_t_bf16_ref, dequant_bf16_ref, 1, 2)
EDGE_GEMM_T_REF(gemm_t_q8_0_ref, dequant_q8_0_ref, 32, sizeof(block_q8_0))
EDGE_GEMM_T_REF(gemm_t_int4_32_ref, dequant_int4_32_ref, 32, sizeof(block_int4<32>))
EDGE_GEMM_T_REF(gemm_t_int4_64_ref, dequant_int4_64_ref, 64, sizeof(block_int4<64>))
EDGE_GEMM_T_REF(gemm_t_int4_128_ref, dequant_int4_128_ref, 128, sizeof(block_int4<128>))
EDGE_GEMM_T_REF(gemm_t_int4a_32_ref, dequant_int4a_32_ref, 32, sizeof(block_int4a<32>))
EDGE_GEMM_T_REF(gemm_t_int4a_64_ref, dequant_int4a_64_ref, 64, sizeof(block_int4a<64>))
EDGE_GEMM_T_REF(gemm_t_int4a_128_ref, dequant_int4a_128_ref, 128, sizeof(block_int4a<128>))
EDGE_GEMM_T_REF(gemm_t_mxint8_ref, dequant_mxint8_ref, 32, sizeof(block_mxint8))
EDGE_GEMM_T_REF(gemm_t_mxfp8_ref, dequant_mxfp8_ref, 32, sizeof(block_mxfp8))
EDGE_GEMM_T_REF(gemm_t_mxfp6_ref, dequant_mxfp6_ref, 32, sizeof(block_mxfp6))
EDGE_GEMM_T_REF(gemm_t_mxfp4_ref, dequant_mxfp4_ref, 32, sizeof(block_mxfp4))
EDGE_GEMM_T_REF(gemm_t_nl4_32_ref, dequant_nl4_32_ref, 32, sizeof(block_nl4))
EDGE_GEMM_T_REF(gemm_t_q5_0_ref, dequant_q5_0_ref, 32, sizeof(block_q5_0))
EDGE_GEMM_T_REF(gemm_t_q4_k_ref, dequant_q4_k_ref, 256, sizeof(block_q4_k))
EDGE_GEMM_T_REF(gemm_t_q6_k_ref, dequant_q6_k_ref, 256, sizeof(block_q6_k))

#undef EDGE_GEMM_T_REF

void gemm_tn_f32_ref(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t T, int64_t M, int64_t N,
                     float* C, int64_t ldc) {
    for (int64_t t = 0; t < T; ++t)
        for (int64_t i = 0; i < M; ++i) {
            const float a = A[t * lda + i];
            const float* b = B + t * ldb;
            float* c = C + i * ldc;
            for (int64_t j = 0; j < N; ++j) c[j] += a * b[j];
        }
}

void rmsnorm_bwd_ref(const float* x, const float* w, float eps, int64_t n, const float* dy, float* dx, float* dw) {
    float ss = 0.f;
    for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
    const float inv = 1.0f / std::sqrt(ss / (float)n + eps);
    float sgx = 0.f;
    for (int64_t i = 0; i < n; ++i) sgx += dy[i] * (w ? w[i] : 1.0f) * x[i];
    const float k = inv * inv * inv * sgx / (float)n;
    for (int64_t i = 0; i < n; ++i) {
        const float g = dy[i] * (w ? w[i] : 1.0f);
        dx[i] += inv * g - x[i] * k;
    }
    if (dw)
        for (int64_t i = 0; i < n; ++i) dw[i] += dy[i] * x[i] * inv;
}

void silu_mul_bwd_ref(const float* g, const float* u, const float* dy, int64_t n, float* dg, float* du) {
    for (int64_t i = 0; i < n; ++i) {
        const float gi = g[i], ui = u[i], d = dy[i];
        const float s = 1.0f / (1.0f + std::exp(-gi));
        dg[i] = d * ui * s * (1.0f + gi * (1.0f - s));
        du[i] = d * gi * s;
    }
}

void attention_bwd_ref(const float* q, const float* k, int64_t k_stride, const float* v, int64_t v_stride,
                       int64_t p_begin, int64_t n_pos, int64_t Dh, float scale, const float* dout, float* scratch,
                       float* dq, float* dk, float* dv) {
    float* p = scratch;          // p[j]: scores, then probabilities
    float* ds = scratch + n_pos;  // ds[j]: dout·V_j, then p_j (dout·V_j − dout·o)
    float m = -INFINITY;
    for (int64_t j = p_begin; j < n_pos; ++j) {
        const float* kj = k + j * k_stride;
        float s = 0.f;
        for (int64_t i = 0; i < Dh; ++i) s += q[i] * kj[i];
        p[j] = scale * s;
        m = p[j] > m ? p[j] : m;
    }
    float sum = 0.f;
    for (int64_t j = p_begin; j < n_pos; ++j) {
        p[j] = std::exp(p[j] - m);
        sum += p[j];
    }
    const float inv = 1.0f / sum;
    float dout_o = 0.f;  // dout·o = Σ_j p_j (dout·V_j)
    for (int64_t j = p_begin; j < n_pos; ++j) {
        p[j] *= inv;
        const float* vj = v + j * v_stride;
        float s = 0.f;
        for (int64_t i = 0; i < Dh; ++i) s += dout[i] * vj[i];
        ds[j] = s;
        dout_o += p[j] * s;
    }
    for (int64_t i = 0; i < Dh; ++i) dq[i] = 0.f;
    for (int64_t j = p_begin; j < n_pos; ++j) {
        const float d = scale * p[j] * (ds[j] - dout_o);
        const float* kj = k + j * k_stride;
        float* dkj = dk + j * k_stride;
        float* dvj = dv + j * v_stride;
        for (int64_t i = 0; i < Dh; ++i) {
            dq[i] += d * kj[i];
            dkj[i] += d * q[i];
            dvj[i] += p[j] * dout[i];
        }
    }
}

void lse_update_ref(const float* l, int64_t n, float* m, float* s) {
    float mx = *m;
    for (int64_t i = 0; i < n; ++i) mx = l[i] > mx ? l[i] : mx;
    if (mx == -INFINITY) return;  // nothing finite yet: s stays 0 (avoids e^(-inf - -inf))
    float sum = *s == 0.f ? 0.f : *s * std::exp(*m - mx);
    for (int64_t i = 0; i < n; ++i) sum += std::exp(l[i] - mx);
    *m = mx;
    *s = sum;
}

void xent_grad_ref(const float* l, int64_t n, float lse, float scale, float* dl) {
    for (int64_t i = 0; i < n; ++i) dl[i] = scale * std::exp(l[i] - lse);
}

void adamw_ref(float* p, const float* g, float* m, float* v, int64_t n, const AdamParams& a) {
    for (int64_t i = 0; i < n; ++i) {
        const float gi = g[i];
        m[i] = a.b1 * m[i] + (1.0f - a.b1) * gi;
        v[i] = a.b2 * v[i] + (1.0f - a.b2) * gi * gi;
        p[i] -= a.lr * ((m[i] / a.bc1) / (std::sqrt(v[i] / a.bc2) + a.eps) + a.wd * p[i]);
    }
}

}  // namespace edge
