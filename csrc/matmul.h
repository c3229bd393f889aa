// matmul.h — the threaded weight × activation product every layer uses (dense, attention, experts).
//
//   ys[i][t * ws[i]->rows + r] = dot(row r of ws[i], x[t])     t < T, for each of the nw matrices
//   x: [T][n] f32 with n = ws[i]->cols for all i (the matrices share their input).
// One parallel dispatch over the rows of all matrices (chunks of 16 rows). When any matrix has an
// int_dot dtype, x is first quantized to block_q8x (bit-exact across kernel levels) into xq, which holds
// T * n / 32 blocks. Results do not depend on the thread count: each output element is one kernel call
// over the same rows and columns whatever the split.
#pragma once

#include <cstdint>

#include "kernels/kernels.h"
#include "matrix.h"
#include "threadpool.h"

namespace edge {

struct MatmulCtx {
    ThreadPool* pool = nullptr;
    const KernelTable* kt = nullptr;
    block_q8x* xq = nullptr;  // scratch: T * max(cols) / 32 blocks
};

void matmul(const MatmulCtx& c, const Matrix* const* ws, float* const* ys, int nw, const float* x, int64_t T);

}  // namespace edge
