// moe.h — mixture-of-experts FFN layers (docs/MOE.md): the moe.* configuration, routing, and the expert
// FFN that computes each routed expert as soon as the ExpertStore has its bytes.
//
// Shapes: T tokens, D model width, E experts per MoE layer, k experts used per token, F = d_expert.
//
// Routing of one token (docs/MOE.md §1), in f32 from the f32 router logits l[E]:
//   idx = the k largest logits, in descending order; ties go to the lower expert index
//   softmax: w_j = exp(l_j - max l) / Σ_{all e} exp(l_e - max l);  sigmoid: w_j = 1 / (1 + exp(-l_j))
//   norm_topk: w_j /= Σ_{j in idx} w_j (summed in idx order)
// Expert FFN: y = down(act(gate·x) * (up·x)), act = silu (SwiGLU) or relu (ReGLU); with an adapter each
// of gate, up, down is W·x + LowRank term + bias (ExpertAdapter).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "act_stats.h"
#include "common.h"
#include "expert_store.h"
#include "format.h"
#include "backend/backend.h"

namespace edge {

struct MoeConfig {
    int64_t n_experts = 0;            // E; 0 = not an MoE model
    int64_t n_used = 0;               // k
    int64_t d_expert = 0;             // F
    bool gating_softmax = true;       // moe.gating: softmax (true) or sigmoid
    bool norm_topk = false;           // moe.norm_topk
    bool act_relu = false;            // moe.act: relu (ReGLU) or silu (SwiGLU)
    bool router_on_residual = false;  // moe.router_input: residual (the layer input) or ffn_norm
    bool predictor_linear = false;    // moe.predictor: linear (W_pred·u + b) or router (the true router)
    std::vector<uint8_t> is_moe;      // moe.layers: per layer, 1 = MoE FFN, 0 = dense FFN
    int64_t n_moe_layers() const {    // layers with experts
        int64_t n = 0;
        for (uint8_t v : is_moe) n += v != 0;
        return n;
    }
};

// Reads and checks the moe.* keys of an MoE file (n_layers from llm.n_layers). Every problem is a
// BAD_FILE/UNSUPPORTED Status naming the key.
Status moe_config_read(const EdgeFile& f, int64_t n_layers, MoeConfig* out);

// idx[k]: indices of the k largest of logits[E], descending, ties to the lower index. 1 <= k <= E.
void moe_topk(const float* logits, int64_t E, int64_t k, int32_t* idx);
// moe_topk plus the routing weights w[k] of the configured gating (above).
void moe_route(const MoeConfig& c, const float* logits, int32_t* idx, float* w);
// moe_route (w != nullptr) or moe_topk (w == nullptr) for each of T rows of logits [T, E]: idx, w [T, k].
void moe_route_rows(const MoeConfig& c, const float* logits, int64_t T, int64_t k, int32_t* idx, float* w);
// Σ_t |true_t ∩ pred_t| over T tokens of k indices each (the predictor's hits, for recall).
int64_t moe_overlap(const int32_t* true_idx, const int32_t* pred_idx, int64_t T, int64_t k);

// Routes grouped by expert (host memory): the T·k routes r = t·k + j of one step, counting-sorted by
// expert (token order within an expert), and the experts used, hottest first (most routes, then the
// lower index). moe_group fills it; its arrays are sized for T tokens by MoeBuffers.
struct MoeGroups {
    int32_t* experts = nullptr;   // [E] the n experts used, hottest first
    int32_t* count = nullptr;     // [E] routes per expert
    int32_t* start = nullptr;     // [E + 1] first route of expert e in token_of
    int32_t* token_of = nullptr;  // [T·k] routes r, grouped by expert
    int32_t* cursor = nullptr;    // [E] fill cursor (scratch)
    float* wmax = nullptr;        // [E] largest routing weight per expert (the low-bit policy)
    float* wpos = nullptr;        // [E] wmax of experts[i], kept in step with experts
};
// Groups idx / w [T, k]; returns n, the number of distinct experts.
int moe_group(const int32_t* idx, const float* w, int64_t T, int64_t k, int64_t E, const MoeGroups& g);

// The union of the experts in idx[0..n) in first-seen order into out (returns its size); with w, each
// expert's largest weight over its routes into wout (else wout untouched). seen: [E] scratch.
int moe_union(const int32_t* idx, const float* w, int64_t n, int64_t E, uint8_t* seen, int32_t* out, float* wout);

// The adapter terms of one expert (the merged --adapter terms, adapter.h; or the trainer's parameters):
// for gate, up, down (j = 0, 1, 2) a LowRank term (rank 0: none) added by Backend::matmul, then a bias
// [rows_j] (nullptr: none) added with add_bias. The pointers are in the backend's memory.
struct ExpertAdapter {
    LowRank lora[3];
    const float* bias[3] = {nullptr, nullptr, nullptr};
};

// The store served expert `expert` of `layer` as three matmul weights of the config's shapes (gate, up [F, D], down
// [D, F]) in dtypes the backend runs; else a BAD_FILE Status naming them.
Status moe_check_expert(const MoeConfig& c, const Backend& be, int64_t D, int layer, int expert, const ExpertMatrices& m);

// One expert over ne gathered rows xe [ne, D] (D, F = d_expert from m's shapes):
//   gate = Wg·xe, up = Wu·xe [ne, F] (one matmul), each + its terms;  h = act(gate)·up [ne, F];
//   ye = Wd·h [ne, D] + its terms.
// m: gate, up, down as the device reads them; ad: the expert's terms or nullptr. h == gate: in place (the
// inference path); h != gate (host-addressable backends only): gate keeps the pre-activation values that
// the trainer's backward reads. The one implementation of an expert for inference and training.
void moe_expert_ffn(Backend* be, Act act, const Matrix* m, const ExpertAdapter* ad, const float* xe, int64_t ne,
                    float* gate, float* up, float* h, float* ye);

class Planner;

// Buffers of moe_ffn for steps of up to T tokens, planned by the model's planner: activations on the
// backend's device, the grouping on the host.
struct MoeBuffers {
    float *xe = nullptr, *gate = nullptr, *up = nullptr, *ye = nullptr;  // one expert's tokens: [T, D], [T, F], [T, F], [T, D]
    float* yk = nullptr;                                                 // per (token, rank) expert outputs [T, k, D]
    MoeGroups groups;

