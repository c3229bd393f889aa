"""Inference with adapters (csrc/adapter.h, Model(adapter=...), --adapter): random LoRA / bias adapters written
with the adapter writer, against the models/ reference with the LoRA merged into the weights (W + s·B·A) and
against the Hugging Face model (on the file's dequantized weights) with the LoRA and bias terms as forward
hooks; several adapters with scales; the base checksum; wrong-base and bad-file errors."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import edgerun
from edgeconv.cli import main as edgeconv_main
from edgerun.train.adapter import TARGETS, base_checksum, read_adapter, write_adapter
from models.edge_loader import edge_weights, load_edge_reference
from models.hf_names import hf_to_ours
from models.tiny import make_tiny

TOKENS = [1, 17, 33, 250, 7, 99, 3, 12, 200, 5, 64, 128, 31]
ARCHS = ["llama", "qwen2", "qwen3"]
# Declared tolerances, max|Δlogit| / max|logit| against a float reference on the same (dequantized) weights:
# f32 weights differ only in summation order (the LoRA term adds one f32 product of rank r); int4 also quantizes
# the activations of the base matmul to int8 per 32 values (tests/test_runtime.py's TOL_INT_DOT). The random
# adapter moves the logits a lot (max-relative ~1.3 from the plain model), and the int8 activations' error grows
# with it: 0.022–0.042 on these tiny int4 files in s21 (act-order GPTQ weights; 0.013–0.020 without the adapter).
TOL = {"f32": 2e-4, "int4": 6e-2, "q8": 4e-2}
STEMS = list(TARGETS.values())
HF_MODULES = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
              "attn_o": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
              "ffn_down": "mlp.down_proj"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """tiny(arch, recipe) -> (.edge path, HF model)."""
    root = tmp_path_factory.mktemp("adapters")
    cache = {}

    def get(arch, recipe="f32"):
        if arch not in cache:
            hf, _, _ = make_tiny(arch, seed=3, dir=root / arch)
            cache[arch] = hf
        key = (arch, recipe)
        if key not in cache:
            out = root / f"{arch}.{recipe}.edge"
            assert edgeconv_main(["export", str(root / arch), "-o", str(out), "--quant", recipe, "--quiet"]) in (0, None)
            cache[key] = str(out)
        return cache[key], cache[arch]

    return get


def matrix_shapes(path):
    """{(layer, stem): (out, in)} of the base file's adapter targets."""
    from edgeconv.format import EdgeFile

    with EdgeFile(path) as f:
        n = int(f.metadata["llm.n_layers"])
        return {(i, s): tuple(f.tensor(f"blk.{i}.{s}").shape) for i in range(n) for s in STEMS}


def random_adapter(path, base, seed, rank=4, alpha=8.0, stems=STEMS, lora=True, bias=False, scale_b=0.3):
    rng = np.random.default_rng(seed)
    tensors = {}
    for (i, s), (out, inp) in matrix_shapes(base).items():
        if s not in stems:
            continue
        if lora:
            tensors[f"blk.{i}.{s}.lora_a"] = (rng.standard_normal((rank, inp)) / np.sqrt(inp)).astype(np.float32)
            tensors[f"blk.{i}.{s}.lora_b"] = (scale_b * rng.standard_normal((out, rank))).astype(np.float32)
        if bias:
            tensors[f"blk.{i}.{s}.bias"] = (0.2 * rng.standard_normal(out)).astype(np.float32)
    write_adapter(path, tensors, base, method="lora" if lora else "bias", rank=rank if lora else 0, alpha=alpha,
                  targets=[k for k, v in TARGETS.items() if v in stems])
    return str(path)


