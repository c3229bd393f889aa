"""Measuring on a shared machine: child processes with their own peak RSS and the CPU load of everyone
else, waiting for quiet, memory bandwidth, and what the machine is.

Contract
    run_process(cmd, timeout) -> {"rc", "stdout", "stderr", "wall_s", "peak_rss_mib", "foreign_cores", "timed_out"}
        peak_rss_mib: VmHWM of the child, printed by the child at exit when its command line starts with
        HWM_SNIPPET (Python children); None otherwise. Not ru_maxrss: Linux carries the parent's RSS
        across fork+exec into the child's ru_maxrss.
        foreign_cores: CPU used meanwhile by all other processes, in cores (/proc/stat minus the
        child's rusage); above ~0.2 the child's timings are contended.
    wait_for_quiet(max_wait_s) -> cores used by others over the last second
    measure_bandwidth(nbytes, threads) -> {"read_gb_s", "copy_gb_s", ...}
    machine_info() -> dict; loadavg() -> float; cpu_has_amx() -> bool
    last_json_object(text) -> dict   the last JSON-object line of a CLI's output
Linux only (/proc).
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import threading
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # children run in the repository root
HWM_TAG = "@@VMHWM_KB "
# appended to every child: print the peak RSS of this process image (VmHWM, reset by exec) at exit
HWM_SNIPPET = ("import atexit, sys; atexit.register(lambda: sys.stderr.write('%s' + "
               "[l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')][0] + '\\n'))" % HWM_TAG)
CPU_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
             "avx512_bf16", "avx512_fp16", "amx_int8", "amx_bf16", "asimd", "asimddp", "i8mm", "sve",
             "sve2", "fphp", "asimdhp", "v", "zvfh")


def machine_busy_s() -> float:
    """CPU-seconds the whole machine has spent not idle since boot (/proc/stat, all CPUs)."""
    with open("/proc/stat", encoding="ascii") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait; guest is in user


def run_process(cmd: list[str], timeout: float) -> dict:
    """Run cmd in a fresh process; return rc, stdout, stderr, wall_s, its peak RSS (VmHWM, which the
    child prints at exit via HWM_SNIPPET; None if it did not) and
    foreign_cores: the CPU used meanwhile by everything else on the machine, in cores (other users'
    work competing for the same cores makes the timings of that process unreliable)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        busy0 = machine_busy_s()
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe, env=env, cwd=REPO)
        killer = threading.Timer(timeout, p.kill)
        killer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            killer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        foreign = (machine_busy_s() - busy0 - ru.ru_utime - ru.ru_stime) / wall
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read().decode("utf-8", "replace"), fe.read().decode("utf-8", "replace")
    hwm = [ln for ln in err.splitlines() if ln.startswith(HWM_TAG)]
    return {"rc": p.returncode, "stdout": out, "stderr": err, "wall_s": wall,
            "peak_rss_mib": int(hwm[-1][len(HWM_TAG):]) / 1024.0 if hwm else None,
            "foreign_cores": max(0.0, foreign), "timed_out": wall >= timeout}


def wait_for_quiet(max_wait_s: float, threshold_cores: float = 0.25) -> float:
    """Wait (up to max_wait_s) until the rest of the machine uses under threshold_cores over one
    second; returns the last measured load in cores. Call it while nothing of ours is running."""
    t_end = time.perf_counter() + max_wait_s
    while True:
        b0, t0 = machine_busy_s(), time.perf_counter()
        time.sleep(1.0)
        load = (machine_busy_s() - b0) / (time.perf_counter() - t0)
        if load < threshold_cores or time.perf_counter() >= t_end:
            return load


def cpu_has_amx() -> bool:
    with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
        return platform.machine() == "x86_64" and "amx_int8" in f.read(1 << 16)


def last_json_object(text: str) -> dict:
    """The last line of text that parses as a JSON object (CLIs may log before it)."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                pass
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise RuntimeError(f"no JSON object in output:\n{text[-2000:]}") from e


def machine_info() -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in lscpu.splitlines():
            k, _, v = line.partition(":")
            if k.strip() in ("Model name", "Architecture", "CPU(s)", "Thread(s) per core", "L2 cache",
                             "L3 cache", "Hypervisor vendor"):
                info[k.strip()] = v.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    flags = set()
    with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith(("flags", "Features", "isa")):
                flags.update(line.split(":", 1)[1].split())
                break
    info["flags"] = [fl for fl in CPU_FLAGS if fl in flags]
    return info


def loadavg() -> float:
    with open("/proc/loadavg", encoding="ascii") as f:
        return float(f.read().split()[0])


def measure_bandwidth(nbytes: int, threads: int, repeats: int = 5) -> dict:
    """Read (sum of float64) and copy bandwidth in GB/s over a buffer of nbytes split across threads
    (numpy releases the GIL in both); best of repeats. Copy counts read + write bytes."""
    n = nbytes // 8
    src = np.ones(n, dtype=np.float64)
    dst = np.empty_like(src)
    parts = np.array_split(np.arange(n), threads)
    bounds = [(int(p[0]), int(p[-1]) + 1) for p in parts if len(p)]

    def timed(fn) -> float:
        best = float("inf")
        for _ in range(repeats):
            ts = [threading.Thread(target=fn, args=b) for b in bounds]
            t0 = time.perf_counter()
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            best = min(best, time.perf_counter() - t0)
        return best

    t_read = timed(lambda a, b: src[a:b].sum())
    t_copy = timed(lambda a, b: np.copyto(dst[a:b], src[a:b]))
    return {"bytes": n * 8, "threads": threads, "read_gb_s": n * 8 / t_read / 1e9,
            "copy_gb_s": 2 * n * 8 / t_copy / 1e9}
