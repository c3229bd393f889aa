// gemm_q8_rvv.cpp — gemm_fn (kernels.h) for the int8-code weights q8_0 and mxint8 × block_q8x with RVV:
// the codes are one 32-byte load per block (wc = q); the driver (gemm_q8x_rvv.h) does vwmul.vv +
// vwredsum.vs per block and up to 4 activation columns per decoded row. Matches gemm_q8_0_ref /
// gemm_mxint8_ref within kernels.h's bound (the block sums are exact, the f32 terms in reference order).
#include "gemm_q8x_rvv.h"
#include "rvv.h"

namespace edge {

void gemm_q8_0_rvv(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                   float* Y, int64_t ldy) {
    rvv::gemm_q8x<rvv::Q8_0>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_mxint8_rvv(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                     float* Y, int64_t ldy) {
    rvv::gemm_q8x<rvv::MxInt8>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}

}  // namespace edge
