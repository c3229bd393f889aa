/* qemu_insn_plugin.c — a QEMU TCG plugin (user mode, plugin API version 1 as in Debian's qemu 7.2, which
 * ships the plugin loader but no plugins) that counts executed guest instructions, in total and per
 * function symbol of the guest binary.
 *
 *   cc -shared -fPIC -O2 -o libedgeinsn.so bench/qemu_insn_plugin.c -lpthread
 *   qemu-aarch64 -plugin ./libedgeinsn.so,out=counts.txt -cpu cortex-a76 ./edgert ...
 *
 * How: when a translation block (TB) is translated, an inline "add n_insns" on the counter of the symbol
 * of the TB's first instruction is attached to it, so every execution adds its instruction count without
 * a callback. A TB never spans a function entry in practice, so per-symbol counts are exact up to TBs that
 * cross a symbol boundary (none in compiler output). The counters are plain uint64_t added by TCG code
 * without atomics: counts are exact and deterministic for a single-threaded guest (run edgert with -t 1).
 * At exit, `out` receives "total N" then "SYMBOL N" lines, largest first ("?" = no symbol).
 *
 * The few declarations below are the plugin ABI of QEMU 7.2 (include/qemu/qemu-plugin.h,
 * QEMU_PLUGIN_VERSION 1); the header itself is not packaged by Debian.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct {
    const char *target_name;
    struct { int min; int cur; } version;
    bool system_emulation;
    union { struct { int smp_vcpus; int max_vcpus; } system; };
} qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*udata_cb_t)(qemu_plugin_id_t id, void *userdata);

extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, tb_trans_cb_t cb);
extern void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr,
                                                     uint64_t imm);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
extern const char *qemu_plugin_insn_symbol(const struct qemu_plugin_insn *insn);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, udata_cb_t cb, void *userdata);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

typedef struct Counter {
    char *symbol;
    uint64_t count;
    struct Counter *next;
} Counter;

#define N_BUCKETS 4096
static Counter *g_buckets[N_BUCKETS];
static Counter g_unknown = {"?", 0, NULL};
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static char g_out[4096];

static unsigned hash(const char *s) {
    unsigned h = 2166136261u;
    for (; *s; ++s) h = (h ^ (unsigned char)*s) * 16777619u;
    return h % N_BUCKETS;
}

/* The counter of a symbol, created on first use; pointers stay valid until exit. */
static Counter *counter_for(const char *symbol) {
    if (!symbol || !*symbol) return &g_unknown;
    unsigned h = hash(symbol);
    for (Counter *c = g_buckets[h]; c; c = c->next)
        if (strcmp(c->symbol, symbol) == 0) return c;
    Counter *c = calloc(1, sizeof(Counter));
    if (!c) return &g_unknown;
    c->symbol = strdup(symbol);
    c->next = g_buckets[h];
    g_buckets[h] = c;
    return c;
}

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    size_t n = qemu_plugin_tb_n_insns(tb);
    if (n == 0) return;
    pthread_mutex_lock(&g_lock);
    Counter *c = counter_for(qemu_plugin_insn_symbol(qemu_plugin_tb_get_insn(tb, 0)));
    pthread_mutex_unlock(&g_lock);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &c->count, n);
}

static int by_count_desc(const void *a, const void *b) {
    uint64_t x = (*(Counter *const *)a)->count, y = (*(Counter *const *)b)->count;
    return x < y ? 1 : x > y ? -1 : strcmp((*(Counter *const *)a)->symbol, (*(Counter *const *)b)->symbol);
}

static void on_exit_cb(qemu_plugin_id_t id, void *userdata) {
    size_t n = 1;
    for (int i = 0; i < N_BUCKETS; ++i)
        for (Counter *c = g_buckets[i]; c; c = c->next) ++n;
    Counter **all = malloc(n * sizeof(Counter *));
    if (!all) return;
    size_t k = 0;
    uint64_t total = g_unknown.count;
    all[k++] = &g_unknown;
    for (int i = 0; i < N_BUCKETS; ++i)
        for (Counter *c = g_buckets[i]; c; c = c->next) {
            all[k++] = c;
            total += c->count;
        }
    qsort(all, k, sizeof(Counter *), by_count_desc);
    FILE *f = g_out[0] ? fopen(g_out, "w") : stderr;
    if (!f) return;
    fprintf(f, "total %llu\n", (unsigned long long)total);
    for (size_t i = 0; i < k; ++i)
        if (all[i]->count) fprintf(f, "%s %llu\n", all[i]->symbol, (unsigned long long)all[i]->count);
    if (f != stderr) fclose(f);
    free(all);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                                               int argc, char **argv) {
    for (int i = 0; i < argc; ++i) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            strncpy(g_out, argv[i] + 4, sizeof(g_out) - 1);
        } else {
            fprintf(stderr, "qemu_insn_plugin: unknown argument %s (only out=PATH)\n", argv[i]);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
    qemu_plugin_register_atexit_cb(id, on_exit_cb, NULL);
    return 0;
}
