// quant.cpp — per-dtype traits (names, block sizes) of the .edge element types.
#include "quant.h"

#include "common.h"

namespace edge {

static const DTypeTraits kTraits[EDGE_DTYPE_COUNT] = {
    {"f32", 1, 4, false},          {"f16", 1, 2, false},          {"bf16", 1, 2, false},
    {"q8_0", 32, 34, true},        {"int4_32", 32, 18, true},     {"int4_64", 64, 34, true},
    {"int4_128", 128, 66, true},   {"int4a_32", 32, 20, true},    {"int4a_64", 64, 36, true},
    {"int4a_128", 128, 68, true},  {"mxint8", 32, 33, true},      {"mxfp8", 32, 33, false},
    {"mxfp6", 32, 25, true},       {"mxfp4", 32, 17, true},       {"i32", 1, 4, false},       {"blob", 1, 1, false},
    {"nl4_32", 32, 18, true},      {"q5_0", 32, 22, true},        {"q4_k", 256, 144, true},
    {"q6_k", 256, 210, true},
};

bool dtype_valid(uint32_t dtype) { return dtype < EDGE_DTYPE_COUNT; }

const DTypeTraits& dtype_traits(uint32_t dtype) {
    EDGE_ASSERT(dtype < EDGE_DTYPE_COUNT);
    return kTraits[dtype];
}

size_t dtype_row_bytes(uint32_t dtype, int64_t cols) {
    if (!dtype_valid(dtype) || cols <= 0) return 0;
    const DTypeTraits& t = kTraits[dtype];
    if (cols % t.block) return 0;
    return (size_t)(cols / t.block) * (size_t)t.block_bytes;
}

}  // namespace edge
