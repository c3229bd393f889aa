// register_i8mm.cpp — fills the KernelTable slots implemented for the i8mm level: the integer-dot gemms
// with SMMLA (armv8.6-a i8mm) for two or more columns (SDOT for one). Every other slot keeps the level below
// (dispatch.cpp copies it). Takes addresses only, so its -march flags generate no kernel code.
#include "arm.h"

namespace edge {

void kernels_register_i8mm(KernelTable* t) {
    constexpr const char* L = "i8mm";
    kernel_set(&t->gemm[EDGE_DTYPE_Q8_0], gemm_q8_0_i8mm, L);
    kernel_set(&t->gemm[EDGE_DTYPE_MXINT8], gemm_mxint8_i8mm, L);
    kernel_set(&t->gemm[EDGE_DTYPE_INT4_32], gemm_int4_32_i8mm, L);
    kernel_set(&t->gemm[EDGE_DTYPE_INT4_64], gemm_int4_64_i8mm, L);
    kernel_set(&t->gemm[EDGE_DTYPE_INT4_128], gemm_int4_128_i8mm, L);
    kernel_set(&t->gemm[EDGE_DTYPE_INT4A_32], gemm_int4a_32_i8mm, L);
    kernel_set(&t->gemm[EDGE_DTYPE_INT4A_64], gemm_int4a_64_i8mm, L);
    kernel_set(&t->gemm[EDGE_DTYPE_INT4A_128], gemm_int4a_128_i8mm, L);
    kernel_set(&t->gemm[EDGE_DTYPE_MXFP6], gemm_mxfp6_i8mm, L);
    kernel_set(&t->gemm[EDGE_DTYPE_MXFP4], gemm_mxfp4_i8mm, L);
    kernel_set(&t->gemm[EDGE_DTYPE_NL4_32], gemm_nl4_32_i8mm, L);
    kernel_set(&t->gemm[EDGE_DTYPE_Q5_0], gemm_q5_0_i8mm, L);
    kernel_set(&t->gemm[EDGE_DTYPE_Q4_K], gemm_q4_k_i8mm, L);
    kernel_set(&t->gemm[EDGE_DTYPE_Q6_K], gemm_q6_k_i8mm, L);
}

}  // namespace edge
