"""What `edgeconv inspect` says about an MoE file: moe_info(EdgeFile) -> dict | None (None: dense).

    experts       MoE layers × experts, and the blob tensors found (checked against the variant keys)
    variants      per variant: blob, layout, stored bits per weight, bytes read per expert
    blobs         per blob: bytes per expert (4096-padded) and in total
    plan          experts per variant in moe.plan (and per layer when it is not all variant 0)
    predictor     moe.predictor and moe.predictor_recall (when the converter measured it)
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from .blobs import view_bits, view_nbytes


def moe_info(f) -> dict | None:
    m = f.metadata
    if "moe.n_experts" not in m:
        return None
    E, D, F = int(m["moe.n_experts"]), int(m["llm.d_model"]), int(m["moe.d_expert"])
    n_layers = int(m["llm.n_layers"])
    layers = [int(x) for x in m.get("moe.layers", [1] * n_layers)]
    moe_layers = [i for i, x in enumerate(layers) if x]
    blobs = [t for t in f.tensors if t.dtype == "blob"]
    info: dict = {"moe_layers": len(moe_layers), "dense_layers": n_layers - len(moe_layers), "n_experts": E,
                  "n_experts_used": int(m["moe.n_experts_used"]), "d_expert": F, "gating": m.get("moe.gating"),
                  "act": m.get("moe.act"), "router_input": m.get("moe.router_input"),
                  "blob_tensors": len(blobs), "expert_bytes": int(sum(t.nbytes for t in blobs))}
    try:
        vs = f.expert_variants()
    except ValueError as e:
        info["error"] = str(e)
        return info
    info["variants"] = [{"name": n, "blob": b, "layout": lay, "bits_per_weight": round(view_bits(lay, D, F), 4),
                         "read_bytes": view_nbytes(lay, D, F)} for n, b, lay in vs]
    per_blob = Counter(t.name.rsplit(".", 1)[1] for t in blobs)
    info["blobs"] = {b: {"count": per_blob.get(b, 0),
                         "bytes_each": next((t.nbytes for t in blobs if t.name.endswith("." + b)), 0)}
                     for b in dict.fromkeys(b for _, b, _ in vs)}
    missing = [b for b, c in info["blobs"].items() if c["count"] != len(moe_layers) * E]
    if missing:
        info["error"] = f"blobs {missing}: expected {len(moe_layers) * E} each (MoE layers × experts)"
    plan = m.get("moe.plan")
    if plan is not None and len(plan) == n_layers * E:
        p = np.asarray(plan).reshape(n_layers, E)[moe_layers]
        names = [n for n, _, _ in vs]
        info["plan"] = {names[j] if 0 <= j < len(names) else str(j): int((p == j).sum()) for j in np.unique(p)}
        info["plan_bits"] = round(float(np.mean([view_bits(vs[j][2], D, F) for j in p.reshape(-1)])), 4)
        if p.any():
            info["plan_per_layer"] = {int(i): [int((row == j).sum()) for j in range(len(vs))]
                                      for i, row in zip(moe_layers, p)}
    info["predictor"] = m.get("moe.predictor")
    if "moe.predictor_recall" in m:
        info["predictor_recall"] = float(m["moe.predictor_recall"])
    return info


def info_lines(info: dict) -> list[str]:
    """Human-readable lines for `edgeconv inspect`."""
    out = [f"MoE: {info['moe_layers']} MoE layers ({info['dense_layers']} dense) × {info['n_experts']} experts "
           f"(top-{info['n_experts_used']}, F {info['d_expert']}, {info['gating']}, {info['act']}, router reads "
           f"{info['router_input']}); {info['blob_tensors']} blob tensors, {info['expert_bytes']:,} B of experts"]
    if "error" in info:
        out.append(f"  INVALID: {info['error']}")
    for v in info.get("variants", []):
        out.append(f"  variant {v['name']:6s} blob {v['blob']:8s} {v['layout']:14s} {v['bits_per_weight']:.3f} "
                   f"bits/weight, reads {v['read_bytes']:,} B per expert")
    for b, c in info.get("blobs", {}).items():
        out.append(f"  blob {b}: {c['count']} × {c['bytes_each']:,} B")
    if "plan" in info:
        out.append("  plan: " + ", ".join(f"{k} ×{n}" for k, n in info["plan"].items())
                   + f" (average {info['plan_bits']:.3f} bits/weight)")
        for i, cnt in info.get("plan_per_layer", {}).items():
            out.append(f"    layer {i:3d}: " + " ".join(str(c) for c in cnt))
    rec = f", recall {info['predictor_recall']:.3f} on calibration text" if "predictor_recall" in info else ""
    out.append(f"  predictor: {info['predictor']}{rec}")
    return out
