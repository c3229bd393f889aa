// backend.h — the execution seam: the ops a decoder layer is made of, and the memory they run in.
// model.cpp / moe.cpp call only these; a backend (backend/cpu/ today; CUDA next) implements them.
// In the spirit of ggml's ggml_backend_i, but small: no graph, no scheduler — the forward pass is a
// fixed sequence of named ops issued by one thread.
//
// Memory: every pointer an op takes is in the backend's address space (device memory), allocated by
// the Planner (planner.h) through alloc(), or a view of host memory the device can read (weights in
// the mapping: map_weights()). Exceptions are named in the contract: `tokens` and the MoE route arrays
// are host memory (the expert store, on the host, reads the routes). A backend whose device cannot
// address host memory copies through upload()/download().
// Ops are asynchronous with respect to the host unless the backend is host_addressable(); sync()
// waits for everything issued. Ops never allocate and never fail on valid shapes (shapes are validated
// at load): they return void; a device fault surfaces in take_error(). alloc/map_weights return a Status.
//
// Shapes: T tokens (rows), D model width, H / Hkv query / kv heads, Dh head dim, Dq = H·Dh,
// Dkv = Hkv·Dh, E experts, k experts per token, n a row length. Activations are row-major f32 [T, n].
// Every op's numerics are those of the CPU backend's reference kernels (csrc/kernels/ref/, ops in
// backend/cpu/); a backend states its bound against them beside its implementation.
#pragma once

#include <cstdint>
#include <string>

#include "../common.h"
#include "../matrix.h"

