"""Bad files and bad arguments reach the runtime (C++ loader, Model, edgert) as clear errors; the process
always survives. The converter-side reader has its own corruption tests in test_format.py."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import edgerun
from edgerun import _core
from edgeconv import format as fmt
from edgeconv.quant import quantize

D, FF, V, L = 64, 96, 128, 2
# Child processes import edgerun exactly as this one does (source tree or install).
CHILD_ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))


def write_model(path, arch="llama", **meta_over):
    # A file in the style written before the layout keys (no llm.norm / llm.ffn_act / llm.rope_type) on
    # purpose: the runtime reads them as their defaults. The converter's files carry all three.
    rng = np.random.default_rng(0)
    meta = {
        "general.architecture": arch, "llm.n_layers": L, "llm.d_model": D, "llm.n_heads": 4, "llm.n_kv_heads": 2,
        "llm.head_dim": 16, "llm.d_ff": FF, "llm.vocab_size": V, "llm.max_ctx": 64, "llm.rope_theta": 10000.0,
        "llm.rms_eps": 1e-5, "llm.qkv_bias": 0, "llm.qk_norm": 0, "llm.tied_head": 1,
    }
    meta.update(meta_over)
    tensors = {"tok_embd": ("q8_0", (V, D)), "output_norm": ("f32", (D,))}
    for i in range(L):
        p = f"blk.{i}."
        tensors.update({p + "attn_norm": ("f32", (D,)), p + "ffn_norm": ("f32", (D,)),
                        p + "attn_q": ("int4_32", (64, D)), p + "attn_k": ("int4_32", (32, D)),
                        p + "attn_v": ("q8_0", (32, D)), p + "attn_o": ("int4_64", (D, 64)),
                        p + "ffn_gate": ("mxfp4", (FF, D)), p + "ffn_up": ("f16", (FF, D)),
                        p + "ffn_down": ("q8_0", (D, FF))})
    with fmt.EdgeWriter(str(path)) as w:
        for k, v in meta.items():
            w.add_metadata(k, v)
        for name, (dt, shape) in tensors.items():
            w.declare(name, dt, shape)
        w.begin()
        for name, (dt, shape) in tensors.items():
            a = rng.standard_normal(shape).astype(np.float32) * (1.0 if len(shape) == 1 else 0.2)
            w.write_tensor(name, quantize(a.reshape(-1, shape[-1]), dt))
    return str(path)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("bad") / "good.edge")


def test_good_file_runs(good):
    m = edgerun.Model(good, threads=1)
    assert m.logits([1, 2, 3]).shape == (3, V)
    assert "checksums match" in _core.verify(good)


@pytest.mark.parametrize("cut", [0, 10, 127, 128, 500, -1, -64])
def test_truncated_file(good, tmp_path, cut):
    data = open(good, "rb").read()
    bad = tmp_path / "trunc.edge"
    bad.write_bytes(data[:cut] if cut >= 0 else data[:len(data) + cut])
    with pytest.raises(edgerun.BadFileError, match="truncated|smaller than the header|bytes but the file"):
        edgerun.Model(str(bad))


def test_wrong_magic_and_not_a_file(good, tmp_path):
    bad = tmp_path / "magic.edge"
    bad.write_bytes(b"GGUF" + open(good, "rb").read()[4:])
    with pytest.raises(edgerun.BadFileError, match="not an .edge file"):
        edgerun.Model(str(bad))
    with pytest.raises(FileNotFoundError):
        edgerun.Model(str(tmp_path / "missing.edge"))
    with pytest.raises(ValueError, match="not a regular file"):
        _core.Model(str(tmp_path))


def test_flipped_data_byte_fails_verify(good, tmp_path):
    bad = tmp_path / "flip.edge"
    data = bytearray(open(good, "rb").read())
    data[-7] ^= 0x10  # inside the last tensor
    bad.write_bytes(bytes(data))
    edgerun.Model(str(bad))  # loading does not read every page...
    with pytest.raises(edgerun.BadFileError, match="checksum"):
        _core.verify(str(bad))  # ...verify does
    r = subprocess.run([sys.executable, "-m", "edgerun.cli", "verify", str(bad)], capture_output=True, text=True,
                       env=CHILD_ENV)
    assert r.returncode == 1 and "checksum" in r.stderr


def test_unsupported_architecture(tmp_path):
    path = write_model(tmp_path / "moe.edge", arch="mixtral")
    with pytest.raises(edgerun.UnsupportedError, match="architecture 'mixtral' is not supported"):
        edgerun.Model(path)


@pytest.mark.parametrize("key,value", [("llm.n_heads", 0), ("llm.n_kv_heads", 3), ("llm.d_model", 1 << 40),
                                       ("llm.head_dim", 17), ("llm.rope_theta", -1.0)])
def test_absurd_hyper_parameters(tmp_path, key, value):
    path = write_model(tmp_path / "absurd.edge", **{key: value})
    with pytest.raises(edgerun.BadFileError):
        edgerun.Model(path)


def test_shape_mismatch_names_the_tensor(tmp_path):
    path = write_model(tmp_path / "shape.edge", **{"llm.d_ff": 128})
    with pytest.raises(edgerun.BadFileError, match="blk.0.ffn_gate"):
        edgerun.Model(path)


def test_random_corruption_never_crashes(good, tmp_path):
    """Hundreds of random bit flips in the header, metadata and table: every open raises an EdgeError. Run in a child process so a crash would show as a failure instead of killing pytest."""
    script = textwrap.dedent(f"""
        import random, sys
        from edgerun import _core
        data = open({good!r}, "rb").read()
        import struct
        meta_off, meta_size, table_off, table_size = struct.unpack_from("<4Q", data, 24)
        end = max(meta_off + meta_size, table_off + table_size)
        # every byte of the header, metadata and table, except the header CRC itself (resealed below)
        positions = [i for i in range(end) if not 68 <= i < 72]
        rng = random.Random(0)
        ok = errors = 0
        for i in range(300):
            b = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                b[rng.choice(positions)] ^= 1 << rng.randrange(8)
            if i % 3 == 0:  # reseal the header CRC so deeper checks run too
                import zlib, struct
                struct.pack_into("<I", b, 68, zlib.crc32(bytes(b[:68])))
            p = {str(tmp_path / 'fuzz.edge')!r}
            open(p, "wb").write(b)
            try:
                _core.Model(p, threads=1).eval([1, 2], False)
                ok += 1
            except (ValueError, OSError):
                errors += 1
        print(ok, errors)
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=CHILD_ENV)
    assert r.returncode == 0, r.stderr[-2000:]
    ok, errors = map(int, r.stdout.split())
    # Header, metadata and table are covered by CRCs and checked fields: every flip is caught, none crashed.
    assert ok == 0 and errors == 300


