// gemm_float_rvv.cpp — gemm_fn (kernels.h) for the float-activation dtypes f32, f16, bf16 and mxfp8 with
// RVV. The reference is gemm_{f32,f16,bf16,mxfp8}_ref.
//
// Y[c*ldy + r] = Σ_i w(r,i) · x(c,i); X column c at (const float*)X + c*x_stride; any n >= 1 (mxfp8:
// n % 32 == 0); any alignment (vle32/vle16 when W, X and the strides are element-aligned, else the
// byte path of rvv_util.h). Each step takes vl = vsetvl(e32m2) elements; weights are widened to f32
// exactly (rvv_util.h): f16 by integer bit moves and one multiply by 2^112 (no zvfh needed: the K230's
// C908 may lack it), bf16 by a shift, mxfp8's E4M3 the same way times 2^120 and then the block's
// 2^(e-127) (exact for every E8M0 of a gemm input; a mxfp8 step never crosses a 32-element block).
// f32 FMAs (vfmacc, tail-undisturbed so a short last step keeps the other lanes) go into tiles of
// 4 rows × 1 column or 2 rows × 4 columns; one unordered reduction (vfredusum) per output at the end.
// Accuracy: the lanes reorder the f32 sum; vs the reference the difference is ≤ (n + vlmax)·2^-24·Σ|w_i x_i|,
// within kernels.h's 1e-5·Σ|terms| for the row lengths of real layers (and far inside it in practice,
// as the errors of random-sign terms do not add up linearly).
// Rows past the end of a tile reuse its last row (valid memory, results dropped). The schedule (row
// blocks, column groups, the last columns) is sched::gemm_float (gemm_schedule.h); this file is the
// decode and the tiles.
#include "../gemm_schedule.h"
#include "rvv.h"
#include "rvv_util.h"

