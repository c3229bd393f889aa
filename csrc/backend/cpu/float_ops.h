// float_ops.h — the small per-row float ops of the CPU backend (f32 throughout): pure, plain loops the
// compiler can vectorise. Attention, the one whose cost grows with the context, is a kernel-table op
// (kernels/kernels.h).
// Shapes use: T tokens, D model width, H heads, Hkv kv heads, Dh head dim, P cached positions.
#pragma once

#include <cstdint>

#include "../../kernels/kernels.h"

namespace edge {

// y[i] = x[i] / sqrt(mean(x^2) + eps) * w[i] (w = nullptr: no weight), i < n. y may alias x. f32.
void rmsnorm(const float* x, const float* w, float eps, int64_t n, float* y);

// cos/sin[i] = cos/sin(pos * inv_freq[i]), i < Dh/2: the rotation of one position, shared by all heads.
void rope_angles(int64_t pos, const float* inv_freq, int64_t half, float* cos_out, float* sin_out);
// Rotate-half RoPE (Hugging Face convention) of one head vector v[Dh], in place: pairs (i, i + Dh/2)
// rotate by the angles of rope_angles.
void rope_rotate_half(float* v, int64_t head_dim, const float* cos, const float* sin);

// g[i] = gelu_tanh(g[i]) · u[i], i < n: 0.5·g·(1 + tanh(0.7978845608·(g + 0.044715·g³))) in f32 (tanhf),
// PyTorch's gelu(approximate="tanh") (the GeGLU of Gemma).
void gelu_tanh_mul(float* g, const float* u, int64_t n);

// The q8 KV form of one head vector x[Dh]: d = amax / 127, id = 1 / d (0 for an all-zero vector),
// q[i · q_step] = clamp(nearbyint(x[i] · id), -127, 127) (quantize_q8x's rounding steps); returns d.
float kv_quantize_q8(const float* x, int64_t Dh, int8_t* q, int64_t q_step);

// The KIVI block (kernels.h) of 32 values x[0..32): asymmetric over [min, max] with 2^b - 1 steps, scale and
// min stored as f16 (round-to-nearest-even) and the codes computed with the stored ones: d = f16(max - min) /
// (2^b - 1)), m = f16(min), c_j = clamp(nearbyint((x_j - m) · (1 / d)), 0, 2^b - 1) (c = 0 where d = 0). So
// |x_j - (d · c_j + m)| <= d / 2 plus the f16 rounding of m (clamped codes: at most |m - min| more).
void kv_quantize_kivi4(const float* x, block_kivi4* b);
void kv_quantize_kivi2(const float* x, block_kivi2* b);

// The K outlier channels of one KIVI group (kernels.h KiviOutlier): the n_out (<= Dh) channels of largest amax[i]
// (max over the group's positions of |K_p[i]|), ties to the lower channel, into ch[0..n_out) in ascending order.
void kv_kivi_outlier_channels(const float* amax, int64_t Dh, int64_t n_out, uint16_t* ch);
// One kv head's K of one KIVI group: x[i·32 + j] = channel i at the group's position j (f16 values: the ring's),
// i < Dh, into the blocks b[0..Dh) — kv_quantize_kivi4 / 2 per channel, except the n_out outlier channels
// (kv_kivi_outlier_channels of max_j |x|), whose blocks are all zero and whose values go to ko[0..n_out) as f16
// (exact for f16 values), in ascending channel order.
void kv_quantize_kivi_k_group(const float* x, int64_t Dh, int64_t n_out, block_kivi4* b, KiviOutlier* ko);
void kv_quantize_kivi_k_group(const float* x, int64_t Dh, int64_t n_out, block_kivi2* b, KiviOutlier* ko);

}  // namespace edge
