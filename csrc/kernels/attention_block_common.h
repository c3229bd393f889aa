// attention_block_common.h — the ISA-neutral frame of the blocked (prefill) attention kernels
// attention_block_{avx2,avx512,neon,rvv}.cpp (contract: kernels.h attention_block_fn / attention_block_kivi_fn): the
// rows' state, its start before the first K tile and its end after the last, the walk over the tiles and the grouping
// of rows. What touches vectors stays in each ISA file: a group's scores and online-softmax update on one tile (the
// rescale skipped while m is -inf: o and l are zero then), and o += w·V.
//   Rows r = t·n_head + g, R = n_tok·n_head: q_r = q + t·q_stride + g·Dh, o_r = out + t·out_stride + g·Dh (f32, Dh
//   each; o_r is the accumulator o of kernels.h). Scratch, kAttnBlockRowFloats = kKTile + 2 floats a row: w [R][kKTile]
//   the current tile's weights, then m [R] the running max, then l [R] the running sum.
//   Start: m = -inf, l = 0, o = 0 (+0.0f). Finish: o_r ·= 1/l_r, with the file's own row scaling.
// No intrinsics; internal linkage, as kivi_parts.h: each file compiled with its own -m flags keeps its own copy.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels.h"

namespace edge {
namespace {

struct AttnBlockCtx {
    const float* q;
    int64_t q_stride, n_head, Dh, out_stride;
    const int64_t *pb, *pe;  // p_begin[t], p_end[t]
    float* out;
    float *w, *m, *l;  // scratch: [R][kKTile] weights of the tile, [R] running max, [R] running sum
    float scale;       // 1 / sqrt(Dh)
    float* o(int64_t r) const { return out + (r / n_head) * out_stride + (r % n_head) * Dh; }
    const float* qr(int64_t r) const { return q + (r / n_head) * q_stride + (r % n_head) * Dh; }
};

// The rows' state before the first tile; *lo, *hi = the union [min p_begin, max p_end) of the rows' positions.
inline AttnBlockCtx attn_block_start(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* pb,
                                     const int64_t* pe, int64_t Dh, float* scratch, float* out, int64_t out_stride,
                                     int64_t* lo, int64_t* hi) {
    const int64_t R = n_tok * n_head;
    AttnBlockCtx c{q, q_stride, n_head, Dh, out_stride, pb, pe, out, scratch, scratch + R * kKTile,
                   scratch + R * (kKTile + 1), 1.0f / std::sqrt((float)Dh)};
    *lo = pb[0], *hi = pe[0];
    for (int64_t t = 1; t < n_tok; ++t) *lo = pb[t] < *lo ? pb[t] : *lo, *hi = pe[t] > *hi ? pe[t] : *hi;
    for (int64_t r = 0; r < R; ++r) {
        c.m[r] = -INFINITY, c.l[r] = 0.f;
        std::memset(c.o(r), 0, (size_t)Dh * sizeof(float));
    }
    return c;
}

// f(p0, j0, j1) for each K tile meeting [lo, hi), in position order: p0 its first position (a multiple of kKTile),
// [j0, j1) the lanes of [lo, hi) in it.
template <class F>
inline void attn_block_tiles(int64_t lo, int64_t hi, F&& f) {
    for (int64_t p0 = lo / kKTile * kKTile; p0 < hi; p0 += kKTile)
        f(p0, (lo > p0 ? lo : p0) - p0, (hi < p0 + kKTile ? hi : p0 + kKTile) - p0);
}

// f(std::integral_constant<int, N>(), r0) for rows [r0, r0 + N) of [0, R) in order: N = NR while NR rows are left,
// then N = 1.
template <int NR, class F>
inline void attn_block_row_groups(int64_t R, F&& f) {
    int64_t r = 0;
    for (; r + NR <= R; r += NR) f(std::integral_constant<int, NR>(), r);
    for (; r < R; ++r) f(std::integral_constant<int, 1>(), r);
}

// o_r ·= 1/l_r for every row; scale_row(o, Dh, f): the file's o[0, Dh) *= f.
template <class ScaleRow>
inline void attn_block_finish(const AttnBlockCtx& c, int64_t R, ScaleRow&& scale_row) {
    for (int64_t r = 0; r < R; ++r) scale_row(c.o(r), c.Dh, 1.0f / c.l[r]);
}

}  // namespace
}  // namespace edge