namespace edge {

struct MoeConfig;
struct SamplerParams;

enum class Device : int { CPU = 0, CUDA = 1 };
const char* device_name(Device d);

// A block of memory on a device: owned (allocated by a backend's alloc, freed by its release) or a
// view of memory owned elsewhere (the file mapping, a caller's array).
struct Buffer {
    void* data = nullptr;
    int64_t bytes = 0;
    Device device = Device::CPU;
    bool owned = false;
};

// How K and V are stored (--kv): f32; f16; q8 = int8 codes with one f32 scale per (position, kv head),
// symmetric, d = amax / 127 over the head's Dh values (kernels.h attention_q8_fn); kivi4 / kivi2 = KIVI
// (kernels.h attention_kivi_fn): 4- / 2-bit asymmetric blocks, K per channel over 32 positions, V per token
// over 32 channels, the most recent kKiviResidual (+ up to 31) positions in an f16 ring, the first 32 (the
// attention sinks) in f16 beside it.
enum class KvType : int { F32 = 0, F16 = 1, Q8 = 2, KIVI4 = 3, KIVI2 = 4 };
const char* kv_type_name(KvType t);                    // "f32" | "f16" | "q8" | "kivi4" | "kivi2"
bool kv_type_parse(const std::string& s, KvType* out);  // false for an unknown name
int64_t kv_type_bytes(KvType t);                       // bytes per element (4, 2, 1); kivi: 2 (its f16 residual ring)
inline bool kv_type_kivi(KvType t) { return t == KvType::KIVI4 || t == KvType::KIVI2; }

// KIVI's residual window R: positions p < kivi_quantized(n) of a cache holding n positions are read from the
// quantized blocks, the rest (R to R + 31 positions) from the f16 ring. A group of 32 positions is
// quantized (K and V alike) when the whole group has left the most recent R positions. Attention for the
// query at position pos reads with n = pos + 1 (its own view, so a prefill step equals one-token decode).
constexpr int64_t kKiviResidual = 128;
// K outlier channels per (kv head, group of 32 positions) kept in f16 (kernels.h KiviOutlier), by form: kivi2's
// 2-bit K channels of largest magnitude are its largest error (bench/README.md: KV cache forms); kivi4 needs none.
constexpr int64_t kKiviOutliers2 = 4;
inline int64_t kivi_quantized(int64_t n) { return n > kKiviResidual ? (n - kKiviResidual) / 32 * 32 : 0; }

// One layer's KV cache on the device. K per kv head h at k + h·k_head_stride elements, in transposed
// tiles of kKTile positions (kernels.h: K_p[i] = kt[(p / kKTile)·kKTile·Dh + i·kKTile + p % kKTile]);
// V position p at v + p·Dkv elements. k and v hold elements of `type` (f32, f16 bits or int8 codes: cast);
// for q8 the scale of position p, kv head h is k_scale / v_scale[h·scale_head_stride + p].
// ring = R > 0 (a sliding-window layer, CPU only): R slots (a multiple of kKTile, >= window + the
// largest step - 1) kept twice — position p is written to slots p % R and p % R + R — so any window of
// <= R positions is contiguous in slot space, and attention reads slots [p_begin - b, pos - b] with
// b = (p_begin / R)·R: the same kernel call, bit for bit the values of a full cache. "Position" in the
// layout above then means "slot".
struct KvLayer {
    float* k = nullptr;
    float* v = nullptr;
    int64_t k_head_stride = 0;  // elements: ctx rounded up to whole tiles × Dh
    KvType type = KvType::F32;
    float* k_scale = nullptr;   // q8 only
    float* v_scale = nullptr;
    int64_t scale_head_stride = 0;  // ctx rounded up to whole tiles (with a ring: 2R)
    int64_t ring = 0;               // R, or 0: position p at slot p
    // kivi4 / kivi2 (never with ring): k / v hold the f16 residual ring of kivi_ring slots (a multiple of
    // kKTile, >= kKiviResidual + 31 + the largest step: every position a step's queries read in f16 is still
    // there), position p at slot p % kivi_ring, laid out as the f16 cache above. kivi_sink = 32 (the context has
    // quantized groups) or 0: the attention sinks, positions 0..31, are copied in f16 to kivi_sink more slots
    // after the ring (slots kivi_ring.. of each kv head's K and of V) when their group leaves the window, and
    // are never quantized; k_head_stride = (kivi_ring + kivi_sink)·Dh. Quantized blocks (block_kivi4 /
    // block_kivi2), g0 = kivi_sink / 32: K of kv head h, group g >= g0, channel i at
    // kq[h·kq_head_stride + (g - g0)·Dh + i]; V of position p >= kivi_sink, kv head h, channels 32c.. at
    // vq[(p - kivi_sink)·Dkv/32 + h·Dh/32 + c]. K outlier channels (kivi_out per group, kernels.h KiviOutlier) of
    // kv head h, group g >= g0: ko[h·ko_head_stride + (g - g0)·kivi_out + o], o < kivi_out.
    void* kq = nullptr;
    void* vq = nullptr;
    void* ko = nullptr;
    int64_t kq_head_stride = 0;  // blocks: (groups that can be quantized)·Dh
    int64_t ko_head_stride = 0;  // outlier entries: (groups that can be quantized)·kivi_out
    int64_t kivi_out = 0;
    int64_t kivi_ring = 0;
    int64_t kivi_sink = 0;
};

// Optional low-rank term of one matrix of a matmul: y += scale · B·(A·x), A [r, n] f32, B [rows, r] f32
// (LoRA). nullptr in a matmul's adapter list: none.
struct LowRank {
    const float* a = nullptr;
    const float* b = nullptr;
    int64_t rank = 0;
    float scale = 1.f;
};

enum class Act : int { SILU = 0, RELU = 1, GELU_TANH = 2 };  // GELU_TANH: 0.5·g·(1 + tanh(√(2/π)(g + 0.044715 g³)))

// What a step may need at most: backends size their own scratch from it (Backend::plan_scratch).
struct StepShape {
    int64_t tokens = 0;     // T, the largest step (ModelOptions::batch)
    int64_t ctx = 0;        // KV positions
    int64_t max_width = 0;  // the widest matmul input (max of D, d_ff, Dq, d_expert)
    int64_t head_dim = 0;   // Dh
    int64_t max_rank = 0;   // the largest LowRank rank (0: no adapters)
    int64_t stage_bytes = 0;  // the most weight bytes stage_weights() is given at once (an expert slot)
    int64_t n_experts = 0, n_used = 0;  // MoE: E and k (0 for a dense model)
    int64_t moe_layers = 0, d_expert = 0, d_model = 0;  // MoE: layers with experts, F, D (moe_device_*)
    int64_t vocab = 0;      // V: the head's rows (the device sampler's candidates)
    KvType kv = KvType::F32;  // the KV cache's form (the CPU's blocked KIVI kernels take a dequantized tile of scratch)
};

class Planner;

class Backend {
public:
    virtual ~Backend() = default;
    virtual const char* name() const = 0;
    virtual Device device() const = 0;
    // Ops may read and write host memory directly (the CPU; a unified-memory GPU with host-registered
    // buffers): no upload/download is needed between them and the caller.
    virtual bool host_addressable() const = 0;
    virtual int threads() const = 0;
    // One line for humans: the device, its capability and memory ("cpu" for the CPU).
    virtual std::string describe() const { return name(); }
    // Weights of this dtype can be a matmul / embed operand (int_dot dtypes also need cols % 32 == 0).
    virtual bool supports(uint32_t dtype) const = 0;

