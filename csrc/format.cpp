// format.cpp — mmap + validation of .edge files. Every read goes through Cursor, which checks
// bounds before touching a byte, so a truncated or hostile file yields a Status, never UB.
#include "format.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "quant.h"

namespace edge {

namespace {

uint32_t g_crc_table[8][256];

struct CrcInit {
    CrcInit() {
        for (uint32_t i = 0; i < 256; ++i) {
            uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            g_crc_table[0][i] = c;
        }
        for (uint32_t i = 0; i < 256; ++i)
            for (int t = 1; t < 8; ++t) g_crc_table[t][i] = (g_crc_table[t - 1][i] >> 8) ^ g_crc_table[0][g_crc_table[t - 1][i] & 0xff];
    }
} g_crc_init;

// Bounded little-endian reader over [p, end).
struct Cursor {
    const uint8_t* p;
    const uint8_t* end;
    const char* what;  // section name for messages
    bool ok = true;

    size_t left() const { return (size_t)(end - p); }
    bool take(void* dst, size_t n) {
        if (!ok || n > left()) { ok = false; return false; }
        if (n) std::memcpy(dst, p, n);  // dst may be null for n == 0 (an empty array's data()): memcpy(nullptr, .., 0) is UB
        p += n;
        return true;
    }
    template <class T>
    T get() {
        T v{};
        take(&v, sizeof(T));
        return v;
    }
    bool str(std::string* s, uint64_t n) {
        if (!ok || n > left()) { ok = false; return false; }
        s->assign(reinterpret_cast<const char*>(p), (size_t)n);
        p += n;
        return true;
    }
};

Status bad(const std::string& path, const std::string& msg) {
    return status_error(Code::BAD_FILE, path + ": " + msg + " (the file is corrupt or truncated; re-export it with edgeconv)");
}

Status parse_meta(const std::string& path, Cursor c, std::map<std::string, MetaValue>* meta) {
    uint32_t n = c.get<uint32_t>();
    if (!c.ok) return bad(path, "metadata section too short");
    // Each entry needs at least 8 bytes (key length + type): reject counts that cannot fit.
    if ((uint64_t)n * 8 > c.left()) return bad(path, strfmt("metadata claims %u entries, more than fit", n));
    for (uint32_t e = 0; e < n; ++e) {
        uint32_t klen = c.get<uint32_t>();
        std::string key;
        if (!c.ok || klen == 0 || klen > 4096 || !c.str(&key, klen)) return bad(path, strfmt("metadata entry %u: bad key", e));
        MetaValue v;
        v.type = (MetaType)c.get<uint32_t>();
        uint64_t count = 0;
        switch (v.type) {
            case META_I64: v.i = c.get<int64_t>(); break;
            case META_F64: v.f = c.get<double>(); break;
            case META_STR: {
                uint64_t len = c.get<uint64_t>();
                if (!c.str(&v.s, len)) return bad(path, "metadata '" + key + "': string past the end");
                break;
            }
            case META_ARR_I64:
                count = c.get<uint64_t>();
                if (!c.ok || count > c.left() / 8) return bad(path, "metadata '" + key + "': array past the end");
                v.ai.resize((size_t)count);
                c.take(v.ai.data(), (size_t)count * 8);
                break;
            case META_ARR_F32:
                count = c.get<uint64_t>();
                if (!c.ok || count > c.left() / 4) return bad(path, "metadata '" + key + "': array past the end");
                v.af.resize((size_t)count);
                c.take(v.af.data(), (size_t)count * 4);
                break;
            case META_ARR_STR: {
                count = c.get<uint64_t>();
                if (!c.ok || count > c.left() / 4) return bad(path, "metadata '" + key + "': array past the end");
                v.as.resize((size_t)count);
                for (uint64_t k = 0; k < count; ++k) {
                    uint32_t len = c.get<uint32_t>();
                    if (!c.str(&v.as[(size_t)k], len)) return bad(path, "metadata '" + key + "': string past the end");
                }
                break;
            }
            default:
                return bad(path, strfmt("metadata '%s': unknown value type %u", key.c_str(), (unsigned)v.type));
        }
        if (!c.ok) return bad(path, "metadata '" + key + "': value past the end");
        if (!meta->emplace(key, std::move(v)).second) return bad(path, "metadata key '" + key + "' appears twice");
    }
    return Status::ok();
}

}  // namespace

uint32_t crc32_update(uint32_t crc, const void* data, size_t n) {
    const uint8_t* p = static_cast<const uint8_t*>(data);
    crc = ~crc;
    while (n >= 8) {
        uint32_t a, b;
        std::memcpy(&a, p, 4);
        std::memcpy(&b, p + 4, 4);
        a ^= crc;
        crc = g_crc_table[7][a & 0xff] ^ g_crc_table[6][(a >> 8) & 0xff] ^ g_crc_table[5][(a >> 16) & 0xff] ^
              g_crc_table[4][a >> 24] ^ g_crc_table[3][b & 0xff] ^ g_crc_table[2][(b >> 8) & 0xff] ^
              g_crc_table[1][(b >> 16) & 0xff] ^ g_crc_table[0][b >> 24];
        p += 8;
        n -= 8;
    }
    while (n--) crc = g_crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

int64_t TensorInfo::rows() const {
    int64_t r = 1;
    for (size_t i = 0; i + 1 < shape.size(); ++i) r *= shape[i];
    return r;
}

EdgeFile::~EdgeFile() {
    if (base_) munmap(const_cast<uint8_t*>(base_), (size_t)size_);
    if (fd_ >= 0) close(fd_);
}

const TensorInfo* EdgeFile::find(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
}

const MetaValue* EdgeFile::get(const std::string& key) const {
    auto it = meta_.find(key);
    return it == meta_.end() ? nullptr : &it->second;
}

Status EdgeFile::get_i64(const std::string& key, int64_t* out) const {
    const MetaValue* v = get(key);
    if (!v) return bad(path_, "missing metadata key '" + key + "'");
    if (v->type != META_I64) return bad(path_, "metadata key '" + key + "' is not an integer");
    *out = v->i;
    return Status::ok();
}

Status EdgeFile::get_f64(const std::string& key, double* out) const {
    const MetaValue* v = get(key);
    if (!v) return bad(path_, "missing metadata key '" + key + "'");
    if (v->type == META_I64) { *out = (double)v->i; return Status::ok(); }
    if (v->type != META_F64) return bad(path_, "metadata key '" + key + "' is not a number");
    *out = v->f;
    return Status::ok();
}

Status EdgeFile::get_str(const std::string& key, std::string* out) const {
    const MetaValue* v = get(key);
    if (!v) return bad(path_, "missing metadata key '" + key + "'");
    if (v->type != META_STR) return bad(path_, "metadata key '" + key + "' is not a string");
    *out = v->s;
    return Status::ok();
}

Status EdgeFile::verify(std::string* report) const {
    for (const TensorInfo& t : tensors_) {
        uint32_t crc = crc32_update(0, t.data, (size_t)t.nbytes);
        if (crc != t.crc32)
            return bad(path_, strfmt("tensor '%s' fails its checksum (stored %08x, computed %08x)", t.name.c_str(), t.crc32, crc));
    }
    if (report) *report = strfmt("%zu tensors, %llu bytes: all checksums match", tensors_.size(), (unsigned long long)size_);
    return Status::ok();
}

void EdgeFile::advise_willneed() const {
    if (base_) madvise(const_cast<uint8_t*>(base_), (size_t)size_, MADV_WILLNEED);
}

Status edge_file_open(const std::string& path, std::unique_ptr<EdgeFile>* out) {
    std::unique_ptr<EdgeFile> f(new EdgeFile());
    f->path_ = path;
    f->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (f->fd_ < 0) return status_error(Code::IO_ERROR, path + ": cannot open: " + std::strerror(errno));
    struct stat st;
    if (fstat(f->fd_, &st) != 0) return status_error(Code::IO_ERROR, path + ": cannot stat: " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) return status_error(Code::INVALID_ARGUMENT, path + ": not a regular file");
    uint64_t real_size = (uint64_t)st.st_size;
    if (real_size < kEdgeHeaderSize) return bad(path, strfmt("only %llu bytes, smaller than the header", (unsigned long long)real_size));
    void* m = mmap(nullptr, (size_t)real_size, PROT_READ, MAP_SHARED, f->fd_, 0);
    if (m == MAP_FAILED) return status_error(Code::IO_ERROR, path + ": mmap failed: " + std::strerror(errno));
    f->base_ = static_cast<const uint8_t*>(m);
    f->size_ = real_size;
    const uint8_t* base = f->base_;

    // Header.
    if (std::memcmp(base, kEdgeMagic, 8) != 0)
        return status_error(Code::BAD_FILE, path + ": not an .edge file (wrong magic); convert models with `edgeconv export`");
    Cursor h{base + 8, base + kEdgeHeaderSize, "header"};
    uint32_t version = h.get<uint32_t>();
    uint32_t flags = h.get<uint32_t>();
    uint64_t file_size = h.get<uint64_t>();
    uint64_t meta_off = h.get<uint64_t>(), meta_size = h.get<uint64_t>();
    uint64_t table_off = h.get<uint64_t>(), table_size = h.get<uint64_t>();
    uint32_t n_tensors = h.get<uint32_t>();
    uint32_t meta_crc = h.get<uint32_t>(), table_crc = h.get<uint32_t>(), header_crc = h.get<uint32_t>();
    if (crc32_update(0, base, 68) != header_crc) return bad(path, "header checksum mismatch");
    for (size_t i = 72; i < kEdgeHeaderSize; ++i)
        if (base[i]) return bad(path, "reserved header bytes are not zero");
    if (version != kEdgeVersion)
        return status_error(Code::UNSUPPORTED, path + strfmt(": format version %u, this edgerun reads version %u; upgrade edgerun or re-export", version, kEdgeVersion));
    if (flags != 0) return status_error(Code::UNSUPPORTED, path + strfmt(": unknown header flags 0x%x", flags));
    if (file_size != real_size)
        return bad(path, strfmt("header says %llu bytes but the file has %llu", (unsigned long long)file_size, (unsigned long long)real_size));
    auto in_file = [&](uint64_t off, uint64_t size) { return off >= kEdgeHeaderSize && off <= real_size && size <= real_size - off; };
    if (!in_file(meta_off, meta_size)) return bad(path, "metadata section lies outside the file");
    if (!in_file(table_off, table_size)) return bad(path, "tensor table lies outside the file");
    if (meta_off < table_off + table_size && table_off < meta_off + meta_size) return bad(path, "metadata and tensor table overlap");
    if (crc32_update(0, base + meta_off, (size_t)meta_size) != meta_crc) return bad(path, "metadata checksum mismatch");
    if (crc32_update(0, base + table_off, (size_t)table_size) != table_crc) return bad(path, "tensor table checksum mismatch");

    EDGE_TRY(parse_meta(path, Cursor{base + meta_off, base + meta_off + meta_size, "metadata"}, &f->meta_));

    // Tensor table: each entry is at least 2+1+4+4+8+8+8+4 bytes.
    Cursor c{base + table_off, base + table_off + table_size, "table"};
    if ((uint64_t)n_tensors * 39 > table_size) return bad(path, strfmt("tensor table claims %u tensors, more than fit", n_tensors));
    f->tensors_.reserve(n_tensors);
    for (uint32_t i = 0; i < n_tensors; ++i) {
        TensorInfo t;
        uint16_t nlen = c.get<uint16_t>();
        if (!c.ok || nlen == 0 || !c.str(&t.name, nlen)) return bad(path, strfmt("tensor %u: bad name", i));
        t.dtype = c.get<uint32_t>();
        uint32_t ndim = c.get<uint32_t>();
        if (!c.ok) return bad(path, "tensor '" + t.name + "': entry past the end of the table");
        if (!dtype_valid(t.dtype)) return status_error(Code::UNSUPPORTED, path + strfmt(": tensor '%s' has unknown dtype %u", t.name.c_str(), t.dtype));
        if (ndim < 1 || ndim > 4) return bad(path, strfmt("tensor '%s' has %u dimensions (1..4 allowed)", t.name.c_str(), ndim));
        uint64_t elems = 1;
        for (uint32_t d = 0; d < ndim; ++d) {
            uint64_t dim = c.get<uint64_t>();
            if (!c.ok || dim == 0 || dim > (1ull << 32) || elems > (1ull << 40) / dim)
                return bad(path, strfmt("tensor '%s' has an absurd shape", t.name.c_str()));
            elems *= dim;
            t.shape.push_back((int64_t)dim);
        }
        t.offset = c.get<uint64_t>();
        t.nbytes = c.get<uint64_t>();
        t.crc32 = c.get<uint32_t>();
        if (!c.ok) return bad(path, "tensor '" + t.name + "': entry past the end of the table");
        size_t rb = dtype_row_bytes(t.dtype, t.cols());
        if (rb == 0)
            return bad(path, strfmt("tensor '%s': last dimension %lld is not a multiple of the %s block", t.name.c_str(), (long long)t.cols(), dtype_traits(t.dtype).name));
        if ((uint64_t)rb * (uint64_t)t.rows() != t.nbytes)
            return bad(path, strfmt("tensor '%s': %llu bytes stored, its shape needs %llu", t.name.c_str(), (unsigned long long)t.nbytes,
                                    (unsigned long long)rb * (unsigned long long)t.rows()));
        if (t.offset % kEdgeMinAlign) return bad(path, "tensor '" + t.name + "' is not 64-byte aligned");
        if (!in_file(t.offset, t.nbytes)) return bad(path, "tensor '" + t.name + "' lies past the end of the file");
        t.data = base + t.offset;
        if (!f->index_.emplace(t.name, f->tensors_.size()).second) return bad(path, "tensor '" + t.name + "' appears twice");
        f->tensors_.push_back(std::move(t));
    }
    // No two tensors share a byte, and none overlaps the metadata or the table.
    std::vector<std::pair<uint64_t, uint64_t>> spans;  // [begin, end)
    spans.reserve(f->tensors_.size() + 2);
    for (const TensorInfo& t : f->tensors_) spans.emplace_back(t.offset, t.offset + t.nbytes);
    spans.emplace_back(meta_off, meta_off + meta_size);
    spans.emplace_back(table_off, table_off + table_size);
    std::sort(spans.begin(), spans.end());
    for (size_t i = 1; i < spans.size(); ++i)
        if (spans[i].first < spans[i - 1].second && spans[i].first != spans[i].second && spans[i - 1].first != spans[i - 1].second)
            return bad(path, "overlapping sections: a tensor shares bytes with another tensor, the metadata or the table");
    *out = std::move(f);
    return Status::ok();
}

}  // namespace edge
