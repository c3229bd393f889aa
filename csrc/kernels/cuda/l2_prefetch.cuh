// l2_prefetch.cuh — asking L2 for weight bytes before a kernel reads them (issue 9 §5: the decode step's HBM stream
// stalls at every kernel boundary: each GEMV's ramp, the attention between them). A hint only: no result depends
// on it. sm_90+: cp.async.bulk.prefetch.L2 (the TMA unit fetches the range; the issuing thread does not wait);
// below sm_90 nothing (Orin's 4 MB L2 would not hold a layer anyway).
#pragma once

#include <cstdint>

namespace edge {

constexpr uint64_t kL2PrefetchRequest = 16384;  // bytes per prefetch instruction

// Share `part` of `parts` (equal, 16-byte multiples) of [p, p + n) rounded out to whole 16-byte granules (never a
// different page), requested by threads t < nt of the caller in kL2PrefetchRequest pieces.
__device__ __forceinline__ void l2_prefetch_share(const void* p, uint64_t n, uint32_t part, uint32_t parts, uint32_t t,
                                                  uint32_t nt) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (p == nullptr || n == 0 || parts == 0) return;
    const uint64_t g = (uint64_t)__cvta_generic_to_global(p);
    const uint64_t a0 = g & ~15ull, a1 = (g + n + 15) & ~15ull, len = a1 - a0;
    const uint64_t share = ((len + parts - 1) / parts + 15) & ~15ull;
    const uint64_t s0 = min(len, (uint64_t)part * share), s1 = min(len, s0 + share);
    for (uint64_t o = s0 + (uint64_t)t * kL2PrefetchRequest; o < s1; o += (uint64_t)nt * kL2PrefetchRequest) {
        const uint32_t sz = (uint32_t)min(kL2PrefetchRequest, s1 - o);
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(a0 + o), "r"(sz) : "memory");
    }
#endif
}

}  // namespace edge
