// cuda_fused.cu — the CUDA backend's fused one-token forms (backend.h "fused forms"; cuda_backend.h): a
// matmul whose input is formed inside the GEMV (kernels/cuda cuda_gemv_fused: f32 → block_q8x per CTA, or
// RMSNorm / act·mul first) over up to three matrices of one dtype per launch, with the residual added in
// its epilogue, and the gated FFN's act·mul in the gate·up GEMV's epilogue (rmsnorm_glu: one warp computes gate
// row r and up row r; gate and up of two dtypes: one fused launch each, then act·mul). Per decoder layer this
// turns rmsnorm, quantize, 3 GEMVs (attention input), quantize, GEMV, add (output), rmsnorm, quantize, 2 GEMVs,
// act·mul, quantize, GEMV, add (FFN) — 17 launches — into 4.
// Results: bit for bit those of the unfused ops (the same device functions; EDGE_CUDA_FUSE=0 runs those),
// which the GPU tests compare. Other cases (T > 1, adapters, float / MX dtypes) take the unfused path.
#include "../../kernels/cuda/cuda_kernels.h"
#include "cuda_backend.h"

namespace edge {

namespace {
bool aligned16(const void* p) { return ((uintptr_t)p & 15) == 0; }
}  // namespace

bool CudaBackend::fusable(const Matrix* const* ws, int nw, int64_t T, const LowRank* const* adapters) const {
    if (!fuse_ || T != 1 || nw < 1) return false;
    for (int i = 0; i < nw; ++i) {
        if (!cuda_gemv_fused_supported(ws[i]->dtype) || ws[i]->cols != ws[0]->cols) return false;
        if (adapters && adapters[i] && adapters[i]->rank > 0) return false;
    }
    return true;
}

// Launches over runs of consecutive matrices of one dtype (at most kCudaFusedMaxMats each); only the first
// writes in.a_out (the later ones form the same input again).
void CudaBackend::gemv_fused(const Matrix* const* ws, float* const* ys, float* const* residual, int nw, const CudaGemvInput& in0) {
    CudaGemvInput in = in0;
    const uint32_t fl = pdl_ ? kCudaOverlapPrevious : 0;
    for (int i = 0; i < nw;) {
        CudaGemvMat m[kCudaFusedMaxMats];
        const uint32_t dt = ws[i]->dtype;
        int k = 0;
        for (; i < nw && k < kCudaFusedMaxMats && ws[i]->dtype == dt; ++i, ++k)
            m[k] = CudaGemvMat{ws[i]->data, (int64_t)ws[i]->row_bytes, ws[i]->rows, ys[i], residual ? residual[i] : nullptr};
        note(cuda_gemv_fused(dt, m, k, ws[0]->cols, in, stream_, fl), "gemv_fused");
        in.a_out = nullptr;
    }
}

void CudaBackend::rmsnorm_matmul(const float* x, const float* w, float eps, int64_t T, float* xn, const Matrix* const* ws,
                                 float* const* ys, int nw, const LowRank* const* adapters) {
    if (xn == x || !aligned16(x) || !aligned16(xn) || !fusable(ws, nw, T, adapters)) {
        Backend::rmsnorm_matmul(x, w, eps, T, xn, ws, ys, nw, adapters);
        return;
    }
    CudaGemvInput in;
    in.kind = kCudaInRmsnorm;
    in.x = x;
    in.norm_w = w;
    in.eps = eps;
    in.a_out = xn;
    gemv_fused(ws, ys, nullptr, nw, in);
}

void CudaBackend::matmul_add(const Matrix& w, const float* in_x, int64_t T, float* y, float* x, const LowRank* adapter) {
    const Matrix* ws = &w;
    if (in_x == x || !aligned16(in_x) || !fusable(&ws, 1, T, &adapter)) {
        Backend::matmul_add(w, in_x, T, y, x, adapter);
        return;
    }
    CudaGemvInput in;
    in.kind = kCudaInF32;
    in.x = in_x;
    gemv_fused(&ws, &x, &x, 1, in);
}

void CudaBackend::rmsnorm_glu(const float* x, const float* w, float eps, int64_t T, float* xn, const Matrix& gate, const Matrix& up,
                              Act act, float* g, float* u, const LowRank* const* adapters) {
    const Matrix* ws[2] = {&gate, &up};
    if (xn == x || !aligned16(x) || !aligned16(xn) || !fusable(ws, 2, T, adapters) || gate.rows != up.rows) {
        Backend::rmsnorm_glu(x, w, eps, T, xn, gate, up, act, g, u, adapters);
        return;
    }
    CudaGemvInput in;
    in.kind = kCudaInRmsnorm;
    in.x = x;
    in.norm_w = w;
    in.eps = eps;
    in.a_out = xn;
    if (gate.dtype != up.dtype) {  // a mixed recipe's layer (gate int4_64, up nl4_32): one launch each, then act·mul
        float* ys[2] = {g, u};
        gemv_fused(ws, ys, nullptr, 2, in);
        note(cuda_act_mul(g, u, gate.rows, (int)act, stream_), "act_mul");
        return;
    }
    note(cuda_gemv_fused_glu(gate.dtype, gate.data, (int64_t)gate.row_bytes, up.data, (int64_t)up.row_bytes, gate.rows, gate.cols,
                             in, (int)act, g, stream_, pdl_ ? kCudaOverlapPrevious : 0),
         "gemv_fused_glu");
}

}  // namespace edge
