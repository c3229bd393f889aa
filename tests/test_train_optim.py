"""Optimizer options of the training engine (csrc/train/train_optim.cpp): SGD with momentum against
torch.optim.SGD(momentum=μ), and bf16 trainable parameters with an f32 master (dtype="bf16"): the step's
gradients are autograd's at θ rounded to bf16, the update is torch.optim.AdamW's on the f32 master, and the
optimizer state (momentum buffer, master) survives a save / load round trip."""

import numpy as np
import pytest
import torch

from edgerun import _core
from test_train_engine import TOL_F32, TorchTrainRef, batch, grad_errors, random_params, t_vocab, tiny, trainer  # noqa: F401


def bf16(a):
    return torch.from_numpy(np.ascontiguousarray(a)).to(torch.bfloat16).to(torch.float32).numpy()


def test_sgd_momentum_equals_torch(tiny):
    path = tiny("llama", "q8")
    t = trainer(path, method="sparse", targets=["q", "v", "down"], rank=4, optimizer="sgd", lr=3e-3, momentum=0.9,
                weight_decay=0.1)
    p0 = random_params(t, seed=2)
    t.load_parameters(p0)
    tp = {n: torch.tensor(a, requires_grad=True) for n, a in p0.items()}
    topt = torch.optim.SGD(tp.values(), lr=3e-3, momentum=0.9, weight_decay=0.1)
    for step in range(3):
        tokens, mask = batch(t_vocab(path), seed=10 + step)
        _, n = t.forward_backward(tokens, mask)
        g = t.gradients()
        for name, p in tp.items():
            p.grad = torch.tensor(g[name] / n)
        topt.step()
        t.optimizer_step()
        got = t.parameters()
        for name, p in tp.items():
            want = p.detach().numpy()
            assert np.abs(got[name] - want).max() <= 2e-6 * max(np.abs(want).max(), 1.0), (step, name)
        st = t.optimizer_state()
        for name, p in tp.items():
            buf = topt.state[p]["momentum_buffer"].numpy()
            assert np.abs(st["momentum"][name] - buf).max() <= 2e-6 * max(np.abs(buf).max(), 1.0), (step, name)
    # the buffer matters: plain SGD from the same start ends elsewhere
    plain = trainer(path, method="sparse", targets=["q", "v", "down"], rank=4, optimizer="sgd", lr=3e-3, weight_decay=0.1)
    plain.load_parameters(p0)
    for step in range(3):
        plain.forward_backward(*batch(t_vocab(path), seed=10 + step))
        plain.optimizer_step()
    assert max(np.abs(plain.parameters()[n] - t.parameters()[n]).max() for n in p0) > 1e-5
    assert "momentum" not in plain.optimizer_state()


def test_sgd_momentum_state_round_trip_and_bad_options(tiny):
    path = tiny("qwen2", "f32")
    tokens, mask = batch(t_vocab(path))
    a = trainer(path, rank=4, optimizer="sgd", lr=1e-2, momentum=0.5)
    for _ in range(2):
        a.forward_backward(tokens, mask)
        a.optimizer_step()
    b = trainer(path, rank=4, optimizer="sgd", lr=1e-2, momentum=0.5, seed=99)
    b.load_parameters(a.parameters())
    b.load_optimizer_state(a.optimizer_state())
    for t in (a, b):
        t.forward_backward(tokens, mask)
        t.optimizer_step()
    assert all(np.array_equal(a.parameters()[n], b.parameters()[n]) for n in a.parameters())
    assert a.memory_plan["scratch"] - trainer(path, rank=4, optimizer="sgd", lr=1e-2).memory_plan["scratch"] == \
        4 * sum(v.size for v in a.parameters().values())  # the buffer is one planned array of n_elements floats
    for kw, pat in ((dict(momentum=0.5), "momentum"), (dict(optimizer="sgd", momentum=1.0), "momentum"),
                    (dict(dtype="f16"), "dtype"), (dict(method="mezo", dtype="bf16"), "bf16")):
        with pytest.raises(ValueError, match=pat):
            trainer(path, rank=4, **kw)


