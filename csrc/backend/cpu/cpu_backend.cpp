// cpu_backend.cpp — memory, scratch and the element-wise / MoE data-movement ops of the CPU backend
// (cpu_backend.h). Matmul: cpu_matmul.cpp; attention and the KV cache: cpu_attention.cpp.
#include "cpu_backend.h"

#include <cstdlib>
#include <cstring>

#include "../../moe.h"
#include "../planner.h"
#include "float_ops.h"

namespace edge {

CpuBackend::CpuBackend(const KernelTable* kt, int threads) : kt_(kt), pool_(threads) {}

Status CpuBackend::alloc(int64_t bytes, int64_t align, bool zero, const char* what, Buffer* out) {
    *out = Buffer();
    if (bytes <= 0) return Status::ok();
    void* p = nullptr;
    if (align < (int64_t)sizeof(void*)) align = (int64_t)sizeof(void*);
    if (posix_memalign(&p, (size_t)align, (size_t)bytes) != 0 || !p)
        return status_error(Code::OUT_OF_MEMORY, strfmt("cannot allocate %lld bytes for %s", (long long)bytes, what));
    if (zero) std::memset(p, 0, (size_t)bytes);  // pages untouched otherwise (the KV cache grows as written)
    *out = Buffer{p, bytes, Device::CPU, true};
    return Status::ok();
}

void CpuBackend::release(Buffer* b) {
    if (b->owned) std::free(b->data);
    *b = Buffer();
}

Status CpuBackend::map_weights(const void* host, int64_t bytes, Buffer* out) {
    *out = Buffer{const_cast<void*>(host), bytes, Device::CPU, false};  // the mapping itself
    return Status::ok();
}

void CpuBackend::upload(void* dst, const void* host, int64_t bytes) { std::memcpy(dst, host, (size_t)bytes); }
void CpuBackend::download(void* host, const void* src, int64_t bytes) { std::memcpy(host, src, (size_t)bytes); }

void CpuBackend::plan_scratch(const StepShape& s, Planner* p) {
    shape_ = s;
    p->add("cpu.q8_activations", MemKind::SCRATCH, this, s.tokens * ((s.max_width + 31) / 32), &xq_);
    // per thread: the per-token kernels' ctx scores, or a block's rows; + a KIVI block's dequantized tile
    scores_stride_ = s.ctx + (kv_type_kivi(s.kv) ? kAttnBlockKiviTileFloats * s.head_dim : 0);
    p->add("cpu.attention_scores", MemKind::SCRATCH, this, (int64_t)threads() * scores_stride_, &scores_);
    if (s.max_rank > 0) p->add("cpu.low_rank", MemKind::SCRATCH, this, s.tokens * s.max_rank, &lr_);
    if (s.n_experts > 0) p->add("cpu.moe_combine", MemKind::SCRATCH, this, s.max_width, &acc_);
}

void CpuBackend::embed(const Matrix& table, const int32_t* tokens, int64_t T, float* x) {
    const dequant_fn dq = kt_->dequant[table.dtype].fn;
    for (int64_t t = 0; t < T; ++t) dq(table.data + (size_t)tokens[t] * table.row_bytes, x + t * table.cols, table.cols);
}

void CpuBackend::rmsnorm(const float* x, const float* w, float eps, int64_t rows, int64_t n, float* y) {
    for (int64_t r = 0; r < rows; ++r) edge::rmsnorm(x + r * n, w, eps, n, y + r * n);
}

void CpuBackend::add_bias(float* y, const float* b, int64_t rows, int64_t n) {
    for (int64_t r = 0; r < rows; ++r) {
        float* yr = y + r * n;
        for (int64_t i = 0; i < n; ++i) yr[i] += b[i];
    }
}

void CpuBackend::rope_angles(int64_t pos0, int64_t T, const float* inv_freq, int64_t half, float* cos, float* sin) {
    for (int64_t t = 0; t < T; ++t) edge::rope_angles(pos0 + t, inv_freq, half, cos + t * half, sin + t * half);
}

void CpuBackend::rope(float* x, int64_t T, int64_t heads, int64_t Dh, const float* cos, const float* sin) {
    const int64_t half = Dh / 2;
    for (int64_t t = 0; t < T; ++t)
        for (int64_t h = 0; h < heads; ++h) rope_rotate_half(x + (t * heads + h) * Dh, Dh, cos + t * half, sin + t * half);
}

void CpuBackend::act_mul(float* g, const float* u, int64_t n, Act act) {
    if (act == Act::SILU) {
        kt_->silu_mul.fn(g, u, n, g);
        return;
    }
    if (act == Act::GELU_TANH) {
        pool_.run(n, [&](int64_t b, int64_t e, int) { gelu_tanh_mul(g + b, u + b, e - b); }, 4096);
        return;
    }
    for (int64_t i = 0; i < n; ++i) g[i] = (g[i] > 0.f ? g[i] : 0.f) * u[i];
}

void CpuBackend::scale(float* x, float s, int64_t n) {
    for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

void CpuBackend::add(float* x, const float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

void CpuBackend::moe_route(const MoeConfig& c, const float* logits, int64_t T, int64_t k, int32_t* idx, float* w) {
    moe_route_rows(c, logits, T, k, idx, w);
}

void CpuBackend::moe_gather(const float* src, int64_t D, const int32_t* routes, int64_t n, int64_t k, float* dst) {
    for (int64_t i = 0; i < n; ++i) {
        const float* s = src + (routes[i] / k) * D;
        std::memcpy(dst + i * D, s, (size_t)D * sizeof(float));
    }
}

void CpuBackend::moe_scatter(const float* ye, int64_t D, const int32_t* routes, int64_t n, float* yk) {
    for (int64_t i = 0; i < n; ++i) std::memcpy(yk + (int64_t)routes[i] * D, ye + i * D, (size_t)D * sizeof(float));
}

void CpuBackend::moe_combine(const float* yk, const float* w, int64_t T, int64_t k, int64_t D, float* x) {
    float* acc = acc_;  // one row at a time: each pass below is a contiguous, vectorised loop over d
    for (int64_t t = 0; t < T; ++t) {
        const float* y = yk + t * k * D;
        const float* wt = w + t * k;
        float* xt = x + t * D;
        for (int64_t d = 0; d < D; ++d) acc[d] = wt[0] * y[d];
        for (int64_t j = 1; j < k; ++j) {
            const float wj = wt[j];
            const float* yj = y + j * D;
            for (int64_t d = 0; d < D; ++d) acc[d] += wj * yj[d];
        }
        for (int64_t d = 0; d < D; ++d) xt[d] += acc[d];
    }
}

}  // namespace edge
