// cpu_attention_block.cpp — CpuBackend::attention for multi-token steps (prompt chunks, eval_batch runs):
// the blocked kernels (kernels.h attention_block*), one call per (kv head, block of heads × tokens), so a
// K / V tile is read once per block instead of once per (token, head). Decode steps (T below the
// threshold) keep the per-token path (cpu_attention.cpp).
//
// Blocks: the heads of one kv head (at most kBlockRows of them) × as many consecutive tokens as fit in
// kBlockRows rows and in the thread's share of the attention scratch (cpu_backend.h: ctx floats, so the
// memory plan is unchanged). A KIVI cache (kivi_cache.h): the tokens of a block share their view (the query at
// pos reads kivi_quantized(pos + 1) positions quantized, which changes where 32 divides pos + 1), so its blocks
// are a power of two <= 32 tokens, aligned where pos + 1 is a multiple of it, and the kernel gets the first
// token's kivi_head — each row's own view, as the per-token path reads it. Where nothing is quantized and the ring
// has not wrapped, the f16 kernel reads the ring directly (the f16 cache's bits, as the per-token path does). Ranges per token as the per-token path: [max(0, pos - window + 1), pos], in
// slot space for a ring with the block's first token's base b = (p_begin / R)·R: R >= window + T - 1
// (backend.h KvLayer) keeps every later token of the block within slots [0, 2R). A row's result does not
// depend on its block (kernels.h), so it is independent of the block sizes and of the thread count.
// Numerics vs the per-token path: both are within |Δout| <= 1e-5 · max_p ||V_p||_inf of exact attention.
#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include "cpu_backend.h"
#include "kivi_cache.h"

namespace edge {

namespace {
constexpr int64_t kBlockRows = 64;  // rows (heads × tokens) per kernel call: K/V tile reuse vs L1 footprint
}  // namespace

int64_t cpu_attention_block_min_tokens() {
    // $EDGE_ATTN_BLOCK: the smallest step (tokens) that takes the blocked path; 0 = never. Default 2: every
    // multi-token step (its rows share each K/V tile); a one-token decode step keeps the per-token kernels
    // (its block would be only the group's heads). Not yet measured per T on a quiet machine.
    const char* s = std::getenv("EDGE_ATTN_BLOCK");
    if (!s || !*s) return 2;
    char* end = nullptr;
    const long long v = std::strtoll(s, &end, 10);
    if (*end || v < 0) return 2;
    return v == 0 ? INT64_MAX : (int64_t)v;
}

bool CpuBackend::attention_blocked(const float* q, const KvLayer& kv, int64_t T, int64_t pos0, int64_t H, int64_t Hkv,
                                   int64_t Dh, int64_t window, float* out) {
    if (T < block_min_tokens_) return false;
    const int64_t group = H / Hkv, Dq = H * Dh, Dkv = Hkv * Dh;
    // the scratch: ctx floats a thread (+ a KIVI block's dequantized tile, cpu_backend.cpp plan_scratch)
    const int64_t rows = std::min(kBlockRows, shape_.ctx / kAttnBlockRowFloats);
    if (rows < 1) return false;
    const bool kivi = kv_type_kivi(kv.type);
    const int64_t nh = std::min(group, rows);
    int64_t tq = std::max<int64_t>(1, rows / nh);
    if (kivi) {  // the largest power of two <= min(tq, 32): it divides 32
        int64_t p2 = 1;
        while (2 * p2 <= std::min(tq, kKiviGroup)) p2 *= 2;
        tq = p2;
    }
    // token blocks [tb·tq - off, (tb + 1)·tq - off) ∩ [0, T): for KIVI aligned where tq divides pos + 1
    const int64_t off = kivi ? (pos0 + 1) % tq : 0;
    const int64_t n_hb = (group + nh - 1) / nh, n_tb = (off + T + tq - 1) / tq;
    const KernelTable* kt = kt_;
    pool_.run(Hkv * n_hb * n_tb, [&](int64_t b, int64_t e, int tid) {
        float* scratch = scores_ + (size_t)tid * scores_stride_;
        int64_t pb[kBlockRows], pe[kBlockRows];
        for (int64_t task = b; task < e; ++task) {
            const int64_t kvh = task / (n_hb * n_tb), hb = task / n_tb % n_hb;
            const int64_t tb = n_tb - 1 - task % n_tb;  // the longest rows first
            const int64_t t0 = std::max<int64_t>(0, tb * tq - off), n_tok = std::min((tb + 1) * tq - off, T) - t0;
            const int64_t h0 = kvh * group + hb * nh;
            const int64_t n_head = std::min(nh, group - hb * nh);
            const int64_t first = pos0 + t0;
            const int64_t base = kv.ring ? (window > 0 ? std::max<int64_t>(0, first - window + 1) : 0) / kv.ring * kv.ring : 0;
            for (int64_t t = 0; t < n_tok; ++t) {
                const int64_t pos = first + t;
                pb[t] = (window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0) - base;
                pe[t] = pos + 1 - base;
            }
            const float* qb = q + t0 * Dq + h0 * Dh;
            float* ob = out + t0 * Dq + h0 * Dh;
            const int64_t ko = kvh * kv.k_head_stride, vo = kvh * Dh, so = kvh * kv.scale_head_stride;
            switch (kv.type) {
            case KvType::F32:
                kt->attention_block.fn(qb, Dq, n_tok, n_head, pb, pe, kv.k + ko, kv.v + vo, Dkv, Dh, scratch, ob, Dq);
                break;
            case KvType::F16:
                kt->attention_block_f16.fn(qb, Dq, n_tok, n_head, pb, pe, reinterpret_cast<const uint16_t*>(kv.k) + ko,
                                           reinterpret_cast<const uint16_t*>(kv.v) + vo, Dkv, Dh, scratch, ob, Dq);
                break;
            case KvType::Q8:
                kt->attention_block_q8.fn(qb, Dq, n_tok, n_head, pb, pe, reinterpret_cast<const int8_t*>(kv.k) + ko,
                                          kv.k_scale + so, reinterpret_cast<const int8_t*>(kv.v) + vo, kv.v_scale + so, Dkv, Dh,
                                          scratch, ob, Dq);
                break;
            case KvType::KIVI4:
            case KvType::KIVI2: {
                const KiviHead c = kivi_head(kv, kvh, first, Hkv, Dh);  // every token's of the block (see above)
                if (c.n_quant == 0 && pe[n_tok - 1] <= c.ring)  // all f16, no wrap: the f16 cache's kernel and bits
                    kt->attention_block_f16.fn(qb, Dq, n_tok, n_head, pb, pe, c.kr, c.vr, c.vr_stride, Dh, scratch, ob, Dq);
                else
                    (kv.type == KvType::KIVI4 ? kt->attention_block_kivi4 : kt->attention_block_kivi2)
                        .fn(qb, Dq, n_tok, n_head, pb, pe, c, Dh, scratch, ob, Dq);
                break;
            }
            }
        }
    });
    return true;
}

}  // namespace edge
