// train_plan.cpp — every buffer of a training step as Planner entries (train_layer.h). The same function
// sizes the real plan and the trial plans of the budget message (the largest seq / batch that fit), so
// there is one list. Kinds: checkpoints, one layer's recomputed internals and the head's logits chunk are
// MemKind::ACTIVATIONS; gradients of activations, backward scratch and the flat parameter / gradient /
// optimizer arrays are MemKind::SCRATCH (named "train.param", "train.grad", "adam.m", "adam.v").
#include <algorithm>

#include "train_layer.h"

namespace edge {

void train_plan(const TrainDims& d, int threads, int64_t n_elem, bool adam, CpuBackend* be, Planner* p,
                TrainBuffers* b, float** theta, float** grad, float** m, float** v) {
    const MemKind A = MemKind::ACTIVATIONS, S = MemKind::SCRATCH;
    const int64_t T = d.T, D = d.D, Dq = d.Dq, Dkv = d.Dkv, F = d.F, Fe = d.Fe, half = d.Dh / 2;
    p->add("train.param", S, be, n_elem, theta);
    if (d.grads) p->add("train.grad", S, be, n_elem, grad);
    if (d.grads && adam) {
        p->add("adam.m", S, be, n_elem, m);
        p->add("adam.v", S, be, n_elem, v);
    }
    // checkpoints: every layer input (backward) or two rows of the residual stream (forward only)
    p->add("ckpt.x", A, be, (d.grads ? d.L : 2) * T * D, &b->ckpt);
    p->add("x.out", A, be, T * D, &b->xout);
    // one layer's internals
    p->add("act.xn1", A, be, T * D, &b->xn1);
    if (d.qk_norm) {
        p->add("act.q_pre", A, be, T * Dq, &b->qp);
        p->add("act.k_pre", A, be, T * Dkv, &b->kp);
    }
    p->add("act.q", A, be, T * Dq, &b->q);
    p->add("act.k", A, be, T * Dkv, &b->k);
    p->add("act.v", A, be, T * Dkv, &b->v);
    p->add("act.att", A, be, T * Dq, &b->att);
    p->add("act.x2", A, be, T * D, &b->x2);
    p->add("act.xn2", A, be, T * D, &b->xn2);
    if (F > 0) {
        p->add("act.gate", A, be, T * F, &b->g);
        p->add("act.up", A, be, T * F, &b->u);
        p->add("act.h", A, be, T * F, &b->h);
    }
    const int64_t ktile = (d.S + kKTile - 1) / kKTile * kKTile * d.Dh;
    b->kv.k_head_stride = ktile;
    p->add("act.kv.k", A, be, ktile * d.Hkv, &b->kv.k);
    p->add("act.kv.v", A, be, d.S * Dkv, &b->kv.v);
    p->add("act.xnf", A, be, T * D, &b->xnf);
    p->add("act.logits_chunk", A, be, T * d.Vc, &b->lc);
    p->add("head.lse_m", A, be, T, &b->lse_m);
    p->add("head.lse_s", A, be, T, &b->lse_s);
    p->add("head.l_target", A, be, T, &b->ltgt);
    p->add("head.target", A, nullptr, T, &b->tgt);
    p->add("rope.cos", S, be, d.S * half, &b->cos);
    p->add("rope.sin", S, be, d.S * half, &b->sin);
    p->add("rope.nsin", S, be, d.S * half, &b->nsin);
    p->add("rope.inv_freq", S, be, half, &b->inv_freq);
    if (d.E > 0) {
        p->add("moe.router_logits", A, be, T * d.E, &b->rlogits);
        p->add("moe.route_idx", A, nullptr, T * d.K, &b->ridx);
        p->add("moe.route_w", A, nullptr, T * d.K, &b->rw);
        b->moe.plan(p, be, T, D, d.E, d.K, Fe);
    }
    if (d.grads) {
        p->add("grad.dx", S, be, T * D, &b->dx);
        p->add("grad.dx2", S, be, T * D, &b->dx2);
        p->add("grad.dxn", S, be, T * D, &b->dxn);
        p->add("grad.dq", S, be, T * Dq, &b->dq);
        p->add("grad.datt", S, be, T * Dq, &b->datt);
        p->add("grad.dk", S, be, T * Dkv, &b->dk);
        p->add("grad.dv", S, be, T * Dkv, &b->dv);
        if (d.qk_norm) {
            p->add("grad.dq_pre", S, be, T * Dq, &b->dqp);
            p->add("grad.dk_pre", S, be, T * Dkv, &b->dkp);
        }
        if (F > 0) {
            p->add("grad.dgate", S, be, T * F, &b->dg);
            p->add("grad.dup", S, be, T * F, &b->du);
            p->add("grad.dh", S, be, T * F, &b->dh);
        }
        if (d.R > 0) {
            p->add("grad.lora_u", S, be, T * d.R, &b->lr_u);
            p->add("grad.lora_du", S, be, T * d.R, &b->lr_du);
        }
        p->add("grad.attention_scratch", S, be, (int64_t)threads * 2 * d.S, &b->att_scratch);
        p->add("grad.dlogits_chunk", S, be, T * d.Vc, &b->dl);
        if (d.E > 0) {
            p->add("grad.dres", S, be, T * D, &b->dres);
            p->add("grad.moe_dw", S, be, T * d.K, &b->dw);
            p->add("grad.moe_dlogits", S, be, T * d.E, &b->dlogits);
            p->add("grad.moe_dye", S, be, T * D, &b->dye);
            p->add("grad.moe_dxe", S, be, T * D, &b->dxe);
            p->add("act.moe_h", A, be, T * Fe, &b->he);
            p->add("grad.moe_dgate", S, be, T * Fe, &b->dge);
            p->add("grad.moe_dup", S, be, T * Fe, &b->due);
            p->add("grad.moe_dh", S, be, T * Fe, &b->dhe);
        }
    }
    StepShape shape;
    shape.tokens = T;
    shape.ctx = d.S;
    shape.max_width = std::max({D, F, Dq, Fe});
    shape.head_dim = d.Dh;
    shape.max_rank = d.R;
    shape.n_experts = d.E;
    shape.n_used = d.K;
    be->plan_scratch(shape, p);
}

}  // namespace edge
