// dispatch.cpp — builds one KernelTable per supported level, once, from CPU probing.
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "kernels.h"

namespace edge {

namespace {

struct Level {
    const char* name;
    bool (*supported)();
    void (*reg)(KernelTable*);
};

bool always() { return true; }

#if defined(__x86_64__) || defined(_M_X64)
bool has_avx2() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
}
bool has_avx512() {
    return has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}
bool has_avx512vnni() { return has_avx512() && __builtin_cpu_supports("avx512vnni"); }
#endif

// Ordered lowest first; each level starts from a copy of the one before it.
const Level kLevels[] = {
    {"ref", always, kernels_register_ref},
#if defined(__x86_64__) || defined(_M_X64)
    {"avx2", has_avx2, kernels_register_avx2},
    {"avx512", has_avx512, kernels_register_avx512},
    {"avx512vnni", has_avx512vnni, kernels_register_avx512vnni},
#endif
};
constexpr int kNumLevels = (int)(sizeof(kLevels) / sizeof(kLevels[0]));

KernelTable g_tables[kNumLevels];
int g_num_supported = 0;
std::once_flag g_once;

void build_tables() {
    KernelTable t{};
    for (int i = 0; i < EDGE_DTYPE_COUNT; ++i) t.gemm_impl[i] = t.dequant_impl[i] = "none";
    t.quantize_q8x_impl = t.attention_impl = t.silu_mul_impl = "none";
    for (int i = 0; i < kNumLevels; ++i) {
        if (!kLevels[i].supported()) break;  // levels are nested: stop at the first unsupported one
        kLevels[i].reg(&t);
        t.level = kLevels[i].name;
        g_tables[i] = t;
        g_num_supported = i + 1;
    }
}

}  // namespace

int kernels_levels(const char** names, int max_names) {
    std::call_once(g_once, build_tables);
    int n = 0;
    for (; n < g_num_supported && n < max_names; ++n) names[n] = kLevels[n].name;
    return n;
}

const KernelTable* kernels_for(const char* level) {
    std::call_once(g_once, build_tables);
    for (int i = 0; i < g_num_supported; ++i)
        if (std::strcmp(kLevels[i].name, level) == 0) return &g_tables[i];
    return nullptr;
}

const KernelTable* kernels_default() {
    std::call_once(g_once, build_tables);
    const char* cap = std::getenv("EDGE_KERNELS");
    if (cap && *cap) {
        if (const KernelTable* t = kernels_for(cap)) return t;
        std::fprintf(stderr, "edgerun: EDGE_KERNELS=%s is not a supported level here; using %s\n", cap,
                     kLevels[g_num_supported - 1].name);
    }
    return &g_tables[g_num_supported - 1];
}

}  // namespace edge
