// nl4_lut.cuh — nl4_32's table lookup in registers (gemv_nl4.cu, gemm_mma.cu): 4 nibble codes -> their 4 int8
// values of quant.h kNl4Values (GGML IQ4_NL's table), no memory access.
//
// The 16 values are four words T0..T3 (byte i of Tj = value 4j + i). A 16-bit selector s holds 4 codes (nibble i
// -> result byte i); prmt with the low 3 bits of each nibble picks from {T1:T0} (codes 0..7) and from {T3:T2}
// (codes 8..15), and a third prmt chooses per byte by bit 3 of the code (selector nibble i = i, or i + 4 for the
// second word). Bit 3 of a selector nibble is prmt's sign-replicate mode, hence the masks.
#pragma once

#include <cstdint>

#include "../../quant.h"

namespace edge {
namespace nl4_lut {

constexpr uint32_t table_word(int j) {
    return (uint32_t)(uint8_t)kNl4Values[4 * j] | (uint32_t)(uint8_t)kNl4Values[4 * j + 1] << 8 |
           (uint32_t)(uint8_t)kNl4Values[4 * j + 2] << 16 | (uint32_t)(uint8_t)kNl4Values[4 * j + 3] << 24;
}
constexpr uint32_t kT0 = table_word(0), kT1 = table_word(1), kT2 = table_word(2), kT3 = table_word(3);
static_assert(kT0 == 0xBFAD9881u && kT3 == 0x71594535u, "kNl4Values packing");

__device__ __forceinline__ uint32_t perm(uint32_t a, uint32_t b, uint32_t sel) {
    uint32_t d;
    asm("prmt.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(sel));
    return d;
}

// The 4 int8 values of the 4 nibble codes in the low 16 bits of s (nibble i -> byte i).
__device__ __forceinline__ uint32_t lookup4(uint32_t s) {
    const uint32_t lo = perm(kT0, kT1, s & 0x7777u);
    const uint32_t hi = perm(kT2, kT3, s & 0x7777u);
    return perm(lo, hi, 0x3210u | ((s >> 1) & 0x4444u));
}

// The 4 int8 values of 4 codes held one per byte (each byte 0..15): byte i -> byte i.
__device__ __forceinline__ uint32_t lookup4_bytes(uint32_t b) {
    const uint32_t y = b | (b >> 4);  // byte 0: codes 0, 1; byte 2: codes 2, 3
    return lookup4((y & 0xFFu) | ((y >> 8) & 0xFF00u));
}

}  // namespace nl4_lut
}  // namespace edge
