// act_stats.h — calibration statistics of the matmul inputs, collected during Model::eval (edgeconv's
// importance-weighted quantization and GPTQ, converter/edgeconv/calib_native.py).
//
// A Model with an ActivationStats attached (Model::set_activation_stats; CPU backend only) hands every
// matmul input x [T, cols] (row t = one token) to add() at these sites:
//     ACT_ATTN_IN    attn-normed residual          read by attn_q / attn_k / attn_v      cols D
//     ACT_ATTN_OUT   attention output              read by attn_o                        cols H·Dh
//     ACT_FFN_IN     ffn-normed residual           read by ffn_gate / ffn_up (dense)     cols D
//                    (MoE layers: the router's input when it reads n2 x)
//     ACT_FFN_MID    act(gate) · up                read by ffn_down (dense)              cols F
//     ACT_EXPERT_IN  one expert's routed inputs    read by that expert's gate / up       cols D
//     ACT_EXPERT_MID act(gate) · up of an expert   read by that expert's down            cols F_e
//     ACT_HEAD_IN    output-normed residual        read by the head (layer -1)           cols D
//                    (only the rows that go through the head: all of them with all_logits)
// Per (layer, site, expert) entry (expert -1 outside MoE experts) it keeps
//     count            tokens seen
//     sumsq [cols]     Σ_t x[t][j]²                      float64, t ascending (importance = sumsq / count)
//     xtx [cols, cols] Σ_t x[t][i] · x[t][j]             float32, added into the total by the kernel table's
//                      gemm_tn_f32 (f32 sums: relative error ~1e-7·√count, far below GPTQ's dampening); only the upper triangle j >= i is
//                      accumulated, xtx_symmetric() mirrors it; kept only where the options ask (hessian)
// Cost: zero when no ActivationStats is attached (one null test per site). With one attached, sumsq is
// O(T·cols) per site; xtx O(T·cols²/2) per site, split over the backend's thread pool.
// Memory: xtx is cols² floats per entry (SmolLM2-135M: 30 × (3·576² + 1536²) · 4 B ≈ 0.4 GB); restrict
// hessian layers (layer_begin / layer_end) and run several passes when that is too much.
#pragma once

#include <cstdint>
#include <map>
#include <tuple>
#include <vector>

namespace edge {

class CpuBackend;

enum ActSite : int {
    ACT_ATTN_IN = 0,
    ACT_ATTN_OUT,
    ACT_FFN_IN,
    ACT_FFN_MID,
    ACT_EXPERT_IN,
    ACT_EXPERT_MID,
    ACT_HEAD_IN,
    ACT_SITE_COUNT
};

const char* act_site_name(ActSite s);  // "attn_in", "attn_out", ...

struct ActStatsOptions {
    bool hessian = false;           // keep xtx
    int64_t layer_begin = 0;        // xtx only for layers in [layer_begin, layer_end) ...
    int64_t layer_end = INT64_MAX;
    bool head_hessian = true;       // ... and for the head (layer -1) when this is set
    bool expert_hessian = false;    // xtx of the expert sites too (E entries per MoE layer and site)
};

struct ActStatsEntry {
    int64_t layer = 0;
    ActSite site = ACT_ATTN_IN;
    int32_t expert = -1;
    int64_t cols = 0;
    int64_t count = 0;
    std::vector<double> sumsq;  // [cols]
    std::vector<float> xtx;     // [cols, cols] upper triangle (empty without hessian)
};

class ActivationStats {
public:
    explicit ActivationStats(const ActStatsOptions& opt) : opt_(opt) {}

    // Accumulates x [T, cols] (host memory, row stride cols) into the entry (layer, site, expert).
    // cpu: its thread pool and kernel table compute xtx. Entries keep the cols of their first add;
    // a later add with other cols is an internal invariant failure (the model's shapes are fixed).
    void add(int64_t layer, ActSite site, int32_t expert, const float* x, int64_t T, int64_t cols, CpuBackend& cpu);

    using Key = std::tuple<int64_t, int, int32_t>;  // (layer, site, expert)
    const std::map<Key, ActStatsEntry>& entries() const { return entries_; }
    const ActStatsOptions& options() const { return opt_; }
    void clear() { entries_.clear(); }
    // The full symmetric [cols, cols] matrix of an entry's xtx (lower triangle from the upper).
    static void xtx_symmetric(const ActStatsEntry& e, float* out);

private:
    bool wants_hessian(int64_t layer, ActSite site) const;
    ActStatsOptions opt_;
    std::map<Key, ActStatsEntry> entries_;
};

}  // namespace edge
