// gemm_kquant_rvv.cpp — gemm_fn (kernels.h) for the dtypes imported exactly from GGML files, q5_0
// (wc = q - 16, sw = f16 d), q4_k (wc = q, sw = d·sc_j and m = -dmin·m_j per 32-element sub-block) and
// q6_k (wc = sc·(q - 32) with sc per 16 elements, sw = f16 d), × block_q8x with RVV; the decoders are in
// rvv_codes.h. The driver (gemm_q8x_rvv.h) does vwmul.vv + vwredsum.vs per block (q6_k: one reduction per
// 16-element half) and up to 4 activation columns per decoded row. Matches gemm_q5_0_ref / gemm_q4_k_ref /
// gemm_q6_k_ref within kernels.h's bound (exact block sums, the f32 terms in reference order).
#include "gemm_q8x_rvv.h"
#include "rvv.h"

namespace edge {

void gemm_q5_0_rvv(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                   float* Y, int64_t ldy) {
    rvv::gemm_q8x<rvv::Q5_0>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_q4_k_rvv(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                   float* Y, int64_t ldy) {
    rvv::gemm_q8x<rvv::Q4K>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_q6_k_rvv(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                   float* Y, int64_t ldy) {
    rvv::gemm_q8x<rvv::Q6K>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}

}  // namespace edge
