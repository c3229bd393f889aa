// train_ffn.cpp — the dense SwiGLU FFN of a layer for training (train_layer.h), on xn2 = rmsnorm(x2)·ffn_norm:
//   g = W_gate·xn2, u = W_up·xn2 (+ LoRA, + bias);  h = silu(g)·u;  out = x2 + W_down·h (+ LoRA, + bias)
// g and u are kept (the backward's kt.silu_mul_bwd reads them), h separately (W_down's input).
#include <algorithm>
#include <cstring>

#include "train_layer.h"

namespace edge {

void train_ffn_fwd(Trainer::Impl& I, int64_t il, float* out) {
    const TrainDims& d = I.d;
    const Model::LayerWeights& w = I.w(il);
    CpuBackend& be = *I.be;
    TrainBuffers& b = I.b;
    const int64_t T = I.T, F = d.F;
    {
        const LowRank lg = I.lora(il, TGT_GATE), lu = I.lora(il, TGT_UP);
        const LowRank* ad[2] = {&lg, &lu};
        const Matrix* ws[2] = {&w.gate, &w.up};
        float* ys[2] = {b.g, b.u};
        be.matmul(ws, ys, 2, b.xn2, T, ad);
    }
    if (const float* p = I.bias(il, TGT_GATE)) be.add_bias(b.g, p, T, F);
    if (const float* p = I.bias(il, TGT_UP)) be.add_bias(b.u, p, T, F);
    std::memcpy(b.h, b.g, (size_t)(T * F) * sizeof(float));
    be.act_mul(b.h, b.u, T * F, Act::SILU);
    if (!out) return;
    const LowRank ld = I.lora(il, TGT_DOWN);
    const LowRank* ad = &ld;
    const Matrix* wd = &w.down;
    be.matmul(&wd, &out, 1, b.h, T, ld.rank > 0 ? &ad : nullptr);
    if (const float* p = I.bias(il, TGT_DOWN)) be.add_bias(out, p, T, d.D);
    be.add(out, b.x2, T * d.D);
}

void train_ffn_bwd(Trainer::Impl& I, int64_t il, const float* dxo, float* dxn) {
    const TrainDims& d = I.d;
    const Model::LayerWeights& w = I.w(il);
    TrainBuffers& b = I.b;
    const int64_t T = I.T, F = d.F;
    train_zero(b.dh, T * F);
    train_linear_bwd(I, il, TGT_DOWN, w.down, b.h, dxo, b.dh);
    const silu_mul_bwd_fn fn = I.kt->silu_mul_bwd.fn;
    I.be->pool().run(T, [&](int64_t lo, int64_t hi, int) {
        fn(b.g + lo * F, b.u + lo * F, b.dh + lo * F, (hi - lo) * F, b.dg + lo * F, b.du + lo * F);
    }, 4);
    train_zero(dxn, T * d.D);
    train_linear_bwd(I, il, TGT_GATE, w.gate, b.xn2, b.dg, dxn);
    train_linear_bwd(I, il, TGT_UP, w.up, b.xn2, b.du, dxn);
}

}  // namespace edge
