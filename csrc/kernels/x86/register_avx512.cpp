// register_avx512.cpp — fills the KernelTable slots implemented for the avx512 level (F+BW+VL+DQ).
// Slots not set here keep the avx2 entries (dispatch.cpp copies the table of the level below): the
// integer-dot gemms (VNNI ones are at the avx512vnni level), dequant (memory-bound; AVX2 suffices) and
// the element-wise / attention training kernels (memory-bound at training sizes).
// Built with the AVX-512 flags but it only stores function addresses (kernel_set is static per file).
#include "x86.h"

namespace edge {

void kernels_register_avx512(KernelTable* t) {
    constexpr const char* L = "avx512";
    kernel_set(&t->gemm[EDGE_DTYPE_F32], gemm_f32_avx512, L);
    kernel_set(&t->gemm[EDGE_DTYPE_F16], gemm_f16_avx512, L);
    kernel_set(&t->gemm[EDGE_DTYPE_BF16], gemm_bf16_avx512, L);
    kernel_set(&t->gemm[EDGE_DTYPE_MXFP8], gemm_mxfp8_avx512, L);

    kernel_set(&t->quantize_q8x, quantize_q8x_avx512, L);
    kernel_set(&t->attention, attention_avx512, L);
    kernel_set(&t->attention_block, attention_block_avx512, L);
    kernel_set(&t->attention_block_f16, attention_block_f16_avx512, L);
    kernel_set(&t->attention_block_q8, attention_block_q8_avx512, L);
    kernel_set(&t->silu_mul, silu_mul_avx512, L);

    kernel_set(&t->gemm_t[EDGE_DTYPE_F32], gemm_t_f32_avx512, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_F16], gemm_t_f16_avx512, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_BF16], gemm_t_bf16_avx512, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_Q8_0], gemm_t_q8_0_avx512, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_INT4_32], gemm_t_int4_32_avx512, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_INT4_64], gemm_t_int4_64_avx512, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_INT4_128], gemm_t_int4_128_avx512, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_INT4A_32], gemm_t_int4a_32_avx512, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_INT4A_64], gemm_t_int4a_64_avx512, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_INT4A_128], gemm_t_int4a_128_avx512, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_MXINT8], gemm_t_mxint8_avx512, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_MXFP8], gemm_t_mxfp8_avx512, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_MXFP6], gemm_t_mxfp6_avx512, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_MXFP4], gemm_t_mxfp4_avx512, L);
    kernel_set(&t->gemm_t[EDGE_DTYPE_NL4_32], gemm_t_nl4_32_avx512, L);
    kernel_set(&t->gemm_tn_f32, gemm_tn_f32_avx512, L);
}

}  // namespace edge
