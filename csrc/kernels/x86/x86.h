// x86.h — declarations of the x86-64 SIMD kernels (definitions in the *_avx2.cpp, *_avx512.cpp and
// *_avx512vnni.cpp files beside it; each file's suffix selects its compiler flags, see CMakeLists.txt).
//
// Every function implements a typedef of kernels.h with exactly that contract (gemm_fn, dequant_fn,
// quantize_q8x_fn) and matches the scalar reference of the same name without the suffix
// (csrc/kernels/ref/): quantize_q8x and dequant bit for bit, gemm within the bound of kernels.h.
// Only the register_<level>.cpp files take their addresses; nothing calls them directly, so this
// header is safe to include from any file (it declares, it uses no intrinsics).
#pragma once

#include <cstdint>

#include "../kernels.h"

namespace edge {

#define EDGE_X86_GEMM(name)                                                                        \
    void name(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X, int64_t x_stride, \
              int64_t ncols, float* Y, int64_t ldy)
#define EDGE_X86_DEQUANT(name) void name(const void* src, float* y, int64_t n)
#define EDGE_X86_GEMM_T(name)                                                                                  \
    void name(const void* W, int64_t w_stride, int64_t rows, int64_t n, const float* dY, int64_t ldy, int64_t ncols, \
              float* dX, int64_t ldx)

// ---- avx2 (AVX2 + FMA + F16C) ----
void quantize_q8x_avx2(const float* x, block_q8x* y, int64_t n);
EDGE_X86_GEMM(gemm_q8_0_avx2);
EDGE_X86_GEMM(gemm_int4_32_avx2);
EDGE_X86_GEMM(gemm_int4_64_avx2);
EDGE_X86_GEMM(gemm_int4_128_avx2);
EDGE_X86_GEMM(gemm_int4a_32_avx2);
EDGE_X86_GEMM(gemm_int4a_64_avx2);
EDGE_X86_GEMM(gemm_int4a_128_avx2);
EDGE_X86_GEMM(gemm_mxint8_avx2);
EDGE_X86_GEMM(gemm_mxfp4_avx2);
EDGE_X86_GEMM(gemm_mxfp6_avx2);
EDGE_X86_GEMM(gemm_nl4_32_avx2);
EDGE_X86_GEMM(gemm_q5_0_avx2);
EDGE_X86_GEMM(gemm_q4_k_avx2);
EDGE_X86_GEMM(gemm_q6_k_avx2);
EDGE_X86_GEMM(gemm_f32_avx2);
EDGE_X86_GEMM(gemm_f16_avx2);
EDGE_X86_GEMM(gemm_bf16_avx2);
EDGE_X86_GEMM(gemm_mxfp8_avx2);
EDGE_X86_DEQUANT(dequant_f16_avx2);
EDGE_X86_DEQUANT(dequant_bf16_avx2);
EDGE_X86_DEQUANT(dequant_q8_0_avx2);
EDGE_X86_DEQUANT(dequant_int4_32_avx2);
EDGE_X86_DEQUANT(dequant_int4_64_avx2);
EDGE_X86_DEQUANT(dequant_int4_128_avx2);
EDGE_X86_DEQUANT(dequant_int4a_32_avx2);
EDGE_X86_DEQUANT(dequant_int4a_64_avx2);
EDGE_X86_DEQUANT(dequant_int4a_128_avx2);
EDGE_X86_DEQUANT(dequant_mxint8_avx2);
EDGE_X86_DEQUANT(dequant_mxfp8_avx2);
EDGE_X86_DEQUANT(dequant_mxfp4_avx2);
EDGE_X86_DEQUANT(dequant_nl4_32_avx2);

void attention_avx2(const float* q, const float* kt, const float* v, int64_t v_stride, int64_t p_begin, int64_t n_pos, int64_t head_dim,
                    float* scratch, float* out);

void attention_f16_avx2(const float* q, const uint16_t* kt, const uint16_t* v, int64_t v_stride, int64_t p_begin,
                        int64_t n_pos, int64_t head_dim, float* scratch, float* out);
void attention_q8_avx2(const float* q, const int8_t* kt, const float* ks, const int8_t* v, const float* vs,
                       int64_t v_stride, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch, float* out);

void attention_kivi4_avx2(const float* q, const KiviHead& c, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch,
                          float* out);
void attention_kivi2_avx2(const float* q, const KiviHead& c, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch,
                          float* out);
void attention_block_avx2(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
        const int64_t* p_end, const float* kt, const float* v, int64_t v_stride, int64_t head_dim, float* scratch, float* out,
        int64_t out_stride);
void attention_block_f16_avx2(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
        const int64_t* p_end, const uint16_t* kt, const uint16_t* v, int64_t v_stride, int64_t head_dim, float* scratch,
        float* out, int64_t out_stride);
void attention_block_q8_avx2(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
        const int64_t* p_end, const int8_t* kt, const float* ks, const int8_t* v, const float* vs, int64_t v_stride,
        int64_t head_dim, float* scratch, float* out, int64_t out_stride);
void attention_block_kivi4_avx2(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
        const int64_t* p_end, const KiviHead& c, int64_t head_dim, float* scratch, float* out, int64_t out_stride);
void attention_block_kivi2_avx2(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
        const int64_t* p_end, const KiviHead& c, int64_t head_dim, float* scratch, float* out, int64_t out_stride);

void silu_mul_avx2(const float* g, const float* u, int64_t n, float* y);

// training (backward.h): gemm_t_avx2.cpp for every dtype, gemm_tn_avx2.cpp, attention_bwd_avx2.cpp,
// backward_rows_avx2.cpp (rmsnorm_bwd, silu_mul_bwd, lse_update, xent_grad, adamw)
EDGE_X86_GEMM_T(gemm_t_f32_avx2);
EDGE_X86_GEMM_T(gemm_t_f16_avx2);
EDGE_X86_GEMM_T(gemm_t_bf16_avx2);
EDGE_X86_GEMM_T(gemm_t_q8_0_avx2);
EDGE_X86_GEMM_T(gemm_t_int4_32_avx2);
EDGE_X86_GEMM_T(gemm_t_int4_64_avx2);
EDGE_X86_GEMM_T(gemm_t_int4_128_avx2);
EDGE_X86_GEMM_T(gemm_t_int4a_32_avx2);
EDGE_X86_GEMM_T(gemm_t_int4a_64_avx2);
EDGE_X86_GEMM_T(gemm_t_int4a_128_avx2);
EDGE_X86_GEMM_T(gemm_t_mxint8_avx2);
EDGE_X86_GEMM_T(gemm_t_mxfp8_avx2);
EDGE_X86_GEMM_T(gemm_t_mxfp6_avx2);
EDGE_X86_GEMM_T(gemm_t_mxfp4_avx2);
EDGE_X86_GEMM_T(gemm_t_nl4_32_avx2);
void gemm_tn_f32_avx2(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t T, int64_t M, int64_t N, float* C, int64_t ldc);
void rmsnorm_bwd_avx2(const float* x, const float* w, float eps, int64_t n, const float* dy, float* dx, float* dw);
void silu_mul_bwd_avx2(const float* g, const float* u, const float* dy, int64_t n, float* dg, float* du);
void attention_bwd_avx2(const float* q, const float* k, int64_t k_stride, const float* v, int64_t v_stride, int64_t p_begin,
                       int64_t n_pos, int64_t Dh, float scale, const float* dout, float* scratch, float* dq, float* dk, float* dv);
void lse_update_avx2(const float* l, int64_t n, float* m, float* s);
void xent_grad_avx2(const float* l, int64_t n, float lse, float scale, float* dl);
void adamw_avx2(float* p, const float* g, float* m, float* v, int64_t n, const AdamParams& a);

// ---- avx512 (F + BW + VL + DQ) ----
void quantize_q8x_avx512(const float* x, block_q8x* y, int64_t n);
EDGE_X86_GEMM(gemm_f32_avx512);
EDGE_X86_GEMM(gemm_f16_avx512);
EDGE_X86_GEMM(gemm_bf16_avx512);
EDGE_X86_GEMM(gemm_mxfp8_avx512);

void attention_avx512(const float* q, const float* kt, const float* v, int64_t v_stride, int64_t p_begin, int64_t n_pos, int64_t head_dim,
                      float* scratch, float* out);

void attention_block_avx512(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
        const int64_t* p_end, const float* kt, const float* v, int64_t v_stride, int64_t head_dim, float* scratch, float* out,
        int64_t out_stride);
void attention_block_f16_avx512(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
        const int64_t* p_end, const uint16_t* kt, const uint16_t* v, int64_t v_stride, int64_t head_dim, float* scratch,
        float* out, int64_t out_stride);
void attention_block_q8_avx512(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
        const int64_t* p_end, const int8_t* kt, const float* ks, const int8_t* v, const float* vs, int64_t v_stride,
        int64_t head_dim, float* scratch, float* out, int64_t out_stride);

void silu_mul_avx512(const float* g, const float* u, int64_t n, float* y);

// training (backward.h): gemm_t_avx512.cpp for every dtype, gemm_tn_avx512.cpp; the element-wise and
// attention backward ops are memory-bound at these sizes and keep the avx2 entries
EDGE_X86_GEMM_T(gemm_t_f32_avx512);
EDGE_X86_GEMM_T(gemm_t_f16_avx512);
EDGE_X86_GEMM_T(gemm_t_bf16_avx512);
EDGE_X86_GEMM_T(gemm_t_q8_0_avx512);
EDGE_X86_GEMM_T(gemm_t_int4_32_avx512);
EDGE_X86_GEMM_T(gemm_t_int4_64_avx512);
EDGE_X86_GEMM_T(gemm_t_int4_128_avx512);
EDGE_X86_GEMM_T(gemm_t_int4a_32_avx512);
EDGE_X86_GEMM_T(gemm_t_int4a_64_avx512);
EDGE_X86_GEMM_T(gemm_t_int4a_128_avx512);
EDGE_X86_GEMM_T(gemm_t_mxint8_avx512);
EDGE_X86_GEMM_T(gemm_t_mxfp8_avx512);
EDGE_X86_GEMM_T(gemm_t_mxfp6_avx512);
EDGE_X86_GEMM_T(gemm_t_mxfp4_avx512);
EDGE_X86_GEMM_T(gemm_t_nl4_32_avx512);
void gemm_tn_f32_avx512(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t T, int64_t M, int64_t N, float* C, int64_t ldc);

// ---- avx512vnni (avx512 + VNNI) ----
EDGE_X86_GEMM(gemm_int4_32_avx512vnni);
EDGE_X86_GEMM(gemm_int4_64_avx512vnni);
EDGE_X86_GEMM(gemm_int4_128_avx512vnni);
EDGE_X86_GEMM(gemm_int4a_32_avx512vnni);
EDGE_X86_GEMM(gemm_int4a_64_avx512vnni);
EDGE_X86_GEMM(gemm_int4a_128_avx512vnni);
EDGE_X86_GEMM(gemm_q8_0_avx512vnni);
EDGE_X86_GEMM(gemm_mxint8_avx512vnni);
EDGE_X86_GEMM(gemm_mxfp4_avx512vnni);
EDGE_X86_GEMM(gemm_mxfp6_avx512vnni);
EDGE_X86_GEMM(gemm_nl4_32_avx512vnni);
EDGE_X86_GEMM(gemm_q5_0_avx512vnni);
EDGE_X86_GEMM(gemm_q4_k_avx512vnni);
EDGE_X86_GEMM(gemm_q6_k_avx512vnni);

}  // namespace edge
