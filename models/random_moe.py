"""Random-weight SmallThinker checkpoints at full size, written layer by layer (the runtime's streaming
and memory-budget tests need a real-sized MoE model; no pretrained MoE ships in a package).

    python -m models.random_moe --arch smallthinker --preset 4b -o DIR [--skew S] [--seed N]
                                [--gating sigmoid|softmax] [--check [N]]

DIR becomes an HF folder (config.json with SmallThinker's keys, model-XXXXX-of-YYYYY.safetensors shards in
bf16 + model.safetensors.index.json, generation_config.json, tokenizer.json, tokenizer_config.json) plus
random_moe.json (preset, seed, skew and the hot experts of every layer). Presets:
  4b    SmallThinker-4B-A0.6B's shape: hidden 1536, 32 layers, 12 q / 2 kv heads of 128, 32 experts,
        top-4, expert width 768, vocab 151936, tied embeddings, RoPE on every layer (theta 1.5e6), no
        sliding window, sigmoid gating; 4.0e9 parameters, 8.1 GB of bf16 in 33 shards
  tiny  the same choices at d_model 64, 4 layers, 4 / 2 heads of 16, 8 experts, top-2, width 32,
        vocab 320 (tests)
Shard 1 holds tok_embd and the final norm, shard 2+i layer i. Each tensor is drawn, converted to bf16
and written before the next (the embedding in 16384-row slices), so the peak memory is one tensor
(~0.5 GB for the 4b embedding), not the model. Layer i uses torch.Generator(seed · 1000003 + i + 1),
the embedding seed · 1000003: the same arguments always give the same bytes.

Scales (d = d_model, L = layers, F = expert width, C_hd = n_heads · head_dim), chosen so that the
residual stream stays O(1) through L layers and the logits are neither flat nor dominated by the input
token (a tied random model otherwise greedily repeats its input):
  tok_embd rows ~ N(0, 1/d) (unit norm; the input token is ~1/√d of the final residual)
  attn_q/k/v ~ N(0, 1/d); attn_o ~ N(0, (1/√L)² / C_hd)     attention adds rms ≈ 0.7/√L per layer
  expert gate/up ~ N(0, 1/d); down ~ N(0, (2/√L)² / F)        the MoE adds rms ≈ 0.8/√L per layer
  attn_norm, ffn_norm 1 + N(0, 0.1²); output_norm 4 · (1 + N(0, 0.1²))   logits std ≈ 4
  ffn_router [E, d] ~ N(0, σ_i²), σ_i = 2 / (√d · r_i), r_i = √(1/d + i/L) the expected rms of the
  layer input (the router reads the raw residual), so router logits have std ≈ 2 on every layer.

--skew S (default 0 = unskewed) biases routing toward a per-layer hot set: ⌈E/5⌉ experts (20%; 7 of 32)
drawn at random per layer. Every embedding row gets a shared component 3·u (u one fixed random unit
vector; it adds the same value to every logit of the tied head, so it changes no token ranking), each
router's random rows are made orthogonal to u, and b/3 · u is added to router row e with b = 2·S for
hot experts and 0 otherwise. The router logit of expert e is then W_e·x + b_e·(u·x)/3 with
u·x = 3 ± (rms of the residual, ≤ ~1.1), i.e. hot experts get about +2S on a logit scale of std 2.
Share of the routing slots that go to the hot 20% (4b, top-4 of 32; 22% without skew): a Gaussian
model of the logits gives 38% for S = 0.5, 56% for S = 1, 86% for S = 2, 98% for S = 3; measured on
the 4b preset with S = 1 over 16 tokens: 45% averaged over the layers (19% to 70% per layer).
--check prints the share per layer. The hot sets are listed in random_moe.json.

The tokenizer is models.tiny's byte-level BPE (specials <|endoftext|> 0, <|im_start|> 1, <|im_end|> 2),
with min(vocab, 512) ids: for 4b, ids 512..151935 exist only in the model (edgeconv pads the
vocabulary with unused "[PAD<i>]" tokens, as for Qwen's 151643 + specials < 151936).

--check [N] then loads DIR lazily into models.moe.MoeReference and prints, for N tokens (default 12):
per-layer residual rms, router logit std and hot-set share, the logits' std, and a greedy continuation.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Callable, Iterator

import torch

if __package__ in (None, ""):  # `python models/random_moe.py`: make `models` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "models"

from .hf_names import hf_config_to_moe, moe_ours_to_hf        # noqa: E402
from .moe.shape import MoeShape                                # noqa: E402
from .moe.tiny import smallthinker_hf_config                   # noqa: E402
from .tiny_tokenizer import make_tokenizer, write_tokenizer     # noqa: E402

__all__ = ["PRESETS", "write_random_smallthinker", "check"]

PRESETS: dict[str, dict] = {
    "4b": dict(hidden_size=1536, num_hidden_layers=32, num_attention_heads=12, num_key_value_heads=2, head_dim=128,
               moe_num_primary_experts=32, moe_num_active_primary_experts=4, moe_ffn_hidden_size=768,
               vocab_size=151936, max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1.5e6,
               tie_word_embeddings=True, sliding_window_size=4096),
    "tiny": dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                 moe_num_primary_experts=8, moe_num_active_primary_experts=2, moe_ffn_hidden_size=32,
                 vocab_size=320, max_position_embeddings=4096, rms_norm_eps=1e-6, rope_theta=1.5e6,
                 tie_word_embeddings=True, sliding_window_size=4096),
}
_COMMON_NORM = 3.0          # norm of the shared embedding component u (with --skew)
_ROUTER_STD = 2.0           # target router logit std
_EMBD_ROWS = 16384          # embedding rows drawn per slice

_Maker = Callable[[], torch.Tensor]


def _hf_config(preset: str, gating: str) -> dict:
    kw = dict(PRESETS[preset])
    L = kw["num_hidden_layers"]
    kw.update(rope_layout=[1] * L, sliding_window_layout=[0] * L, torch_dtype="bfloat16")
    if gating == "softmax":
        kw["moe_primary_router_apply_softmax"] = True
    return smallthinker_hf_config(**kw)


def _layer_tensors(shape: MoeShape, i: int, gen: torch.Generator, skew: float, u: torch.Tensor | None,
                   hot: list[int]) -> Iterator[tuple[str, tuple[int, ...], _Maker]]:
    """(our name, shape, maker) for the tensors of layer i, in the order they are drawn."""
    s = shape.llm
    d, L, F, E = s.d_model, s.n_layers, shape.d_expert, shape.n_experts
    qd = s.n_heads * s.head_dim
    p = f"blk.{i}."

    def normal(shp, std):
        return lambda: torch.randn(shp, generator=gen) * std

    def norm_w():
        return 1.0 + 0.1 * torch.randn(d, generator=gen)

    def router():
        r = math.sqrt(1.0 / d + i / L)
        w = torch.randn(E, d, generator=gen) * (_ROUTER_STD / (math.sqrt(d) * r))
        if u is not None:
            w -= (w @ u)[:, None] * u[None, :]
            b = torch.zeros(E)
            b[hot] = _ROUTER_STD * skew
            w += (b / _COMMON_NORM)[:, None] * u[None, :]
        return w

    yield p + "attn_norm", (d,), norm_w
    yield p + "attn_q", (qd, d), normal((qd, d), d ** -0.5)
    yield p + "attn_k", (shape.kv_dim, d), normal((shape.kv_dim, d), d ** -0.5)
    yield p + "attn_v", (shape.kv_dim, d), normal((shape.kv_dim, d), d ** -0.5)
    yield p + "attn_o", (d, qd), normal((d, qd), L ** -0.5 * qd ** -0.5)
    yield p + "ffn_norm", (d,), norm_w
    yield p + "ffn_router", (E, d), router
    for e in range(E):
        yield f"{p}exp.{e}.gate", (F, d), normal((F, d), d ** -0.5)
        yield f"{p}exp.{e}.up", (F, d), normal((F, d), d ** -0.5)
        yield f"{p}exp.{e}.down", (d, F), normal((d, F), 2 * L ** -0.5 * F ** -0.5)


def _write_safetensors(path: str, tensors: list[tuple[str, tuple[int, ...], Callable[[], Iterator[torch.Tensor]]]]):
    """Streams bf16 tensors into one safetensors file: header first (shapes are known), then each tensor's
    bytes as its maker yields them (a maker yields row slices whose concatenation is the tensor)."""
    header, offset = {}, 0
    for name, shp, _ in tensors:
        n = 2 * math.prod(shp)
        header[name] = {"dtype": "BF16", "shape": list(shp), "data_offsets": [offset, offset + n]}
        offset += n
    header["__metadata__"] = {"format": "pt"}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        for name, shp, maker in tensors:
            written = 0
            for part in maker():
                b = part.to(torch.bfloat16).contiguous().view(torch.int16).numpy()
                f.write(b.tobytes())
                written += b.size
            if written != math.prod(shp):
                raise RuntimeError(f"internal: {name} wrote {written} values, expected {math.prod(shp)}")
    os.replace(tmp, path)
    return offset


def write_random_smallthinker(out_dir: str | os.PathLike, preset: str = "4b", seed: int = 0, skew: float = 0.0,
                              gating: str = "sigmoid", log: Callable[[str], None] | None = None) -> dict:
    """Writes the folder (module docstring). Returns the random_moe.json dict."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    if skew < 0:
        raise ValueError(f"--skew must be >= 0, got {skew}")
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    hf_cfg = _hf_config(preset, gating)
    config = hf_config_to_moe(hf_cfg)
    shape = MoeShape.from_config(config)
    s = shape.llm
    d, L, E, V = s.d_model, s.n_layers, shape.n_experts, s.vocab_size
    gen0 = torch.Generator().manual_seed(seed * 1000003)
    u = None
    if skew > 0:
        u = torch.randn(d, generator=gen0)
        u /= u.norm()
    n_hot = math.ceil(E / 5)
    hot = [sorted(torch.randperm(E, generator=torch.Generator().manual_seed(seed * 7919 + i))[:n_hot].tolist())
           for i in range(L)]

    def embd():
        for r0 in range(0, V, _EMBD_ROWS):
            rows = torch.randn(min(_EMBD_ROWS, V - r0), d, generator=gen0) * d ** -0.5
            yield rows + _COMMON_NORM * u if u is not None else rows

    def out_norm():
        yield 4.0 * (1.0 + 0.1 * torch.randn(d, generator=gen0))

    n_shards = L + 1
    fname = lambda k: f"model-{k + 1:05d}-of-{n_shards:05d}.safetensors"   # noqa: E731
    weight_map, total = {}, 0
    shard0 = [(moe_ours_to_hf("tok_embd", "smallthinker"), (V, d), embd),
              (moe_ours_to_hf("output_norm", "smallthinker"), (d,), out_norm)]
    if not s.tied_head:
        raise ValueError("internal: presets are tied")
    total += _write_safetensors(os.path.join(out_dir, fname(0)), shard0)
    weight_map.update({n: fname(0) for n, _, _ in shard0})
    for i in range(L):
        gen = torch.Generator().manual_seed(seed * 1000003 + i + 1)
        tensors = [(moe_ours_to_hf(name, "smallthinker"), shp, (lambda m=mk: iter([m()])))
                   for name, shp, mk in _layer_tensors(shape, i, gen, skew, u, hot[i])]
        total += _write_safetensors(os.path.join(out_dir, fname(i + 1)), tensors)
        weight_map.update({n: fname(i + 1) for n, _, _ in tensors})
        if log:
            log(f"layer {i + 1}/{L} written")
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=1)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(hf_cfg, f, indent=2)
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 0}, f, indent=2)
    write_tokenizer(make_tokenizer(min(V, 512)), out_dir)
    info = {"arch": "smallthinker", "preset": preset, "seed": seed, "skew": skew, "gating": gating,
            "hot_experts": hot if skew > 0 else [], "bytes": total}
    with open(os.path.join(out_dir, "random_moe.json"), "w") as f:
        json.dump(info, f, indent=1)
    return info


