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
//   q5_0       d * (q - 16)             (exact)
//   q4_k       (d * sc) * q - dmin * m  (d*sc, dmin*m and (d*sc)*q exact; one rounding: the subtraction)
//   q6_k       (d * sc) * (q - 32)      (d*sc exact; the second product rounds: 19 + 6 bits; the order is
//                                        GGML's, so values equal llama.cpp's and gguf.quants')
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

void dequant_q5_0_ref(const void* src, float* y, int64_t n) {
    const uint8_t* p = (const uint8_t*)src;
    for (int64_t b = 0; b < n / 32; ++b, p += sizeof(block_q5_0), y += 32) {
        float d = f16_to_f32(load_u16(p));
        uint32_t qh = (uint32_t)p[2] | (uint32_t)p[3] << 8 | (uint32_t)p[4] << 16 | (uint32_t)p[5] << 24;
        const uint8_t* qs = p + 6;
        for (int j = 0; j < 16; ++j) {
            y[j] = d * (float)((int)((qs[j] & 15) | ((qh >> j) & 1) << 4) - 16);
            y[j + 16] = d * (float)((int)((qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4) - 16);
        }
    }
}

void dequant_q4_k_ref(const void* src, float* y, int64_t n) {
    const uint8_t* p = (const uint8_t*)src;
    for (int64_t b = 0; b < n / 256; ++b, p += sizeof(block_q4_k), y += 256) {
        const float d = f16_to_f32(load_u16(p)), dmin = f16_to_f32(load_u16(p + 2));
        const uint8_t* qs = p + 16;
        for (int j = 0; j < 8; ++j) {
            int sc, m;
            q4_k_scale_min(p + 4, j, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            const uint8_t* q = qs + 32 * (j / 2);
            const int sh = 4 * (j & 1);
            for (int i = 0; i < 32; ++i) y[32 * j + i] = d1 * (float)((q[i] >> sh) & 15) - m1;
        }
    }
}

void dequant_q6_k_ref(const void* src, float* y, int64_t n) {
    const uint8_t* p = (const uint8_t*)src;
    for (int64_t b = 0; b < n / 256; ++b, p += sizeof(block_q6_k), y += 256) {
        const float d = f16_to_f32(load_u16(p + 208));
        const int8_t* sc = (const int8_t*)(p + 192);
        for (int h = 0; h < 2; ++h)
            for (int g = 0; g < 4; ++g)
                for (int l = 0; l < 32; ++l) {
                    const int lo = (p[64 * h + l + 32 * (g & 1)] >> (g < 2 ? 0 : 4)) & 15;
                    const int hi = (p[128 + 32 * h + l] >> (2 * g)) & 3;
                    y[128 * h + 32 * g + l] = (d * (float)sc[8 * h + 2 * g + l / 16]) * (float)((lo | hi << 4) - 32);
                }
    }
}

}  // namespace edge
