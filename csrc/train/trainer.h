// trainer.h — on-device training of small f32 parameters on a frozen (quantized) model (docs/TRAINING.md).
//
// A step takes tokens [B, S] (int32) and mask [B, S] (uint8): position t of row b is scored when
// mask[b][t] = 1 and t < S - 1, with target tokens[b][t + 1]. loss_sum = Σ_scored −log p(target).
// forward_backward adds d loss_sum / dθ to the gradients (so several calls accumulate);
// optimizer_step divides them by the scored positions counted since the last step, updates θ and
// zeroes them.
//
// Forward: the model's own weights (read-only views, Model::layer_weights) through a CPU backend of
// the model's kernel table (training numerics = inference numerics: int-dot dtypes quantize the
// activations to block_q8x in matmul). The B sequences of a step run together through every matmul
// (T = B·S rows); attention runs per sequence (positions 0..S-1). Only each layer's input
// x_l [T, D] is kept (activation checkpointing); the backward recomputes one layer's internals at a
// time (train_layer.h) and uses the kernel table's backward ops (kernels/backward.h).
//
// Parameters (f32, one flat array; names of docs/TRAINING.md):
//   lora:   blk.{i}.{t}.lora_a [r, in] (PEFT's kaiming_uniform(a=√5): U(±1/√in)), blk.{i}.{t}.lora_b
//           [out, r] = 0, y += (alpha / r)·B·(A·x)
//   bias:   blk.{i}.{t}.bias [out] = 0, y += b (a delta on a model's own q/k/v bias)
//   sparse: lora and bias of the targets, restricted to TrainOptions::params when given (the plan)
//   mezo:   the lora set, updated by mezo_step (zeroth order; no gradients, no checkpoints kept)
// dtype bf16 (not mezo): the step computes with θ rounded to bf16 (held in f32 storage: every kernel takes
// f32), the gradients and the optimizer state are f32 and update an f32 master ("train.master"), re-rounded
// after each update — mixed precision with f32 master weights. parameters() are the master.
// Targets: q, k, v, o (every layer), gate, up, down (dense FFN layers, and on MoE layers every expert's
// matrices, LoRA only: blk.{i}.exp.{e}.ffn_gate.lora_a, ...). The router stays frozen — its gradient flows through
// the routing weights, the top-k indices are constants.
//
// Memory: every buffer is a Planner entry (train_plan.cpp): checkpoints and one layer's internals as
// MemKind::ACTIVATIONS, parameters / gradients / optimizer state / backward scratch as SCRATCH, the
// model's mapped weights and its own buffers counted. The total is checked against mem_budget before
// anything is allocated; a refusal names the largest terms and the largest seq (at this batch) and
// batch (at this seq) that fit.
//
// Threads: the backend's pool; every split writes disjoint outputs and every sum runs in a fixed
// order, so results do not depend on the thread count (up to the kernels' own contracts).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../backend/cpu/cpu_backend.h"
#include "../backend/planner.h"
#include "../common.h"
#include "../model.h"

namespace edge {

struct TrainOptions {
    std::string method = "lora";                     // lora | bias | sparse | mezo
    int64_t rank = 8;
    float alpha = 16.f;
    std::vector<std::string> targets = {"q", "v"};   // of q, k, v, o, gate, up, down
    uint64_t seed = 0;
    std::string optimizer = "adamw";                 // adamw | sgd
    float lr = 1e-4f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.f;
    float momentum = 0.f;                            // sgd: torch.optim.SGD's momentum (dampening 0, no Nesterov)
    std::string dtype = "f32";                       // f32 | bf16: the forward / backward see θ rounded to bf16
                                                     // (RNE), the optimizer updates an f32 master copy
    int64_t batch = 4, seq = 256;                    // the largest step planned
    int64_t mem_budget = 0;                          // bytes; 0 = unlimited
    float mezo_eps = 1e-3f;
    int64_t vocab_chunk = 1024;                      // head rows per cross-entropy chunk (Vc)
    bool has_params = false;                         // sparse: train only `params` (names)
    std::vector<std::string> params;
    int threads = 0;                                 // 0: the model's
};

// The seven target matrices of a layer, in this order (index = TrainTarget).
enum TrainTarget : int { TGT_Q = 0, TGT_K, TGT_V, TGT_O, TGT_GATE, TGT_UP, TGT_DOWN, TGT_COUNT };
const char* train_target_short(int t);  // "q", ..., "down"
const char* train_target_stem(int t);   // the file's tensor stem: "attn_q", ..., "ffn_down"

// One trainable tensor: `count` floats at `offset` of the flat parameter / gradient arrays.
struct TrainParam {
    std::string name;
    int64_t rows = 0, cols = 0;  // cols = 1 for a bias
    int64_t offset = 0;
    int layer = 0, target = 0;
    int expert = -1;             // an MoE expert's gate / up / down (-1: a layer's own matrix)
    int part = 0;                // 0 lora_a, 1 lora_b, 2 bias
    int64_t count() const { return rows * cols; }
};

// Offsets (-1: none) of one target matrix's trainable tensors.
struct TargetSlots {
    int64_t a = -1, b = -1, bias = -1;
};

struct TrainBuffers;  // train_plan.h

class Trainer {
public:
    // The model must run on the CPU backend with its layers resident (not streamed).
    static Status create(Model* model, const TrainOptions& opt, std::unique_ptr<Trainer>* out);
    ~Trainer();

