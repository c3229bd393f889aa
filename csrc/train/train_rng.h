// train_rng.h — counter-based random numbers for the trainer: value i of stream `key` is a pure function
// of (key, i), so LoRA initialisation and MeZO's z are the same whatever the thread count or order.
//   rng_mix: splitmix64's finaliser;  rng_unit: uniform in [0, 1) with 53 bits;  rng_gauss: N(0, 1) by
//   Box–Muller from two uniforms of the same counter.
#pragma once

#include <cmath>
#include <cstdint>

namespace edge {

inline uint64_t rng_mix(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

inline double rng_unit(uint64_t key, uint64_t i) { return (double)(rng_mix(key ^ rng_mix(i)) >> 11) * 0x1.0p-53; }

inline float rng_gauss(uint64_t key, uint64_t i) {
    const double u1 = 1.0 - rng_unit(key, 2 * i), u2 = rng_unit(key, 2 * i + 1);  // u1 in (0, 1]
    return (float)(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

}  // namespace edge
