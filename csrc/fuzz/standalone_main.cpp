// standalone_main.cpp — a main() for the fuzz targets without libFuzzer (gcc, EDGE_SANITIZE builds, CI).
//
// Runs LLVMFuzzerTestOneInput on every file given (or every file of every directory given), then on
// `-runs=N` fresh inputs made by stacking 1-4 seeded mutations of a random corpus file (bit flips,
// interesting integers, zeroed / random / duplicated / deleted spans, truncation, insertion, splicing
// two files), stopping early after `-max_total_time=S` seconds. Not coverage-guided (that is libFuzzer's
// job: -DEDGE_FUZZ=ON with clang builds the same targets against it); it replays the corpus and probes
// its neighbourhood under ASan + UBSan. Flags as libFuzzer spells them: -runs -max_total_time -seed
// -timeout (seconds per input) -artifact_prefix; others are ignored. Output ends with libFuzzer's line
// "Done N runs in S second(s)". A crash, sanitizer report or timeout writes the input to
// <artifact_prefix>crash-<n> (timeout-<n>) before the process dies, as libFuzzer does.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) __attribute__((weak));
extern "C" void __sanitizer_set_death_callback(void (*)(void)) __attribute__((weak));

namespace {

using Bytes = std::vector<uint8_t>;

const uint8_t* g_data = nullptr;  // the input being run, for the crash handlers
size_t g_size = 0;
std::string g_prefix;
char g_crash_path[4096], g_timeout_path[4096];

void dump(const char* path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return;
    for (size_t done = 0; done < g_size;) {
        ssize_t n = write(fd, g_data + done, g_size - done);
        if (n <= 0) break;
        done += (size_t)n;
    }
    close(fd);
    const char msg[] = "standalone fuzz driver: input written to ";
    (void)!write(2, msg, sizeof msg - 1);
    (void)!write(2, path, strlen(path));
    (void)!write(2, "\n", 1);
}
void on_death() { dump(g_crash_path); }
void on_signal(int sig) {
    dump(sig == SIGALRM ? g_timeout_path : g_crash_path);
    if (sig == SIGALRM) {
        const char msg[] = "standalone fuzz driver: timeout\n";
        (void)!write(2, msg, sizeof msg - 1);
    }
    signal(sig, SIG_DFL);
    raise(sig == SIGALRM ? SIGABRT : sig);
}

bool read_file(const std::string& path, Bytes* out) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return false;
    out->clear();
    uint8_t buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out->insert(out->end(), buf, buf + n);
    std::fclose(f);
    return true;
}

void collect(const std::string& path, std::vector<std::string>* files) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) return;
    if (!S_ISDIR(st.st_mode)) { files->push_back(path); return; }
    DIR* d = opendir(path.c_str());
    if (!d) return;
    while (dirent* e = readdir(d))
        if (e->d_name[0] != '.') collect(path + "/" + e->d_name, files);
    closedir(d);
}

