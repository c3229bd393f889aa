"""edgeconv merge: fold trained adapters (docs/TRAINING.md, `edgerun train`) into a new .edge file.

    merge("model.edge", [("a.edge", 1.0), ("b.edge", 0.5)], "merged.edge", recipe=None)

For every matrix an adapter targets: W' = dequant(W) + Σ_j s_j·(alpha_j / rank_j)·B_j·A_j, then quantized again
to its dtype — the base's own dtype (recipe None), or the one the recipe (and --tensor-type overrides) gives
it, as `edgeconv export` would (recipes.assign_dtypes). Tensors no adapter touches keep their stored bytes
when their dtype is unchanged (exact copies). Bias deltas on q / k / v are added to the model's q/k/v biases
(created, llm.qkv_bias = 1, when the base has none); bias deltas on other matrices have no place in the
format and are an error (apply such adapters at run time with --adapter). Each adapter must have been trained
on this base (adapter.base_checksum).
MoE files: an adapter's expert terms (blk.{i}.exp.{e}.ffn_gate / ffn_up / ffn_down.lora_a / lora_b) are folded
into that expert's blobs: each blob (docs/MOE.md §3) is decoded in its own layout (planes4: int4_32 rows;
concat:<dtype>: <dtype> rows), dequantized, W + ΔW re-quantized to the same row dtype and encoded in the same
layout, so every variant (int2 included: a prefix of the planes4 blob) carries the merge. The experts keep the
base's variants whatever the recipe (it applies to the other tensors); blobs of experts no adapter touches are
copied byte for byte. Expert bias deltas have no place in the format: an error, as for dense matrices.
Metadata is the base's (quant.recipe replaced when a recipe is given) plus general.merged_adapters.
The output is written atomically (EdgeWriter).
"""
from __future__ import annotations

import os

import numpy as np

from .format import META_TYPE_NAMES, EdgeFile
from .writer import EdgeWriter

__all__ = ["merge"]

_TYPE_IDS = {v: k for k, v in META_TYPE_NAMES.items()}
_QKV = ("attn_q", "attn_k", "attn_v")
_F32 = ("ffn_router", "ffn_router_pred")  # stay f32 whatever the recipe (the runtime reads MoE routers as f32)


def _role(name: str) -> str:
    if name == "tok_embd":
        return "embedding"
    if name == "output":
        return "head"
    parts = name.split(".")
    return parts[2] if len(parts) >= 3 and parts[0] == "blk" else name


_EXPERT_MATRICES = ("ffn_gate", "ffn_up", "ffn_down")  # an expert's gate [F, D], up [F, D], down [D, F]


def _expert_delta(base: EdgeFile, path: str, name: str, stem: str, part: str, d) -> tuple[tuple[int, int], int]:
    """((layer, expert), matrix index) of an expert tensor blk.{i}.exp.{e}.{ffn_*}.{part}, checked against the base."""
    _, i, _, e, mat = stem.split(".")
    m = base.metadata
    i, e, j = int(i), int(e), _EXPERT_MATRICES.index(mat)
    layers = m.get("moe.layers")
    if "moe.n_experts" not in m or layers is None or i >= len(layers) or not int(layers[i]):
        raise ValueError(f"{path}: tensor {name!r} targets an expert, but layer {i} of the base is not a "
                         f"mixture-of-experts layer")
    if e >= int(m["moe.n_experts"]):
        raise ValueError(f"{path}: tensor {name!r}: the base's MoE layers have {int(m['moe.n_experts'])} experts")
    if part == "bias":
        raise ValueError(f"{path}: a bias delta on {stem} cannot be folded into an .edge file (the format has no "
                         f"expert biases); apply this adapter at run time with --adapter")
    D, F = int(m["llm.d_model"]), int(m["moe.d_expert"])
    want = ((F, D), (F, D), (D, F))[j]
    if d.shape != want:
        raise ValueError(f"{path}: {stem}.lora_b @ lora_a is {d.shape}, the base's expert matrix is {want}")
    return (i, e), j