    // ---- memory ----
    // An owned buffer of `bytes` on the device, aligned to `align` (a power of two >= 64), contents
    // undefined unless zero. OUT_OF_MEMORY naming `what` when the device has no room.
    virtual Status alloc(int64_t bytes, int64_t align, bool zero, const char* what, Buffer* out) = 0;
    virtual void release(Buffer* b) = 0;  // frees an owned buffer; a view is only forgotten
    // Weights the device reads: a view of the mapping where it can read host memory, else a copy.
    virtual Status map_weights(const void* host, int64_t bytes, Buffer* out) = 0;
    // map_weights returns a view the device reads in place (no copy): the CPU; a unified-memory GPU (Jetson
    // Orin: one pool for CPU and GPU), or a discrete GPU reading host-registered mapped memory over the bus (the
    // stand-in tested on the H200). The plan then counts the weights once, as host memory (issue 9 §3), and
    // the model passes the view to release() when it is done with it.
    virtual bool weights_in_place() const { return host_addressable(); }
    virtual void upload(void* dst, const void* host, int64_t bytes) = 0;
    virtual void download(void* host, const void* src, int64_t bytes) = 0;
    // Declares the backend's own scratch for steps of `s` to the planner (allocated with the rest).
    virtual void plan_scratch(const StepShape& s, Planner* p) = 0;
    // Host matrices (an expert the store just read into a host slot) as the device reads them: out[i]
    // = in[i] where the device reads host memory, else copies in a staging area of stage_bytes, valid
    // until the next call. Their bytes must total <= StepShape::stage_bytes.
    virtual void stage_weights(const Matrix* in, int n, Matrix* out) = 0;
    // An expert of the store's slot as the device reads it (moe_ffn). The default stages it
    // (stage_weights). A backend that mirrors the store's slots in device memory (mirror_expert_slots)
    // copies a slot only when it last copied another unit (layer, expert, variant) there, so a resident
    // expert set is copied once. Returns true while the device may still read `in` (host memory): the
    // caller syncs before it releases the slot.
    virtual bool stage_expert(int layer, int expert, int variant, const Matrix* in, int n, Matrix* out) {
        stage_weights(in, n, out);
        return true;
    }
    // The device can hold a mirror of the store's slots (planned as an EXPERT_CACHE buffer of its own).
    virtual bool expert_mirror_supported() const { return false; }
    // The store's host slots [host, host + bytes) and the device mirror dev of the same size: slot s at
    // s·slot_bytes in both. The host range is pinned for asynchronous copies where possible; host =
    // nullptr forgets (and unpins) it, before the host memory is freed.
    virtual void mirror_expert_slots(uint8_t* host, uint8_t* dev, int64_t bytes, int64_t slot_bytes) {}
    // Device memory free now (bytes), -1 where the backend computes in host memory.
    virtual int64_t memory_free() const { return -1; }
    virtual void sync() = 0;
    // The first device error since the last call (ops return void: a device fault, e.g. a launch that
    // failed, is reported here; the model checks after every step). The CPU has none.
    virtual Status take_error() { return Status::ok(); }

