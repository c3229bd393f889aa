// train_moe.cpp — a mixture-of-experts FFN layer for training (train_layer.h, moe.h):
//   logits = W_router·r (r = x_in with router_input = residual, else xn2);  idx, w = route(logits)
//   out = x2 + Σ_j w_j · expert_{idx_j}(xn2)                 (moe_ffn: the inference code path)
// Backward, the experts and the router frozen, idx constant: for each used expert, in ascending index
// order (a fixed order, so d xn2 sums the same bits whatever the store serves first), its FFN is
// recomputed over its tokens and differentiated:
//   dw[t, j] = d out[t] · y_tj;  d y_tj = w[t, j] · d out[t];  then down / act·mul / gate, up transposed
// and the routing weights' gradient goes through moe_route_bwd and W_routerᵀ to the router's input.
// Experts come from the model's ExpertStore (streamed or resident), one pinned at a time. An expert's
// gate / up / down may carry LoRA / bias terms (targets gate, up, down on an MoE layer): the forward is
// moe_ffn with them as its ExpertAdapter terms, the backward's recomputation moe_expert_ffn — the code
// inference runs with an adapter (moe.h), so a trained adapter's logits are the trainer's (up to the f32 rounding
// of alpha / r, which inference folds into B's columns).
#include <cstring>

#include "route_bwd.h"
#include "train_layer.h"

