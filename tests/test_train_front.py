"""The training front end (edgerun.train, `edgerun train`, docs/TRAINING.md): adapter and checkpoint files
(atomic, exact round trips), the data windows and their masks (plain text; JSONL chat: assistant tokens only;
a seeded order), the CLI's option checks and error lines, and end to end on a tiny random model: 20 steps
lower the loss, the adapter written is what the trainer holds (same loss through Model(adapter=...)),
`generate --adapter` uses it, and a run killed with SIGKILL mid-step and resumed reaches the same losses as
an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import edgerun
from edgerun import _core
from edgerun.train.adapter import (base_checksum, read_adapter, read_checkpoint, write_adapter, write_checkpoint)
from edgerun.train.data import load_data, order
from edgeconv.cli import main as edgeconv_main
from models.tiny import make_tiny
from models.tiny_tokenizer import CORPUS


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(path of a tiny llama .edge (f32), text file of the tokenizer's corpus)."""
    root = tmp_path_factory.mktemp("trainfront")
    make_tiny("llama", seed=3, dir=root / "m")
    out = root / "llama.f32.edge"
    assert edgeconv_main(["export", str(root / "m"), "-o", str(out), "--quant", "f32", "--quiet"]) in (0, None)
    text = root / "corpus.txt"
    text.write_text(CORPUS * 2)
    return str(out), str(text)


def run_cli(*args, **kw):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    return subprocess.run([sys.executable, "-m", "edgerun.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=600, **kw)


# ---- files ------------------------------------------------------------------------------------------

def test_adapter_round_trip_and_atomic_write(tiny, tmp_path):
    base, _ = tiny
    rng = np.random.default_rng(0)
    t = {"blk.0.attn_q.lora_a": rng.standard_normal((4, 64), dtype=np.float32),
         "blk.0.attn_q.lora_b": rng.standard_normal((64, 4), dtype=np.float32),
         "blk.1.ffn_down.bias": rng.standard_normal(64, dtype=np.float32)}
    p = tmp_path / "a.edge"
    write_adapter(p, t, base, method="lora", rank=4, alpha=8.0, targets=["q", "down"], train_meta={"step": 3})
    a = read_adapter(p)
    assert set(a.tensors) == set(t) and all(np.array_equal(a.tensors[k], t[k]) for k in t)
    assert a.metadata["adapter.base_checksum"] == base_checksum(base) == edgerun.Model(base)._m.base_checksum
    assert a.metadata["train.step"] == 3 and a.scale == 2.0 and a.method == "lora"
    before = p.read_bytes()
    # a failure while writing (a bad tensor name is refused before anything is written; a KeyboardInterrupt
    # mid-stream leaves the temporary file removed) keeps the old file and leaves nothing else
    with pytest.raises(ValueError, match="is not blk"):
        write_adapter(p, {"blk.0.attn_x.lora_a": t["blk.0.attn_q.lora_a"]}, base, method="lora", rank=4, alpha=8)

    import edgeconv.writer as w

    orig = w.EdgeWriter.write_tensor

    def interrupted(self, name, data):
        if name == "blk.1.ffn_down.bias":
            raise KeyboardInterrupt
        return orig(self, name, data)

    w.EdgeWriter.write_tensor = interrupted
    try:
        with pytest.raises(KeyboardInterrupt):
            write_adapter(p, t, base, method="lora", rank=4, alpha=8.0)
    finally:
        w.EdgeWriter.write_tensor = orig
    assert p.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["a.edge"]


def test_checkpoint_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(1)
    params = {"blk.0.attn_v.lora_a": rng.standard_normal((2, 5), dtype=np.float32), "blk.0.attn_v.bias": np.zeros(3, np.float32)}
    opt = {"step": 7, "m": {k: v * 0.5 for k, v in params.items()}, "v": {k: v * v for k, v in params.items()},
           "lr": 1e-3, "betas": (0.9, 0.999)}
    state = {"step": 7, "micro": 14, "settings": {"lr": 1e-3, "targets": "q,v"}, "sparse_plan": [], "loss": None}
    p = tmp_path / "x.ckpt"
    write_checkpoint(p, params, opt, state)
    p2, o2, s2 = read_checkpoint(p)
    assert s2 == state
    assert o2["step"] == 7 and o2["lr"] == 1e-3 and tuple(o2["betas"]) == (0.9, 0.999)
    for k in params:
        assert np.array_equal(p2[k], params[k]) and p2[k].dtype == np.float32
        assert np.array_equal(o2["m"][k], opt["m"][k]) and np.array_equal(o2["v"][k], opt["v"][k])


# ---- data -------------------------------------------------------------------------------------------

def test_text_windows_and_order(tiny):
    base, text = tiny
    m = edgerun.Model(base)
    ds = load_data(m, text, seq=16)
    ids = m.tokenize(open(text).read(), add_bos=bool(m.metadata("tokenizer.add_bos")) and m.bos_id >= 0, special=False)
    assert ds.tokens.dtype == np.int32 and ds.mask.dtype == np.uint8 and ds.tokens.shape[1] == 16
    flat = [int(t) for row, mk in zip(ds.tokens, ds.mask) for t, s in zip(row, np.r_[1, mk[:-1]]) if s]
    assert flat == ids[:len(flat)] and len(flat) >= len(ids) - 1
    assert not ds.mask[:, -1].any()
    assert ds.scored == len(ids) - len(ds)  # every prediction inside a window, none across windows
    a, b, c = order(len(ds), 0, 5), order(len(ds), 0, 5), order(len(ds), 1, 5)
    assert np.array_equal(a, b) and not np.array_equal(a, c) and sorted(a) == list(range(len(ds)))


def test_chat_records_score_only_assistant_tokens(tiny, tmp_path):
    base, _ = tiny
    m = edgerun.Model(base)
    p = tmp_path / "c.jsonl"
    recs = [{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "the cat"},
                          {"role": "assistant", "content": "sat on the mat"}, {"role": "user", "content": "and"},
                          {"role": "assistant", "content": "the dog"}]},
            {"messages": [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "world"}]}]
    p.write_text("\n".join(json.dumps(r) for r in recs) + "\n\n")
    ds = load_data(m, p, seq=96)
    assert len(ds) == 2 and ds.kind == "chat"
    for r, rec in enumerate(recs):
        targets = ds.tokens[r][1:][ds.mask[r][:-1] == 1]
        scored = m.detokenize(targets.tolist(), special=True)
        replies = [x["content"] for x in rec["messages"] if x["role"] == "assistant"]
        # exactly the replies, each with the template's end of turn (ChatML: <|im_end|>\n)
        assert scored == "".join(f"{x}<|im_end|>\n" for x in replies)
    for bad, what in [('{"messages": [{"role": "user"}]}', "string"), ("[1, 2]", "messages"), ("{", "not JSON"),
                      ('{"messages": [{"role": "user", "content": "x"}]}', "no assistant")]:
        p.write_text(bad + "\n")
        with pytest.raises(ValueError, match=what):
            load_data(m, p, seq=32)


