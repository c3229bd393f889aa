// test_levels.h — the level bookkeeping the C++ kernel test programs share (test_kernels.cpp,
// test_backward.cpp): one LevelRun per kernel level under test, failure reporting, and the visit of each
// distinct implementation of a slot once (a slot a level inherits is the same code, checked below it).
#pragma once

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "kernels/kernels.h"

namespace edge {
namespace test {

struct LevelRun {
    std::string name;
    const KernelTable* t;
    bool tested;  // false: only the reference source for another level (--level X)
    int64_t checks = 0, failures = 0;
    int own_slots = 0;
};

inline std::vector<LevelRun> g_levels;
inline bool g_verbose = false;

// Reports a failure (the first few per level in full).
inline void fail(LevelRun& L, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
inline void fail(LevelRun& L, const char* fmt, ...) {
    if (++L.failures <= (g_verbose ? 100000 : 12)) {
        std::fprintf(stderr, "FAIL level %s: ", L.name.c_str());
        va_list ap;
        va_start(ap, fmt);
        std::vfprintf(stderr, fmt, ap);
        va_end(ap);
        std::fputc('\n', stderr);
    }
}

// Visits each tested level whose slot holds a function not seen yet in this case (the reference
// function included, so "ref" is checked where a float64 check exists).
template <class Fn, class Visit>
void for_each_distinct(KernelSlot<Fn> KernelTable::*slot, Visit visit) {
    std::vector<Fn> seen;
    for (LevelRun& L : g_levels) {
        Fn f = (L.t->*slot).fn;
        bool dup = false;
        for (Fn s : seen) dup = dup || s == f;
        if (dup) continue;
        seen.push_back(f);
        if (L.tested) visit(L, f);
    }
}
template <class Fn, class Visit>
void for_each_distinct_dtype(KernelSlot<Fn> (KernelTable::*slot)[EDGE_DTYPE_COUNT], int dt, Visit visit) {
    std::vector<Fn> seen;
    for (LevelRun& L : g_levels) {
        Fn f = (L.t->*slot)[dt].fn;
        bool dup = false;
        for (Fn s : seen) dup = dup || s == f;
        if (dup) continue;
        seen.push_back(f);
        if (L.tested) visit(L, f);
    }
}

}  // namespace test
}  // namespace edge
