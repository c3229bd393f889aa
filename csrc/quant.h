// quant.h — tensor element types of the .edge format and their block layouts.
//
// A quantized 2-D weight W[rows][cols] is stored row-major; each row is a sequence of cols/block
// blocks with no padding between blocks or rows (cols must be a multiple of the block size). The
// byte layouts below are the file format (docs/FORMAT.md) and are pinned by static_assert. The numpy
// quantizer (converter/edgeconv/quant/) writes exactly these bytes.
//
// Nibble order of every 4-bit type ("split-half"): in a block of B elements, byte j holds element j
// in its low nibble and element j + B/2 in its high nibble. One AND and one shift therefore give two
// contiguous runs of B/2 codes, which line up with 32-element activation blocks.
//
// Values:
//   Q8_0     x = d * q                           d: f16, q: int8
//   INT4_B   x = d * (q - 8)        (symmetric)  d: f16, q: uint4 in 0..15, B = 32, 64, 128
//   INT4A_B  x = d * q + m         (asymmetric)  d, m: f16, q: uint4 in 0..15
//   MXINT8   x = 2^(e-127) * q / 64              q: int8 (the encoder never emits -128)
//   MXFP8    x = 2^(e-127) * e4m3(q)             E4M3, bias 7, max 448, 0x7F/0xFF NaN (never emitted)
//   MXFP6    x = 2^(e-127) * e2m3(q)             E2M3, bias 1, max 7.5; 4 codes per 3 bytes, see below
//   MXFP4    x = 2^(e-127) * e2m1(q)             E2M1 codes {0,.5,1,1.5,2,3,4,6} with bit 3 = sign
//   NL4_32   x = d * kNl4Values[q]               d: f16, q: uint4 index into a fixed non-uniform table
//                                                (the block is GGML's IQ4_NL byte for byte, same table)
// MXFP6 packing: elements 4g..4g+3 live in bytes 3g..3g+2 read as a little-endian 24-bit word v;
// element 4g+i is (v >> 6i) & 63.
#pragma once

#include <cstddef>
#include <cstdint>

namespace edge {

enum DType : uint32_t {
    EDGE_DTYPE_F32 = 0,
    EDGE_DTYPE_F16 = 1,
    EDGE_DTYPE_BF16 = 2,
    EDGE_DTYPE_Q8_0 = 3,
    EDGE_DTYPE_INT4_32 = 4,
    EDGE_DTYPE_INT4_64 = 5,
    EDGE_DTYPE_INT4_128 = 6,
    EDGE_DTYPE_INT4A_32 = 7,
    EDGE_DTYPE_INT4A_64 = 8,
    EDGE_DTYPE_INT4A_128 = 9,
    EDGE_DTYPE_MXINT8 = 10,
    EDGE_DTYPE_MXFP8 = 11,
    EDGE_DTYPE_MXFP6 = 12,
    EDGE_DTYPE_MXFP4 = 13,
    EDGE_DTYPE_I32 = 14,  // plain int32 (metadata-like tensors); never a matmul weight
    EDGE_DTYPE_BLOB = 15, // opaque bytes (MoE expert blobs, docs/MOE.md); never a matmul weight
    EDGE_DTYPE_NL4_32 = 16,
    EDGE_DTYPE_COUNT
};

struct block_q8_0 {
    uint16_t d;  // f16
    int8_t q[32];
};
static_assert(sizeof(block_q8_0) == 34, "block_q8_0 size");

template <int B>
struct block_int4 {
    uint16_t d;  // f16
    uint8_t qs[B / 2];
};
static_assert(sizeof(block_int4<32>) == 18, "int4_32 size");
static_assert(sizeof(block_int4<64>) == 34, "int4_64 size");
static_assert(sizeof(block_int4<128>) == 66, "int4_128 size");

template <int B>
struct block_int4a {
    uint16_t d;  // f16 scale
    uint16_t m;  // f16 offset (value of code 0)
    uint8_t qs[B / 2];
};
static_assert(sizeof(block_int4a<32>) == 20, "int4a_32 size");
static_assert(sizeof(block_int4a<64>) == 36, "int4a_64 size");
static_assert(sizeof(block_int4a<128>) == 68, "int4a_128 size");

// NL4_32: the int4_32 layout (f16 d, 16 split-half nibble bytes) with codes that index a fixed
// 16-entry int8 table instead of q - 8. The table is denser near 0 (weights are roughly Gaussian in a
// block); its values are those of GGML's IQ4_NL, so IQ4_NL blocks import bit for bit. |value| <= 127, so
// value · int8 activation products fit what the int8 dot paths accept (the q8_0 sign trick, SDOT, vwmul).
struct block_nl4 {
    uint16_t d;  // f16
    uint8_t qs[16];
};
static_assert(sizeof(block_nl4) == 18, "nl4_32 size");
inline constexpr int8_t kNl4Values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                          1,    13,   25,  38,  53,  69,  89,  113};

struct block_mxint8 {
    uint8_t e;
    int8_t q[32];
};
static_assert(sizeof(block_mxint8) == 33, "mxint8 size");

struct block_mxfp8 {
    uint8_t e;
    uint8_t q[32];
};
static_assert(sizeof(block_mxfp8) == 33, "mxfp8 size");

struct block_mxfp6 {
    uint8_t e;
    uint8_t q[24];
};
static_assert(sizeof(block_mxfp6) == 25, "mxfp6 size");

struct block_mxfp4 {
    uint8_t e;
    uint8_t qs[16];
};
static_assert(sizeof(block_mxfp4) == 17, "mxfp4 size");

// Activations for the integer dot paths: 32 values, x ≈ d * q with d = amax / 127,
// q = round-half-even(x * (1/d)) (0 for an all-zero block), and s = d * Σq (used by INT4A's offset).
struct block_q8x {
    float d;
    float s;
    int8_t q[32];
};
static_assert(sizeof(block_q8x) == 40, "block_q8x size");

struct DTypeTraits {
    const char* name;  // as in the file format and CLI ("int4_64", "mxfp4", ...)
    int block;         // elements per block (1 for plain types)
    int block_bytes;   // bytes per block
    bool int_dot;      // true: matmul quantizes activations to block_q8x; false: f32 activations
};

const DTypeTraits& dtype_traits(uint32_t dtype);  // EDGE_ASSERTs dtype < EDGE_DTYPE_COUNT
bool dtype_valid(uint32_t dtype);
// Bytes of one row of `cols` elements; 0 if cols is not a multiple of the block size.
size_t dtype_row_bytes(uint32_t dtype, int64_t cols);

}  // namespace edge
