// dequant_ref.cpp — one row of n stored elements -> n floats, for every dtype but i32.
//
// src: row_bytes(dtype, n) bytes (any alignment); y: n floats; n a multiple of the block size.
// Exact: every value below is computed with f32 operations whose results are exactly representable
// (a f16 scale times a ≤ 8-bit integer, a power of two times a short integer), except INT4A's
// d*q + m, which is one correctly rounded f32 add of an exact product (so FMA or not gives the same
// bits). The numpy dequantizer (edgeconv.quant.dequantize) computes the same expressions and is
// tested equal bit for bit.
//   f32/f16/bf16  the stored value (f16/bf16 widened exactly)
//   q8_0          d * q
//   int4_B        d * (q - 8)
//   int4a_B       d * q + m
//   mxint8        (2^(e-127) / 64) * q        (the scale first: 2^127 * 127 would overflow)
//   mxfp8         2^(e-127) * e4m3(q)
//   mxfp6         (2^(e-127) / 8) * e2m3x8(q)
//   mxfp4         (2^(e-127) / 2) * e2m1x2(q)
//   nl4_32     d * kNl4Values[q]        (f16 d times an int8: exact)
#include "ref.h"

#include "../../common.h"

namespace edge {

void dequant_f32_ref(const void* src, float* y, int64_t n) {
    std::memcpy(y, src, (size_t)n * 4);
}

void dequant_f16_ref(const void* src, float* y, int64_t n) {
    const uint8_t* p = (const uint8_t*)src;
    for (int64_t i = 0; i < n; ++i) y[i] = f16_to_f32(load_u16(p + 2 * i));
}

void dequant_bf16_ref(const void* src, float* y, int64_t n) {
    const uint8_t* p = (const uint8_t*)src;
    for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_f32(load_u16(p + 2 * i));
}

void dequant_q8_0_ref(const void* src, float* y, int64_t n) {
    const uint8_t* p = (const uint8_t*)src;
    for (int64_t b = 0; b < n / 32; ++b, p += sizeof(block_q8_0), y += 32) {
        float d = f16_to_f32(load_u16(p));
        for (int i = 0; i < 32; ++i) y[i] = d * (float)(int8_t)p[2 + i];
    }
}

template <int B>
static void dequant_int4(const void* src, float* y, int64_t n) {
    const uint8_t* p = (const uint8_t*)src;
    for (int64_t b = 0; b < n / B; ++b, p += sizeof(block_int4<B>), y += B) {
        float d = f16_to_f32(load_u16(p));
        const uint8_t* qs = p + 2;
        for (int j = 0; j < B / 2; ++j) {
            y[j] = d * (float)((qs[j] & 15) - 8);
            y[j + B / 2] = d * (float)((qs[j] >> 4) - 8);
        }
    }
}

template <int B>
static void dequant_int4a(const void* src, float* y, int64_t n) {
    const uint8_t* p = (const uint8_t*)src;
    for (int64_t b = 0; b < n / B; ++b, p += sizeof(block_int4a<B>), y += B) {
        float d = f16_to_f32(load_u16(p));
        float m = f16_to_f32(load_u16(p + 2));
        const uint8_t* qs = p + 4;
        for (int j = 0; j < B / 2; ++j) {
            y[j] = d * (float)(qs[j] & 15) + m;
            y[j + B / 2] = d * (float)(qs[j] >> 4) + m;
        }
    }
}

void dequant_int4_32_ref(const void* src, float* y, int64_t n) { dequant_int4<32>(src, y, n); }
void dequant_int4_64_ref(const void* src, float* y, int64_t n) { dequant_int4<64>(src, y, n); }
void dequant_int4_128_ref(const void* src, float* y, int64_t n) { dequant_int4<128>(src, y, n); }
void dequant_int4a_32_ref(const void* src, float* y, int64_t n) { dequant_int4a<32>(src, y, n); }
void dequant_int4a_64_ref(const void* src, float* y, int64_t n) { dequant_int4a<64>(src, y, n); }
void dequant_int4a_128_ref(const void* src, float* y, int64_t n) { dequant_int4a<128>(src, y, n); }

void dequant_mxint8_ref(const void* src, float* y, int64_t n) {
    const uint8_t* p = (const uint8_t*)src;
    for (int64_t b = 0; b < n / 32; ++b, p += sizeof(block_mxint8), y += 32) {
        float s = e8m0_to_f32(p[0]) * 0.015625f;
        for (int i = 0; i < 32; ++i) y[i] = s * (float)(int8_t)p[1 + i];
    }
}

void dequant_mxfp8_ref(const void* src, float* y, int64_t n) {
    const uint8_t* p = (const uint8_t*)src;
    for (int64_t b = 0; b < n / 32; ++b, p += sizeof(block_mxfp8), y += 32) {
        float s = e8m0_to_f32(p[0]);
        for (int i = 0; i < 32; ++i) y[i] = s * e4m3_to_f32(p[1 + i]);
    }
}

void dequant_mxfp6_ref(const void* src, float* y, int64_t n) {
    const uint8_t* p = (const uint8_t*)src;
    for (int64_t b = 0; b < n / 32; ++b, p += sizeof(block_mxfp6), y += 32) {
        float s = e8m0_to_f32(p[0]) * 0.125f;
        const uint8_t* q = p + 1;
        for (int g = 0; g < 8; ++g) {
            uint32_t v = (uint32_t)q[3 * g] | (uint32_t)q[3 * g + 1] << 8 | (uint32_t)q[3 * g + 2] << 16;
            for (int i = 0; i < 4; ++i) y[4 * g + i] = s * (float)e2m3_x8((uint8_t)((v >> (6 * i)) & 63));
        }
    }
}

void dequant_mxfp4_ref(const void* src, float* y, int64_t n) {
    const uint8_t* p = (const uint8_t*)src;
    for (int64_t b = 0; b < n / 32; ++b, p += sizeof(block_mxfp4), y += 32) {
        float s = e8m0_to_f32(p[0]) * 0.5f;
        const uint8_t* qs = p + 1;
        for (int j = 0; j < 16; ++j) {
            y[j] = s * (float)kE2M1x2[qs[j] & 15];
            y[j + 16] = s * (float)kE2M1x2[qs[j] >> 4];
        }
    }
}

void dequant_nl4_32_ref(const void* src, float* y, int64_t n) {
    const uint8_t* p = (const uint8_t*)src;
    for (int64_t b = 0; b < n / 32; ++b, p += sizeof(block_nl4), y += 32) {
        float d = f16_to_f32(load_u16(p));
        const uint8_t* qs = p + 2;
        for (int j = 0; j < 16; ++j) {
            y[j] = d * (float)kNl4Values[qs[j] & 15];
            y[j + 16] = d * (float)kNl4Values[qs[j] >> 4];
        }
    }
}

}  // namespace edge
