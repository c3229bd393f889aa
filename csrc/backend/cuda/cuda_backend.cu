// cuda_backend.cu — the CUDA backend's memory, matmul, embed, MoE routing and the plugin entry point
// (cuda_backend.h). The element-wise, attention and MoE data-movement kernels are in cuda_ops.cu.
#include "cuda_backend.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <unistd.h>

#include "../../kernels/cuda/cuda_kernels.h"
#include "../../moe.h"
#include "../planner.h"

namespace edge {

bool cuda_env_enabled(const char* name);  // cuda_step.cu: unset, or not 0 / off

Status CudaBackend::create(const KernelTable* host, int device, CudaBackend** out) {
    *out = nullptr;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess)
        return status_error(Code::UNSUPPORTED, strfmt("no usable CUDA driver/device (%s: %s); run with --device cpu",
                                                      cudaGetErrorName(e), cudaGetErrorString(e)));
    if (device < 0 || device >= n)
        return status_error(Code::UNSUPPORTED, strfmt("CUDA device %d does not exist (%d found)", device, n));
    cudaDeviceProp prop{};
    if ((e = cudaGetDeviceProperties(&prop, device)) != cudaSuccess)
        return status_error(Code::UNSUPPORTED, strfmt("CUDA device %d: %s", device, cudaGetErrorString(e)));
    if (prop.major < 7)
        return status_error(Code::UNSUPPORTED, strfmt("CUDA device %d (%s) has compute capability %d.%d; edgerun needs 7.0 or newer",
                                                      device, prop.name, prop.major, prop.minor));
    if ((e = cudaSetDevice(device)) != cudaSuccess)
        return status_error(Code::UNSUPPORTED, strfmt("CUDA device %d: %s", device, cudaGetErrorString(e)));
    CudaBackend* be = new CudaBackend();
    be->host_ = host;
    be->device_ = device;
    be->max_smem_ = prop.sharedMemPerBlockOptin;
    be->graphs_ = cuda_env_enabled("EDGE_CUDA_GRAPH");
    be->gpu_sampler_ = cuda_env_enabled("EDGE_CUDA_SAMPLER");
    be->expert_mirror_ = cuda_env_enabled("EDGE_CUDA_EXPERT_MIRROR");
    be->cc_major_ = prop.major;
    be->flash_ = cuda_env_enabled("EDGE_CUDA_FLASH");
    be->fuse_ = cuda_env_enabled("EDGE_CUDA_FUSE");
    const char* mapped = std::getenv("EDGE_CUDA_MAPPED_WEIGHTS");
    be->weights_in_place_ = mapped ? !std::strcmp(mapped, "1") : prop.integrated != 0;
    if (!cuda_env_enabled("EDGE_CUDA_MMA")) be->mma_min_tokens_ = INT64_MAX;
    if (const char* mt = std::getenv("EDGE_CUDA_MMA_MIN_T"); mt && std::atoll(mt) > 0) be->mma_min_tokens_ = std::atoll(mt);
    be->pdl_ = cuda_env_enabled("EDGE_CUDA_PDL");
    be->split_combine_ = cuda_env_enabled("EDGE_CUDA_SPLIT_COMBINE");
    int driver = 0;
    cudaDriverGetVersion(&driver);
    be->describe_ = strfmt("%s (sm_%d%d, %.1f GiB, CUDA driver %d.%d)", prop.name, prop.major, prop.minor,
                           prop.totalGlobalMem / 1073741824.0, driver / 1000, (driver % 1000) / 10);
    be->pipeline_ = cuda_env_enabled("EDGE_CUDA_PIPELINE");
    be->moe_step_ = cuda_env_enabled("EDGE_CUDA_MOE_STEP");
    be->rope_attn_ = cuda_env_enabled("EDGE_CUDA_ROPE_ATTN");
    if ((e = cudaStreamCreateWithFlags(&be->stream_, cudaStreamNonBlocking)) != cudaSuccess ||
        (e = cudaHostAlloc(reinterpret_cast<void**>(&be->pinned_), sizeof(Pinned), cudaHostAllocDefault)) != cudaSuccess) {
        delete be;
        return status_error(Code::UNSUPPORTED, strfmt("CUDA stream / pinned memory: %s", cudaGetErrorString(e)));
    }
    for (cudaEvent_t& ev : be->pick_done_)
        if ((e = cudaEventCreateWithFlags(&ev, cudaEventDisableTiming)) != cudaSuccess) {
            delete be;
            return status_error(Code::UNSUPPORTED, strfmt("CUDA event: %s", cudaGetErrorString(e)));
        }
    *out = be;
    return Status::ok();
}

