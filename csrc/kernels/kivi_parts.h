// kivi_parts.h — how the SIMD kernels walk a KIVI view (kernels.h KiviHead): the per-token kernels
// (attention_kivi_{avx2,neon,rvv}.cpp) its f16 parts for one query's range with one tile / row loop (the sink group
// in its own 32 slots, the residual ring), the blocked kernels (attention_block_{avx2,neon,rvv}.cpp) its tiles in
// position order, each in one part. ISA-neutral (no intrinsics); internal linkage, as the ISA utility headers: files
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

// For each tile p0 = lo rounded down to kKTile, ... < hi (union lanes [j0, j1) of [lo, hi)): an f16 tile of the sink
// or the ring, f16(p0, j0, j1, K tile, V rows of the tile's first position), or the half (0 | 1: lanes 0..15 |
// 16..31) of a quantized group, quant(p0, j0, j1, half, channel 0's K block, the first position's V blocks, the
// group's K outlier entries (n_out of them)).
// hi <= n_quant + ring; a ring tile's slot p0 % ring is a multiple of kKTile (never straddles the wrap).
template <class B, class F16, class Quant>
inline void kivi_walk_tiles(const KiviHead& c, int64_t lo, int64_t hi, int64_t head_dim, F16&& f16, Quant&& quant) {
    const B* kq = static_cast<const B*>(c.kq);
    const B* vq = static_cast<const B*>(c.vq);
    for (int64_t p0 = lo / kKTile * kKTile; p0 < hi; p0 += kKTile) {
        const int64_t j0 = (lo > p0 ? lo : p0) - p0, j1 = (hi < p0 + kKTile ? hi : p0 + kKTile) - p0;
        if (p0 < c.n_sink) {
            f16(p0, j0, j1, c.ks + p0 * head_dim, c.vs + p0 * c.vr_stride);
        } else if (p0 < c.n_quant) {
            const int64_t g = (p0 - c.n_sink) / kKiviGroup;
            quant(p0, j0, j1, (int)(p0 % kKiviGroup / kKTile), kq + g * head_dim, vq + (p0 - c.n_sink) * c.vq_stride,
                  c.n_out ? c.ko + g * c.n_out : nullptr);
        } else {
            const int64_t s = p0 % c.ring;
            f16(p0, j0, j1, c.kr + s * head_dim, c.vr + s * c.vr_stride);
        }
    }
}

}  // namespace
}  // namespace edge
