// cli_parse.h — strict parsing of edgert's option values (shared by its commands): a value is the whole
// argument, in range, or the command refuses it with one line (exit 2).
#pragma once

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace edge {

// "1GB" = 1e9, "1GiB" = 2^30, "512MB", "4096" (bytes); -1 if malformed, not > 0 or beyond 2^62.
inline int64_t parse_size(const char* s) {
    char* end = nullptr;
    const double v = std::strtod(s, &end);
    if (end == s || !(v > 0) || !(v < 4.6e18)) return -1;
    std::string u(end);
    for (char& ch : u) ch = (char)std::toupper((unsigned char)ch);
    static const struct { const char* unit; double mult; } kUnits[] = {
        {"", 1}, {"B", 1}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"KIB", 1024.0}, {"MIB", 1048576.0}, {"GIB", 1073741824.0},
        {"K", 1024.0}, {"M", 1048576.0}, {"G", 1073741824.0}};
    for (const auto& k : kUnits)
        if (u == k.unit) return v * k.mult >= 1 && v * k.mult < 4.6e18 ? (int64_t)(v * k.mult) : -1;
    return -1;
}

// The whole of `s` as a base-10 integer in [lo, hi]; false otherwise (no silent atoi wrap or truncation).
inline bool parse_int(const char* s, long long lo, long long hi, long long* out) {
    errno = 0;
    char* end = nullptr;
    const long long v = std::strtoll(s, &end, 10);
    if (end == s || *end != '\0' || errno == ERANGE || v < lo || v > hi) return false;
    *out = v;
    return true;
}

// The whole of `s` as a finite float in [lo, hi].
inline bool parse_float(const char* s, double lo, double hi, double* out) {
    char* end = nullptr;
    const double v = std::strtod(s, &end);
    if (end == s || *end != '\0' || !std::isfinite(v) || v < lo || v > hi) return false;
    *out = v;
    return true;
}

}  // namespace edge