    // ---- ops ----
    // x[t] = dequant(row tokens[t] of table), t < T. Exact (the dtype's dequant). tokens and table: host
    // memory (the mapping; a backend may keep its own device copy).
    virtual void embed(const Matrix& table, const int32_t* tokens, int64_t T, float* x) = 0;
    // y[r] = x[r] / sqrt(mean(x[r]²) + eps) · w (w = nullptr: unweighted), for `rows` rows of n; y may
    // alias x. f32 accumulation in index order. One row per token (attn/ffn/output norm), per head
    // (q/k norm: rows = T·H, n = Dh) or per whole projection (OLMoE: rows = T, n = Dq).
    virtual void rmsnorm(const float* x, const float* w, float eps, int64_t rows, int64_t n, float* y) = 0;
    // ys[i][t·rows_i + r] = dot(row r of ws[i], x[t]) (+ the LowRank term of adapters[i]) for the nw
    // matrices sharing the input x [T, n] (n = ws[i]->cols). Numerics: kernels.h gemm (int_dot dtypes
    // quantize x to block_q8x first); results do not depend on the thread count. adapters may be nullptr.
    virtual void matmul(const Matrix* const* ws, float* const* ys, int nw, const float* x, int64_t T,
                        const LowRank* const* adapters = nullptr) = 0;
    // y[r][i] += b[i], rows × n.
    virtual void add_bias(float* y, const float* b, int64_t rows, int64_t n) = 0;
    // cos/sin[t][i] = cos/sin((pos0 + t) · inv_freq[i]), i < half = Dh/2, t < T (f32 angle, libm).
    virtual void rope_angles(int64_t pos0, int64_t T, const float* inv_freq, int64_t half, float* cos, float* sin) = 0;
    // Rotate-half RoPE (HF convention) of x [T, heads·Dh] in place with the angles of token t.
    virtual void rope(float* x, int64_t T, int64_t heads, int64_t Dh, const float* cos, const float* sin) = 0;
    // Writes k, v [T, Dkv] at positions pos0 .. pos0+T-1 of the layer's cache.
    virtual void kv_append(const KvLayer& kv, const float* k, const float* v, int64_t T, int64_t pos0, int64_t Hkv, int64_t Dh) = 0;
    // out[t, h] = Σ_p softmax_p(q[t,h]·K_p / sqrt(Dh)) V_p over the positions p of kv head h / (H / Hkv)
    // with max(0, pos - window + 1) <= p <= pos = pos0 + t (window = 0: full causal). q, out [T, Dq].
    // Numerics: kernels.h attention_fn.
    virtual void attention(const float* q, const KvLayer& kv, int64_t T, int64_t pos0, int64_t H, int64_t Hkv,
                           int64_t Dh, int64_t window, float* out) = 0;
    // g[i] = act(g[i]) · u[i], i < n (SwiGLU / ReGLU / GeGLU). Numerics: kernels.h silu_mul_fn; relu is
    // exact; gelu_tanh in f32 with tanhf (the CPU's float_ops.h gelu_tanh_mul).
    virtual void act_mul(float* g, const float* u, int64_t n, Act act) = 0;
    // x[i] *= s, i < n (Gemma's embedding scale). Exact (one f32 product).
    virtual void scale(float* x, float s, int64_t n) = 0;
    // x[i] += y[i], i < n (residual).
    virtual void add(float* x, const float* y, int64_t n) = 0;

