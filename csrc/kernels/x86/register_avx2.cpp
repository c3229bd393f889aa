// register_avx2.cpp — fills the KernelTable slots implemented for the avx2 level.
#include "../kernels.h"

namespace edge {

void kernels_register_avx2(KernelTable* t) {
    (void)t;  // kernels for this level are registered here as they are added
}

}  // namespace edge
