// cuda_experts.cu — the expert cache in device memory: a mirror of the ExpertStore's host slots
// (backend.h stage_expert / mirror_expert_slots; cuda_backend.h).
//
// The store reads and decodes an expert into host slot s (O_DIRECT reads, its own I/O threads); the
// mirror holds, per slot, the unit (layer, expert, variant) whose bytes it last copied to device slot s.
// stage_expert copies the slot (cudaMemcpyAsync from the pinned host slots, on the compute stream, in
// order before the expert's matmuls) only when the tag differs, and returns the device matrices at the
// same offsets. A hit copies nothing and keeps no reference to host memory (the caller need not sync
// before releasing the slot); a copy is read by the device until the stream passes it (the caller
// syncs). A host slot refilled with another unit gets another tag, so a stale device copy is never
// served; refilled with the same unit it holds the same bytes (decode is deterministic).
// The mirror has as many slots as the store (the plan bounds both by --mem and --gpu-mem), so a fully
// resident expert set is copied once and then served from device memory.
//
// MoE inside device steps (backend.h moe_device_*): with every expert resident (the model checks), the model records
// each MoE layer's expert addresses once (moe_device_experts: a table in device memory); moe_device_ffn (cuda_ops.cu)
// then routes on the device and the expert GEMVs read their matrices through the table (cuda_moe_glu / _down).
#include "cuda_backend.h"

#include "../../kernels/cuda/cuda_kernels.h"
#include "../../quant.h"

namespace edge {

void CudaBackend::mirror_expert_slots(uint8_t* host, uint8_t* dev, int64_t bytes, int64_t slot_bytes) {
    if (mirror_pinned_) {
        cudaStreamSynchronize(stream_);
        cudaHostUnregister(mirror_host_);
        mirror_pinned_ = false;
    }
    mirror_host_ = host, mirror_dev_ = dev, mirror_bytes_ = host ? bytes : 0, mirror_slot_ = slot_bytes;
    mirror_tag_.assign(host && slot_bytes > 0 ? (size_t)(bytes / slot_bytes) : 0, -1);
    if (host && bytes > 0) {
        // pinned: copies are asynchronous and at full link speed; without it they still work (staged)
        mirror_pinned_ = cudaHostRegister(host, (size_t)bytes, cudaHostRegisterDefault) == cudaSuccess;
        if (!mirror_pinned_) cudaGetLastError();
    }
}

bool CudaBackend::stage_expert(int layer, int expert, int variant, const Matrix* in, int n, Matrix* out) {
    const uint8_t* h = n > 0 ? in[0].data : nullptr;
    if (!mirror_dev_ || !h || h < mirror_host_ || h >= mirror_host_ + mirror_bytes_) {
        stage_weights(in, n, out);
        return true;
    }
    const int64_t slot = (h - mirror_host_) / mirror_slot_;
    const uint8_t* base = mirror_host_ + slot * mirror_slot_;
    for (int i = 0; i < n; ++i) {  // every matrix inside the slot: an invariant of the store
        if (in[i].data < base || in[i].data + (int64_t)in[i].row_bytes * in[i].rows > base + mirror_slot_) {
            stage_weights(in, n, out);
            return true;
        }
    }
    const int64_t tag = ((int64_t)layer << 40) | ((int64_t)expert << 8) | (int64_t)(variant & 255);
    const bool copy = mirror_tag_[(size_t)slot] != tag;
    if (copy) {
        upload(mirror_dev_ + slot * mirror_slot_, base, mirror_slot_);
        mirror_tag_[(size_t)slot] = tag;
    }
    for (int i = 0; i < n; ++i) {
        out[i] = in[i];
        out[i].data = mirror_dev_ + (in[i].data - mirror_host_);
    }
    return copy;
}

bool CudaBackend::moe_device_supported(uint32_t gu, uint32_t down, int64_t F, int64_t D) const {
    auto fits = [](uint32_t dt, int64_t n) { return cuda_gemv_fused_supported(dt) && n % 32 == 0 && n % dtype_traits(dt).block == 0; };
    return moe_table_ && fits(gu, D) && fits(down, F) && F % 4 == 0 && F == shape_.d_expert && D == shape_.d_model;
}

void CudaBackend::moe_device_experts(int slot, const Matrix* m, int64_t E) {
    if (!moe_table_ || slot < 0 || slot >= (int)moe_slots_.size() || E != shape_.n_experts) {  // the plan's shape: an invariant
        note(cudaErrorInvalidValue, "moe_device_experts (a layer or expert count other than planned)");
        return;
    }
    std::vector<CudaMoeExpert> t((size_t)E);
    for (int64_t e = 0; e < E; ++e) t[(size_t)e] = CudaMoeExpert{m[3 * e].data, m[3 * e + 1].data, m[3 * e + 2].data};
    upload(moe_table_ + slot * E, t.data(), E * (int64_t)sizeof(CudaMoeExpert));  // pageable: copied before it returns
    moe_slots_[(size_t)slot] = MoeSlot{m[0].dtype, m[2].dtype, (int64_t)m[0].row_bytes, (int64_t)m[1].row_bytes,
                                       (int64_t)m[2].row_bytes, true};
}

}  // namespace edge
