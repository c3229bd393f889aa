// cuda_fused.cu — the CUDA backend's fused one-token forms (backend.h "fused forms"; cuda_backend.h): a
// matmul whose input is formed inside the GEMV (kernels/cuda cuda_gemv_fused: f32 → block_q8x per CTA, or
// RMSNorm / act·mul first) over up to three matrices of one dtype per launch, with the residual added in
// its epilogue. Per decoder layer this turns rmsnorm, quantize, 3 GEMVs (attention input), quantize, GEMV,
// add (output), rmsnorm, quantize, 2 GEMVs, act·mul, quantize, GEMV, add (FFN) — 17 launches — into 4 (5 where the FFN is wider than kFusedActMaxN).
// Results: bit for bit those of the unfused ops (the same device functions; EDGE_CUDA_FUSE=0 runs those),
// which the GPU tests compare. Other cases (T > 1, adapters, float / MX dtypes) take the unfused path.
#include "../../kernels/cuda/cuda_kernels.h"
#include "cuda_backend.h"

namespace edge {

namespace {
bool aligned16(const void* p) { return ((uintptr_t)p & 15) == 0; }
// act·mul inside the down GEMV costs every CTA n activations (expf, a division): up to this width it is cheaper
// than a launch of its own (the 135M shape: 1536); beyond it (the 1.2B shape: 8192) cuda_act_mul runs first.
constexpr int64_t kFusedActMaxN = 4096;
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

void CudaBackend::act_mul_matmul_add(float* g, const float* u, Act act, const Matrix& w, int64_t T, float* y, float* x,
                                     const LowRank* adapter) {
    const Matrix* ws = &w;
    if (g == x || u == x || !aligned16(g) || !aligned16(u) || !fusable(&ws, 1, T, &adapter)) {
        Backend::act_mul_matmul_add(g, u, act, w, T, y, x, adapter);
        return;
    }
    if (w.cols > kFusedActMaxN) {  // act·mul on its own, then the quantize and the residual in the GEMV
        act_mul(g, u, T * w.cols, act);
        matmul_add(w, g, T, y, x, adapter);
        return;
    }
    CudaGemvInput in;
    in.kind = kCudaInActMul;
    in.x = g;
    in.u = u;
    in.act = (int)act;
    gemv_fused(&ws, &x, &x, 1, in);
}

}  // namespace edge