    // ---- fused forms (defaults: the ops above in sequence; a backend may do each in fewer launches) ----
    // Results are those of the sequence, except that buffers named "scratch" hold unspecified values after.
    // xn = rmsnorm(x, w, eps) (rows = T, n = ws[i]->cols), then matmul(ws, ys, nw, xn, T, adapters).
    virtual void rmsnorm_matmul(const float* x, const float* w, float eps, int64_t T, float* xn, const Matrix* const* ws,
                                float* const* ys, int nw, const LowRank* const* adapters = nullptr) {
        rmsnorm(x, w, eps, T, ws[0]->cols, xn);
        matmul(ws, ys, nw, xn, T, adapters);
    }
    // x += W·in: matmul into y [T, W.rows] (scratch), then add(x, y). in must not alias x.
    virtual void matmul_add(const Matrix& w, const float* in, int64_t T, float* y, float* x, const LowRank* adapter = nullptr) {
        const Matrix* ws = &w;
        matmul(&ws, &y, 1, in, T, adapter ? &adapter : nullptr);
        add(x, y, T * w.rows);
    }
    // A gated FFN's first half: xn = rmsnorm(x, w, eps); g = act(gate·xn)·(up·xn) [T, gate.rows] (u: scratch) — i.e.
    // rmsnorm_matmul({gate, up}, {g, u}) then act_mul(g, u).
    virtual void rmsnorm_glu(const float* x, const float* w, float eps, int64_t T, float* xn, const Matrix& gate,
                             const Matrix& up, Act act, float* g, float* u, const LowRank* const* adapters = nullptr) {
        const Matrix* ws[2] = {&gate, &up};
        float* ys[2] = {g, u};
        rmsnorm_matmul(x, w, eps, T, xn, ws, ys, 2, adapters);
        act_mul(g, u, T * gate.rows, act);
    }

    // rope(q, T, H, Dh, cos, sin); rope(k, T, Hkv, Dh, cos, sin); kv_append(kv, k, v, T, pos0, Hkv, Dh): one run's
    // RoPE and its K/V written to the cache (a backend may do it in one launch).
    virtual void rope_kv_append(float* q, float* k, const float* v, int64_t T, int64_t H, int64_t Hkv, int64_t Dh,
                                const float* cos, const float* sin, const KvLayer& kv, int64_t pos0) {
        rope(q, T, H, Dh, cos, sin);
        rope(k, T, Hkv, Dh, cos, sin);
        kv_append(kv, k, v, T, pos0, Hkv, Dh);
    }
    // rope_kv_append, then attention over the same run (window: as attention): a backend may do both in one launch
    // (q and k need not be left rotated then; the cache and `out` are as the two ops leave them).
    virtual void rope_kv_attention(float* q, float* k, const float* v, int64_t T, int64_t H, int64_t Hkv, int64_t Dh,
                                   const float* cos, const float* sin, const KvLayer& kv, int64_t pos0, int64_t window, float* out) {
        rope_kv_append(q, k, v, T, H, Hkv, Dh, cos, sin, kv, pos0);
        attention(q, kv, T, pos0, H, Hkv, Dh, window, out);
    }

    // ---- MoE (moe.h) ----
    // Per token t < T: idx[t][0..k) = top-k of logits[t] [E] (descending, ties to the lower index) and,
    // with w != nullptr, the routing weights of c's gating (moe.h). idx, w: host memory.
    virtual void moe_route(const MoeConfig& c, const float* logits, int64_t T, int64_t k, int32_t* idx, float* w) = 0;
    // dst[i] = src[routes[i] / k], i < n: the token rows of one expert's routes (rows of D). routes: host.
    virtual void moe_gather(const float* src, int64_t D, const int32_t* routes, int64_t n, int64_t k, float* dst) = 0;
    // yk[routes[i]] = ye[i], i < n (rows of D). routes: host.
    virtual void moe_scatter(const float* ye, int64_t D, const int32_t* routes, int64_t n, float* yk) = 0;
    // x[t] += Σ_j w[t][j] · yk[t·k + j], the k terms summed in rank order j (then added), t < T. w: host.
    virtual void moe_combine(const float* yk, const float* w, int64_t T, int64_t k, int64_t D, float* x) = 0;

