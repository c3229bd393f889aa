// cuda_step.cu — one-token steps with their inputs in device memory, recorded once as a CUDA graph and
// replayed with one launch per token (backend.h "device steps"; cuda_backend.h).
//
// step_inputs(token, pos) copies {token, pos} from pinned host memory into `step_` (device) on the stream; for
// token kStepTokenFromPick the token is then copied from the last pick (sample_next_, cuda_sample.cu) on the device.
// Between step_begin() and step_end() the ops embed_step, rope_angles, kv_append and attention read the
// token / position from `step_` instead of their host arguments; everything else is unchanged, so the
// recorded step is the eager one. With graphs on (default; EDGE_CUDA_GRAPH=0 turns them off, for tests
// and bug reports), the first step_begin() captures the stream (relaxed mode: the GEMVs' occupancy queries may run) and step_end()
// instantiates and launches the graph; later step_begin() calls launch it and return true (the caller
// issues nothing). The graph stays valid because every pointer it holds is planned once at load and the
// attention's shared memory is sized for the whole context (cuda_attention_prepare).
//
// EDGE_CUDA_GRAPH_REPORT=1 prints the recorded step's kernel count to stderr (bench/cuda: kernels per token).
//
// embed_step: x[c] = dequant(row token of table), the table a device copy (the weights' mirror), one
// block per row: exact, the expressions of dequant_ref.cpp (d·q, d·(q−8), d·q + m, d·kNl4Values[q] with one rounding each).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../../kernels/cuda/nl4_lut.cuh"
#include "cuda_backend.h"

namespace edge {

namespace {

__device__ __forceinline__ float f16f(const uint8_t* p) {
    const unsigned short h = (unsigned short)(p[0] | (p[1] << 8));
    const uint32_t s = (h >> 15) & 1, e = (h >> 10) & 31, m = h & 1023;
    if (e == 0) {  // zero / subnormal: m · 2^-24, exact in f32
        const float v = __fmul_rn((float)m, 5.9604644775390625e-8f);
        return s ? -v : v;
    }
    const uint32_t bits = e == 31 ? (s << 31) | 0x7f800000u | (m << 13) : (s << 31) | ((e + 112) << 23) | (m << 13);
    return __uint_as_float(bits);
}

template <int B, bool Asym>
__device__ void dequant_int4_row(const uint8_t* row, int64_t n, float* y) {
    constexpr int BB = (Asym ? 4 : 2) + B / 2;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        const uint8_t* b = row + (i / B) * BB;
        const int j = (int)(i % B);
        const uint8_t q = b[(Asym ? 4 : 2) + (j % (B / 2))];
        const int code = j < B / 2 ? (q & 15) : (q >> 4);
        const float d = f16f(b);
        y[i] = Asym ? __fadd_rn(__fmul_rn(d, (float)code), f16f(b + 2)) : __fmul_rn(d, (float)(code - 8));
    }
}

__global__ void embed_step_k(uint32_t dtype, const uint8_t* __restrict__ table, int64_t row_bytes, int64_t n,
                             const CudaStepInputs* __restrict__ in, float* x) {
    const uint8_t* row = table + (int64_t)in->token * row_bytes;
    switch (dtype) {
        case EDGE_DTYPE_F32:
            for (int64_t i = threadIdx.x; i < n; i += blockDim.x) x[i] = reinterpret_cast<const float*>(row)[i];
            break;
        case EDGE_DTYPE_F16:
            for (int64_t i = threadIdx.x; i < n; i += blockDim.x) x[i] = f16f(row + 2 * i);
            break;
        case EDGE_DTYPE_BF16:
            for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
                x[i] = __uint_as_float((uint32_t)(row[2 * i] | (row[2 * i + 1] << 8)) << 16);
            break;
        case EDGE_DTYPE_Q8_0:
            for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
                const uint8_t* b = row + (i / 32) * 34;
                x[i] = __fmul_rn(f16f(b), (float)(int8_t)b[2 + i % 32]);
            }
            break;
        case EDGE_DTYPE_INT4_32: dequant_int4_row<32, false>(row, n, x); break;
        case EDGE_DTYPE_INT4_64: dequant_int4_row<64, false>(row, n, x); break;
        case EDGE_DTYPE_INT4_128: dequant_int4_row<128, false>(row, n, x); break;
        case EDGE_DTYPE_INT4A_32: dequant_int4_row<32, true>(row, n, x); break;
        case EDGE_DTYPE_INT4A_64: dequant_int4_row<64, true>(row, n, x); break;
        case EDGE_DTYPE_INT4A_128: dequant_int4_row<128, true>(row, n, x); break;
        case EDGE_DTYPE_NL4_32:
            for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
                const uint8_t* b = row + (i / 32) * 18;
                const int j = (int)(i % 32), code = j < 16 ? (b[2 + j] & 15) : (b[2 + j - 16] >> 4);
                x[i] = __fmul_rn(f16f(b), (float)(int8_t)(nl4_lut::lookup4((uint32_t)code) & 0xFFu));
            }
            break;
        default: break;  // excluded by embed_step_supported
    }
}

}  // namespace

