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
//   Q5_0     x = d * (q - 16)                    d: f16, q: 5 bits (GGML Q5_0 byte for byte, see below)
//   Q4_K     x = (d*sc_j) * q - dmin*m_j         256 = 8 sub-blocks j of 32; sc_j, m_j: 6 bits (GGML Q4_K)
//   Q6_K     x = (d*sc_j) * (q - 32)             256 = 16 sub-blocks j of 16; sc_j: int8, q: 6 bits (GGML Q6_K)
// The three GGML block types are stored exactly as llama.cpp writes them (they are not split-half within
// 256-blocks; each struct below says where element i lives), so GGUF tensors of them import byte for byte.
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
    EDGE_DTYPE_Q5_0 = 17,
    EDGE_DTYPE_Q4_K = 18,
    EDGE_DTYPE_Q6_K = 19,
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

// Q5_0 (= GGML Q5_0): element j < 16 is (qs[j] & 15) | bit j of qh << 4, element j + 16 is
// (qs[j] >> 4) | bit j + 16 of qh << 4 (qh read as a little-endian u32); x = d * (q - 16).
struct block_q5_0 {
    uint16_t d;     // f16
    uint8_t qh[4];  // 5th bits, little-endian u32
    uint8_t qs[16]; // low nibbles, split-half
};
static_assert(sizeof(block_q5_0) == 22, "q5_0 size");

// Q4_K (= GGML Q4_K), 256 elements in 8 sub-blocks of 32. Element 64c + i (c < 4, i < 32) is the low
// nibble of qs[32c + i] (sub-block 2c); element 64c + 32 + i its high nibble (sub-block 2c + 1).
// Sub-block j's 6-bit scale sc_j and min m_j, from the 12 bytes s: j < 4: sc = s[j] & 63, m = s[j+4] & 63;
// j >= 4: sc = (s[j+4] & 15) | (s[j-4] >> 6) << 4, m = (s[j+4] >> 4) | (s[j] >> 6) << 4.
// x = (d * sc_j) * q - dmin * m_j (d*sc_j and dmin*m_j are exact in f32).
struct block_q4_k {
    uint16_t d;          // f16 super-scale of the scales
    uint16_t dmin;       // f16 super-scale of the mins
    uint8_t scales[12];  // packed 6-bit scales and mins
    uint8_t qs[128];
};
static_assert(sizeof(block_q4_k) == 144, "q4_k size");

// Sub-block j's (0 <= j < 8) 6-bit scale and min from a q4_k block's 12 packed bytes (the rule above).
inline void q4_k_scale_min(const uint8_t* s, int j, int* sc, int* m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
        *m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

// Q6_K (= GGML Q6_K), 256 elements in two halves h of 128; in a half, element 32g + l (g < 4, l < 32)
// has its low 4 bits in ql[64h + l + 32(g & 1)] (low nibble for g < 2, high for g >= 2) and its top 2
// bits at bit 2g of qh[32h + l]; its scale is scales[8h + 2g + l / 16]. x = (d * sc) * (q - 32).
struct block_q6_k {
    uint8_t ql[128];
    uint8_t qh[64];
    int8_t scales[16];
    uint16_t d;  // f16
};
static_assert(sizeof(block_q6_k) == 210, "q6_k size");

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
