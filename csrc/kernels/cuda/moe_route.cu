// moe_route.cu — cuda_moe_route (cuda_kernels.h): one token's routing on the device, moe_route's arithmetic
// (moe_route_math.h). One warp: lane 0 runs the top-k insertion over the E logits (as the host does), the lanes form
// the softmax numerators in parallel into shared memory, lane 0 sums them in expert order and writes ids / weights.
#include "cuda_kernels.h"
#include "moe_route_math.h"
#include "pdl.cuh"

namespace edge {
namespace {

__global__ void moe_route_k(const float* __restrict__ logits, int E, int k, bool softmax, bool norm_topk, int32_t* ids,
                            float* w) {
    __shared__ float ex[kCudaMoeMaxExperts];
    __shared__ int32_t top[kCudaMoeMaxUsed];
    pdl_launch_dependents();
    pdl_wait();  // the router's logits
    const int lane = threadIdx.x;
    if (lane == 0) moe_math::topk(logits, E, k, top);
    __syncwarp();
    const float mx = logits[top[0]];
    if (softmax)
        for (int e = lane; e < E; e += 32) ex[e] = moe_math::softmax_term(logits[e], mx);
    __syncwarp();
    if (lane != 0) return;
    float sum = 0.f;
    if (softmax)
        for (int e = 0; e < E; ++e) sum += ex[e];
    for (int j = 0; j < k; ++j) {
        ids[j] = top[j];
        w[j] = softmax ? ex[top[j]] / sum : moe_math::sigmoid(logits[top[j]]);
    }
    if (norm_topk) moe_math::normalize(w, k);
}

}  // namespace

cudaError_t cuda_moe_route(const float* logits, int64_t E, int64_t k, bool softmax, bool norm_topk, int32_t* ids, float* w,
                           cudaStream_t stream, uint32_t flags) {
    if (E < 1 || E > kCudaMoeMaxExperts || k < 1 || k > E || k > kCudaMoeMaxUsed || !logits || !ids || !w) return cudaErrorInvalidValue;
    return launch_pdl(moe_route_k, dim3(1), dim3(32), 0, stream, (flags & kCudaOverlapPrevious) != 0, logits, (int)E, (int)k, softmax, norm_topk, ids, w);
}

}  // namespace edge