    // B <= batch, 2 <= S <= seq; token ids in the vocabulary.
    Status forward_backward(const int32_t* tokens, const uint8_t* mask, int64_t B, int64_t S, double* loss_sum,
                            int64_t* n_scored);
    Status eval_loss(const int32_t* tokens, const uint8_t* mask, int64_t B, int64_t S, double* loss_sum,
                     int64_t* n_scored);
    // One update with the accumulated gradients / scored count (lr <= 0: the option's). INVALID_ARGUMENT
    // when nothing was scored; method mezo has no gradients (use mezo_step).
    Status optimizer_step(float lr);
    // MeZO (method mezo): z ~ N(0, 1) per element from step_seed (mezo_noise), L± = mean loss at θ ± εz,
    // θ -= lr · (L+ − L−) / 2ε · z. *loss = (L+ + L−) / 2.
    Status mezo_step(const int32_t* tokens, const uint8_t* mask, int64_t B, int64_t S, float lr, uint64_t step_seed,
                     double* loss);
    // z of mezo_step for step_seed, one float per parameter element (n_elements()).
    void mezo_noise(uint64_t step_seed, float* z) const;
    // ‖d loss_sum / dθ‖² per parameter on this batch (the first-order loss drop of a unit-rate SGD step),
    // for choosing a sparse plan. Gradients accumulated before are dropped; they are left zeroed.
    Status measure_contributions(const int32_t* tokens, const uint8_t* mask, int64_t B, int64_t S,
                                 std::vector<double>* out);

    const std::vector<TrainParam>& params() const { return params_; }
    int64_t n_elements() const { return n_elem_; }
    float* param_data() { return theta_; }         // what the forward reads (bf16-valued with dtype bf16)
    // The optimizer's parameters: the f32 master (dtype bf16) or θ itself. After writing them, call
    // params_changed() (re-rounds the working copy).
    float* master_data() { return master_ ? master_ : theta_; }
    void params_changed();
    const float* grad_data() const { return grad_; }
    float* adam_m() { return m_; }
    float* adam_v() { return v_; }
    float* sgd_momentum() { return mom_; }         // the momentum buffer (sgd with momentum > 0), else nullptr
    int64_t step() const { return step_; }
    void set_step(int64_t s) { step_ = s; }
    int64_t pending_scored() const { return pending_; }
    void zero_grad();
    const MemoryPlan& memory_plan() const { return plan_; }
    const TrainOptions& options() const { return opt_; }
    const Model& model() const { return *model_; }

    struct Impl;  // the step's state (train_layer.h): dims, buffers, backend

private:
    Trainer() = default;
    Status init(Model* model, const TrainOptions& opt);
    Status build_params();
    void init_params();
    Status check_batch(const int32_t* tokens, const uint8_t* mask, int64_t B, int64_t S) const;
    Status run(const int32_t* tokens, const uint8_t* mask, int64_t B, int64_t S, bool grads, double* loss_sum,
               int64_t* n_scored);

    Model* model_ = nullptr;
    TrainOptions opt_;
    std::unique_ptr<Impl> impl_;
    std::vector<TrainParam> params_;
    std::vector<TargetSlots> slots_;         // [layer · TGT_COUNT + target]
    std::vector<TargetSlots> expert_slots_;  // [(layer · E + expert) · 3 + target − TGT_GATE] (MoE layers)
    int64_t n_elem_ = 0;
    float *theta_ = nullptr, *grad_ = nullptr, *m_ = nullptr, *v_ = nullptr, *mezo0_ = nullptr, *mom_ = nullptr,
          *master_ = nullptr;
    int64_t lowest_ = 0;  // the lowest layer with trainable parameters (the backward stops there)
    int64_t step_ = 0, pending_ = 0;
    MemoryPlan plan_;
};

}  // namespace edge