def _deltas(base: EdgeFile, base_path: str, adapters: list[tuple[str, float]]):
    """({matrix name: f32 delta}, {bias tensor name: f32 delta}, {(layer, expert): [ΔW_gate, ΔW_up, ΔW_down]})
    summed over the adapters (an expert's untouched matrices: 0)."""
    from edgerun.train.adapter import base_checksum, read_adapter

    want = base_checksum(base_path)
    dw: dict[str, np.ndarray] = {}
    db: dict[str, np.ndarray] = {}
    de: dict[tuple[int, int], list] = {}
    for path, s in adapters:
        a = read_adapter(path)
        got = int(a.metadata.get("adapter.base_checksum", -1))
        if got != want:
            raise ValueError(f"{path} was trained on {a.metadata.get('adapter.base_name', 'another model')} "
                             f"(base checksum {got & 0xFFFFFFFF:08x}), not on {base_path} (checksum {want:08x}); "
                             "merge it into the model it was trained on")
        for name, t in a.tensors.items():
            stem, part = name.rsplit(".", 1)
            if stem.split(".")[2] == "exp":
                if part == "lora_b":
                    continue  # folded with its lora_a
                d = ((s * a.scale) * (a.tensors[stem + ".lora_b"].astype(np.float64) @ t.astype(np.float64))
                     if part == "lora_a" else None)
                key, j = _expert_delta(base, path, name, stem, part, d)
                terms = de.setdefault(key, [0, 0, 0])
                terms[j] = terms[j] + d
                continue
            if stem not in base:
                raise ValueError(f"{path}: tensor {name!r} targets {stem!r}, which {base_path} does not have")
            if part == "lora_a":
                d = (s * a.scale) * (a.tensors[stem + ".lora_b"].astype(np.float64) @ t.astype(np.float64))
                if d.shape != tuple(base.tensor(stem).shape):
                    raise ValueError(f"{path}: {stem}.lora_b @ lora_a is {d.shape}, the base's {stem} is "
                                     f"{tuple(base.tensor(stem).shape)}")
                dw[stem] = dw.get(stem, 0) + d
            elif part == "bias":
                role = _role(stem)
                if role not in _QKV:
                    raise ValueError(f"{path}: a bias delta on {stem} cannot be folded into an .edge file (the format has "
                                     f"biases on q / k / v only); apply this adapter at run time with --adapter")
                db[stem + "_bias"] = db.get(stem + "_bias", 0) + s * t.astype(np.float64)
    return dw, db, de


def _blob_layouts(base: EdgeFile) -> dict[str, str]:
    """{blob suffix: the layout it is encoded in} of an MoE file (planes4 for the nested int4 / int2 blob)."""
    out: dict[str, str] = {}
    for _, blob, layout in base.expert_variants():
        out.setdefault(blob, "planes4" if layout == "planes4_msb" else layout)
    return out


def _merged_blob(raw, layout: str, delta: list, D: int, F: int) -> np.ndarray:
    """An expert blob with W + ΔW folded in: decoded, dequantized, re-quantized to its row dtype, re-encoded."""
    from .moe import blobs as B
    from .quant import dequantize, quantize

    dt, rows = B.view_rows(raw, layout, D, F)
    out = []
    for r, shape, d in zip(rows, B.expert_shapes(D, F), delta):
        if isinstance(d, int):  # no delta on this matrix: its stored rows as they are
            out.append(np.ascontiguousarray(r))
            continue
        w = dequantize(r, dt, shape).astype(np.float64) + d
        out.append(quantize(w.astype(np.float32), dt))
    return B.encode_blob(layout, out, D, F)


def _dtypes(base: EdgeFile, recipe: str | None, tensor_types) -> dict[str, str]:
    if recipe is None and not tensor_types:
        return {t.name: t.dtype for t in base.tensors}
    from .archs.plan import PlannedTensor
    from .recipes import assign_dtypes, get_recipe, parse_overrides

    plain = [t for t in base.tensors if t.dtype != "blob"]  # expert blobs keep their variants
    blobs = {t.name: "blob" for t in base.tensors if t.dtype == "blob"}
    plan = [PlannedTensor(t.name, t.name, _role(t.name), tuple(t.shape),
                          int(t.name.split(".")[1]) if t.name.startswith("blk.") else None,
                          "f32" if t.dtype == "f32" and (len(t.shape) == 1 or _role(t.name) in _F32) else None, False,
                          None) for t in plain]
    if recipe is None:  # overrides only: the base's dtypes for the rest
        out = {t.name: t.dtype for t in base.tensors}
        for rx, dt in parse_overrides(tensor_types):
            for t in plain:
                if len(t.shape) > 1 and rx.search(t.name):
                    out[t.name] = dt
        return out
    return {**assign_dtypes(plan, get_recipe(recipe), parse_overrides(tensor_types),
                            n_layers=int(base.metadata.get("llm.n_layers", 0))), **blobs}


