// register_neon.cpp — fills the KernelTable slots implemented for the neon level (armv8.0 ASIMD, e.g.
// Raspberry Pi 4's Cortex-A72): every gemm, every dequant but f32's (a memcpy) and the import-only q5_0 /
// q4_k / q6_k's, quantize_q8x, attention, silu_mul and every training kernel. Slots not set here keep the
// reference (dispatch.cpp copies the level below).
#include "arm.h"

namespace edge {

void kernels_register_neon(KernelTable* t) {
    constexpr const char* L = "neon";
    kernel_set(&t->gemm[EDGE_DTYPE_F32], gemm_f32_neon, L);
    kernel_set(&t->gemm[EDGE_DTYPE_F16], gemm_f16_neon, L);
    kernel_set(&t->gemm[EDGE_DTYPE_BF16], gemm_bf16_neon, L);
    kernel_set(&t->gemm[EDGE_DTYPE_Q8_0], gemm_q8_0_neon, L);
    kernel_set(&t->gemm[EDGE_DTYPE_INT4_32], gemm_int4_32_neon, L);
    kernel_set(&t->gemm[EDGE_DTYPE_INT4_64], gemm_int4_64_neon, L);
    kernel_set(&t->gemm[EDGE_DTYPE_INT4_128], gemm_int4_128_neon, L);
    kernel_set(&t->gemm[EDGE_DTYPE_INT4A_32], gemm_int4a_32_neon, L);
    kernel_set(&t->gemm[EDGE_DTYPE_INT4A_64], gemm_int4a_64_neon, L);
    kernel_set(&t->gemm[EDGE_DTYPE_INT4A_128], gemm_int4a_128_neon, L);
    kernel_set(&t->gemm[EDGE_DTYPE_MXINT8], gemm_mxint8_neon, L);
    kernel_set(&t->gemm[EDGE_DTYPE_MXFP8], gemm_mxfp8_neon, L);
    kernel_set(&t->gemm[EDGE_DTYPE_MXFP6], gemm_mxfp6_neon, L);
    kernel_set(&t->gemm[EDGE_DTYPE_MXFP4], gemm_mxfp4_neon, L);
    kernel_set(&t->gemm[EDGE_DTYPE_NL4_32], gemm_nl4_32_neon, L);
    kernel_set(&t->gemm[EDGE_DTYPE_Q5_0], gemm_q5_0_neon, L);
    kernel_set(&t->gemm[EDGE_DTYPE_Q4_K], gemm_q4_k_neon, L);
    kernel_set(&t->gemm[EDGE_DTYPE_Q6_K], gemm_q6_k_neon, L);

    kernel_set(&t->dequant[EDGE_DTYPE_F16], dequant_f16_neon, L);
    kernel_set(&t->dequant[EDGE_DTYPE_BF16], dequant_bf16_neon, L);
    kernel_set(&t->dequant[EDGE_DTYPE_Q8_0], dequant_q8_0_neon, L);
    kernel_set(&t->dequant[EDGE_DTYPE_INT4_32], dequant_int4_32_neon, L);
    kernel_set(&t->dequant[EDGE_DTYPE_INT4_64], dequant_int4_64_neon, L);
    kernel_set(&t->dequant[EDGE_DTYPE_INT4_128], dequant_int4_128_neon, L);
    kernel_set(&t->dequant[EDGE_DTYPE_INT4A_32], dequant_int4a_32_neon, L);
    kernel_set(&t->dequant[EDGE_DTYPE_INT4A_64], dequant_int4a_64_neon, L);
    kernel_set(&t->dequant[EDGE_DTYPE_INT4A_128], dequant_int4a_128_neon, L);
    kernel_set(&t->dequant[EDGE_DTYPE_MXINT8], dequant_mxint8_neon, L);
    kernel_set(&t->dequant[EDGE_DTYPE_MXFP8], dequant_mxfp8_neon, L);
    kernel_set(&t->dequant[EDGE_DTYPE_MXFP6], dequant_mxfp6_neon, L);
    kernel_set(&t->dequant[EDGE_DTYPE_MXFP4], dequant_mxfp4_neon, L);
    kernel_set(&t->dequant[EDGE_DTYPE_NL4_32], dequant_nl4_32_neon, L);

    kernel_set(&t->quantize_q8x, quantize_q8x_neon, L);
    kernel_set(&t->attention, attention_neon, L);
    kernel_set(&t->attention_f16, attention_f16_neon, L);
    kernel_set(&t->attention_q8, attention_q8_neon, L);
    kernel_set(&t->attention_kivi4, attention_kivi4_neon, L);
    kernel_set(&t->attention_kivi2, attention_kivi2_neon, L);
    kernel_set(&t->attention_block, attention_block_neon, L);
    kernel_set(&t->attention_block_f16, attention_block_f16_neon, L);
    kernel_set(&t->attention_block_q8, attention_block_q8_neon, L);
    kernel_set(&t->attention_block_kivi4, attention_block_kivi4_neon, L);
    kernel_set(&t->attention_block_kivi2, attention_block_kivi2_neon, L);
    kernel_set(&t->silu_mul, silu_mul_neon, L);

    kernel_set(&t->gemm_t[EDGE_DTYPE_F32], gemm_t_f32_neon, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_F16], gemm_t_f16_neon, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_BF16], gemm_t_bf16_neon, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_Q8_0], gemm_t_q8_0_neon, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_INT4_32], gemm_t_int4_32_neon, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_INT4_64], gemm_t_int4_64_neon, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_INT4_128], gemm_t_int4_128_neon, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_INT4A_32], gemm_t_int4a_32_neon, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_INT4A_64], gemm_t_int4a_64_neon, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_INT4A_128], gemm_t_int4a_128_neon, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_MXINT8], gemm_t_mxint8_neon, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_MXFP8], gemm_t_mxfp8_neon, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_MXFP6], gemm_t_mxfp6_neon, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_MXFP4], gemm_t_mxfp4_neon, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_NL4_32], gemm_t_nl4_32_neon, L);
    kernel_set(&t->gemm_tn_f32, gemm_tn_f32_neon, L);
    kernel_set(&t->rmsnorm_bwd, rmsnorm_bwd_neon, L);
    kernel_set(&t->silu_mul_bwd, silu_mul_bwd_neon, L);
    kernel_set(&t->attention_bwd, attention_bwd_neon, L);
    kernel_set(&t->lse_update, lse_update_neon, L);
    kernel_set(&t->xent_grad, xent_grad_neon, L);
    kernel_set(&t->adamw, adamw_neon, L);
}

}  // namespace edge
