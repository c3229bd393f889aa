"""The block-by-block walk over an ONNX decoder graph (the recognisers are onnx_match.py).

match_decoder(g, where) -> Match: our tensor names (tok_embd, blk.{i}.*, output_norm, output) mapped to
their constants / MatMulNBits nodes, and the llm.* hyper-parameters the graph fixes:
  vocab_size, d_model     the embedding Gather's constant [V, D]
  n_layers, d_ff          the number of blocks walked, the gate projection's rows
  n_heads, n_kv_heads,    attention-op attributes (num_heads / kv_num_heads / q_num_heads), else the RoPE op's
  head_dim                num_heads, else the per-head q norm's size, else the Reshape after q, else 2·len(inv_freq)
  rope_theta              the RoPE frequencies, from cos/sin caches (atan2 at position 1) or an inv_freq constant,
                          on the last frequency (relative error ~1e-7) and snapped to 5 significant digits when
                          within 1e-5 of them (ONNX stores no theta)
  rms_eps                 the norm op's epsilon, or the constant added to mean(x²)
Refused (one error naming the node): interleaved RoPE, partial rotary, attention scale other than 1/√head_dim,
softcap, sliding windows, biases other than q/k/v, q/k norms over the whole projection.
"""
from __future__ import annotations

import math

import numpy as np

from .onnx_match import ATTN_OPS, ROPE_OPS, Linear, Match, Weight, _key, _Matcher


def _snap(theta: float, rel: float) -> float:
    """The shortest decimal within relative distance `rel` of theta (the precision of the frequencies it
    was computed from: 1e-5 for f32 constants, 2e-3 for f16 / bf16 ones)."""
    for digits in range(1, 8):
        r = float(f"{theta:.{digits}g}")
        if abs(r - theta) <= rel * abs(theta):
            return r
    return theta


def _snap_f32(x: float) -> float:
    """A float constant (eps) back to the shortest decimal that rounds to it in its precision (f16 when x is
    an f16 value, else f32): 9.99999975e-06 -> 1e-05."""
    cast = np.float16 if float(np.float16(x)) == x else np.float32
    for digits in range(1, 10):
        r = float(f"{x:.{digits}g}")
        if cast(r) == cast(x):
            return r
    return x


def _theta(inv_last: float, half: int, dtype) -> float:
    """theta from inv_freq[half - 1] = theta^(-2(half - 1) / (2·half))."""
    j = half - 1
    if j < 1 or not 0 < inv_last < 1:
        raise ValueError("RoPE frequencies do not determine theta")
    return _snap(float(inv_last) ** (-half / j), 1e-5 if np.dtype(dtype) in (np.float32, np.float64) else 2e-3)


