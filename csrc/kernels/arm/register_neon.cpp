// register_neon.cpp — fills the KernelTable slots implemented for the neon level (armv8.0 ASIMD, e.g.
// Raspberry Pi 4's Cortex-A72): every gemm and dequant but f32 dequant (a memcpy), quantize_q8x,
// attention and silu_mul. Slots not set here keep the reference (dispatch.cpp copies the level below).
#include "arm.h"

namespace edge {

void kernels_register_neon(KernelTable* t) {
    struct Entry {
        DType dtype;
        gemm_fn gemm;
        dequant_fn dequant;  // nullptr: keep the reference
    };
    static const Entry kEntries[] = {
        {EDGE_DTYPE_F32, gemm_f32_neon, nullptr},
        {EDGE_DTYPE_F16, gemm_f16_neon, dequant_f16_neon},
        {EDGE_DTYPE_BF16, gemm_bf16_neon, dequant_bf16_neon},
        {EDGE_DTYPE_Q8_0, gemm_q8_0_neon, dequant_q8_0_neon},
        {EDGE_DTYPE_INT4_32, gemm_int4_32_neon, dequant_int4_32_neon},
        {EDGE_DTYPE_INT4_64, gemm_int4_64_neon, dequant_int4_64_neon},
        {EDGE_DTYPE_INT4_128, gemm_int4_128_neon, dequant_int4_128_neon},
        {EDGE_DTYPE_INT4A_32, gemm_int4a_32_neon, dequant_int4a_32_neon},
        {EDGE_DTYPE_INT4A_64, gemm_int4a_64_neon, dequant_int4a_64_neon},
        {EDGE_DTYPE_INT4A_128, gemm_int4a_128_neon, dequant_int4a_128_neon},
        {EDGE_DTYPE_MXINT8, gemm_mxint8_neon, dequant_mxint8_neon},
        {EDGE_DTYPE_MXFP8, gemm_mxfp8_neon, dequant_mxfp8_neon},
        {EDGE_DTYPE_MXFP6, gemm_mxfp6_neon, dequant_mxfp6_neon},
        {EDGE_DTYPE_MXFP4, gemm_mxfp4_neon, dequant_mxfp4_neon},
    };
    for (const Entry& e : kEntries) {
        t->gemm[e.dtype] = e.gemm;
        t->gemm_impl[e.dtype] = "neon";
        if (e.dequant) {
            t->dequant[e.dtype] = e.dequant;
            t->dequant_impl[e.dtype] = "neon";
        }
    }
    t->quantize_q8x = quantize_q8x_neon;
    t->quantize_q8x_impl = "neon";
    t->attention = attention_neon;
    t->attention_impl = "neon";
    t->silu_mul = silu_mul_neon;
    t->silu_mul_impl = "neon";
}

}  // namespace edge
