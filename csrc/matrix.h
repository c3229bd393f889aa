// matrix.h — a weight matrix as the kernels see it: rows of a dtype's blocks, row r at data + r·row_bytes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace edge {

struct Matrix {
    const uint8_t* data = nullptr;
    uint32_t dtype = 0;
    int64_t rows = 0, cols = 0;
    size_t row_bytes = 0;
};

}  // namespace edge
