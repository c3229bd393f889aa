// cpu_matmul.cpp — the threaded weight × activation product (cpu_backend.h, Backend::matmul):
//   ys[i][t · ws[i]->rows + r] = dot(row r of ws[i], x[t])     t < T, for each of the nw matrices
// One parallel dispatch over the rows of all matrices (chunks of 16 rows). When any matrix has an
// int_dot dtype, x is first quantized to block_q8x (bit-exact across kernel levels). Results do not
// depend on the thread count: each output element is one kernel call over the same rows and columns
// whatever the split. A LowRank term adds scale · B·(A·x) after the product: A·x [T, r] with the f32
// gemm kernel, then each output row's dot with B in f32 over j < r in order.
#include <algorithm>

#include "cpu_backend.h"

namespace edge {

void CpuBackend::matmul(const Matrix* const* ws, float* const* ys, int nw, const float* x, int64_t T,
                        const LowRank* const* adapters) {
    const int64_t n = ws[0]->cols;
    bool need_q8 = false;
    int64_t total = 0;
    for (int i = 0; i < nw; ++i) {
        need_q8 |= dtype_traits(ws[i]->dtype).int_dot;
        total += ws[i]->rows;
    }
    if (need_q8)
        for (int64_t t = 0; t < T; ++t) kt_->quantize_q8x.fn(x + t * n, xq_ + t * (n / 32), n);
    const KernelTable* kt = kt_;
    const block_q8x* xq = xq_;
    pool_.run(total, [&](int64_t b, int64_t e, int) {
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
    if (adapters)
        for (int i = 0; i < nw; ++i)
            if (adapters[i] && adapters[i]->rank > 0) low_rank(*adapters[i], ws[i]->rows, x, n, T, ys[i]);
}

void CpuBackend::low_rank(const LowRank& a, int64_t rows, const float* x, int64_t n, int64_t T, float* y) {
    const int64_t r = a.rank;
    // lr_[t · r + j] = dot(A row j, x[t])
    kt_->gemm[EDGE_DTYPE_F32].fn(a.a, n * (int64_t)sizeof(float), r, n, x, n, T, lr_, r);
    const float* lr = lr_;
    pool_.run(rows, [&](int64_t b, int64_t e, int) {
        for (int64_t o = b; o < e; ++o) {
            const float* brow = a.b + o * r;
            for (int64_t t = 0; t < T; ++t) {
                const float* u = lr + t * r;
                float s = 0.f;
                for (int64_t j = 0; j < r; ++j) s += brow[j] * u[j];
                y[t * rows + o] += a.scale * s;
            }
        }
    }, 16);
}

}  // namespace edge
