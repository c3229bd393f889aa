"""The .edge writer and validating reader (converter/edgeconv/format.py) against docs/FORMAT.md.

Round trips of every metadata type and several tensor dtypes; corrupt/truncated/inconsistent files must
fail with a ValueError that says what is wrong; the writer is atomic (a failure at any point leaves no
output and no temp file, and an existing file intact), including KeyboardInterrupt and a full disk.
"""
from __future__ import annotations

import errno
import os
import struct
import zlib

import numpy as np
import pytest

from edgeconv import format as fmt
from edgeconv.quant import dequantize, quantize

RNG = np.random.default_rng(1234)

META = [
    ("general.architecture", fmt.STR, "llama"),
    ("general.name", fmt.STR, "tést ✓ 模型"),  # UTF-8 beyond ASCII
    ("empty.str", fmt.STR, ""),
    ("llm.n_layers", fmt.I64, 30),
    ("neg.i64", fmt.I64, -(2 ** 62)),
    ("llm.rope_theta", fmt.F64, 100000.0),
    ("tiny.f64", fmt.F64, 1e-300),
    ("tokenizer.token_type", fmt.ARR_I64, [1, 3, -1, 2 ** 40]),
    ("tokenizer.scores", fmt.ARR_F32, [0.5, -1000.0, 3.25]),
    ("tokenizer.tokens", fmt.ARR_STR, ["<|endoftext|>", "Ġthe", "", "é"]),
    ("empty.arr_i64", fmt.ARR_I64, []),
    ("empty.arr_f32", fmt.ARR_F32, []),
    ("empty.arr_str", fmt.ARR_STR, []),
]


def _tensors():
    return {
        "tok_embd": ("q8_0", RNG.standard_normal((48, 64)).astype(np.float32)),
        "output_norm": ("f32", RNG.standard_normal(64).astype(np.float32)),
        "blk.0.attn_q": ("int4_64", RNG.standard_normal((32, 128)).astype(np.float32)),
        "blk.0.ffn_up": ("f16", RNG.standard_normal((3, 96)).astype(np.float32)),
        "blk.0.ffn_down": ("mxfp4", RNG.standard_normal((2, 5, 32)).astype(np.float32)),
    }


def write_file(path, tensors=None, meta=META, alignment=64):
    tensors = _tensors() if tensors is None else tensors
    with fmt.EdgeWriter(path, alignment=alignment) as w:
        for k, t, v in meta:
            w.add_metadata(k, v, t)
        for name, (dt, a) in tensors.items():
            w.declare(name, dt, a.shape)
        w.begin()
        for name, (dt, a) in tensors.items():
            w.write_tensor(name, quantize(a.reshape(-1, a.shape[-1]), dt))
    return tensors


def test_round_trip_metadata_and_tensors(tmp_path):
    p = tmp_path / "m.edge"
    tensors = write_file(p)
    with fmt.EdgeFile(p) as f:
        for k, t, v in META:
            assert f.meta_types[k] == fmt.META_TYPE_NAMES[t]
            got = f.metadata[k]
            if t == fmt.ARR_F32:
                np.testing.assert_array_equal(got, np.asarray(v, np.float32))
                assert got.dtype == np.float32
            elif t == fmt.ARR_I64:
                np.testing.assert_array_equal(got, np.asarray(v, np.int64))
                assert got.dtype == np.int64
            else:
                assert got == v
        assert [t.name for t in f.tensors] == list(tensors)
        for name, (dt, a) in tensors.items():
            t = f.tensor(name)
            assert t.dtype == dt and t.shape == a.shape and t.offset % 64 == 0
            q = quantize(a.reshape(-1, a.shape[-1]), dt)
            assert bytes(f.raw(name)) == q.tobytes()
            np.testing.assert_array_equal(f.array(name), dequantize(q, dt, a.shape))
            assert t.crc == zlib.crc32(q.tobytes())
        assert f.verify() == []
        n = sum(a.size for _, a in tensors.values())
        assert f.header["file_size"] == os.path.getsize(p)
        assert f.metadata["quant.bits_per_weight"] == pytest.approx(8 * os.path.getsize(p) / n, rel=1e-15)
        assert f.bits_per_weight == f.metadata["quant.bits_per_weight"]
    assert not [x for x in os.listdir(tmp_path) if x != "m.edge"]  # no temp file left behind


