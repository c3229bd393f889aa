"""atheris fuzz targets for the Python importers: every input must convert, or fail with the converter's
one-line error — a ValueError (GGUFFileError for GGUF, EdgeError from the core) whose message names the
file or folder, which the CLIs print as `edgeconv: error: <line>` with exit code 2 (cli_common.error_line).
Any other exception (IndexError, KeyError, struct.error, RecursionError, ...) or a ValueError that does not
name the input is a finding: atheris stops and writes the input.

    python tests/fuzz/py_targets.py TARGET [libFuzzer flags] [CORPUS_DIR ...]
    (tests/fuzz/run.py runs every target over its corpus; use that)

Targets (each writes the input where the importer expects it, then calls edgeconv.export.export with
recipe q8 into a scratch .edge):
  gguf         the input is a .gguf file
  pt           the input is a .pt checkpoint (torch.load weights_only; config inside)
  safetensors  the input is model.safetensors of an otherwise valid tiny HF folder (tests/fuzz/data/hf_tiny)
  hf_config    the input is config.json of that folder
  onnx         the input is a .onnx file: onnx.load + onnx.checker (only the onnx package's own errors,
               DecodeError / ValidationError / ValueError, are expected) and the converter's front door
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HF_TINY = os.path.join(ROOT, "tests", "fuzz", "data", "hf_tiny")
if any(n.startswith("_core") and n.endswith(".so") for n in os.listdir(os.path.join(ROOT, "runtime", "edgerun"))):
    sys.path[:0] = [os.path.join(ROOT, "runtime"), os.path.join(ROOT, "converter")]  # a developer build, as conftest

_scratch = tempfile.mkdtemp(prefix="edge_pyfuzz_", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)


class Finding(Exception):
    """A failure that is not the converter's clean one-line error."""


def _export(src: str, named: str) -> None:
    from edgeconv.export import export

    out = os.path.join(_scratch, "out.edge")
    try:
        export(src, out, recipe="q8", progress=False, log=lambda m: None)
    except ValueError as e:
        msg = " ".join(str(e).split())
        if named not in msg:
            raise Finding(f"{type(e).__name__} that does not name {named}: {msg[:500]}") from e
        if os.path.exists(out):
            raise Finding(f"{out} left behind after a failed export") from e
    else:
        os.remove(out)


