// float_ops.cpp — see float_ops.h.
#include "float_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "../../common.h"

namespace edge {

void rmsnorm(const float* x, const float* w, float eps, int64_t n, float* y) {
    float ss = 0.f;
    for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
    float scale = 1.0f / std::sqrt(ss / (float)n + eps);
    if (!w) {
        for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale;
        return;
    }
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * w[i];
}

void rope_angles(int64_t pos, const float* inv_freq, int64_t half, float* cos_out, float* sin_out) {
    for (int64_t i = 0; i < half; ++i) {
        float angle = (float)pos * inv_freq[i];
        cos_out[i] = std::cos(angle);
        sin_out[i] = std::sin(angle);
    }
}

void rope_rotate_half(float* v, int64_t head_dim, const float* cos, const float* sin) {
    int64_t half = head_dim / 2;
    for (int64_t i = 0; i < half; ++i) {
        float a = v[i], b = v[i + half];
        v[i] = a * cos[i] - b * sin[i];
        v[i + half] = b * cos[i] + a * sin[i];
    }
}

void gelu_tanh_mul(float* g, const float* u, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const float x = g[i];
        g[i] = 0.5f * x * (1.0f + std::tanh(0.7978845608028654f * (x + 0.044715f * x * x * x))) * u[i];
    }
}

float kv_quantize_q8(const float* x, int64_t Dh, int8_t* q, int64_t q_step) {
    float amax = 0.f;
    for (int64_t i = 0; i < Dh; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127.0f;
    const float id = d != 0.f ? 1.0f / d : 0.f;
    for (int64_t i = 0; i < Dh; ++i) {
        int c = (int)std::nearbyintf(x[i] * id);
        q[i * q_step] = (int8_t)(c < -127 ? -127 : (c > 127 ? 127 : c));
    }
    return d;
}

namespace {

// codes of 32 values into c[32]; writes the block's d and m
void kivi_codes(const float* x, int qmax, uint16_t* dh, uint16_t* mh, uint8_t* c) {
    float lo = x[0], hi = x[0];
    for (int j = 1; j < kKiviGroup; ++j) lo = std::min(lo, x[j]), hi = std::max(hi, x[j]);
    *dh = f32_to_f16((hi - lo) / (float)qmax);
    *mh = f32_to_f16(lo);
    const float d = f16_to_f32(*dh), m = f16_to_f32(*mh);
    const float id = d != 0.f ? 1.0f / d : 0.f;
    for (int j = 0; j < kKiviGroup; ++j) {
        const float r = std::nearbyintf((x[j] - m) * id);
        c[j] = (uint8_t)(r > (float)qmax ? qmax : (r > 0.f ? (int)r : 0));
    }
}

}  // namespace

void kv_quantize_kivi4(const float* x, block_kivi4* b) {
    uint8_t c[kKiviGroup];
    kivi_codes(x, 15, &b->d, &b->m, c);
    for (int j = 0; j < 16; ++j) b->qs[j] = (uint8_t)(c[j] | (c[j + 16] << 4));
}

void kv_quantize_kivi2(const float* x, block_kivi2* b) {
    uint8_t c[kKiviGroup];
    kivi_codes(x, 3, &b->d, &b->m, c);
    for (int j = 0; j < 8; ++j) b->qs[j] = (uint8_t)(c[j] | (c[j + 8] << 2) | (c[j + 16] << 4) | (c[j + 24] << 6));
}

void kv_kivi_outlier_channels(const float* amax, int64_t Dh, int64_t n_out, uint16_t* ch) {
    int64_t n = 0;  // ch[0..n): the largest so far, largest first (an insertion into at most n_out entries)
    for (int64_t i = 0; i < Dh; ++i) {
        int64_t at = n;
        while (at > 0 && amax[ch[at - 1]] < amax[i]) --at;  // strictly larger moves up: ties keep the lower channel
        if (at >= n_out) continue;
        for (int64_t k = (n < n_out ? n : n_out - 1); k > at; --k) ch[k] = ch[k - 1];
        ch[at] = (uint16_t)i;
        if (n < n_out) ++n;
    }
    std::sort(ch, ch + n);
}

namespace {

template <class B>
void k_group(const float* x, int64_t Dh, int64_t n_out, B* b, KiviOutlier* ko, void (*quant)(const float*, B*)) {
    std::vector<float> amax((size_t)Dh, 0.f);
    std::vector<uint16_t> ch((size_t)n_out);
    for (int64_t i = 0; i < Dh; ++i)
        for (int64_t j = 0; j < kKiviGroup; ++j) amax[(size_t)i] = std::max(amax[(size_t)i], std::fabs(x[i * kKiviGroup + j]));
    if (n_out) kv_kivi_outlier_channels(amax.data(), Dh, n_out, ch.data());
    for (int64_t i = 0, o = 0; i < Dh; ++i) {
        if (o < n_out && ch[(size_t)o] == i) {  // kept in f16 beside an all-zero block
            std::memset(&b[i], 0, sizeof(B));
            ko[o].ch = (uint16_t)i;
            for (int64_t j = 0; j < kKiviGroup; ++j) ko[o].v[j] = f32_to_f16(x[i * kKiviGroup + j]);
            ++o;
        } else {
            quant(x + i * kKiviGroup, &b[i]);
        }
    }
}

}  // namespace

void kv_quantize_kivi_k_group(const float* x, int64_t Dh, int64_t n_out, block_kivi4* b, KiviOutlier* ko) {
    k_group(x, Dh, n_out, b, ko, kv_quantize_kivi4);
}

void kv_quantize_kivi_k_group(const float* x, int64_t Dh, int64_t n_out, block_kivi2* b, KiviOutlier* ko) {
    k_group(x, Dh, n_out, b, ko, kv_quantize_kivi2);
}

}  // namespace edge