def merged_reference_logits(base, adapters):
    """models/ reference on the dequantized base with every LoRA merged: W + Σ s·(alpha/r)·B·A (biases: into the
    existing q/k/v biases, the only ones the reference has)."""
    meta, w = edge_weights(base)
    for path, s in adapters:
        a = read_adapter(path)
        for name, t in a.tensors.items():
            stem = name.rsplit(".", 1)[0]
            if name.endswith(".lora_a"):
                w[stem] = w[stem] + s * a.scale * (a.tensors[stem + ".lora_b"] @ t)
            elif name.endswith(".bias"):
                w[stem + "_bias"] = w[stem + "_bias"] + s * t
    from models.llama import Reference

    return Reference(meta, w).logits(torch.tensor(TOKENS)).numpy()


def hooked_hf_logits(hf, base, adapters):
    """The HF model with the base file's dequantized weights and each adapter's terms as forward hooks."""
    _, w = edge_weights(base)
    state = {}
    for n, p in hf.state_dict().items():
        ours = hf_to_ours(n)
        state[n] = torch.from_numpy(w["tok_embd" if ours == "output" and "output" not in w else ours])
    hf.load_state_dict(state)
    hooks = []
    try:
        for path, s in adapters:
            a = read_adapter(path)
            for name, t in a.tensors.items():
                _, i, stem, part = name.split(".")
                mod = hf.model.layers[int(i)].get_submodule(HF_MODULES[stem])
                if part == "lora_a":
                    A, B = torch.from_numpy(t), torch.from_numpy(a.tensors[f"blk.{i}.{stem}.lora_b"])
                    c = s * a.scale
                    hooks.append(mod.register_forward_hook(lambda m, inp, out, A=A, B=B, c=c: out + c * (inp[0] @ A.T) @ B.T))
                elif part == "bias":
                    b = s * torch.from_numpy(t)
                    hooks.append(mod.register_forward_hook(lambda m, inp, out, b=b: out + b))
        with torch.no_grad():
            return hf(torch.tensor([TOKENS])).logits[0].numpy()
    finally:
        for h in hooks:
            h.remove()


