// ref.h — the scalar reference kernels (the numerical spec) and the element decoders they share.
//
// Every function here implements a typedef of kernels.h (gemm_fn, dequant_fn, quantize_q8x_fn) with
// exactly that contract; kernels_register_ref() puts them in the table. SIMD variants elsewhere must
// match dequant_* and quantize_q8x_ref bit for bit and gemm_* within the bound stated in kernels.h.
// The element decoders below (E4M3, E2M3, E2M1, unaligned loads) are the single definition of each
// code's value; ISA files may use them for tails and tables.
#pragma once

#include <cstdint>
#include <cstring>

#include "../kernels.h"

namespace edge {

// ---- unaligned little-endian loads/stores (no alignment is required of any kernel pointer) ----
inline uint16_t load_u16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}
inline float load_f32(const uint8_t* p) {
    float v;
    std::memcpy(&v, p, 4);
    return v;
}
inline void store_f32(float* p, float v) { std::memcpy(p, &v, 4); }

// ---- element codes ----
// E2M1 (MXFP4) doubled to integers: code c -> 2 * value, {0,1,2,3,4,6,8,12} and the negatives (8 = -0).
inline constexpr int8_t kE2M1x2[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// E2M3 (MXFP6, bias 1, no specials) times 8: an integer in [-60, 60]. Code bits: s ee mmm.
inline int e2m3_x8(uint8_t c) {
    int e = (c >> 3) & 3, m = c & 7;
    int v = e == 0 ? m : (8 + m) << (e - 1);
    return (c & 0x20) ? -v : v;
}

// E4M3 (MXFP8 element, bias 7, max 448). 0x7F/0xFF are NaN (never written; decoded as NaN).
inline float e4m3_to_f32(uint8_t c) {
    int e = (c >> 3) & 15, m = c & 7;
    float v;
    if (e == 15 && m == 7) {
        uint32_t nan = 0x7fc00000u;
        std::memcpy(&v, &nan, 4);
    } else if (e == 0) {
        v = (float)m * 0.001953125f;  // m * 2^-9 (subnormal)
    } else {
        uint32_t bits = (uint32_t)(e + 120) << 23 | (uint32_t)m << 20;  // 2^(e-7) * (1 + m/8)
        std::memcpy(&v, &bits, 4);
    }
    return (c & 0x80) ? -v : v;
}

// The gemm_fn loop of every reference gemm: Y[c*ldy + r] = dot(W row r, X column c, n), where a column
// of X advances x_stride units of XUnit bytes (block_q8x for int-dot dtypes, float otherwise).
template <size_t XUnit, float (*dot)(const uint8_t*, const uint8_t*, int64_t)>
inline void gemm_ref_drive(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X, int64_t x_stride,
                           int64_t ncols, float* Y, int64_t ldy) {
    const uint8_t* w = (const uint8_t*)W;
    const uint8_t* x = (const uint8_t*)X;
    for (int64_t c = 0; c < ncols; ++c)
        for (int64_t r = 0; r < rows; ++r)
            store_f32(Y + c * ldy + r, dot(w + r * w_stride, x + c * x_stride * (int64_t)XUnit, n));
}

// ---- quantize_q8x (quantize_q8x_ref.cpp) ----
void quantize_q8x_ref(const float* x, block_q8x* y, int64_t n);

// ---- silu_mul (silu_mul_ref.cpp) ----
void silu_mul_ref(const float* g, const float* u, int64_t n, float* y);

// ---- attention (attention_ref.cpp) ----
void attention_ref(const float* q, const float* kt, const float* v, int64_t v_stride, int64_t p_begin, int64_t n_pos, int64_t head_dim,
                   float* scratch, float* out);
// ---- attention over an f16 / int8 KV cache (attention_kv_ref.cpp) ----
void attention_f16_ref(const float* q, const uint16_t* kt, const uint16_t* v, int64_t v_stride, int64_t p_begin,
                       int64_t n_pos, int64_t head_dim, float* scratch, float* out);
void attention_q8_ref(const float* q, const int8_t* kt, const float* ks, const int8_t* v, const float* vs,
                      int64_t v_stride, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch, float* out);
// ---- attention over a KIVI cache (attention_kivi_ref.cpp) ----
void attention_kivi4_ref(const float* q, const KiviHead& c, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch,
                         float* out);
void attention_kivi2_ref(const float* q, const KiviHead& c, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch,
                         float* out);
// ---- blocked (prefill) attention, every KV form (attention_block_ref.cpp) ----
void attention_block_ref(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
        const int64_t* p_end, const float* kt, const float* v, int64_t v_stride, int64_t head_dim, float* scratch, float* out,
        int64_t out_stride);
void attention_block_f16_ref(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
        const int64_t* p_end, const uint16_t* kt, const uint16_t* v, int64_t v_stride, int64_t head_dim, float* scratch,
        float* out, int64_t out_stride);
void attention_block_q8_ref(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
        const int64_t* p_end, const int8_t* kt, const float* ks, const int8_t* v, const float* vs, int64_t v_stride,
        int64_t head_dim, float* scratch, float* out, int64_t out_stride);
void attention_block_kivi4_ref(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
        const int64_t* p_end, const KiviHead& c, int64_t head_dim, float* scratch, float* out, int64_t out_stride);
void attention_block_kivi2_ref(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
        const int64_t* p_end, const KiviHead& c, int64_t head_dim, float* scratch, float* out, int64_t out_stride);

// ---- dequant (dequant_ref.cpp): one per dtype, dequant_fn contract ----
void dequant_f32_ref(const void* src, float* y, int64_t n);
void dequant_f16_ref(const void* src, float* y, int64_t n);
void dequant_bf16_ref(const void* src, float* y, int64_t n);
void dequant_q8_0_ref(const void* src, float* y, int64_t n);
void dequant_int4_32_ref(const void* src, float* y, int64_t n);
void dequant_int4_64_ref(const void* src, float* y, int64_t n);
void dequant_int4_128_ref(const void* src, float* y, int64_t n);
void dequant_int4a_32_ref(const void* src, float* y, int64_t n);
void dequant_int4a_64_ref(const void* src, float* y, int64_t n);
void dequant_int4a_128_ref(const void* src, float* y, int64_t n);
void dequant_mxint8_ref(const void* src, float* y, int64_t n);
void dequant_mxfp8_ref(const void* src, float* y, int64_t n);
void dequant_mxfp6_ref(const void* src, float* y, int64_t n);
void dequant_mxfp4_ref(const void* src, float* y, int64_t n);
void dequant_nl4_32_ref(const void* src, float* y, int64_t n);
void dequant_q5_0_ref(const void* src, float* y, int64_t n);
void dequant_q4_k_ref(const void* src, float* y, int64_t n);
void dequant_q6_k_ref(const void* src, float* y, int64_t n);

// ---- gemm, integer-dot weights x block_q8x activations (gemm_int_ref.cpp), gemm_fn contract ----
void gemm_q8_0_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X,
                   int64_t x_stride, int64_t ncols, float* Y, int64_t ldy);
