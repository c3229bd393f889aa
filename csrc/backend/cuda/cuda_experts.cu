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
#include "cuda_backend.h"

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

}  // namespace edge
