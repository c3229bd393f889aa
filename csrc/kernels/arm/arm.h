// arm.h — declarations of the aarch64 SIMD kernels (definitions in the *_neon.cpp, *_dotprod.cpp and
// *_i8mm.cpp files beside it; each file's suffix selects its compiler flags, see CMakeLists.txt:
// neon = armv8-a baseline, dotprod = armv8.2-a+dotprod+fp16, i8mm = +i8mm).
//
// Every function implements a typedef of kernels.h with exactly that contract (gemm_fn, dequant_fn,
// quantize_q8x_fn, attention_fn, silu_mul_fn) and matches the scalar reference of the same name without
// the suffix (csrc/kernels/ref/): quantize_q8x and dequant bit for bit, gemm/attention/silu_mul within
// the bounds of kernels.h. Only the register_<level>.cpp files take their addresses; this header declares
// only (no intrinsics, no inline code), so any file may include it.
#pragma once

#include <cstdint>

#include "../kernels.h"

namespace edge {

#define EDGE_ARM_GEMM(name)                                                                               \
    void name(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X, int64_t x_stride, \
              int64_t ncols, float* Y, int64_t ldy)
#define EDGE_ARM_DEQUANT(name) void name(const void* src, float* y, int64_t n)

// The integer-dot gemms exist once per level (neon: SMULL/SADALP; dotprod: SDOT; i8mm: SMMLA).
#define EDGE_ARM_INT_GEMMS(level)         \
    EDGE_ARM_GEMM(gemm_q8_0_##level);      \
    EDGE_ARM_GEMM(gemm_int4_32_##level);   \
    EDGE_ARM_GEMM(gemm_int4_64_##level);   \
    EDGE_ARM_GEMM(gemm_int4_128_##level);  \
    EDGE_ARM_GEMM(gemm_int4a_32_##level);  \
    EDGE_ARM_GEMM(gemm_int4a_64_##level);  \
    EDGE_ARM_GEMM(gemm_int4a_128_##level); \
    EDGE_ARM_GEMM(gemm_mxint8_##level);    \
    EDGE_ARM_GEMM(gemm_mxfp6_##level);     \
    EDGE_ARM_GEMM(gemm_mxfp4_##level);     \
    EDGE_ARM_GEMM(gemm_nl4_32_##level);    \
    EDGE_ARM_GEMM(gemm_q5_0_##level);      \
    EDGE_ARM_GEMM(gemm_q4_k_##level);      \
    EDGE_ARM_GEMM(gemm_q6_k_##level)

// ---- neon (armv8.0 ASIMD: Raspberry Pi 4 and every aarch64 CPU) ----
EDGE_ARM_INT_GEMMS(neon);
EDGE_ARM_GEMM(gemm_f32_neon);
EDGE_ARM_GEMM(gemm_f16_neon);
EDGE_ARM_GEMM(gemm_bf16_neon);
EDGE_ARM_GEMM(gemm_mxfp8_neon);
EDGE_ARM_DEQUANT(dequant_f16_neon);
EDGE_ARM_DEQUANT(dequant_bf16_neon);
EDGE_ARM_DEQUANT(dequant_q8_0_neon);
EDGE_ARM_DEQUANT(dequant_int4_32_neon);
EDGE_ARM_DEQUANT(dequant_int4_64_neon);
EDGE_ARM_DEQUANT(dequant_int4_128_neon);
EDGE_ARM_DEQUANT(dequant_int4a_32_neon);
EDGE_ARM_DEQUANT(dequant_int4a_64_neon);
EDGE_ARM_DEQUANT(dequant_int4a_128_neon);
EDGE_ARM_DEQUANT(dequant_mxint8_neon);
EDGE_ARM_DEQUANT(dequant_mxfp8_neon);
EDGE_ARM_DEQUANT(dequant_mxfp6_neon);
EDGE_ARM_DEQUANT(dequant_mxfp4_neon);
EDGE_ARM_DEQUANT(dequant_nl4_32_neon);
void quantize_q8x_neon(const float* x, block_q8x* y, int64_t n);
void attention_neon(const float* q, const float* kt, const float* v, int64_t v_stride, int64_t p_begin, int64_t n_pos,
                    int64_t head_dim, float* scratch, float* out);
void attention_f16_neon(const float* q, const uint16_t* kt, const uint16_t* v, int64_t v_stride, int64_t p_begin,
                        int64_t n_pos, int64_t head_dim, float* scratch, float* out);
void attention_q8_neon(const float* q, const int8_t* kt, const float* ks, const int8_t* v, const float* vs,
                       int64_t v_stride, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch, float* out);
void attention_kivi4_neon(const float* q, const KiviHead& c, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch,
                          float* out);
void attention_kivi2_neon(const float* q, const KiviHead& c, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch,
                          float* out);
void attention_block_neon(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
        const int64_t* p_end, const float* kt, const float* v, int64_t v_stride, int64_t head_dim, float* scratch, float* out,
        int64_t out_stride);
void attention_block_f16_neon(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
        const int64_t* p_end, const uint16_t* kt, const uint16_t* v, int64_t v_stride, int64_t head_dim, float* scratch,
        float* out, int64_t out_stride);
void attention_block_q8_neon(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
        const int64_t* p_end, const int8_t* kt, const float* ks, const int8_t* v, const float* vs, int64_t v_stride,
        int64_t head_dim, float* scratch, float* out, int64_t out_stride);
void attention_block_kivi4_neon(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
        const int64_t* p_end, const KiviHead& c, int64_t head_dim, float* scratch, float* out, int64_t out_stride);
void attention_block_kivi2_neon(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
        const int64_t* p_end, const KiviHead& c, int64_t head_dim, float* scratch, float* out, int64_t out_stride);
void silu_mul_neon(const float* g, const float* u, int64_t n, float* y);

// ---- dotprod (armv8.2-a + SDOT + fp16: Raspberry Pi 5, Cortex-A55/A76/A78, Neoverse N1) ----
EDGE_ARM_INT_GEMMS(dotprod);

// ---- i8mm (+SMMLA: Cortex-A510/A710/X2 and later, Neoverse V1/N2; ncols == 1 runs SDOT) ----
EDGE_ARM_INT_GEMMS(i8mm);

#undef EDGE_ARM_INT_GEMMS

// ---- training (backward.h), neon level (dotprod / i8mm keep these: float arithmetic only) ----
// gemm_t_neon.cpp (every dtype), gemm_tn_neon.cpp, attention_bwd_neon.cpp, backward_rows_neon.cpp
#define EDGE_ARM_GEMM_T(name)                                                                                  \
    void name(const void* W, int64_t w_stride, int64_t rows, int64_t n, const float* dY, int64_t ldy, int64_t ncols, \
              float* dX, int64_t ldx)
EDGE_ARM_GEMM_T(gemm_t_f32_neon);
EDGE_ARM_GEMM_T(gemm_t_f16_neon);
EDGE_ARM_GEMM_T(gemm_t_bf16_neon);
EDGE_ARM_GEMM_T(gemm_t_q8_0_neon);
EDGE_ARM_GEMM_T(gemm_t_int4_32_neon);
EDGE_ARM_GEMM_T(gemm_t_int4_64_neon);
EDGE_ARM_GEMM_T(gemm_t_int4_128_neon);
EDGE_ARM_GEMM_T(gemm_t_int4a_32_neon);
EDGE_ARM_GEMM_T(gemm_t_int4a_64_neon);
EDGE_ARM_GEMM_T(gemm_t_int4a_128_neon);
EDGE_ARM_GEMM_T(gemm_t_mxint8_neon);
EDGE_ARM_GEMM_T(gemm_t_mxfp8_neon);
EDGE_ARM_GEMM_T(gemm_t_mxfp6_neon);
EDGE_ARM_GEMM_T(gemm_t_mxfp4_neon);
EDGE_ARM_GEMM_T(gemm_t_nl4_32_neon);
void gemm_tn_f32_neon(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t T, int64_t M, int64_t N, float* C, int64_t ldc);
void rmsnorm_bwd_neon(const float* x, const float* w, float eps, int64_t n, const float* dy, float* dx, float* dw);
void silu_mul_bwd_neon(const float* g, const float* u, const float* dy, int64_t n, float* dg, float* du);
void attention_bwd_neon(const float* q, const float* k, int64_t k_stride, const float* v, int64_t v_stride, int64_t p_begin,
                        int64_t n_pos, int64_t Dh, float scale, const float* dout, float* scratch, float* dq, float* dk, float* dv);
void lse_update_neon(const float* l, int64_t n, float* m, float* s);
void xent_grad_neon(const float* l, int64_t n, float lse, float scale, float* dl);
void adamw_neon(float* p, const float* g, float* m, float* v, int64_t n, const AdamParams& a);

}  // namespace edge