void gemm_int4_32_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X,
                      int64_t x_stride, int64_t ncols, float* Y, int64_t ldy);
void gemm_int4_64_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X,
                      int64_t x_stride, int64_t ncols, float* Y, int64_t ldy);
void gemm_int4_128_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X,
                       int64_t x_stride, int64_t ncols, float* Y, int64_t ldy);
void gemm_int4a_32_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X,
                       int64_t x_stride, int64_t ncols, float* Y, int64_t ldy);
void gemm_int4a_64_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X,
                       int64_t x_stride, int64_t ncols, float* Y, int64_t ldy);
void gemm_int4a_128_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X,
                        int64_t x_stride, int64_t ncols, float* Y, int64_t ldy);
void gemm_mxint8_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X,
                     int64_t x_stride, int64_t ncols, float* Y, int64_t ldy);
void gemm_mxfp6_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X,
                    int64_t x_stride, int64_t ncols, float* Y, int64_t ldy);
void gemm_mxfp4_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X,
                    int64_t x_stride, int64_t ncols, float* Y, int64_t ldy);
void gemm_nl4_32_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X,
                        int64_t x_stride, int64_t ncols, float* Y, int64_t ldy);
void gemm_q5_0_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X,
                   int64_t x_stride, int64_t ncols, float* Y, int64_t ldy);