namespace edge {
namespace rvv {
namespace {

// step(i, n): the most elements the step at i may take (the rest of the row, or of a 32-block);
// load: vl elements i.. of a row as f32.
struct F32 {
    static constexpr int kElemBytes = 4;
    static int64_t step(int64_t i, int64_t n) { return n - i; }
    template <bool A>
    static vfloat32m2_t load(const uint8_t* row, int64_t i, size_t vl) { return ld_f32m2<A>(row + 4 * i, vl); }
};
struct F16 {
    static constexpr int kElemBytes = 2;
    static int64_t step(int64_t i, int64_t n) { return n - i; }
    template <bool A>
    static vfloat32m2_t load(const uint8_t* row, int64_t i, size_t vl) {
        return f16_f32m2(ld_u16_u32m2<A>(row + 2 * i, vl), vl);
    }
};
struct BF16 {
    static constexpr int kElemBytes = 2;
    static int64_t step(int64_t i, int64_t n) { return n - i; }
    template <bool A>
    static vfloat32m2_t load(const uint8_t* row, int64_t i, size_t vl) {
        return bf16_f32m2(ld_u16_u32m2<A>(row + 2 * i, vl), vl);
    }
};
struct MxFp8 {
    static constexpr int kElemBytes = 1;  // bytes are loaded as bytes: W needs no alignment
    static int64_t step(int64_t i, int64_t n) { return 32 - (i & 31); }  // n % 32 == 0
    template <bool A>
    static vfloat32m2_t load(const uint8_t* row, int64_t i, size_t vl) {
        const uint8_t* blk = row + (i >> 5) * 33;
        const vuint32m2_t c = __riscv_vzext_vf4_u32m2(__riscv_vle8_v_u8mf2(blk + 1 + (i & 31), vl), vl);
        return __riscv_vfmul_vf_f32m2(e4m3_f32m2(c, vl), e8m0_f32s(blk[0]), vl);
    }
};

inline float reduce(vfloat32m2_t acc, size_t vlmax) {
    return __riscv_vfmv_f_s_f32m1_f32(__riscv_vfredusum_vs_f32m2_f32m1(acc, __riscv_vfmv_v_f_f32m1(0.0f, 1), vlmax));
}

// Up to 4 rows (valid_rows) × 1 column.
template <class Wt, bool A>
void tile_r4(const uint8_t* w, int64_t w_stride, int valid_rows, int64_t n, const uint8_t* x, float* y) {
    const uint8_t* r0 = w;
    const uint8_t* r1 = w + (valid_rows > 1 ? 1 : 0) * w_stride;
    const uint8_t* r2 = w + (valid_rows > 2 ? 2 : valid_rows - 1) * w_stride;
    const uint8_t* r3 = w + (valid_rows > 3 ? 3 : valid_rows - 1) * w_stride;
    const size_t vlmax = __riscv_vsetvlmax_e32m2();
    vfloat32m2_t a0 = __riscv_vfmv_v_f_f32m2(0.0f, vlmax), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < n;) {
        const size_t vl = __riscv_vsetvl_e32m2((size_t)Wt::step(i, n));
        const vfloat32m2_t xv = ld_f32m2<A>(x + 4 * i, vl);
        a0 = __riscv_vfmacc_vv_f32m2_tu(a0, Wt::template load<A>(r0, i, vl), xv, vl);
        a1 = __riscv_vfmacc_vv_f32m2_tu(a1, Wt::template load<A>(r1, i, vl), xv, vl);
        a2 = __riscv_vfmacc_vv_f32m2_tu(a2, Wt::template load<A>(r2, i, vl), xv, vl);
        a3 = __riscv_vfmacc_vv_f32m2_tu(a3, Wt::template load<A>(r3, i, vl), xv, vl);
        i += (int64_t)vl;
    }
    st_f32s(y, reduce(a0, vlmax));
    if (valid_rows > 1) st_f32s(y + 1, reduce(a1, vlmax));
    if (valid_rows > 2) st_f32s(y + 2, reduce(a2, vlmax));
    if (valid_rows > 3) st_f32s(y + 3, reduce(a3, vlmax));
}

// Up to 2 rows (valid_rows) × C columns (C <= 4), X column c at x + c·xs bytes.
template <class Wt, bool A, int C>
void tile_r2(const uint8_t* w, int64_t w_stride, int valid_rows, int64_t n, const uint8_t* x, int64_t xs, float* y,
             int64_t ldy) {
    const uint8_t* r0 = w;
    const uint8_t* r1 = w + (valid_rows > 1 ? 1 : 0) * w_stride;
    const size_t vlmax = __riscv_vsetvlmax_e32m2();
    const vfloat32m2_t z = __riscv_vfmv_v_f_f32m2(0.0f, vlmax);
    vfloat32m2_t a00 = z, a01 = z, a02 = z, a03 = z, a10 = z, a11 = z, a12 = z, a13 = z;
    for (int64_t i = 0; i < n;) {
        const size_t vl = __riscv_vsetvl_e32m2((size_t)Wt::step(i, n));
        const vfloat32m2_t w0 = Wt::template load<A>(r0, i, vl), w1 = Wt::template load<A>(r1, i, vl);
        const vfloat32m2_t x0 = ld_f32m2<A>(x + 4 * i, vl);
        a00 = __riscv_vfmacc_vv_f32m2_tu(a00, w0, x0, vl);
        a10 = __riscv_vfmacc_vv_f32m2_tu(a10, w1, x0, vl);
        if (C > 1) {
            const vfloat32m2_t x1 = ld_f32m2<A>(x + xs + 4 * i, vl);
            a01 = __riscv_vfmacc_vv_f32m2_tu(a01, w0, x1, vl);
            a11 = __riscv_vfmacc_vv_f32m2_tu(a11, w1, x1, vl);
        }
        if (C > 2) {
            const vfloat32m2_t x2 = ld_f32m2<A>(x + 2 * xs + 4 * i, vl);
            a02 = __riscv_vfmacc_vv_f32m2_tu(a02, w0, x2, vl);
            a12 = __riscv_vfmacc_vv_f32m2_tu(a12, w1, x2, vl);
        }
        if (C > 3) {
            const vfloat32m2_t x3 = ld_f32m2<A>(x + 3 * xs + 4 * i, vl);
            a03 = __riscv_vfmacc_vv_f32m2_tu(a03, w0, x3, vl);
            a13 = __riscv_vfmacc_vv_f32m2_tu(a13, w1, x3, vl);
        }
        i += (int64_t)vl;
    }
    st_f32s(y, reduce(a00, vlmax));
    if (valid_rows > 1) st_f32s(y + 1, reduce(a10, vlmax));
    if (C > 1) {
        st_f32s(y + ldy, reduce(a01, vlmax));
        if (valid_rows > 1) st_f32s(y + ldy + 1, reduce(a11, vlmax));
    }
    if (C > 2) {
        st_f32s(y + 2 * ldy, reduce(a02, vlmax));
        if (valid_rows > 1) st_f32s(y + 2 * ldy + 1, reduce(a12, vlmax));
    }
    if (C > 3) {
        st_f32s(y + 3 * ldy, reduce(a03, vlmax));
        if (valid_rows > 1) st_f32s(y + 3 * ldy + 1, reduce(a13, vlmax));
    }
}

// The tile policy of sched::gemm_float (gemm_schedule.h): 4 rows × 1 column for decode, else 2 rows × up to
// 4 columns (a last single column too). A: W, X and the strides are element-aligned (vle32/vle16 loads).
template <class Wt, bool A>
struct Tile : sched::FloatShape<4, 2, 4, false, 256 << 10> {  // row blocks of 256 KiB of weights (L2)
    template <int R, int C>
    static void tile(const uint8_t* w, int64_t w_stride, int valid_rows, int64_t n, const float* x, int64_t x_stride,
                     float* Y, int64_t ldy) {
        if constexpr (R == 4) tile_r4<Wt, A>(w, w_stride, valid_rows, n, (const uint8_t*)x, Y);
        else tile_r2<Wt, A, C>(w, w_stride, valid_rows, n, (const uint8_t*)x, x_stride * 4, Y, ldy);
    }
};

template <class Wt>
void gemm_float(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X, int64_t x_stride,
                int64_t ncols, float* Y, int64_t ldy) {
    const bool a = aligned(W, Wt::kElemBytes) && w_stride % Wt::kElemBytes == 0 && aligned(X, 4);
    if (a) sched::gemm_float<Tile<Wt, true>>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy);
    else sched::gemm_float<Tile<Wt, false>>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy);
}

}  // namespace
}  // namespace rvv

void gemm_f32_rvv(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                  float* Y, int64_t ldy) {
    rvv::gemm_float<rvv::F32>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_f16_rvv(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                  float* Y, int64_t ldy) {
    rvv::gemm_float<rvv::F16>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_bf16_rvv(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                   float* Y, int64_t ldy) {
    rvv::gemm_float<rvv::BF16>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_mxfp8_rvv(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                    float* Y, int64_t ldy) {
    rvv::gemm_float<rvv::MxFp8>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}

}  // namespace edge
