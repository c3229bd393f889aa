// register_ref.cpp — fills every KernelTable slot with the scalar reference (csrc/kernels/ref/ref.h).
// Every dtype but i32 has a dequant and a gemm; higher levels overwrite the slots they implement.
#include "ref.h"

namespace edge {

void kernels_register_ref(KernelTable* t) {
    t->level = "ref";
    struct Entry {
        DType dtype;
        gemm_fn gemm;
        dequant_fn dequant;
    };
    static const Entry kEntries[] = {
        {EDGE_DTYPE_F32, gemm_f32_ref, dequant_f32_ref},
        {EDGE_DTYPE_F16, gemm_f16_ref, dequant_f16_ref},
        {EDGE_DTYPE_BF16, gemm_bf16_ref, dequant_bf16_ref},
        {EDGE_DTYPE_Q8_0, gemm_q8_0_ref, dequant_q8_0_ref},
        {EDGE_DTYPE_INT4_32, gemm_int4_32_ref, dequant_int4_32_ref},
        {EDGE_DTYPE_INT4_64, gemm_int4_64_ref, dequant_int4_64_ref},
        {EDGE_DTYPE_INT4_128, gemm_int4_128_ref, dequant_int4_128_ref},
        {EDGE_DTYPE_INT4A_32, gemm_int4a_32_ref, dequant_int4a_32_ref},
        {EDGE_DTYPE_INT4A_64, gemm_int4a_64_ref, dequant_int4a_64_ref},
        {EDGE_DTYPE_INT4A_128, gemm_int4a_128_ref, dequant_int4a_128_ref},
        {EDGE_DTYPE_MXINT8, gemm_mxint8_ref, dequant_mxint8_ref},
        {EDGE_DTYPE_MXFP8, gemm_mxfp8_ref, dequant_mxfp8_ref},
        {EDGE_DTYPE_MXFP6, gemm_mxfp6_ref, dequant_mxfp6_ref},
        {EDGE_DTYPE_MXFP4, gemm_mxfp4_ref, dequant_mxfp4_ref},
    };
    for (const Entry& e : kEntries) {
        t->gemm[e.dtype] = e.gemm;
        t->dequant[e.dtype] = e.dequant;
        t->gemm_impl[e.dtype] = "ref";
        t->dequant_impl[e.dtype] = "ref";
    }
    t->quantize_q8x = quantize_q8x_ref;
    t->quantize_q8x_impl = "ref";
    t->attention = attention_ref;
    t->attention_impl = "ref";
    t->silu_mul = silu_mul_ref;
    t->silu_mul_impl = "ref";
}

}  // namespace edge
