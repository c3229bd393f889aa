"""The MoE budget benchmark's own parts: the cgroup runner (real OOM kills, page cache accounting), the
SmallThinker GGUF writer (Q4_0 bytes = llama.cpp's quantizer, hparams llama.cpp can express, logits of
llama.cpp = the PyTorch reference) and the pure helpers of bench/bench_moe_budget.py."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import bench_moe_budget as bmb  # noqa: E402
import cgroup  # noqa: E402
import gguf_smallthinker as gst  # noqa: E402
from sysmeasure import HWM_SNIPPET  # noqa: E402

needs_cgroup = pytest.mark.skipif(cgroup.cgroup_available() is not None,
                                  reason=f"no writable cgroup v1 memory controller: {cgroup.cgroup_available()}")
MiB = 1 << 20


def _alloc_cmd(mib: int) -> list[str]:
    """A child that touches `mib` MiB of anonymous memory, then exits 0."""
    return [sys.executable, "-c", f"b = bytearray({mib} << 20); b[::4096] = b'x' * len(b[::4096]); print('done')"]


def _leftovers() -> list[str]:
    parent = cgroup._own_memory_cgroup()
    return [d for d in os.listdir(parent) if d.startswith(f"edgebench-{os.getpid()}-")]


# ----------------------------------------------------------------------------- cgroup runner
@needs_cgroup
def test_over_the_limit_is_oom_killed_and_reported():
    r = cgroup.run_limited(_alloc_cmd(256), 96 * MiB, timeout=60)
    assert r["oom_killed"] and r["oom_kill_count"] >= 1
    assert r["rc"] == -9 and "done" not in r["stdout"]
    assert r["max_usage_mib"] <= 96 + 0.5  # the kernel never let it pass the limit
    assert _leftovers() == []


@needs_cgroup
def test_under_the_limit_runs_and_reports_its_peak():
    cmd = [sys.executable, "-c", HWM_SNIPPET + "; " + _alloc_cmd(48)[2]]
    r = cgroup.run_limited(cmd, 256 * MiB, timeout=60)
    assert r["rc"] == 0 and not r["oom_killed"] and r["stdout"].strip() == "done"
    assert 48 <= r["max_usage_mib"] <= 256
    assert r["peak_rss_mib"] is not None and r["peak_rss_mib"] >= 48  # the child's own VmHWM
    assert r["limit_bytes"] == 256 * MiB and r["swap_total_kib"] >= 0
    assert _leftovers() == []


@needs_cgroup
def test_page_cache_is_charged_and_reclaimed_not_killed(tmp_path):
    f = tmp_path / "blob.bin"
    f.write_bytes(np.random.default_rng(0).integers(0, 256, 32 * MiB, dtype=np.uint8).tobytes())
    read = [sys.executable, "-c", f"f = open({str(f)!r}, 'rb')\nwhile f.read(1 << 20): pass"]
    free = cgroup.run_limited(read, None, timeout=60, cold_files=[str(f)])
    assert free["cold"][0]["resident_after"] < 0.05
    assert free["rc"] == 0 and free["max_usage_mib"] >= 32  # the file's pages were charged to the run
    tight = cgroup.run_limited(read, 24 * MiB, timeout=60, cold_files=[str(f)])
    assert tight["rc"] == 0 and not tight["oom_killed"]  # clean page cache is reclaimed, not OOM-killed
    assert tight["max_usage_mib"] <= 24 + 0.5


def test_drop_file_cache_evicts_the_file(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"\1" * (4 * MiB))
    f.read_bytes()
    d = cgroup.drop_file_cache(str(f))
    assert d["pages"] == 4 * MiB // cgroup.PAGE
    assert d["resident_before"] > 0.9 and d["resident_after"] < 0.05
    f.read_bytes()
    assert cgroup.file_resident_fraction(str(f)) > 0.9


def test_sizes_mean_what_edgerun_means():
    assert cgroup.parse_bytes("1GB") == 10**9 and cgroup.parse_bytes("0.5GB") == 5 * 10**8
    assert cgroup.parse_bytes("512MiB") == 512 * MiB
    assert bmb.budget_bytes("none") is None and bmb.budget_label("none") == "unlimited"
    with pytest.raises(ValueError):
        bmb.budget_bytes("lots")


# ----------------------------------------------------------------------------- Q4_0 and the GGUF writer
def _q4_0_dequant(q: np.ndarray, n: int) -> np.ndarray:
    """ggml's dequantize_row_q4_0, written out: x = d * (nibble - 8), low nibbles = elements 0..15."""
    blocks = q.reshape(-1, 18)
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    qs = blocks[:, 2:]
    codes = np.concatenate([qs & 15, qs >> 4], axis=1).astype(np.float32) - 8
    return (d * codes).reshape(-1)[:n]


