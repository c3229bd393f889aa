// common.cpp — Status message formatting.
#include "common.h"

#include <cstdarg>

namespace edge {

std::string strfmt(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char buf[1024];
    int n = std::vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0) return std::string(fmt);
    if ((size_t)n < sizeof(buf)) return std::string(buf, (size_t)n);
    std::string s((size_t)n, '\0');
    va_start(ap, fmt);
    std::vsnprintf(&s[0], (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

}  // namespace edge
