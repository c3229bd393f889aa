"""bench/train_curve.py (edgerun LoRA vs PyTorch + PEFT LoRA on the same dequantized weights, step for step) on a
tiny random llama: the comparison the SmolLM2 run reports, itself checked. On the f32 file both engines compute
the same f32 math (another summation order), so the curves agree to TOL_F32; on the q8 file edgerun quantizes each
matmul input to block_q8x (inference numerics) and PEFT does not: TOL_Q8. Held-out perplexity is the same before
training and falls in both.
Measured (3 steps, 2 × 16 tokens, r 4 on q, v, gate, down, lr 1e-2): f32 max Δloss 1.6e-7, held-out ppl 2e-7;
q8 max Δloss 7.6e-4, held-out ppl before 4.2e-3 / after 7.7e-3 (ppl = exp(NLL): 4e-3 of ppl is 4e-3 of NLL, absolute).
"""

import json
import os
import sys

import pytest

from edgeconv.cli import main as edgeconv_main
from models.tiny import make_tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import train_curve  # noqa: E402

pytest.importorskip("peft")

TOL_F32 = 1e-5
TOL_Q8 = 2e-2
TEXT = "The quick brown fox jumps over the lazy dog while the cat sleeps by the warm fire. " * 6
HELDOUT = "A lazy dog sleeps; the quick fox jumps over the fire and the cat watches it. " * 3


@pytest.mark.parametrize("recipe,tol", [("f32", TOL_F32), ("q8", TOL_Q8)])
def test_edgerun_loss_curve_equals_peft(tmp_path, recipe, tol):
    make_tiny("llama", seed=1, dir=tmp_path / "hf")
    model = str(tmp_path / f"tiny.{recipe}.edge")
    assert edgeconv_main(["export", str(tmp_path / "hf"), "-o", model, "--quant", recipe, "--quiet"]) in (0, None)
    (tmp_path / "train.txt").write_text(TEXT)
    (tmp_path / "heldout.txt").write_text(HELDOUT)
    out = tmp_path / "curve.json"
    assert train_curve.main(["--model", model, "--hf", str(tmp_path / "hf"), "--text", str(tmp_path / "train.txt"),
                             "--heldout", str(tmp_path / "heldout.txt"), "--steps", "3", "--seq", "16", "--batch", "2",
                             "--rank", "4", "--alpha", "8", "--targets", "q,v,gate,down", "--lr", "1e-2",
                             "--threads", "2", "--json", str(out), "--quiet"]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert len(row["edgerun_losses"]) == len(row["peft_losses"]) == 3
    assert row["max_rel_diff"] <= tol, row
    assert row["edgerun_ppl_before"] == pytest.approx(row["peft_ppl_before"], rel=tol)
    assert row["edgerun_ppl_after"] == pytest.approx(row["peft_ppl_after"], rel=tol)
    assert row["edgerun_ppl_after"] < row["edgerun_ppl_before"] and row["peft_ppl_after"] < row["peft_ppl_before"], row
    # the steps moved the parameters: a loss curve that merely repeats step 0 would hide a broken update
    assert row["edgerun_losses"][-1] < row["edgerun_losses"][0], row