CudaBackend::~CudaBackend() {
    step_reset();
    if (registered_) cudaHostUnregister(registered_);
    if (stream_) {
        cudaStreamSynchronize(stream_);
        cudaStreamDestroy(stream_);
    }
    for (cudaEvent_t e : pick_done_)
        if (e) cudaEventDestroy(e);
    if (pinned_) cudaFreeHost(pinned_);
}

bool CudaBackend::supports(uint32_t dtype) const {
    // the embedding rows are dequantized on the host; the matmul needs a GPU kernel
    return dtype < EDGE_DTYPE_COUNT && cuda_gemv_supported(dtype) && host_->dequant[dtype].fn;
}

void CudaBackend::note(cudaError_t e, const char* what) {
    if (e != cudaSuccess && error_ == cudaSuccess) {
        error_ = e;
        error_what_ = what;
    }
}

Status CudaBackend::take_error() {
    if (!plan_error_.is_ok()) {
        Status st = plan_error_;
        plan_error_ = Status::ok();
        return st;
    }
    note(cudaGetLastError(), "a kernel launch");
    if (error_ == cudaSuccess) return Status::ok();
    Status st = status_error(error_ == cudaErrorMemoryAllocation ? Code::OUT_OF_MEMORY : Code::IO_ERROR,
                             strfmt("CUDA error in %s: %s (%s)", error_what_, cudaGetErrorString(error_), cudaGetErrorName(error_)));
    error_ = cudaSuccess;
    return st;
}

Status CudaBackend::alloc(int64_t bytes, int64_t align, bool zero, const char* what, Buffer* out) {
    *out = Buffer();
    if (bytes <= 0) return Status::ok();
    if (align > 256) return status_error(Code::INVALID_ARGUMENT, strfmt("%s: CUDA buffers are 256-byte aligned, not %lld", what, (long long)align));
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, (size_t)bytes);
    if (e != cudaSuccess) {
        cudaGetLastError();  // clear the sticky-free error
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        return status_error(Code::OUT_OF_MEMORY, strfmt("out of GPU memory: %s needs %.1f MiB, %.1f MiB free of %.1f MiB (%s); "
                                                        "use a smaller model, --ctx or --gpu-mem, or --device cpu",
                                                        what, bytes / 1048576.0, free_b / 1048576.0, total_b / 1048576.0, cudaGetErrorString(e)));
    }
    if (zero) note(cudaMemsetAsync(p, 0, (size_t)bytes, stream_), "cudaMemset");
    *out = Buffer{p, bytes, Device::CUDA, true};
    return Status::ok();
}

void CudaBackend::release(Buffer* b) {
    if (b->owned && b->data) {
        cudaStreamSynchronize(stream_);
        cudaFree(b->data);
    } else if (b->data && registered_ && b->data == registered_view_) {  // the weights read in place
        cudaStreamSynchronize(stream_);
        cudaHostUnregister(registered_);
        registered_ = nullptr;
        registered_view_ = nullptr;
    }
    *b = Buffer();
}

