// kivi_parts.h — the f16 parts of a KIVI view (kernels.h KiviHead) for one query's range, as the per-token SIMD
// kernels (attention_kivi_{avx2,neon,rvv}.cpp) walk them with one tile / row loop: the sink group (its own 32
// slots) and the residual ring. ISA-neutral (no intrinsics); internal linkage, as the ISA utility headers: files
// compiled with different -m flags each keep their own copy.
#pragma once

#include <cstdint>

#include "kernels.h"

namespace edge {
namespace {

// Positions [from, to) (empty where from >= to) at slot p % ring of the K tiles k (kernels.h: tile of slot s at
// k + s·head_dim, s a multiple of kKTile) and of the V rows v (slot s at v + s·vr_stride).
struct KiviF16Part {
    const uint16_t *k, *v;
    int64_t ring, from, to;
};

// parts[0]: the sink group's positions in [p_begin, min(n_sink, n_quant, n_pos)); parts[1]: the ring's,
// [max(p_begin, min(n_quant, n_pos)), n_pos). Both ends of parts[0] and the start of parts[1] rounded down to a
// tile are still in their part (n_sink, n_quant multiples of 32).
inline void kivi_f16_parts(const KiviHead& c, int64_t p_begin, int64_t n_pos, KiviF16Part parts[2]) {
    const int64_t nq = c.n_quant < n_pos ? c.n_quant : n_pos, ns = c.n_sink < nq ? c.n_sink : nq;
    parts[0] = KiviF16Part{c.ks, c.vs, kKiviGroup, p_begin, ns};
    parts[1] = KiviF16Part{c.kr, c.vr, c.ring, p_begin > nq ? p_begin : nq, n_pos};
}

}  // namespace
}  // namespace edge
