// l2_prefetch.cu — cuda_l2_prefetch (cuda_kernels.h): L2 prefetch of a few weight spans as a launch of its own, for
// the places where no kernel of the step streams weights (the attention between the q·k·v and o GEMVs).
// Up to 64 CTAs of one warp, CTA b asking for share b of every span (16 KB per request); then the wait for the
// previous kernel, so that a successor's griddepcontrol.wait, which covers only this kernel, still covers that one.
#include <algorithm>

#include "cuda_kernels.h"
#include "l2_prefetch.cuh"
#include "pdl.cuh"

namespace edge {
namespace {

struct L2Spans {
    CudaL2Span s[kCudaL2MaxSpans];
    int n;
};

__global__ void l2_prefetch_k(const __grid_constant__ L2Spans S) {
    pdl_launch_dependents();
    for (int i = 0; i < S.n; ++i) l2_prefetch_share(S.s[i].p, (uint64_t)S.s[i].bytes, blockIdx.x, gridDim.x, threadIdx.x, 32);
    pdl_wait();
}

}  // namespace

cudaError_t cuda_l2_prefetch(const CudaL2Span* spans, int n, cudaStream_t stream, uint32_t flags) {
    if (n < 0 || n > kCudaL2MaxSpans || (n > 0 && !spans)) return cudaErrorInvalidValue;
    L2Spans S = {};
    int64_t total = 0;
    for (int i = 0; i < n; ++i) {
        if (spans[i].bytes < 0) return cudaErrorInvalidValue;
        S.s[i] = spans[i];
        total += spans[i].bytes;
    }
    S.n = n;
    if (total == 0) return cudaSuccess;
    const int64_t per_cta = 32 * (int64_t)kL2PrefetchRequest;  // one request per thread
    const int grid = (int)std::min<int64_t>(64, std::max<int64_t>(1, (total + per_cta - 1) / per_cta));
    return launch_pdl(l2_prefetch_k, dim3(grid), dim3(32), 0, stream, (flags & kCudaOverlapPrevious) != 0, S);
}

}  // namespace edge