Status CudaBackend::map_weights(const void* host, int64_t bytes, Buffer* out) {
    if (weights_in_place_) {  // register the mapping's pages; the kernels read them in place (cuda_backend.h)
        *out = Buffer();
        if (registered_) return status_error(Code::UNSUPPORTED, "CUDA: one model's weights are registered per backend");
        const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
        const uintptr_t lo = (uintptr_t)host & ~(page - 1), hi = ((uintptr_t)host + (uintptr_t)bytes + page - 1) & ~(page - 1);
        cudaError_t e = cudaHostRegister((void*)lo, hi - lo, cudaHostRegisterMapped | cudaHostRegisterReadOnly);
        void* dev = nullptr;
        if (e == cudaSuccess && (e = cudaHostGetDevicePointer(&dev, const_cast<void*>(host), 0)) != cudaSuccess)
            cudaHostUnregister((void*)lo);
        if (e != cudaSuccess) {
            cudaGetLastError();
            return status_error(Code::UNSUPPORTED, strfmt("CUDA: reading the weights in place (registering %.1f MiB of the mapping) failed: %s; "
                                                          "set EDGE_CUDA_MAPPED_WEIGHTS=0 to copy them to the GPU",
                                                          (hi - lo) / 1048576.0, cudaGetErrorString(e)));
        }
        registered_ = (void*)lo;
        registered_view_ = dev;
        *out = Buffer{dev, bytes, Device::CUDA, false};
        return Status::ok();
    }
    EDGE_TRY(alloc(bytes, 256, false, "the model's weights", out));
    cudaError_t e = cudaMemcpy(out->data, host, (size_t)bytes, cudaMemcpyHostToDevice);
    // from pageable memory cudaMemcpy may return with the last DMA in flight, and stream_ is non-blocking
    if (e == cudaSuccess) e = cudaDeviceSynchronize();
    if (e != cudaSuccess) {
        release(out);
        return status_error(Code::IO_ERROR, strfmt("copying the weights to the GPU: %s", cudaGetErrorString(e)));
    }
    return Status::ok();
}

void CudaBackend::upload(void* dst, const void* host, int64_t bytes) {
    note(cudaMemcpyAsync(dst, host, (size_t)bytes, cudaMemcpyHostToDevice, stream_), "upload");
}

void CudaBackend::download(void* host, const void* src, int64_t bytes) {
    note(cudaMemcpyAsync(host, src, (size_t)bytes, cudaMemcpyDeviceToHost, stream_), "download");
    note(cudaStreamSynchronize(stream_), "download");
}

void CudaBackend::sync() { note(cudaStreamSynchronize(stream_), "a step"); }

int64_t CudaBackend::memory_free() const {
    size_t free_b = 0, total_b = 0;
    return cudaMemGetInfo(&free_b, &total_b) == cudaSuccess ? (int64_t)free_b : -1;
}

Status cuda_attention_prepare(int64_t ctx, int64_t max_dh, int64_t max_smem);  // cuda_ops.cu
Status cuda_attention_kernels_prepare(int64_t max_dh, int64_t max_smem);       // cuda_attention.cu

