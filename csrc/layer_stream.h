// layer_stream.h — dense layers streamed from disk through a window of W layer buffers (docs/MOE.md §4,
// the TPI-LLM scheme): while layer i computes, layers i+1 … i+W−1 (cyclic: after the last layer comes
// layer 0 of the next token) are read by background I/O threads.
//
// Layer i owns the tensors named `blk.i.*` (blob tensors excluded: MoE experts go through ExpertStore).
// The converter writes a layer's tensors contiguously, so layer i is read as one aligned range
//   [range_begin(i), range_end(i)) = [min offset aligned down to 4096, max end aligned up to 4096)
// with pread on an O_DIRECT descriptor (io_reader.h; buffered + DONTNEED fallback). A layer's tensor at
// file offset o is at base + (o − range_begin(i)) in the buffer acquire_layer returns. Tensors outside
// every layer (embeddings, output head, norms) are not streamed: the caller keeps them resident.
//
// Window: acquire_layer(i) makes i … i+W−1 the window and queues the reads of those not in a buffer;
// release_layer(i) of the layer last acquired moves it to i+1 … i+W (so with W = 1 the next layer is
// read as soon as the current one is released). A buffer is reused only when it is not pinned
// (acquired and not released), not being read, and holds no layer of the window.
//
// Threading: acquire_layer/release_layer/stats are called by the one forward thread; reads run on
// io_threads internal threads. The forward thread sleeps on a condition variable while it waits
// (io_stall_s).
//
// Faults: a short read (file truncated) or an I/O error is retried once, then acquire_layer returns the
// error naming the layer and its byte range; the buffer is freed and a later acquire tries again.
#pragma once

#include <cstdint>
#include <memory>

#include "common.h"
#include "format.h"

namespace edge {

struct LayerStreamStats {
    int64_t hits = 0;         // acquire_layer found the layer ready (read ahead)
    int64_t misses = 0;       // acquire_layer had to start or wait for the read
    int64_t reads = 0, bytes_read = 0, retries = 0;
    double io_stall_s = 0;    // time the forward thread waited in acquire_layer
    double io_busy_s = 0;     // summed time the I/O threads spent in pread
};

class LayerStream {
public:
    struct Options {
        int window = 2;       // W >= 1 layer buffers (1: no read-ahead)
        int io_threads = 2;
        bool direct_io = true;
        // window × buffer_bytes planned by the caller (kIoAlign-aligned); nullptr: allocated here.
        uint8_t* buffers = nullptr;
    };

    // Computes every layer's range from the tensor table of `f` (llm.n_layers layers; each must own at
    // least one tensor) and allocates W buffers of the largest range. `f.path()` is reopened for I/O.
    static Status open(const EdgeFile& f, const Options& opt, std::unique_ptr<LayerStream>* out);
    // The size of one buffer (the largest layer range) open() would use, with the same validation.
    static Status measure(const EdgeFile& f, int64_t* buffer_bytes);
    ~LayerStream();

    int n_layers() const;
    uint64_t range_begin(int layer) const;
    uint64_t range_end(int layer) const;
    int64_t buffer_bytes() const;  // one buffer: the largest layer range
    int64_t total_bytes() const;   // all W buffers (the io_buffers term of the budget)
    bool direct_io() const;

    // Blocks until layer i is in a buffer, pins it and sets *base (see the mapping above); queues the
    // reads of the next W−1 layers (see Window). Errors: INVALID_ARGUMENT (bad i, or every buffer pinned),
    // BAD_FILE / IO_ERROR after a failed retry.
    Status acquire_layer(int i, const uint8_t** base);
    void release_layer(int i);  // unpins one acquisition of layer i; ignored if it is not pinned

    LayerStreamStats stats() const;
    void reset_stats();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    LayerStream() = default;
};

}  // namespace edge
