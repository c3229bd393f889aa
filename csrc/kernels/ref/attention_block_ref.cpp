// attention_block_ref.cpp — blocked (prefill) attention of one kv head over an f32, f16 or int8 KV cache:
// the references of attention_block_fn / attention_block_f16_fn / attention_block_q8_fn (kernels.h).
// Plain loops: per row, the K tiles meeting its own range in tile order, the online-softmax update of the
// contract (f32, positions in order within a tile, expf). Elements are converted exactly (f16) or scaled
// per position (q8) as in attention_kv_ref.cpp.
#include <cmath>

#include "../../common.h"
#include "ref.h"

namespace edge {

namespace {

inline float elem(const float* p) { return *p; }
inline float elem(const uint16_t* p) { return f16_to_f32(*p); }
inline float elem(const int8_t* p) { return (float)*p; }

// ks / vs: per-position scales (nullptr: none).
template <class T>
void block_ref(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin, const int64_t* p_end,
               const T* kt, const float* ks, const T* v, const float* vs, int64_t v_stride, int64_t Dh, float* scratch,
               float* out, int64_t out_stride) {
    const float scale = 1.0f / std::sqrt((float)Dh);
    float* s = scratch;  // kKTile scores of the current tile
    for (int64_t t = 0; t < n_tok; ++t)
        for (int64_t g = 0; g < n_head; ++g) {
            const float* qr = q + t * q_stride + g * Dh;
            float* o = out + t * out_stride + g * Dh;
            for (int64_t i = 0; i < Dh; ++i) o[i] = 0.f;
            float m = -INFINITY, l = 0.f;
            const int64_t pb = p_begin[t], pe = p_end[t];
            for (int64_t p0 = pb / kKTile * kKTile; p0 < pe; p0 += kKTile) {
                const int64_t a = pb > p0 ? pb : p0, b = pe < p0 + kKTile ? pe : p0 + kKTile;
                const T* tile = kt + p0 * Dh;
                float mt = m;
                for (int64_t p = a; p < b; ++p) {
                    float d = 0.f;
                    for (int64_t i = 0; i < Dh; ++i) d += qr[i] * elem(tile + i * kKTile + (p - p0));
                    s[p - p0] = (ks ? ks[p] * d : d) * scale;
                    mt = s[p - p0] > mt ? s[p - p0] : mt;
                }
                if (mt > m) {
                    const float c = std::exp(m - mt);
                    l *= c;
                    for (int64_t i = 0; i < Dh; ++i) o[i] *= c;
                    m = mt;
                }
                for (int64_t p = a; p < b; ++p) {
                    const float e = std::exp(s[p - p0] - m);
                    l += e;
                    const float w = vs ? e * vs[p] : e;
                    const T* vp = v + p * v_stride;
                    for (int64_t i = 0; i < Dh; ++i) o[i] += w * elem(vp + i);
                }
            }
            const float inv = 1.0f / l;
            for (int64_t i = 0; i < Dh; ++i) o[i] *= inv;
        }
}

}  // namespace

void attention_block_ref(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
                         const int64_t* p_end, const float* kt, const float* v, int64_t v_stride, int64_t head_dim,
                         float* scratch, float* out, int64_t out_stride) {
    block_ref<float>(q, q_stride, n_tok, n_head, p_begin, p_end, kt, nullptr, v, nullptr, v_stride, head_dim, scratch, out,
                     out_stride);
}

void attention_block_f16_ref(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
                             const int64_t* p_end, const uint16_t* kt, const uint16_t* v, int64_t v_stride, int64_t head_dim,
                             float* scratch, float* out, int64_t out_stride) {
    block_ref<uint16_t>(q, q_stride, n_tok, n_head, p_begin, p_end, kt, nullptr, v, nullptr, v_stride, head_dim, scratch, out,
                        out_stride);
}

void attention_block_q8_ref(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
                            const int64_t* p_end, const int8_t* kt, const float* ks, const int8_t* v, const float* vs,
                            int64_t v_stride, int64_t head_dim, float* scratch, float* out, int64_t out_stride) {
    block_ref<int8_t>(q, q_stride, n_tok, n_head, p_begin, p_end, kt, ks, v, vs, v_stride, head_dim, scratch, out, out_stride);
}

}  // namespace edge
