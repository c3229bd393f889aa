// train_layer.h — the trainer's internal state (Trainer::Impl) and the pieces of one step, one file each:
//   train_attn.cpp   attention half of a layer: forward (keeping its internals) and backward
//   train_ffn.cpp    dense SwiGLU FFN: forward and backward
//   train_moe.cpp    MoE FFN: forward, and backward through the experts and the routing weights
//   train_head.cpp   output norm + head + cross-entropy over vocab chunks, forward and backward
//   train_ops.cpp    threaded wrappers of the backward kernels (dX += Wᵀ·dY, a target's LoRA / bias grads)
//   train_plan.cpp   every buffer of a step as Planner entries, the budget check
// Shapes: B sequences of S tokens, T = B·S rows; D, H, Hkv, Dh, Dq = H·Dh, Dkv = Hkv·Dh; F = d_ff;
// E experts, K used per token, Fe = d_expert; R = LoRA rank; V vocab, Vc its chunk. Row-major f32.
// A layer's forward reads x_in [T, D] and leaves every internal the backward needs in TrainBuffers;
// its backward reads d out [T, D] in `dx` and leaves d in [T, D] there.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "../moe.h"
#include "trainer.h"

namespace edge {

struct TrainDims {
    int64_t B = 0, S = 0, T = 0;  // planned maxima (T = B·S)
    int64_t D = 0, H = 0, Hkv = 0, Dh = 0, Dq = 0, Dkv = 0, F = 0, L = 0, V = 0, Vc = 0;
    int64_t E = 0, K = 0, Fe = 0, R = 0;
    bool qk_norm = false, grads = true;  // grads = false: forward only (mezo): no checkpoints, no backward buffers
};

struct TrainBuffers {
    // activations (MemKind::ACTIVATIONS)
    float* ckpt = nullptr;                  // [L, T, D] layer inputs (grads) — else two [T, D] ping-pong rows
    float* xout = nullptr;                  // [T, D] the last layer's output
    float *xn1 = nullptr, *qp = nullptr, *kp = nullptr;  // [T, D], pre-norm q [T, Dq] / k [T, Dkv] (qk_norm)
    float *q = nullptr, *k = nullptr, *v = nullptr, *att = nullptr, *x2 = nullptr, *xn2 = nullptr;
    float *g = nullptr, *u = nullptr, *h = nullptr;  // [T, F] gate, up (pre-activation), act(g)·u
    KvLayer kv;                              // one sequence's cache, S positions
    float *xnf = nullptr;                    // [T, D] output-normed final hidden state
    // MoE (router logits [T, E], routes [T, K] on the host; the forward's expert buffers)
    float* rlogits = nullptr;
    int32_t* ridx = nullptr;
    float* rw = nullptr;
    MoeBuffers moe;
    float* he = nullptr;                     // [T, Fe] act(gate)·up of one expert (backward)
    // rope
    float *cos = nullptr, *sin = nullptr, *nsin = nullptr, *inv_freq = nullptr;  // [S, Dh/2]
    // head
    float *lc = nullptr, *dl = nullptr;      // [T, Vc] logits chunk and its gradient
    float *lse_m = nullptr, *lse_s = nullptr, *ltgt = nullptr;  // [T]
    int32_t* tgt = nullptr;                  // [T] target id or -1 (not scored)
    // backward scratch (MemKind::SCRATCH)
    float *dx = nullptr, *dx2 = nullptr, *dxn = nullptr, *dres = nullptr;  // [T, D]
    float *dq = nullptr, *dqp = nullptr, *datt = nullptr;                 // [T, Dq]
    float *dk = nullptr, *dkp = nullptr, *dv = nullptr;                   // [T, Dkv]
    float *dg = nullptr, *du = nullptr, *dh = nullptr;                    // [T, F]
    float *lr_u = nullptr, *lr_du = nullptr;                              // [T, R]
    float* att_scratch = nullptr;                                        // [threads, 2·S]
    float *dw = nullptr, *dlogits = nullptr;                              // [T, K], [T, E]
    float *dye = nullptr, *dxe = nullptr;                                 // [T, D]
    float *dge = nullptr, *due = nullptr, *dhe = nullptr;                 // [T, Fe]
};

struct Trainer::Impl {
    TrainDims d;
    std::unique_ptr<CpuBackend> be;
    Planner planner;
    TrainBuffers b;
    Model* model = nullptr;
    const KernelTable* kt = nullptr;
    const std::vector<TargetSlots>* slots = nullptr;
    const std::vector<TargetSlots>* expert_slots = nullptr;
    float* theta = nullptr;   // flat parameters
    float* grad = nullptr;    // flat gradients (nullptr: forward only)
    float lora_scale = 1.f;
    int64_t B = 0, S = 0, T = 0;  // this step's shape (<= the planned maxima)
    std::vector<ExpertAdapter> expert_ad;  // [E] one MoE layer's expert terms for moe_ffn (train_moe.cpp)