    void plan(Planner* p, Backend* be, int64_t T, int64_t D, int64_t E, int64_t k, int64_t F);
};

// x[t] += Σ_j w[t][j] · expert_{idx[t][j]}(xn[t]) for t < T, for MoE layer `layer`, with backend ops.
// Tokens are grouped by expert (moe_group); the experts are handed to store->acquire_any hottest first
// and each is computed over its tokens (gather, gate/up in one matmul, act·mul, down, scatter) as soon
// as it is ready, then released. Each token's k outputs are combined in rank order j afterwards, so the
// result is the same bits whatever order the experts arrive in (streamed == resident).
// idx, w: host memory. On a store error every pinned expert is released, x is left unchanged and the
// error is returned.
// adapters: nullptr, or [E] the terms of each expert of this layer (moe_expert_ffn), whichever slot or
// variant the store serves it from (the terms are resident: streamed == resident holds with them).
// stats (with cpu, the backend be is then): each expert's gathered inputs and act(gate)·up go to
// stats as ACT_EXPERT_IN / ACT_EXPERT_MID of (layer, expert) (calibration, act_stats.h).
Status moe_ffn(const MoeConfig& c, ExpertStore* store, Backend* be, int layer, const float* xn,
               const int32_t* idx, const float* w, int64_t T, int64_t D, MoeBuffers* buf, float* x,
               const ExpertAdapter* adapters = nullptr, CpuBackend* cpu = nullptr, ActivationStats* stats = nullptr);

}  // namespace edge