def merge(model_path: str, adapters: list[tuple[str, float]], out_path: str, recipe: str | None = None,
          tensor_types=(), log=None) -> dict:
    """Write `out_path`; returns {"merged": [matrix names], "requantized": n, "copied": n, "bytes": size}."""
    from .quant import quantize

    if not adapters:
        raise ValueError("merge needs at least one adapter")
    if os.path.abspath(out_path) in {os.path.abspath(model_path), *(os.path.abspath(p) for p, _ in adapters)}:
        raise ValueError(f"{out_path}: the output must be a new file, not one of the inputs")
    with EdgeFile(model_path) as base:
        dw, db, de = _deltas(base, model_path, adapters)
        moe = any(t.dtype == "blob" for t in base.tensors)
        layouts = _blob_layouts(base) if moe else {}
        first_blob = next(iter(layouts), None)  # carries the expert's weights for bits_per_weight
        D, F = int(base.metadata.get("llm.d_model", 0)), int(base.metadata.get("moe.d_expert", 0))
        dtypes = _dtypes(base, recipe, tensor_types)
        meta = dict(base.metadata)
        types = dict(base.meta_types)
        tensors = [(t.name, tuple(t.shape)) for t in base.tensors]
        if db and not int(meta.get("llm.qkv_bias", 0)):  # the base has no q/k/v biases: create all three, zero
            meta["llm.qkv_bias"] = 1
            new = []
            for name, shape in tensors:
                new.append((name, shape))
                if _role(name) in _QKV:
                    new.append((name + "_bias", (shape[0],)))
                    dtypes[name + "_bias"] = "f32"
            tensors = new
        if recipe is not None:
            meta["quant.recipe"] = recipe
            types["quant.recipe"] = "STR"
        meta["general.merged_adapters"] = [f"{os.path.basename(p)}:{s:g}" for p, s in adapters]
        types["general.merged_adapters"] = "ARR_STR"
        stats = {"merged": sorted(dw) + [f"blk.{i}.exp.{e}" for i, e in sorted(de)], "requantized": 0, "copied": 0}

        def expert_of(name: str):
            """(layer, expert, blob suffix) of a blob tensor blk.{i}.exp.{e}.{blob}."""
            _, i, _, e, blob = name.split(".", 4)
            return int(i), int(e), blob
        with EdgeWriter(out_path) as w:
            for k, v in meta.items():
                if k == "quant.bits_per_weight":
                    continue
                w.add_metadata(k, v, _TYPE_IDS[types[k]])
            for name, shape in tensors:
                nw = None
                if dtypes[name] == "blob":
                    nw = 3 * D * F if expert_of(name)[2] == first_blob else 0
                w.declare(name, dtypes[name], shape, n_weights=nw)
            w.begin()
            for name, shape in tensors:
                dt = dtypes[name]
                if dt == "blob":
                    i, e, blob = expert_of(name)
                    if (i, e) in de:
                        w.write_tensor(name, _merged_blob(base.raw(name), layouts[blob], de[(i, e)], D, F))
                        stats["requantized"] += 1
                    else:
                        w.write_tensor(name, base.raw(name))
                        stats["copied"] += 1
                    continue
                have = name in base
                if have and name not in dw and name not in db and base.tensor(name).dtype == dt:
                    w.write_tensor(name, base.raw(name))
                    stats["copied"] += 1
                    continue
                x = base.array(name).astype(np.float64) if have else np.zeros(shape, np.float64)
                x = x + dw.get(name, 0) + db.get(name, 0)
                w.write_tensor(name, quantize(x.astype(np.float32).reshape(shape[0], -1) if len(shape) > 1
                                              else x.astype(np.float32), dt))
                stats["requantized"] += 1
        stats["bytes"] = os.path.getsize(out_path)
    if log:
        log(f"{out_path}: {len(stats['merged'])} matrices merged, {stats['requantized']} tensors re-quantized, "
            f"{stats['copied']} copied, {stats['bytes']} bytes")
    return stats
