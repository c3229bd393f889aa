"""Run one command under a hard memory limit (a fresh cgroup v1 memory child), cold, and report what
the kernel saw: exit status, OOM kills, peak usage including page cache.

Contract
    run_limited(cmd, limit_bytes, timeout, cold_files=()) -> dict
        Creates <memory cgroup of this process>/<unique name>, sets memory.limit_in_bytes = limit
        (and memory.memsw.limit_in_bytes = limit when the kernel has it, so swap cannot hide overuse;
        limit None = no limit, the cgroup still measures), drops each cold_files file from the page
        cache (drop_file_cache), runs cmd in the cgroup (sysmeasure.run_process: rc, stdout, stderr,
        wall_s, peak_rss_mib = the child's own VmHWM if it prints HWM_TAG, foreign_cores), then reads
        the cgroup's counters, kills whatever is left in it and removes it (always, also on errors).
        Adds: limit_bytes, oom_killed (the kernel OOM killer killed a process of the cgroup),
        oom_kill_count, under_oom, failcnt / memsw_failcnt (times usage hit the limit: reclaim, not
        necessarily a kill), max_usage_mib (memory.max_usage_in_bytes: anonymous memory + page cache
        + kernel memory charged to the cgroup; pages a file already had in the cache before the run
        are charged to whoever read them first, hence cold_files), swap_total_kib, cold (drop results).
    drop_file_cache(path) -> {"path", "pages", "resident_before", "resident_after"}
        fsync + posix_fadvise(DONTNEED) on the whole file; resident_* are fractions of its pages in the
        page cache (mincore), so a caller sees when the drop did not take (pages mapped elsewhere).
    file_resident_fraction(path) -> float
    cgroup_available() -> str | None   None if usable, else why not (tests skip on that)

Linux cgroup v1 memory controller only (the layout of this machine: /sys/fs/cgroup/memory, root).
Why a cgroup and not RLIMIT_AS/RSS: an mmap-ing engine (llama.cpp) reserves far more address space than
it touches, and its file pages live in the page cache, not its RSS; a cgroup limit bounds exactly what
the machine would have to provide (anonymous + file pages), the way a small device's RAM does.

Run as a script: python bench/cgroup.py LIMIT [--cold FILE]... -- CMD ...   (prints the dict as JSON)
"""
from __future__ import annotations

import ctypes
import mmap
import os
import signal
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sysmeasure import run_process  # noqa: E402

CGROUP_MEMORY_ROOT = "/sys/fs/cgroup/memory"
PAGE = mmap.PAGESIZE


def _own_memory_cgroup() -> str:
    """Directory of this process's memory cgroup (v1), from /proc/self/cgroup."""
    with open("/proc/self/cgroup", encoding="ascii") as f:
        for line in f:
            _hid, ctrls, path = line.rstrip("\n").split(":", 2)
            if "memory" in ctrls.split(","):
                return os.path.join(CGROUP_MEMORY_ROOT, path.lstrip("/"))
    raise OSError("no cgroup v1 memory controller in /proc/self/cgroup")


def cgroup_available() -> str | None:
    try:
        parent = _own_memory_cgroup()
    except OSError as e:
        return str(e)
    if not os.path.isfile(os.path.join(parent, "memory.limit_in_bytes")):
        return f"{parent}: no memory.limit_in_bytes (not a cgroup v1 memory hierarchy)"
    if not os.access(parent, os.W_OK):
        return f"{parent}: not writable (needs root)"
    return None


def _read(cg: str, name: str) -> str | None:
    try:
        with open(os.path.join(cg, name), encoding="ascii") as f:
            return f.read()
    except OSError:
        return None


def _write(cg: str, name: str, value: str) -> None:
    with open(os.path.join(cg, name), "w", encoding="ascii") as f:
        f.write(value)


def _int(cg: str, name: str) -> int | None:
    s = _read(cg, name)
    return int(s.split()[0]) if s else None


def _swap_total_kib() -> int:
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("SwapTotal:"):
                return int(line.split()[1])
    return 0


# ----------------------------------------------------------------------------- page cache
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]


def file_resident_fraction(path: str) -> float:
    """Share of the file's pages in the page cache (mincore over a fresh read-only mapping)."""
    size = os.path.getsize(path)
    if size == 0:
        return 0.0
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), f"mmap {path}")
        try:
            n = (size + PAGE - 1) // PAGE
            vec = (ctypes.c_ubyte * n)()
            if _libc.mincore(addr, size, vec) != 0:
                raise OSError(ctypes.get_errno(), f"mincore {path}")
            return sum(b & 1 for b in bytes(vec)) / n
        finally:
            _libc.munmap(addr, size)
    finally:
        os.close(fd)