def test_page_alignment(tmp_path):
    p = tmp_path / "m.edge"
    write_file(p, alignment=4096)
    with fmt.EdgeFile(p) as f:
        assert all(t.offset % 4096 == 0 for t in f.tensors)
        assert f.verify() == []
    with pytest.raises(ValueError, match="multiple of 64"):
        fmt.EdgeWriter(tmp_path / "x.edge", alignment=100)


def test_cpp_reader_agrees(tmp_path):
    """The C++ reader (edgerun._core.file_info, when built) sees the same metadata and tensor table."""
    core = _cpp_core()
    if core is None:
        pytest.skip("edgerun._core with file_info is not built")
    p = tmp_path / "m.edge"
    write_file(p)
    info = core.file_info(str(p))
    with fmt.EdgeFile(p) as f:
        assert info["size"] == f.header["file_size"]
        assert [(t["name"], t["dtype"], tuple(t["shape"]), t["offset"], t["nbytes"], t["crc32"])
                for t in info["tensors"]] == [(t.name, t.dtype, t.shape, t.offset, t.nbytes, t.crc) for t in f.tensors]
        assert set(info["metadata"]) == set(f.metadata)
        for k, v in f.metadata.items():
            got = info["metadata"][k]
            if isinstance(v, np.ndarray):
                np.testing.assert_array_equal(np.asarray(got), v)
            elif isinstance(v, list):  # ARR_STR comes back as bytes from C++
                assert [g.decode() if isinstance(g, bytes) else g for g in got] == v, k
            else:
                assert (got.decode() if isinstance(got, bytes) else got) == v, k
    core.verify(str(p))


def test_header_layout_matches_spec(tmp_path):
    p = tmp_path / "m.edge"
    write_file(p)
    b = p.read_bytes()
    assert b[:8] == b"EDGEFILE"
    version, flags, file_size, meta_off, meta_size, table_off, table_size, n, mcrc, tcrc, hcrc = \
        struct.unpack_from("<IIQQQQQIIII", b, 8)
    assert (version, flags, file_size, n) == (1, 0, len(b), 5)
    assert hcrc == zlib.crc32(b[:68]) and mcrc == zlib.crc32(b[meta_off:meta_off + meta_size])
    assert tcrc == zlib.crc32(b[table_off:table_off + table_size])
    assert b[72:128] == bytes(56) and meta_off == 128
    (n_entries,) = struct.unpack_from("<I", b, meta_off)
    assert n_entries == len(META) + 1  # + quant.bits_per_weight


# ---- corruption -------------------------------------------------------------------------------

def _hdr(b: bytes) -> dict:
    names = ("version", "flags", "file_size", "meta_off", "meta_size", "table_off", "table_size", "n",
             "meta_crc", "table_crc", "header_crc")
    return dict(zip(names, struct.unpack_from("<IIQQQQQIIII", b, 8)))


def _reseal(b: bytearray) -> bytearray:
    """Recompute the three section CRCs so only the deliberate inconsistency remains."""
    h = _hdr(bytes(b))
    struct.pack_into("<I", b, 60, zlib.crc32(bytes(b[h["meta_off"]:h["meta_off"] + h["meta_size"]])))
    struct.pack_into("<I", b, 64, zlib.crc32(bytes(b[h["table_off"]:h["table_off"] + h["table_size"]])))
    struct.pack_into("<I", b, 68, zlib.crc32(bytes(b[:68])))
    return b


def _table_entries(b: bytes) -> list[dict]:
    """Byte positions of each table entry's fields."""
    h = _hdr(b)
    pos, out = h["table_off"], []
    for _ in range(h["n"]):
        (nlen,) = struct.unpack_from("<H", b, pos)
        e = {"name": b[pos + 2:pos + 2 + nlen].decode(), "dtype_at": pos + 2 + nlen}
        ndim = struct.unpack_from("<I", b, e["dtype_at"] + 4)[0]
        e["shape_at"] = e["dtype_at"] + 8
        e["offset_at"] = e["shape_at"] + 8 * ndim
        e["nbytes_at"] = e["offset_at"] + 8
        e["offset"], e["nbytes"] = struct.unpack_from("<QQ", b, e["offset_at"])
        out.append(e)
        pos = e["nbytes_at"] + 12
    return out


