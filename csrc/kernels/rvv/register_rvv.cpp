// register_rvv.cpp — fills the KernelTable slots implemented for the rvv level (RVV 1.0, any VLEN >= 128):
// every gemm and dequant slot, quantize_q8x, attention and silu_mul. dispatch.cpp calls this only when
// AT_HWCAP has the 'V' bit; on boards without vectors (VisionFive 2) the table stays at "ref".
// (Built with V like every *_rvv.cpp file; it only stores function addresses.)
#include "rvv.h"

namespace edge {

void kernels_register_rvv(KernelTable* t) {
    struct Entry {
        DType dtype;
        gemm_fn gemm;
        dequant_fn dequant;
    };
    static const Entry kEntries[] = {
        {EDGE_DTYPE_F32, gemm_f32_rvv, dequant_f32_rvv},
        {EDGE_DTYPE_F16, gemm_f16_rvv, dequant_f16_rvv},
        {EDGE_DTYPE_BF16, gemm_bf16_rvv, dequant_bf16_rvv},
        {EDGE_DTYPE_Q8_0, gemm_q8_0_rvv, dequant_q8_0_rvv},
        {EDGE_DTYPE_INT4_32, gemm_int4_32_rvv, dequant_int4_32_rvv},
        {EDGE_DTYPE_INT4_64, gemm_int4_64_rvv, dequant_int4_64_rvv},
        {EDGE_DTYPE_INT4_128, gemm_int4_128_rvv, dequant_int4_128_rvv},
        {EDGE_DTYPE_INT4A_32, gemm_int4a_32_rvv, dequant_int4a_32_rvv},
        {EDGE_DTYPE_INT4A_64, gemm_int4a_64_rvv, dequant_int4a_64_rvv},
        {EDGE_DTYPE_INT4A_128, gemm_int4a_128_rvv, dequant_int4a_128_rvv},
        {EDGE_DTYPE_MXINT8, gemm_mxint8_rvv, dequant_mxint8_rvv},
        {EDGE_DTYPE_MXFP8, gemm_mxfp8_rvv, dequant_mxfp8_rvv},
        {EDGE_DTYPE_MXFP6, gemm_mxfp6_rvv, dequant_mxfp6_rvv},
        {EDGE_DTYPE_MXFP4, gemm_mxfp4_rvv, dequant_mxfp4_rvv},
    };
    for (const Entry& e : kEntries) {
        t->gemm[e.dtype] = e.gemm;
        t->gemm_impl[e.dtype] = "rvv";
        t->dequant[e.dtype] = e.dequant;
        t->dequant_impl[e.dtype] = "rvv";
    }
    t->quantize_q8x = quantize_q8x_rvv;
    t->quantize_q8x_impl = "rvv";
    t->attention = attention_rvv;
    t->attention_impl = "rvv";
    t->silu_mul = silu_mul_rvv;
    t->silu_mul_impl = "rvv";
}

}  // namespace edge
