// route_bwd.h — the gradient of the routing weights (moe.h) with respect to the router logits of one token,
// the top-k indices held constant (as autograd sees torch.sort / gather):
//   softmax gating: p = softmax(l) over all E, s_j = p[idx_j];  sigmoid: s_j = σ(l[idx_j])
//   norm_topk: w_j = s_j / Σ_m s_m, else w_j = s_j
// Given dw [K] (d loss / d w_j) returns dl [E] ("="):
//   ds_j = norm_topk ? (dw_j − Σ_m dw_m·w_m) / Σ_m s_m : dw_j
//   softmax: dl_e = p_e · (Σ_{j: idx_j = e} ds_j − Σ_j ds_j·s_j);  sigmoid: dl[idx_j] = ds_j·s_j·(1 − s_j), 0 elsewhere
// f32, sums in index order (p recomputed exactly as moe_route computes it). Pure.
#pragma once

#include <cstdint>

#include "../moe.h"

namespace edge {

void moe_route_bwd(const MoeConfig& c, const float* logits, const int32_t* idx, const float* w, const float* dw,
                   float* dl);

}  // namespace edge
