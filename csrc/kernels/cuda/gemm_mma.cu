// gemm_mma.cu — cuda_gemm_mma (cuda_kernels.h): the prefill GEMM of every int_dot dtype on the tensor
// cores (int8 mma.sync m16n8k32, sm_80+), bit-exact with gemm_int_ref.cpp.
//
//   Y[c * ldy + r] = Σ over the n/32 activation blocks k, in order k = 0, 1, ...:
//                    sumf += (sw[r,k] · x.d[c,k]) · (float)isum[r,c,k]   (+ m[r,k] · x.s[c,k] for int4a)
// with isum = Σ_{i<32} wc_i · x.q_i, the integer codes wc and f32 scale sw of gemm_int_ref.cpp's table
// (q8_0, int4_B, int4a_B, mxint8, mxfp6, mxfp4, nl4_32: its table values through nl4_lut.cuh). One tensor-core mma of k = 32 is exactly one activation
// block's isum (|isum| < 2^24: exact in s32 and in f32), and every thread owns its outputs' f32 sums and
// adds the block terms in k order with the reference's roundings (__fmul_rn / __fadd_rn, no FMA), so the
// result equals the reference bit for bit — unlike the GEMV, whose lanes split the sum.
//
// Tiling: a CTA of 4 warps computes 64 rows × BN columns (BN = 32 or 64 tokens); warp w owns rows
// 16w .. 16w+15 and all BN columns (BN/8 mma tiles, 4 f32 sums each per lane). The K loop walks stages
// of 4 activation blocks (128 elements): the CTA decodes the weight blocks of its 64 rows into int8
// codes (+ one scale, + one offset for int4a, per row and block) and copies the block_q8x codes / d / s
// of its columns into one of two shared-memory stages while the warps multiply the other: the next stage's
// global loads (aligned words, held in registers) are issued before the multiplies, decoded and stored after
// them. Rows of the shared tiles are 144 bytes (128 codes + 16 pad) so that the fragment loads (lane (g, t) reads word t of
// row g) hit 32 distinct banks. W is read as aligned 4-byte words around each block (any alignment, as
// cuda_gemv; never past the word holding a block's last byte), X with 4-byte loads. Rows past `rows`, columns past `ncols` compute on zeros and are not stored; blocks past n/32
// are not added.
// Grid: x = row tiles (rows / 64), y = column tiles (ncols / BN).
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda_kernels.h"
#include "nl4_lut.cuh"

