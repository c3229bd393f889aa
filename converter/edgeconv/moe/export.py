"""The MoE part of `edgeconv export` (docs/MOE.md): options, predictor, expert blobs, plan.

    m = MoeExport(src, hp, plan, experts, recipe_dtype, variants=None, predictor=None, expert_bits=None,
                  calibrated=False, log=print)               # validates the options against the model
    m.metadata()                  moe.variants / variant_blob / variant_layout / plan (placeholder) /
                                  predictor_recall (when measured) — appended to the file's metadata
    m.calibrate(weights, tokens, ctx, max_tokens, gptq)      runs models/moe over calibration text
    m.fit_predictor(read)         -> {blk.i.ffn_router_pred: W, _b: b} (fold, or ridge LSQ with calibration)
    m.declare(writer)             one blob tensor per (MoE layer, expert, blob), after the plan's tensors
    m.write_experts(writer, quantize_rows, progress)         stream: read, quantize, encode, write
    m.finish(writer)              moe.plan (measured with --expert-bits) replaces the placeholder

Expert storage: each blob of each expert is the `blob` tensor blk.i.exp.e.<blob> (4096-aligned offset
and size). planes4 blobs hold the ordinary int4_32 quantization of gate, up, down (with calibration:
importance = mean squared input of the tokens routed to the expert, or GPTQ against their second
moments H), re-sliced into bit-planes (blobs.py); concat:<dtype> blobs hold the rows of that dtype.
Only one expert's float weights and bytes are in memory at a time (plus one layer's fused source
tensors where the source fuses them).
"""
from __future__ import annotations

import os
import time
from typing import Callable

import numpy as np

from . import blobs as B
from .calib import MoeCalib, collect, expert_inputs
from .expert_bits import plan_bits, sensitivity
from .predictor import fit_lsq, fold, predict, recall_counts
from .source import ExpertReader
from .variants import Variant, blob_layout, blobs_of, default_spec, parse_variants

HOLDOUT = 0.25  # share of the calibration tokens (the last ones) kept out of the predictor fit