namespace edge {

namespace {

void router_logits(Trainer::Impl& I, int64_t il, const float* x_in) {
    const MoeConfig& mc = I.model->moe_config();
    const Matrix* w = &I.w(il).router;
    float* y = I.b.rlogits;
    I.be->matmul(&w, &y, 1, mc.router_on_residual ? x_in : I.b.xn2, I.T);
    I.be->moe_route(mc, I.b.rlogits, I.T, mc.n_used, I.b.ridx, I.b.rw);
}

Status acquire(Trainer::Impl& I, int64_t il, int32_t e, ExpertMatrices* em) {
    ExpertStore* store = I.model->expert_store();
    int which = 0;
    float wmax = 1.f;
    EDGE_TRY(store->acquire_any((int)il, &e, &wmax, 1, &which, em));
    const int64_t D = I.d.D, Fe = I.d.Fe;
    const Matrix* ms[3] = {&em->gate, &em->up, &em->down};
    const int64_t rows[3] = {Fe, Fe, D}, cols[3] = {D, D, Fe};
    for (int i = 0; i < 3; ++i) {
        const Matrix& m = *ms[i];
        if (!m.data || m.rows != rows[i] || m.cols != cols[i] || !I.be->supports(m.dtype)) {
            store->release((int)il, e);
            return status_error(Code::BAD_FILE, strfmt("layer %lld expert %d: the store served a %lld x %lld matrix where "
                                                       "%lld x %lld was expected", (long long)il, e, (long long)m.rows,
                                                       (long long)m.cols, (long long)rows[i], (long long)cols[i]));
        }
        if (!I.kt->gemm_t[m.dtype].fn) {
            store->release((int)il, e);
            return status_error(Code::UNSUPPORTED, strfmt("layer %lld expert %d: no backward kernel (gemm_t) for dtype %s",
                                                          (long long)il, e, dtype_traits(m.dtype).name));
        }
    }
    return Status::ok();
}

// The trainable terms of expert e of layer il as moe_expert_ffn takes them.
ExpertAdapter expert_terms(const Trainer::Impl& I, int64_t il, int32_t e) {
    ExpertAdapter a;
    for (int j = 0; j < 3; ++j) {
        const TargetSlots& s = I.eslot(il, e, TGT_GATE + j);
        a.lora[j] = I.lora(s);
        a.bias[j] = I.bias(s);
    }
    return a;
}

// One expert over its ne routed tokens, with its trainable terms (moe_expert_ffn, the inference code):
// xe = xn2[routes], ge = gate·xe, ue = up·xe, he = act(ge)·ue (ge kept), ye = down·he.
void expert_fwd(Trainer::Impl& I, int64_t il, int32_t e, const ExpertMatrices& em, const int32_t* routes, int64_t ne) {
    const MoeConfig& mc = I.model->moe_config();
    TrainBuffers& b = I.b;
    I.be->moe_gather(b.xn2, I.d.D, routes, ne, I.d.K, b.moe.xe);
    const Matrix m[3] = {em.gate, em.up, em.down};
    const ExpertAdapter ad = expert_terms(I, il, e);
    moe_expert_ffn(I.be.get(), mc.act_relu ? Act::RELU : Act::SILU, m, &ad, b.moe.xe, ne, b.moe.gate, b.moe.up, b.he,
                   b.moe.ye);
}

}  // namespace

Status train_moe_fwd(Trainer::Impl& I, int64_t il, const float* x_in, float* out) {
    const MoeConfig& mc = I.model->moe_config();
    router_logits(I, il, x_in);
    if (!out) return Status::ok();
    ExpertStore* store = I.model->expert_store();
    store->begin_layer((int)il);
    std::memcpy(out, I.b.x2, (size_t)(I.T * I.d.D) * sizeof(float));
    const ExpertAdapter* ad = nullptr;  // the experts' trainable terms, where the layer has some
    if (I.layer_has_expert_params(il)) {
        I.expert_ad.resize((size_t)I.d.E);
        for (int32_t e = 0; e < (int32_t)I.d.E; ++e) I.expert_ad[(size_t)e] = expert_terms(I, il, e);
        ad = I.expert_ad.data();
    }
    // the inference code path (an adapter with these terms runs the same code, alpha / r folded into B)
    return moe_ffn(mc, store, I.be.get(), (int)il, I.b.xn2, I.b.ridx, I.b.rw, I.T, I.d.D, &I.b.moe, out, ad);
}

Status train_moe_bwd(Trainer::Impl& I, int64_t il, const float* dxo, float* dxn, float* dres) {
    const MoeConfig& mc = I.model->moe_config();
    const TrainDims& d = I.d;
    TrainBuffers& b = I.b;
    const int64_t T = I.T, D = d.D, E = d.E, K = d.K, Fe = d.Fe;
    const MoeGroups& g = b.moe.groups;
    const int n_used = moe_group(b.ridx, b.rw, T, K, E, g);
    ExpertStore* store = I.model->expert_store();
    store->begin_layer((int)il);
    store->prefetch((int)il, g.experts, n_used);
    train_zero(dxn, T * D);
    for (int32_t e = 0; e < (int32_t)E; ++e) {
        const int64_t ne = g.count[e];
        if (ne == 0) continue;
        const int32_t* routes = g.token_of + g.start[e];
        ExpertMatrices em;
        EDGE_TRY(acquire(I, il, e, &em));
        expert_fwd(I, il, e, em, routes, ne);
        for (int64_t i = 0; i < ne; ++i) {
            const int64_t r = routes[i], t = r / K;
            const float *go = dxo + t * D, *y = b.moe.ye + i * D;
            float dot = 0.f;
            for (int64_t c = 0; c < D; ++c) dot += go[c] * y[c];
            b.dw[r] = dot;
            const float wr = b.rw[r];
            float* dy = b.dye + i * D;
            for (int64_t c = 0; c < D; ++c) dy[c] = wr * go[c];
        }
        train_zero(b.dhe, ne * Fe);
        train_linear_bwd_slots(I, I.eslot(il, e, TGT_DOWN), em.down, b.he, b.dye, ne, b.dhe);
        if (mc.act_relu) {
            const float *ge = b.moe.gate, *ue = b.moe.up;
            for (int64_t i = 0; i < ne * Fe; ++i) {
                const bool on = ge[i] > 0.f;
                b.dge[i] = on ? b.dhe[i] * ue[i] : 0.f;
                b.due[i] = on ? b.dhe[i] * ge[i] : 0.f;
            }
        } else {
            I.kt->silu_mul_bwd.fn(b.moe.gate, b.moe.up, b.dhe, ne * Fe, b.dge, b.due);
        }
        train_zero(b.dxe, ne * D);
        train_linear_bwd_slots(I, I.eslot(il, e, TGT_GATE), em.gate, b.moe.xe, b.dge, ne, b.dxe);
        train_linear_bwd_slots(I, I.eslot(il, e, TGT_UP), em.up, b.moe.xe, b.due, ne, b.dxe);
        store->release((int)il, e);
        for (int64_t i = 0; i < ne; ++i) {
            float* dst = dxn + (routes[i] / K) * D;
            const float* src = b.dxe + i * D;
            for (int64_t c = 0; c < D; ++c) dst[c] += src[c];
        }
    }
    for (int64_t t = 0; t < T; ++t)
        moe_route_bwd(mc, b.rlogits + t * E, b.ridx + t * K, b.rw + t * K, b.dw + t * K, b.dlogits + t * E);
    float* dr = mc.router_on_residual ? dres : dxn;
    if (mc.router_on_residual) train_zero(dres, T * D);
    train_gemm_t(I, I.w(il).router, b.dlogits, T, dr);
    return Status::ok();
}

}  // namespace edge
