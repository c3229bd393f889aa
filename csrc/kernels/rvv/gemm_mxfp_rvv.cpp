// gemm_mxfp_rvv.cpp — gemm_fn (kernels.h) for the MX float-code weights with integer dots, mxfp4
// (wc = 2·E2M1, a 16-entry vrgather.vv table) and mxfp6 (wc = 8·E2M3: byte gathers + per-lane shifts
// + a 32-entry magnitude table), × block_q8x with RVV; see rvv_codes.h. The driver (gemm_q8x_rvv.h)
// does vwmul.vv + vwredsum.vs per block and up to 4 activation columns per decoded row. Matches
// gemm_mxfp4_ref / gemm_mxfp6_ref within kernels.h's bound.
#include "gemm_q8x_rvv.h"
#include "rvv.h"

namespace edge {

void gemm_mxfp4_rvv(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                    float* Y, int64_t ldy) {
    rvv::gemm_q8x<rvv::MxFp4>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_mxfp6_rvv(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                    float* Y, int64_t ldy) {
    rvv::gemm_q8x<rvv::MxFp6>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}

}  // namespace edge