namespace edge {
namespace {

constexpr int kBM = 64, kKB = 4, kLds = 32 * kKB + 16, kThreads = 128;

template <int BN>
struct Stage {
    uint8_t wq[kBM * kLds];  // weight codes [row][block·32 + i]
    float ws[kBM * kKB];     // weight scale per (row, block)
    float wm[kBM * kKB];     // int4a offset per (row, block)
    uint8_t xq[BN * kLds];   // activation codes [column][block·32 + i]
    float xd[BN * kKB], xs[BN * kKB];
};

// E8M0 -> 2^(e-127); e = 0 is 2^-127 (common.h e8m0_to_f32)
__device__ __forceinline__ float e8m0f(uint32_t e) { return __uint_as_float(e ? e << 23 : 0x00400000u); }
// E2M3 code -> 8·value (ref.h e2m3_x8), E2M1 code -> 2·value (ref.h kE2M1x2)
__device__ __forceinline__ uint32_t e2m3x8(uint32_t c) {
    const int e = (c >> 3) & 3, m = c & 7;
    const int v = e == 0 ? m : (8 + m) << (e - 1);
    return (uint32_t)((c & 0x20) ? -v : v) & 0xFFu;
}
__device__ __forceinline__ uint32_t e2m1x2(uint32_t c) {
    const int a = (int)(c & 7), v = a < 4 ? a : (2 + (a & 1)) << ((a >> 1) - 1);  // 0 1 2 3 4 6 8 12
    return (uint32_t)((c & 8) ? -v : v) & 0xFFu;
}

// Activation block kb (elements 32·kb .. 32·kb+31) of weight row `row`: 32 int8 codes in w, the scale sw
// and (int4a) the offset m — gemm_int_ref.cpp's wc / sw / m.
// Where activation block kb's bytes lie in its weight block (gemm_int_ref.cpp's layouts): the header (scale, and
// the int4a offset) at `hoff`, `hlen` bytes, and the codes at `coff`, `clen` bytes, from the block start `boff`.
template <uint32_t DT>
struct Layout {
    static constexpr bool kAsym = DT >= EDGE_DTYPE_INT4A_32 && DT <= EDGE_DTYPE_INT4A_128;
    static constexpr int kB = (DT == EDGE_DTYPE_INT4_64 || DT == EDGE_DTYPE_INT4A_64) ? 64
                              : (DT == EDGE_DTYPE_INT4_128 || DT == EDGE_DTYPE_INT4A_128) ? 128 : 32;
    static constexpr bool kInt4 = DT >= EDGE_DTYPE_INT4_32 && DT <= EDGE_DTYPE_INT4A_128;
    static constexpr bool kMx = DT == EDGE_DTYPE_MXINT8 || DT == EDGE_DTYPE_MXFP6 || DT == EDGE_DTYPE_MXFP4;
    static constexpr int kBB = DT == EDGE_DTYPE_Q8_0 ? 34 : DT == EDGE_DTYPE_MXINT8 ? 33 : DT == EDGE_DTYPE_MXFP6 ? 25
                               : DT == EDGE_DTYPE_MXFP4 ? 17 : (kAsym ? 4 : 2) + kB / 2;  // nl4_32: 18, as int4_32
    static constexpr int hlen = kMx ? 1 : kAsym ? 4 : 2;
    static constexpr int clen = DT == EDGE_DTYPE_Q8_0 || DT == EDGE_DTYPE_MXINT8 ? 32 : DT == EDGE_DTYPE_MXFP6 ? 24
                                : DT == EDGE_DTYPE_MXFP4 ? 16 : kB == 32 ? 16 : 32;
    __device__ static void at(int64_t kb, int64_t& boff, int& coff, int& nib_shift) {
        boff = (kb * 32 / kB) * kBB;
        const int e0 = (int)(kb * 32 % kB);  // int4_B, B >= 64: element e of the block is byte e mod B/2, high nibble past B/2
        coff = hlen + (kInt4 && kB > 32 ? e0 % (kB / 2) : 0);
        nib_shift = kInt4 && kB > 32 && e0 >= kB / 2 ? 4 : 0;
    }
};

// One weight unit (a row's activation block) fetched as aligned words: W may have any byte alignment, so the
// aligned words around the bytes are read (at most 3 bytes before / after, inside the same 4-byte word: never
// another page) and funnel-shifted at commit. Only the words holding the unit's bytes are read.
struct WRaw {
    uint32_t h[2], c[9];
    uint32_t hsh, csh, nib;  // byte shifts (0..3), the nibble shift
    bool valid;
};
struct XRaw {
    uint32_t w[10];  // a block_q8x: d, s, q[32]
    bool valid;
};

template <uint32_t DT>
__device__ __forceinline__ void fetch_w(const uint8_t* row, int64_t kb, bool valid, WRaw& r) {
    using L = Layout<DT>;
    r.valid = valid;
    if (!valid) return;
    int64_t boff;
    int coff, nib;
    L::at(kb, boff, coff, nib);
    const uintptr_t hp = (uintptr_t)(row + boff), cp = hp + coff;
    const uint32_t* ha = reinterpret_cast<const uint32_t*>(hp & ~(uintptr_t)3);
    const uint32_t* ca = reinterpret_cast<const uint32_t*>(cp & ~(uintptr_t)3);
    r.hsh = (uint32_t)(hp & 3);
    r.csh = (uint32_t)(cp & 3);
    r.nib = (uint32_t)nib;
    const int hn = (int)((r.hsh + L::hlen + 3) / 4), cn = (int)((r.csh + L::clen + 3) / 4);
#pragma unroll
    for (int i = 0; i < 2; ++i) r.h[i] = i < hn ? __ldg(ha + i) : 0u;
#pragma unroll
    for (int i = 0; i < 9; ++i) r.c[i] = i < cn ? __ldg(ca + i) : 0u;
}

__device__ __forceinline__ uint32_t fsh(uint32_t lo, uint32_t hi, uint32_t bytes) { return __funnelshift_r(lo, hi, 8 * bytes); }

// The unit's 32 int8 codes (w), scale sw and int4a offset m — gemm_int_ref.cpp's wc / sw / m.
template <uint32_t DT>
__device__ __forceinline__ void decode_w(const WRaw& r, uint32_t (&w)[8], float& sw, float& m) {
    using L = Layout<DT>;
    m = 0.f;
    if (!r.valid) {
#pragma unroll
        for (int i = 0; i < 8; ++i) w[i] = 0;
        sw = 0.f;
        return;
    }
    const uint32_t hw = fsh(r.h[0], r.h[1], r.hsh);
    uint32_t cw[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) cw[i] = fsh(r.c[i], r.c[i + 1], r.csh);
    if constexpr (L::kMx) {
        const float e = e8m0f(hw & 0xFFu);
        if constexpr (DT == EDGE_DTYPE_MXINT8) {
            sw = __fmul_rn(e, 0.015625f);
#pragma unroll
            for (int i = 0; i < 8; ++i) w[i] = cw[i];
        } else if constexpr (DT == EDGE_DTYPE_MXFP6) {
            sw = __fmul_rn(e, 0.125f);
#pragma unroll
            for (int g = 0; g < 8; ++g) {  // 3 bytes -> 4 codes; bytes 3g .. 3g+2 of the 24
                const int b = 3 * g;
                const uint32_t v = (uint32_t)((((uint64_t)cw[b / 4 + 1 < 8 ? b / 4 + 1 : 7] << 32) | cw[b / 4]) >> (8 * (b % 4))) & 0xFFFFFFu;
                w[g] = e2m3x8(v & 63) | e2m3x8((v >> 6) & 63) << 8 | e2m3x8((v >> 12) & 63) << 16 | e2m3x8((v >> 18) & 63) << 24;
            }
        } else {  // mxfp4: element j < 16 the low nibble of byte j, j + 16 its high nibble
            sw = __fmul_rn(e, 0.5f);
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                uint32_t lo = 0, hi = 0;
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    const uint32_t q = (cw[i] >> (8 * j)) & 0xFFu;
                    lo |= e2m1x2(q & 15) << (8 * j);
                    hi |= e2m1x2(q >> 4) << (8 * j);
                }
                w[i] = lo;
                w[i + 4] = hi;
            }
        }
    } else {
        sw = __half2float(__ushort_as_half((unsigned short)(hw & 0xFFFFu)));
        if constexpr (DT == EDGE_DTYPE_Q8_0) {
#pragma unroll
            for (int i = 0; i < 8; ++i) w[i] = cw[i];
        } else if constexpr (DT == EDGE_DTYPE_NL4_32) {  // int4_32's nibble order, codes -> table values
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                w[i] = nl4_lut::lookup4_bytes(cw[i] & 0x0F0F0F0Fu);
                w[i + 4] = nl4_lut::lookup4_bytes((cw[i] >> 4) & 0x0F0F0F0Fu);
            }
        } else {
            if constexpr (L::kAsym) m = __half2float(__ushort_as_half((unsigned short)(hw >> 16)));
            if constexpr (L::kB == 32) {  // elements 0..15: low nibbles of the 16 bytes, 16..31: high nibbles
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    w[i] = cw[i] & 0x0F0F0F0Fu;
                    w[i + 4] = (cw[i] >> 4) & 0x0F0F0F0Fu;
                }
            } else {
#pragma unroll
                for (int i = 0; i < 8; ++i) w[i] = (cw[i] >> r.nib) & 0x0F0F0F0Fu;
            }
            if constexpr (!L::kAsym) {
#pragma unroll
                for (int i = 0; i < 8; ++i) w[i] = __vsub4(w[i], 0x08080808u);  // q - 8 per byte
            }
        }
    }
}