def drop_file_cache(path: str) -> dict:
    """Evict the file from the page cache so the next reader starts cold (and is charged for it)."""
    before = file_resident_fraction(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # dirty pages (a freshly written model) are not dropped by DONTNEED
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return {"path": path, "pages": (os.path.getsize(path) + PAGE - 1) // PAGE, "resident_before": before,
            "resident_after": file_resident_fraction(path)}


# ----------------------------------------------------------------------------- the run
def _kill_all(cg: str) -> None:
    """SIGKILL every process still in the cgroup (all started by this run) and wait until it is empty."""
    for _ in range(100):
        pids = [int(p) for p in (_read(cg, "cgroup.procs") or "").split()]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)


def _remove(cg: str) -> None:
    _kill_all(cg)
    try:
        _write(cg, "memory.force_empty", "0")  # uncharge its page cache now rather than at reparenting
    except OSError:
        pass
    for _ in range(50):
        try:
            os.rmdir(cg)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)
    os.rmdir(cg)  # raise the real error


def run_limited(cmd: list[str], limit_bytes: int | None, timeout: float = 900,
                cold_files: tuple[str, ...] | list[str] = ()) -> dict:
    why = cgroup_available()
    if why:
        raise OSError(f"cannot create a memory cgroup: {why}")
    cg = os.path.join(_own_memory_cgroup(), f"edgebench-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.mkdir(cg)
    try:
        if limit_bytes is not None:
            _write(cg, "memory.limit_in_bytes", str(int(limit_bytes)))
            if os.path.exists(os.path.join(cg, "memory.memsw.limit_in_bytes")):
                _write(cg, "memory.memsw.limit_in_bytes", str(int(limit_bytes)))  # must be >= the memory limit
        cold = [drop_file_cache(p) for p in cold_files]
        # the shell moves itself into the cgroup, then becomes the command: every page of the command
        # (and of anything it starts) is charged there from its first instruction
        shim = ["/bin/sh", "-c", 'echo 0 > "$0/cgroup.procs" && exec "$@"', cg] + list(cmd)
        res = run_process(shim, timeout)
        oom = _read(cg, "memory.oom_control") or ""
        oc = dict(line.split() for line in oom.splitlines() if len(line.split()) == 2)
        max_usage = _int(cg, "memory.max_usage_in_bytes")
        res.update({
            "limit_bytes": limit_bytes,
            "oom_kill_count": int(oc.get("oom_kill", 0)),
            "oom_killed": int(oc.get("oom_kill", 0)) > 0,
            "under_oom": int(oc.get("under_oom", 0)),
            "failcnt": _int(cg, "memory.failcnt"),
            "memsw_failcnt": _int(cg, "memory.memsw.failcnt"),
            "max_usage_mib": max_usage / 2**20 if max_usage is not None else None,
            "swap_total_kib": _swap_total_kib(),
            "cold": cold,
        })
        return res
    finally:
        _remove(cg)


def main(argv=None) -> int:
    import argparse
    import json

    ap = argparse.ArgumentParser(description="run a command under a cgroup memory limit (see module doc)")
    ap.add_argument("limit", help="bytes, or with a unit: 512MB, 1GB, 2GiB; 'none' = unlimited")
    ap.add_argument("--cold", action="append", default=[], help="drop this file from the page cache first")
    ap.add_argument("--timeout", type=float, default=900)
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        ap.error("give the command after --")
    cut = argv.index("--")
    a, cmd = ap.parse_args(argv[:cut]), argv[cut + 1:]
    limit = None if a.limit == "none" else parse_bytes(a.limit)
    res = run_limited(cmd, limit, a.timeout, a.cold)
    sys.stdout.write(res.pop("stdout"))
    sys.stderr.write(res.pop("stderr"))
    print(json.dumps(res))
    return 0 if res["rc"] == 0 else 1


def parse_bytes(text: str) -> int:
    """edgerun's own size syntax (runtime/edgerun/sizes.py: "1GB" = 10^9, "1GiB" = 2^30), loaded by path so
    this works without a built _core; the cgroup limit and `edgerun --mem` then mean the same bytes."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_edgerun_sizes", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                       "runtime", "edgerun", "sizes.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.parse_size(text)


if __name__ == "__main__":
    sys.exit(main())
