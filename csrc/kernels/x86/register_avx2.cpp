// register_avx2.cpp — fills the KernelTable slots implemented for the avx2 level (AVX2+FMA+F16C).
// Slots not set here keep the reference (dispatch.cpp copies the table of the level below).
#include "x86.h"

namespace edge {

void kernels_register_avx2(KernelTable* t) {
    struct Entry {
        DType dtype;
        gemm_fn gemm;
        dequant_fn dequant;  // nullptr: keep the reference
    };
    static const Entry kEntries[] = {
        {EDGE_DTYPE_F32, gemm_f32_avx2, nullptr},
        {EDGE_DTYPE_F16, gemm_f16_avx2, dequant_f16_avx2},
        {EDGE_DTYPE_BF16, gemm_bf16_avx2, dequant_bf16_avx2},
        {EDGE_DTYPE_Q8_0, gemm_q8_0_avx2, dequant_q8_0_avx2},
        {EDGE_DTYPE_INT4_32, gemm_int4_32_avx2, dequant_int4_32_avx2},
        {EDGE_DTYPE_INT4_64, gemm_int4_64_avx2, dequant_int4_64_avx2},
        {EDGE_DTYPE_INT4_128, gemm_int4_128_avx2, dequant_int4_128_avx2},
        {EDGE_DTYPE_INT4A_32, gemm_int4a_32_avx2, dequant_int4a_32_avx2},
        {EDGE_DTYPE_INT4A_64, gemm_int4a_64_avx2, dequant_int4a_64_avx2},
        {EDGE_DTYPE_INT4A_128, gemm_int4a_128_avx2, dequant_int4a_128_avx2},
        {EDGE_DTYPE_MXINT8, gemm_mxint8_avx2, dequant_mxint8_avx2},
        {EDGE_DTYPE_MXFP8, gemm_mxfp8_avx2, dequant_mxfp8_avx2},
        {EDGE_DTYPE_MXFP6, gemm_mxfp6_avx2, nullptr},
        {EDGE_DTYPE_MXFP4, gemm_mxfp4_avx2, dequant_mxfp4_avx2},
    };
    for (const Entry& e : kEntries) {
        t->gemm[e.dtype] = e.gemm;
        t->gemm_impl[e.dtype] = "avx2";
        if (e.dequant) {
            t->dequant[e.dtype] = e.dequant;
            t->dequant_impl[e.dtype] = "avx2";
        }
    }
    t->quantize_q8x = quantize_q8x_avx2;
    t->quantize_q8x_impl = "avx2";
    t->attention = attention_avx2;
    t->attention_impl = "avx2";
    t->silu_mul = silu_mul_avx2;
    t->silu_mul_impl = "avx2";
}

}  // namespace edge