def check(out_dir: str | os.PathLike, n_tokens: int = 12, n_new: int = 8) -> dict:
    """Runs the folder through the reference (lazily) and returns activation/routing statistics."""
    from .moe.hf_folder import load_hf_folder
    from .moe.reference import MoeReference

    config, weights = load_hf_folder(out_dir, lazy=True)
    with open(os.path.join(out_dir, "random_moe.json")) as f:
        info = json.load(f)
    model = MoeReference(config, weights, lazy=True)
    V = int(config["llm.vocab_size"])
    toks = torch.randint(3, min(V, 512), (n_tokens,), generator=torch.Generator().manual_seed(1))
    trace: dict = {}
    logits = model.logits(toks, trace=trace)
    layers = []
    for i in range(model.shape.llm.n_layers):
        p = f"blk.{i}."
        ex = trace[p + "experts"]
        hot = info["hot_experts"][i] if info["hot_experts"] else []
        layers.append({"rms_in": float(trace[p + "in"].pow(2).mean().sqrt()),
                       "router_std": float(trace[p + "router_logits"].std()),
                       "hot_share": float(torch.isin(ex, torch.tensor(hot, dtype=torch.long)).float().mean())
                       if hot else None,
                       "distinct_experts": len(set(ex.flatten().tolist()))})
    return {"finite": bool(torch.isfinite(logits).all()), "logits_std": float(logits.std(dim=-1).mean()),
            "layers": layers, "greedy": model.greedy(toks, n_new)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.random_moe", description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default="smallthinker", choices=["smallthinker"])
    ap.add_argument("--preset", default="4b", choices=sorted(PRESETS))
    ap.add_argument("-o", "--out", required=True, help="output folder")
    ap.add_argument("--skew", type=float, default=0.0,
                    help="routing skew S >= 0 (0: none; 1: ~50%%, 2: ~85%% of the slots to the hot 20%%)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gating", default="sigmoid", choices=["sigmoid", "softmax"])
    ap.add_argument("--check", type=int, nargs="?", const=12, default=None, metavar="N",
                    help="then run N tokens through the reference and print statistics")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args(argv)
    info = write_random_smallthinker(args.out, args.preset, args.seed, args.skew, args.gating,
                                     log=None if args.json else (lambda m: print(m, file=sys.stderr)))
    if args.check is not None:
        info["check"] = check(args.out, args.check)
    if args.json:
        print(json.dumps(info))
    else:
        print(f"wrote {args.out}: {info['bytes'] / 1e9:.2f} GB of bf16 weights")
        if "check" in info:
            c = info["check"]
            print(f"finite {c['finite']}, logits std {c['logits_std']:.2f}, greedy {c['greedy']}")
            for i, l in enumerate(c["layers"]):
                print(f"  layer {i:2d}: rms_in {l['rms_in']:.3f} router_std {l['router_std']:.2f} "
                      f"distinct {l['distinct_experts']}" + (f" hot_share {l['hot_share']:.2f}"
                                                            if l["hot_share"] is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