bool CudaBackend::embed_step_supported(uint32_t dtype) const {
    switch (dtype) {
        case EDGE_DTYPE_F32: case EDGE_DTYPE_F16: case EDGE_DTYPE_BF16: case EDGE_DTYPE_Q8_0:
        case EDGE_DTYPE_INT4_32: case EDGE_DTYPE_INT4_64: case EDGE_DTYPE_INT4_128:
        case EDGE_DTYPE_INT4A_32: case EDGE_DTYPE_INT4A_64: case EDGE_DTYPE_INT4A_128: case EDGE_DTYPE_NL4_32:
            return true;
        default:
            return false;
    }
}

void CudaBackend::embed_step(const Matrix& table, float* x) {
    embed_step_k<<<1, 256, 0, stream_>>>(table.dtype, table.data, (int64_t)table.row_bytes, table.cols, step_, x);
}

void CudaBackend::step_inputs(int32_t token, int64_t pos) {
    // a ring slot: its previous copy ran before a pick the host has since waited for (cuda_backend.h Pinned)
    CudaStepInputs* h = &pinned_->step[step_slot_];
    step_slot_ = (step_slot_ + 1) % kRing;
    h->token = token;
    h->pos = pos;
    note(cudaMemcpyAsync(step_, h, sizeof(CudaStepInputs), cudaMemcpyHostToDevice, stream_), "step inputs");
    if (token == kStepTokenFromPick)  // the last pick's token, device to device, in stream order after it
        note(cudaMemcpyAsync(&step_->token, sample_next_, sizeof(int32_t), cudaMemcpyDeviceToDevice, stream_), "step token");
}

bool CudaBackend::step_begin() {
    if (graph_exec_) {
        note(cudaGraphLaunch(graph_exec_, stream_), "cudaGraphLaunch");
        return true;
    }
    in_step_ = true;
    if (graphs_ && error_ == cudaSuccess) {
        cudaError_t e = cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed);
        note(e, "cudaStreamBeginCapture");
        capturing_ = e == cudaSuccess;
    }
    return false;
}

bool CudaBackend::step_end() {
    in_step_ = false;
    if (!capturing_) return true;
    capturing_ = false;
    cudaGraph_t g = nullptr;
    cudaError_t e = cudaStreamEndCapture(stream_, &g);
    if (e == cudaSuccess) {
        size_t n_nodes = 0;
        if (cudaGraphGetNodes(g, nullptr, &n_nodes) == cudaSuccess && n_nodes > 0) {  // kernels per recorded step
            std::vector<cudaGraphNode_t> nodes(n_nodes);
            graph_nodes_ = 0;
            if (cudaGraphGetNodes(g, nodes.data(), &n_nodes) == cudaSuccess)
                for (cudaGraphNode_t nd : nodes) {
                    cudaGraphNodeType t;
                    if (cudaGraphNodeGetType(nd, &t) == cudaSuccess && t == cudaGraphNodeTypeKernel) ++graph_nodes_;
                }
            if (const char* r = std::getenv("EDGE_CUDA_GRAPH_REPORT"); r && !std::strcmp(r, "1"))
                std::fprintf(stderr, "edgerun cuda: recorded step: %d kernels (%zu graph nodes)\n", graph_nodes_, n_nodes);
        }
        e = cudaGraphInstantiate(&graph_exec_, g, 0);
        cudaGraphDestroy(g);
        if (e != cudaSuccess) graph_exec_ = nullptr;
    }
    if (e != cudaSuccess || error_ != cudaSuccess) {
        // nothing captured ran: no more graphs; the caller issues the step again, eagerly. What failed
        // during the capture was the capture (an op it cannot record), not the device.
        if (graph_exec_) cudaGraphExecDestroy(graph_exec_);
        graph_exec_ = nullptr;
        graphs_ = false;
        graph_failure_ = cudaGetErrorName(e != cudaSuccess ? e : error_);
        cudaGetLastError();
        error_ = cudaSuccess;
        return false;
    }
    note(cudaGraphLaunch(graph_exec_, stream_), "cudaGraphLaunch");
    ++graph_captures_;
    return true;
}

void CudaBackend::step_reset() {
    if (graph_exec_) {
        cudaStreamSynchronize(stream_);
        cudaGraphExecDestroy(graph_exec_);
        graph_exec_ = nullptr;
    }
}

bool cuda_env_enabled(const char* name) {
    const char* v = std::getenv(name);
    return !(v && (!std::strcmp(v, "0") || !std::strcmp(v, "off")));
}

}  // namespace edge
