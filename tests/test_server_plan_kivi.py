"""server/plan.py fitted_ctx with a KIVI cache (--kv kivi4): its bytes are a fixed f16 ring (+ the sink group)
plus blocks per 32 positions, not bytes x positions, so the fitted context is the planner's own: the longest
multiple of 64 at which N slots (the C++ plan + the process + the slots' host state) fit --mem; 64 more do not.
The process term is the interpreter's resident set, which moves by up to ~2.5 MiB between two loads in one
process (measured: 6 rounds of probe / load / free), so one 64-position step is ~10 MiB here."""

import pytest

from edgeconv.cli import main as edgeconv_main
from models.tiny import make_tiny

SLOTS = 8


@pytest.fixture(scope="module")
def kivi_model(tmp_path_factory):
    """A tiny llama with head_dim 128 (KIVI's channel groups) and 32 layers: 64 positions of 8 slots are ~10 MiB of
    kivi4 cache, twice the resident set's jitter on either side of the half-step slack."""
    root = tmp_path_factory.mktemp("plan_kivi")
    make_tiny("llama", seed=4, dir=root / "hf", head_dim=128, num_attention_heads=4, num_key_value_heads=4,
              num_hidden_layers=32, max_position_embeddings=4096)
    out = root / "tiny.edge"
    assert edgeconv_main(["export", str(root / "hf"), "-o", str(out), "--quant", "q8", "--quiet"]) in (0, None)
    return str(out)


def test_fitted_ctx_is_exact_for_kivi(kivi_model):
    from edgerun import MemoryBudgetError, Model
    from edgerun.server.plan import host_bytes, load_slots
    from edgerun.server.scheduler import PREFILL_CHUNK
    kw = dict(kv="kivi4", batch=max(128, SLOTS + PREFILL_CHUNK))  # load_slots' batch for SLOTS slots
    vocab = Model(kivi_model, threads=1, ctx=256, **kw).vocab_size

    def need(n):  # the planner's bytes of SLOTS slots at context n + their host state (the process is added below)
        return int(Model(kivi_model, threads=1, ctx=n, n_seq=SLOTS, **kw).memory_plan["total"]) + SLOTS * host_bytes(n, vocab)

    target = 1536
    lo, hi = need(target), need(target + 64)
    assert hi - lo > 8 << 20, hi - lo
    # the process term is this interpreter's resident set when load_slots plans: measured just before it, so
    # the allocations of the models above (the resident set's drift in a long test run) are already in it
    probe = Model(kivi_model, threads=1, ctx=256, mem=1 << 40, mem_scope="process", **kw)
    process = int(probe.memory_plan["process"])
    del probe
    mem = process + (lo + hi) // 2  # half a step of slack either way
    seqs, plan = load_slots(kivi_model, SLOTS, mem, None, 1, **kw)
    assert seqs[0].model.ctx == target and seqs[0].model.kv == "kivi4"
    assert plan.total <= mem
    del seqs
    with pytest.raises(MemoryBudgetError):
        load_slots(kivi_model, SLOTS, mem, target + 64, 1, **kw)