def test_edgert_cli_reports_errors(good, tmp_path):
    exe = shutil.which("edgert") or os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                   "build", "dev", "edgert")
    if not os.path.exists(exe):
        pytest.skip("edgert is not built/installed")
    bad = tmp_path / "t.edge"
    bad.write_bytes(open(good, "rb").read()[:300])
    r = subprocess.run([exe, "generate", str(bad), "-p", "hi"], capture_output=True, text=True)
    assert r.returncode == 1 and "truncated" in r.stderr
    r = subprocess.run([exe, "bench", good, "--prompt-tokens", "8", "--gen-tokens", "4", "-t", "1", "--repeat", "2"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and json.loads(r.stdout)["repeat"] == 2 and json.loads(r.stdout)["decode_tok_s"] > 0
    r = subprocess.run([exe, "bench", good, "--repeat", "0"], capture_output=True, text=True)
    assert r.returncode == 2 and "--repeat 0: must be 1 to 1000" in r.stderr


@pytest.mark.parametrize("key,value", [("llm.norm", "layer"), ("llm.ffn_act", "gelu_erf"), ("llm.rope_type", "interleaved")])
def test_unknown_layout_is_unsupported(tmp_path, key, value):
    path = write_model(tmp_path / "layout.edge", **{key: value})
    with pytest.raises(edgerun.UnsupportedError, match=key):
        edgerun.Model(path)


def test_layout_keys_replace_the_family_name(tmp_path):
    # a family the runtime has never heard of runs when its file declares a layout the runtime implements
    path = write_model(tmp_path / "newfamily.edge", arch="brandnew", **{"llm.norm": "rms", "llm.ffn_act": "silu",
                                                                          "llm.rope_type": "rotate_half"})
    m = edgerun.Model(path)
    assert m.logits([1, 2, 3]).shape[0] == 3
    # without layout keys the name must be one of the families that predate them
    with pytest.raises(edgerun.UnsupportedError, match="'brandnew' is not supported"):
        edgerun.Model(write_model(tmp_path / "old.edge", arch="brandnew"))
