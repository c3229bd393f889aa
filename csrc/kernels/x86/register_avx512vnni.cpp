// register_avx512vnni.cpp — fills the KernelTable slots implemented for the avx512vnni level.
#include "../kernels.h"

namespace edge {

void kernels_register_avx512vnni(KernelTable* t) {
    (void)t;  // kernels for this level are registered here as they are added
}

}  // namespace edge
