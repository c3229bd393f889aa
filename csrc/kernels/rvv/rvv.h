// rvv.h — declarations of the RISC-V Vector (RVV 1.0) kernels (definitions in the *_rvv.cpp files beside
// it, the only files built with V: EDGE_RVV_FLAGS in CMakeLists.txt; the rest of the core is rv64gc).
//
// Every function implements a typedef of kernels.h with exactly that contract (gemm_fn, dequant_fn,
// quantize_q8x_fn, attention_fn, silu_mul_fn) and matches the scalar reference of the same name without
// the suffix (csrc/kernels/ref/): quantize_q8x and dequant bit for bit, gemm / attention / silu_mul within
// the bounds of kernels.h. Vector-length agnostic: every loop takes its vl from vsetvl; the only thing
// assumed of VLEN is V's own minimum (Zvl128b: VLEN >= 128), so e.g. 32 int8 always fit one e8m2 group.
// Only register_rvv.cpp takes their addresses (when AT_HWCAP has 'V'); this header declares, it uses no
// intrinsics, so any file may include it.
#pragma once

#include <cstdint>

#include "../kernels.h"

namespace edge {

#define EDGE_RVV_GEMM(name)                                                                             \
    void name(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X, int64_t x_stride, \
              int64_t ncols, float* Y, int64_t ldy)
#define EDGE_RVV_DEQUANT(name) void name(const void* src, float* y, int64_t n)

// ---- gemm, integer-dot weights x block_q8x (gemm_q8_rvv.cpp, gemm_int4_rvv.cpp, gemm_mxfp_rvv.cpp) ----
EDGE_RVV_GEMM(gemm_q8_0_rvv);
EDGE_RVV_GEMM(gemm_mxint8_rvv);
EDGE_RVV_GEMM(gemm_int4_32_rvv);
EDGE_RVV_GEMM(gemm_int4_64_rvv);
EDGE_RVV_GEMM(gemm_int4_128_rvv);
EDGE_RVV_GEMM(gemm_int4a_32_rvv);
EDGE_RVV_GEMM(gemm_int4a_64_rvv);
EDGE_RVV_GEMM(gemm_int4a_128_rvv);
EDGE_RVV_GEMM(gemm_mxfp6_rvv);
EDGE_RVV_GEMM(gemm_mxfp4_rvv);

// ---- gemm, float weights x f32 activations (gemm_float_rvv.cpp) ----
EDGE_RVV_GEMM(gemm_f32_rvv);
EDGE_RVV_GEMM(gemm_f16_rvv);
EDGE_RVV_GEMM(gemm_bf16_rvv);
EDGE_RVV_GEMM(gemm_mxfp8_rvv);

// ---- dequant (dequant_rvv.cpp) ----
EDGE_RVV_DEQUANT(dequant_f32_rvv);
EDGE_RVV_DEQUANT(dequant_f16_rvv);
EDGE_RVV_DEQUANT(dequant_bf16_rvv);
EDGE_RVV_DEQUANT(dequant_q8_0_rvv);
EDGE_RVV_DEQUANT(dequant_int4_32_rvv);
EDGE_RVV_DEQUANT(dequant_int4_64_rvv);
EDGE_RVV_DEQUANT(dequant_int4_128_rvv);
EDGE_RVV_DEQUANT(dequant_int4a_32_rvv);
EDGE_RVV_DEQUANT(dequant_int4a_64_rvv);
EDGE_RVV_DEQUANT(dequant_int4a_128_rvv);
EDGE_RVV_DEQUANT(dequant_mxint8_rvv);
EDGE_RVV_DEQUANT(dequant_mxfp8_rvv);
EDGE_RVV_DEQUANT(dequant_mxfp6_rvv);
EDGE_RVV_DEQUANT(dequant_mxfp4_rvv);

// ---- the rest ----
void quantize_q8x_rvv(const float* x, block_q8x* y, int64_t n);
void attention_rvv(const float* q, const float* kt, const float* v, int64_t v_stride, int64_t p_begin, int64_t n_pos,
                   int64_t head_dim, float* scratch, float* out);
void silu_mul_rvv(const float* g, const float* u, int64_t n, float* y);

}  // namespace edge
