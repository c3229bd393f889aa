// sampler.cpp — see sampler.h.
#include "sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_set>

namespace edge {

Sampler::Sampler(const SamplerParams& p) : p_(p), rng_(p.seed) {}

void Sampler::penalty_ids(const std::vector<int32_t>& history, std::vector<int32_t>* ids) const {
    ids->clear();
    if (p_.repeat_penalty == 1.0f || p_.repeat_last_n == 0) return;
    size_t n = history.size();
    size_t from = p_.repeat_last_n < 0 || (size_t)p_.repeat_last_n >= n ? 0 : n - (size_t)p_.repeat_last_n;
    std::unordered_set<int32_t> seen(history.begin() + (long)from, history.end());
    ids->assign(seen.begin(), seen.end());
}

// std::uniform_real_distribution<float>(0, total)(rng_) is generate_canonical · total + 0 in libstdc++:
// drawing the canonical value here and scaling it gives the same bits
float Sampler::draw_uniform() { return std::generate_canonical<float, std::numeric_limits<float>::digits>(rng_); }

int32_t Sampler::sample(float* logits, int64_t n_vocab, const std::vector<int32_t>& history) {
    penalty_ids(history, &ids_);
    for (int32_t t : ids_) {
        if (t < 0 || t >= n_vocab) continue;
        logits[t] = logits[t] > 0 ? logits[t] / p_.repeat_penalty : logits[t] * p_.repeat_penalty;
    }
    if (p_.temperature <= 0.f) return (int32_t)(std::max_element(logits, logits + n_vocab) - logits);

    // top-k: the k best (logit, id), best first; ties by lower id
    cand_.clear();
    cand_.reserve((size_t)n_vocab);
    for (int64_t i = 0; i < n_vocab; ++i) cand_.emplace_back(logits[i], (int32_t)i);
    auto by_logit = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
        return a.first > b.first || (a.first == b.first && a.second < b.second);
    };
    size_t k = cand_.size();
    if (p_.top_k > 0 && (size_t)p_.top_k < k) k = (size_t)p_.top_k;
    std::partial_sort(cand_.begin(), cand_.begin() + (long)k, cand_.end(), by_logit);
    cand_.resize(k);

    // top-p and min-p on the probabilities at temperature 1 (llama.cpp applies temperature last)
    const float m = cand_[0].first;
    w_.resize(k);
    float sum = 0.f;
    for (size_t i = 0; i < k; ++i) sum += (w_[i] = std::exp(cand_[i].first - m));
    if (p_.top_p < 1.0f) {
        float cum = 0.f;
        for (size_t i = 0; i < k; ++i) {
            cum += w_[i] / sum;
            if (cum >= p_.top_p) { k = i + 1; break; }
        }
    }
    if (p_.min_p > 0.f) {  // w_[0] = 1 is the best token's weight
        size_t keep = 1;
        while (keep < k && w_[keep] >= p_.min_p) ++keep;
        k = keep;
    }

    // temperature on the survivors, then one draw
    float total = 0.f;
    for (size_t i = 0; i < k; ++i) total += (w_[i] = std::exp((cand_[i].first - m) / p_.temperature));
    float r = draw_uniform() * total, acc = 0.f;
    for (size_t i = 0; i < k; ++i) {
        acc += w_[i];
        if (r < acc) return cand_[i].second;
    }
    return cand_[k - 1].second;
}

}  // namespace edge
