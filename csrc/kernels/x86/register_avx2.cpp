// register_avx2.cpp — fills the KernelTable slots implemented for the avx2 level (AVX2+FMA+F16C).
// Slots not set here keep the reference (dispatch.cpp copies the table of the level below).
#include "x86.h"

namespace edge {

void kernels_register_avx2(KernelTable* t) {
    t->quantize_q8x = quantize_q8x_avx2;
    t->quantize_q8x_impl = "avx2";
}

}  // namespace edge
