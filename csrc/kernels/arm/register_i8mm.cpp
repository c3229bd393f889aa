// register_i8mm.cpp — the i8mm level (armv8.6-a SMMLA). No kernel of its own yet: every slot keeps the
// dotprod level's entry (dispatch.cpp copies it), so an i8mm CPU runs the SDOT kernels.
#include "arm.h"

namespace edge {

void kernels_register_i8mm(KernelTable*) {}

}  // namespace edge
