// adapter.h — trained adapters applied at inference (docs/TRAINING.md "Adapter files"): small .edge
// files of f32 tensors named after the base file's matrices,
//   blk.{i}.{stem}.lora_a [r, in]   blk.{i}.{stem}.lora_b [out, r]   blk.{i}.{stem}.bias [out]
// stem ∈ attn_q attn_k attn_v attn_o ffn_gate ffn_up ffn_down, with general.type = "adapter",
// adapter.rank / adapter.alpha (LoRA scale alpha / rank) and adapter.base_checksum = base_checksum()
// of the file they were trained on. A matmul W·x of the base becomes
//   y = W·x + Σ_j s_j·(alpha_j / rank_j)·B_j·(A_j·x) + Σ_j s_j·bias_j
// for the adapters j given with user scales s_j. All LoRA terms of one matrix are one LowRank
// (backend.h): A = [A_1; A_2; ...] [R, in], B = [c_1·B_1 | c_2·B_2 | ...] [out, R], scale 1, with
// c_j = s_j·alpha_j / rank_j; biases are summed into one [out] vector (added with add_bias after
// the matmul). Loading validates everything (Status naming the file); nothing here runs per token.
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
    int64_t n_layers = 0;
    std::vector<AdapterTerm> terms;  // [n_layers · AT_COUNT]
    int64_t max_rank = 0;
    AdapterTerm& at(int64_t layer, int t) { return terms[(size_t)(layer * AT_COUNT + t)]; }
    const AdapterTerm& at(int64_t layer, int t) const { return terms[(size_t)(layer * AT_COUNT + t)]; }
    int64_t bytes() const;  // f32 bytes of every term
};

// Shape of one target matrix of layer i: rows (out) and cols (in); rows = 0 when the layer has no such
// matrix (the FFN of a MoE layer).
struct AdapterShape {
    int64_t n_layers = 0;
    std::vector<int64_t> rows, cols;  // [n_layers · AT_COUNT]
};

// Reads and merges the adapters for `base`. Errors: BAD_FILE (not an adapter, a tensor of the wrong
// dtype / shape / name, a lora_a without its lora_b), INVALID_ARGUMENT (trained on another base: the
// message names both files and the remedy).
Status adapters_load(const EdgeFile& base, const AdapterShape& shape, const std::vector<AdapterSpec>& specs, AdapterSet* out);

}  // namespace edge
