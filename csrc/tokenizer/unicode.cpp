// unicode.cpp — UTF-8 helpers and the two-level class lookup built from unicode_data.cpp.
#include "unicode.h"

#include <algorithm>
#include <vector>

namespace edge {
namespace tok {

namespace {

// 0x110000 code points in blocks of 256: index[cp >> 8] selects a 256-byte block of flags.
// Most blocks are all-zero or all-letters, so a few hundred distinct blocks cover everything.
struct FlagTable {
    std::vector<uint16_t> index;
    std::vector<uint8_t> blocks;

    FlagTable() {
        const uint32_t n_blocks = 0x110000 >> 8;
        index.resize(n_blocks);
        std::vector<uint8_t> block(256);
        int r = 0;
        for (uint32_t b = 0; b < n_blocks; ++b) {
            uint32_t base = b << 8;
            for (uint32_t i = 0; i < 256; ++i) {
                uint32_t cp = base + i;
                while (r < kUnicodeRangeCount && kUnicodeRanges[r].last < cp) ++r;
                block[i] = (r < kUnicodeRangeCount && kUnicodeRanges[r].first <= cp) ? kUnicodeRanges[r].flags : 0;
            }
            // Deduplicate against the blocks seen so far (linear scan: a few hundred, once).
            size_t n_unique = blocks.size() / 256, found = n_unique;
            for (size_t u = 0; u < n_unique && found == n_unique; ++u)
                if (std::equal(block.begin(), block.end(), blocks.begin() + (ptrdiff_t)(u * 256))) found = u;
            if (found == n_unique) blocks.insert(blocks.end(), block.begin(), block.end());
            index[b] = (uint16_t)found;
        }
    }
};

const FlagTable& flag_table() {
    static const FlagTable t;  // thread-safe one-time construction
    return t;
}

}  // namespace

uint8_t unicode_flags(uint32_t cp) {
    if (cp >= 0x110000) return 0;
    const FlagTable& t = flag_table();
    return t.blocks[(size_t)t.index[cp >> 8] * 256 + (cp & 0xff)];
}

int utf8_decode(const char* s, size_t n, uint32_t* cp) {
    const unsigned char* u = reinterpret_cast<const unsigned char*>(s);
    unsigned char c = u[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len;
    uint32_t v, min;
    if ((c & 0xe0) == 0xc0) {
        len = 2, v = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3, v = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        *cp = kInvalidCp;
        return 1;
    }
    if ((size_t)len > n) {
        *cp = kInvalidCp;
        return 1;
    }
    for (int i = 1; i < len; ++i) {
        if ((u[i] & 0xc0) != 0x80) {
            *cp = kInvalidCp;
            return 1;
        }
        v = (v << 6) | (u[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
        *cp = kInvalidCp;
        return 1;
    }
    *cp = v;
    return len;
}

void utf8_append(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
        out->push_back((char)cp);
    } else if (cp < 0x800) {
        out->push_back((char)(0xc0 | (cp >> 6)));
        out->push_back((char)(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
        out->push_back((char)(0xe0 | (cp >> 12)));
        out->push_back((char)(0x80 | ((cp >> 6) & 0x3f)));
        out->push_back((char)(0x80 | (cp & 0x3f)));
    } else {
        out->push_back((char)(0xf0 | (cp >> 18)));
        out->push_back((char)(0x80 | ((cp >> 12) & 0x3f)));
        out->push_back((char)(0x80 | ((cp >> 6) & 0x3f)));
        out->push_back((char)(0x80 | (cp & 0x3f)));
    }
}

}  // namespace tok
}  // namespace edge
