"""GPTQ in worker processes (edgeconv/gptq_jobs.py): the exported bytes do not depend on the number of
processes, and results come back per key whatever order the workers finish in."""
from __future__ import annotations

import hashlib

from edgeconv.export import export
from edgeconv.gptq_jobs import GptqJobs


def _sha(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()


def test_export_bytes_do_not_depend_on_jobs(tmp_path):
    from models.tiny import make_tiny

    d = tmp_path / "m"
    make_tiny("llama", seed=1, dir=d)
    res = {}
    for j in (1, 3):
        out = tmp_path / f"j{j}.edge"
        r = export(d, out, recipe="int4", calib="stdlib", calib_tokens=1024, gptq=True, jobs=j)
        note = next(n for n in r.notes if n.startswith("GPTQ took"))
        assert (f"on {j} process" in note) and ("groups" in note), note
        res[j] = _sha(out)
    assert res[1] == res[3]


def test_jobs_results_by_key():
    import os

    keys = list(range(7))
    pool = GptqJobs(lambda k: {str(k): os.getpid()}, keys, 3)
    try:
        got = [pool.result(k) for k in reversed(keys)]  # asked in another order than submitted
    finally:
        pool.close()
    assert [list(g) for g in got] == [[str(k)] for k in reversed(keys)]
    assert all(pid != os.getpid() for g in got for pid in g.values())  # computed in the workers
    inline = GptqJobs(lambda k: {str(k): os.getpid()}, keys, 1)
    assert inline.result(3) == {"3": os.getpid()}
    inline.close()
