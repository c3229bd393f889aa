// cpu_attention.cpp — the KV cache append and attention over it (cpu_backend.h): one kernel-table
// attention call per (token, head), split over the pool, with the kernel of the cache's KvType (steps of
// several tokens go to the blocked kernels first: cpu_attention_block.cpp).
// kv_append converts to the stored type: f16 with round-to-nearest-even (f32_to_f16), q8 per (token,
// kv head) with kv_quantize_q8 (float_ops.h), kivi4 / kivi2 in kivi_cache.h.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu_backend.h"
#include "float_ops.h"
#include "kivi_cache.h"

namespace edge {


void CpuBackend::kv_append(const KvLayer& kv, const float* k, const float* v, int64_t T, int64_t pos0, int64_t Hkv, int64_t Dh) {
    const int64_t Dkv = Hkv * Dh;
    for (int64_t t = 0; t < T; ++t) {
        const int64_t pos = pos0 + t;
        const float* kt = k + t * Dkv;
        const float* vt = v + t * Dkv;
        if (kv_type_kivi(kv.type)) {  // its own ring and blocks (kivi_cache.h)
            kivi_append(kv, kt, vt, pos, Hkv, Dh);
            continue;
        }
        for (int copy = 0; copy < (kv.ring ? 2 : 1); ++copy) {
            const int64_t slot = kv.ring ? pos % kv.ring + copy * kv.ring : pos;
            const int64_t tile_off = (slot / kKTile) * kKTile * Dh + slot % kKTile;  // transposed tiles per kv head
            for (int64_t h = 0; h < Hkv; ++h) {
                const int64_t ko = h * kv.k_head_stride + tile_off;
                switch (kv.type) {
                case KvType::F32: {
                    float* tile = kv.k + ko;
                    for (int64_t i = 0; i < Dh; ++i) tile[i * kKTile] = kt[h * Dh + i];
                    break;
                }
                case KvType::F16: {
                    uint16_t* tile = reinterpret_cast<uint16_t*>(kv.k) + ko;
                    uint16_t* vr = reinterpret_cast<uint16_t*>(kv.v) + slot * Dkv + h * Dh;
                    for (int64_t i = 0; i < Dh; ++i) tile[i * kKTile] = f32_to_f16(kt[h * Dh + i]);
                    for (int64_t i = 0; i < Dh; ++i) vr[i] = f32_to_f16(vt[h * Dh + i]);
                    break;
                }
                case KvType::Q8: {
                    int8_t* tile = reinterpret_cast<int8_t*>(kv.k) + ko;
                    int8_t* vr = reinterpret_cast<int8_t*>(kv.v) + slot * Dkv + h * Dh;
                    kv.k_scale[h * kv.scale_head_stride + slot] = kv_quantize_q8(kt + h * Dh, Dh, tile, kKTile);
                    kv.v_scale[h * kv.scale_head_stride + slot] = kv_quantize_q8(vt + h * Dh, Dh, vr, 1);
                    break;
                }
                case KvType::KIVI4:
                case KvType::KIVI2:
                    break;  // kivi_append above
                }
            }
            if (kv.type == KvType::F32) std::memcpy(kv.v + slot * Dkv, vt, (size_t)Dkv * sizeof(float));
        }
    }
}

void CpuBackend::attention(const float* q, const KvLayer& kv, int64_t T, int64_t pos0, int64_t H, int64_t Hkv, int64_t Dh,
                           int64_t window, float* out) {
    if (attention_blocked(q, kv, T, pos0, H, Hkv, Dh, window, out)) return;  // steps of several tokens
    const int64_t Dq = H * Dh, Dkv = Hkv * Dh, group = H / Hkv;
    const KernelTable* kt = kt_;
    pool_.run(T * H, [&](int64_t b, int64_t e, int tid) {
        float* scratch = scores_ + (size_t)tid * scores_stride_;
        for (int64_t i = b; i < e; ++i) {
            const int64_t t = i / H, h = i % H, kvh = h / group, pos = pos0 + t;
            int64_t p_begin = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0, p_end = pos + 1;
            if (kv.ring) {  // slot space (backend.h): the window is contiguous from slot p_begin % R
                const int64_t b = p_begin / kv.ring * kv.ring;
                p_begin -= b, p_end -= b;
            }
            const float* qh = q + t * Dq + h * Dh;
            float* oh = out + t * Dq + h * Dh;
            const int64_t ko = kvh * kv.k_head_stride, vo = kvh * Dh;
            switch (kv.type) {
            case KvType::F32:
                kt->attention.fn(qh, kv.k + ko, kv.v + vo, Dkv, p_begin, p_end, Dh, scratch, oh);
                break;
            case KvType::F16:
                kt->attention_f16.fn(qh, reinterpret_cast<const uint16_t*>(kv.k) + ko, reinterpret_cast<const uint16_t*>(kv.v) + vo,
                                     Dkv, p_begin, p_end, Dh, scratch, oh);
                break;
            case KvType::Q8: {
                const int64_t so = kvh * kv.scale_head_stride;
                kt->attention_q8.fn(qh, reinterpret_cast<const int8_t*>(kv.k) + ko, kv.k_scale + so,
                                    reinterpret_cast<const int8_t*>(kv.v) + vo, kv.v_scale + so, Dkv, p_begin, p_end, Dh,
                                    scratch, oh);
                break;
            }
            case KvType::KIVI4:
            case KvType::KIVI2: {
                const KiviHead c = kivi_head(kv, kvh, pos, Hkv, Dh);
                (kv.type == KvType::KIVI4 ? kt->attention_kivi4 : kt->attention_kivi2).fn(qh, c, p_begin, p_end, Dh, scratch, oh);
                break;
            }
            }
        }
    });
}

}  // namespace edge