struct Rng {
    uint64_t s;
    uint64_t next() {
        uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    size_t below(size_t n) { return n ? (size_t)(next() % n) : 0; }
};

void mutate(Bytes& b, const std::vector<Bytes>& corpus, Rng& r) {
    static const uint64_t interesting[] = {0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0xffff, 0x7fffffff, 0x80000000ull,
                                           0xffffffffull, 1ull << 32, 1ull << 40, ~0ull, 0x8000000000000000ull};
    const int n = 1 + (int)r.below(4);
    for (int k = 0; k < n; ++k) {
        const size_t at = r.below(b.size() + 1), span = 1 + r.below(r.below(2) ? 8 : 256);
        switch (r.below(9)) {
            case 0: if (!b.empty()) b[r.below(b.size())] ^= (uint8_t)(1u << r.below(8)); break;
            case 1: {  // an interesting little-endian integer of 1, 2, 4 or 8 bytes
                const size_t w = (size_t)1 << r.below(4);
                const uint64_t v = interesting[r.below(sizeof interesting / sizeof *interesting)] + (r.below(4) == 0 ? r.below(3) - 1 : 0);
                for (size_t i = 0; i < w && at + i < b.size(); ++i) b[at + i] = (uint8_t)(v >> (8 * i));
                break;
            }
            case 2: for (size_t i = at; i < b.size() && i < at + span; ++i) b[i] = 0; break;
            case 3: for (size_t i = at; i < b.size() && i < at + span; ++i) b[i] = (uint8_t)r.next(); break;
            case 4: if (!b.empty()) b.resize(r.below(b.size())); break;
            case 5: { Bytes ins(span); for (auto& x : ins) x = (uint8_t)r.next(); b.insert(b.begin() + (long)at, ins.begin(), ins.end()); break; }
            case 6: if (at < b.size()) b.erase(b.begin() + (long)at, b.begin() + (long)std::min(b.size(), at + span)); break;
            case 7: if (at < b.size()) { Bytes dup(b.begin() + (long)at, b.begin() + (long)std::min(b.size(), at + span)); b.insert(b.begin() + (long)r.below(b.size() + 1), dup.begin(), dup.end()); } break;
            default: {  // splice: a prefix of this input, the rest from another file
                const Bytes& o = corpus[r.below(corpus.size())];
                if (o.empty()) break;
                const size_t cut = std::min(at, b.size()), from = r.below(o.size());
                b.resize(cut);
                b.insert(b.end(), o.begin() + (long)from, o.end());
            }
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    long runs = 0, timeout = 0;
    double max_time = 0;
    uint64_t seed = 1;
    std::vector<std::string> files;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto val = [&](const char* flag) -> const char* { size_t n = strlen(flag); return a.compare(0, n, flag) == 0 ? argv[i] + n : nullptr; };
        if (const char* v = val("-runs=")) runs = std::atol(v);
        else if (const char* v = val("-max_total_time=")) max_time = std::atof(v);
        else if (const char* v = val("-seed=")) seed = std::strtoull(v, nullptr, 10);
        else if (const char* v = val("-timeout=")) timeout = std::atol(v);
        else if (const char* v = val("-artifact_prefix=")) g_prefix = v;
        else if (a[0] != '-') collect(a, &files);
    }
    snprintf(g_crash_path, sizeof g_crash_path, "%scrash-replay", g_prefix.c_str());
    snprintf(g_timeout_path, sizeof g_timeout_path, "%stimeout-replay", g_prefix.c_str());
    if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(on_death);
    signal(SIGABRT, on_signal);
    signal(SIGSEGV, on_signal);
    signal(SIGALRM, on_signal);

    const auto t0 = std::chrono::steady_clock::now();
    auto run_one = [&](const Bytes& b) {
        g_data = b.data();
        g_size = b.size();
        if (timeout > 0) alarm((unsigned)timeout);
        LLVMFuzzerTestOneInput(b.data(), b.size());
        if (timeout > 0) alarm(0);
    };
    std::vector<Bytes> corpus;
    for (const std::string& f : files) {
        Bytes b;
        if (!read_file(f, &b)) { std::fprintf(stderr, "cannot read %s\n", f.c_str()); return 1; }
        run_one(b);
        corpus.push_back(std::move(b));
    }
    std::fprintf(stderr, "INFO: replayed %zu corpus files\n", corpus.size());
    if (corpus.empty()) corpus.emplace_back();
    Rng r{seed};
    long done = 0;
    for (; done < runs; ++done) {
        if (max_time > 0 && std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > max_time) break;
        Bytes b = corpus[r.below(corpus.size())];
        mutate(b, corpus, r);
        snprintf(g_crash_path, sizeof g_crash_path, "%scrash-%ld", g_prefix.c_str(), done);
        snprintf(g_timeout_path, sizeof g_timeout_path, "%stimeout-%ld", g_prefix.c_str(), done);
        run_one(b);
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "Done %ld runs in %ld second(s) (%.1f exec/s, %zu corpus files)\n", done + (long)files.size(), (long)secs,
                 secs > 0 ? (double)(done + (long)files.size()) / secs : 0.0, files.size());
    return 0;
}