    const TargetSlots& slot(int64_t il, int t) const { return (*slots)[(size_t)(il * TGT_COUNT + t)]; }
    // Target t (TGT_GATE / UP / DOWN) of expert e of MoE layer il.
    const TargetSlots& eslot(int64_t il, int64_t e, int t) const {
        return (*expert_slots)[(size_t)((il * d.E + e) * 3 + t - TGT_GATE)];
    }
    bool layer_has_expert_params(int64_t il) const;
    // The LowRank term of a target (rank 0: none) and its trainable bias (nullptr: none).
    LowRank lora(const TargetSlots& s) const;
    const float* bias(const TargetSlots& s) const;
    LowRank lora(int64_t il, int t) const { return lora(slot(il, t)); }
    const float* bias(int64_t il, int t) const { return bias(slot(il, t)); }
    const Model::LayerWeights& w(int64_t il) const { return model->layer_weights(il); }
    float eps() const { return (float)model->config().rms_eps; }
};

// train_attn.cpp — x2 = x_in + o(attention(q, k, v)) with every internal kept; backward: dx2 (d x2) in,
// dx = d x_in contribution out: dx = dx2 + the attention branch's d x_in (need_dx = false: only the
// parameter gradients, dx untouched).
void train_attn_fwd(Trainer::Impl& I, int64_t il, const float* x_in);
void train_attn_bwd(Trainer::Impl& I, int64_t il, const float* x_in, const float* dx2, bool need_dx, float* dx);

// train_ffn.cpp — dense SwiGLU FFN on xn2 (already rmsnorm(x2)): out = x2 + down(silu(gate)·up)
// (out = nullptr: internals only); backward: d out in dxo, d xn2 into dxn ("=").
void train_ffn_fwd(Trainer::Impl& I, int64_t il, float* out);
void train_ffn_bwd(Trainer::Impl& I, int64_t il, const float* dxo, float* dxn);

// train_moe.cpp — routing on the layer's router input, then (out != nullptr) out = x2 + Σ_j w_j expert_j(xn2).
// Backward: each used expert recomputed and differentiated, d xn2 into dxn ("="), the routing weights'
// gradient through the frozen router into dxn (router on ffn_norm) or into dres ("=", router on the residual).
Status train_moe_fwd(Trainer::Impl& I, int64_t il, const float* x_in, float* out);
Status train_moe_bwd(Trainer::Impl& I, int64_t il, const float* dxo, float* dxn, float* dres);

// train_head.cpp — loss over the scored rows of b.tgt from the final hidden state xf [T, D];
// grads: d loss_sum / d xf into dxf ("=").
void train_head(Trainer::Impl& I, const float* xf, bool grads, double* loss_sum, int64_t* n_scored, float* dxf);

// train_ops.cpp
// dX[T, W.cols] += Wᵀ·dY[T, W.rows] (kt.gemm_t of W's dtype), split over column blocks.
void train_gemm_t(Trainer::Impl& I, const Matrix& W, const float* dY, int64_t T, float* dX);
// The parameter gradients of target t of layer il, y = W·x + s·B·(A·x) + bias with x [T, n], dY [T, rows]:
// dA += s·(Bᵀ·dY)ᵀ·x, dB += s·dYᵀ·(A·x), dbias += Σ_t dY; and, dX != nullptr, dX += Wᵀ·dY + s·Aᵀ·(Bᵀ·dY).
void train_linear_bwd(Trainer::Impl& I, int64_t il, int t, const Matrix& W, const float* x, const float* dY,
                      float* dX);
// The same for the target slots s over T rows (an expert's matrices over its routed tokens).
void train_linear_bwd_slots(Trainer::Impl& I, const TargetSlots& s, const Matrix& W, const float* x, const float* dY,
                            int64_t T, float* dX);
// dx[r] += rmsnorm_bwd(x[r], w, dy[r]) for `rows` rows of n (kt.rmsnorm_bwd), split over rows.
void train_rmsnorm_bwd(Trainer::Impl& I, const float* x, const float* w, int64_t rows, int64_t n, const float* dy,
                       float* dx);
void train_zero(float* p, int64_t n);

// train_plan.cpp — every buffer of a step of d.B × d.S tokens (and the flat parameter arrays of n_elem
// floats: theta always, grad / adam m, v when d.grads / adam) as entries of p, bound into b and *params.
void train_plan(const TrainDims& d, int threads, int64_t n_elem, bool adam, CpuBackend* be, Planner* p,
                TrainBuffers* b, float** theta, float** grad, float** m, float** v);

}  // namespace edge