template <int BN>
struct Units {
    static constexpr int kW = kBM * kKB / kThreads, kX = BN * kKB / kThreads;  // per thread
};

// Stage kb0 .. kb0 + kKB - 1: the global loads (fetch) are issued before the current stage's multiplies and
// written to shared memory (commit) after them, so their latency hides behind the tensor-core work.
template <uint32_t DT, int BN>
__device__ __forceinline__ void fetch_stage(WRaw (&rw)[Units<BN>::kW], XRaw (&rx)[Units<BN>::kX], const uint8_t* W,
                                            int64_t w_stride, int64_t rows, int64_t m0, const uint8_t* X, int64_t x_stride,
                                            int64_t ncols, int64_t n0, int64_t kb0, int64_t nb) {
#pragma unroll
    for (int k = 0; k < Units<BN>::kW; ++k) {
        const int u = threadIdx.x + k * kThreads, r = u / kKB, j = u % kKB;
        const int64_t row = m0 + r, kb = kb0 + j;
        const bool ok = row < rows && kb < nb;
        fetch_w<DT>(W + (ok ? row : 0) * w_stride, kb, ok, rw[k]);
    }
#pragma unroll
    for (int k = 0; k < Units<BN>::kX; ++k) {
        const int u = threadIdx.x + k * kThreads, c = u / kKB, j = u % kKB;
        const int64_t col = n0 + c, kb = kb0 + j;
        rx[k].valid = col < ncols && kb < nb;
        if (rx[k].valid) {
            const uint32_t* xb = reinterpret_cast<const uint32_t*>(X + (col * x_stride + kb) * (int64_t)sizeof(block_q8x));
#pragma unroll
            for (int i = 0; i < 10; ++i) rx[k].w[i] = __ldg(xb + i);
        }
    }
}