# ---- CLI option checks -------------------------------------------------------------------------------

@pytest.mark.parametrize("args,what", [
    (["--targets", "q,x"], "comma-separated list"),
    (["--rank", "0"], "--rank"),
    (["--steps", "3", "--epochs", "1"], "not allowed with"),
    (["--lr", "-1"], "--lr"),
    (["--method", "full"], "invalid choice"),
    (["--mem", "lots"], "--mem"),
    (["--seq", "1"], "--seq"),
])
def test_train_cli_rejects_bad_options(tiny, tmp_path, args, what):
    base, text = tiny
    r = run_cli("train", base, "--data", text, "-o", tmp_path / "a.edge", *args)
    assert r.returncode == 2 and what in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "a.edge").exists()


def test_train_cli_errors_are_one_line(tiny, tmp_path):
    base, text = tiny
    cases = [(["--data", tmp_path / "none.txt"], "no such data file"),
             (["--data", text, "--resume"], "no checkpoint"),
             (["--data", text, "--mem", "1KB"], ""),
             (["--data", text, "-o", tmp_path / "nodir" / "a.edge"], "does not exist")]
    for extra, what in cases:
        args = ["train", base, *extra] + ([] if "-o" in extra else ["-o", tmp_path / "a.edge"]) + ["--steps", "2", "--seq", "16"]
        r = run_cli(*args)
        assert r.returncode == 2, (extra, r.stderr)
        assert what in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


# ---- end to end -------------------------------------------------------------------------------------

def test_train_lowers_loss_and_the_adapter_is_what_was_trained(tiny, tmp_path):
    base, text = tiny
    out = tmp_path / "a.edge"
    r = run_cli("train", base, "--data", text, "-o", out, "--steps", "20", "--batch", "2", "--seq", "32",
                "--lr", "1e-2", "--rank", "4", "--targets", "q,k,v,o,gate,up,down", "--threads", "2", "--json",
                "--eval", text)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    steps, res = lines[:-1], lines[-1]["result"]
    assert [x["step"] for x in steps] == list(range(1, 21))
    assert all(x["tok_s"] > 0 and x["peak_rss_mb"] > 0 for x in steps)
    first, last = np.mean([x["loss"] for x in steps[:3]]), np.mean([x["loss"] for x in steps[-3:]])
    assert last < 0.8 * first, (first, last)
    assert res["eval_ppl_after"] < 0.5 * res["eval_ppl_before"]
    a = read_adapter(out)
    assert a.metadata["adapter.rank"] == 4 and a.metadata["train.step"] == 20
    assert {n.split(".")[2] for n in a.tensors} == {"attn_q", "attn_k", "attn_v", "attn_o", "ffn_gate", "ffn_up", "ffn_down"}
    # the trainer's loss with these parameters == the loss of the inference model with the adapter file
    m = edgerun.Model(base, threads=2)
    t = _core.Trainer(m._m, method="lora", rank=4, alpha=8.0, targets=["q", "k", "v", "o", "gate", "up", "down"],
                      batch=1, seq=32, threads=2)
    t.load_parameters(a.tensors)
    ds = load_data(m, text, seq=32)
    toks, mask = ds.batch(np.array([0]))
    ls, n = t.eval_loss(toks, mask)
    logits = edgerun.Model(base, threads=2, adapter=str(out)).logits(toks[0].tolist()).astype(np.float64)
    lz = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    nll = (lz[:-1] - logits[np.arange(31), toks[0, 1:]])[mask[0, :-1] == 1].sum()
    assert n == mask.sum() and abs(ls - nll) / nll < 1e-4
    # generate --adapter uses it
    gen = ["generate", base, "-p", "the", "-n", "12", "--temp", "0", "--json", "--threads", "2"]
    g0, g1 = run_cli(*gen), run_cli(*gen, "--adapter", out)
    assert g0.returncode == g1.returncode == 0, g1.stderr
    assert json.loads(g0.stdout)["tokens"] != json.loads(g1.stdout)["tokens"]


