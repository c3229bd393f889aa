// format.h — read-only, validating reader of .edge files (docs/FORMAT.md).
//
// The file is mmap'd read-only; tensors point into the mapping, nothing is copied or repacked.
// edge_file_open checks every count, offset and size against the real file size and returns a
// Status naming the file and the problem; it never aborts on a bad file. Tensor data CRCs are
// checked only by EdgeFile::verify (they would touch every page at load).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common.h"

namespace edge {

constexpr char kEdgeMagic[8] = {'E', 'D', 'G', 'E', 'F', 'I', 'L', 'E'};
constexpr uint32_t kEdgeVersion = 1;
constexpr size_t kEdgeHeaderSize = 128;
constexpr uint64_t kEdgeMinAlign = 64;

enum MetaType : uint32_t { META_I64 = 0, META_F64 = 1, META_STR = 2, META_ARR_I64 = 3, META_ARR_F32 = 4, META_ARR_STR = 5 };

struct MetaValue {
    MetaType type;
    int64_t i = 0;
    double f = 0;
    std::string s;
    std::vector<int64_t> ai;
    std::vector<float> af;
    std::vector<std::string> as;
};

struct TensorInfo {
    std::string name;
    uint32_t dtype;
    std::vector<int64_t> shape;  // outermost first; last dim contiguous
    uint64_t offset;             // absolute
    uint64_t nbytes;
    uint32_t crc32;
    const uint8_t* data;         // into the mapping

    int64_t rows() const;        // product of all dims but the last (1 for 1-D)
    int64_t cols() const { return shape.back(); }
};

class EdgeFile {
public:
    ~EdgeFile();
    EdgeFile(const EdgeFile&) = delete;
    EdgeFile& operator=(const EdgeFile&) = delete;

    const std::string& path() const { return path_; }
    uint64_t size() const { return size_; }
    const uint8_t* data() const { return base_; }  // the read-only mapping of the whole file
    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    const TensorInfo* find(const std::string& name) const;  // nullptr if absent
    const std::map<std::string, MetaValue>& meta() const { return meta_; }

    // Typed metadata access: a missing key or a wrong type is a BAD_FILE Status naming the key.
    Status get_i64(const std::string& key, int64_t* out) const;
    Status get_f64(const std::string& key, double* out) const;  // accepts I64 too
    Status get_str(const std::string& key, std::string* out) const;
    const MetaValue* get(const std::string& key) const;         // nullptr if absent

    // Recomputes the CRC-32 of every tensor; the first mismatch is a BAD_FILE Status.
    Status verify(std::string* report) const;

    // Advises the kernel about access patterns for the whole mapping (MADV_WILLNEED etc.).
    void advise_willneed() const;

private:
    EdgeFile() = default;
    friend Status edge_file_open(const std::string& path, std::unique_ptr<EdgeFile>* out);

    std::string path_;
    int fd_ = -1;
    const uint8_t* base_ = nullptr;
    uint64_t size_ = 0;
    std::map<std::string, MetaValue> meta_;
    std::vector<TensorInfo> tensors_;
    std::map<std::string, size_t> index_;
};

Status edge_file_open(const std::string& path, std::unique_ptr<EdgeFile>* out);

// CRC-32/IEEE (zlib's crc32), slice-by-8.
uint32_t crc32_update(uint32_t crc, const void* data, size_t n);

}  // namespace edge
