// common.h — status values, invariant checks and half-precision conversions shared by the core.
//
// Errors that depend on input (files, arguments, shapes read from a model) are reported as a Status
// and propagated with EDGE_TRY; only csrc/bindings/ turns a Status into a Python exception.
// EDGE_ASSERT guards internal invariants: it aborts with file:line:expression and is never used on
// input-dependent conditions.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

namespace edge {

enum class Code : int {
    OK = 0,
    INVALID_ARGUMENT = 1,  // caller passed something unusable (bad size, unknown option)
    BAD_FILE = 2,          // file is truncated, corrupt or not an .edge file
    UNSUPPORTED = 3,       // valid input we do not implement (new version, unknown dtype/architecture)
    IO_ERROR = 4,          // the OS failed a read/open/mmap
    OUT_OF_MEMORY = 5,     // an allocation or the --mem budget cannot be met
};

struct Status {
    Code code = Code::OK;
    std::string msg;

    static Status ok() { return {}; }
    bool is_ok() const { return code == Code::OK; }
};

inline Status status_error(Code code, std::string msg) { return Status{code, std::move(msg)}; }

// printf-style message helper for Status construction.
std::string strfmt(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

#define EDGE_TRY(expr)                          \
    do {                                        \
        ::edge::Status _st = (expr);            \
        if (!_st.is_ok()) return _st;           \
    } while (0)

#define EDGE_ASSERT(cond)                                                                   \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            std::fprintf(stderr, "edgerun: %s:%d: assertion failed: %s\n", __FILE__, __LINE__, \
                         #cond);                                                            \
            std::abort();                                                                   \
        }                                                                                   \
    } while (0)

// IEEE binary16 <-> binary32, plain C (the reference; SIMD files use F16C).
// Round-to-nearest-even on the way down; subnormals, inf and NaN are preserved.
inline float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else {  // subnormal: normalise
            int e = -1;
            do { man <<= 1; ++e; } while (!(man & 0x400));
            bits = sign | (uint32_t)(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | man << 13;
    } else {
        bits = sign | (exp + 112) << 23 | man << 13;
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

inline uint16_t f32_to_f16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);  // rounds to inf
    if (ax < 0x38800000u) {                                     // result is subnormal or zero
        if (ax < 0x33000000u) return (uint16_t)sign;            // below half the smallest subnormal
        uint32_t e = ax >> 23;
        uint32_t m = (ax & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e;  // 14 + (112 - e) + 1 ... aligns to 2^-24 units
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) ++q;
        return (uint16_t)(sign | q);
    }
    uint32_t r = ax - 0x38000000u;  // rebias exponent 127 -> 15
    uint32_t q = r >> 13;
    uint32_t rem = r & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (q & 1))) ++q;
    return (uint16_t)(sign | q);
}

// bfloat16 <-> binary32 (round-to-nearest-even; NaN kept quiet).
inline float bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

inline uint16_t f32_to_bf16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

// E8M0 (OCP MX shared scale) -> float: 2^(e-127); e = 0 gives the float32 denormal 2^-127.
// 0xFF is NaN in the spec; the reader rejects it, kernels do not check.
inline float e8m0_to_f32(uint8_t e) {
    uint32_t bits = e ? (uint32_t)e << 23 : 0x00400000u;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

}  // namespace edge
