// ops.h — the small float ops of a decoder layer (reference implementations; f32 throughout).
// Shapes use: T tokens, D model width, H heads, Hkv kv heads, Dh head dim, P cached positions.
#pragma once

#include <cstdint>

namespace edge {

// y[i] = x[i] / sqrt(mean(x^2) + eps) * w[i], i < n. y may alias x. Accumulates in f32.
void rmsnorm(const float* x, const float* w, float eps, int64_t n, float* y);

// Rotate-half RoPE (Hugging Face convention) of one head vector v[Dh] at position pos, in place:
// pairs (i, i + Dh/2) rotate by pos * theta^(-2i/Dh). `inv_freq` holds theta^(-2i/Dh), i < Dh/2.
void rope_rotate_half(float* v, int64_t head_dim, int64_t pos, const float* inv_freq);

// y[i] = silu(g[i]) * u[i], i < n; y may alias g or u.
void silu_mul(const float* g, const float* u, int64_t n, float* y);

// In-place softmax of x[n] (max-subtracted, f32).
void softmax(float* x, int64_t n);

// One query head against cached keys/values: out[Dh] = softmax(q·K[p]/sqrt(Dh), p < n_pos) · V.
//   k, v: position p's head vector at k + p * stride (floats). scratch: n_pos floats.
void attention_head(const float* q, const float* k, const float* v, int64_t stride, int64_t n_pos,
                    int64_t head_dim, float* scratch, float* out);

}  // namespace edge
