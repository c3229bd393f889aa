// gemm_int_dotprod.cpp — gemm_fn for every integer-dot dtype (q8_0, int4_32/64/128, int4a_32/64/128,
// mxint8, mxfp6, mxfp4, nl4_32, q5_0, q4_k, q6_k) × block_q8x activations with SDOT (armv8.2-a+dotprod:
// Raspberry Pi 5). Built with -march=armv8.2-a+dotprod+fp16 and used only when AT_HWCAP has ASIMDDP
// (dispatch.cpp). The reference is gemm_<dtype>_ref; the tiling, decoders and accuracy are in
// gemm_q8x_arm.h and q8x_formats_arm.h, the block dot (two SDOTs per row) in dot_sdot_arm.h.
#include "arm.h"
#include "dot_sdot_arm.h"
#include "q8x_formats_arm.h"

namespace edge {

EDGE_ARM_DEFINE_INT_GEMMS(dotprod, arm::DotSdot)

}  // namespace edge
