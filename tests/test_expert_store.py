"""The MoE expert store (csrc/expert_store.h) through _core.ExpertStore, on tiny .edge files with blob tensors.

Decode exactness of every layout against an independent numpy decode of docs/MOE.md §3; cache behaviour
(hits, misses, evictions, pins, prefetch, low-bit serving); the lfru policy against lru on skewed traces
(the simulator and the real store); faults (NaN scale, truncated file, one corrupt expert) give clear
errors and never a crash; O_DIRECT / fadvise reads leave the blobs out of the page cache.
"""
from __future__ import annotations

import ctypes
import mmap
import os
import time

import numpy as np
import pytest

from edgerun import _core
from edgeconv import format as fmt

PAGE = 4096
RNG = np.random.default_rng(7)


# ---- independent numpy encoders / decoders of docs/MOE.md §3 ----------------------------------------------

def pad(n, a=PAGE):
    return (n + a - 1) // a * a


def random_int4_rows(rows, cols, rng):
    """int4_32 rows [rows, cols/32*18]: finite positive f16 scales, random nibbles."""
    nb = rows * cols // 32
    blk = rng.integers(0, 256, (nb, 18), dtype=np.uint8)
    d = rng.uniform(0.01, 1.0, nb).astype(np.float16)
    blk[:, :2] = d.view(np.uint8).reshape(nb, 2)
    return blk.reshape(rows, cols // 32 * 18)


def random_q8_rows(rows, cols, rng):
    nb = rows * cols // 32
    blk = rng.integers(0, 256, (nb, 34), dtype=np.uint8)
    blk[:, :2] = rng.uniform(0.01, 1.0, nb).astype(np.float16).view(np.uint8).reshape(nb, 2)
    return blk.reshape(rows, cols // 32 * 34)


def random_f16_rows(rows, cols, rng):
    return rng.standard_normal((rows, cols)).astype(np.float16).view(np.uint8).reshape(rows, cols * 2)


ROW_MAKERS = {"int4_32": (random_int4_rows, 18), "q8_0": (random_q8_rows, 34), "f16": (random_f16_rows, None)}


def row_bytes(dtype, cols):
    return cols * 2 if dtype == "f16" else cols // 32 * ROW_MAKERS[dtype][1]


def concat_blob(mats, dtype, F, D):
    shapes = [(F, D), (F, D), (D, F)]
    offs, pos = [], 0
    for r, c in shapes:
        pos = pad(pos, 64)
        offs.append(pos)
        pos += r * row_bytes(dtype, c)
    out = np.zeros(pad(pos), np.uint8)
    for m, o in zip(mats, offs):
        out[o:o + m.size] = m.reshape(-1)
    return out


def planes_pack(p):
    """[nb, 32] 2-bit values -> [nb, 8]: byte k holds elements k, k+8, k+16, k+24 in bits 0-1 .. 6-7."""
    out = np.zeros((p.shape[0], 8), np.uint8)
    for k in range(8):
        for j in range(4):
            out[:, k] |= (p[:, k + 8 * j] & 3) << (2 * j)
    return out


def planes4_blob(mats, F, D):
    blk = np.concatenate([m.reshape(-1, 18) for m in mats])
    nb = blk.shape[0]
    q = np.empty((nb, 32), np.uint8)
    q[:, :16] = blk[:, 2:] & 15
    q[:, 16:] = blk[:, 2:] >> 4
    a, b = pad(2 * nb), pad(8 * nb)
    out = np.zeros(a + 2 * b, np.uint8)
    out[:2 * nb] = blk[:, :2].reshape(-1)
    out[a:a + 8 * nb] = planes_pack(q >> 2).reshape(-1)
    out[a + b:a + b + 8 * nb] = planes_pack(q & 3).reshape(-1)
    return out


def int4_codes(m):
    blk = m.reshape(-1, 18)
    q = np.empty((blk.shape[0], 32), np.uint8)
    q[:, :16] = blk[:, 2:] & 15
    q[:, 16:] = blk[:, 2:] >> 4
    return blk[:, :2].copy(), q


def msb_view(m):
    """The int4_32 rows the planes4_msb view must produce: q = 4*(q >> 2) + 2, scales unchanged."""
    d, q = int4_codes(m)
    q = (q >> 2) * 4 + 2
    out = np.empty((q.shape[0], 18), np.uint8)
    out[:, :2] = d
    out[:, 2:] = q[:, :16] | (q[:, 16:] << 4)
    return out.reshape(m.shape)


# ---- file builder ------------------------------------------------------------------------------------------

class Moe:
    """A tiny MoE model's expert blobs: variants (name, blob, layout); mats[(l, e, blob)] = [gate, up, down]."""

    def __init__(self, L=3, E=6, k=2, F=64, D=96, variants=(("int4", "p4", "planes4"), ("int2", "p4", "planes4_msb")),
                 layers=None, plan=None, seed=0):
        self.L, self.E, self.k, self.F, self.D = L, E, k, F, D
        self.variants = list(variants)
        self.layers = layers if layers is not None else [1] * L
        self.plan = plan if plan is not None else [0] * (L * E)
        rng = np.random.default_rng(seed)
        self.mats, self.blobs = {}, {}
        blobs = {}
        for _, blob, layout in self.variants:
            blobs.setdefault(blob, layout)
        for l in range(L):
            if not self.layers[l]:
                continue
            for e in range(E):
                for blob, layout in blobs.items():
                    dt = "int4_32" if layout.startswith("planes4") else layout.split(":")[1]
                    mk = ROW_MAKERS[dt][0]
                    mats = [mk(F, D, rng), mk(F, D, rng), mk(D, F, rng)]
                    self.mats[(l, e, blob)] = mats
                    self.blobs[(l, e, blob)] = planes4_blob(mats, F, D) if layout == "planes4" else concat_blob(mats, dt, F, D)

    def expected(self, l, e, v):
        """(dtype, [gate, up, down] rows) the store must serve for variant v."""
        _, blob, layout = self.variants[v]
        mats = self.mats[(l, e, blob)]
        if layout == "planes4":
            return "int4_32", mats
        if layout == "planes4_msb":
            return "int4_32", [msb_view(m) for m in mats]
        return layout.split(":")[1], mats

    def write(self, path, skip=(), resize=None, meta_override=None):
        meta = {"general.architecture": "test_moe", "llm.n_layers": self.L, "llm.d_model": self.D,
                "moe.n_experts": self.E, "moe.n_experts_used": self.k, "moe.d_expert": self.F,
                "moe.layers": [int(x) for x in self.layers], "moe.variants": [v[0] for v in self.variants],
                "moe.variant_blob": [v[1] for v in self.variants], "moe.variant_layout": [v[2] for v in self.variants],
                "moe.plan": [int(x) for x in self.plan]}
        meta.update(meta_override or {})
        with fmt.EdgeWriter(path, alignment=PAGE) as w:
            for k, v in meta.items():
                if v is not None:
                    w.add_metadata(k, v)
            w.declare("tok_embd", "f32", (4, self.D))
            names = []
            for (l, e, blob), data in self.blobs.items():
                name = f"blk.{l}.exp.{e}.{blob}"
                if name in skip:
                    continue
                if resize and name in resize:
                    data = np.zeros(resize[name], np.uint8)
                w.declare(name, "blob", (data.size,))
                names.append((name, data))
            w.begin()
            w.write_tensor("tok_embd", np.zeros((4, self.D), np.float32))
            for name, data in names:
                w.write_tensor(name, data)
        return path

    def offset(self, path, l, e, blob):
        info = _core.file_info(path)
        return next(t["offset"] for t in info["tensors"] if t["name"] == f"blk.{l}.exp.{e}.{blob}")


def check_served(moe, got, l, e):
    v = got["variant"]
    dt, mats = moe.expected(l, e, v)
    for name, m in zip(("gate", "up", "down"), mats):
        g = got[name]
        assert g["dtype"] == dt
        assert g["data"].shape == m.shape, (name, g["data"].shape, m.shape)
        np.testing.assert_array_equal(g["data"], m, err_msg=f"layer {l} expert {e} {name} variant {v}")
    assert (got["gate"]["rows"], got["gate"]["cols"]) == (moe.F, moe.D)
    assert (got["down"]["rows"], got["down"]["cols"]) == (moe.D, moe.F)


def wait_reads(store, n, timeout=5.0):
    t0 = time.time()
    while store.stats()["reads"] < n:
        assert time.time() - t0 < timeout, store.stats()
        time.sleep(0.002)


# ---- decode exactness --------------------------------------------------------------------------------------

def test_planes4_and_msb_decode_exact(tmp_path):
    plan = list(RNG.integers(0, 2, 3 * 6))
    moe = Moe(plan=plan)
    path = moe.write(str(tmp_path / "p.edge"))
    store = _core.ExpertStore(path, 64 << 20)
    assert store.n_variants == 2
    for l in range(3):
        for e in range(6):
            assert store.default_variant(l, e) == plan[l * 6 + e]
            got = store.acquire(l, [e])
            assert got["expert"] == e and got["variant"] == plan[l * 6 + e]
            check_served(moe, got, l, e)
            store.release(l, e)
    s = store.stats()
    assert s["misses"] == 18 and s["hits"] == 0 and s["retries"] == 0
    # planes4_msb reads only the A+B prefix: 2 of the 3 sections.
    nb = 3 * 64 * 96 // 32
    full, prefix = pad(2 * nb) + 2 * pad(8 * nb), pad(2 * nb) + pad(8 * nb)
    assert s["bytes_read"] == sum(prefix if p else full for p in plan)


def test_concat_layouts_decode_exact(tmp_path):
    variants = [("q8", "q8", "concat:q8_0"), ("i4", "i4", "concat:int4_32"), ("f16", "h", "concat:f16")]
    plan = [i % 3 for i in range(2 * 4)]
    moe = Moe(L=2, E=4, F=64, D=96, variants=variants, plan=plan)
    path = moe.write(str(tmp_path / "c.edge"))
    store = _core.ExpertStore(path, 64 << 20, io_threads=1)
    assert store.io_buffer_bytes == 0  # concat is read straight into the slot
    for l in range(2):
        for e in range(4):
            got = store.acquire(l, [e])
            check_served(moe, got, l, e)
            store.release(l, e)


def test_matches_converter_blob_codec(tmp_path):
    """The converter's encoder (edgeconv.moe.blobs) and the runtime decode agree on the same bytes."""
    blobs = pytest.importorskip("edgeconv.moe.blobs")
    moe = Moe(L=1, E=2, plan=[0, 1])
    for key, mats in moe.mats.items():
        enc = blobs.encode_planes4(tuple(mats), moe.D, moe.F)
        np.testing.assert_array_equal(enc, moe.blobs[key])
    path = moe.write(str(tmp_path / "x.edge"))
    store = _core.ExpertStore(path, 16 << 20)
    for e, msb in ((0, False), (1, True)):
        got = store.acquire(0, [e])
        ref = blobs.decode_planes4(moe.blobs[(0, e, "p4")], moe.D, moe.F, msb=msb)
        for name, r in zip(("gate", "up", "down"), ref):
            np.testing.assert_array_equal(got[name]["data"], r)


# ---- validation at open ------------------------------------------------------------------------------------

def test_open_validates_metadata_and_blobs(tmp_path):
    moe = Moe(L=2, E=3)
    p = moe.write(str(tmp_path / "missing.edge"), skip={"blk.1.exp.2.p4"})
    with pytest.raises(_core.BadFileError, match=r"missing expert blob 'blk\.1\.exp\.2\.p4'"):
        _core.ExpertStore(p, 64 << 20)
    p = moe.write(str(tmp_path / "size.edge"), resize={"blk.0.exp.1.p4": 8192})
    with pytest.raises(_core.BadFileError, match=r"blk\.0\.exp\.1\.p4' has 8192 bytes; layout planes4 .* needs"):
        _core.ExpertStore(p, 64 << 20)
    p = moe.write(str(tmp_path / "arr.edge"), meta_override={"moe.variant_blob": ["p4"]})
    with pytest.raises(_core.BadFileError, match="of one length"):
        _core.ExpertStore(p, 64 << 20)
    p = moe.write(str(tmp_path / "layers.edge"), meta_override={"moe.layers": [1, 1, 1]})
    with pytest.raises(_core.BadFileError, match="moe.layers has 3 entries"):
        _core.ExpertStore(p, 64 << 20)
    p = moe.write(str(tmp_path / "plan.edge"), meta_override={"moe.plan": [0, 0, 0, 0, 0, 2]})
    with pytest.raises(_core.BadFileError, match=r"moe.plan\[5\] = 2"):
        _core.ExpertStore(p, 64 << 20)
    p = moe.write(str(tmp_path / "layout.edge"), meta_override={"moe.variant_layout": ["planes4", "planes3"]})
    with pytest.raises(_core.UnsupportedError, match="unknown expert layout 'planes3'"):
        _core.ExpertStore(p, 64 << 20)
    p = moe.write(str(tmp_path / "ok.edge"))
    with pytest.raises(_core.EdgeError, match="unknown expert cache policy"):
        _core.ExpertStore(p, 64 << 20, policy="fifo")


def test_dense_layers_have_no_blobs(tmp_path):
    moe = Moe(L=3, E=4, layers=[0, 1, 1])
    p = moe.write(str(tmp_path / "d.edge"))
    store = _core.ExpertStore(p, 64 << 20)
    with pytest.raises(_core.EdgeError, match="layer 0 is not an MoE layer"):
        store.acquire(0, [0])
    check_served(moe, store.acquire(1, [3]), 1, 3)


def test_cache_too_small_is_a_clear_error(tmp_path):
    moe = Moe(L=2, E=4, k=3)
    p = moe.write(str(tmp_path / "s.edge"))
    big = _core.ExpertStore(p, 1 << 30)
    slot = big.slot_bytes
    assert big.n_slots == 2 * 4 * 2  # capped at every (layer, expert, variant)
    with pytest.raises(_core.MemoryBudgetError, match=r"needs 3 slots.*raise --mem"):
        _core.ExpertStore(p, 3 * slot - 1)
    assert _core.ExpertStore(p, 3 * slot).n_slots == 3


# ---- cache behaviour ---------------------------------------------------------------------------------------

def test_hits_misses_evictions_and_pins(tmp_path):
    moe = Moe(L=2, E=6, k=2)
    p = moe.write(str(tmp_path / "h.edge"))
    slot = _core.ExpertStore(p, 1 << 30).slot_bytes
    store = _core.ExpertStore(p, 3 * slot, io_threads=2, policy="lru")  # lru: exact counts for a cyclic scan
    assert store.n_slots == 3
    pinned = store.acquire(0, [0])  # stays pinned throughout
    for rnd in range(3):
        for e in range(1, 6):
            store.begin_layer(1)
            got = store.acquire(1, [e])
            check_served(moe, got, 1, e)
            store.release(1, e)
    s = store.stats()
    assert s["misses"] == 1 + 15 and s["hits"] == 0  # 5 experts cycling through 2 free slots: all miss
    assert s["evictions"] == 15 - 2
    again = store.acquire(0, [0])  # the pinned one never left
    np.testing.assert_array_equal(again["gate"]["data"], pinned["gate"]["data"])
    s2 = store.stats()
    assert s2["hits"] == 1 and s2["reads"] == s["reads"]
    store.release(0, 0)
    store.release(0, 0)
    # released: now it may go
    for e in range(1, 6):
        store.acquire(1, [e])
        store.release(1, e)
    store.reset_stats()
    store.acquire(0, [0])
    assert store.stats()["misses"] == 1


def test_all_slots_pinned_is_an_error_not_a_hang(tmp_path):
    moe = Moe(L=1, E=4, k=2)
    p = moe.write(str(tmp_path / "a.edge"))
    slot = _core.ExpertStore(p, 1 << 30).slot_bytes
    store = _core.ExpertStore(p, 2 * slot)
    store.acquire(0, [0])
    store.acquire(0, [1])
    with pytest.raises(_core.MemoryBudgetError, match="all 2 slots are pinned"):
        store.acquire(0, [2])
    store.release(0, 1)
    check_served(moe, store.acquire(0, [2]), 0, 2)


def test_prefetch_is_used_and_ready_first(tmp_path):
    moe = Moe(L=2, E=8, k=2)
    p = moe.write(str(tmp_path / "f.edge"))
    store = _core.ExpertStore(p, 64 << 20)
    store.begin_layer(0)
    store.prefetch(0, [5, 6])
    store.prefetch(0, [5, 6, 99, -1])  # already in flight or absent ids: no duplicate reads
    wait_reads(store, 2)
    got = store.acquire(0, [1, 6])  # 6 is ready: served first although listed second
    assert got["expert"] == 6 and got["index"] == 1
    check_served(moe, got, 0, 6)
    got2 = store.acquire(0, [1, 5])
    assert got2["expert"] == 5
    s = store.stats()
    assert s["prefetch_issued"] == 2 and s["prefetch_used"] == 2 and s["hits"] == 2 and s["misses"] == 0
    assert s["reads"] == 2
    got3 = store.acquire(0, [1])
    check_served(moe, got3, 0, 1)
    assert store.stats()["misses"] == 1


def test_acquire_during_prefetch_read_is_not_duplicated(tmp_path):
    moe = Moe(L=1, E=16, k=4, F=256, D=512)
    p = moe.write(str(tmp_path / "dup.edge"))
    store = _core.ExpertStore(p, 256 << 20, io_threads=1)
    store.prefetch(0, list(range(16)))
    for e in reversed(range(16)):  # most are still queued or in flight: bumped, waited for, never re-read
        check_served(moe, store.acquire(0, [e]), 0, e)
        store.release(0, e)
    s = store.stats()
    assert s["reads"] == 16 and s["prefetch_issued"] == 16 and s["hits"] + s["misses"] == 16


def test_prefetch_does_not_thrash_a_small_cache(tmp_path):
    """A predicted set far larger than the cache must not evict the hot experts (lfru admission); lru does."""
    moe = Moe(L=1, E=16, k=2)
    p = moe.write(str(tmp_path / "t.edge"))
    slot = _core.ExpertStore(p, 1 << 30).slot_bytes
    results = {}
    for pol in ("lfru", "lru"):
        store = _core.ExpertStore(p, 3 * slot, io_threads=1, policy=pol)
        for _ in range(30):  # experts 0 and 1 are used every token
            store.begin_layer(0)
            for e in (0, 1):
                store.acquire(0, [e], copy=False)
                store.release(0, e)
        store.reset_stats()
        for t in range(10):  # a predictor that names 12 cold experts per token, never right
            store.begin_layer(0)
            store.prefetch(0, list(range(4, 16)))
            for e in (0, 1):
                store.acquire(0, [e], copy=False)
                store.release(0, e)
        results[pol] = store.stats()
    s = results["lfru"]
    assert s["hits"] == 20 and s["misses"] == 0, s
    assert s["prefetch_issued"] <= 10, s  # at most the one slot the hot pair leaves, once per token
    assert results["lru"]["misses"] > 0, results["lru"]  # the control: plain LRU prefetch evicts the hot pair


def test_lowbit_serves_cold_light_experts_from_the_lower_variant(tmp_path):
    moe = Moe(L=1, E=6, k=2)
    p = moe.write(str(tmp_path / "lb.edge"))
    off = _core.ExpertStore(p, 64 << 20, lowbit=False)
    on = _core.ExpertStore(p, 64 << 20, lowbit=True, lowbit_threshold=0.3)
    for e, w in ((0, 0.1), (1, 0.7), (2, 0.29)):
        a = off.acquire(0, [e], weights=[w])
        b = on.acquire(0, [e], weights=[w])
        assert a["variant"] == 0  # off: always the planned variant, identical to a resident run
        check_served(moe, a, 0, e)
        assert b["variant"] == (1 if w < 0.3 else 0)
        check_served(moe, b, 0, e)
    assert off.stats()["lowbit_serves"] == 0
    assert on.stats()["lowbit_serves"] == 2
    # once the planned variant is cached, a light expert gets it (a hit, not a lower serve)
    on.acquire(0, [1], weights=[0.01])
    assert on.stats()["lowbit_serves"] == 2 and on.stats()["hits"] == 1


def test_prefetch_with_true_weights_reads_light_experts_low(tmp_path):
    """prefetch(weights=...) (the predictor is the router): a light uncached expert is read as the planes4_msb
    prefix, and the acquire with the same weight is a hit served low without reading the planned variant."""
    moe = Moe(L=1, E=6, k=2)
    p = moe.write(str(tmp_path / "pf.edge"))
    nb = 3 * moe.F * moe.D // 32
    full, prefix = pad(2 * nb) + 2 * pad(8 * nb), pad(2 * nb) + pad(8 * nb)
    on = _core.ExpertStore(p, 64 << 20, lowbit=True, lowbit_threshold=0.3)
    on.begin_layer(0)
    on.prefetch(0, [0, 1], weights=[0.1, 0.7])  # 0 light: the prefix; 1 heavy: the planned variant
    wait_reads(on, 2)
    assert on.stats()["bytes_read"] == prefix + full
    for e, w, v in ((0, 0.1, 1), (1, 0.7, 0)):
        got = on.acquire(0, [e], weights=[w])
        assert got["variant"] == v
        check_served(moe, got, 0, e)
        on.release(0, e)
    s = on.stats()
    assert s["hits"] == 2 and s["misses"] == 0 and s["lowbit_serves"] == 1
    assert s["prefetch_issued"] == 2 and s["prefetch_used"] == 2 and s["reads"] == 2
    assert s["bytes_read"] == prefix + full  # the planned variant of expert 0 was never read
    # expert 1 is cached in its planned variant: a light prefetch + acquire of it is not downgraded
    on.prefetch(0, [1], weights=[0.01])
    got = on.acquire(0, [1], weights=[0.01])
    assert got["variant"] == 0 and on.stats()["reads"] == 2 and on.stats()["lowbit_serves"] == 1
    on.release(0, 1)
    s = on.stats()
    assert s["hits"] + s["misses"] == 3

    # weights unknown (None) or lowbit off: the planned variant, as before
    for store, w in ((_core.ExpertStore(p, 64 << 20, lowbit=True, lowbit_threshold=0.3), None),
                     (_core.ExpertStore(p, 64 << 20, lowbit=False), [0.1])):
        store.prefetch(0, [0], weights=w)
        wait_reads(store, 1)
        assert store.stats()["bytes_read"] == full
        got = store.acquire(0, [0], weights=[0.1] if w else None)
        assert got["variant"] == 0 and store.stats()["hits"] == 1
    with pytest.raises(ValueError, match="differ in length"):
        on.prefetch(0, [0, 1], weights=[0.1])


# ---- policy: lfru vs lru -----------------------------------------------------------------------------------

def zipf_trace(T, L, E, k, s, rng):
    out = np.empty((T, L, k), np.int32)
    for l in range(L):
        p = 1.0 / np.arange(1, E + 1) ** s
        p = p[rng.permutation(E)]
        p /= p.sum()
        for t in range(T):
            out[t, l] = rng.choice(E, k, replace=False, p=p)
    return out


def test_lfru_beats_lru_on_skewed_trace_sim():
    rng = np.random.default_rng(3)
    tr = zipf_trace(400, 8, 32, 4, 1.2, rng)
    for slots in (16, 48, 96):
        lf = _core.cache_simulate(tr, 32, slots, "lfru")
        lr = _core.cache_simulate(tr, 32, slots, "lru")
        assert lf["hits"] + lf["misses"] == 400 * 8 * 4
        assert lf["hit_rate"] > lr["hit_rate"] + 0.05, (slots, lf, lr)
    # everything fits: only cold misses, for both
    full = _core.cache_simulate(tr, 32, 8 * 32, "lfru")
    assert full["misses"] == len({(l, e) for l in range(8) for e in np.unique(tr[:, l])})


def test_lfru_not_worse_than_lru_on_uniform_trace_sim():
    rng = np.random.default_rng(4)
    tr = np.stack([np.stack([rng.choice(16, 2, replace=False) for _ in range(6)]) for _ in range(300)]).astype(np.int32)
    for slots in (8, 32, 64):
        lf = _core.cache_simulate(tr, 16, slots, "lfru")
        lr = _core.cache_simulate(tr, 16, slots, "lru")
        assert lf["hit_rate"] >= lr["hit_rate"] - 0.01, (slots, lf, lr)


def test_lfru_learns_temporal_locality_sim():
    """Consecutive tokens sharing experts (kept w.p. 0.8): the learned recency lift keeps lfru ahead of lru,
    which this pattern favours; without it (ranking by frequency) lfru lost here."""
    rng = np.random.default_rng(8)
    T, L, E, k = 300, 8, 32, 4
    tr = np.empty((T, L, k), np.int32)
    for l in range(L):
        prev = rng.choice(E, k, replace=False)
        for t in range(T):
            kept = [e for e in prev if rng.random() < 0.8]
            rest = [e for e in rng.permutation(E) if e not in kept][:k - len(kept)]
            prev = np.array(kept + rest)
            tr[t, l] = prev
    for slots in (24, 64, 128):
        lf = _core.cache_simulate(tr, E, slots, "lfru")
        lr = _core.cache_simulate(tr, E, slots, "lru")
        assert lf["hit_rate"] >= lr["hit_rate"], (slots, lf, lr)


def test_simulator_prefetch_with_perfect_predictor_hits_everything():
    rng = np.random.default_rng(5)
    tr = zipf_trace(50, 4, 16, 2, 1.0, rng)
    r = _core.cache_simulate(tr, 16, 8, "lfru", pred=tr)
    assert r["misses"] == 0 and r["prefetch_used"] == r["prefetch_issued"]


def test_lfru_beats_lru_in_the_real_store(tmp_path):
    rng = np.random.default_rng(6)
    L, E, k, T = 4, 12, 2, 60
    moe = Moe(L=L, E=E, k=k, F=32, D=32, variants=(("int4", "p4", "planes4"),))
    p = moe.write(str(tmp_path / "r.edge"))
    tr = zipf_trace(T, L, E, k, 1.3, rng)
    slot = _core.ExpertStore(p, 1 << 30).slot_bytes
    rates = {}
    for pol in ("lfru", "lru"):
        store = _core.ExpertStore(p, 12 * slot, policy=pol, io_threads=2)
        for t in range(T):
            for l in range(L):  # as the simulator does: the layer's k experts stay pinned until it ends
                store.begin_layer(l)
                for e in tr[t, l]:
                    store.acquire(l, [int(e)], copy=False)
                for e in tr[t, l]:
                    store.release(l, int(e))
        s = store.stats()
        sim = _core.cache_simulate(tr, E, 12, pol)
        assert (s["hits"], s["misses"]) == (sim["hits"], sim["misses"])  # the store runs the simulated policy
        rates[pol] = s["hit_rate"]
    assert rates["lfru"] > rates["lru"], rates


# ---- faults ------------------------------------------------------------------------------------------------

def corrupt(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def test_nan_scale_is_a_clear_error_and_isolated(tmp_path):
    moe = Moe(L=2, E=4)
    p = moe.write(str(tmp_path / "n.edge"))
    off = moe.offset(p, 1, 3, "p4")
    corrupt(p, off + 2 * 5, np.array([np.nan], np.float16).tobytes())  # block 5's scale
    store = _core.ExpertStore(p, 64 << 20)
    for attempt in range(2):  # the failure is reported each time, nothing is cached, no crash
        with pytest.raises(_core.BadFileError) as ei:
            store.acquire(1, [3])
        msg = str(ei.value)
        assert "layer 1, expert 3" in msg and f"offset {off}" in msg and "blk.1.exp.3.p4" in msg
        assert "gate block 5 has a non-finite scale" in msg
    assert store.stats()["retries"] == 2
    for l in range(2):  # the other experts are unaffected
        for e in range(4):
            if (l, e) != (1, 3):
                check_served(moe, store.acquire(l, [e]), l, e)
                store.release(l, e)
    # an acquire naming a good expert beside the bad one still works when the good one is ready
    got = store.acquire(1, [0])
    assert got["expert"] == 0


def test_inf_scale_in_concat_down_matrix(tmp_path):
    moe = Moe(L=1, E=2, F=64, D=96, variants=(("q8", "q8", "concat:q8_0"),))
    p = moe.write(str(tmp_path / "i.edge"))
    off = moe.offset(p, 0, 1, "q8")
    rb_ffn, rb_down = 96 // 32 * 34, 64 // 32 * 34
    down_off = pad(pad(64 * rb_ffn, 64) + 64 * rb_ffn, 64)
    corrupt(p, off + down_off + 7 * 34, np.array([np.inf], np.float16).tobytes())
    store = _core.ExpertStore(p, 16 << 20)
    with pytest.raises(_core.BadFileError, match="down block 7 has a non-finite scale"):
        store.acquire(0, [1])
    check_served(moe, store.acquire(0, [0]), 0, 0)


def test_truncated_after_open(tmp_path):
    moe = Moe(L=3, E=4)
    p = moe.write(str(tmp_path / "t.edge"))
    store = _core.ExpertStore(p, 64 << 20)
    cut = moe.offset(p, 2, 0, "p4")
    os.truncate(p, cut + 100)  # layer 2's blobs are gone (blob 2.0 keeps 100 bytes)
    with pytest.raises(_core.BadFileError, match=r"layer 2, expert 0.*short read") as ei:
        store.acquire(2, [0])
    assert f"offset {cut}" in str(ei.value)
    with pytest.raises(_core.BadFileError, match="layer 2, expert 3"):
        store.acquire(2, [3])
    check_served(moe, store.acquire(0, [1]), 0, 1)  # what is still in the file reads fine


def test_threads_stress_every_expert_exact(tmp_path):
    moe = Moe(L=3, E=8, k=2, plan=list(RNG.integers(0, 2, 24)))
    p = moe.write(str(tmp_path / "s.edge"))
    slot = _core.ExpertStore(p, 1 << 30).slot_bytes
    store = _core.ExpertStore(p, 5 * slot, io_threads=3)
    rng = np.random.default_rng(9)
    for t in range(40):
        for l in range(3):
            store.begin_layer(l)
            want = [int(x) for x in rng.choice(8, 2, replace=False)]
            store.prefetch(l, want + [int(x) for x in rng.choice(8, 2)])  # some wrong predictions
            left = list(want)
            while left:
                got = store.acquire(l, left)
                check_served(moe, got, l, got["expert"])
                store.release(l, got["expert"])
                left.remove(got["expert"])
    s = store.stats()
    assert s["hits"] + s["misses"] == 40 * 3 * 2


# ---- page cache --------------------------------------------------------------------------------------------

def resident_fraction(path, begin, end):
    """Share of the file's pages in [begin, end) that are in the page cache (mincore on a mapping)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        assert addr not in (None, ctypes.c_void_p(-1).value)
        n = (size + PAGE - 1) // PAGE
        vec = (ctypes.c_ubyte * n)()
        assert libc.mincore(ctypes.c_void_p(addr), size, vec) == 0, ctypes.get_errno()
        libc.munmap(ctypes.c_void_p(addr), size)
    finally:
        os.close(fd)
    v = np.frombuffer(vec, np.uint8)[begin // PAGE:end // PAGE] & 1
    return float(v.mean())


def drop_cache(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


@pytest.mark.parametrize("direct", [True, False])
def test_reads_bypass_the_page_cache(tmp_path, direct):
    moe = Moe(L=2, E=8, F=128, D=256)
    p = moe.write(str(tmp_path / "pc.edge"))
    begin, end = moe.offset(p, 0, 0, "p4"), os.path.getsize(p)
    store = _core.ExpertStore(p, 256 << 20, direct_io=direct)
    # Opening maps the file and reads its header and tables; the kernel's read-around of those faults can
    # pull a small file in whole. Drop it, so what follows measures the store's own reads.
    # (Pages the open mapping holds, ~64 KiB of fault-around, stay: count growth from here.)
    drop_cache(p)
    base = resident_fraction(p, begin, end)
    if base > 0.2:
        pytest.skip("this filesystem does not drop clean pages on POSIX_FADV_DONTNEED")
    for l in range(2):
        for e in range(8):
            store.acquire(l, [e], copy=False)
            store.release(l, e)
    assert store.stats()["bytes_read"] >= 0.9 * (end - begin)
    assert resident_fraction(p, begin, end) - base < 0.05
    with open(p, "rb") as f:  # control: an ordinary read does fill the page cache
        f.read()
    assert resident_fraction(p, begin, end) > 0.5
