// kivi_cache.h — the KIVI KV cache's writes and views for the CPU backend (backend.h KvLayer, kernels.h
// attention_kivi_fn). kivi_append stores one position in the f16 residual ring and, when a group of 32
// positions has left the residual window (kivi_quantized grew), quantizes that group from the ring: K per
// (kv head, channel) over the group's 32 positions — but the kivi_out channels of largest magnitude of each kv
// head (kv_kivi_outlier_channels), kept in f16 (kernels.h KiviOutlier) beside all-zero blocks — V per (position,
// kv head, 32 channels) (kv_quantize_kivi4 / kv_quantize_kivi2, float_ops.h); the first group (the attention sinks) is instead
// copied in f16 beside the ring (backend.h KvLayer kivi_sink) and never quantized. kivi_head is the kernel's view of one kv head for the
// query at position pos.
#pragma once

#include <cstdint>

#include "../backend.h"
#include "../../kernels/kernels.h"

namespace edge {

// k, v: the position's [Hkv·Dh] rows (f32).
void kivi_append(const KvLayer& kv, const float* k, const float* v, int64_t pos, int64_t Hkv, int64_t Dh);
KiviHead kivi_head(const KvLayer& kv, int64_t kvh, int64_t pos, int64_t Hkv, int64_t Dh);

}  // namespace edge