template <uint32_t DT, int BN>
__device__ __forceinline__ void commit_stage(Stage<BN>& st, const WRaw (&rw)[Units<BN>::kW], const XRaw (&rx)[Units<BN>::kX]) {
#pragma unroll
    for (int k = 0; k < Units<BN>::kW; ++k) {
        const int u = threadIdx.x + k * kThreads, r = u / kKB, j = u % kKB;
        uint32_t w[8];
        float sw, m;
        decode_w<DT>(rw[k], w, sw, m);
        uint4* dst = reinterpret_cast<uint4*>(st.wq + r * kLds + j * 32);
        dst[0] = make_uint4(w[0], w[1], w[2], w[3]);
        dst[1] = make_uint4(w[4], w[5], w[6], w[7]);
        st.ws[r * kKB + j] = sw;
        st.wm[r * kKB + j] = m;
    }
#pragma unroll
    for (int k = 0; k < Units<BN>::kX; ++k) {
        const int u = threadIdx.x + k * kThreads, c = u / kKB, j = u % kKB;
        uint4* dst = reinterpret_cast<uint4*>(st.xq + c * kLds + j * 32);
        const XRaw& x = rx[k];
        st.xd[c * kKB + j] = x.valid ? __uint_as_float(x.w[0]) : 0.f;
        st.xs[c * kKB + j] = x.valid ? __uint_as_float(x.w[1]) : 0.f;
        dst[0] = x.valid ? make_uint4(x.w[2], x.w[3], x.w[4], x.w[5]) : make_uint4(0, 0, 0, 0);
        dst[1] = x.valid ? make_uint4(x.w[6], x.w[7], x.w[8], x.w[9]) : make_uint4(0, 0, 0, 0);
    }
}