    // ---- MoE inside device steps (optional): every expert resident in device memory, routed on the device ----
    // moe_device_supported: moe_device_ffn runs experts whose gate / up have dtype gu and down dtype `down` (F, D: the
    // expert's width and the model's). moe_device_experts records MoE layer number `slot` (< StepShape::moe_layers):
    // m[3e], m[3e + 1], m[3e + 2] = expert e's gate, up, down as the device reads them, e < E — addresses that stay
    // valid (the caller keeps the experts resident), one dtype and row size per role. moe_device_ffn is moe_route +
    // the routed experts' FFNs + moe_combine of one token (T = 1) with nothing read on the host: x[0] += Σ_j w_j ·
    // expert_{idx_j}(xn), routed from logits [E] (device), xn = rmsnorm(in, norm_w, eps) (norm_w != nullptr: the
    // norm's weight; x may be `in`) or `in` itself; the same values as rmsnorm, moe_route and moe_ffn's ops on the
    // same experts (the backend states its bound). It may be recorded in a device step.
    virtual bool moe_device_supported(uint32_t gu, uint32_t down, int64_t F, int64_t D) const { return false; }
    virtual void moe_device_experts(int slot, const Matrix* m, int64_t E) {}
    virtual void moe_device_ffn(const MoeConfig& c, int slot, const float* logits, const float* in, const float* norm_w,
                                float eps, float* x) {}

    // ---- device steps (optional: a backend whose ops are asynchronous, e.g. CUDA) ----
    // A one-token step whose inputs are in device memory, recorded once and replayed with one launch:
    //   step_inputs(token, pos)        the step's token id and position (pos0), written asynchronously
    //                                  (token kStepTokenFromPick: the last sample_async's pick, below)
    //   if (!step_begin()) { issue the step's ops; step_end(); }   true: a recorded step was launched
    // Between step_begin() and step_end() embed_step reads the token and rope_angles / kv_append /
    // attention read pos0 from the step inputs (their host pos0 must still be passed, equal to it); no op
    // in between may read host memory the caller changes per step or synchronise (MoE routing on the host does:
    // MoE steps are recorded only with moe_device_ffn). step_reset() drops a recording (buffers moved). Results are those of the
    // same ops issued eagerly (the recorded sequence is the eager one).
    virtual bool step_supported() const { return false; }
    // embed_step can read a table of this dtype (the table: a device copy, from map_weights)
    virtual bool embed_step_supported(uint32_t dtype) const { return false; }
    // x[0] = dequant(row step-token of table) (exact, as embed)
    virtual void embed_step(const Matrix& table, float* x) {}
    virtual void step_inputs(int32_t token, int64_t pos) {}
    virtual bool step_begin() { return false; }
    // false: recording the step failed and nothing ran (the backend records no more steps): issue the
    // step again between step_begin() and step_end(), eagerly
    virtual bool step_end() { return true; }
    virtual void step_reset() {}

    // ---- sampling on the device (optional) ----
    // sample_supported: sample() runs these params for a vocabulary of V with n_penalty penalty ids.
    // sample: *next (host) = the token Sampler::sample (sampler.h) picks from logits [V] (device memory;
    // the penalty is applied in place) with the distinct penalty ids ids[n_ids] (host; Sampler::
    // penalty_ids) and the draw u (Sampler::draw_uniform; unused when greedy). Only the id comes back;
    // it synchronises. The backend states its difference from the host chain beside its implementation.
    virtual bool sample_supported(const SamplerParams& p, int64_t V, int n_penalty) const { return false; }
    virtual void sample(float* logits, int64_t V, const SamplerParams& p, const int32_t* ids, int n_ids, float u,
                        int32_t* next) {}

    // ---- pipelined decoding (optional; with device steps and sampling) ----
    // sample_async() is sample() without the wait: it enqueues the pick; sample_wait() returns the oldest
    // enqueued pick (FIFO, at most kMaxPicksInFlight unread). step_inputs(kStepTokenFromPick, pos) makes the next
    // step read the token of the last enqueued pick from device memory, so a step can be launched before the
    // host has seen the token it decodes — the host's per-token work then overlaps the GPU's.
    static constexpr int32_t kStepTokenFromPick = -1;
    static constexpr int kMaxPicksInFlight = 2;
    virtual bool sample_async_supported() const { return false; }
    virtual void sample_async(float* logits, int64_t V, const SamplerParams& p, const int32_t* ids, int n_ids, float u) {}
    virtual void sample_wait(int32_t* next) {}
    virtual int picks_in_flight() const { return 0; }  // enqueued by sample_async, not yet read by sample_wait
};

}  // namespace edge
