"""Board profiles (devices/profiles/*.toml) and what a board means for a model: kernels, memory, speed.

    load_profiles() -> {name: Profile}         every profile, validated (ValueError names file and field)
    get_profile("rpi5") -> Profile
    host_profile() -> Profile | None           the profile of this machine's ISA family (x86-64 / aarch64 / riscv64)
    decode_bytes(tensors, config, pos) -> int  bytes read from memory to decode one token at position `pos`
    kernel_report(table, levels, used) -> [str] which implementation fills each kernel slot (edgerun --verbose)
    device_report(model, profile) -> [str]     does this model fit the board, and its decode roofline

Profiles are data: no code branches on a board name. The directory is found in this order: $EDGE_DEVICES_DIR,
edgerun/devices/ next to this file (installed wheels), ../../devices/profiles (the source tree).
Python: stdlib only (tomllib, or the tomli backport on Python 3.10); importing this module does not load _core.
"""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from typing import Iterable, Mapping

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ENV_DIR = "EDGE_DEVICES_DIR"
ARCHES = ("aarch64", "riscv64", "x86_64")
KV_BYTES = 4  # the runtime's KV cache is f32 (csrc/model.cpp)


@dataclass(frozen=True)
class Storage:
    kind: str
    read_mbs: float
    source: str


@dataclass(frozen=True)
class Anchor:
    """A published decode speed on this board, with where it comes from."""
    model: str
    quant: str
    engine: str
    decode_tok_s: float
    source: str
    note: str = ""


@dataclass(frozen=True)
class Qemu:
    binary: str   # qemu-aarch64 / qemu-riscv64
    cpu: str      # the -cpu string that emulates this board's ISA
    sysroot: str  # -L for dynamically linked binaries


@dataclass(frozen=True)
class Profile:
    name: str
    board: str
    soc: str
    cpu: str
    arch: str                        # aarch64 | riscv64 | x86_64
    isa: tuple[str, ...]
    lacks: tuple[str, ...]
    isa_source: str
    kernel_level: str                # the level csrc/kernels/dispatch.cpp selects on this board
    cores: int
    ram_gb: tuple[float, ...]        # RAM options, smallest first
    os_reserve_mb: float             # RAM the OS keeps (assumption unless stated)
    recipes: tuple[str, ...]         # converter recipes to try, preferred first
    fast_dtypes: tuple[str, ...]     # weight dtypes whose gemm has a SIMD path at kernel_level
    toolchain: str                   # CMake toolchain file ("" for the host)
    cross_target: str                # scripts/cross.sh TARGET ("" for the host)
    mem_kind: str
    peak_gbs: float
    peak_source: str
    realistic_gbs: float             # what decode can expect to stream from DRAM
    realistic_source: str
    storage: tuple[Storage, ...]
    anchors: tuple[Anchor, ...] = ()
    qemu: Qemu | None = None
    vlen: int | None = None
    accelerator: str = ""
    notes: str = ""
    path: str = field(default="", compare=False)

    @property
    def min_ram_bytes(self) -> int:
        return int(min(self.ram_gb) * 1e9)

    def budget_bytes(self, ram_gb: float | None = None) -> int:
        """Bytes a model may use on this board: RAM (default: the smallest option) minus the OS reserve."""
        ram = min(self.ram_gb) if ram_gb is None else ram_gb
        return int(ram * 1e9 - self.os_reserve_mb * 1e6)


_REQUIRED = ("name", "board", "soc", "cpu", "arch", "isa", "isa_source", "kernel_level", "cores", "ram_gb",
             "os_reserve_mb", "recipes", "fast_dtypes", "toolchain", "cross_target", "memory", "storage")
_OPTIONAL = ("lacks", "anchors", "qemu", "vlen", "accelerator", "notes")


def profiles_dir() -> str:
    """The directory holding the *.toml profiles (see the module docstring for the search order)."""
    env = os.environ.get(ENV_DIR)
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    for d in (os.path.join(here, "devices"), os.path.join(here, "..", "..", "devices", "profiles")):
        if os.path.isdir(d):
            return os.path.normpath(d)
    raise FileNotFoundError(f"no device profiles found: set {ENV_DIR} to the devices/profiles directory of an "
                            "edgerun checkout")


def _check(cond: bool, path: str, msg: str) -> None:
    if not cond:
        raise ValueError(f"{path}: {msg}")


