// attention_block_ref.cpp — blocked (prefill) attention of one kv head over an f32, f16, int8 or KIVI KV cache:
// the references of attention_block_fn / _f16_fn / _q8_fn / attention_block_kivi_fn (kernels.h).
// Plain loops: per row, the K tiles meeting its own range in tile order, the online-softmax update of the
// contract (f32, positions in order within a tile, expf). Elements are converted exactly (f16), scaled per
// position (q8) as in attention_kv_ref.cpp, or read as attention_kivi_ref does (kivi_elem.h); one loop for all,
// over a cache accessor: k(p, i), v(p, i) the elements, score(p, d) / weight(p, e) the q8 scales (or none).
#include <cmath>

#include "../../common.h"
#include "kivi_elem.h"
#include "ref.h"

namespace edge {

namespace {

inline float elem(const float* p) { return *p; }
inline float elem(const uint16_t* p) { return f16_to_f32(*p); }
inline float elem(const int8_t* p) { return (float)*p; }

// f32 / f16 / int8 cache in the tiles of kernels.h; ks / vs: per-position scales (nullptr: none)
template <class T>
struct Plain {
    const T* kt;
    const float* ks;
    const T* v;
    const float* vs;
    int64_t v_stride, Dh;
    float k(int64_t p, int64_t i) const { return elem(kt + (p / kKTile) * kKTile * Dh + i * kKTile + p % kKTile); }
    float v_at(int64_t p, int64_t i) const { return elem(v + p * v_stride + i); }
    float score(int64_t p, float d) const { return ks ? ks[p] * d : d; }
    float weight(int64_t p, float e) const { return vs ? e * vs[p] : e; }
};

template <class B>
struct Kivi {
    const KiviHead& c;
    int64_t Dh;
    float k(int64_t p, int64_t i) const { return kivi_ref::k_elem<B>(c, p, i, Dh); }
    float v_at(int64_t p, int64_t i) const { return kivi_ref::v_elem<B>(c, p, i); }
    float score(int64_t, float d) const { return d; }
    float weight(int64_t, float e) const { return e; }
};

template <class C>
void block_ref(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin, const int64_t* p_end,
               const C& kv, int64_t Dh, float* scratch, float* out, int64_t out_stride) {
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
                float mt = m;
                for (int64_t p = a; p < b; ++p) {
                    float d = 0.f;
                    for (int64_t i = 0; i < Dh; ++i) d += qr[i] * kv.k(p, i);
                    s[p - p0] = kv.score(p, d) * scale;
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
                    const float w = kv.weight(p, e);
                    for (int64_t i = 0; i < Dh; ++i) o[i] += w * kv.v_at(p, i);
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
    block_ref(q, q_stride, n_tok, n_head, p_begin, p_end, Plain<float>{kt, nullptr, v, nullptr, v_stride, head_dim}, head_dim,
              scratch, out, out_stride);
}

void attention_block_f16_ref(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
                             const int64_t* p_end, const uint16_t* kt, const uint16_t* v, int64_t v_stride, int64_t head_dim,
                             float* scratch, float* out, int64_t out_stride) {
    block_ref(q, q_stride, n_tok, n_head, p_begin, p_end, Plain<uint16_t>{kt, nullptr, v, nullptr, v_stride, head_dim}, head_dim,
              scratch, out, out_stride);
}

void attention_block_q8_ref(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
                            const int64_t* p_end, const int8_t* kt, const float* ks, const int8_t* v, const float* vs,
                            int64_t v_stride, int64_t head_dim, float* scratch, float* out, int64_t out_stride) {
    block_ref(q, q_stride, n_tok, n_head, p_begin, p_end, Plain<int8_t>{kt, ks, v, vs, v_stride, head_dim}, head_dim, scratch,
              out, out_stride);
}

void attention_block_kivi4_ref(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
                               const int64_t* p_end, const KiviHead& c, int64_t head_dim, float* scratch, float* out,
                               int64_t out_stride) {
    block_ref(q, q_stride, n_tok, n_head, p_begin, p_end, Kivi<block_kivi4>{c, head_dim}, head_dim, scratch, out, out_stride);
}

void attention_block_kivi2_ref(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
                               const int64_t* p_end, const KiviHead& c, int64_t head_dim, float* scratch, float* out,
                               int64_t out_stride) {
    block_ref(q, q_stride, n_tok, n_head, p_begin, p_end, Kivi<block_kivi2>{c, head_dim}, head_dim, scratch, out, out_stride);
}

}  // namespace edge
