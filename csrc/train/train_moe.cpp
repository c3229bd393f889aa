// train_moe.cpp — a mixture-of-experts FFN layer for training (train_layer.h, moe.h):
//   logits = W_router·r (r = x_in with router_input = residual, else xn2);  idx, w = route(logits)
//   out = x2 + Σ_j w_j · expert_{idx_j}(xn2)                 (moe_ffn: the inference code path)
// Backward, the experts and the router frozen, idx constant: for each used expert, in ascending index
// order (a fixed order, so d xn2 sums the same bits whatever the store serves first), its FFN is
// recomputed over its tokens and differentiated:
//   dw[t, j] = d out[t] · y_tj;  d y_tj = w[t, j] · d out[t];  then down / act·mul / gate, up transposed
// and the routing weights' gradient goes through moe_route_bwd and W_routerᵀ to the router's input.
// Experts come from the model's ExpertStore (streamed or resident), one pinned at a time.
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

}  // namespace

Status train_moe_fwd(Trainer::Impl& I, int64_t il, const float* x_in, float* out) {
    const MoeConfig& mc = I.model->moe_config();
    router_logits(I, il, x_in);
    if (!out) return Status::ok();
    ExpertStore* store = I.model->expert_store();
    store->begin_layer((int)il);
    std::memcpy(out, I.b.x2, (size_t)(I.T * I.d.D) * sizeof(float));
    return moe_ffn(mc, store, I.be.get(), (int)il, I.b.xn2, I.b.ridx, I.b.rw, I.T, I.d.D, &I.b.moe, out);
}

Status train_moe_bwd(Trainer::Impl& I, int64_t il, const float* dxo, float* dxn, float* dres) {
    const MoeConfig& mc = I.model->moe_config();
    const TrainDims& d = I.d;
    TrainBuffers& b = I.b;
    CpuBackend& be = *I.be;
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
        be.moe_gather(b.xn2, D, routes, ne, K, b.moe.xe);
        {
            const Matrix* ws[2] = {&em.gate, &em.up};
            float* ys[2] = {b.moe.gate, b.moe.up};
            be.matmul(ws, ys, 2, b.moe.xe, ne);
        }
        std::memcpy(b.he, b.moe.gate, (size_t)(ne * Fe) * sizeof(float));
        be.act_mul(b.he, b.moe.up, ne * Fe, mc.act_relu ? Act::RELU : Act::SILU);
        {
            const Matrix* wd = &em.down;
            float* y = b.moe.ye;
            be.matmul(&wd, &y, 1, b.he, ne);
        }
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
        train_gemm_t(I, em.down, b.dye, ne, b.dhe);
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
        train_gemm_t(I, em.gate, b.dge, ne, b.dxe);
        train_gemm_t(I, em.up, b.due, ne, b.dxe);
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