class MoeExport:
    def __init__(self, src, hp: dict, plan, experts, recipe_dtype: str, variants: str | None = None,
                 predictor: str | None = None, expert_bits: float | None = None, calibrated: bool = False,
                 log: Callable[[str], None] | None = None):
        self.src, self.hp, self.plan, self.experts = src, hp, plan, experts
        self.log = log or (lambda m: None)
        self.D, self.F, self.E = hp["llm.d_model"], hp["moe.d_expert"], hp["moe.n_experts"]
        self.k = hp["moe.n_experts_used"]
        self.n_layers = hp["llm.n_layers"]
        self.moe_layers = [i for i, m in enumerate(hp["moe.layers"]) if m]
        self.variants: list[Variant] = parse_variants(variants or default_spec(recipe_dtype), self.D, self.F)
        self.blobs = blobs_of(self.variants)
        self.bits = [B.view_bits(v.layout, self.D, self.F) for v in self.variants]
        kind = hp["moe.predictor"]
        if kind == "router":
            if predictor not in (None, "router"):
                raise ValueError(f"--predictor {predictor}: {src.arch.name} routes from the pre-attention residual, "
                                 f"so its router is the predictor (moe.predictor = router); nothing to fit")
        elif predictor not in (None, "fold", "lsq"):
            raise ValueError(f"--predictor {predictor!r}: expected fold or lsq")
        elif predictor == "lsq" and not calibrated:
            raise ValueError("--predictor lsq fits the predictor to the router on calibration text: add --calib "
                             "stdlib (built-in text) or --calib TEXTFILE")
        self.predictor = None if kind == "router" else (predictor or ("lsq" if calibrated else "fold"))
        if expert_bits is not None:
            if not calibrated:
                raise ValueError("--expert-bits measures each expert's sensitivity on calibration text: add --calib "
                                 "stdlib or --calib TEXTFILE")
            if len(self.variants) < 2:
                raise ValueError(f"--expert-bits needs at least two expert variants (e.g. --expert-variants "
                                 f"int4,int2); got {[v.name for v in self.variants]}")
            if not self.bits[-1] <= expert_bits:
                raise ValueError(f"--expert-bits {expert_bits}: below the smallest variant "
                                 f"({self.variants[-1].name}, {self.bits[-1]:.3g} bits per weight)")
        self.expert_bits = expert_bits
        self.calib: MoeCalib | None = None
        self.recall: dict | None = None
        self.n_weighted = 0  # experts quantized against their routed calibration inputs
        self.plan_result: np.ndarray | None = None
        self.sens = np.zeros((len(self.moe_layers), self.E, len(self.variants)))

    # -- metadata ------------------------------------------------------------------------------------------
    def metadata(self) -> list[tuple[str, object]]:
        """(key, value) pairs; moe.plan is a placeholder of its final size (set by finish())."""
        out = [("moe.variants", [v.name for v in self.variants]),
               ("moe.variant_blob", [v.blob for v in self.variants]),
               ("moe.variant_layout", [v.layout for v in self.variants]),
               ("moe.plan", np.zeros(self.n_layers * self.E, np.int64))]
        if self.recall is not None:
            out.append(("moe.predictor_recall", float(self.recall["stored"])))
        return out

    # -- calibration and predictor ---------------------------------------------------------------------------
    def calibrate(self, weights, tokens: list[int], ctx: int, max_tokens: int, gptq: bool) -> MoeCalib:
        t0 = time.time()
        self.calib = collect(weights, self.hp, tokens, ctx=ctx, max_tokens=max_tokens, hessians=gptq,
                             predictor_inputs=self.predictor is not None)
        self.log(f"MoE calibration: {self.calib.n_tokens} tokens through the models/moe reference in "
                 f"{time.time() - t0:.1f} s")
        return self.calib

    def fit_predictor(self, read: Callable[[str], np.ndarray]) -> dict[str, np.ndarray]:
        """{blk.i.ffn_router_pred: [E, D], blk.i.ffn_router_pred_b: [E]} for every MoE layer ({} for
        moe.predictor = router). read(name) gives a float32 plan tensor (router, ffn_norm)."""
        if self.predictor is None:
            return {}
        out: dict[str, np.ndarray] = {}
        table = []
        tot = {"fold": [0, 0], "lsq": [0, 0], "stored": [0, 0]}
        held_out = 0
        for i in self.moe_layers:
            p = f"blk.{i}."
            wf, bf = fold(read(p + "ffn_router"), read(p + "ffn_norm"))
            w, b = wf, bf
            if self.calib is not None:
                st = self.calib.layers[i]
                n = len(st.u)
                cut = max(1, min(n - 1, int(round(n * (1 - HOLDOUT)))))
                test_u, test_l = st.u[cut:], st.logits[cut:]
                held_out = n - cut
                rf = recall_counts(predict(test_u, wf, bf), test_l, self.k)
                row = {"layer": i, "fold": rf[0] / rf[1]}
                _add(tot["fold"], rf)
                chosen = rf
                if self.predictor == "lsq":
                    wl, bl = fit_lsq(st.u[:cut], st.logits[:cut])
                    rl = recall_counts(predict(test_u, wl, bl), test_l, self.k)
                    row["lsq"] = rl[0] / rl[1]
                    _add(tot["lsq"], rl)
                    if rl[0] >= rf[0]:  # keep the fit unless the data-free fold predicts better held out
                        w, b, chosen = wl, bl, rl
                    row["stored"] = "lsq" if w is wl else "fold"
                else:
                    row["stored"] = "fold"
                _add(tot["stored"], chosen)
                table.append(row)
            out[p + "ffn_router_pred"], out[p + "ffn_router_pred_b"] = w, b
        if self.calib is not None:
            self.recall = {"layers": table, "tokens_held_out": held_out,
                           **{k: (v[0] / v[1] if v[1] else float("nan")) for k, v in tot.items() if v[1]}}
            for line in self.recall_lines():
                self.log(line)
        return out

    def recall_lines(self) -> list[str]:
        r = self.recall
        if r is None:
            return []
        cols = ["fold"] + (["lsq"] if "lsq" in r else [])
        lines = [f"predictor recall (true top-{self.k} found in predicted top-{self.k}) on "
                 f"{r['tokens_held_out']} held-out calibration tokens:",
                 "  layer  " + "  ".join(f"{c:>6s}" for c in cols) + "  stored"]
        for row in r["layers"]:
            lines.append(f"  {row['layer']:5d}  " + "  ".join(f"{row[c]:6.3f}" for c in cols) + f"  {row['stored']}")
        lines.append("  all    " + "  ".join(f"{r[c]:6.3f}" for c in cols) + f"  {r['stored']:.3f}")
        return lines

    # -- experts ---------------------------------------------------------------------------------------------
    def declare(self, writer) -> None:
        n = 3 * self.D * self.F
        for e in self.experts:
            for j, blob in enumerate(self.blobs):
                nb = B.blob_nbytes(blob_layout(self.variants, blob), self.D, self.F)
                writer.declare(e.blob_name(blob), "blob", (nb,), n_weights=n if j == 0 else 0)

    def blob_infos(self) -> list[tuple[str, int]]:
        """(name, nbytes) of every blob, in write order (for size estimates before declaring)."""
        return [(e.blob_name(b), B.blob_nbytes(blob_layout(self.variants, b), self.D, self.F))
                for e in self.experts for b in self.blobs]

    def write_experts(self, writer, quantize_rows: Callable, progress: bool = False,
                      workers: int | None = None) -> None:
        """quantize_rows(w [rows, cols], dtype, importance | None, H | None) -> stored rows (the exporter's
        quantizer: plain, importance-weighted or GPTQ, as for dense tensors).

        Experts are read in file order by this thread and quantized/encoded by `workers` threads (default
        min(4, CPUs); numpy releases the GIL in its loops); at most workers + 1 experts are in flight,
        and blobs are written in order, so memory stays a few experts and the bytes do not depend on it."""
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        from tqdm import tqdm

        workers = workers or max(1, min(4, os.cpu_count() or 1))
        reader = ExpertReader(self.src)
        layer_pos = {l: j for j, l in enumerate(self.moe_layers)}
        pending: deque = deque()

        def drain(n: int) -> None:
            while len(pending) > n:
                pe, out, sens, weighted = pending.popleft().result()
                self.n_weighted += weighted
                for name, data in out:
                    writer.write_tensor(name, data)
                if sens is not None:
                    self.sens[layer_pos[pe.layer], pe.expert] = sens
                bar.update(1)

        # the bar closes (its line cleared) before an error leaves, so the CLI's error line is not glued to it
        with tqdm(total=len(self.experts), unit="expert", desc="experts", leave=False, disable=not progress) as bar, \
                ThreadPoolExecutor(workers) as pool:
            last_layer = None
            for pe in self.experts:
                if pe.layer != last_layer:  # fused source tensors of the previous layer are done
                    reader.release()
                    last_layer = pe.layer
                pending.append(pool.submit(self._encode_expert, pe, reader.load(pe), quantize_rows))
                drain(workers)
            drain(0)
        reader.release()

    def _encode_expert(self, pe, ws: list[np.ndarray], quantize_rows: Callable):
        """(expert, [(blob tensor name, bytes)], sensitivities or None, calibrated?) of one expert; a pure
        function of its weights and the calibration data (runs in a worker thread)."""
        act = self.hp["moe.act"]
        imps, hs, routed = [None] * 3, [None] * 3, None
        if self.calib is not None:
            h, g, wts = expert_inputs(self.calib.layers[pe.layer], pe.expert, ws[0], ws[1], act)
            routed = (h, wts)
            if len(h):
                x64 = [h.astype(np.float64), g.astype(np.float64)]
                imps = [(x64[0] ** 2).mean(0), (x64[0] ** 2).mean(0), (x64[1] ** 2).mean(0)]
                if self.calib.hessians is not None:
                    hh = x64[0].T @ x64[0] / len(h)
                    hs = [hh, hh, x64[1].T @ x64[1] / len(h)]
        out, views = [], {}
        for blob in self.blobs:
            layout = blob_layout(self.variants, blob)
            dt = B.concat_dtype(layout) or "int4_32"
            rows = [quantize_rows(w, dt, imp, hm) for w, imp, hm in zip(ws, imps, hs)]
            data = B.encode_blob(layout, rows, self.D, self.F)
            out.append((pe.blob_name(blob), data))
            if self.expert_bits is not None:
                for v, var in enumerate(self.variants):
                    if var.blob == blob:
                        views[v] = B.expert_weights(data, var.layout, self.D, self.F)
        sens = None
        if self.expert_bits is not None:
            sens = sensitivity(routed[0], routed[1], [views[v] for v in range(len(self.variants))], act)
        return pe, out, sens, imps[0] is not None

    def finish(self, writer) -> None:
        if self.expert_bits is None:
            return
        plan = plan_bits(self.sens, self.bits, self.expert_bits)
        full = np.zeros((self.n_layers, self.E), np.int64)
        for j, l in enumerate(self.moe_layers):
            full[l] = plan[j]
        writer.set_metadata("moe.plan", full.reshape(-1))
        self.plan_result = full
        for line in self.plan_lines():
            self.log(line)

    def summary(self) -> dict:
        """JSON-able description for ExportResult.moe / the CLI."""
        sizes = {b: B.blob_nbytes(blob_layout(self.variants, b), self.D, self.F) for b in self.blobs}
        return {"experts": len(self.experts), "moe_layers": len(self.moe_layers), "n_experts": self.E,
                "variants": [{"name": v.name, "blob": v.blob, "layout": v.layout, "bits_per_weight": round(b, 4),
                              "read_bytes": B.view_nbytes(v.layout, self.D, self.F)}
                             for v, b in zip(self.variants, self.bits)],
                "blob_bytes": sizes, "predictor": self.predictor or "router", "recall": self.recall,
                "plan": self.plan_summary()}

    def plan_summary(self) -> dict:
        p = self.plan_result
        if p is None:
            return {"default": self.variants[0].name}
        rows = p[self.moe_layers]
        avg = float(np.mean([self.bits[v] for v in rows.reshape(-1)]))
        return {"expert_bits": self.expert_bits, "average_bits": avg,
                "count": {v.name: int((rows == j).sum()) for j, v in enumerate(self.variants)},
                "per_layer": {int(l): [int((p[l] == j).sum()) for j in range(len(self.variants))]
                              for l in self.moe_layers}}

    def plan_lines(self) -> list[str]:
        s = self.plan_summary()
        if "count" not in s:
            return []
        names = [v.name for v in self.variants]
        lines = [f"expert plan for --expert-bits {s['expert_bits']}: " + ", ".join(
                 f"{n} ×{c}" for n, c in s["count"].items()) + f" (average {s['average_bits']:.3f} bits per weight)",
                 "  layer  " + "  ".join(f"{n:>6s}" for n in names)]
        for l, cnt in s["per_layer"].items():
            lines.append(f"  {l:5d}  " + "  ".join(f"{c:6d}" for c in cnt))
        return lines


def _add(acc: list[int], rc: tuple[int, int]) -> None:
    acc[0] += rc[0]
    acc[1] += rc[1]
