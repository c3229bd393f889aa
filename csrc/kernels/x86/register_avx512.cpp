// register_avx512.cpp — fills the KernelTable slots implemented for the avx512 level (F+BW+VL+DQ).
// Slots not set here keep the avx2 entries (dispatch.cpp copies the table of the level below): the
// integer-dot gemms (VNNI ones are at the avx512vnni level) and dequant (memory-bound; AVX2 suffices).
#include "x86.h"

namespace edge {

void kernels_register_avx512(KernelTable* t) {
    struct Entry {
        DType dtype;
        gemm_fn gemm;
    };
    static const Entry kGemm[] = {
        {EDGE_DTYPE_F32, gemm_f32_avx512},
        {EDGE_DTYPE_F16, gemm_f16_avx512},
        {EDGE_DTYPE_BF16, gemm_bf16_avx512},
        {EDGE_DTYPE_MXFP8, gemm_mxfp8_avx512},
    };
    for (const Entry& e : kGemm) {
        t->gemm[e.dtype] = e.gemm;
        t->gemm_impl[e.dtype] = "avx512";
    }
    t->quantize_q8x = quantize_q8x_avx512;
    t->quantize_q8x_impl = "avx512";
    t->attention = attention_avx512;
    t->attention_impl = "avx512";
    t->silu_mul = silu_mul_avx512;
    t->silu_mul_impl = "avx512";
}

}  // namespace edge
