// kernels_backward.cpp — edgerun._core's test entry points for the training kernels (kernels/backward.h):
// run any level's gemm_t / gemm_tn_f32 / rmsnorm_bwd / silu_mul_bwd / attention_bwd / lse_update /
// xent_grad / adamw on numpy data (tests/test_backward_kernels.py). Registered by bind_kernels.
//
// Every hook copies its arrays into fresh buffers shifted by `misalign` floats (W by `misalign` bytes),
// so tests reach pointers that are not vector-aligned; gemm_t / gemm_tn_f32 also pad the row strides
// (ld = width + pad) and check that the kernel never writes the padding.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "kernels/kernels.h"
#include "quant.h"

namespace edge {
namespace bindings {

namespace {

using f32_array = py::array_t<float, py::array::c_style | py::array::forcecast>;

const KernelTable* table_or_raise(const std::string& level) {
    const KernelTable* t = level.empty() ? kernels_default() : kernels_for(level.c_str());
    if (!t) raise_status(status_error(Code::INVALID_ARGUMENT, "kernel level '" + level + "' is not supported on this CPU"));
    return t;
}

[[noreturn]] void bad(const std::string& msg) { raise_status(status_error(Code::INVALID_ARGUMENT, msg)); }

// A float buffer whose data starts `shift` floats past a 64-byte boundary; rows of `width` floats at
// stride ld (ld >= width), the padding filled with `pad` (NaN by default: reading it poisons results).
struct Buf {
    std::vector<float> store;
    float* p;
    Buf(int64_t rows, int64_t width, int64_t ld, int shift, const float* src = nullptr, float pad = NAN) {
        store.assign((size_t)(rows * ld + 32), pad);
        uintptr_t a = (uintptr_t)store.data();
        p = store.data() + ((64 - (a & 63)) & 63) / 4 + (shift & 7);
        for (int64_t r = 0; r < rows; ++r)
            if (src) std::memcpy(p + r * ld, src + r * width, (size_t)width * 4);
            else std::fill(p + r * ld, p + r * ld + width, 0.f);
    }
    // rows × width back to numpy; raises if a padding float changed (the kernel wrote outside its rows)
    py::array_t<float> out(int64_t rows, int64_t width, int64_t ld, const char* what) const {
        py::array_t<float> o({rows, width});
        for (int64_t r = 0; r < rows; ++r) {
            std::memcpy(o.mutable_data() + r * width, p + r * ld, (size_t)width * 4);
            for (int64_t j = width; j < ld && r + 1 < rows; ++j)
                if (!std::isnan(p[r * ld + j])) bad(std::string(what) + ": the kernel wrote into the row padding");
        }
        return o;
    }
};

int64_t len1(const f32_array& a, const char* what) {
    if (a.ndim() != 1) bad(std::string(what) + " must be 1-D");
    return a.shape(0);
}

// dX [ncols, n] + W[rows, n]^T applied to dY [ncols, rows] (dX is the accumulator's start).
py::array_t<float> py_gemm_t(int dtype, py::bytes wdata, int64_t rows, int64_t n, f32_array dy, f32_array dx,
                             const std::string& level, int misalign) {
    if (dtype < 0 || !dtype_valid((uint32_t)dtype)) bad(strfmt("unknown dtype id %d", dtype));
    const uint32_t dt = (uint32_t)dtype;
    const KernelTable* t = table_or_raise(level);
    const size_t rb = dtype_row_bytes(dt, n);
    std::string w = wdata;
    if (rb == 0 || w.size() != rb * (size_t)rows) bad(strfmt("gemm_t: %lld×%lld %s needs %zu bytes, got %zu", (long long)rows,
                                                             (long long)n, dtype_traits(dt).name, rb * (size_t)rows, w.size()));
    if (dy.ndim() != 2 || dy.shape(1) != rows || dx.ndim() != 2 || dx.shape(1) != n || dx.shape(0) != dy.shape(0))
        bad("gemm_t: dy must be [ncols, rows] and dx [ncols, n]");
    if (!t->gemm_t[dt].fn) raise_status(status_error(Code::UNSUPPORTED, std::string("no gemm_t kernel for ") + dtype_traits(dt).name));
    const int64_t ncols = dy.shape(0), ldy = rows + 3, ldx = n + 5;
    std::vector<char> wbuf(w.size() + 64);
    char* wp = wbuf.data() + (misalign & 15);
    std::memcpy(wp, w.data(), w.size());
    Buf y(ncols, rows, ldy, misalign, dy.data()), x(ncols, n, ldx, misalign + 1, dx.data());
    {
        py::gil_scoped_release release;
        t->gemm_t[dt].fn(wp, (int64_t)rb, rows, n, y.p, ldy, ncols, x.p, ldx);
    }
    return x.out(ncols, n, ldx, "gemm_t");
}

// C [M, N] + A [T, M]^T · B [T, N].
py::array_t<float> py_gemm_tn_f32(f32_array a, f32_array b, f32_array c, const std::string& level, int misalign) {
    const KernelTable* t = table_or_raise(level);
    if (a.ndim() != 2 || b.ndim() != 2 || c.ndim() != 2 || a.shape(0) != b.shape(0) || c.shape(0) != a.shape(1) ||
        c.shape(1) != b.shape(1))
        bad("gemm_tn_f32: a [T, M], b [T, N], c [M, N]");
    const int64_t T = a.shape(0), M = a.shape(1), N = b.shape(1), lda = M + 1, ldb = N + 2, ldc = N + 3;
    Buf A(T, M, lda, misalign, a.data()), B(T, N, ldb, misalign + 1, b.data()), C(M, N, ldc, misalign + 2, c.data());
    {
        py::gil_scoped_release release;
        t->gemm_tn_f32.fn(A.p, lda, B.p, ldb, T, M, N, C.p, ldc);
    }
    return C.out(M, N, ldc, "gemm_tn_f32");
}

// -> (dx, dw) after one rmsnorm_bwd from the given dx / dw starts (w / dw may be None).
py::tuple py_rmsnorm_bwd(f32_array x, py::object w, float eps, f32_array dy, f32_array dx, py::object dw,
                         const std::string& level, int misalign) {
    const KernelTable* t = table_or_raise(level);
    const int64_t n = len1(x, "x");
    if (len1(dy, "dy") != n || len1(dx, "dx") != n) bad("rmsnorm_bwd: x, dy, dx must have one length");
    Buf X(1, n, n, misalign, x.data()), DY(1, n, n, misalign + 1, dy.data()), DX(1, n, n, misalign + 2, dx.data());
    f32_array wa, dwa;
    Buf W(1, n, n, misalign + 3), DW(1, n, n, misalign + 4);
    if (!w.is_none()) {
        wa = w.cast<f32_array>();
        if (len1(wa, "w") != n) bad("rmsnorm_bwd: w must have n elements");
        std::memcpy(W.p, wa.data(), (size_t)n * 4);
    }
    if (!dw.is_none()) {
        dwa = dw.cast<f32_array>();
        if (len1(dwa, "dw") != n) bad("rmsnorm_bwd: dw must have n elements");
        std::memcpy(DW.p, dwa.data(), (size_t)n * 4);
    }
    t->rmsnorm_bwd.fn(X.p, w.is_none() ? nullptr : W.p, eps, n, DY.p, DX.p, dw.is_none() ? nullptr : DW.p);
    py::object dw_out = dw.is_none() ? py::object(py::none()) : py::object(DW.out(1, n, n, "").attr("reshape")(n));
    return py::make_tuple(DX.out(1, n, n, "").attr("reshape")(n), dw_out);
}

// -> (dg, du); alias=1 writes dg over g and du over u (the contract allows it).
py::tuple py_silu_mul_bwd(f32_array g, f32_array u, f32_array dy, const std::string& level, int misalign, bool alias) {
    const KernelTable* t = table_or_raise(level);
    const int64_t n = len1(g, "g");
    if (len1(u, "u") != n || len1(dy, "dy") != n) bad("silu_mul_bwd: g, u, dy must have one length");
    Buf G(1, n, n, misalign, g.data()), U(1, n, n, misalign + 1, u.data()), DY(1, n, n, misalign + 2, dy.data());
    Buf DG(1, n, n, misalign + 3), DU(1, n, n, misalign + 4);
    float* dg = alias ? G.p : DG.p;
    float* du = alias ? U.p : DU.p;
    t->silu_mul_bwd.fn(G.p, U.p, DY.p, n, dg, du);
    const Buf& rg = alias ? G : DG;
    const Buf& ru = alias ? U : DU;
    return py::make_tuple(rg.out(1, n, n, "").attr("reshape")(n), ru.out(1, n, n, "").attr("reshape")(n));
}

// q [Dh], k / v [n_pos, Dh], dout [Dh], dk / dv [n_pos, Dh] starts -> (dq, dk, dv). Rows at stride Dh + 1.
py::tuple py_attention_bwd(f32_array q, f32_array k, f32_array v, int64_t p_begin, float scale, f32_array dout,
                           f32_array dk, f32_array dv, const std::string& level, int misalign) {
    const KernelTable* t = table_or_raise(level);
    const int64_t dh = len1(q, "q");
    if (k.ndim() != 2 || v.ndim() != 2 || k.shape(1) != dh || v.shape(1) != dh || k.shape(0) != v.shape(0) ||
        len1(dout, "dout") != dh || dk.ndim() != 2 || dv.ndim() != 2 || dk.shape(0) != k.shape(0) ||
        dv.shape(0) != k.shape(0) || dk.shape(1) != dh || dv.shape(1) != dh || dh < 1)
        bad("attention_bwd: q, dout [Dh]; k, v, dk, dv [n_pos, Dh]");
    const int64_t n_pos = k.shape(0), ld = dh + 1;
    if (p_begin < 0 || p_begin >= n_pos) bad("attention_bwd: need 0 <= p_begin < n_pos");
    Buf Q(1, dh, dh, misalign, q.data()), K(n_pos, dh, ld, misalign + 1, k.data()), V(n_pos, dh, ld, misalign + 2, v.data());
    Buf DO(1, dh, dh, misalign + 3, dout.data()), DQ(1, dh, dh, misalign + 4, nullptr, 12345.f);
    Buf DK(n_pos, dh, ld, misalign + 5, dk.data()), DV(n_pos, dh, ld, misalign + 6, dv.data());
    std::vector<float> scratch((size_t)(2 * n_pos), NAN);
    std::fill(DQ.p, DQ.p + dh, 12345.f);  // "=": every element must be overwritten
    {
        py::gil_scoped_release release;
        t->attention_bwd.fn(Q.p, K.p, ld, V.p, ld, p_begin, n_pos, dh, scale, DO.p, scratch.data(), DQ.p, DK.p, DV.p);
    }
    return py::make_tuple(DQ.out(1, dh, dh, "").attr("reshape")(dh), DK.out(n_pos, dh, ld, "attention_bwd dk"),
                          DV.out(n_pos, dh, ld, "attention_bwd dv"));
}

py::tuple py_lse_update(f32_array l, float m, float s, const std::string& level, int misalign) {
    const KernelTable* t = table_or_raise(level);
    const int64_t n = len1(l, "l");
    Buf L(1, n, n, misalign, l.data());
    t->lse_update.fn(L.p, n, &m, &s);
    return py::make_tuple(m, s);
}

py::array_t<float> py_xent_grad(f32_array l, float lse, float scale, const std::string& level, int misalign) {
    const KernelTable* t = table_or_raise(level);
    const int64_t n = len1(l, "l");
    Buf L(1, n, n, misalign, l.data()), DL(1, n, n, misalign + 1, nullptr, 12345.f);
    std::fill(DL.p, DL.p + n, 12345.f);
    t->xent_grad.fn(L.p, n, lse, scale, DL.p);
    return DL.out(1, n, n, "").attr("reshape")(n);
}

// -> (p, m, v) after one AdamW update; bc1 / bc2 passed as given.
py::tuple py_adamw(f32_array p, f32_array g, f32_array m, f32_array v, float lr, float b1, float b2, float eps, float wd,
                   float bc1, float bc2, const std::string& level, int misalign) {
    const KernelTable* t = table_or_raise(level);
    const int64_t n = len1(p, "p");
    if (len1(g, "g") != n || len1(m, "m") != n || len1(v, "v") != n) bad("adamw: p, g, m, v must have one length");
    Buf P(1, n, n, misalign, p.data()), G(1, n, n, misalign + 1, g.data()), M(1, n, n, misalign + 2, m.data()),
        V(1, n, n, misalign + 3, v.data());
    const AdamParams a{lr, b1, b2, eps, wd, bc1, bc2};
    t->adamw.fn(P.p, G.p, M.p, V.p, n, a);
    return py::make_tuple(P.out(1, n, n, "").attr("reshape")(n), M.out(1, n, n, "").attr("reshape")(n),
                          V.out(1, n, n, "").attr("reshape")(n));
}


// Seconds per call of the level's gemm_t on W [rows, n] (bytes as stored) with ncols columns of dY,
// the best of `repeat` calls after one warm-up (bench/bench_backward_kernels.py; dX accumulates).
double py_bench_gemm_t(int dtype, py::bytes wdata, int64_t rows, int64_t n, int64_t ncols, const std::string& level, int repeat) {
    if (dtype < 0 || !dtype_valid((uint32_t)dtype)) bad(strfmt("unknown dtype id %d", dtype));
    const uint32_t dt = (uint32_t)dtype;
    const KernelTable* t = table_or_raise(level);
    const size_t rb = dtype_row_bytes(dt, n);
    std::string w = wdata;
    if (rb == 0 || w.size() != rb * (size_t)rows || ncols < 1 || repeat < 1) bad("bench_gemm_t: bad shape");
    if (!t->gemm_t[dt].fn) raise_status(status_error(Code::UNSUPPORTED, "no gemm_t kernel"));
    std::vector<float> dy((size_t)(rows * ncols), 1e-3f), dx((size_t)(n * ncols), 0.f);
    double best = 1e30;
    py::gil_scoped_release release;
    for (int i = 0; i <= repeat; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        t->gemm_t[dt].fn(w.data(), (int64_t)rb, rows, n, dy.data(), rows, ncols, dx.data(), n);
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (i > 0 && s < best) best = s;
    }
    return best;
}

}  // namespace

void bind_kernels_backward(py::module_& m) {
    m.def("gemm_t", &py_gemm_t, py::arg("dtype"), py::arg("w"), py::arg("rows"), py::arg("n"), py::arg("dy"),
          py::arg("dx"), py::arg("level") = "ref", py::arg("misalign") = 0);
    m.def("gemm_tn_f32", &py_gemm_tn_f32, py::arg("a"), py::arg("b"), py::arg("c"), py::arg("level") = "ref",
          py::arg("misalign") = 0);
    m.def("rmsnorm_bwd", &py_rmsnorm_bwd, py::arg("x"), py::arg("w"), py::arg("eps"), py::arg("dy"), py::arg("dx"),
          py::arg("dw"), py::arg("level") = "ref", py::arg("misalign") = 0);
    m.def("silu_mul_bwd", &py_silu_mul_bwd, py::arg("g"), py::arg("u"), py::arg("dy"), py::arg("level") = "ref",
          py::arg("misalign") = 0, py::arg("alias") = false);
    m.def("attention_bwd", &py_attention_bwd, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("p_begin"),
          py::arg("scale"), py::arg("dout"), py::arg("dk"), py::arg("dv"), py::arg("level") = "ref",
          py::arg("misalign") = 0);
    m.def("lse_update", &py_lse_update, py::arg("l"), py::arg("m"), py::arg("s"), py::arg("level") = "ref",
          py::arg("misalign") = 0);
    m.def("xent_grad", &py_xent_grad, py::arg("l"), py::arg("lse"), py::arg("scale"), py::arg("level") = "ref",
          py::arg("misalign") = 0);
    m.def("adamw", &py_adamw, py::arg("p"), py::arg("g"), py::arg("m"), py::arg("v"), py::arg("lr"), py::arg("b1"),
          py::arg("b2"), py::arg("eps"), py::arg("wd"), py::arg("bc1"), py::arg("bc2"), py::arg("level") = "ref",
          py::arg("misalign") = 0);
    m.def("bench_gemm_t", &py_bench_gemm_t, py::arg("dtype"), py::arg("w"), py::arg("rows"), py::arg("n"), py::arg("ncols"),
          py::arg("level") = "ref", py::arg("repeat") = 5);
}

}  // namespace bindings
}  // namespace edge
