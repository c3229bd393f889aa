// dispatch.cpp — builds one KernelTable per supported level, once, from CPU probing.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "kernels.h"

#if defined(__aarch64__) || (defined(__riscv) && __riscv_xlen == 64)
#include <sys/auxv.h>
#endif

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
#if defined(__aarch64__)
// Linux arm64 hwcap bits (asm/hwcap.h), spelled out so old sysroots build too.
constexpr unsigned long kHwcapAsimd = 1ul << 1, kHwcapAsimdHp = 1ul << 10, kHwcapAsimdDp = 1ul << 20;
constexpr unsigned long kHwcap2I8mm = 1ul << 13;
bool has_neon() { return getauxval(AT_HWCAP) & kHwcapAsimd; }
bool has_dotprod() { return has_neon() && (getauxval(AT_HWCAP) & kHwcapAsimdDp) && (getauxval(AT_HWCAP) & kHwcapAsimdHp); }
bool has_i8mm() { return has_dotprod() && (getauxval(AT_HWCAP2) & kHwcap2I8mm); }
#endif
#if defined(__riscv) && __riscv_xlen == 64
// AT_HWCAP carries one bit per single-letter extension: bit ('V' - 'A').
bool has_rvv() { return getauxval(AT_HWCAP) & (1ul << ('V' - 'A')); }
#endif

// Ordered lowest first; each level starts from a copy of the one before it.
const Level kLevels[] = {
    {"ref", always, kernels_register_ref},
#if defined(__x86_64__) || defined(_M_X64)
    {"avx2", has_avx2, kernels_register_avx2},
    {"avx512", has_avx512, kernels_register_avx512},
    {"avx512vnni", has_avx512vnni, kernels_register_avx512vnni},
#endif
#if defined(__aarch64__)
    {"neon", has_neon, kernels_register_neon},
    {"dotprod", has_dotprod, kernels_register_dotprod},
    {"i8mm", has_i8mm, kernels_register_i8mm},
#endif
#if defined(__riscv) && __riscv_xlen == 64
    {"rvv", has_rvv, kernels_register_rvv},
#endif
};
constexpr int kNumLevels = (int)(sizeof(kLevels) / sizeof(kLevels[0]));

KernelTable g_tables[kNumLevels];
int g_num_supported = 0;
std::once_flag g_once;

void build_tables() {
    KernelTable t;  // every slot empty ("none")
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