def parse_profile(d: Mapping, path: str = "<profile>") -> Profile:
    """A validated Profile from one TOML document; ValueError names the file and the field."""
    missing = [k for k in _REQUIRED if k not in d]
    _check(not missing, path, f"missing field(s) {', '.join(missing)}")
    unknown = sorted(set(d) - set(_REQUIRED) - set(_OPTIONAL))
    _check(not unknown, path, f"unknown field(s) {', '.join(unknown)}")
    _check(d["arch"] in ARCHES, path, f"arch {d['arch']!r} is not one of {', '.join(ARCHES)}")
    _check(isinstance(d["cores"], int) and d["cores"] >= 1, path, "cores must be a positive integer")
    _check(bool(d["ram_gb"]) and all(r > 0 for r in d["ram_gb"]), path, "ram_gb must list positive sizes")
    _check(bool(d["recipes"]), path, "recipes must name at least one converter recipe")
    mem = d["memory"]
    for k in ("kind", "peak_gbs", "peak_source", "realistic_gbs", "realistic_source"):
        _check(k in mem, path, f"[memory] needs {k}")
    _check(0 < mem["realistic_gbs"] <= mem["peak_gbs"], path, "need 0 < memory.realistic_gbs <= memory.peak_gbs")
    storage = tuple(Storage(s["kind"], float(s["read_mbs"]), s["source"]) for s in d["storage"])
    _check(bool(storage), path, "at least one [[storage]] entry")
    anchors = tuple(Anchor(a["model"], a["quant"], a["engine"], float(a["decode_tok_s"]), a["source"],
                           a.get("note", "")) for a in d.get("anchors", ()))
    q = d.get("qemu")
    qemu = Qemu(q["binary"], q["cpu"], q.get("sysroot", "")) if q else None
    _check(d["arch"] == "x86_64" or qemu is not None, path, "a cross target needs a [qemu] table")
    return Profile(
        name=d["name"], board=d["board"], soc=d["soc"], cpu=d["cpu"], arch=d["arch"], isa=tuple(d["isa"]),
        lacks=tuple(d.get("lacks", ())), isa_source=d["isa_source"], kernel_level=d["kernel_level"],
        cores=d["cores"], ram_gb=tuple(sorted(float(r) for r in d["ram_gb"])), os_reserve_mb=float(d["os_reserve_mb"]),
        recipes=tuple(d["recipes"]), fast_dtypes=tuple(d["fast_dtypes"]), toolchain=d["toolchain"],
        cross_target=d["cross_target"], mem_kind=mem["kind"], peak_gbs=float(mem["peak_gbs"]),
        peak_source=mem["peak_source"], realistic_gbs=float(mem["realistic_gbs"]),
        realistic_source=mem["realistic_source"], storage=storage, anchors=anchors, qemu=qemu,
        vlen=d.get("vlen"), accelerator=d.get("accelerator", ""), notes=d.get("notes", ""), path=path)


def load_profiles(directory: str | None = None) -> dict[str, Profile]:
    """{name: Profile} for every *.toml in the profiles directory; the file stem must equal `name`."""
    directory = directory or profiles_dir()
    out: dict[str, Profile] = {}
    for fn in sorted(os.listdir(directory)):
        if not fn.endswith(".toml"):
            continue
        path = os.path.join(directory, fn)
        with open(path, "rb") as f:
            try:
                doc = tomllib.load(f)
            except tomllib.TOMLDecodeError as e:
                raise ValueError(f"{path}: {e}") from None
        p = parse_profile(doc, path)
        _check(p.name == fn[:-5], path, f"name {p.name!r} differs from the file name")
        out[p.name] = p
    if not out:
        raise FileNotFoundError(f"{directory}: no *.toml device profiles")
    return out


def get_profile(name: str, directory: str | None = None) -> Profile:
    profiles = load_profiles(directory)
    if name not in profiles:
        raise ValueError(f"unknown device {name!r}; known: {', '.join(profiles)}")
    return profiles[name]


def host_arch() -> str:
    m = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(m, m)


def host_profile(directory: str | None = None) -> Profile | None:
    """The host's profile when it is the generic x86-64 one; None on boards (which board it is can't be told
    from the ISA: pass a name)."""
    arch = host_arch()
    for p in load_profiles(directory).values():
        if p.arch == arch and not p.cross_target:
            return p
    return None


# ---- what a model costs on a board ------------------------------------------------------------------

def decode_bytes(tensors: Iterable[Mapping], config: Mapping, pos: int) -> int:
    """Bytes streamed from memory for one decode step at context position `pos` (0-based, pos tokens cached).

    tensors: {"name", "nbytes", "shape"} per tensor. Every weight is read once, except the embedding table,
    of which one row is read, unless it is also the output head (tied: read in full). Plus the f32 K and V
    cache of `pos` positions in every layer. Activations stay in cache and are not counted.
    """
    tied = bool(config.get("tied_head", config.get("llm.tied_head", False)))
    total = 0
    for t in tensors:
        if t["name"] == "tok_embd" and not tied:
            total += t["nbytes"] // t["shape"][0]
        else:
            total += t["nbytes"]
    n_layers = config.get("n_layers", config.get("llm.n_layers"))
    kv_dim = config.get("n_kv_heads", config.get("llm.n_kv_heads")) * config.get("head_dim", config.get("llm.head_dim"))
    return total + n_layers * 2 * pos * kv_dim * KV_BYTES


def roofline_tok_s(bytes_per_token: int, gbs: float) -> float:
    return gbs * 1e9 / bytes_per_token


