// blob_decode.cpp — expert blob layouts, scale validation and the planes4 → int4_32 repack (blob_decode.h).
#include "blob_decode.h"

#include <cstring>

#include "quant.h"

namespace edge {

namespace {

constexpr uint64_t kPage = 4096;
inline uint64_t up_to(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

const char* const kMatrixName[3] = {"gate", "up", "down"};

inline bool f16_finite(uint16_t h) { return (h & 0x7c00) != 0x7c00; }
inline bool bf16_finite(uint16_t h) { return (h & 0x7f80) != 0x7f80; }
inline uint16_t load_u16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}

// Returns the index of the first invalid block (or element, for plain float dtypes) in `rows` rows of
// `dtype`, or -1 when all are valid.
int64_t find_invalid(uint32_t dtype, const uint8_t* p, int64_t rows, size_t row_bytes) {
    const size_t n = (size_t)rows * row_bytes;
    switch (dtype) {
        case EDGE_DTYPE_F32:
            for (size_t i = 0; i < n; i += 4) {
                uint32_t x;
                std::memcpy(&x, p + i, 4);
                if ((x & 0x7f800000u) == 0x7f800000u) return (int64_t)(i / 4);
            }
            return -1;
        case EDGE_DTYPE_F16:
            for (size_t i = 0; i < n; i += 2)
                if (!f16_finite(load_u16(p + i))) return (int64_t)(i / 2);
            return -1;
        case EDGE_DTYPE_BF16:
            for (size_t i = 0; i < n; i += 2)
                if (!bf16_finite(load_u16(p + i))) return (int64_t)(i / 2);
            return -1;
        default: break;
    }
    const DTypeTraits& t = dtype_traits(dtype);
    const size_t bb = (size_t)t.block_bytes;
    const bool mx = dtype >= EDGE_DTYPE_MXINT8 && dtype <= EDGE_DTYPE_MXFP4;
    const bool asym = dtype >= EDGE_DTYPE_INT4A_32 && dtype <= EDGE_DTYPE_INT4A_128;
    for (size_t i = 0, b = 0; i < n; i += bb, ++b) {
        bool ok = mx ? p[i] != 0xFF : f16_finite(load_u16(p + i)) && (!asym || f16_finite(load_u16(p + i + 2)));
        if (!ok) return (int64_t)b;
    }
    return -1;
}

Status invalid(const BlobLayout& l, int m, int64_t index, bool element) {
    return status_error(Code::BAD_FILE, strfmt("%s %s %lld has a non-finite %s", kMatrixName[m], element ? "element" : "block",
                                               (long long)index, element ? "value" : "scale"));
}

// planes4 → int4_32 for blocks [b0, b1) into dst (18 bytes per block). msb: lo planes absent (lo = 2).
void repack_planes(const uint8_t* A, const uint8_t* B, const uint8_t* C, bool msb, uint64_t b0, uint64_t b1, uint8_t* dst) {
    const uint64_t m33 = 0x3333333333333333ull, mcc = 0xCCCCCCCCCCCCCCCCull;
    const uint64_t lo_msb = 0xAAAAAAAAAAAAAAAAull;
    for (uint64_t b = b0; b < b1; ++b, dst += 18) {
        uint64_t h, l = lo_msb;
        std::memcpy(&h, B + 8 * b, 8);
        if (!msb) std::memcpy(&l, C + 8 * b, 8);
        const uint64_t q0 = ((h & m33) << 2) | (l & m33);  // bytes 0..7: elements k (low), k+16 (high)
        const uint64_t q1 = (h & mcc) | ((l >> 2) & m33);  // bytes 8..15: elements k+8, k+24
        std::memcpy(dst, A + 2 * b, 2);
        std::memcpy(dst + 2, &q0, 8);
        std::memcpy(dst + 10, &q1, 8);
    }
}

}  // namespace

Status blob_layout_parse(const std::string& layout, int64_t F, int64_t D, BlobLayout* out) {
    BlobLayout l;
    l.F = F;
    l.D = D;
    if (F <= 0 || D <= 0) return status_error(Code::INVALID_ARGUMENT, strfmt("expert shape F=%lld, D=%lld is not positive", (long long)F, (long long)D));
    if (layout.compare(0, 7, "concat:") == 0) {
        const std::string name = layout.substr(7);
        uint32_t dt = EDGE_DTYPE_COUNT;
        for (uint32_t i = 0; i < EDGE_DTYPE_COUNT; ++i)
            if (name == dtype_traits(i).name) dt = i;
        if (dt == EDGE_DTYPE_COUNT || dt == EDGE_DTYPE_I32 || dt == EDGE_DTYPE_BLOB)
            return status_error(Code::UNSUPPORTED, "expert layout '" + layout + "': '" + name + "' is not a weight dtype");
        l.kind = BLOB_CONCAT;
        l.dtype = dt;
        l.ffn_row_bytes = dtype_row_bytes(dt, D);
        l.down_row_bytes = dtype_row_bytes(dt, F);
        if (!l.ffn_row_bytes || !l.down_row_bytes)
            return status_error(Code::INVALID_ARGUMENT, strfmt("expert layout '%s': d_model %lld and d_expert %lld must be multiples of the %d-element block",
                                                               layout.c_str(), (long long)D, (long long)F, dtype_traits(dt).block));
        l.gate_off = 0;
        l.up_off = (size_t)up_to((uint64_t)F * l.ffn_row_bytes, 64);
        l.down_off = (size_t)up_to(l.up_off + (uint64_t)F * l.ffn_row_bytes, 64);
        l.decoded_bytes = l.down_off + (size_t)D * l.down_row_bytes;
        l.blob_bytes = l.read_bytes = up_to(l.decoded_bytes, kPage);
    } else if (layout == "planes4" || layout == "planes4_msb") {
        if (F % 32 || D % 32)
            return status_error(Code::INVALID_ARGUMENT, strfmt("expert layout '%s': d_model %lld and d_expert %lld must be multiples of 32",
                                                               layout.c_str(), (long long)D, (long long)F));
        l.kind = layout == "planes4" ? BLOB_PLANES4 : BLOB_PLANES4_MSB;
        l.dtype = EDGE_DTYPE_INT4_32;
        l.ffn_row_bytes = dtype_row_bytes(l.dtype, D);
        l.down_row_bytes = dtype_row_bytes(l.dtype, F);
        l.gate_off = 0;
        l.up_off = (size_t)up_to((uint64_t)F * l.ffn_row_bytes, 64);
        l.down_off = (size_t)up_to(l.up_off + (uint64_t)F * l.ffn_row_bytes, 64);
        l.decoded_bytes = l.down_off + (size_t)D * l.down_row_bytes;
        l.nb = 3 * (uint64_t)F * (uint64_t)D / 32;
        l.b_off = up_to(2 * l.nb, kPage);
        l.c_off = l.b_off + up_to(8 * l.nb, kPage);
        l.blob_bytes = l.c_off + up_to(8 * l.nb, kPage);
        l.read_bytes = l.kind == BLOB_PLANES4 ? l.blob_bytes : l.c_off;
    } else {
        return status_error(Code::UNSUPPORTED, "unknown expert layout '" + layout + "' (known: planes4, planes4_msb, concat:<dtype>)");
    }
    *out = l;
    return Status::ok();
}

Status blob_decode(const BlobLayout& l, const uint8_t* src, uint8_t* slot) {
    const size_t off[3] = {l.gate_off, l.up_off, l.down_off};
    const int64_t rows[3] = {l.F, l.F, l.D};
    const size_t rb[3] = {l.ffn_row_bytes, l.ffn_row_bytes, l.down_row_bytes};
    if (l.kind == BLOB_CONCAT) {
        const bool element = l.dtype == EDGE_DTYPE_F32 || l.dtype == EDGE_DTYPE_F16 || l.dtype == EDGE_DTYPE_BF16;
        for (int m = 0; m < 3; ++m) {
            int64_t bad = find_invalid(l.dtype, src + off[m], rows[m], rb[m]);
            if (bad >= 0) return invalid(l, m, bad, element);
        }
        if (src != slot) std::memcpy(slot, src, l.decoded_bytes);
        return Status::ok();
    }
    // planes: scales first (one pass over section A), then the repack per matrix.
    const uint8_t* A = src;
    const uint64_t per_ffn = (uint64_t)l.F * (uint64_t)l.D / 32;
    const uint64_t first[4] = {0, per_ffn, 2 * per_ffn, l.nb};
    uint32_t any_bad = 0;  // branch-free pass (vectorizes); locate the block only on failure
    for (uint64_t b = 0; b < l.nb; ++b) any_bad |= (uint32_t)!f16_finite(load_u16(A + 2 * b));
    if (any_bad) {
        for (uint64_t b = 0; b < l.nb; ++b) {
            if (!f16_finite(load_u16(A + 2 * b))) {
                int m = b < first[1] ? 0 : b < first[2] ? 1 : 2;
                return invalid(l, m, (int64_t)(b - first[m]), false);
            }
        }
    }
    const bool msb = l.kind == BLOB_PLANES4_MSB;
    for (int m = 0; m < 3; ++m) repack_planes(A, src + l.b_off, src + l.c_off, msb, first[m], first[m + 1], slot + off[m]);
    return Status::ok();
}

}  // namespace edge
