"""Dense layers streamed through a window of buffers (csrc/layer_stream.h) via _core.LayerStream.

Every tensor's bytes read through a layer buffer equal the file's; the window reads ahead (hits after the
first layer); each layer's range is the aligned hull of its tensors; faults (truncated file, every buffer
pinned) are clear errors, never a crash or a hang.
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from edgerun import _core
from edgeconv import format as fmt

PAGE = 4096


def write_dense(path, L=5, D=64, seed=0, alignment=64):
    rng = np.random.default_rng(seed)
    tensors = [("tok_embd", rng.standard_normal((32, D)).astype(np.float32))]
    for i in range(L):
        tensors += [(f"blk.{i}.attn_norm", rng.standard_normal(D).astype(np.float32)),
                    (f"blk.{i}.attn_q", rng.standard_normal((D, D)).astype(np.float32)),
                    (f"blk.{i}.ffn_up", rng.standard_normal((3 * D + 16 * i, D)).astype(np.float32))]
    tensors.append(("output_norm", np.ones(D, np.float32)))
    with fmt.EdgeWriter(path, alignment=alignment) as w:
        w.add_metadata("general.architecture", "llama")
        w.add_metadata("llm.n_layers", L)
        for name, a in tensors:
            w.declare(name, "f32", a.shape)
        w.begin()
        for name, a in tensors:
            w.write_tensor(name, a)
    return path


def wait_for(cond, timeout=5.0):
    t0 = time.time()
    while not cond():
        assert time.time() - t0 < timeout
        time.sleep(0.001)


def layer_tensors(path, i):
    return [t for t in _core.file_info(path)["tensors"] if t["name"].startswith(f"blk.{i}.")]


def check_layer(ls, path, raw, i):
    for t in layer_tensors(path, i):
        got = ls.read(i, t["offset"], t["nbytes"])
        assert got == raw[t["offset"]:t["offset"] + t["nbytes"]], (i, t["name"])


@pytest.mark.parametrize("window,threads", [(1, 1), (2, 2), (3, 1)])
def test_layers_read_exactly_and_ahead(tmp_path, window, threads):
    p = write_dense(str(tmp_path / "d.edge"))
    raw = open(p, "rb").read()
    ls = _core.LayerStream(p, window=window, io_threads=threads)
    assert ls.n_layers == 5 and ls.total_bytes == window * ls.buffer_bytes
    for i in range(5):
        b, e = ls.range(i)
        ts = layer_tensors(p, i)
        lo, hi = min(t["offset"] for t in ts), max(t["offset"] + t["nbytes"] for t in ts)
        assert b % PAGE == 0 and e % PAGE == 0 and b <= lo < b + PAGE and hi <= e < hi + PAGE
    for token in range(3):
        for i in range(5):
            ls.acquire(i)
            check_layer(ls, p, raw, i)
            g = token * 5 + i
            # "compute" until the read-ahead of layers i+1 .. i+W-1 (cyclic) has landed
            wait_for(lambda: ls.stats()["reads"] >= g + window)
            ls.release(i)
            # released: the window moved on to i+1 .. i+W (W = 1: the next layer is read now)
            wait_for(lambda: ls.stats()["reads"] >= g + 1 + window)
    s = ls.stats()
    assert s["hits"] + s["misses"] == 15 and s["retries"] == 0
    assert s["misses"] == 1, s  # only the very first layer
    assert s["reads"] == 15 + window, s  # every layer once per token, plus the read-ahead into token 4


def test_acquire_holds_previous_layer_while_next_loads(tmp_path):
    """The model may keep layer i pinned while it acquires i+1 (W >= 2)."""
    p = write_dense(str(tmp_path / "h.edge"))
    raw = open(p, "rb").read()
    ls = _core.LayerStream(p, window=2)
    ls.acquire(0)
    for i in range(1, 5):
        ls.acquire(i)
        check_layer(ls, p, raw, i - 1)  # still valid
        check_layer(ls, p, raw, i)
        ls.release(i - 1)
    ls.release(4)


def test_every_buffer_pinned_is_an_error(tmp_path):
    p = write_dense(str(tmp_path / "w.edge"))
    ls = _core.LayerStream(p, window=1)
    ls.acquire(0)
    with pytest.raises(_core.EdgeError, match="all 1 layer buffers are pinned"):
        ls.acquire(1)
    ls.release(0)
    ls.acquire(1)


def test_truncated_file_is_a_clear_error(tmp_path):
    p = write_dense(str(tmp_path / "t.edge"), L=4, D=128)
    raw = open(p, "rb").read()
    ls = _core.LayerStream(p, window=2)
    b3, _ = ls.range(3)
    tensors = {i: layer_tensors(p, i) for i in range(4)}
    lo3 = min(t["offset"] for t in tensors[3])
    ls.acquire(0)
    ls.release(0)
    os.truncate(p, lo3 + 100)  # layer 3's tensors are cut; layer 2 (which may share its page) is whole
    for i in (1, 2):
        ls.acquire(i)
        for t in tensors[i]:
            assert ls.read(i, t["offset"], t["nbytes"]) == raw[t["offset"]:t["offset"] + t["nbytes"]]
        ls.release(i)
    with pytest.raises(_core.BadFileError, match=rf"layer 3 \(file bytes {b3}\.\..*short read"):
        ls.acquire(3)
    with pytest.raises(_core.BadFileError, match="layer 3"):  # reported again, never served
        ls.acquire(3)


def test_layer_without_tensors_is_rejected(tmp_path):
    p = str(tmp_path / "m.edge")
    with fmt.EdgeWriter(p) as w:
        w.add_metadata("llm.n_layers", 2)
        w.declare("blk.0.attn_q", "f32", (4, 4))
        w.begin()
        w.write_tensor("blk.0.attn_q", np.zeros((4, 4), np.float32))
    with pytest.raises(_core.BadFileError, match=r"layer 1 has no tensors"):
        _core.LayerStream(p)
