// test_util.h — what the C++ test programs share: a seeded random source (splitmix64), dtype predicates,
// and the float64 value of one gemm output with its Σ|block terms| (the bound of kernels.h).
// Header-only, portable (native, qemu, nvcc host code).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "common.h"
#include "quant.h"

namespace edge {
namespace test {

struct Rng {
    uint64_t s;
    uint64_t next() {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    uint32_t u32() { return (uint32_t)(next() >> 32); }
    int range(int lo, int hi) { return lo + (int)(next() % (uint64_t)(hi - lo + 1)); }  // [lo, hi]
    double uniform() { return (double)(next() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
    float sym(float a) { return (float)((2.0 * uniform() - 1.0) * a); }                // (-a, a)
    // Finite f16 with a random sign, exponent field in [elo, ehi] (1..30 normal, 0 subnormal).
    uint16_t f16(int elo, int ehi) {
        return (uint16_t)((u32() & 0x8000) | (uint32_t)range(elo, ehi) << 10 | (u32() & 0x3FF));
    }
};

inline bool is_int4a(int dt) { return dt >= (int)EDGE_DTYPE_INT4A_32 && dt <= (int)EDGE_DTYPE_INT4A_128; }
inline bool is_mx(int dt) { return dt >= (int)EDGE_DTYPE_MXINT8 && dt <= (int)EDGE_DTYPE_MXFP4; }

// Float64 value and Σ|block terms| of one (row, column): wrow the row's bytes, wdeq its exact dequant,
// xcol the column (n f32, or n/32 block_q8x for int_dot dtypes).
inline void exact_dot(int dt, const uint8_t* wrow, const float* wdeq, int64_t n, const uint8_t* xcol, double* value,
                      double* terms) {
    const DTypeTraits& tr = dtype_traits(dt);
    double v = 0, t = 0;
    if (!tr.int_dot) {
        for (int64_t i = 0; i < n; ++i) {
            float xi;
            std::memcpy(&xi, xcol + 4 * i, 4);
            const double p = (double)wdeq[i] * xi;
            v += p;
            t += std::fabs(p);
        }
    } else {
        for (int64_t k = 0; k < n / 32; ++k) {
            block_q8x a;
            std::memcpy(&a, xcol + k * sizeof(block_q8x), sizeof a);
            double m = 0;
            if (is_int4a(dt)) {
                const int64_t wb = 32 * k / tr.block;
                uint16_t mh;
                std::memcpy(&mh, wrow + wb * tr.block_bytes + 2, 2);
                m = f16_to_f32(mh);
            } else if (dt == (int)EDGE_DTYPE_Q4_K) {  // the offset of sub-block k % 8: -dmin·m_j
                const uint8_t* wb = wrow + (k / 8) * tr.block_bytes;
                uint16_t dm;
                std::memcpy(&dm, wb + 2, 2);
                int sc, mj;
                q4_k_scale_min(wb + 4, (int)(k % 8), &sc, &mj);
                m = -(double)f16_to_f32(dm) * mj;
            }
            double s = 0;
            for (int i = 0; i < 32; ++i) s += ((double)wdeq[32 * k + i] - m) * (double)a.d * a.q[i];
            v += s + m * a.s;
            t += std::fabs(s) + std::fabs(m * a.s);
        }
    }
    *value = v;
    *terms = t;
}

}  // namespace test
}  // namespace edge
