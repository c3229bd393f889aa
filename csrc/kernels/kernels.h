// kernels.h — the kernel table: every compute op, one function pointer per op (and per weight dtype),
// filled once at start-up from CPU probing. Kernels are pure: the caller passes inputs, output and any
// scratch; no allocation, logging, throwing or global state.
//
// The scalar reference (csrc/kernels/ref/, suffix _ref) is the spec. Each ISA file
// (csrc/kernels/x86/*_avx2.cpp, *_avx512.cpp, ...) implements the same signatures and registers
// what it has with kernels_register_<isa>(); ops it lacks keep the previous level's entry, so a
// missing ISA op falls back to the reference automatically.
//
// Levels (x86-64): ref < avx2 (AVX2+FMA+F16C) < avx512 (F+BW+VL+DQ) < avx512vnni (+VNNI).
// Levels (aarch64): ref < neon (armv8.0 ASIMD) < dotprod (+SDOT, +fp16) < i8mm (+SMMLA), from AT_HWCAP/AT_HWCAP2.
// Levels (riscv64): ref < rvv (RVV 1.0, any VLEN >= 128), from the AT_HWCAP 'V' bit.
// EDGE_KERNELS=<level> caps the level used by kernels_default() (e.g. EDGE_KERNELS=ref in tests).
#pragma once

#include <cstdint>

#include "../quant.h"
#include "backward.h"

