// adapter.h — trained adapters applied at inference (docs/TRAINING.md "Adapter files"): small .edge
// files of f32 tensors named after the base file's matrices,
//   blk.{i}.{stem}.lora_a [r, in]   blk.{i}.{stem}.lora_b [out, r]   blk.{i}.{stem}.bias [out]
// stem ∈ attn_q attn_k attn_v attn_o ffn_gate ffn_up ffn_down, and on an MoE layer per expert e
//   blk.{i}.exp.{e}.{stem}.lora_a / lora_b / bias      stem ∈ ffn_gate ffn_up ffn_down (the expert's matrices)
// with general.type = "adapter",
// adapter.rank / adapter.alpha (LoRA scale alpha / rank) and adapter.base_checksum = base_checksum()
// of the file they were trained on. A matmul W·x of the base becomes
//   y = W·x + Σ_j s_j·(alpha_j / rank_j)·B_j·(A_j·x) + Σ_j s_j·bias_j
// for the adapters j given with user scales s_j. All LoRA terms of one matrix are one LowRank
// (backend.h): A = [A_1; A_2; ...] [R, in], B = [c_1·B_1 | c_2·B_2 | ...] [out, R], scale 1, with
// c_j = s_j·alpha_j / rank_j; biases are summed into one [out] vector (added with add_bias after
// the matmul). An expert's terms are merged the same way, per (layer, expert, matrix); moe_ffn applies them
// (moe.h ExpertAdapter). Loading validates everything (Status naming the file); nothing here runs per token.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "format.h"

namespace edge {

struct AdapterSpec {
    std::string path;
    float scale = 1.f;
};

// The matrices of a decoder layer an adapter can target, in the order of AdapterTarget.
enum AdapterTarget : int { AT_Q = 0, AT_K, AT_V, AT_O, AT_GATE, AT_UP, AT_DOWN, AT_COUNT };
const char* adapter_target_stem(int t);  // "attn_q", ...

// The base file's identity: CRC-32 of the text "name:dtype:d0xd1...:crc32hex\n" over its tensor table in
// order (names, dtypes, shapes and data CRCs; not offsets or metadata). runtime/edgerun/train/adapter.py
// computes the same value.
uint32_t base_checksum(const EdgeFile& f);

// Per (layer, target) the merged terms, as host f32 arrays (the model copies them into planned memory).
struct AdapterTerm {
    int64_t rank = 0;      // R = Σ r_j; 0: no LoRA term
    std::vector<float> a;  // [R, in]
    std::vector<float> b;  // [out, R], scaled columns
    std::vector<float> bias;  // [out] or empty
};

struct AdapterSet {
    int64_t n_layers = 0, n_experts = 0;
    std::vector<AdapterTerm> terms;         // [n_layers · AT_COUNT]
    std::vector<AdapterTerm> expert_terms;  // [n_layers · n_experts · 3]: gate, up, down of each expert
    int64_t max_rank = 0;                   // over terms and expert_terms
    AdapterTerm& at(int64_t layer, int t) { return terms[(size_t)(layer * AT_COUNT + t)]; }
    const AdapterTerm& at(int64_t layer, int t) const { return terms[(size_t)(layer * AT_COUNT + t)]; }
    // j = 0 gate, 1 up, 2 down of expert e of layer `layer`
    AdapterTerm& expert_at(int64_t layer, int64_t e, int j) { return expert_terms[(size_t)((layer * n_experts + e) * 3 + j)]; }
    const AdapterTerm& expert_at(int64_t layer, int64_t e, int j) const {
        return expert_terms[(size_t)((layer * n_experts + e) * 3 + j)];
    }
    bool has_expert_terms() const;  // any expert term (rank > 0 or a bias)
    int64_t bytes() const;          // f32 bytes of every term
};

// Shape of one target matrix of layer i: rows (out) and cols (in); rows = 0 when the layer has no such
// matrix (the FFN of a MoE layer). An MoE layer (is_moe) has n_experts experts of gate / up [F, D], down [D, F]
// (expert_rows / expert_cols, in that order).
struct AdapterShape {
    int64_t n_layers = 0;
    std::vector<int64_t> rows, cols;  // [n_layers · AT_COUNT]
    int64_t n_experts = 0;            // 0: a dense model
    std::vector<uint8_t> is_moe;      // [n_layers] (empty: none)
    int64_t expert_rows[3] = {0, 0, 0}, expert_cols[3] = {0, 0, 0};
};

// Reads and merges the adapters for `base`. Errors: BAD_FILE (not an adapter, a tensor of the wrong
// dtype / shape / name, a lora_a without its lora_b, an expert tensor on a dense layer or past n_experts), INVALID_ARGUMENT (trained on another base: the
// message names both files and the remedy).
Status adapters_load(const EdgeFile& base, const AdapterShape& shape, const std::vector<AdapterSpec>& specs, AdapterSet* out);

}  // namespace edge