void CudaBackend::plan_scratch(const StepShape& s, Planner* p) {
    shape_ = s;
    Status ast = flash_ ? cuda_attention_kernels_prepare(s.head_dim, max_smem_) : cuda_attention_prepare(s.ctx, s.head_dim, max_smem_);
    if (!ast.is_ok() && plan_error_.is_ok()) plan_error_ = ast;
    if (flash_ && s.head_dim > 0 && s.ctx > 0) {
        const int64_t chunk = cuda_attention_chunk(s.ctx), S = (s.ctx + chunk - 1) / chunk;
        const int64_t heads = std::max<int64_t>(1, s.max_width / s.head_dim);  // H·Dh <= max_width
        p->add("cuda.attention_partials", MemKind::SCRATCH, this, std::min<int64_t>(s.tokens, kSplitMaxT) * heads * S * (s.head_dim + 2),
               &attn_part_);
        p->add("cuda.attention_counters", MemKind::SCRATCH, this, std::min<int64_t>(s.tokens, kSplitMaxT) * heads, &attn_done_);
    }
    const int64_t routes = std::max<int64_t>(1, s.tokens * s.n_used);
    p->add("cuda.q8_activations", MemKind::SCRATCH, this, s.tokens * ((s.max_width + 31) / 32), &xq_);
    if (s.max_rank > 0) p->add("cuda.low_rank", MemKind::SCRATCH, this, s.tokens * s.max_rank, &lr_);
    p->add("cuda.embed_rows (host)", MemKind::SCRATCH, nullptr, s.tokens * s.max_width, &host_rows_);
    if (s.n_experts > 0) {
        p->add("cuda.routes", MemKind::SCRATCH, this, routes, &routes_);
        p->add("cuda.route_weights", MemKind::SCRATCH, this, routes, &weights_);
        p->add("cuda.router_logits (host)", MemKind::SCRATCH, nullptr, s.tokens * s.n_experts, &logits_host_);
    }
    if (s.vocab > 0) {
        p->add("cuda.sample_values", MemKind::SCRATCH, this, kSampleBlocks * kMaxTopK + 2 * kMaxTopK, &sample_cv_);
        p->add("cuda.sample_ids", MemKind::SCRATCH, this, kSampleBlocks * kMaxTopK + kMaxTopK, &sample_ci_);
        p->add("cuda.sample_next", MemKind::SCRATCH, this, 1, &sample_next_);
    }
    if (s.moe_layers > 0 && moe_step_ && s.n_experts <= kCudaMoeMaxExperts && s.n_used <= kCudaMoeMaxUsed) {  // cuda_experts.cu
        p->add("cuda.moe_experts", MemKind::SCRATCH, this, s.moe_layers * s.n_experts, &moe_table_);
        p->add("cuda.moe_ids", MemKind::SCRATCH, this, s.n_used, &moe_ids_);
        p->add("cuda.moe_weights", MemKind::SCRATCH, this, s.n_used, &moe_w_);
        p->add("cuda.moe_glu", MemKind::SCRATCH, this, s.n_used * s.d_expert, &moe_h_);
        p->add("cuda.moe_down", MemKind::SCRATCH, this, s.n_used * s.d_model, &moe_y_);
        moe_slots_.assign((size_t)s.moe_layers, MoeSlot());
    }
    p->add("cuda.step_inputs", MemKind::SCRATCH, this, 1, &step_);
    if (s.stage_bytes > 0) p->add("cuda.expert_stage", MemKind::SCRATCH, this, s.stage_bytes, &stage_, false);
}

void CudaBackend::stage_weights(const Matrix* in, int n, Matrix* out) {
    int64_t off = 0;
    for (int i = 0; i < n; ++i) {
        const int64_t bytes = (int64_t)in[i].row_bytes * in[i].rows;
        out[i] = in[i];
        if (off + bytes > shape_.stage_bytes) {  // the plan was wrong: an invariant, not input
            note(cudaErrorInvalidValue, "stage_weights (more bytes than planned)");
            return;
        }
        out[i].data = stage_ + off;
        upload(stage_ + off, in[i].data, bytes);
        off += (bytes + 255) / 256 * 256;
    }
}

void CudaBackend::embed(const Matrix& table, const int32_t* tokens, int64_t T, float* x) {
    // table is the host mapping (backend.h): rows are dequantized here and uploaded, as llama.cpp keeps
    // token_embd on the CPU
    const dequant_fn dq = host_->dequant[table.dtype].fn;
    sync();  // host_rows_ may still be read by the previous upload
    for (int64_t t = 0; t < T; ++t) dq(table.data + (size_t)tokens[t] * table.row_bytes, host_rows_ + t * table.cols, table.cols);
    upload(x, host_rows_, T * table.cols * (int64_t)sizeof(float));
}