@pytest.fixture()
def good(tmp_path):
    p = tmp_path / "good.edge"
    write_file(p)
    return p, bytearray(p.read_bytes())


def _cpp_core():
    try:
        from edgerun import _core
    except ImportError:
        return None
    return _core if hasattr(_core, "file_info") else None


def _expect(tmp_path, data: bytes, match: str):
    bad = tmp_path / "bad.edge"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=match) as ei:
        fmt.EdgeFile(bad)
    assert str(bad) in str(ei.value)  # the message names the file
    core = _cpp_core()
    if core is not None:  # the C++ loader must refuse the same file
        with pytest.raises(core.EdgeError):
            core.file_info(str(bad))


def test_corrupt_header_crc(good, tmp_path):
    p, b = good
    b[16] ^= 1  # file_size, CRC not resealed
    _expect(tmp_path, b, "header CRC")


def test_corrupt_metadata_crc(good, tmp_path):
    p, b = good
    b[_hdr(b)["meta_off"] + 20] ^= 0x40
    _expect(tmp_path, b, "metadata CRC")


def test_corrupt_table_crc(good, tmp_path):
    p, b = good
    b[_hdr(b)["table_off"] + 3] ^= 0x01
    _expect(tmp_path, b, "tensor table CRC")


def test_truncated_file(good, tmp_path):
    p, b = good
    _expect(tmp_path, b[:-1], "truncated")
    _expect(tmp_path, b[:100], "too small")
    _expect(tmp_path, b + b"\0", "trailing data")


def test_bad_magic_and_version(good, tmp_path):
    p, b = good
    c = bytearray(b)
    c[0:8] = b"GGUF\0\0\0\0"
    _expect(tmp_path, c, "not a .edge file")
    c = bytearray(b)
    struct.pack_into("<I", c, 8, 2)
    _expect(tmp_path, _reseal(c), "unsupported .edge version 2")
    c = bytearray(b)
    struct.pack_into("<I", c, 12, 1)
    _expect(tmp_path, _reseal(c), "flags")


