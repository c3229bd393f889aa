// cpu_attention.cpp — the KV cache append and attention over it (cpu_backend.h): one kernel-table
// attention call per (token, head), split over the pool.
#include <algorithm>
#include <cstring>

#include "cpu_backend.h"

namespace edge {

void CpuBackend::kv_append(const KvLayer& kv, const float* k, const float* v, int64_t T, int64_t pos0, int64_t Hkv, int64_t Dh) {
    const int64_t Dkv = Hkv * Dh;
    for (int64_t t = 0; t < T; ++t) {
        const int64_t pos = pos0 + t;
        const float* kt = k + t * Dkv;
        for (int64_t h = 0; h < Hkv; ++h) {  // transposed tiles of kKTile positions per kv head
            float* tile = kv.k + h * kv.k_head_stride + (pos / kKTile) * kKTile * Dh + pos % kKTile;
            for (int64_t i = 0; i < Dh; ++i) tile[i * kKTile] = kt[h * Dh + i];
        }
        std::memcpy(kv.v + pos * Dkv, v + t * Dkv, (size_t)Dkv * sizeof(float));
    }
}

void CpuBackend::attention(const float* q, const KvLayer& kv, int64_t T, int64_t pos0, int64_t H, int64_t Hkv, int64_t Dh,
                           int64_t window, float* out) {
    const int64_t Dq = H * Dh, Dkv = Hkv * Dh, group = H / Hkv;
    const attention_fn fn = kt_->attention.fn;
    pool_.run(T * H, [&](int64_t b, int64_t e, int tid) {
        float* scratch = scores_ + (size_t)tid * shape_.ctx;
        for (int64_t i = b; i < e; ++i) {
            const int64_t t = i / H, h = i % H, kvh = h / group, pos = pos0 + t;
            const int64_t p_begin = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
            fn(q + t * Dq + h * Dh, kv.k + kvh * kv.k_head_stride, kv.v + kvh * Dh, Dkv, p_begin, pos + 1, Dh, scratch,
               out + t * Dq + h * Dh);
        }
    });
}

}  // namespace edge