def kernel_report(table: Mapping, levels: list[str], used_dtypes: Iterable[str], requested: str | None = None) -> list[str]:
    """Lines describing the kernel table `table` (edgerun._core.kernel_table(level)) for `edgerun --verbose`.

    levels: the levels this CPU supports (lowest first; the last is the detected one). used_dtypes: the weight
    dtypes of the model (listed one per line, others grouped by implementation). requested: --kernels /
    $EDGE_KERNELS, to say why the level is not the detected one.
    """
    detected = levels[-1]
    why = ""
    if table["level"] != detected:
        why = f", capped by {requested}" if requested else ", capped"
    lines = [f"kernels {table['level']} (detected {detected}{why}; this CPU supports {', '.join(levels)})",
             f"  quantize_q8x={table['quantize_q8x']} attention={table['attention']} silu_mul={table['silu_mul']}"]
    used = [d for d in table["gemm"] if d in set(used_dtypes)]
    for dt in used:
        lines.append(f"  {dt:10s} gemm={table['gemm'][dt]:10s} dequant={table['dequant'][dt]}   (in this model)")
    groups: dict[tuple[str, str], list[str]] = {}
    for dt, g in table["gemm"].items():
        if dt not in used and (g != "none" or table["dequant"][dt] != "none"):
            groups.setdefault((g, table["dequant"][dt]), []).append(dt)
    for (g, dq), dts in groups.items():
        lines.append(f"  other: gemm={g} dequant={dq}: {' '.join(dts)}")
    return lines


def device_report(profile: Profile, tensors: list[Mapping], config: Mapping, plan: Mapping[str, int],
                  ctx: int, ram_gb: float | None = None) -> list[str]:
    """Lines for `edgerun info --device NAME`: fit of the memory plan, kernel level, decode roofline."""
    budget = profile.budget_bytes(ram_gb)
    need = plan["total"] if "total" in plan else sum(plan.values())
    ram = min(profile.ram_gb) if ram_gb is None else ram_gb
    fit = "fits" if need <= budget else "does NOT fit"
    dtypes = sorted({t["dtype"] for t in tensors if len(t["shape"]) > 1})
    slow = [d for d in dtypes if d not in profile.fast_dtypes]
    b = decode_bytes(tensors, config, ctx // 2)
    lines = [f"{profile.name}: {profile.board}, {profile.cpu}; kernels {profile.kernel_level}",
             f"  memory: model needs {need / 1e6:.1f} MB (weights {plan.get('resident', 0) / 1e6:.1f} + KV "
             f"{plan.get('kv_cache', 0) / 1e6:.1f} + scratch {plan.get('scratch', 0) / 1e6:.1f}, ctx {ctx}); "
             f"{ram:g} GB board less {profile.os_reserve_mb:.0f} MB for the OS = {budget / 1e6:.0f} MB: {fit}",
             f"  weight types {', '.join(dtypes)}: " + (f"no SIMD kernel at {profile.kernel_level} for {', '.join(slow)} "
                                                        "(scalar reference)" if slow else "all have SIMD kernels"),
             f"  decode roofline at position {ctx // 2}: {b / 1e6:.1f} MB/token -> "
             f"{roofline_tok_s(b, profile.realistic_gbs):.1f} tok/s at the board's realistic {profile.realistic_gbs:g} GB/s, "
             f"{roofline_tok_s(b, profile.peak_gbs):.1f} at its {profile.peak_gbs:g} GB/s peak"]
    return lines


def model_device_report(model, device: str, ram_gb: float | None = None) -> list[str]:
    """device_report for a loaded edgerun.Model: its file re-planned with the board's thread count."""
    from . import _core
    from .model import Model

    profile = get_profile(device)
    info = _core.file_info(model.path)
    on_board = Model(model.path, threads=profile.cores, ctx=model.ctx)
    return device_report(profile, info["tensors"], model.config, on_board.memory_plan, model.ctx, ram_gb)


# ---- running cross-built binaries under qemu-user ------------------------------------------------------

def elf_is_dynamic(path: str) -> bool:
    """True when the ELF file at `path` asks for a program interpreter (PT_INTERP), i.e. needs qemu -L."""
    import struct

    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            raise ValueError(f"{path}: not a 64-bit ELF file")
        end = "<" if head[5] == 1 else ">"
        phoff, = struct.unpack_from(end + "Q", head, 32)
        phentsize, phnum = struct.unpack_from(end + "HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return any(struct.unpack_from(end + "I", table, i * phentsize)[0] == 3 for i in range(phnum))  # PT_INTERP


def qemu_argv(profile: Profile, exe: str, plugin: str | None = None, cpu: str | None = None) -> list[str]:
    """argv prefix that runs the cross-built `exe` as on `profile` (qemu-user; -L only for dynamic binaries)."""
    if profile.qemu is None:
        raise ValueError(f"{profile.name} runs natively (no [qemu] table)")
    argv = [profile.qemu.binary, "-cpu", cpu or profile.qemu.cpu]
    if elf_is_dynamic(exe):
        argv += ["-L", profile.qemu.sysroot]
    if plugin:
        argv += ["-plugin", plugin]
    return argv + [exe]
