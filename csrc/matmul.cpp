// matmul.cpp — see matmul.h.
#include "matmul.h"

#include <algorithm>

namespace edge {

void matmul(const MatmulCtx& c, const Matrix* const* ws, float* const* ys, int nw, const float* x, int64_t T) {
    const int64_t n = ws[0]->cols;
    bool need_q8 = false;
    int64_t total = 0;
    for (int i = 0; i < nw; ++i) {
        need_q8 |= dtype_traits(ws[i]->dtype).int_dot;
        total += ws[i]->rows;
    }
    if (need_q8)
        for (int64_t t = 0; t < T; ++t) c.kt->quantize_q8x.fn(x + t * n, c.xq + t * (n / 32), n);
    const KernelTable* kt = c.kt;
    const block_q8x* xq = c.xq;
    c.pool->run(total, [&](int64_t b, int64_t e, int) {
        int64_t base = 0;
        for (int i = 0; i < nw; ++i) {
            const Matrix& w = *ws[i];
            int64_t lo = std::max(b, base), hi = std::min(e, base + w.rows);
            if (lo < hi) {
                int64_t r0 = lo - base;
                bool q8 = dtype_traits(w.dtype).int_dot;
                kt->gemm[w.dtype].fn(w.data + (size_t)r0 * w.row_bytes, (int64_t)w.row_bytes, hi - lo, n,
                                  q8 ? (const void*)xq : (const void*)x, q8 ? n / 32 : n, T, ys[i] + r0, w.rows);
            }
            base += w.rows;
        }
    }, 16);
}

}  // namespace edge
