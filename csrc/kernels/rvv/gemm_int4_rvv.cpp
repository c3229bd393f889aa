// gemm_int4_rvv.cpp — gemm_fn (kernels.h) for int4_32/64/128 (wc = q - 8) and int4a_32/64/128 (wc = q,
// plus m · x.s per activation block) × block_q8x with RVV. Split-half nibbles: for B = 64/128 an
// activation block's 32 codes are the low or high nibbles of 32 consecutive bytes (one load, one vand
// or vsrl); for B = 32 the 16 low then 16 high nibbles (one vslideup). The driver (gemm_q8x_rvv.h) does
// vwmul.vv + vwredsum.vs per block and up to 4 activation columns per decoded row. Matches
// gemm_int4*_ref within kernels.h's bound.
#include "gemm_q8x_rvv.h"
#include "rvv.h"

namespace edge {

#define EDGE_RVV_INT4(name, F)                                                                                   \
    void name(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols, float* Y, \
              int64_t ldy) {                                                                                     \
        rvv::gemm_q8x<F>(W, ws, rows, n, X, xs, ncols, Y, ldy);                                                  \
    }

EDGE_RVV_INT4(gemm_int4_32_rvv, rvv::Int4<32>)
EDGE_RVV_INT4(gemm_int4_64_rvv, rvv::Int4<64>)
EDGE_RVV_INT4(gemm_int4_128_rvv, rvv::Int4<128>)
EDGE_RVV_INT4(gemm_int4a_32_rvv, rvv::Int4a<32>)
EDGE_RVV_INT4(gemm_int4a_64_rvv, rvv::Int4a<64>)
EDGE_RVV_INT4(gemm_int4a_128_rvv, rvv::Int4a<128>)

#undef EDGE_RVV_INT4

}  // namespace edge
