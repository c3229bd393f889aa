// sampler.h — picks the next token from logits: greedy, temperature, top-k, top-p, min-p,
// repetition penalty, seeded.
//
// Defaults are llama.cpp's (common/common.h, common_params_sampling): temperature 0.8, top_k 40,
// top_p 0.95, min_p 0.05, repeat_penalty 1.0 (off), repeat_last_n 64. Order of application is
// llama.cpp's default chain (penalties → top-k → top-p → min-p → temperature → draw): top-p and
// min-p see the probabilities at temperature 1 (softmax of the penalized logits over the top-k
// candidates); the temperature only reshapes the survivors for the draw. temperature <= 0 is greedy
// (argmax after the penalty), so `--temp 0` output is deterministic and seed-independent.
// One difference: llama.cpp's default seed is random per run; ours is 0, so runs are reproducible.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace edge {

struct SamplerParams {
    float temperature = 0.8f;     // <= 0: greedy
    int32_t top_k = 40;           // <= 0: off
    float top_p = 0.95f;          // >= 1: off
    float min_p = 0.05f;          // <= 0: off
    float repeat_penalty = 1.0f;  // 1: off; divides positive logits, multiplies negative ones
    int32_t repeat_last_n = 64;   // how many recent tokens the penalty looks at (0: off, < 0: all)
    uint64_t seed = 0;
};

class Sampler {
public:
    explicit Sampler(const SamplerParams& p);
    // logits[n_vocab] is modified in place (penalty). `history` = tokens so far (prompt + generated).
    int32_t sample(float* logits, int64_t n_vocab, const std::vector<int32_t>& history);
    const SamplerParams& params() const { return p_; }
    // The pieces of sample() a device sampler needs (Backend::sample): the distinct ids the repetition
    // penalty touches (those of history's last repeat_last_n tokens; empty when the penalty is off), and
    // the next uniform draw u ∈ [0, 1) — sample() picks the token where the running sum of the survivors'
    // weights first exceeds u · total, and draws exactly once per call when temperature > 0.
    void penalty_ids(const std::vector<int32_t>& history, std::vector<int32_t>* ids) const;
    float draw_uniform();

private:
    SamplerParams p_;
    std::mt19937_64 rng_;
    std::vector<std::pair<float, int32_t>> cand_;  // (logit, id), best first after top-k
    std::vector<float> w_;                          // weights of cand_ (probabilities up to a factor)
    std::vector<int32_t> ids_;                      // penalty ids of the current call
};

}  // namespace edge
