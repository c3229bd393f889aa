// fuzz_util.h — what the libFuzzer targets share: the fuzz input as a file the readers can open, and a
// byte reader over the input that never fails (it yields zeros past the end).
//
// memfile_write puts the input in one memfd per process (created on the first call, truncated and
// rewritten on each) and returns its path /proc/self/fd/N, so edge_file_open, the expert store's
// second descriptor and the I/O threads see a real regular file, with no disk traffic.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace edge_fuzz {

inline std::string memfile_write(const uint8_t* data, size_t size) {
    static int fd = -1;
    if (fd < 0) {
        fd = memfd_create("edge_fuzz", MFD_CLOEXEC);
        if (fd < 0) { std::perror("memfd_create"); std::abort(); }
    }
    if (ftruncate(fd, 0) != 0 || ftruncate(fd, (off_t)size) != 0) { std::perror("ftruncate"); std::abort(); }
    for (size_t done = 0; done < size;) {
        ssize_t n = pwrite(fd, data + done, size - done, (off_t)done);
        if (n <= 0) { std::perror("pwrite"); std::abort(); }
        done += (size_t)n;
    }
    return "/proc/self/fd/" + std::to_string(fd);
}

// Little-endian reader over [p, p + n); reads past the end give zero bytes.
struct Bytes {
    const uint8_t* p;
    size_t n;
    size_t at = 0;
    uint8_t u8() { return at < n ? p[at++] : 0; }
    uint32_t u32() {
        uint32_t v = 0;
        for (int i = 0; i < 4; ++i) v |= (uint32_t)u8() << (8 * i);
        return v;
    }
    size_t left() const { return at < n ? n - at : 0; }
    std::string rest() { std::string s(reinterpret_cast<const char*>(p + at), left()); at = n; return s; }
};

// Aborts (a crash libFuzzer reports with the input) when an invariant of the code under test fails.
#define FUZZ_CHECK(cond)                                                                       \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            std::fprintf(stderr, "fuzz check failed: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            std::abort();                                                                      \
        }                                                                                      \
    } while (0)

}  // namespace edge_fuzz
