// gemm_nl4_rvv.cpp — gemm_fn (kernels.h) for nl4_32 (wc = kNl4Values[q], a 16-entry int8
// table of quant.h looked up with vrgather.vv on the split-half nibbles; sw = f16 d) × block_q8x with
// RVV; see rvv_codes.h. |wc| <= 127, so wc · x.q fits vwmul's int16. The driver (gemm_q8x_rvv.h) does
// vwmul.vv + vwredsum.vs per block and up to 4 activation columns per decoded row. Matches
// gemm_nl4_32_ref within kernels.h's bound.
#include "gemm_q8x_rvv.h"
#include "rvv.h"

namespace edge {

void gemm_nl4_32_rvv(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                        float* Y, int64_t ldy) {
    rvv::gemm_q8x<rvv::Nl4>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}

}  // namespace edge
