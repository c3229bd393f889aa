// register_avx512.cpp — fills the KernelTable slots implemented for the avx512 level (F+BW+VL+DQ).
// Slots not set here keep the avx2 entries (dispatch.cpp copies the table of the level below).
#include "x86.h"

namespace edge {

void kernels_register_avx512(KernelTable* t) {
    t->quantize_q8x = quantize_q8x_avx512;
    t->quantize_q8x_impl = "avx512";
}

}  // namespace edge
