// register_avx512.cpp — fills the KernelTable slots implemented for the avx512 level.
#include "../kernels.h"

namespace edge {

void kernels_register_avx512(KernelTable* t) {
    (void)t;  // kernels for this level are registered here as they are added
}

}  // namespace edge