__device__ __forceinline__ void mma_s8(int (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                       uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile(
        "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#else
    __trap();  // cuda_gemm_mma is refused below sm_80 (cuda_gemm_mma_supported)
#endif
}

template <uint32_t DT, int BN>
__global__ void __launch_bounds__(kThreads) gemm_mma_k(const uint8_t* __restrict__ W, int64_t w_stride, int64_t rows, int64_t n,
                                                      const uint8_t* __restrict__ X, int64_t x_stride, int64_t ncols,
                                                      float* __restrict__ Y, int64_t ldy) {
    constexpr bool kAsym = DT >= EDGE_DTYPE_INT4A_32 && DT <= EDGE_DTYPE_INT4A_128;
    constexpr int NT = BN / 8;
    __shared__ __align__(16) Stage<BN> st[2];
    const int64_t m0 = (int64_t)blockIdx.x * kBM, n0 = (int64_t)blockIdx.y * BN, nb = n / 32;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int r0 = warp * 16 + g, r1 = r0 + 8;
    float acc[NT][4];
#pragma unroll
    for (int i = 0; i < NT; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;

    const int64_t nstages = (nb + kKB - 1) / kKB;
    WRaw rw[Units<BN>::kW];
    XRaw rx[Units<BN>::kX];
    fetch_stage<DT, BN>(rw, rx, W, w_stride, rows, m0, X, x_stride, ncols, n0, 0, nb);
    commit_stage<DT, BN>(st[0], rw, rx);
    __syncthreads();
    for (int64_t s = 0; s < nstages; ++s) {
        if (s + 1 < nstages) fetch_stage<DT, BN>(rw, rx, W, w_stride, rows, m0, X, x_stride, ncols, n0, (s + 1) * kKB, nb);
        const Stage<BN>& c = st[s & 1];
        const int nj = (int)(nb - s * kKB < kKB ? nb - s * kKB : kKB);
        for (int j = 0; j < nj; ++j) {
            const uint8_t* wa = c.wq + j * 32 + 4 * t;
            const uint32_t a0 = *reinterpret_cast<const uint32_t*>(wa + r0 * kLds);
            const uint32_t a1 = *reinterpret_cast<const uint32_t*>(wa + r1 * kLds);
            const uint32_t a2 = *reinterpret_cast<const uint32_t*>(wa + r0 * kLds + 16);
            const uint32_t a3 = *reinterpret_cast<const uint32_t*>(wa + r1 * kLds + 16);
            const float s0 = c.ws[r0 * kKB + j], s1 = c.ws[r1 * kKB + j];
            const float mo0 = kAsym ? c.wm[r0 * kKB + j] : 0.f, mo1 = kAsym ? c.wm[r1 * kKB + j] : 0.f;
#pragma unroll
            for (int nt = 0; nt < NT; ++nt) {
                const uint8_t* xa = c.xq + (nt * 8 + g) * kLds + j * 32 + 4 * t;
                int d[4] = {0, 0, 0, 0};
                mma_s8(d, a0, a1, a2, a3, *reinterpret_cast<const uint32_t*>(xa), *reinterpret_cast<const uint32_t*>(xa + 16));
                const int c0 = nt * 8 + 2 * t, c1 = c0 + 1;  // C fragment: (row g, cols 2t, 2t+1), (row g+8, same cols)
                const float xd0 = c.xd[c0 * kKB + j], xd1 = c.xd[c1 * kKB + j];
                float e0 = __fmul_rn(__fmul_rn(s0, xd0), (float)d[0]);
                float e1 = __fmul_rn(__fmul_rn(s0, xd1), (float)d[1]);
                float e2 = __fmul_rn(__fmul_rn(s1, xd0), (float)d[2]);
                float e3 = __fmul_rn(__fmul_rn(s1, xd1), (float)d[3]);
                if constexpr (kAsym) {
                    const float xs0 = c.xs[c0 * kKB + j], xs1 = c.xs[c1 * kKB + j];
                    e0 = __fadd_rn(e0, __fmul_rn(mo0, xs0));
                    e1 = __fadd_rn(e1, __fmul_rn(mo0, xs1));
                    e2 = __fadd_rn(e2, __fmul_rn(mo1, xs0));
                    e3 = __fadd_rn(e3, __fmul_rn(mo1, xs1));
                }
                acc[nt][0] = __fadd_rn(acc[nt][0], e0);
                acc[nt][1] = __fadd_rn(acc[nt][1], e1);
                acc[nt][2] = __fadd_rn(acc[nt][2], e2);
                acc[nt][3] = __fadd_rn(acc[nt][3], e3);
            }
        }
        // the other stage was last read in stage s-1, before the barrier that ended it
        if (s + 1 < nstages) commit_stage<DT, BN>(st[(s + 1) & 1], rw, rx);
        __syncthreads();
    }
    const int64_t ra = m0 + r0, rb = m0 + r1;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
        const int64_t ca = n0 + nt * 8 + 2 * t, cb = ca + 1;
        if (ca < ncols) {
            if (ra < rows) Y[ca * ldy + ra] = acc[nt][0];
            if (rb < rows) Y[ca * ldy + rb] = acc[nt][2];
        }
        if (cb < ncols) {
            if (ra < rows) Y[cb * ldy + ra] = acc[nt][1];
            if (rb < rows) Y[cb * ldy + rb] = acc[nt][3];
        }
    }
}

template <uint32_t DT>
cudaError_t launch(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X, int64_t x_stride, int64_t ncols,
                   float* Y, int64_t ldy, int bn, cudaStream_t stream) {
    const unsigned gx = (unsigned)((rows + kBM - 1) / kBM);
    if (bn == 64) {
        gemm_mma_k<DT, 64><<<dim3(gx, (unsigned)((ncols + 63) / 64)), kThreads, 0, stream>>>(
            (const uint8_t*)W, w_stride, rows, n, (const uint8_t*)X, x_stride, ncols, Y, ldy);
    } else {
        gemm_mma_k<DT, 32><<<dim3(gx, (unsigned)((ncols + 31) / 32)), kThreads, 0, stream>>>(
            (const uint8_t*)W, w_stride, rows, n, (const uint8_t*)X, x_stride, ncols, Y, ldy);
    }
    return cudaGetLastError();
}

}  // namespace

bool cuda_gemm_mma_supported(uint32_t dtype, int cc_major) {
    // the int_dot dtypes Layout<DT> decodes (the switch below); not the GGML block types q5_0 / q4_k / q6_k
    // (no CUDA kernel yet)
    return cc_major >= 8 && dtype < EDGE_DTYPE_COUNT && dtype_traits(dtype).int_dot && dtype < EDGE_DTYPE_Q5_0;
}

cudaError_t cuda_gemm_mma(uint32_t dtype, const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X,
                          int64_t x_stride, int64_t ncols, float* Y, int64_t ldy, cudaStream_t stream, int bn) {
    if (rows < 1 || ncols < 1 || n < 32 || n % 32 || x_stride < n / 32 || ldy < rows || w_stride < 1 ||
        ncols > 65535LL * 32 || (bn != 32 && bn != 64) || ((uintptr_t)X & 3) || ((uintptr_t)Y & 3))
        return cudaErrorInvalidValue;
    if (dtype >= EDGE_DTYPE_COUNT || !dtype_traits(dtype).int_dot || n % dtype_traits(dtype).block ||
        w_stride < (int64_t)dtype_row_bytes(dtype, n))
        return cudaErrorInvalidValue;
    switch (dtype) {
        case EDGE_DTYPE_Q8_0: return launch<EDGE_DTYPE_Q8_0>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, bn, stream);
        case EDGE_DTYPE_INT4_32: return launch<EDGE_DTYPE_INT4_32>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, bn, stream);
        case EDGE_DTYPE_INT4_64: return launch<EDGE_DTYPE_INT4_64>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, bn, stream);
        case EDGE_DTYPE_INT4_128: return launch<EDGE_DTYPE_INT4_128>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, bn, stream);
        case EDGE_DTYPE_INT4A_32: return launch<EDGE_DTYPE_INT4A_32>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, bn, stream);
        case EDGE_DTYPE_INT4A_64: return launch<EDGE_DTYPE_INT4A_64>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, bn, stream);
        case EDGE_DTYPE_INT4A_128: return launch<EDGE_DTYPE_INT4A_128>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, bn, stream);
        case EDGE_DTYPE_MXINT8: return launch<EDGE_DTYPE_MXINT8>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, bn, stream);
        case EDGE_DTYPE_MXFP6: return launch<EDGE_DTYPE_MXFP6>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, bn, stream);
        case EDGE_DTYPE_MXFP4: return launch<EDGE_DTYPE_MXFP4>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, bn, stream);
        case EDGE_DTYPE_NL4_32: return launch<EDGE_DTYPE_NL4_32>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, bn, stream);
        default: return cudaErrorInvalidValue;
    }
}

}  // namespace edge
