"""Expert variants: which precisions each expert can be read in (moe.variants / variant_blob /
variant_layout, docs/MOE.md §2), from `--expert-variants` or the recipe.

    "int4"      nested int4_32 bit-planes, blob "planes4", view planes4
    "int2"      the 2-bit MSB prefix of the same blob, view planes4_msb (needs "int4" before it)
    <dtype>     a separate blob named <dtype> in layout concat:<dtype> (q8_0, mxfp4, int4_32, f16, ...)
Listed best first. Defaults: int4 / int4a recipes -> "int4,int2" (one blob, two views); any other recipe
-> its weight dtype as one concat blob (q8 -> "q8_0", f16 -> "f16", mxfp4 -> "mxfp4").
"""
from __future__ import annotations

from dataclasses import dataclass

from ..quant import DTYPES
from .blobs import concat_dtype, view_bits


@dataclass(frozen=True)
class Variant:
    name: str      # moe.variants entry
    blob: str      # tensor suffix: blk.i.exp.e.<blob>
    layout: str    # planes4 | planes4_msb | concat:<dtype>

    @property
    def dtype(self) -> str:
        """The row dtype the runtime computes with."""
        return concat_dtype(self.layout) or "int4_32"


def default_spec(recipe_default_dtype: str) -> str:
    return "int4,int2" if recipe_default_dtype.startswith("int4") else recipe_default_dtype


def parse_variants(spec: str, d_model: int, d_expert: int) -> list[Variant]:
    """"int4,int2" / "q8_0,mxfp4" / ... -> [Variant], checked against the expert shape (blocks must divide
    D and F) and ordered best first (stored bits per weight must decrease)."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise ValueError("--expert-variants is empty")
    if len(set(names)) != len(names):
        raise ValueError(f"--expert-variants {spec!r}: a variant is listed twice")
    out = []
    for n in names:
        if n == "int4":
            out.append(Variant("int4", "planes4", "planes4"))
        elif n == "int2":
            if "int4" not in [v.name for v in out]:
                raise ValueError(f"--expert-variants {spec!r}: int2 is the 2-bit prefix of the int4 planes; "
                                 f"list int4 before it")
            out.append(Variant("int2", "planes4", "planes4_msb"))
        elif n in DTYPES and n not in ("blob", "i32"):
            out.append(Variant(n, n, f"concat:{n}"))
        else:
            known = ", ".join(d for d in DTYPES if d not in ("blob", "i32"))
            raise ValueError(f"--expert-variants: unknown variant {n!r}; use int4, int2 or a dtype ({known})")
    try:
        bits = [view_bits(v.layout, d_model, d_expert) for v in out]
    except ValueError as e:
        raise ValueError(f"--expert-variants {spec!r}: {e}") from None
    if any(b1 >= b0 for b0, b1 in zip(bits, bits[1:])):
        desc = ", ".join(f"{v.name} {b:.3g}" for v, b in zip(out, bits))
        raise ValueError(f"--expert-variants {spec!r}: list the variants best first (bits per weight must "
                         f"decrease: {desc})")
    return out


def blobs_of(variants: list[Variant]) -> list[str]:
    """The distinct blobs to store, in order of first use."""
    out: list[str] = []
    for v in variants:
        if v.blob not in out:
            out.append(v.blob)
    return out


def blob_layout(variants: list[Variant], blob: str) -> str:
    """The layout a blob is encoded in (planes4 for the nested blob)."""
    lay = next(v.layout for v in variants if v.blob == blob)
    return "planes4" if lay == "planes4_msb" else lay