@pytest.mark.parametrize("method", ["bias", "sparse", "mezo"])
def test_other_methods_write_adapters(tiny, tmp_path, method):
    base, text = tiny
    out = tmp_path / f"{method}.edge"
    lr = "1e-3" if method == "mezo" else "1e-2"
    r = run_cli("train", base, "--data", text, "-o", out, "--method", method, "--steps", "6", "--batch", "2",
                "--seq", "16", "--lr", lr, "--targets", "q,v,down", "--threads", "2", "--json")
    assert r.returncode == 0, r.stderr
    a = read_adapter(out)
    assert a.method == method and a.tensors
    if method == "bias":
        assert all(n.endswith(".bias") for n in a.tensors)
    if method == "sparse":
        plan = set(a.metadata["adapter.sparse_plan"])
        # the planned tensors, and a planned LoRA half together with its other half (the pair is one term)
        assert plan <= set(a.tensors) and len(plan) == 5  # ceil(0.25 × 18 candidates: 2 layers × q,v,down × a,b,bias)
        for n in a.tensors:
            stem, part = n.rsplit(".", 1)
            assert n in plan or (part != "bias" and {stem + ".lora_a", stem + ".lora_b"} & plan)
    edgerun.Model(base, adapter=str(out)).logits([1, 2, 3])  # loads


def test_resume_after_sigkill_reaches_the_same_losses(tiny, tmp_path):
    base, text = tiny
    common = ["--data", text, "--steps", "14", "--batch", "2", "--seq", "16", "--lr", "5e-3", "--rank", "4",
              "--grad-accum", "2", "--save-every", "2", "--threads", "2", "--json", "--targets", "q,v,o,up"]
    full = run_cli("train", base, "-o", tmp_path / "full.edge", *common)
    assert full.returncode == 0, full.stderr
    want = {json.loads(x)["step"]: json.loads(x)["loss"] for x in full.stdout.splitlines()[:-1]}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    p = subprocess.Popen([sys.executable, "-m", "edgerun.cli", "train", base, "-o", str(tmp_path / "k.edge"), *map(str, common)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    seen = []
    for line in p.stdout:
        seen.append(json.loads(line))
        if seen[-1]["step"] == 7:  # step 6 saved; killed during step 8
            os.kill(p.pid, signal.SIGKILL)
            break
    p.wait()
    assert p.returncode == -signal.SIGKILL
    assert read_checkpoint(str(tmp_path / "k.edge.ckpt"))[2]["step"] == 6
    res = run_cli("train", base, "-o", tmp_path / "k.edge", *common, "--resume")
    assert res.returncode == 0, res.stderr
    got = {json.loads(x)["step"]: json.loads(x)["loss"] for x in res.stdout.splitlines()[:-1]}
    assert sorted(got) == list(range(7, 15))
    for s in got:
        assert got[s] == pytest.approx(want[s], rel=1e-6, abs=0), s
    a, b = read_adapter(tmp_path / "full.edge"), read_adapter(tmp_path / "k.edge")
    for n in a.tensors:
        np.testing.assert_allclose(b.tensors[n], a.tensors[n], rtol=1e-5, atol=1e-7)
    # different settings are refused, naming what changed
    r = run_cli("train", base, "-o", tmp_path / "k.edge", *[c if c != "5e-3" else "1e-3" for c in common], "--resume")
    assert r.returncode == 2 and "lr" in r.stderr, r.stderr


def test_ctrl_c_leaves_only_complete_files(tiny, tmp_path):
    base, text = tiny
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = tmp_path / "i.edge"
    p = subprocess.Popen([sys.executable, "-m", "edgerun.cli", "train", base, "--data", text, "-o", str(out), "--steps",
                          "100000", "--batch", "2", "--seq", "16", "--save-every", "1", "--threads", "2", "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    for line in p.stdout:
        if json.loads(line)["step"] == 3:
            p.send_signal(signal.SIGINT)
            break
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130 and err.strip().splitlines()[-1] == "edgerun: interrupted", err
    assert "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == ["i.edge", "i.edge.ckpt"]  # no temporary file left behind
    assert read_checkpoint(str(out) + ".ckpt")[2]["step"] == read_adapter(out).metadata["train.step"] >= 3