void gemm_q4_k_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X,
                   int64_t x_stride, int64_t ncols, float* Y, int64_t ldy);
void gemm_q6_k_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X,
                   int64_t x_stride, int64_t ncols, float* Y, int64_t ldy);

// ---- gemm, float weights x f32 activations (gemm_float_ref.cpp), gemm_fn contract ----
void gemm_f32_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X,
                  int64_t x_stride, int64_t ncols, float* Y, int64_t ldy);
void gemm_f16_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X,
                  int64_t x_stride, int64_t ncols, float* Y, int64_t ldy);
void gemm_bf16_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X,
                   int64_t x_stride, int64_t ncols, float* Y, int64_t ldy);
void gemm_mxfp8_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X,
                    int64_t x_stride, int64_t ncols, float* Y, int64_t ldy);

// ---- training (backward_ref.cpp): the contracts of backward.h ----
void gemm_t_f32_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const float* dY, int64_t ldy, int64_t ncols, float* dX, int64_t ldx);
void gemm_t_f16_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const float* dY, int64_t ldy, int64_t ncols, float* dX, int64_t ldx);
void gemm_t_bf16_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const float* dY, int64_t ldy, int64_t ncols, float* dX, int64_t ldx);
void gemm_t_q8_0_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const float* dY, int64_t ldy, int64_t ncols, float* dX, int64_t ldx);
void gemm_t_int4_32_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const float* dY, int64_t ldy, int64_t ncols, float* dX, int64_t ldx);
void gemm_t_int4_64_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const float* dY, int64_t ldy, int64_t ncols, float* dX, int64_t ldx);
void gemm_t_int4_128_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const float* dY, int64_t ldy, int64_t ncols, float* dX, int64_t ldx);
void gemm_t_int4a_32_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const float* dY, int64_t ldy, int64_t ncols, float* dX, int64_t ldx);
void gemm_t_int4a_64_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const float* dY, int64_t ldy, int64_t ncols, float* dX, int64_t ldx);
void gemm_t_int4a_128_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const float* dY, int64_t ldy, int64_t ncols, float* dX, int64_t ldx);
void gemm_t_mxint8_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const float* dY, int64_t ldy, int64_t ncols, float* dX, int64_t ldx);
void gemm_t_mxfp8_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const float* dY, int64_t ldy, int64_t ncols, float* dX, int64_t ldx);
void gemm_t_mxfp6_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const float* dY, int64_t ldy, int64_t ncols, float* dX, int64_t ldx);
void gemm_t_mxfp4_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const float* dY, int64_t ldy, int64_t ncols, float* dX, int64_t ldx);
void gemm_t_nl4_32_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const float* dY, int64_t ldy, int64_t ncols, float* dX, int64_t ldx);
void gemm_t_q5_0_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const float* dY, int64_t ldy, int64_t ncols, float* dX, int64_t ldx);
void gemm_t_q4_k_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const float* dY, int64_t ldy, int64_t ncols, float* dX, int64_t ldx);
void gemm_t_q6_k_ref(const void* W, int64_t w_stride, int64_t rows, int64_t n, const float* dY, int64_t ldy, int64_t ncols, float* dX, int64_t ldx);
void gemm_tn_f32_ref(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t T, int64_t M, int64_t N, float* C, int64_t ldc);
void rmsnorm_bwd_ref(const float* x, const float* w, float eps, int64_t n, const float* dy, float* dx, float* dw);
void silu_mul_bwd_ref(const float* g, const float* u, const float* dy, int64_t n, float* dg, float* du);
void attention_bwd_ref(const float* q, const float* k, int64_t k_stride, const float* v, int64_t v_stride, int64_t p_begin,
                       int64_t n_pos, int64_t Dh, float scale, const float* dout, float* scratch, float* dq, float* dk, float* dv);
void lse_update_ref(const float* l, int64_t n, float* m, float* s);
void xent_grad_ref(const float* l, int64_t n, float lse, float scale, float* dl);
void adamw_ref(float* p, const float* g, float* m, float* v, int64_t n, const AdamParams& a);

}  // namespace edge