class _Decoder(_Matcher):
    def run(self) -> Match:
        g = self.g
        self.check_ops()
        emb = None
        for n in g.nodes:  # the token embedding: a Gather of token ids from a [V, D] constant (or its transpose)
            wc = self.weight_const(n.input[0]) if n.op_type == "Gather" and not g.is_const(n.input[1]) else None
            if wc is not None and len(g.const_shape(wc[0])) == 2 and int(g.attrs(n).get("axis", 0)) == 0:
                emb = Weight(const=wc[0], transpose=wc[1], shape=tuple(g.const_shape(wc[0]))[::-1 if wc[1] else 1])
                break
        if emb is None:
            raise ValueError(f"{self.where}: no token embedding (a Gather from a constant [vocab, d_model] matrix)")
        V, D = emb.shape
        lins = [x for x in (self.linear(n) for n in g.nodes) if x is not None]
        self.lin_ids = {id(x.node) for x in lins}
        groups: dict[str, list[Linear]] = {}
        for x in lins:
            groups.setdefault(x.inp, []).append(x)
        gl = list(groups.values())
        m = Match()
        m.tensors["tok_embd"] = emb
        self.V, self.D, self.m = V, D, m
        self.attn_nodes, self.rope_nodes, self.eps = [], [], None
        i, layer = 0, 0
        while i < len(gl) - 1:
            if len(gl) - i < 5:
                self.fail(gl[i][0].node, f"block {layer} is incomplete (expected attention q/k/v, o, gate/up, "
                                         "down projections, then the head)")
            self.block(layer, gl[i:i + 4])
            i, layer = i + 4, layer + 1
        if layer == 0 or i != len(gl) - 1:
            self.fail((gl[i] if i < len(gl) else gl[-1])[0].node, "no decoder block / head found here")
        self.head(gl[-1])
        self.hparams(layer)
        return m

    # ---- one block ----
    def block(self, L: int, gs: list[list[Linear]]) -> None:
        attn, o, ffn, down = gs
        t = self.m.tensors
        qkv = self.split_qkv(L, attn)
        for r in ("q", "k", "v"):
            if r not in qkv:
                self.fail(attn[0].node, f"block {L}: cannot tell which projection is {r} (found {sorted(qkv)})")
        q, k, v = qkv["q"], qkv["k"], qkv["v"]
        if q[1].shape[1] != self.D or k[1].shape != v[1].shape:
            self.fail(attn[0].node, f"block {L}: q/k/v shapes {q[1].shape} {k[1].shape} {v[1].shape} do not fit "
                                    f"d_model {self.D}")
        self.q_dim, self.kv_dim = q[1].shape[0], k[1].shape[0]
        if L == 0:
            self.q_val = q[0]  # head_dim from the first q Reshape (decomposed attention)
        w, eps, _ = self.norm_before(attn[0].inp, self.D)
        self.eps = eps if self.eps is None else self.eps
        t[f"blk.{L}.attn_norm"] = Weight(const=w, shape=(self.D,))
        biases = [x[2] for x in (q, k, v)]
        if any(biases) and not all(biases):
            self.fail(attn[0].node, f"block {L}: bias on only some of q/k/v")
        for r, (val, wt, b) in qkv.items():
            t[f"blk.{L}.attn_{r}"] = wt
            if b is not None:
                t[f"blk.{L}.attn_{r}_bias"] = b
        self.qk_norms(L, q[0], k[0])
        if len(o) != 1 or o[0].n_in != self.q_dim or o[0].n_out != self.D or o[0].bias:
            self.fail(o[0].node, f"block {L}: expected the attention output projection [{self.D}, {self.q_dim}] "
                                 "without bias")
        t[f"blk.{L}.attn_o"] = o[0].weight
        if len(ffn) != 2 or ffn[0].weight.shape != ffn[1].weight.shape or ffn[0].n_in != self.D:
            self.fail(ffn[0].node, f"block {L}: expected the gate and up projections (two [d_ff, {self.D}] "
                                   "linears reading one RMSNorm)")
        sig = [any(h[0] == "sigmoid" for h in self.forward_hits(x.out, self.lin_ids)) for x in ffn]
        if sig.count(True) != 1:
            self.fail(ffn[0].node, f"block {L}: cannot tell gate from up (SiLU = x·sigmoid(x) on exactly one)")
        gate, up = (ffn[0], ffn[1]) if sig[0] else (ffn[1], ffn[0])
        w, _, _ = self.norm_before(gate.inp, self.D)
        t[f"blk.{L}.ffn_norm"] = Weight(const=w, shape=(self.D,))
        self.d_ff = gate.n_out
        for x in (gate, up):
            if x.bias:
                self.fail(x.node, f"block {L}: FFN projections with bias are not supported")
        t[f"blk.{L}.ffn_gate"], t[f"blk.{L}.ffn_up"] = gate.weight, up.weight
        if len(down) != 1 or down[0].n_in != self.d_ff or down[0].n_out != self.D or down[0].bias:
            self.fail(down[0].node, f"block {L}: expected the down projection [{self.D}, {self.d_ff}] without bias")
        t[f"blk.{L}.ffn_down"] = down[0].weight

    def role(self, value: str) -> str | None:
        for kind, node, i in self.forward_hits(value, self.lin_ids):
            if kind == "attn":
                self.note_attn(node)
                if i == 0 and (len(node.input) < 2 or not node.input[1]):
                    return "qkv"
                return {0: "q", 1: "k", 2: "v"}.get(i)
            if kind == "mm":
                if self.from_softmax(node.input[0]):
                    return "v" if i == 1 else None
                return {0: "q", 1: "k"}.get(i)
        return None

    def note_attn(self, node) -> None:
        if all(node is not a for a in self.attn_nodes):
            self.attn_nodes.append(node)

    def split_qkv(self, L: int, attn: list[Linear]) -> dict:
        """{role: (output value, Weight, bias Weight or None)}."""
        out = {}
        g = self.g
        if len(attn) == 3:
            for x in attn:
                r = self.role(x.out)
                if r in out or r not in ("q", "k", "v"):
                    self.fail(x.node, f"block {L}: projection output reaches attention as {r!r}")
                out[r] = (x.out, x.weight, None if x.bias is None else Weight(const=x.bias, shape=(x.n_out,)))
            return out
        if len(attn) != 1:
            self.fail(attn[0].node, f"block {L}: {len(attn)} linears read the attention norm (expected q, k, v "
                                    "or one fused qkv)")
        x = attn[0]
        cons = g.consumers(x.out)
        split = next((c for c, _ in cons if c.op_type == "Split"), None)
        if split is not None:
            if len(split.input) > 1 and split.input[1]:
                sizes = [int(s) for s in np.asarray(g.const(split.input[1])).ravel()]
            else:
                sizes = list(g.attrs(split).get("split", []))
            if len(sizes) != 3 or sum(sizes) != x.n_out:
                self.fail(split, f"block {L}: a fused qkv split into {sizes}, expected 3 parts of {x.n_out}")
            parts = [(split.output[j], sum(sizes[:j]), sum(sizes[:j + 1])) for j in range(3)]
            for val, r0, r1 in parts:
                r = self.role(val)
                if r in out or r not in ("q", "k", "v"):
                    self.fail(split, f"block {L}: split output {val!r} reaches attention as {r!r}")
                out[r] = (val, self.rows(x.weight, r0, r1), None if x.bias is None else
                          Weight(const=x.bias, rows=(r0, r1), shape=(r1 - r0,)))
            return out
        if self.role(x.out) == "qkv":
            a = g.attrs(self.attn_nodes[-1])
            h, kv = int(a.get("num_heads", 0)), int(a.get("kv_num_heads", a.get("num_heads", 0)))
            if not h or x.n_out % (h + 2 * kv):
                self.fail(self.attn_nodes[-1], f"block {L}: packed qkv of {x.n_out} rows does not split into "
                                               f"{h} + 2·{kv} heads")
            hd = x.n_out // (h + 2 * kv)
            bounds = {"q": (0, h * hd), "k": (h * hd, (h + kv) * hd), "v": ((h + kv) * hd, x.n_out)}
            for r, (r0, r1) in bounds.items():
                out[r] = (x.out, self.rows(x.weight, r0, r1), None if x.bias is None else
                          Weight(const=x.bias, rows=(r0, r1), shape=(r1 - r0,)))
            return out
        self.fail(x.node, f"block {L}: a single projection reads the attention norm but its output is neither "
                          "split into q/k/v nor packed into an attention op")

    @staticmethod
    def rows(w: Weight, r0: int, r1: int) -> Weight:
        return Weight(const=w.const, transpose=w.transpose, nbits=w.nbits, rows=(r0, r1), shape=(r1 - r0, w.shape[1]))

    def qk_norms(self, L: int, q_val: str, k_val: str) -> None:
        qn = self.norms_on_path(q_val, lambda n: self.q_dim % n == 0 and n < self.q_dim, self.lin_ids)
        kn = self.norms_on_path(k_val, lambda n: self.kv_dim % n == 0 and n < self.kv_dim, self.lin_ids)
        full_q = self.norms_on_path(q_val, lambda n: n == self.q_dim, self.lin_ids)
        if full_q:
            raise ValueError(f"{self.where}: block {L}: an RMSNorm over the whole q projection (OLMoE style) is not "
                             "supported for dense ONNX models")
        if bool(qn) != bool(kn) or len(qn) > 1 or len(kn) > 1:
            raise ValueError(f"{self.where}: block {L}: found {len(qn)} q norm(s) and {len(kn)} k norm(s); expected "
                             "one of each or none")
        if qn:
            hd = self.g.const_shape(qn[0][0])[0]
            self.m.tensors[f"blk.{L}.attn_q_norm"] = Weight(const=qn[0][0], shape=(hd,))
            self.m.tensors[f"blk.{L}.attn_k_norm"] = Weight(const=kn[0][0], shape=(hd,))
            self.qk_hd = hd

    # ---- head and hyper-parameters ----
    def head(self, gs: list[Linear]) -> None:
        x = gs[0]
        if len(gs) != 1 or x.n_out != self.V or x.n_in != self.D or x.bias:
            self.fail(x.node, f"expected the output head [{self.V}, {self.D}] after the last block")
        w, _, _ = self.norm_before(x.inp, self.D)
        self.m.tensors["output_norm"] = Weight(const=w, shape=(self.D,))
        emb = self.m.tensors["tok_embd"]
        wt = x.weight
        same = wt.const == emb.const and wt.transpose == emb.transpose
        if not same and wt.const is not None and self.g.const_shape(wt.const) in ((self.V, self.D), (self.D, self.V)):
            a, e = self.g.const(wt.const), self.g.const(emb.const)
            same = np.array_equal(a.T if wt.transpose else a, e.T if emb.transpose else e)
        self.m.tied = bool(same)
        if not same:
            self.m.tensors["output"] = wt

    def head_dim(self) -> int:
        g = self.g
        for a_node in self.attn_nodes:
            a = g.attrs(a_node)
            h = int(a.get("num_heads", a.get("q_num_heads", 0)) or 0)
            if h:
                return self.q_dim // h
        for r in self.rope_ops():
            h = int(g.attrs(r).get("num_heads", 0) or 0)
            if h:
                return self.q_dim // h
        if hasattr(self, "qk_hd"):
            return self.qk_hd
        t = self.reshape_tail(self.q_val, self.lin_ids)
        if t and self.q_dim % t == 0 and t < self.q_dim:
            return t
        inv = self.inv_freq(None)
        if inv is not None:
            return 2 * inv.size
        raise ValueError(f"{self.where}: cannot determine head_dim (no attention op, RoPE op, q norm or q reshape)")

    def rope_ops(self) -> list:
        return [n for n in self.g.nodes if _key(n) in ROPE_OPS]

    def inv_freq(self, half: int | None) -> np.ndarray | None:
        """A 1-D float constant [half] that looks like RoPE inverse frequencies (1, r, r², ...)."""
        g = self.g
        names = list(g._init) + list(g._const_node)
        for v in names:
            s = g.const_shape(v)
            if s is None or len(s) != 1 or s[0] < 2 or (half is not None and s[0] != half):
                continue
            c = g.const(v)
            if c.dtype.kind != "f":
                continue
            c = c.astype(np.float64)
            if c[0] == 1.0 and np.all(np.diff(c) < 0) and c[-1] > 0:
                tol = 1e-4 if g.const(v).dtype in (np.float32, np.float64) else 4e-3
                if np.allclose(c, c[1] ** np.arange(c.size), rtol=tol):
                    return g.const(v)
        return None

    def caches(self):
        """(cos, sin) constant caches [P, hd/2] of a RoPE op / GQA, and the node; None if none."""
        g = self.g
        for n in self.attn_nodes + self.rope_ops():
            k, a = _key(n), g.attrs(n)
            if k in ATTN_OPS:
                if n.op_type != "GroupQueryAttention" or not a.get("do_rotary", 0):
                    continue
                ci, si = 7, 8
            elif n.domain == "com.microsoft":
                ci, si = 2, 3
            else:
                ci, si = 1, 2
            if a.get("interleaved", 0) or a.get("rotary_interleaved", 0):
                raise ValueError(f"{self.where}: node {n.name!r} ({n.op_type}) uses interleaved RoPE; edgerun's "
                                 "layout is rotate-half")
            if len(n.input) > si and g.is_const(n.input[ci]) and g.is_const(n.input[si]):
                return g.const(n.input[ci]), g.const(n.input[si]), n
        return None

    def hparams(self, n_layers: int) -> None:
        g = self.g
        hd = self.head_dim()
        if self.q_dim % hd or self.kv_dim % hd:
            raise ValueError(f"{self.where}: head_dim {hd} does not divide q ({self.q_dim}) and k/v ({self.kv_dim})")
        H, KV = self.q_dim // hd, self.kv_dim // hd
        for n in self.attn_nodes:
            a = g.attrs(n)
            scale = float(a.get("scale", 0.0) or 0.0)
            if scale and not math.isclose(scale, 1 / math.sqrt(hd), rel_tol=1e-5):
                self.fail(n, f"attention scale {scale} (edgerun uses 1/sqrt(head_dim) = {1 / math.sqrt(hd):.6g})")
            if float(a.get("softcap", 0.0) or 0.0):
                self.fail(n, "attention softcap is not supported")
            if int(a.get("local_window_size", -1)) != -1:
                self.fail(n, "sliding-window attention (local_window_size) is not supported")
            if int(a.get("kv_num_heads", KV) or KV) != KV:
                self.fail(n, f"kv_num_heads {a['kv_num_heads']} != {KV} from the k projection")
        for n in self.rope_ops():
            rd = int(g.attrs(n).get("rotary_embedding_dim", 0) or 0)
            if rd and rd != hd:
                self.fail(n, f"partial rotary ({rd} of head_dim {hd}) is not supported")
        cs = self.caches()
        if cs is not None:
            cos, sin, node = cs
            if cos.ndim != 2 or cos.shape[1] * 2 != hd or cos.shape[0] < 2:
                self.fail(node, f"RoPE caches of shape {list(cos.shape)} for head_dim {hd} (partial rotary or "
                                "another layout is not supported)")
            inv_last, dt = math.atan2(float(sin[1, -1]), float(cos[1, -1])), cos.dtype
            self.m.hp["llm.max_ctx"] = int(cos.shape[0])
        else:
            inv = self.inv_freq(hd // 2)
            if inv is None:
                raise ValueError(f"{self.where}: no RoPE found (no RotaryEmbedding op, GroupQueryAttention caches or "
                                 f"inv_freq constant of {hd // 2} frequencies)")
            inv_last, dt = float(inv[-1]), inv.dtype
        theta = _theta(inv_last, hd // 2, dt)
        self.m.hp.update({"llm.n_layers": n_layers, "llm.d_model": self.D, "llm.n_heads": H, "llm.n_kv_heads": KV,
                          "llm.head_dim": hd, "llm.d_ff": self.d_ff, "llm.vocab_size": self.V,
                          "llm.rope_theta": theta, "llm.rms_eps": _snap_f32(float(self.eps))})
        t = self.m.tensors
        if "blk.0.attn_q_bias" in t:
            self.m.arch = "qwen2"
        if "blk.0.attn_q_norm" in t:
            if self.m.arch == "qwen2" or t["blk.0.attn_q_norm"].shape != (hd,):
                raise ValueError(f"{self.where}: q/k norms of {t['blk.0.attn_q_norm'].shape} with q/k/v biases or "
                                 f"another size than head_dim {hd}: no supported family has that")
            self.m.arch = "qwen3"
        for L in range(n_layers):  # every block the same features
            for s in ("attn_q_bias", "attn_q_norm"):
                if (f"blk.{L}.{s}" in t) != (f"blk.0.{s}" in t):
                    raise ValueError(f"{self.where}: block {L} differs from block 0 in having {s}")


def match_decoder(g, where: str) -> Match:
    return _Decoder(g, where).run()
