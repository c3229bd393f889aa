// edgert.cpp — standalone CLI (no Python): kernel info for now.
#include <cstdio>
#include <cstring>

#include "kernels/kernels.h"

int main(int argc, char** argv) {
    const char* names[16];
    int n = edge::kernels_levels(names, 16);
    std::printf("kernel levels:");
    for (int i = 0; i < n; ++i) std::printf(" %s", names[i]);
    std::printf("\ndefault: %s\n", edge::kernels_default()->level);
    return 0;
}
