"""Match an ONNX decoder graph to the dense edgerun layout (llama / qwen2 / qwen3): tensor roles and
hyper-parameters, from the graph's structure only (initializer names differ between exporters and are ignored).

Handles what torch.onnx.export (dynamo and TorchScript) and the ONNX Runtime GenAI builder emit:
  linear      MatMul(x, W) with W a constant (possibly behind Transpose / Cast / Identity), Gemm, or
              com.microsoft MatMulNBits; a bias is an Add of a 1-D constant on its output (or Gemm's C,
              MatNBits' bias input)
  RMSNorm     SimplifiedLayerNormalization, SkipSimplifiedLayerNormalization (com.microsoft),
              RMSNormalization (opset 23), or decomposed: Mul(w, x · 1/sqrt(mean(x²) + eps)) with any of
              Pow / Mul, Sqrt + Div / Reciprocal, Rsqrt
  attention   GroupQueryAttention, MultiHeadAttention (com.microsoft), Attention (opset 23), or decomposed:
              MatMul(q, kᵀ) … Softmax … MatMul(p, v)
  RoPE        RotaryEmbedding (com.microsoft / opset 23), GroupQueryAttention's do_rotary caches, or the
              exporters' inline rotate-half arithmetic on an inv_freq constant

The walk: linears in graph order are grouped by the activation they read; per block the groups must be
  attention-in (q, k, v: 3 linears, or 1 fused qkv split by Split / a packed attention op) → o → FFN-in
  (gate, up) → down, then the head. Within a group, roles come from where each output goes: the attention op's
  input index, or the decomposed score MatMul (q = input 0, k = input 1) / the MatMul after Softmax (v); gate
  is the one that reaches a Sigmoid (SiLU = x·sigmoid(x)). Norm weights are found by walking back from each
  group's input; q/k norms on the way from q/k to attention.
match(g, where) -> Match. A graph that does not fit raises ValueError naming the first node that cannot be mapped.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .onnx_graph import PASS, node_label

MS = "com.microsoft"
ATTN_OPS = {("com.microsoft", "GroupQueryAttention"), ("com.microsoft", "MultiHeadAttention"), ("", "Attention")}
NORM_OPS = {("", "SimplifiedLayerNormalization"), ("com.microsoft", "SimplifiedLayerNormalization"),
            ("com.microsoft", "SkipSimplifiedLayerNormalization"), ("", "RMSNormalization")}
ROPE_OPS = {("com.microsoft", "RotaryEmbedding"), ("", "RotaryEmbedding")}
# Ops a dense decoder's graph may contain besides the ones above (shape arithmetic, masks, elementwise math).
STD_OK = {
    "Constant", "Identity", "Cast", "CastLike", "Shape", "Size", "Gather", "GatherND", "GatherElements", "Unsqueeze",
    "Squeeze", "Reshape", "Flatten", "Concat", "Split", "Slice", "Expand", "Tile", "Transpose", "Range",
    "ConstantOfShape", "Where", "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Not",
    "Xor", "IsNaN", "IsInf", "CumSum", "Trilu", "ScatterND", "ScatterElements", "Max", "Min", "Abs", "Neg", "Sign",
    "Floor", "Ceil", "Round", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Reciprocal", "Exp", "Log", "ReduceMean",
    "ReduceSum", "ReduceMax", "ReduceMin", "Softmax", "Sigmoid", "MatMul", "Gemm", "Cos", "Sin", "Dropout", "NonZero",
    "Mod", "ArgMax", "SplitToSequence", "SequenceAt", "Pad", "Einsum", "Mean", "Swish", "Clip", "BitwiseAnd",
    "BitwiseOr", "BitwiseNot", "Attention", "RMSNormalization", "RotaryEmbedding", "SimplifiedLayerNormalization",
}
MS_OK = {"SimplifiedLayerNormalization", "SkipSimplifiedLayerNormalization", "RotaryEmbedding",
         "GroupQueryAttention", "MultiHeadAttention", "MatMulNBits"}
SHAPE_OPS = PASS + ("Reshape", "Transpose", "Squeeze", "Unsqueeze", "Expand", "Dropout")


def _key(node) -> tuple[str, str]:
    return ("" if node.domain == "ai.onnx" else node.domain, node.op_type)


@dataclass
class Weight:
    """Where one tensor of ours comes from: a constant (transposed or not), a MatMulNBits node, or a row
    slice [r0, r1) of a fused projection."""
    const: str | None = None
    transpose: bool = False       # the constant is stored [in, out]
    nbits: object = None          # MatMulNBits node
    rows: tuple[int, int] | None = None
    shape: tuple[int, ...] = ()   # ours (after transpose and slicing)


@dataclass
class Linear:
    node: object
    inp: str          # the activation it reads (behind Cast / Identity)
    out: str          # its output value (after the bias Add, when there is one)
    weight: Weight
    bias: str | None  # 1-D constant
    n_out: int
    n_in: int


@dataclass
class Match:
    tensors: dict[str, Weight] = field(default_factory=dict)   # our name -> where it is
    hp: dict = field(default_factory=dict)                     # llm.* (without tied_head)
    tied: bool = False
    arch: str = "llama"
    notes: list[str] = field(default_factory=list)


class _Matcher:
    def __init__(self, g, where: str):
        self.g, self.where = g, where

    def fail(self, node, why: str):
        raise ValueError(f"{self.where}: cannot map node {node_label(node)} to the edgerun decoder layout: {why}")

    # ---- basic recognisers ----
    def check_ops(self) -> None:
        for n in self.g.nodes:
            dom, op = _key(n)
            if (dom == "" and op in STD_OK) or (dom == MS and op in MS_OK):
                continue
            self.fail(n, f"op {op!r}{' of domain ' + dom if dom else ''} is not part of a llama/qwen2/qwen3 "
                         "decoder (supported: MatMul/Gemm/MatMulNBits linears, RMSNorm, RoPE, attention, SiLU)")

    def weight_const(self, v: str) -> tuple[str, bool] | None:
        """(constant, transposed) behind `v` through Cast / Identity / one 2-D Transpose; None if computed."""
        t = False
        while True:
            if self.g.is_const(v):
                return v, t
            p = self.g.producer(v)
            if p is None:
                return None
            if p.op_type in PASS:
                v = p.input[0]
            elif p.op_type == "Transpose" and list(self.g.attrs(p).get("perm", [1, 0])) == [1, 0]:
                t, v = not t, p.input[0]
            else:
                return None

    def linear(self, n) -> Linear | None:
        g = self.g
        op = _key(n)
        bias = None
        if op == ("", "MatMul"):
            wc = self.weight_const(n.input[1])
            if wc is None or len(g.const_shape(wc[0]) or ()) != 2:
                return None
            k_, n_ = g.const_shape(wc[0])
            if wc[1]:
                n_, k_ = k_, n_  # the constant is [out, in]
            w = Weight(const=wc[0], transpose=not wc[1], shape=(n_, k_))
        elif op == ("", "Gemm"):
            a = g.attrs(n)
            wc = self.weight_const(n.input[1])
            if wc is None or a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
                return None
            tb = bool(a.get("transB", 0)) != wc[1]  # the constant is [out, in] iff transB xor an explicit Transpose
            r, c = g.const_shape(wc[0])
            w = Weight(const=wc[0], transpose=not tb, shape=(r, c) if tb else (c, r))
            if len(n.input) > 2 and n.input[2]:
                bias = n.input[2]
        elif op == (MS, "MatMulNBits"):
            a = g.attrs(n)
            w = Weight(nbits=n, shape=(int(a["N"]), int(a["K"])))
            if len(n.input) > 5 and n.input[5]:
                bias = n.input[5]
        else:
            return None
        out = n.output[0]
        cons = g.consumers(out)
        if bias is None and len(cons) == 1 and cons[0][0].op_type == "Add":
            add = cons[0][0]
            other = add.input[1 - cons[0][1]]
            oc = self.weight_const(other)
            if oc is not None and g.const_shape(oc[0]) == (w.shape[0],):
                bias, out = oc[0], add.output[0]
        inp, _ = g.back(n.input[0], PASS + ("Reshape",))
        return Linear(n, inp, out, w, bias, w.shape[0], w.shape[1])

    # ---- forward / backward walks ----
    def forward_hits(self, v: str, stop_linear: set) -> list[tuple[str, object, int]]:
        """Where value v ends up before the next linear: ('attn', node, input index) for attention ops,
        ('mm', node, index) for MatMuls of two computed values, ('sigmoid', node, 0), ('split', node, output
        index) is not followed (callers split first)."""
        hits, seen, todo = [], set(), [v]
        while todo:
            x = todo.pop()
            for node, i in self.g.consumers(x):
                key = (id(node), i)
                if key in seen:
                    continue
                seen.add(key)
                k = _key(node)
                if id(node) in stop_linear:
                    continue
                if k in ATTN_OPS:
                    hits.append(("attn", node, i))
                    continue
                if k == ("", "MatMul"):
                    hits.append(("mm", node, i))
                    continue
                if k in (("", "Sigmoid"), ("", "Swish")):
                    hits.append(("sigmoid", node, i))
                    continue
                if id(node) in seen:
                    continue
                seen.add(id(node))
                todo.extend(o for o in node.output if o)
        return hits

    def from_softmax(self, v: str) -> bool:
        """Is v (a MatMul input) a Softmax output, behind casts and masking?"""
        for _ in range(6):
            p = self.g.producer(v)
            if p is None:
                return False
            if p.op_type == "Softmax":
                return True
            if p.op_type not in PASS + ("Where", "Dropout"):
                return False
            v = p.input[0] if p.op_type != "Where" else p.input[2 if self.g.is_const(p.input[1]) else 1]
        return False

    def norm_before(self, v: str, size: int) -> tuple[str, float, object]:
        """(weight constant, eps, node) of the RMSNorm producing v."""
        g = self.g
        v, _ = g.back(v, PASS + ("Reshape",))
        p = g.producer(v)
        if p is None:
            raise ValueError(f"{self.where}: value {v!r} (a linear's input) is not produced by an RMSNorm")
        k = _key(p)
        if k in NORM_OPS:
            wi = 2 if p.op_type == "SkipSimplifiedLayerNormalization" else 1
            if p.output[0] != v:
                self.fail(p, "a linear reads an RMSNorm output other than the normalised value")
            a = g.attrs(p)
            if a.get("axis", -1) != -1:
                self.fail(p, f"RMSNorm over axis {a['axis']} (only the last axis)")
            wc = self.weight_const(p.input[wi])
            if wc is None or g.const_shape(wc[0]) != (size,):
                self.fail(p, f"the norm weight is not a constant of {size} elements")
            return wc[0], float(a.get("epsilon", 1e-5)), p
        if p.op_type == "Mul":
            for j in (0, 1):
                wc = self.weight_const(p.input[j])
                if wc is not None and g.const_shape(wc[0]) == (size,):
                    eps = self.decomposed_eps(p.input[1 - j])
                    if eps is not None:
                        return wc[0], eps, p
        self.fail(p, f"expected an RMSNorm (with a {size}-element weight) to produce {v!r}")

    def decomposed_eps(self, v: str) -> float | None:
        """eps of x · 1/sqrt(mean(x²) + eps) computing v, or None if v is not that."""
        g = self.g
        todo, seen = [(v, 0)], set()
        while todo:
            x, depth = todo.pop()
            p = g.producer(x)
            if p is None or id(p) in seen or depth > 6:
                continue
            seen.add(id(p))
            if p.op_type == "Add":
                for j in (0, 1):
                    c = g.const(p.input[j]) if g.is_const(p.input[j]) else None
                    q = g.producer(p.input[1 - j])
                    if c is not None and c.size == 1 and q is not None and q.op_type == "ReduceMean":
                        return float(np.asarray(c, dtype=np.float64).ravel()[0])
            if p.op_type in ("Mul", "Div", "Sqrt", "Reciprocal", "Rsqrt", "Cast", "Identity", "Add", "Expand"):
                todo.extend((i, depth + 1) for i in p.input if i and not g.is_const(i))
        return None

    def norms_on_path(self, v: str, ok, stop: set) -> list[tuple[str, float]]:
        """RMSNorm weights (1-D, size n with ok(n)) applied to v on its way to attention (qwen3 q/k norms)."""
        g = self.g
        out, seen, todo = [], set(), [v]
        while todo:
            x = todo.pop()
            for node, i in g.consumers(x):
                if id(node) in seen or id(node) in stop or _key(node) in ATTN_OPS or node.op_type == "MatMul":
                    continue
                seen.add(id(node))
                k = _key(node)
                if k in NORM_OPS and i == 0:
                    wc = self.weight_const(node.input[2 if node.op_type.startswith("Skip") else 1])
                    shp = g.const_shape(wc[0]) if wc else None
                    if shp is not None and len(shp) == 1 and ok(shp[0]):
                        out.append((wc[0], float(g.attrs(node).get("epsilon", 1e-5))))
                elif node.op_type == "Mul":
                    other = node.input[1 - i]
                    wc = self.weight_const(other)
                    shp = g.const_shape(wc[0]) if wc else None
                    if shp is not None and len(shp) == 1 and shp[0] > 1 and ok(shp[0]):
                        eps = self.decomposed_eps(x)
                        if eps is not None:
                            out.append((wc[0], eps))
                todo.extend(o for o in node.output if o)
        return out

    def tail_const(self, v: str) -> int | None:
        """Last element of a shape value (a constant, or a Concat ending in one)."""
        g = self.g
        for _ in range(4):
            if g.is_const(v):
                c = np.asarray(g.const(v)).ravel()
                return int(c[-1]) if c.size else None
            p = g.producer(v)
            if p is None or p.op_type not in ("Concat", "Cast", "Identity"):
                return None
            v = p.input[-1] if p.op_type == "Concat" else p.input[0]
        return None

    def reshape_tail(self, v: str, stop: set) -> int | None:
        """The last dim a Reshape gives v (first Reshape downstream, before attention)."""
        todo, seen = [v], set()
        while todo:
            x = todo.pop(0)
            for node, i in self.g.consumers(x):
                if id(node) in seen or id(node) in stop or _key(node) in ATTN_OPS or node.op_type == "MatMul":
                    continue
                seen.add(id(node))
                if node.op_type == "Reshape" and i == 0:
                    t = self.tail_const(node.input[1])
                    if t and t > 0:
                        return t
                todo.extend(o for o in node.output if o)
        return None