def test_q4_0_round_trip_bound_and_layout():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.standard_normal(32 * 60).astype(np.float32) * rng.uniform(0.01, 10, 1).astype(np.float32),
                        np.zeros(32, np.float32), np.full(32, 3.0, np.float32),
                        np.linspace(-1, 1, 32, dtype=np.float32), -np.linspace(-1, 1, 32, dtype=np.float32)])
    q = gst.quantize_q4_0(x.reshape(-1, 64))
    assert q.shape == (x.size // 64, 2 * 18) and q.dtype == np.uint8
    y = _q4_0_dequant(q, x.size)
    blocks, yb = x.reshape(-1, 32), y.reshape(-1, 32)
    amax = np.abs(blocks).max(axis=1, keepdims=True)
    d = amax / 8
    # levels d*(q-8) with d = extreme/-8: the nearest level for |x| <= 7|d| (both sides of zero reach that),
    # clipped to q = 15 beyond it on the side opposite the extreme (error < |d| there)
    err = np.abs(yb - blocks)
    inner = np.abs(blocks) <= 7 * d
    assert np.all(err[inner] <= (d / 2 * 1.01 + 1e-7).repeat(32, 1)[inner])
    assert np.all(err <= d * 1.01 + 1e-7)
    assert np.all(yb[1:][np.all(blocks[1:] == 0, axis=1)] == 0)  # no NaN from a zero block
    imax = np.abs(blocks).argmax(axis=1)
    ext = blocks[np.arange(len(blocks)), imax]
    assert np.allclose(yb[np.arange(len(blocks)), imax], ext, rtol=1e-3, atol=1e-7)
    with pytest.raises(ValueError):
        gst.quantize_q4_0(np.zeros((2, 48), np.float32))


def test_layouts_llama_cpp_cannot_express_are_refused():
    base = dict(num_hidden_layers=8, num_attention_heads=4, num_key_value_heads=2, hidden_size=64, vocab_size=300,
                moe_num_primary_experts=8, moe_num_active_primary_experts=2, moe_ffn_hidden_size=32)
    hp = gst.smallthinker_hparams(dict(base, rope_layout=[1] * 8, sliding_window_layout=[0] * 8))
    assert hp["sliding_window"] == 0 and hp["head_dim"] == 16 and not hp["softmax"]
    swa = [int(i % 4 != 0) for i in range(8)]  # llama.cpp: global NoPE layers at il % 4 == 0
    hp = gst.smallthinker_hparams(dict(base, rope_layout=swa, sliding_window_layout=swa, sliding_window_size=16,
                                       moe_primary_router_apply_softmax=True))
    assert hp["sliding_window"] == 16 and hp["softmax"]
    with pytest.raises(ValueError, match="rope_layout"):
        gst.smallthinker_hparams(dict(base, rope_layout=[0] + [1] * 7, sliding_window_layout=[0] * 8))
    with pytest.raises(ValueError, match="one value"):
        gst.smallthinker_hparams(dict(base, moe_num_primary_experts=[8, 4] * 4))


# ----------------------------------------------------------------------------- bench helpers
def test_timed_median_drops_the_warm_up_round():
    assert bmb.timed_median([1.0, 10.0, 12.0, 11.0]) == 11.0
    assert bmb.timed_median([5.0]) is None and bmb.timed_median(None) is None


def test_ratios_use_the_best_llama_cpp_that_finished():
    t = {("uniform", "edgerun", "1GB"): {"decode_tok_s": 9.0},
         ("uniform", "edgerun", "unlimited"): {"decode_tok_s": 12.0},
         ("uniform", "llama.cpp/default", "1GB"): {"engine": "llama.cpp/default", "decode_tok_s": None,
                                                   "oom_killed": True},
         ("uniform", "llama.cpp/mmap", "1GB"): {"engine": "llama.cpp/mmap", "decode_tok_s": 2.0}}
    r = bmb.ratios(t, "uniform")
    assert r["edgerun_1gb_over_llamacpp_1gb"] == pytest.approx(4.5)
    assert r["edgerun_1gb_over_unlimited"] == pytest.approx(0.75)
    assert r["llamacpp_1gb_variant"] == "llama.cpp/mmap"
    assert bmb.ratios({}, "skew")["edgerun_1gb_over_llamacpp_1gb"] is None


def test_table_marks_failures_and_contention():
    rows = [{"routing": "uniform", "engine": "llama.cpp/default", "budget": "1GB", "rc": -9, "oom_killed": True},
            {"routing": "skew", "engine": "edgerun", "budget": "unlimited", "rc": 0, "decode_tok_s": 10.0,
             "prefill_tok_s": 50.0, "foreign_cores": 0.9, "moe_summary": {"hit_rate": 0.5}}]
    md = bmb.markdown_table(rows).splitlines()
    assert len(md) == 4 and "| OOM |" in md[2]
    assert "10.00*" in md[3] and "0.500" in md[3]


def test_moe_summary_per_token_bytes():
    j = {"moe": {"hits": 30, "misses": 10, "bytes_read": 8_000_000, "io_stall_s": 0.5}}
    s = bmb.moe_summary(j, tokens_per_round=20, rounds=2)
    assert s["hit_rate"] == pytest.approx(0.75) and s["mb_read_per_token"] == pytest.approx(0.2)


# ----------------------------------------------------------------------------- GGUF vs llama.cpp and the reference
LLAMA_LOGITS = """
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from sysmeasure import cpu_has_amx
from workers import deny_amx
if cpu_has_amx():
    deny_amx()  # llama.cpp's AMX path segfaults on this kind of machine (bench/workers.py)
import llama_cpp
toks = json.loads(sys.argv[3])
llm = llama_cpp.Llama(model_path=sys.argv[2], n_ctx=64, n_threads=1, logits_all=True, verbose=False)
llm.eval(toks)
print(json.dumps(np.asarray(llm.scores[:len(toks)]).tolist()))
"""
LLAMA_QUANTIZE = """
import ctypes, sys
import llama_cpp
p = llama_cpp.llama_model_quantize_default_params()
p.ftype, p.pure, p.nthread = 2, True, 1   # LLAMA_FTYPE_MOSTLY_Q4_0, every weight Q4_0
sys.exit(llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), ctypes.byref(p)))
"""
TOKENS = [5, 17, 99, 250, 3, 64, 128, 7, 300, 11, 0, 319]


@pytest.fixture(scope="module", params=["sigmoid", "softmax"])
def tiny_gguf(request, tmp_path_factory):
    """A random tiny SmallThinker folder (models.random_moe) and its GGUFs: Q4_0 and f32."""
    from models.random_moe import write_random_smallthinker

    d = tmp_path_factory.mktemp(f"tiny_{request.param}")
    write_random_smallthinker(d / "hf", preset="tiny", seed=3, skew=1.0, gating=request.param)
    q = gst.write_gguf(str(d / "hf"), str(d / "q4_0.gguf"))
    f = gst.write_gguf(str(d / "hf"), str(d / "f32.gguf"), weights="f32")
    return {"dir": d, "hf": str(d / "hf"), "q4_0": q, "f32": f, "gating": request.param}


def _llama_logits(path: str) -> np.ndarray:
    pytest.importorskip("llama_cpp")
    r = subprocess.run([sys.executable, "-c", LLAMA_LOGITS, os.path.join(ROOT, "bench"), path, json.dumps(TOKENS)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return np.array(json.loads(r.stdout.strip().splitlines()[-1]))


def _reference_logits(hf: str, q4_0: bool) -> np.ndarray:
    """models.moe's reference on the folder's weights; q4_0: every matrix but the router through Q4_0."""
    import gguf
    import torch
    from models.moe.hf_folder import load_hf_folder
    from models.moe.reference import MoeReference

    cfg, w = load_hf_folder(hf)
    if q4_0:
        qt = gguf.GGMLQuantizationType.Q4_0
        w = {k: torch.from_numpy(np.ascontiguousarray(gguf.quants.dequantize(gst.quantize_q4_0(v.float().numpy()), qt)))
             if v.ndim == 2 and not k.endswith("ffn_router") else v for k, v in w.items()}
    return MoeReference(cfg, w).logits(torch.tensor(TOKENS)).numpy()


def test_gguf_layout_and_hparams(tiny_gguf):
    import gguf

    r = gguf.GGUFReader(tiny_gguf["q4_0"]["path"])
    kv = {k: f.contents() for k, f in r.fields.items() if not k.startswith("tokenizer.ggml.")}
    assert kv["general.architecture"] == "smallthinker"
    assert (kv["smallthinker.expert_count"], kv["smallthinker.expert_used_count"]) == (8, 2)
    assert kv["smallthinker.expert_feed_forward_length"] == 32 and kv["smallthinker.block_count"] == 4
    assert kv["smallthinker.expert_gating_func"] == (1 if tiny_gguf["gating"] == "softmax" else 2)
    assert "smallthinker.attention.sliding_window" not in kv  # the tiny preset has no sliding layer
    t = {x.name: x for x in r.tensors}
    assert "output.weight" not in t  # tied: llama.cpp reuses token_embd
    up = t["blk.1.ffn_up_exps.weight"]
    assert up.tensor_type == gguf.GGMLQuantizationType.Q4_0 and list(up.shape) == [64, 32, 8]  # ne: [H, F, E]
    assert list(t["blk.1.ffn_down_exps.weight"].shape) == [32, 64, 8]
    assert t["blk.1.ffn_gate_inp.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    assert t["blk.1.attn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    assert len(r.fields["tokenizer.ggml.tokens"].data) == 320
    assert abs(tiny_gguf["q4_0"]["bits_per_weight"] - 4.5) < 1.0  # tiny: norms, router and header weigh in


def test_q4_0_bytes_equal_llama_quantize(tiny_gguf):
    """llama.cpp's own quantizer (pure Q4_0) on the f32 GGUF writes the bytes our writer wrote."""
    pytest.importorskip("llama_cpp")
    import gguf

    theirs = str(tiny_gguf["dir"] / "llama_quantized.gguf")
    r = subprocess.run([sys.executable, "-c", LLAMA_QUANTIZE, tiny_gguf["f32"]["path"], theirs],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    ours = {t.name: t for t in gguf.GGUFReader(tiny_gguf["q4_0"]["path"]).tensors}
    them = {t.name: t for t in gguf.GGUFReader(theirs).tensors}
    assert set(ours) == set(them)
    for name, t in ours.items():
        assert t.tensor_type == them[name].tensor_type, name
        assert bytes(t.data) == bytes(them[name].data), name


def test_llama_cpp_computes_the_reference_model(tiny_gguf):
    """f32 GGUF: llama.cpp's smallthinker graph = models.moe's reference (hparams, gating, RoPE, tied head).
    Bound: llama.cpp keeps K/V in f16 (measured 6e-4 relative)."""
    ll, lr = _llama_logits(tiny_gguf["f32"]["path"]), _reference_logits(tiny_gguf["hf"], q4_0=False)
    assert np.linalg.norm(ll - lr) / np.linalg.norm(lr) < 3e-3
    assert (ll.argmax(1) == lr.argmax(1)).all()


def test_llama_cpp_q4_0_computes_the_dequantized_reference(tiny_gguf):
    """Q4_0 GGUF vs the reference on Q4_0-dequantized weights. Bound: llama.cpp also rounds activations
    to Q8_0 for Q4_0 matmuls (measured 2% relative at d_model 64)."""
    ll, lq = _llama_logits(tiny_gguf["q4_0"]["path"]), _reference_logits(tiny_gguf["hf"], q4_0=True)
    assert np.linalg.norm(ll - lq) / np.linalg.norm(lq) < 0.08


@needs_cgroup
def test_cgroup_cli(capsys):
    rc = cgroup.main(["64MiB", "--timeout", "60", "--", sys.executable, "-c", "print('hi')"])
    out = capsys.readouterr().out.splitlines()
    assert rc == 0 and out[0] == "hi"
    res = json.loads(out[-1])
    assert res["limit_bytes"] == 64 * MiB and not res["oom_killed"]
    with pytest.raises(SystemExit):
        cgroup.main(["64MiB", sys.executable])  # no "--"