@pytest.mark.parametrize("arch,recipe", [("llama", "f32"), ("qwen2", "f32")])
def test_bf16_params_with_f32_master(tiny, arch, recipe):
    path = tiny(arch, recipe)
    targets = ["q", "k", "v", "o", "gate", "up", "down"]
    kw = dict(method="sparse", targets=targets, rank=4, alpha=8.0, lr=3e-3, weight_decay=0.1)
    t = trainer(path, dtype="bf16", **kw)
    p0 = random_params(t, seed=4)
    t.load_parameters(p0)
    assert all(np.array_equal(t.parameters()[n], p0[n]) for n in p0)  # parameters() is the f32 master
    ref = TorchTrainRef(path)
    master = {n: torch.tensor(a, requires_grad=True) for n, a in p0.items()}
    topt = torch.optim.AdamW(master.values(), lr=3e-3, weight_decay=0.1)
    for step in range(2):
        tokens, mask = batch(t_vocab(path), seed=20 + step)
        cur = {n: p.detach().numpy().copy() for n, p in master.items()}
        want_loss, want_n, want = ref.loss_and_grads({n: bf16(a) for n, a in cur.items()}, tokens, mask, 8.0 / 4)
        loss, n = t.forward_backward(tokens, mask)
        assert n == want_n and abs(loss - want_loss) <= 1e-5 * abs(want_loss)
        got = t.gradients()
        worst = max(grad_errors(got, want).values())
        assert worst <= TOL_F32, (step, worst)
        # the rounding is applied: the gradients at the unrounded master differ by more than the tolerance
        _, _, at_f32 = ref.loss_and_grads(cur, tokens, mask, 8.0 / 4)
        assert max(grad_errors(got, at_f32).values()) > 10 * worst
        for name, p in master.items():
            p.grad = torch.tensor(got[name] / n)
        topt.step()
        t.optimizer_step()
        for name, p in master.items():
            w = p.detach().numpy()
            assert np.abs(t.parameters()[name] - w).max() <= 2e-6 * max(np.abs(w).max(), 1.0), (step, name)
    # a copy loaded with the master and the optimizer state continues identically
    c = trainer(path, dtype="bf16", seed=5, **kw)
    c.load_parameters(t.parameters())
    c.load_optimizer_state(t.optimizer_state())
    tokens, mask = batch(t_vocab(path), seed=30)
    for x in (t, c):
        x.forward_backward(tokens, mask)
        x.optimizer_step()
    assert all(np.array_equal(t.parameters()[n], c.parameters()[n]) for n in p0)
    f32 = trainer(path, **kw)
    assert t.memory_plan["scratch"] - f32.memory_plan["scratch"] == 4 * t.n_elements  # train.master


def test_train_front_end_passes_momentum_and_dtype(tmp_path):
    """edgerun.train(optimizer="sgd", momentum=..., dtype="bf16"): the checkpoint records both settings and the
    momentum buffer; resuming with another momentum is refused, naming it."""
    import edgerun
    from edgerun.train.adapter import read_checkpoint
    from edgeconv.cli import main as edgeconv_main
    from models.tiny import make_tiny
    from models.tiny_tokenizer import CORPUS

    make_tiny("llama", seed=3, dir=tmp_path / "m")
    base = str(tmp_path / "m.edge")
    assert edgeconv_main(["export", str(tmp_path / "m"), "-o", base, "--quant", "f32", "--quiet"]) in (0, None)
    (tmp_path / "c.txt").write_text(CORPUS)
    out = str(tmp_path / "a.edge")
    kw = dict(method="lora", rank=4, targets=("q", "v"), lr=1e-2, steps=2, batch=2, seq=16, optimizer="sgd",
              threads=2, save_every=1)
    res = edgerun.train(base, str(tmp_path / "c.txt"), out, momentum=0.9, dtype="bf16", **kw)
    assert res["steps"] == 2
    params, opt, state = read_checkpoint(out + ".ckpt")
    assert state["settings"]["momentum"] == pytest.approx(0.9) and state["settings"]["dtype"] == "bf16"
    assert set(opt["momentum"]) == set(params) and any(np.abs(v).max() > 0 for v in opt["momentum"].values())
    with pytest.raises(ValueError, match="momentum"):
        edgerun.train(base, str(tmp_path / "c.txt"), out, momentum=0.5, dtype="bf16", resume=True, **kw)