namespace edge {

// Y[c * ldy + r] = dot(W row r, X column c) for r in [0, rows), c in [0, ncols).
//   W:   rows × n weights of the table's dtype, row r at (const char*)W + r * w_stride bytes.
//   X:   for int_dot dtypes, ncols rows of n/32 block_q8x, column c at X + c * x_stride (in blocks);
//        for float dtypes, ncols rows of n floats, column c at (const float*)X + c * x_stride.
//   n:   a multiple of the dtype's block size and, for int_dot dtypes, of 32; f32/f16/bf16 take any n >= 1.
// Accumulation: int32 within a 32-element block (exact), f32 across blocks. SIMD variants may
// reorder the f32 sum; the declared bound vs the reference is |Δ| ≤ 1e-5·Σ|block terms| + 1e-30.
// No alignment is required of W, X or Y.
typedef void (*gemm_fn)(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X,
                        int64_t x_stride, int64_t ncols, float* Y, int64_t ldy);

// y[0..n) = dequantized elements of a row of n elements (n a multiple of the block size). Exact.
typedef void (*dequant_fn)(const void* src, float* y, int64_t n);

// Quantizes n floats (n % 32 == 0) to n/32 block_q8x (see quant.h). Bit-exact across ISAs.
typedef void (*quantize_q8x_fn)(const float* x, block_q8x* y, int64_t n);

// One attention head over cached positions (f32 K/V):
//   out[0..Dh) = Σ_p softmax_p(q·K_p / sqrt(Dh)) · V_p,  p_begin <= p < n_pos
//   (p_begin > 0 for a sliding window; 0 <= p_begin < n_pos; scratch[p] is used for p < n_pos).
//   K is stored in tiles of kKTile positions, transposed within a tile:
//     K_p[i] = kt[(p / kKTile) * kKTile * Dh + i * kKTile + p % kKTile]
//   so one vector load covers 16 positions (no horizontal sums) and appending a position writes one
//   contiguous Dh·64-byte region. V_p at v + p * v_stride (floats). scratch holds n_pos floats.
// Any head_dim >= 1 and n_pos >= 1; lanes of the last tile past n_pos are never read into results.
// No alignment required. The reference accumulates in f32 in position order with expf; SIMD variants
// reorder sums and use a polynomial exp (rel. err < 2e-7), so the declared bound vs the reference is
// |Δout| ≤ 1e-5 · max_p ||V_p||_inf.
constexpr int64_t kKTile = 16;

// y[i] = silu(g[i]) * u[i] = g[i] / (1 + e^-g[i]) * u[i], i < n (the SwiGLU gate); y may alias g or u.
// Reference: expf in f32. SIMD variants use the polynomial exp: |Δy| ≤ 1e-6 · |g·u| + 1e-30.
typedef void (*silu_mul_fn)(const float* g, const float* u, int64_t n, float* y);
typedef void (*attention_fn)(const float* q, const float* kt, const float* v, int64_t v_stride, int64_t p_begin,
                             int64_t n_pos, int64_t head_dim, float* scratch, float* out);

// The same head over a KV cache stored in f16 or int8 (--kv f16 | q8; backend.h KvType). Layout as
// attention_fn: K in transposed tiles of kKTile positions (elements, not floats), V_p at v + p * v_stride
// elements.
//   f16: K_p[i], V_p[i] are IEEE half; the reference converts each element exactly and then computes
//        exactly as attention_ref (so it equals attention_ref on the converted cache bit for bit).
//   q8:  K_p[i] = ks[p] · kq, V_p[i] = vs[p] · vq (int8 codes, one f32 scale per position and head:
//        kv_append's per-(token, head) symmetric quantization, d = amax / 127). Scores are
//        ks[p] · (Σ_i q[i] · kq_p[i]) (f32, index order), the V sum Σ_p (a_p · vs[p]) · vq_p — the
//        dequantized cache up to the rounding of these regrouped products (bound vs attention_ref on the
//        dequantized cache: |Δout| ≤ 1e-5 · max_p ||V_p||_inf, as for the SIMD f32 kernels).
// SIMD variants: the bound of attention_fn vs their reference. Scratch, p_begin, n_pos: as attention_fn.
typedef void (*attention_f16_fn)(const float* q, const uint16_t* kt, const uint16_t* v, int64_t v_stride, int64_t p_begin,
                                 int64_t n_pos, int64_t head_dim, float* scratch, float* out);
typedef void (*attention_q8_fn)(const float* q, const int8_t* kt, const float* ks, const int8_t* v, const float* vs,
                                int64_t v_stride, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch, float* out);

// KIVI (Liu et al. 2024; --kv kivi4 | kivi2): asymmetric b-bit codes (b = 4 or 2) with an f16 scale and min per
// block of kKiviGroup = 32 values, K per channel and V per token, and the most recent positions kept in f16.
// One block: x_j = d · c_j + m (f32 products of the f16-converted d, m; c_j in [0, 2^b)), j < 32:
//   block_kivi4: c_j in the low nibble of qs[j] (j < 16) or the high nibble of qs[j - 16];
//   block_kivi2: c_j in bits 2·(j / 8) .. 2·(j / 8) + 1 of qs[j % 8].
// One kv head's cache for the attention kernels (all offsets in elements of the pointer's type):
//   attention sinks, p < n_sink (0, or kKiviGroup once the first group has left the residual window: the first
//     32 positions stay f16 and are never quantized, as KIVI / KVQuant / IntactKV keep them): K_p[i] =
//     ks[(p / kKTile) · kKTile · head_dim + i · kKTile + p % kKTile], V_p[i] = vs[p · vr_stride + i]
//   quantized part, n_sink <= p < n_quant (n_quant a multiple of 32; group g = p / 32, lane j = p % 32,
//     g0 = n_sink / 32 the groups before the first block):
//     K_p[i] = lane j of kq[(g - g0) · head_dim + i]          (channel i's 32 positions of group g: one block)
//     V_p[i] = lane i % 32 of vq[(p - n_sink) · vq_stride + i / 32] (position p's head vector, 32 channels a block)
//     K outlier channels (n_out > 0, --kv kivi2): group g keeps n_out distinct channels in f16, the entries
//     ko[(g - g0) · n_out + o], o < n_out; an entry's channel ch has an all-zero block (d = m = 0, codes 0) and
//     K_p[ch] = (that block's lane j, +0) + f16 value v[j] of the entry — exactly the f16 value
//   residual, n_quant <= p < n_pos: f16 in a ring of `ring` slots (a multiple of kKTile), position p at slot
//     s = p % ring: K_p[i] = kr[(s / kKTile) · kKTile · head_dim + i · kKTile + s % kKTile] (attention_fn's
//     transposed tiles over slots), V_p[i] = vr[s · vr_stride + i]. The ring holds n_pos - n_quant <= ring
//     positions; a tile never straddles the wrap (n_quant and ring are multiples of kKTile).
// head_dim must be a multiple of 32. Any p_begin < n_pos (a window may start inside a group or the ring).
constexpr int64_t kKiviGroup = 32;
struct block_kivi4 {
    uint16_t d, m;  // f16 scale and min
    uint8_t qs[16];
};
struct block_kivi2 {
    uint16_t d, m;
    uint8_t qs[8];
};
struct KiviOutlier {
    uint16_t v[32];  // f16: the channel's 32 positions of the group
    uint16_t ch;
};
static_assert(sizeof(block_kivi4) == 20 && sizeof(block_kivi2) == 12 && sizeof(KiviOutlier) == 66, "KIVI block layout");
// Both layouts in pieces of 8 lanes, as the SIMD kernels decode them: lanes 8k .. 8k+7 (k < 4) are
// (qs[KiviBits<B>::off(k) + t] >> KiviBits<B>::shift(k)) & KiviBits<B>::mask, t < 8.
template <class B>
struct KiviBits;
template <>
struct KiviBits<block_kivi4> {
    static constexpr int mask = 15, levels = 15;
    static constexpr int off(int k) { return (k & 1) * 8; }
    static constexpr int shift(int k) { return (k >> 1) * 4; }
};
template <>
struct KiviBits<block_kivi2> {
    static constexpr int mask = 3, levels = 3;
    static constexpr int off(int) { return 0; }
    static constexpr int shift(int k) { return 2 * k; }
};
struct KiviHead {
    const void* kq = nullptr;  // block_kivi4 / block_kivi2 (the slot's b)
    const void* vq = nullptr;
    int64_t vq_stride = 0;     // blocks between positions of V
    int64_t n_quant = 0;
    const uint16_t* kr = nullptr;
    const uint16_t* vr = nullptr;
    int64_t vr_stride = 0;
    int64_t ring = 0;
    const uint16_t* ks = nullptr;  // the sink group (n_sink > 0 only)
    const uint16_t* vs = nullptr;
    int64_t n_sink = 0;            // 0 or kKiviGroup, <= n_quant
    const KiviOutlier* ko = nullptr;  // the K outlier channels (n_out > 0 only)
    int64_t n_out = 0;                // per group
};
// out = attention over the head's positions [p_begin, n_pos) as attention_fn, reading the stored form:
// the reference (attention_kivi4_ref / attention_kivi2_ref) dequantizes each K / V element as the block
// formula says (f32) and then computes exactly as attention_f16_ref; with n_quant = 0 and n_pos <= ring
// (nothing quantized, no wrap) every level's kernel is that level's attention_f16 on (kr, vr), bit for bit.
// SIMD variants regroup the quantized part: scores (Σ_i (q_i·d_i)·c_i + Σ_i q_i·m_i) / sqrt(Dh), V sums
// Σ_p (a_p·d)·c + Σ_p a_p·m. Declared bound vs the reference: |Δout| ≤ 1e-5 · Vmax · max(1, S), where Vmax =
// the largest |d|·(2^b - 1) + |m| of a V block read (max |V_p[i]| for residual rows) and S = the largest
// Σ_i |q_i|·(|d_i|·(2^b - 1) + |m_i| + |the outlier value of channel i|) / sqrt(Dh) of a quantized K position (the
// score terms' magnitude). The outlier channels' f16 values add Σ_o q_ch·v[j] to the group's scores.
typedef void (*attention_kivi_fn)(const float* q, const KiviHead& c, int64_t p_begin, int64_t n_pos, int64_t head_dim,
                                  float* scratch, float* out);
// Blocked attention (prefill): several query rows of ONE kv head against its cached positions, each K
// tile read once per call instead of once per row. Rows r = t·n_head + g (t < n_tok tokens, g < n_head
// query heads sharing the kv head, n_tok, n_head >= 1):
//   q_r = q + t·q_stride + g·head_dim, out_r = out + t·out_stride + g·head_dim (f32, head_dim each)
//   out_r = Σ_p softmax_p(q_r·K_p / sqrt(head_dim)) · V_p over p_begin[t] <= p < p_end[t]
//   (per token: the causal end and the sliding window's start; 0 <= p_begin[t] < p_end[t]).
// K / V layouts and element forms as attention_fn / attention_f16_fn / attention_q8_fn (q8: the same
// per-position scales ks / vs). Online (flash-style) softmax, one update per K tile of kKTile positions
// in tile order: for each tile j meeting the row's range, with s_p the row's scores there (q8: ks[p]·(q·kq_p),
// then ·1/sqrt(head_dim), as attention_q8_ref):  mt = max(m, max s_p);  if mt > m: l·= e^(m-mt), o·= e^(m-mt),
// m = mt;  e_p = e^(s_p - m);  l += Σ e_p;  o += Σ e_p·V_p (q8: (e_p·vs[p])·vq_p);  at the end out_r = o·(1/l).
// A tile outside a row's range changes nothing of that row, so each row's result depends only on its own
// q, range and the cache, never on which other rows share the call (nor on the thread split), and a ring
// (backend.h KvLayer) gives the full cache's bits (its slot offsets are whole tiles).
// Reads: K tiles meeting [min p_begin, max p_end) (whole tiles; lanes outside the union are never used);
// V_p, ks[p], vs[p] for p in that union only. SIMD variants multiply rows' zero weights with V_p of the union
// outside the row's own range, so those V_p must be finite (the model's cache always is).
// out_r is used as the accumulator o (written before the end). scratch: n_tok·n_head·kAttnBlockRowFloats
// floats. Reference: f32, lanes in position order, expf. SIMD: sums reordered, polynomial exp; declared
// bound vs float64 attention: |Δout| <= 1e-5 · max_p ||V_p||_inf (as attention_fn; checked at n_pos ~1000).
constexpr int64_t kAttnBlockRowFloats = kKTile + 2;
typedef void (*attention_block_fn)(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
                                   const int64_t* p_end, const float* kt, const float* v, int64_t v_stride, int64_t head_dim,
                                   float* scratch, float* out, int64_t out_stride);
typedef void (*attention_block_f16_fn)(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
                                       const int64_t* p_end, const uint16_t* kt, const uint16_t* v, int64_t v_stride,
                                       int64_t head_dim, float* scratch, float* out, int64_t out_stride);
typedef void (*attention_block_q8_fn)(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
                                      const int64_t* p_end, const int8_t* kt, const float* ks, const int8_t* v, const float* vs,
                                      int64_t v_stride, int64_t head_dim, float* scratch, float* out, int64_t out_stride);
// Blocked attention over one kv head's KIVI cache (--kv kivi4 | kivi2; the prefill of attention_kivi_fn): the rows,
// ranges, scratch and online softmax of attention_block_fn over the view c (attention_kivi_fn's layout), which every
// row of the call shares — the backend cuts blocks where kivi_quantized changes, so c is each row's own per-token
// view. p_begin[t] < p_end[t] <= c.n_quant + c.ring (the ring holds each row's f16 part). Update units are tiles of
// kKTile positions in position order, each in one part (n_sink, n_quant multiples of 32): the sink group's tiles,
// the halves of a quantized group (lanes 0..15, 16..31), the ring's tiles at slot p % ring.
// Reference (attention_block_kivi4_ref / _kivi2_ref): each element dequantized as attention_kivi_ref, then
// attention_block_f16_ref's arithmetic (so with nothing quantized and no wrap it is attention_block_f16_ref bit for
// bit; the backend calls each level's attention_block_f16 itself there). SIMD variants dequantize each quantized tile
// once (d·c + m as the reference, the outlier channels' f16 values in place) into the scratch after the rows' part
// and run their attention_block loops over it (f32 tiles) and over the f16 sink / ring tiles. scratch:
// n_tok·n_head·kAttnBlockRowFloats + kAttnBlockKiviTileFloats·head_dim floats. Declared bound vs float64 attention
// on the dequantized cache, and vs attention_kivi_fn per row: attention_kivi_fn's |Δout| <= 1e-5 · Vmax · max(1, S).
constexpr int64_t kAttnBlockKiviTileFloats = 2 * kKTile;  // per head_dim: a tile's K [head_dim][16] and V [16][head_dim]
typedef void (*attention_block_kivi_fn)(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
                                        const int64_t* p_end, const KiviHead& c, int64_t head_dim, float* scratch, float* out,
                                        int64_t out_stride);

// One slot of the table: the function and the name of the level that implements it ("ref", "avx2", ...;
// "none" while empty), for `edgerun --verbose`, `_core.kernel_table` and tests.
template <class F>
struct KernelSlot {
    F fn = nullptr;
    const char* impl = "none";
};

struct KernelTable {
    const char* level = nullptr;  // "ref", "avx2", ...
    KernelSlot<gemm_fn> gemm[EDGE_DTYPE_COUNT];
    KernelSlot<dequant_fn> dequant[EDGE_DTYPE_COUNT];
    KernelSlot<quantize_q8x_fn> quantize_q8x;
    KernelSlot<attention_fn> attention;
    KernelSlot<attention_f16_fn> attention_f16;
    KernelSlot<attention_q8_fn> attention_q8;
    KernelSlot<attention_kivi_fn> attention_kivi4;
    KernelSlot<attention_kivi_fn> attention_kivi2;
    KernelSlot<attention_block_fn> attention_block;
    KernelSlot<attention_block_f16_fn> attention_block_f16;
    KernelSlot<attention_block_q8_fn> attention_block_q8;
    KernelSlot<attention_block_kivi_fn> attention_block_kivi4;
    KernelSlot<attention_block_kivi_fn> attention_block_kivi2;
    KernelSlot<silu_mul_fn> silu_mul;
    // training (backward.h)
    KernelSlot<gemm_t_fn> gemm_t[EDGE_DTYPE_COUNT];
    KernelSlot<gemm_tn_f32_fn> gemm_tn_f32;
    KernelSlot<rmsnorm_bwd_fn> rmsnorm_bwd;
    KernelSlot<silu_mul_bwd_fn> silu_mul_bwd;
    KernelSlot<attention_bwd_fn> attention_bwd;
    KernelSlot<lse_update_fn> lse_update;
    KernelSlot<xent_grad_fn> xent_grad;
    KernelSlot<adamw_fn> adamw;
};

// The one way a register_<level>.cpp fills a slot: kernel_set(&t->silu_mul, silu_mul_avx2, "avx2").
// (static: each file, whatever its -m flags, keeps its own copy; nothing is merged across ISAs.)
template <class F>
static inline void kernel_set(KernelSlot<F>* slot, F fn, const char* impl) {
    slot->fn = fn;
    slot->impl = impl;
}

// Calls f(name, slot) for every slot of the table in order: slot is a KernelSlot<F>, or for the per-dtype
// ops (gemm, dequant) an array of EDGE_DTYPE_COUNT of them indexed by dtype. The one list of op names,
// for reports (_core.kernel_table); a new op adds its member above and its line here.
template <class Table, class Fn>
void kernels_each_slot(Table& t, Fn&& f) {
    f("gemm", t.gemm);
    f("dequant", t.dequant);
    f("quantize_q8x", t.quantize_q8x);
    f("attention", t.attention);
    f("attention_f16", t.attention_f16);
    f("attention_q8", t.attention_q8);
    f("attention_kivi4", t.attention_kivi4);
    f("attention_kivi2", t.attention_kivi2);
    f("attention_block", t.attention_block);
    f("attention_block_f16", t.attention_block_f16);
    f("attention_block_q8", t.attention_block_q8);
    f("attention_block_kivi4", t.attention_block_kivi4);
    f("attention_block_kivi2", t.attention_block_kivi2);
    f("silu_mul", t.silu_mul);
    f("gemm_t", t.gemm_t);
    f("gemm_tn_f32", t.gemm_tn_f32);
    f("rmsnorm_bwd", t.rmsnorm_bwd);
    f("silu_mul_bwd", t.silu_mul_bwd);
    f("attention_bwd", t.attention_bwd);
    f("lse_update", t.lse_update);
    f("xent_grad", t.xent_grad);
    f("adamw", t.adamw);
}

// Level names this host can run, lowest first (always starts with "ref").
int kernels_levels(const char** names, int max_names);
// The table for a level this host supports (nullptr for an unknown/unsupported name).
const KernelTable* kernels_for(const char* level);
// The best supported level, capped by $EDGE_KERNELS when set.
const KernelTable* kernels_default();

// Registration hooks: each sets the slots its ISA implements, leaving others untouched.
void kernels_register_ref(KernelTable* t);
#if defined(__x86_64__) || defined(_M_X64)
void kernels_register_avx2(KernelTable* t);
void kernels_register_avx512(KernelTable* t);
void kernels_register_avx512vnni(KernelTable* t);
#endif
#if defined(__aarch64__)
void kernels_register_neon(KernelTable* t);
void kernels_register_dotprod(KernelTable* t);
void kernels_register_i8mm(KernelTable* t);
#endif
#if defined(__riscv) && __riscv_xlen == 64
void kernels_register_rvv(KernelTable* t);
#endif

}  // namespace edge