void CudaBackend::matmul(const Matrix* const* ws, float* const* ys, int nw, const float* x, int64_t T,
                         const LowRank* const* adapters) {
    if (((uintptr_t)x & 15) == 0 && fusable(ws, nw, T, adapters)) {  // one token: the input quantized inside the GEMV (cuda_fused.cu)
        CudaGemvInput in;
        in.x = x;
        gemv_fused(ws, ys, nullptr, nw, in);
        return;
    }
    const int64_t n = ws[0]->cols;
    bool need_q8 = false;
    for (int i = 0; i < nw; ++i) need_q8 |= dtype_traits(ws[i]->dtype).int_dot;
    // PDL (default; EDGE_CUDA_PDL=0 off): each kernel starts while its predecessor drains (programmatic dependent launch;
    // the weights are never written, so streaming them early is safe) — measured in bench/cuda/RESULTS.md
    const uint32_t fl = pdl_ ? kCudaOverlapPrevious : 0;
    if (need_q8) note(cuda_quantize_q8x(x, n, n, T, xq_, n / 32, stream_, fl), "quantize_q8x");
    for (int i = 0; i < nw; ++i) {
        const Matrix& w = *ws[i];
        const bool q8 = dtype_traits(w.dtype).int_dot;
        if (q8 && T >= mma_min_tokens_ && cuda_gemm_mma_supported(w.dtype, cc_major_)) {  // prefill: tensor cores
            // column tile: 64 once the grid has >= 256 CTAs of 64 columns, else 32 (more CTAs; measured in
            // bench/cuda/RESULTS.md, s16 call 2: 2048-row matrices at T = 128 faster at 32, 8192+ rows at 64)
            const int bn = (w.rows / 64) * ((T + 63) / 64) >= 256 ? 64 : 32;
            note(cuda_gemm_mma(w.dtype, w.data, (int64_t)w.row_bytes, w.rows, n, xq_, n / 32, T, ys[i], w.rows, stream_, bn),
                 "gemm_mma");
            continue;
        }
        note(cuda_gemv(w.dtype, w.data, (int64_t)w.row_bytes, w.rows, n, q8 ? (const void*)xq_ : (const void*)x, q8 ? n / 32 : n, T,
                       ys[i], w.rows, stream_, fl),
             "gemv");
    }
    if (adapters)  // y += scale · B·(A·x): A·x [T, r] by the f32 GEMV, then the up-projection (lowrank.cu)
        for (int i = 0; i < nw; ++i) {
            const LowRank* a = adapters[i];
            if (!a || a->rank <= 0) continue;
            if (!lr_ || a->rank > shape_.max_rank) {  // the plan was made without this adapter: an invariant
                note(cudaErrorInvalidValue, "matmul: a LowRank adapter larger than planned (StepShape::max_rank)");
                continue;
            }
            note(cuda_gemv(EDGE_DTYPE_F32, a->a, n * (int64_t)sizeof(float), a->rank, n, x, n, T, lr_, a->rank, stream_),
                 "LowRank A·x");
            note(cuda_lowrank_add(a->b, ws[i]->rows, a->rank, lr_, T, a->scale, ys[i], ws[i]->rows, stream_), "LowRank B·(A·x)");
        }
}

void CudaBackend::moe_route(const MoeConfig& c, const float* logits, int64_t T, int64_t k, int32_t* idx, float* w) {
    const int64_t E = c.n_experts;
    download(logits_host_, logits, T * E * (int64_t)sizeof(float));
    moe_route_rows(c, logits_host_, T, k, idx, w);
}

}  // namespace edge

extern "C" __attribute__((visibility("default"))) edge::Backend* edge_cuda_backend_create(const edge::KernelTable* host, int device,
                                                                                         char* err, int err_len) {
    edge::CudaBackend* be = nullptr;
    edge::Status st = edge::CudaBackend::create(host, device, &be);
    if (!st.is_ok()) {
        std::snprintf(err, (size_t)err_len, "%s", st.msg.c_str());
        return nullptr;
    }
    return be;
}
