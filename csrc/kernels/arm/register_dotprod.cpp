// register_dotprod.cpp — fills the KernelTable slots implemented for the dotprod level: the integer-dot gemms
// with SDOT (armv8.2-a+dotprod, e.g. Raspberry Pi 5's Cortex-A76). Every other slot keeps the level below
// (dispatch.cpp copies it). Takes addresses only, so its -march flags generate no kernel code.
#include "arm.h"

namespace edge {

void kernels_register_dotprod(KernelTable* t) {
    constexpr const char* L = "dotprod";
    kernel_set(&t->gemm[EDGE_DTYPE_Q8_0], gemm_q8_0_dotprod, L);
    kernel_set(&t->gemm[EDGE_DTYPE_MXINT8], gemm_mxint8_dotprod, L);
    kernel_set(&t->gemm[EDGE_DTYPE_INT4_32], gemm_int4_32_dotprod, L);
    kernel_set(&t->gemm[EDGE_DTYPE_INT4_64], gemm_int4_64_dotprod, L);
    kernel_set(&t->gemm[EDGE_DTYPE_INT4_128], gemm_int4_128_dotprod, L);
    kernel_set(&t->gemm[EDGE_DTYPE_INT4A_32], gemm_int4a_32_dotprod, L);
    kernel_set(&t->gemm[EDGE_DTYPE_INT4A_64], gemm_int4a_64_dotprod, L);
    kernel_set(&t->gemm[EDGE_DTYPE_INT4A_128], gemm_int4a_128_dotprod, L);
    kernel_set(&t->gemm[EDGE_DTYPE_MXFP6], gemm_mxfp6_dotprod, L);
    kernel_set(&t->gemm[EDGE_DTYPE_MXFP4], gemm_mxfp4_dotprod, L);
    kernel_set(&t->gemm[EDGE_DTYPE_NL4_32], gemm_nl4_32_dotprod, L);
    kernel_set(&t->gemm[EDGE_DTYPE_Q5_0], gemm_q5_0_dotprod, L);
    kernel_set(&t->gemm[EDGE_DTYPE_Q4_K], gemm_q4_k_dotprod, L);
    kernel_set(&t->gemm[EDGE_DTYPE_Q6_K], gemm_q6_k_dotprod, L);
}

}  // namespace edge
