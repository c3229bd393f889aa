// rvv.h — declarations of the RISC-V Vector (RVV 1.0) kernels (definitions in the *_rvv.cpp files beside
// it, the only files built with V: EDGE_RVV_FLAGS in CMakeLists.txt; the rest of the core is rv64gc).
//
// Every function implements a typedef of kernels.h with exactly that contract (gemm_fn, dequant_fn,
// quantize_q8x_fn, attention_fn, silu_mul_fn) and matches the scalar reference of the same name without
// the suffix (csrc/kernels/ref/): quantize_q8x and dequant bit for bit, gemm / attention / silu_mul within
// the bounds of kernels.h. Vector-length agnostic: every loop takes its vl from vsetvl; the only thing
// assumed of VLEN is V's own minimum (Zvl128b: VLEN >= 128), so e.g. 32 int8 always fit one e8m2 group.
// Only register_rvv.cpp takes their addresses (when AT_HWCAP has 'V'); this header declares, it uses no
// intrinsics, so any file may include it.
#pragma once

#include <cstdint>

#include "../kernels.h"

namespace edge {

#define EDGE_RVV_GEMM(name)                                                                             \
    void name(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X, int64_t x_stride, \
              int64_t ncols, float* Y, int64_t ldy)
#define EDGE_RVV_DEQUANT(name) void name(const void* src, float* y, int64_t n)

// ---- gemm, integer-dot weights x block_q8x (gemm_q8_rvv.cpp, gemm_int4_rvv.cpp, gemm_mxfp_rvv.cpp,
// gemm_nl4_rvv.cpp, gemm_kquant_rvv.cpp) ----
EDGE_RVV_GEMM(gemm_q8_0_rvv);
EDGE_RVV_GEMM(gemm_mxint8_rvv);
EDGE_RVV_GEMM(gemm_int4_32_rvv);
EDGE_RVV_GEMM(gemm_int4_64_rvv);
EDGE_RVV_GEMM(gemm_int4_128_rvv);
EDGE_RVV_GEMM(gemm_int4a_32_rvv);
EDGE_RVV_GEMM(gemm_int4a_64_rvv);
EDGE_RVV_GEMM(gemm_int4a_128_rvv);
EDGE_RVV_GEMM(gemm_mxfp6_rvv);
EDGE_RVV_GEMM(gemm_mxfp4_rvv);
EDGE_RVV_GEMM(gemm_nl4_32_rvv);
EDGE_RVV_GEMM(gemm_q5_0_rvv);
EDGE_RVV_GEMM(gemm_q4_k_rvv);
EDGE_RVV_GEMM(gemm_q6_k_rvv);

// ---- gemm, float weights x f32 activations (gemm_float_rvv.cpp) ----
EDGE_RVV_GEMM(gemm_f32_rvv);
EDGE_RVV_GEMM(gemm_f16_rvv);
EDGE_RVV_GEMM(gemm_bf16_rvv);
EDGE_RVV_GEMM(gemm_mxfp8_rvv);

// ---- dequant (dequant_rvv.cpp) ----
EDGE_RVV_DEQUANT(dequant_f32_rvv);
EDGE_RVV_DEQUANT(dequant_f16_rvv);
EDGE_RVV_DEQUANT(dequant_bf16_rvv);
EDGE_RVV_DEQUANT(dequant_q8_0_rvv);
EDGE_RVV_DEQUANT(dequant_int4_32_rvv);
EDGE_RVV_DEQUANT(dequant_int4_64_rvv);
EDGE_RVV_DEQUANT(dequant_int4_128_rvv);
EDGE_RVV_DEQUANT(dequant_int4a_32_rvv);
EDGE_RVV_DEQUANT(dequant_int4a_64_rvv);
EDGE_RVV_DEQUANT(dequant_int4a_128_rvv);
EDGE_RVV_DEQUANT(dequant_mxint8_rvv);
EDGE_RVV_DEQUANT(dequant_mxfp8_rvv);
EDGE_RVV_DEQUANT(dequant_mxfp6_rvv);
EDGE_RVV_DEQUANT(dequant_mxfp4_rvv);
EDGE_RVV_DEQUANT(dequant_nl4_32_rvv);

// ---- the rest ----
void quantize_q8x_rvv(const float* x, block_q8x* y, int64_t n);
void attention_rvv(const float* q, const float* kt, const float* v, int64_t v_stride, int64_t p_begin, int64_t n_pos,
                   int64_t head_dim, float* scratch, float* out);
void attention_f16_rvv(const float* q, const uint16_t* kt, const uint16_t* v, int64_t v_stride, int64_t p_begin,
                       int64_t n_pos, int64_t head_dim, float* scratch, float* out);
void attention_q8_rvv(const float* q, const int8_t* kt, const float* ks, const int8_t* v, const float* vs,
                      int64_t v_stride, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch, float* out);
void attention_kivi4_rvv(const float* q, const KiviHead& c, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch,
                          float* out);
void attention_kivi2_rvv(const float* q, const KiviHead& c, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch,
                          float* out);
void attention_block_rvv(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
        const int64_t* p_end, const float* kt, const float* v, int64_t v_stride, int64_t head_dim, float* scratch, float* out,
        int64_t out_stride);
void attention_block_f16_rvv(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
        const int64_t* p_end, const uint16_t* kt, const uint16_t* v, int64_t v_stride, int64_t head_dim, float* scratch,
        float* out, int64_t out_stride);
void attention_block_q8_rvv(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
        const int64_t* p_end, const int8_t* kt, const float* ks, const int8_t* v, const float* vs, int64_t v_stride,
        int64_t head_dim, float* scratch, float* out, int64_t out_stride);
void attention_block_kivi4_rvv(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
        const int64_t* p_end, const KiviHead& c, int64_t head_dim, float* scratch, float* out, int64_t out_stride);
void attention_block_kivi2_rvv(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
        const int64_t* p_end, const KiviHead& c, int64_t head_dim, float* scratch, float* out, int64_t out_stride);
void silu_mul_rvv(const float* g, const float* u, int64_t n, float* y);

// ---- training (backward.h): gemm_t_rvv.cpp (every dtype), gemm_tn_rvv.cpp, attention_bwd_rvv.cpp,
// backward_rows_rvv.cpp ----
#define EDGE_RVV_GEMM_T(name)                                                                                  \
    void name(const void* W, int64_t w_stride, int64_t rows, int64_t n, const float* dY, int64_t ldy, int64_t ncols, \
              float* dX, int64_t ldx)
EDGE_RVV_GEMM_T(gemm_t_f32_rvv);
EDGE_RVV_GEMM_T(gemm_t_f16_rvv);
EDGE_RVV_GEMM_T(gemm_t_bf16_rvv);
EDGE_RVV_GEMM_T(gemm_t_q8_0_rvv);
EDGE_RVV_GEMM_T(gemm_t_int4_32_rvv);
EDGE_RVV_GEMM_T(gemm_t_int4_64_rvv);
EDGE_RVV_GEMM_T(gemm_t_int4_128_rvv);
EDGE_RVV_GEMM_T(gemm_t_int4a_32_rvv);
EDGE_RVV_GEMM_T(gemm_t_int4a_64_rvv);
EDGE_RVV_GEMM_T(gemm_t_int4a_128_rvv);
EDGE_RVV_GEMM_T(gemm_t_mxint8_rvv);
EDGE_RVV_GEMM_T(gemm_t_mxfp8_rvv);
EDGE_RVV_GEMM_T(gemm_t_mxfp6_rvv);
EDGE_RVV_GEMM_T(gemm_t_mxfp4_rvv);
EDGE_RVV_GEMM_T(gemm_t_nl4_32_rvv);
void gemm_tn_f32_rvv(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t T, int64_t M, int64_t N, float* C, int64_t ldc);
void rmsnorm_bwd_rvv(const float* x, const float* w, float eps, int64_t n, const float* dy, float* dx, float* dw);
void silu_mul_bwd_rvv(const float* g, const float* u, const float* dy, int64_t n, float* dg, float* du);
void attention_bwd_rvv(const float* q, const float* k, int64_t k_stride, const float* v, int64_t v_stride, int64_t p_begin,
                       int64_t n_pos, int64_t Dh, float scale, const float* dout, float* scratch, float* dq, float* dk, float* dv);
void lse_update_rvv(const float* l, int64_t n, float* m, float* s);
void xent_grad_rvv(const float* l, int64_t n, float lse, float scale, float* dl);
void adamw_rvv(float* p, const float* g, float* m, float* v, int64_t n, const AdamParams& a);

}  // namespace edge
