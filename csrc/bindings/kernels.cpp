// kernels.cpp — edgerun._core's kernel access: the levels this CPU runs, which implementation fills each
// slot of a level's table (kernel_table), and entry points that run any level's dequantize / quantize_q8x /
// gemm / attention / silu_mul on numpy data, for the tests (tests/test_kernels_simd.py, test_quant.py);
// the training kernels' entry points are in kernels_backward.cpp.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "backend/cpu/float_ops.h"
#include "kernels/kernels.h"
#include "quant.h"

namespace edge {
namespace bindings {

namespace {

const KernelTable* table_or_raise(const std::string& level) {
    const KernelTable* t = level.empty() ? kernels_default() : kernels_for(level.c_str());
    if (!t) raise_status(status_error(Code::INVALID_ARGUMENT, "kernel level '" + level + "' is not supported on this CPU"));
    return t;
}

uint32_t dtype_or_raise(int dtype) {
    if (dtype < 0 || !dtype_valid((uint32_t)dtype))
        raise_status(status_error(Code::INVALID_ARGUMENT, strfmt("unknown dtype id %d", dtype)));
    return (uint32_t)dtype;
}

using f32_array = py::array_t<float, py::array::c_style | py::array::forcecast>;

// ---- kernel access for tests: run any level's implementation on numpy data ----

py::array_t<float> py_dequantize(int dtype, py::bytes data, int64_t n, const std::string& level) {
    uint32_t dt = dtype_or_raise(dtype);
    const KernelTable* t = table_or_raise(level);
    std::string buf = data;
    size_t need = dtype_row_bytes(dt, n);
    if (need == 0 || buf.size() < need)
        raise_status(status_error(Code::INVALID_ARGUMENT, strfmt("dequantize: %lld elements need %zu bytes of %s, got %zu",
                                                                 (long long)n, need, dtype_traits(dt).name, buf.size())));
    if (!t->dequant[dt].fn) raise_status(status_error(Code::UNSUPPORTED, "no dequantize kernel for this dtype"));
    py::array_t<float> out(n);
    t->dequant[dt].fn(buf.data(), out.mutable_data(), n);
    return out;
}

py::bytes py_quantize_q8x(f32_array x, const std::string& level) {
    const KernelTable* t = table_or_raise(level);
    int64_t n = (int64_t)x.size();
    if (n % 32) raise_status(status_error(Code::INVALID_ARGUMENT, "quantize_q8x: length must be a multiple of 32"));
    std::vector<block_q8x> y((size_t)(n / 32));
    t->quantize_q8x.fn(x.data(), y.data(), n);
    return py::bytes(reinterpret_cast<const char*>(y.data()), y.size() * sizeof(block_q8x));
}

// Y[ncols, rows] = X[ncols, n] · W[rows, n]^T with the level's kernels. `misalign` shifts W, X and Y
// by that many bytes inside their buffers so tests can exercise unaligned pointers.
py::array_t<float> py_gemm(int dtype, py::bytes wdata, int64_t rows, int64_t n, f32_array x,
                           const std::string& level, int misalign) {
    uint32_t dt = dtype_or_raise(dtype);
    const KernelTable* t = table_or_raise(level);
    const DTypeTraits& tr = dtype_traits(dt);
    size_t rb = dtype_row_bytes(dt, n);
    std::string w = wdata;
    if (rb == 0 || n % 32 || w.size() != rb * (size_t)rows)
        raise_status(status_error(Code::INVALID_ARGUMENT, strfmt("gemm: %lld×%lld %s needs %zu bytes, got %zu", (long long)rows,
                                                                 (long long)n, tr.name, rb * (size_t)rows, w.size())));
    if (x.ndim() != 2 || x.shape(1) != n) raise_status(status_error(Code::INVALID_ARGUMENT, "gemm: x must be [ncols, n]"));
    if (!t->gemm[dt].fn) raise_status(status_error(Code::UNSUPPORTED, std::string("no gemm kernel for ") + tr.name));
    int64_t ncols = x.shape(0);
    misalign = misalign & 15;
    std::vector<char> wbuf(w.size() + 64);
    char* wp = wbuf.data() + misalign;
    std::memcpy(wp, w.data(), w.size());
    std::vector<char> xbuf;
    const void* xp;
    int64_t x_stride;
    if (tr.int_dot) {
        xbuf.resize((size_t)ncols * (size_t)(n / 32) * sizeof(block_q8x) + 64);
        block_q8x* q = reinterpret_cast<block_q8x*>(xbuf.data() + misalign);
        for (int64_t c = 0; c < ncols; ++c) t->quantize_q8x.fn(x.data() + c * n, q + c * (n / 32), n);
        xp = q;
        x_stride = n / 32;
    } else {
        xbuf.resize((size_t)(ncols * n) * sizeof(float) + 64);
        std::memcpy(xbuf.data() + misalign, x.data(), (size_t)(ncols * n) * sizeof(float));
        xp = xbuf.data() + misalign;
        x_stride = n;
    }
    std::vector<char> ybuf((size_t)(ncols * rows) * sizeof(float) + 64);
    float* yp = reinterpret_cast<float*>(ybuf.data() + misalign);
    {
        py::gil_scoped_release release;
        t->gemm[dt].fn(wp, (int64_t)rb, rows, n, xp, x_stride, ncols, yp, rows);
    }
    py::array_t<float> out({ncols, rows});
    std::memcpy(out.mutable_data(), yp, (size_t)(ncols * rows) * sizeof(float));
    return out;
}

// out[head_dim] = attention of q[head_dim] over k, v [n_pos, stride] (first head_dim columns of each row).
py::array_t<float> py_attention(f32_array q, f32_array k, f32_array v, const std::string& level, int64_t p_begin) {
    const KernelTable* t = table_or_raise(level);
    if (q.ndim() != 1 || k.ndim() != 2 || v.ndim() != 2 || k.shape(0) != v.shape(0) || k.shape(1) != v.shape(1) ||
        q.shape(0) > k.shape(1) || k.shape(0) < 1 || q.shape(0) < 1)
        raise_status(status_error(Code::INVALID_ARGUMENT, "attention: q [Dh], k and v [n_pos, stride >= Dh]"));
    int64_t dh = q.shape(0), n_pos = k.shape(0), stride = k.shape(1);
    if (p_begin < 0 || p_begin >= n_pos) raise_status(status_error(Code::INVALID_ARGUMENT, "attention: need 0 <= p_begin < n_pos"));
    // K in the cache's tiled, transposed layout; unused lanes of the last tile hold NaN
    const int64_t tiles = (n_pos + kKTile - 1) / kKTile;
    std::vector<float> kt((size_t)(tiles * kKTile * dh), NAN), scratch((size_t)n_pos);
    for (int64_t p = 0; p < n_pos; ++p)
        for (int64_t i = 0; i < dh; ++i) kt[(size_t)((p / kKTile) * kKTile * dh + i * kKTile + p % kKTile)] = k.data()[p * stride + i];
    py::array_t<float> out(dh);
    t->attention.fn(q.data(), kt.data(), v.data(), stride, p_begin, n_pos, dh, scratch.data(), out.mutable_data());
    return out;
}

// attention over a cache of k, v [n_pos, Dh] stored as kv = "f16" | "q8" (the CPU backend's conversion):
// (out [Dh], the cache dequantized: k [n_pos, Dh], v [n_pos, Dh]) so tests can compare against float64.
py::tuple py_attention_kv(f32_array q, f32_array k, f32_array v, const std::string& kv, const std::string& level, int64_t p_begin) {
    const KernelTable* t = table_or_raise(level);
    if (q.ndim() != 1 || k.ndim() != 2 || v.ndim() != 2 || k.shape(0) != v.shape(0) || k.shape(1) != q.shape(0) ||
        v.shape(1) != q.shape(0) || k.shape(0) < 1 || q.shape(0) < 1)
        raise_status(status_error(Code::INVALID_ARGUMENT, "attention_kv: q [Dh], k and v [n_pos, Dh]"));
    const int64_t dh = q.shape(0), n_pos = k.shape(0), tiles = (n_pos + kKTile - 1) / kKTile;
    if (p_begin < 0 || p_begin >= n_pos) raise_status(status_error(Code::INVALID_ARGUMENT, "attention_kv: need 0 <= p_begin < n_pos"));
    py::array_t<float> out(dh), kd({n_pos, dh}), vd({n_pos, dh});
    std::vector<float> scratch((size_t)n_pos);
    auto tix = [&](int64_t p, int64_t i) { return (size_t)((p / kKTile) * kKTile * dh + i * kKTile + p % kKTile); };
    if (kv == "f16") {
        std::vector<uint16_t> kt((size_t)(tiles * kKTile * dh), 0x7e00), vc((size_t)(n_pos * dh));  // unused lanes: NaN
        for (int64_t p = 0; p < n_pos; ++p)
            for (int64_t i = 0; i < dh; ++i) {
                kt[tix(p, i)] = f32_to_f16(k.data()[p * dh + i]);
                vc[(size_t)(p * dh + i)] = f32_to_f16(v.data()[p * dh + i]);
                kd.mutable_data()[p * dh + i] = f16_to_f32(kt[tix(p, i)]);
                vd.mutable_data()[p * dh + i] = f16_to_f32(vc[(size_t)(p * dh + i)]);
            }
        t->attention_f16.fn(q.data(), kt.data(), vc.data(), dh, p_begin, n_pos, dh, scratch.data(), out.mutable_data());
    } else if (kv == "q8") {
        std::vector<int8_t> kt((size_t)(tiles * kKTile * dh), 0), vc((size_t)(n_pos * dh));
        std::vector<float> ks((size_t)(tiles * kKTile), NAN), vs((size_t)(tiles * kKTile), NAN);
        for (int64_t p = 0; p < n_pos; ++p) {
            ks[(size_t)p] = kv_quantize_q8(k.data() + p * dh, dh, kt.data() + tix(p, 0), kKTile);
            vs[(size_t)p] = kv_quantize_q8(v.data() + p * dh, dh, vc.data() + p * dh, 1);
            for (int64_t i = 0; i < dh; ++i) {
                kd.mutable_data()[p * dh + i] = ks[(size_t)p] * (float)kt[tix(p, i)];
                vd.mutable_data()[p * dh + i] = vs[(size_t)p] * (float)vc[(size_t)(p * dh + i)];
            }
        }
        t->attention_q8.fn(q.data(), kt.data(), ks.data(), vc.data(), vs.data(), dh, p_begin, n_pos, dh, scratch.data(),
                           out.mutable_data());
    } else {
        raise_status(status_error(Code::INVALID_ARGUMENT, "attention_kv: kv must be f16 or q8, not '" + kv + "'"));
    }
    return py::make_tuple(out, kd, vd);
}

// attention over a KIVI cache of k, v [n_pos, Dh] (kernels.h attention_kivi_fn; bits 4 | 2): positions < n_quant
// (a multiple of 32) quantized (kv_quantize_kivi*, float_ops.h), the rest f16 in a ring of `ring` slots (0: the
// residual rounded up to whole tiles; else a multiple of 16 >= n_pos - n_quant), whose first slot holds position
// n_quant % ring (as the model's ring would); sink: positions < 32 kept f16 in the sink buffer (KiviHead n_sink,
// needs n_quant >= 32); outliers: K outlier channels per group (kernels.h KiviOutlier, kv_quantize_kivi_k_group:
// the quantized groups' K from its f16 values). Returns (out [Dh], the stored cache dequantized: k, v) as attention_kv.
py::tuple py_attention_kivi(f32_array q, f32_array k, f32_array v, int bits, const std::string& level, int64_t p_begin,
                            int64_t n_quant, int64_t ring, bool sink, int64_t outliers) {
    const KernelTable* t = table_or_raise(level);
    if (q.ndim() != 1 || k.ndim() != 2 || v.ndim() != 2 || k.shape(0) != v.shape(0) || k.shape(1) != q.shape(0) ||
        v.shape(1) != q.shape(0) || k.shape(0) < 1 || q.shape(0) % kKiviGroup)
        raise_status(status_error(Code::INVALID_ARGUMENT, "attention_kivi: q [Dh] (Dh a multiple of 32), k and v [n_pos, Dh]"));
    const int64_t dh = q.shape(0), n_pos = k.shape(0);
    if (bits != 4 && bits != 2) raise_status(status_error(Code::INVALID_ARGUMENT, "attention_kivi: bits must be 4 or 2"));
    if (p_begin < 0 || p_begin >= n_pos || n_quant < 0 || n_quant % kKiviGroup || n_quant > n_pos)
        raise_status(status_error(Code::INVALID_ARGUMENT, "attention_kivi: need 0 <= p_begin < n_pos, n_quant a multiple of 32 <= n_pos"));
    if (sink && n_quant < kKiviGroup) raise_status(status_error(Code::INVALID_ARGUMENT, "attention_kivi: a sink needs n_quant >= 32"));
    if (outliers < 0 || outliers > dh) raise_status(status_error(Code::INVALID_ARGUMENT, "attention_kivi: need 0 <= outliers <= Dh"));
    if (ring == 0) ring = std::max<int64_t>(kKTile, (n_pos - n_quant + kKTile - 1) / kKTile * kKTile);
    if (ring % kKTile || ring < n_pos - n_quant) raise_status(status_error(Code::INVALID_ARGUMENT, "attention_kivi: bad ring"));
    py::array_t<float> out(dh), kd({n_pos, dh}), vd({n_pos, dh});
    float* kdp = kd.mutable_data();
    float* vdp = vd.mutable_data();
    std::vector<float> scratch((size_t)n_pos);
    const int64_t groups = n_quant / kKiviGroup, nb = dh / kKiviGroup, g0 = sink ? 1 : 0, ns = g0 * kKiviGroup;
    std::vector<block_kivi4> k4((size_t)((groups - g0) * dh)), v4((size_t)((n_quant - ns) * nb));
    std::vector<block_kivi2> k2((size_t)((groups - g0) * dh)), v2((size_t)((n_quant - ns) * nb));
    std::vector<uint16_t> ks((size_t)(ns * dh)), vs((size_t)(ns * dh));
    for (int64_t p = 0; p < ns; ++p)
        for (int64_t i = 0; i < dh; ++i) {
            uint16_t& kh = ks[(size_t)((p / kKTile) * kKTile * dh + i * kKTile + p % kKTile)];
            kh = f32_to_f16(k.data()[p * dh + i]);
            kdp[p * dh + i] = f16_to_f32(kh);
            vs[(size_t)(p * dh + i)] = f32_to_f16(v.data()[p * dh + i]);
            vdp[p * dh + i] = f16_to_f32(vs[(size_t)(p * dh + i)]);
        }
    std::vector<uint16_t> kr((size_t)(ring * dh), 0x7e00), vr((size_t)(ring * dh), 0x7e00);  // unused slots: NaN
    auto code = [&](int64_t idx, bool is_k, int64_t j) -> float {  // dequantized lane j of block idx
        if (bits == 4) {
            const block_kivi4& b = (is_k ? k4 : v4)[(size_t)idx];
            return f16_to_f32(b.d) * (float)(j < 16 ? (b.qs[j] & 15) : (b.qs[j - 16] >> 4)) + f16_to_f32(b.m);
        }
        const block_kivi2& b = (is_k ? k2 : v2)[(size_t)idx];
        return f16_to_f32(b.d) * (float)((b.qs[j % 8] >> (2 * (j / 8))) & 3) + f16_to_f32(b.m);
    };
    std::vector<KiviOutlier> ko((size_t)((groups - g0) * outliers));
    std::vector<float> xg((size_t)(dh * kKiviGroup));
    for (int64_t g = g0; g < groups; ++g) {
        for (int64_t i = 0; i < dh; ++i)
            for (int64_t j = 0; j < kKiviGroup; ++j) xg[(size_t)(i * kKiviGroup + j)] = f16_to_f32(f32_to_f16(k.data()[(g * kKiviGroup + j) * dh + i]));
        KiviOutlier* go = ko.data() + (g - g0) * outliers;
        if (bits == 4) kv_quantize_kivi_k_group(xg.data(), dh, outliers, &k4[(size_t)((g - g0) * dh)], go);
        else kv_quantize_kivi_k_group(xg.data(), dh, outliers, &k2[(size_t)((g - g0) * dh)], go);
        for (int64_t i = 0; i < dh; ++i)
            for (int64_t j = 0; j < kKiviGroup; ++j) kdp[(g * kKiviGroup + j) * dh + i] = code((g - g0) * dh + i, true, j);
        for (int64_t o = 0; o < outliers; ++o)  // the outlier channel's f16 values (its block is zero)
            for (int64_t j = 0; j < kKiviGroup; ++j) kdp[(g * kKiviGroup + j) * dh + go[o].ch] += f16_to_f32(go[o].v[j]);
    }
    for (int64_t p = ns; p < n_quant; ++p)
        for (int64_t c = 0; c < nb; ++c) {
            const int64_t b = (p - ns) * nb + c;
            if (bits == 4) kv_quantize_kivi4(v.data() + p * dh + c * kKiviGroup, &v4[(size_t)b]);
            else kv_quantize_kivi2(v.data() + p * dh + c * kKiviGroup, &v2[(size_t)b]);
            for (int64_t j = 0; j < kKiviGroup; ++j) vdp[p * dh + c * kKiviGroup + j] = code(b, false, j);
        }
    for (int64_t p = n_quant; p < n_pos; ++p) {
        const int64_t sl = p % ring;
        for (int64_t i = 0; i < dh; ++i) {
            uint16_t& kh = kr[(size_t)((sl / kKTile) * kKTile * dh + i * kKTile + sl % kKTile)];
            kh = f32_to_f16(k.data()[p * dh + i]);
            kdp[p * dh + i] = f16_to_f32(kh);
            vr[(size_t)(sl * dh + i)] = f32_to_f16(v.data()[p * dh + i]);
            vdp[p * dh + i] = f16_to_f32(vr[(size_t)(sl * dh + i)]);
        }
    }
    KiviHead c;
    c.kq = bits == 4 ? (const void*)k4.data() : (const void*)k2.data();
    c.vq = bits == 4 ? (const void*)v4.data() : (const void*)v2.data();
    c.vq_stride = nb;
    c.n_quant = n_quant;
    c.kr = kr.data();
    c.vr = vr.data();
    c.vr_stride = dh;
    c.ring = ring;
    c.ks = ns ? ks.data() : nullptr;
    c.vs = ns ? vs.data() : nullptr;
    c.n_sink = ns;
    c.ko = outliers ? ko.data() : nullptr;
    c.n_out = outliers;
    (bits == 4 ? t->attention_kivi4 : t->attention_kivi2).fn(q.data(), c, p_begin, n_pos, dh, scratch.data(), out.mutable_data());
    return py::make_tuple(out, kd, vd);
}

py::array_t<float> py_silu_mul(f32_array g, f32_array u, const std::string& level) {
    const KernelTable* t = table_or_raise(level);
    if (g.ndim() != 1 || u.ndim() != 1 || g.shape(0) != u.shape(0))
        raise_status(status_error(Code::INVALID_ARGUMENT, "silu_mul: g and u must be 1-D of one length"));
    py::array_t<float> out(g.shape(0));
    t->silu_mul.fn(g.data(), u.data(), g.shape(0), out.mutable_data());
    return out;
}

// Which implementation fills each slot: {"level": ..., op: impl} and, for the per-dtype ops, {op: {dtype: impl}},
// ops in kernels_each_slot's order; "none" for an empty slot.
struct SlotsToDict {
    py::dict& d;
    template <class F>
    static const char* impl(const KernelSlot<F>& s) { return s.fn ? s.impl : "none"; }
    template <class F>
    void operator()(const char* op, const KernelSlot<F>& s) const { d[op] = impl(s); }
    template <class F>
    void operator()(const char* op, const KernelSlot<F> (&per_dtype)[EDGE_DTYPE_COUNT]) const {
        py::dict m;
        for (uint32_t i = 0; i < EDGE_DTYPE_COUNT; ++i) m[dtype_traits(i).name] = impl(per_dtype[i]);
        d[op] = m;
    }
};

py::dict py_kernel_table(const std::string& level) {
    const KernelTable* t = table_or_raise(level);
    py::dict d;
    d["level"] = t->level;
    kernels_each_slot(*t, SlotsToDict{d});
    return d;
}

}  // namespace

void bind_kernels_backward(py::module_& m);  // kernels_backward.cpp: the training kernels' test entry points

void bind_kernels(py::module_& m) {
    m.def("kernel_levels", []() {
        const char* names[16];
        int n = kernels_levels(names, 16);
        return std::vector<std::string>(names, names + n);
    }, "Kernel levels this CPU supports, lowest first.");
    m.def("kernel_default_level", []() { return std::string(kernels_default()->level); },
          "The level used by default ($EDGE_KERNELS caps it).");
    m.def("kernel_table", &py_kernel_table, py::arg("level") = "", "Which implementation fills each slot.");
    m.def("dequantize", &py_dequantize, py::arg("dtype"), py::arg("data"), py::arg("n"), py::arg("level") = "ref");
    m.def("silu_mul", &py_silu_mul, py::arg("g"), py::arg("u"), py::arg("level") = "ref");
    m.def("attention_kv", &py_attention_kv, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("kv"), py::arg("level") = "ref",
          py::arg("p_begin") = 0);
    m.def("attention_kivi", &py_attention_kivi, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("bits"), py::arg("level") = "ref",
          py::arg("p_begin") = 0, py::arg("n_quant") = 0, py::arg("ring") = 0,
          py::arg("sink") = false, py::arg("outliers") = 0);
    m.def("attention", &py_attention, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("level") = "ref", py::arg("p_begin") = 0);
    m.def("quantize_q8x", &py_quantize_q8x, py::arg("x"), py::arg("level") = "ref");
    m.def("gemm", &py_gemm, py::arg("dtype"), py::arg("w"), py::arg("rows"), py::arg("n"), py::arg("x"),
          py::arg("level") = "ref", py::arg("misalign") = 0);
    bind_kernels_backward(m);
}

}  // namespace bindings
}  // namespace edge
