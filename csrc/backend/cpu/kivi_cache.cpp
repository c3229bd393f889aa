// kivi_cache.cpp — see kivi_cache.h.
#include "kivi_cache.h"

#include <cstring>
#include <vector>

#include "../../common.h"
#include "float_ops.h"

namespace edge {

namespace {

// the sink group (positions 0..31, ring slots 0..31: the ring holds more than 32 slots) copied to the slots
// after the ring, f16 as it is
void copy_sink(const KvLayer& kv, int64_t Hkv, int64_t Dh) {
    const int64_t R = kv.kivi_ring, Dkv = Hkv * Dh;
    uint16_t* k = reinterpret_cast<uint16_t*>(kv.k);
    uint16_t* v = reinterpret_cast<uint16_t*>(kv.v);
    for (int64_t h = 0; h < Hkv; ++h)
        std::memcpy(k + h * kv.k_head_stride + R * Dh, k + h * kv.k_head_stride, (size_t)(kKiviGroup * Dh) * 2);
    std::memcpy(v + R * Dkv, v, (size_t)(kKiviGroup * Dkv) * 2);
}

template <class B>
void quantize_group(const KvLayer& kv, int64_t g, int64_t Hkv, int64_t Dh, void (*quant)(const float*, B*)) {
    const int64_t R = kv.kivi_ring, Dkv = Hkv * Dh, p0 = g * kKiviGroup, g0 = kv.kivi_sink / kKiviGroup;
    const uint16_t* kr = reinterpret_cast<const uint16_t*>(kv.k);
    const uint16_t* vr = reinterpret_cast<const uint16_t*>(kv.v);
    B* kq = static_cast<B*>(kv.kq);
    B* vq = static_cast<B*>(kv.vq);
    std::vector<float> x((size_t)(Dh * kKiviGroup));  // one kv head's group: channel i's 32 positions at i·32
    for (int64_t h = 0; h < Hkv; ++h) {
        for (int64_t i = 0; i < Dh; ++i)
            for (int64_t j = 0; j < kKiviGroup; ++j) {
                const int64_t s = (p0 + j) % R;
                x[(size_t)(i * kKiviGroup + j)] =
                    f16_to_f32(kr[h * kv.k_head_stride + (s / kKTile) * kKTile * Dh + i * kKTile + s % kKTile]);
            }
        kv_quantize_kivi_k_group(x.data(), Dh, kv.kivi_out, kq + h * kv.kq_head_stride + (g - g0) * Dh,
                                 static_cast<KiviOutlier*>(kv.ko) + h * kv.ko_head_stride + (g - g0) * kv.kivi_out);
    }
    for (int64_t j = 0; j < kKiviGroup; ++j) {
        const uint16_t* row = vr + ((p0 + j) % R) * Dkv;
        for (int64_t c = 0; c < Dkv / kKiviGroup; ++c) {
            for (int64_t t = 0; t < kKiviGroup; ++t) x[(size_t)t] = f16_to_f32(row[c * kKiviGroup + t]);
            quant(x.data(), vq + (p0 + j - kv.kivi_sink) * (Dkv / kKiviGroup) + c);
        }
    }
}

}  // namespace

void kivi_append(const KvLayer& kv, const float* k, const float* v, int64_t pos, int64_t Hkv, int64_t Dh) {
    const int64_t Dkv = Hkv * Dh, s = pos % kv.kivi_ring;
    const int64_t tile_off = (s / kKTile) * kKTile * Dh + s % kKTile;
    uint16_t* kr = reinterpret_cast<uint16_t*>(kv.k);
    uint16_t* vr = reinterpret_cast<uint16_t*>(kv.v) + s * Dkv;
    for (int64_t h = 0; h < Hkv; ++h)
        for (int64_t i = 0; i < Dh; ++i) kr[h * kv.k_head_stride + tile_off + i * kKTile] = f32_to_f16(k[h * Dh + i]);
    for (int64_t i = 0; i < Dkv; ++i) vr[i] = f32_to_f16(v[i]);
    const int64_t nq = kivi_quantized(pos + 1);
    if (nq == kivi_quantized(pos)) return;
    const int64_t g = nq / kKiviGroup - 1;  // the group that just left the residual window
    if (g * kKiviGroup < kv.kivi_sink) copy_sink(kv, Hkv, Dh);
    else if (kv.type == KvType::KIVI4) quantize_group<block_kivi4>(kv, g, Hkv, Dh, kv_quantize_kivi4);
    else quantize_group<block_kivi2>(kv, g, Hkv, Dh, kv_quantize_kivi2);
}

KiviHead kivi_head(const KvLayer& kv, int64_t kvh, int64_t pos, int64_t Hkv, int64_t Dh) {
    const int64_t bsize = kv.type == KvType::KIVI4 ? (int64_t)sizeof(block_kivi4) : (int64_t)sizeof(block_kivi2);
    KiviHead c;
    c.kq = static_cast<const char*>(kv.kq) + kvh * kv.kq_head_stride * bsize;
    c.vq = static_cast<const char*>(kv.vq) + kvh * (Dh / kKiviGroup) * bsize;
    c.vq_stride = Hkv * Dh / kKiviGroup;
    c.n_quant = kivi_quantized(pos + 1);
    c.kr = reinterpret_cast<const uint16_t*>(kv.k) + kvh * kv.k_head_stride;
    c.vr = reinterpret_cast<const uint16_t*>(kv.v) + kvh * Dh;
    c.vr_stride = Hkv * Dh;
    c.ring = kv.kivi_ring;
    if (kv.kivi_out) {
        c.ko = static_cast<const KiviOutlier*>(kv.ko) + kvh * kv.ko_head_stride;
        c.n_out = kv.kivi_out;
    }
    if (kv.kivi_sink && c.n_quant > 0) {
        c.n_sink = kv.kivi_sink;
        c.ks = c.kr + kv.kivi_ring * Dh;
        c.vs = c.vr + kv.kivi_ring * c.vr_stride;
    }
    return c;
}

}  // namespace edge
