// blob_decode.h — byte layouts of MoE expert blobs (docs/MOE.md §3) and their validated decode into a
// cache slot. Pure: no allocation, no I/O, no globals.
//
// An expert has gate [F, D], up [F, D], down [D, F]. A decoded slot holds the three matrices as rows of
// one dtype (matrix.h): gate at gate_off, up at up_off, down at down_off, each a multiple of 64 bytes
// from the slot start. For `concat:<dtype>` the slot bytes are the blob bytes (same offsets); for
// `planes4` / `planes4_msb` the dtype is int4_32 and the matrices are packed back to back (64-aligned).
//
// planes4 blob (nb = 3·F·D/32 blocks: gate's, then up's, then down's, each matrix row-major):
//   A at 0:    nb f16 scales d                          (section padded to a multiple of 4096)
//   B at b_off: nb × 8 bytes of hi = q >> 2              (padded)
//   C at c_off: nb × 8 bytes of lo = q & 3               (padded)
// In B and C, byte k (0..7) of a block holds elements k, k+8, k+16, k+24 in bits 0-1, 2-3, 4-5, 6-7.
// int4_32 byte j (0..15) holds element j (low nibble) and j+16 (high nibble), so for k in 0..7:
//   out[k]   = ((hi & 0x33) << 2) | (lo & 0x33)           (elements k, k+16)
//   out[k+8] =  (hi & 0xCC)       | ((lo >> 2) & 0x33)    (elements k+8, k+24)
// which packs 8 bytes at a time with 64-bit masks. planes4_msb reads only A+B and uses lo = 2 (0xAA):
// q = 4·hi + 2, the midpoint of the four codes that share hi.
//
// Validation: every scale must be finite (f16 exponent not all ones; E8M0 not 0xFF); plain float
// dtypes (f32/f16/bf16) must be finite in every element. A blob that fails is never served.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common.h"

namespace edge {

enum BlobKind : uint8_t { BLOB_CONCAT = 0, BLOB_PLANES4 = 1, BLOB_PLANES4_MSB = 2 };

struct BlobLayout {
    BlobKind kind = BLOB_CONCAT;
    uint32_t dtype = 0;                    // the decoded dtype (int4_32 for the planes layouts)
    int64_t F = 0, D = 0;
    size_t gate_off = 0, up_off = 0, down_off = 0;
    size_t ffn_row_bytes = 0;              // a row of gate / up (D columns)
    size_t down_row_bytes = 0;             // a row of down (F columns)
    size_t decoded_bytes = 0;              // end of down in the slot
    uint64_t blob_bytes = 0;               // the whole stored blob (the tensor's nbytes), multiple of 4096
    uint64_t read_bytes = 0;               // the prefix this layout reads, multiple of 4096
    uint64_t nb = 0, b_off = 0, c_off = 0; // planes layouts: blocks and section offsets
};

// Parses "concat:<dtype>", "planes4" or "planes4_msb" for an expert of inner width F and model width D.
// Errors (INVALID_ARGUMENT / UNSUPPORTED) name the layout and what is wrong (e.g. D not a multiple of 32).
Status blob_layout_parse(const std::string& layout, int64_t F, int64_t D, BlobLayout* out);

// Validates the first read_bytes of a blob at `src` and writes the decoded matrices to `slot`
// (decoded_bytes). For concat, src may equal slot (validation in place; nothing is copied). On invalid
// bytes returns BAD_FILE saying which matrix and block; `slot` content is then unspecified.
Status blob_decode(const BlobLayout& l, const uint8_t* src, uint8_t* slot);

}  // namespace edge