def _file(name: str, data: bytes) -> str:
    path = os.path.join(_scratch, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _folder(replace: str, data: bytes) -> str:
    d = os.path.join(_scratch, "hf")
    if not os.path.isdir(d):
        shutil.copytree(HF_TINY, d)
    for n in os.listdir(HF_TINY):  # every fixed file back as it was (an export never writes here, but be sure)
        if n != replace:
            shutil.copyfile(os.path.join(HF_TINY, n), os.path.join(d, n))
    with open(os.path.join(d, replace), "wb") as f:
        f.write(data)
    return d


def fuzz_gguf(data: bytes) -> None:
    p = _file("m.gguf", data)
    _export(p, p)


def fuzz_pt(data: bytes) -> None:
    p = _file("m.pt", data)
    _export(p, p)


def fuzz_safetensors(data: bytes) -> None:
    d = _folder("model.safetensors", data)
    _export(d, d)


def fuzz_hf_config(data: bytes) -> None:
    d = _folder("config.json", data)
    _export(d, d)


def fuzz_onnx(data: bytes) -> None:
    import onnx
    from google.protobuf.message import DecodeError

    p = _file("m.onnx", data)
    try:
        m = onnx.load(p)
        onnx.checker.check_model(m)
    except (DecodeError, onnx.checker.ValidationError, ValueError, UnicodeDecodeError):
        pass
    _export(p, p)


TARGETS = {"gguf": fuzz_gguf, "pt": fuzz_pt, "safetensors": fuzz_safetensors, "hf_config": fuzz_hf_config,
           "onnx": fuzz_onnx}


def plain_fuzz(target, argv: list[str]) -> int:
    """The engine without atheris: replay every corpus file, then -runs=N seeded mutants of them (the
    mutations of csrc/fuzz/standalone_main.cpp), stopping after -max_total_time=S; -timeout=T per input.
    A finding writes the input to <-artifact_prefix>crash-<n> (timeout-<n>), prints it and returns 1."""
    import random
    import signal
    import time
    import traceback

    flags = {a.split("=", 1)[0][1:]: a.split("=", 1)[1] for a in argv if a.startswith("-") and "=" in a}
    runs, max_time = int(flags.get("runs", 0)), float(flags.get("max_total_time", 0))
    timeout, prefix = int(flags.get("timeout", 0)), flags.get("artifact_prefix", "")
    rng = random.Random(int(flags.get("seed", 1)))
    files = []
    for a in (a for a in argv if not a.startswith("-")):
        files += sorted(os.path.join(a, n) for n in os.listdir(a)) if os.path.isdir(a) else [a]
    corpus = [open(p, "rb").read() for p in files]

    def on_alarm(sig, frame):
        raise TimeoutError(f"one input ran longer than {timeout} s")

    signal.signal(signal.SIGALRM, on_alarm)
    interesting = [0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0xffff, 0x7fffffff, 1 << 31, (1 << 32) - 1, 1 << 32,
                   1 << 40, (1 << 64) - 1, 1 << 63]

    def mutate(b: bytearray) -> bytearray:
        for _ in range(rng.randint(1, 4)):
            at, span = rng.randrange(len(b) + 1), 1 + rng.randrange(8 if rng.random() < 0.5 else 256)
            k = rng.randrange(9)
            if k == 0 and b:
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            elif k == 1:
                w = 1 << rng.randrange(4)
                v = (rng.choice(interesting) + (rng.randrange(3) - 1 if rng.random() < 0.25 else 0)) % (1 << 64)
                n = min(w, len(b) - at)
                if n > 0:
                    b[at:at + n] = v.to_bytes(8, "little")[:n]
            elif k == 2:
                b[at:at + span] = bytes(len(b[at:at + span]))
            elif k == 3:
                b[at:at + span] = rng.randbytes(len(b[at:at + span]))
            elif k == 4 and b:
                del b[rng.randrange(len(b)):]
            elif k == 5:
                b[at:at] = rng.randbytes(span)
            elif k == 6:
                del b[at:at + span]
            elif k == 7 and at < len(b):
                dup = b[at:at + span]
                pos = rng.randrange(len(b) + 1)
                b[pos:pos] = dup
            elif k == 8:
                o = rng.choice(corpus)
                if o:
                    b = b[:at] + o[rng.randrange(len(o)):]
        return b

    t0, done = time.monotonic(), 0
    inputs = ((f"replay-{i}", c) for i, c in enumerate(corpus))
    fresh = ((f"{n}", None) for n in range(runs))
    import itertools

    for name, data in itertools.chain(inputs, fresh):
        if data is None:
            if max_time and time.monotonic() - t0 > max_time:
                break
            data = bytes(mutate(bytearray(rng.choice(corpus) if corpus else b"")))
        signal.alarm(timeout)
        try:
            target(data)
        except BaseException as e:
            signal.alarm(0)
            if isinstance(e, KeyboardInterrupt):
                raise
            kind = "timeout" if isinstance(e, TimeoutError) else "crash"
            path = f"{prefix}{kind}-{name}"
            with open(path, "wb") as f:
                f.write(data)
            traceback.print_exc()
            print(f"\n === Uncaught Python exception ({type(e).__name__}); input written to {path}", file=sys.stderr)
            return 1
        signal.alarm(0)
        done += 1
    secs = time.monotonic() - t0
    print(f"Done {done} runs in {int(secs)} second(s) ({done / max(secs, 1e-9):.1f} exec/s, {len(corpus)} corpus "
          f"files, plain engine)", file=sys.stderr)
    return 0


def _preload(target) -> None:
    """The libraries a target imports lazily, imported before the first input is timed."""
    import edgeconv.export  # noqa: F401

    if target is fuzz_pt:
        import torch  # noqa: F401
    if target is fuzz_onnx:
        import onnx  # noqa: F401


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(TARGETS)}}} [--plain] [libFuzzer flags] [corpus dirs]")
    target = TARGETS[sys.argv.pop(1)]
    import atexit

    atexit.register(shutil.rmtree, _scratch, True)
    plain = "--plain" in sys.argv
    if not plain:
        try:
            import atheris
        except ImportError:
            plain = True
    _preload(target)
    if plain:
        sys.exit(plain_fuzz(target, [a for a in sys.argv[1:] if a != "--plain"]))
    with atheris.instrument_imports(include=["edgeconv", "gguf", "safetensors"]):
        import edgeconv.export  # noqa: F401
        import edgeconv.sources.gguf  # noqa: F401
        import edgeconv.sources.hf  # noqa: F401
        import edgeconv.sources.torch_ckpt  # noqa: F401
        import gguf  # noqa: F401
    import edgerun  # noqa: F401  (the core, for the exporter's checks)
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
