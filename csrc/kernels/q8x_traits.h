// q8x_traits.h — the optional fields of the integer-dot format policies (gemm_q8x_*.h of every ISA), with
// their defaults, so that only the formats that need one declare it. Types only (no code): any ISA file may
// include it.
//   kScales     scale vectors per weight block: 1, or one per 32-element activation block (q4_k)
//   kHalves     each activation block's two 16-element halves carry an integer factor (q6_k; arm, rvv)
//   kLaneScale  integer factors applied to the lane sums before the reduction tree (q6_k; x86)
//   kScaleAt    byte offset of a block's f16 scale (q6_k: 208; rvv)
#pragma once

#include <type_traits>

namespace edge {
namespace q8x {

template <class F, class = void>
struct scale_count : std::integral_constant<int, 1> {};
template <class F>
struct scale_count<F, std::void_t<decltype(F::kScales)>> : std::integral_constant<int, F::kScales> {};

template <class F, class = void>
struct half_scaled : std::false_type {};
template <class F>
struct half_scaled<F, std::void_t<decltype(F::kHalves)>> : std::bool_constant<F::kHalves> {};

template <class F, class = void>
struct lane_scaled : std::false_type {};
template <class F>
struct lane_scaled<F, std::void_t<decltype(F::kLaneScale)>> : std::bool_constant<F::kLaneScale> {};

template <class F, class = void>
struct scale_at : std::integral_constant<int, 0> {};
template <class F>
struct scale_at<F, std::void_t<decltype(F::kScaleAt)>> : std::integral_constant<int, F::kScaleAt> {};

}  // namespace q8x
}  // namespace edge