def test_tensor_offset_past_end(good, tmp_path):
    p, b = good
    last = _table_entries(bytes(b))[-1]
    struct.pack_into("<Q", b, last["offset_at"], (len(b) // 64 + 1) * 64)
    _expect(tmp_path, _reseal(b), "runs past the end")


def test_section_past_end(good, tmp_path):
    p, b = good
    c = bytearray(b)
    struct.pack_into("<Q", c, 32, len(b))  # meta_size
    _expect(tmp_path, _reseal(c), "metadata section .* lies outside")
    c = bytearray(b)
    struct.pack_into("<Q", c, 40, 64)  # table_offset inside the header
    _expect(tmp_path, _reseal(c), "tensor table section .* lies outside")


def test_inconsistent_tensor_entries(good, tmp_path):
    p, b = good
    ents = _table_entries(bytes(b))
    c = bytearray(b)
    struct.pack_into("<Q", c, ents[0]["nbytes_at"], ents[0]["nbytes"] - 1)
    _expect(tmp_path, _reseal(c), "nbytes")
    c = bytearray(b)
    struct.pack_into("<Q", c, ents[1]["offset_at"], ents[0]["offset"])  # on top of tensor 0
    _expect(tmp_path, _reseal(c), "overlapping")
    c = bytearray(b)
    struct.pack_into("<Q", c, ents[1]["offset_at"], ents[1]["offset"] + 4)
    _expect(tmp_path, _reseal(c), "not a multiple of 64")
    c = bytearray(b)
    struct.pack_into("<I", c, ents[0]["dtype_at"], 99)
    _expect(tmp_path, _reseal(c), "unknown dtype id 99")
    c = bytearray(b)
    struct.pack_into("<I", c, 56, 10 ** 6)  # n_tensors far beyond what the table holds
    _expect(tmp_path, _reseal(c), "cannot fit")


def test_cpp_rejects_overlapping_tensors(good, tmp_path):
    core = _cpp_core()
    if core is None:
        pytest.skip("edgerun._core with file_info is not built")
    p, b = good
    ents = _table_entries(bytes(b))
    struct.pack_into("<Q", b, ents[1]["offset_at"], ents[0]["offset"])
    bad = tmp_path / "overlap.edge"
    bad.write_bytes(bytes(_reseal(b)))
    with pytest.raises(core.EdgeError):
        core.file_info(str(bad))


def test_metadata_count_that_cannot_fit(good, tmp_path):
    p, b = good
    struct.pack_into("<I", b, _hdr(b)["meta_off"], 0xFFFFFFF0)
    _expect(tmp_path, _reseal(b), "cannot fit")


def test_verify_detects_flipped_data_byte(good, tmp_path):
    p, b = good
    e = _table_entries(bytes(b))[2]
    b[e["offset"] + 5] ^= 0x10
    bad = tmp_path / "flip.edge"
    bad.write_bytes(bytes(b))
    with fmt.EdgeFile(bad) as f:  # loads: tensor data is not checked at open
        assert f.verify() == [e["name"]]


# ---- writer contract ----------------------------------------------------------------------------

def test_writer_rejects_misuse(tmp_path):
    p = tmp_path / "w.edge"
    with pytest.raises(ValueError, match="not a multiple of the int4_64 block"):
        fmt.EdgeWriter(p).declare("x", "int4_64", (4, 96))
    with pytest.raises(ValueError, match="duplicate metadata"):
        w = fmt.EdgeWriter(p)
        w.add_metadata("a", 1)
        w.add_metadata("a", 2)
    with pytest.raises(TypeError, match="explicit type"):
        fmt.EdgeWriter(p).add_metadata("a", [])
    with pytest.raises(ValueError, match="declaration order"):
        with fmt.EdgeWriter(p) as w:
            w.declare("a", "f32", (4,))
            w.declare("b", "f32", (4,))
            w.begin()
            w.write_tensor("b", np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="expected 16"):
        with fmt.EdgeWriter(p) as w:
            w.declare("a", "f32", (4,))
            w.begin()
            w.write_tensor("a", np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="were not written"):
        with fmt.EdgeWriter(p) as w:
            w.declare("a", "f32", (4,))
            w.begin()
    assert os.listdir(tmp_path) == []


def _old_file(tmp_path):
    p = tmp_path / "out.edge"
    write_file(p, tensors={"x": ("f32", np.arange(16, dtype=np.float32))})
    return p, p.read_bytes()


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_atomic_write_failure_mid_write(tmp_path, exc):
    for existing in (False, True):
        if existing:
            p, old = _old_file(tmp_path)
        else:
            p, old = tmp_path / "new.edge", None
        tensors = _tensors()
        with pytest.raises(type(exc)):
            with fmt.EdgeWriter(p) as w:
                for name, (dt, a) in tensors.items():
                    w.declare(name, dt, a.shape)
                w.begin()
                name, (dt, a) = next(iter(tensors.items()))
                w.write_tensor(name, quantize(a, dt))  # some data is on disk in the temp file
                raise exc
        if existing:
            assert p.read_bytes() == old  # the old file survives intact
            assert fmt.EdgeFile(p).verify() == []
        else:
            assert not p.exists()
        assert sorted(os.listdir(tmp_path)) == ([p.name] if existing else [])  # temp file removed


def test_disk_full_is_reported_and_cleaned_up(tmp_path, monkeypatch):
    p, old = _old_file(tmp_path)

    class FullDisk:
        """A file object that accepts 300 bytes and then fails like a full disk."""

        def __init__(self, f):
            self.f, self.n = f, 0

        def write(self, data):
            self.n += len(memoryview(data))
            if self.n > 300:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(data)

        def __getattr__(self, k):
            return getattr(self.f, k)

    real_fdopen = os.fdopen
    monkeypatch.setattr(fmt.os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)))
    with pytest.raises(OSError) as ei:
        write_file(p)
    assert ei.value.errno == errno.ENOSPC
    assert f"disk full while writing {p}; nothing written" in str(ei.value)
    assert p.read_bytes() == old
    assert os.listdir(tmp_path) == [p.name]