def rel_err(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("recipe", ["f32", "int4"])
@pytest.mark.parametrize("arch", ARCHS)
def test_lora_equals_merged_reference(tiny, tmp_path, arch, recipe):
    base, _ = tiny(arch, recipe)
    ad = random_adapter(tmp_path / "a.edge", base, seed=1)
    got = edgerun.Model(base, threads=2, kv="f32", adapter=ad).logits(TOKENS)
    ref = merged_reference_logits(base, [(ad, 1.0)])
    plain = edgerun.Model(base, threads=2, kv="f32").logits(TOKENS)
    assert rel_err(got, ref) < TOL[recipe]
    assert rel_err(plain, ref) > 10 * TOL[recipe]  # the adapter matters: the test can fail


@pytest.mark.parametrize("recipe", ["f32", "q8"])
@pytest.mark.parametrize("arch", ARCHS)
def test_lora_and_bias_equal_hooked_hf(tiny, tmp_path, arch, recipe):
    base, hf = tiny(arch, recipe)
    ad = random_adapter(tmp_path / "ab.edge", base, seed=2, bias=True)
    got = edgerun.Model(base, threads=2, kv="f32", adapter=ad).logits(TOKENS)
    ref = hooked_hf_logits(hf, base, [(ad, 1.0)])
    assert rel_err(got, ref) < TOL[recipe]
    assert rel_err(edgerun.Model(base, threads=2, kv="f32").logits(TOKENS), ref) > 20 * TOL[recipe]


def test_two_adapters_with_scales(tiny, tmp_path):
    base, hf = tiny("qwen2")
    a1 = random_adapter(tmp_path / "a1.edge", base, seed=3, rank=3, alpha=6.0, stems=["attn_q", "attn_v", "ffn_down"])
    a2 = random_adapter(tmp_path / "a2.edge", base, seed=4, rank=5, alpha=5.0, stems=["attn_v", "ffn_up"], bias=True)
    specs = [(a1, 0.5), (a2, -1.5)]
    m = edgerun.Model(base, threads=2, kv="f32", adapter=[f"{a1}:0.5", (a2, -1.5)])
    got = m.logits(TOKENS)
    assert rel_err(got, hooked_hf_logits(hf, base, specs)) < TOL["f32"]
    # LoRA-only, the merged reference agrees too (a1 + a1 scaled: both folded into W)
    lo = [(a1, 0.5), (a1, 0.25)]
    assert rel_err(edgerun.Model(base, threads=2, kv="f32", adapter=lo).logits(TOKENS), merged_reference_logits(base, lo)) < TOL["f32"]
    # both adapters' terms in one LowRank: planned memory = their f32 tensors (padded to 64 bytes each)
    plan = m.memory_plan
    n_floats = sum(a.size for p in (a1, a2) for a in read_adapter(p).tensors.values())
    assert n_floats * 4 <= plan["adapters"] <= n_floats * 4 + 64 * 3 * 7 * 3
    assert plan["total"] >= plan["adapters"] > 0
    assert edgerun.Model(base).memory_plan["adapters"] == 0
    # scale 0 is the base model
    z = edgerun.Model(base, threads=2, kv="f32", adapter=[(a1, 0.0), (a2, 0.0)]).logits(TOKENS)
    assert rel_err(z, edgerun.Model(base, threads=2, kv="f32").logits(TOKENS)) < 1e-6


def test_base_checksum_matches_cpp(tiny):
    base, _ = tiny("llama", "int4")
    assert base_checksum(base) == edgerun.Model(base)._m.base_checksum


def test_wrong_base_is_a_clear_error(tiny, tmp_path):
    llama, _ = tiny("llama")
    qwen3, _ = tiny("qwen3")
    ad = random_adapter(tmp_path / "llama.adapter.edge", llama, seed=5)
    with pytest.raises(edgerun.EdgeError) as e:
        edgerun.Model(qwen3, adapter=ad)
    msg = str(e.value)
    assert ad in msg and qwen3 in msg and os.path.basename(llama) in msg
    # the same weights quantized differently are another base too
    llama4, _ = tiny("llama", "int4")
    with pytest.raises(edgerun.EdgeError, match="trained on"):
        edgerun.Model(llama4, adapter=ad)


def test_bad_adapter_files(tiny, tmp_path):
    base, _ = tiny("llama")
    with pytest.raises(edgerun.BadFileError, match="not an adapter"):
        edgerun.Model(base, adapter=base)
    with pytest.raises(FileNotFoundError):
        edgerun.Model(base, adapter=str(tmp_path / "missing.edge"))
    ad = random_adapter(tmp_path / "a.edge", base, seed=6)
    raw = bytearray(open(ad, "rb").read())
    raw[-5] ^= 0xFF  # a tensor byte: its CRC fails
    bad = tmp_path / "corrupt.edge"
    bad.write_bytes(bytes(raw))
    with pytest.raises(edgerun.BadFileError, match="checksum"):
        edgerun.Model(base, adapter=str(bad))
    with pytest.raises(ValueError, match="finite"):
        edgerun.Model(base, adapter=(ad, float("nan")))


def run_cli(*args):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    return subprocess.run([sys.executable, "-m", "edgerun.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


def test_cli_adapter(tiny, tmp_path):
    base, _ = tiny("llama")
    ad = random_adapter(tmp_path / "a.edge", base, seed=7, scale_b=1.0)
    gen = ["generate", base, "-p", "hello", "-n", "8", "--temp", "0", "--json"]
    plain = run_cli(*gen)
    with_ad = run_cli(*gen, "--adapter", ad)
    half = run_cli(*gen, "--adapter", f"{ad}:0.5", "--adapter", f"{ad}:0.5")
    assert plain.returncode == with_ad.returncode == half.returncode == 0, (plain.stderr, with_ad.stderr)
    import json

    toks = [json.loads(r.stdout)["tokens"] for r in (plain, with_ad, half)]
    assert toks[1] != toks[0] and toks[2] == toks[1]  # 0.5 + 0.5 of one adapter = the adapter
    text = tmp_path / "t.txt"
    text.write_text("hello world, this is a small text to score. " * 20)
    ppl = run_cli("perplexity", base, text, "--ctx", "32", "--json", "--adapter", ad)
    assert ppl.returncode == 0, ppl.stderr
    # errors: one line, no traceback
    other, _ = tiny("qwen3")
    for args, rc, what in [(("generate", other, *gen[2:], "--adapter", ad), 2, "trained on"),
                           ((*gen, "--adapter", str(tmp_path / "nope.edge")), 2, "no such adapter file"),
                           ((*gen, "--adapter", f"{ad}:inf"), 2, "finite"),
                           ((*gen, "--adapter", base), 2, "not an adapter")]:
        r = run_cli(*args)
        assert r.returncode == rc, (args, r.stderr)
        assert what in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


# edgeconv merge: the folded file against the base run with the adapter. f32 -> f32: only the f32 rounding of
# W + ΔW (TOL f32); a re-quantized file adds the dtype's rounding of the merged weights: f32 -> q8 rounds every
# weight to 8 bits and the activations to int8 (measured 0.062 against the f32 base + adapter), declared 0.1; int4 re-rounds the merged weights to 4 bits: on these tiny random models one int4 rounding alone
# costs ~0.38 (an int4 export vs its f32 source), the merge measured 0.17-0.24, declared 0.3 — and at most half
# of what the adapter changes (so the merged file really carries the adapter).
MERGE_TOL = {"f32": 2e-4, "q8": 0.1, "int4": 0.3}


@pytest.mark.parametrize("arch,src,quant", [("llama", "f32", None), ("qwen2", "f32", "q8"), ("qwen3", "int4", None),
                                            ("llama", "int4", "q8")])
def test_merge_equals_runtime_adapter(tiny, tmp_path, arch, src, quant):
    base, _ = tiny(arch, src)
    ad = random_adapter(tmp_path / "a.edge", base, seed=8, stems=["attn_q", "attn_v", "attn_o", "ffn_down"], scale_b=1.0)
    adb = random_adapter(tmp_path / "b.edge", base, seed=9, lora=False, bias=True, stems=["attn_q", "attn_k", "attn_v"])
    out = tmp_path / "merged.edge"
    args = ["merge", base, f"{ad}:0.8", adb, "-o", str(out)] + (["--quant", quant] if quant else [])
    assert edgeconv_main(args) in (0, None)
    want = edgerun.Model(base, threads=2, kv="f32", adapter=[(ad, 0.8), adb]).logits(TOKENS)
    got = edgerun.Model(str(out), threads=2, kv="f32").logits(TOKENS)
    tol = MERGE_TOL[quant or src]
    err = rel_err(got, want)
    assert err < tol
    assert rel_err(edgerun.Model(base, threads=2, kv="f32").logits(TOKENS), want) > (5 * tol if (quant or src) == "f32" else 2 * err)
    from edgeconv.format import EdgeFile

    with EdgeFile(base) as b, EdgeFile(str(out)) as m:
        if quant is None:  # the base's dtypes; untouched tensors byte for byte
            assert all(m.tensor(t.name).dtype == t.dtype for t in b.tensors)
            assert np.array_equal(np.asarray(m.raw("blk.0.ffn_up")), np.asarray(b.raw("blk.0.ffn_up")))
        assert int(m.metadata["llm.qkv_bias"]) == 1


def test_merge_errors(tiny, tmp_path, capsys):
    base, _ = tiny("llama")
    other, _ = tiny("qwen3")
    ob = random_adapter(tmp_path / "o.edge", base, seed=10, lora=False, bias=True, stems=["attn_o"])
    wrong = random_adapter(tmp_path / "w.edge", other, seed=11)
    for ad, what in [(ob, "cannot be folded"), (wrong, "trained on")]:
        assert edgeconv_main(["merge", base, ad, "-o", str(tmp_path / "m.edge")]) == 2
        err = capsys.readouterr().err
        assert what in err and len(err.strip().splitlines()) == 1
        assert not os.path.exists(tmp_path / "m.edge")
