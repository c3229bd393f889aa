// sampler.h — picks the next token from logits: greedy, temperature, top-k, top-p, min-p,
// repetition penalty, seeded. Order of application (as llama.cpp's default chain): repetition
// penalty → top-k → softmax with temperature → top-p → min-p → draw. temperature <= 0 is greedy
// (after the penalty), so `--temp 0` output is deterministic and seed-independent.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace edge {

struct SamplerParams {
    float temperature = 0.8f;
    int32_t top_k = 40;           // <= 0: off
    float top_p = 0.95f;          // >= 1: off
    float min_p = 0.05f;          // <= 0: off
    float repeat_penalty = 1.1f;  // 1: off; divides positive logits, multiplies negative ones
    int32_t repeat_last_n = 64;   // how many recent tokens the penalty looks at
    uint64_t seed = 0;
};

class Sampler {
public:
    explicit Sampler(const SamplerParams& p);
    // logits[n_vocab] is modified in place (penalty). `history` = tokens so far (prompt + generated).
    int32_t sample(float* logits, int64_t n_vocab, const std::vector<int32_t>& history);
    const SamplerParams& params() const { return p_; }

private:
    SamplerParams p_;
    std::mt19937_64 rng_;
    std::vector<std::pair<float, int32_t>> cand_;
};

}  // namespace edge
