// register_avx512vnni.cpp — fills the KernelTable slots implemented for the avx512vnni level
// (avx512 + VNNI): the integer-dot gemms. Slots not set here keep the avx512 entries (dispatch.cpp
// copies the level below).
#include "x86.h"

namespace edge {

void kernels_register_avx512vnni(KernelTable* t) {
    constexpr const char* L = "avx512vnni";
    kernel_set(&t->gemm[EDGE_DTYPE_Q8_0], gemm_q8_0_avx512vnni, L);
    kernel_set(&t->gemm[EDGE_DTYPE_INT4_32], gemm_int4_32_avx512vnni, L);
    kernel_set(&t->gemm[EDGE_DTYPE_INT4_64], gemm_int4_64_avx512vnni, L);
    kernel_set(&t->gemm[EDGE_DTYPE_INT4_128], gemm_int4_128_avx512vnni, L);
    kernel_set(&t->gemm[EDGE_DTYPE_INT4A_32], gemm_int4a_32_avx512vnni, L);
    kernel_set(&t->gemm[EDGE_DTYPE_INT4A_64], gemm_int4a_64_avx512vnni, L);
    kernel_set(&t->gemm[EDGE_DTYPE_INT4A_128], gemm_int4a_128_avx512vnni, L);
    kernel_set(&t->gemm[EDGE_DTYPE_MXINT8], gemm_mxint8_avx512vnni, L);
    kernel_set(&t->gemm[EDGE_DTYPE_MXFP6], gemm_mxfp6_avx512vnni, L);
    kernel_set(&t->gemm[EDGE_DTYPE_MXFP4], gemm_mxfp4_avx512vnni, L);
    kernel_set(&t->gemm[EDGE_DTYPE_NL4_32], gemm_nl4_32_avx512vnni, L);
    kernel_set(&t->gemm[EDGE_DTYPE_Q5_0], gemm_q5_0_avx512vnni, L);
    kernel_set(&t->gemm[EDGE_DTYPE_Q4_K], gemm_q4_k_avx512vnni, L);
    kernel_set(&t->gemm[EDGE_DTYPE_Q6_K], gemm_q6_k_avx512vnni, L);
}

}  // namespace edge
