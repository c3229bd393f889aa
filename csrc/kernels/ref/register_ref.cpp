// register_ref.cpp — fills every KernelTable slot with the scalar reference.
#include "../kernels.h"

namespace edge {

void kernels_register_ref(KernelTable* t) {
    t->level = "ref";
}

}  // namespace edge
