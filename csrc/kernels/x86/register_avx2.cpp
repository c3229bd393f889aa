// register_avx2.cpp — fills the KernelTable slots implemented for the avx2 level (AVX2+FMA+F16C).
// Slots not set here keep the reference (dispatch.cpp copies the table of the level below): the f32
// dequant (a copy), the mxfp6 dequant and the import-only q5_0 / q4_k / q6_k dequants. Every training slot (backward.h) is set.
#include "x86.h"

namespace edge {

void kernels_register_avx2(KernelTable* t) {
    constexpr const char* L = "avx2";
    kernel_set(&t->gemm[EDGE_DTYPE_F32], gemm_f32_avx2, L);
    kernel_set(&t->gemm[EDGE_DTYPE_F16], gemm_f16_avx2, L);
    kernel_set(&t->gemm[EDGE_DTYPE_BF16], gemm_bf16_avx2, L);
    kernel_set(&t->gemm[EDGE_DTYPE_Q8_0], gemm_q8_0_avx2, L);
    kernel_set(&t->gemm[EDGE_DTYPE_INT4_32], gemm_int4_32_avx2, L);
    kernel_set(&t->gemm[EDGE_DTYPE_INT4_64], gemm_int4_64_avx2, L);
    kernel_set(&t->gemm[EDGE_DTYPE_INT4_128], gemm_int4_128_avx2, L);
    kernel_set(&t->gemm[EDGE_DTYPE_INT4A_32], gemm_int4a_32_avx2, L);
    kernel_set(&t->gemm[EDGE_DTYPE_INT4A_64], gemm_int4a_64_avx2, L);
    kernel_set(&t->gemm[EDGE_DTYPE_INT4A_128], gemm_int4a_128_avx2, L);
    kernel_set(&t->gemm[EDGE_DTYPE_MXINT8], gemm_mxint8_avx2, L);
    kernel_set(&t->gemm[EDGE_DTYPE_MXFP8], gemm_mxfp8_avx2, L);
    kernel_set(&t->gemm[EDGE_DTYPE_MXFP6], gemm_mxfp6_avx2, L);
    kernel_set(&t->gemm[EDGE_DTYPE_MXFP4], gemm_mxfp4_avx2, L);
    kernel_set(&t->gemm[EDGE_DTYPE_NL4_32], gemm_nl4_32_avx2, L);
    kernel_set(&t->gemm[EDGE_DTYPE_Q5_0], gemm_q5_0_avx2, L);
    kernel_set(&t->gemm[EDGE_DTYPE_Q4_K], gemm_q4_k_avx2, L);
    kernel_set(&t->gemm[EDGE_DTYPE_Q6_K], gemm_q6_k_avx2, L);

    kernel_set(&t->dequant[EDGE_DTYPE_F16], dequant_f16_avx2, L);
    kernel_set(&t->dequant[EDGE_DTYPE_BF16], dequant_bf16_avx2, L);
    kernel_set(&t->dequant[EDGE_DTYPE_Q8_0], dequant_q8_0_avx2, L);
    kernel_set(&t->dequant[EDGE_DTYPE_INT4_32], dequant_int4_32_avx2, L);
    kernel_set(&t->dequant[EDGE_DTYPE_INT4_64], dequant_int4_64_avx2, L);
    kernel_set(&t->dequant[EDGE_DTYPE_INT4_128], dequant_int4_128_avx2, L);
    kernel_set(&t->dequant[EDGE_DTYPE_INT4A_32], dequant_int4a_32_avx2, L);
    kernel_set(&t->dequant[EDGE_DTYPE_INT4A_64], dequant_int4a_64_avx2, L);
    kernel_set(&t->dequant[EDGE_DTYPE_INT4A_128], dequant_int4a_128_avx2, L);
    kernel_set(&t->dequant[EDGE_DTYPE_MXINT8], dequant_mxint8_avx2, L);
    kernel_set(&t->dequant[EDGE_DTYPE_MXFP8], dequant_mxfp8_avx2, L);
    kernel_set(&t->dequant[EDGE_DTYPE_MXFP4], dequant_mxfp4_avx2, L);
    kernel_set(&t->dequant[EDGE_DTYPE_NL4_32], dequant_nl4_32_avx2, L);

    kernel_set(&t->quantize_q8x, quantize_q8x_avx2, L);
    kernel_set(&t->attention, attention_avx2, L);
    kernel_set(&t->attention_f16, attention_f16_avx2, L);
    kernel_set(&t->attention_q8, attention_q8_avx2, L);
    kernel_set(&t->attention_kivi4, attention_kivi4_avx2, L);
    kernel_set(&t->attention_kivi2, attention_kivi2_avx2, L);
    kernel_set(&t->attention_block, attention_block_avx2, L);
    kernel_set(&t->attention_block_f16, attention_block_f16_avx2, L);
    kernel_set(&t->attention_block_q8, attention_block_q8_avx2, L);
    kernel_set(&t->attention_block_kivi4, attention_block_kivi4_avx2, L);
    kernel_set(&t->attention_block_kivi2, attention_block_kivi2_avx2, L);
    kernel_set(&t->silu_mul, silu_mul_avx2, L);

    kernel_set(&t->gemm_t[EDGE_DTYPE_F32], gemm_t_f32_avx2, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_F16], gemm_t_f16_avx2, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_BF16], gemm_t_bf16_avx2, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_Q8_0], gemm_t_q8_0_avx2, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_INT4_32], gemm_t_int4_32_avx2, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_INT4_64], gemm_t_int4_64_avx2, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_INT4_128], gemm_t_int4_128_avx2, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_INT4A_32], gemm_t_int4a_32_avx2, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_INT4A_64], gemm_t_int4a_64_avx2, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_INT4A_128], gemm_t_int4a_128_avx2, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_MXINT8], gemm_t_mxint8_avx2, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_MXFP8], gemm_t_mxfp8_avx2, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_MXFP6], gemm_t_mxfp6_avx2, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_MXFP4], gemm_t_mxfp4_avx2, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_NL4_32], gemm_t_nl4_32_avx2, L);
    kernel_set(&t->gemm_tn_f32, gemm_tn_f32_avx2, L);
    kernel_set(&t->rmsnorm_bwd, rmsnorm_bwd_avx2, L);
    kernel_set(&t->silu_mul_bwd, silu_mul_bwd_avx2, L);
    kernel_set(&t->attention_bwd, attention_bwd_avx2, L);
    kernel_set(&t->lse_update, lse_update_avx2, L);
    kernel_set(&t->xent_grad, xent_grad_avx2, L);
    kernel_set(&t->adamw, adamw_avx2, L);
}

}  // namespace edge
