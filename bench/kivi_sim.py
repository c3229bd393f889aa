"""KIVI levers in simulation: perplexity of the PyTorch reference (models/llama.py) on an .edge file's weights (f32)
with the KIVI cache emulated as the runtime keeps it, to rank quantization levers before building them.

    python bench/kivi_sim.py [--bits 2] [--vbits B] [--ring 128] [--group 32] [--vgroup 32] [--prerope] [--clip]
                             [--outliers N] [--orange] [--chunks 2] [--ctx 2048] [--model FILE.edge]

Emulated per query position t (backend.h kivi_quantized): keys p < kivi_quantized(t + 1) (in groups of --group, the
first 32 positions kept f16: the sink group) read quantized, the rest f16; K asymmetric per channel over the group's
positions, V per position over --vgroup channels, f16 scale and min, round to nearest (float_ops.h). --bits 0: the
f16 cache. --prerope: K quantized before RoPE, RoPE applied to the dequantized K. --clip: each block's range
shrunk by the MSE-best of 25 clippings. --outliers N: per (kv head, group) the N channels of largest max |K| kept
f16 (--orange: largest max - min). Perplexity: llama.cpp's protocol (Model.perplexity) on bench/corpus.py's text.
bench/README.md (KV cache forms) has what it measured; about 2 min a run on 2 cores.
"""
import argparse
import math
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for s in ("runtime", "converter", "bench", "."):
    sys.path.insert(0, os.path.join(ROOT, s))
import numpy as np, torch
import models.llama as L
from models.edge_loader import load_edge_reference

ap = argparse.ArgumentParser()
ap.add_argument("--bits", type=int, default=0)      # 0 = f16 cache
ap.add_argument("--vbits", type=int, default=None)
ap.add_argument("--ring", type=int, default=128)
ap.add_argument("--group", type=int, default=32)
ap.add_argument("--vgroup", type=int, default=32)
ap.add_argument("--prerope", action="store_true")
ap.add_argument("--clip", action="store_true")       # MSE-searched clipping per block
ap.add_argument("--outliers", type=int, default=0)
ap.add_argument("--orange", action="store_true")  # pick outlier channels by range, not max |k|   # K channels per kv head kept in f16 (largest |k| over the group)
ap.add_argument("--chunks", type=int, default=2)
ap.add_argument("--ctx", type=int, default=2048)
ap.add_argument("--model", default=None)
a = ap.parse_args()
vbits = a.vbits if a.vbits is not None else a.bits
G = a.group

def f16(x): return x.to(torch.float16).to(torch.float32)

def quant(x, bits, dim):
    """asymmetric RTN over `dim` (blocks already shaped), f16 d and m"""
    lv = 2 ** bits - 1
    lo, hi = x.amin(dim, keepdim=True), x.amax(dim, keepdim=True)
    if not a.clip:
        d = f16((hi - lo) / lv); m = f16(lo)
        idd = torch.where(d != 0, 1 / d, torch.zeros_like(d))
        c = torch.clamp(torch.round((x - m) * idd), 0, lv)
        return d * c + m
    best, besterr = None, None
    for r_lo in (0.0, 0.05, 0.1, 0.15, 0.2):
        for r_hi in (0.0, 0.05, 0.1, 0.15, 0.2):
            l2 = lo + (hi - lo) * r_lo; h2 = hi - (hi - lo) * r_hi
            d = f16((h2 - l2) / lv); m = f16(l2)
            idd = torch.where(d != 0, 1 / d, torch.zeros_like(d))
            c = torch.clamp(torch.round((x - m) * idd), 0, lv)
            y = d * c + m
            err = ((y - x) ** 2).sum(dim, keepdim=True)
            if best is None:
                best, besterr = y, err
            else:
                sel = err < besterr
                best = torch.where(sel, y, best); besterr = torch.where(sel, err, besterr)
    return best

def quant_k(k):  # k (KV, T, D): per channel over groups of G positions
    KV, T, D = k.shape
    n = T // G * G
    x = k[:, :n].reshape(KV, n // G, G, D)
    y = quant(x, a.bits, 2)
    if a.outliers:
        mag = (x.amax(2, keepdim=True) - x.amin(2, keepdim=True)) if a.orange else x.abs().amax(2, keepdim=True)  # (KV, g, 1, D)
        idx = mag.topk(a.outliers, dim=3).indices
        keep = torch.zeros_like(mag, dtype=torch.bool).scatter_(3, idx, True)
        y = torch.where(keep, x, y)
    out = k.clone(); out[:, :n] = y.reshape(KV, n, D)
    return out

def quant_v(v):  # per token over 32 channels
    KV, T, D = v.shape
    x = v.reshape(KV, T, D // a.vgroup, a.vgroup)
    return quant(x, vbits, 3).reshape(KV, T, D)

def nq(n):
    return torch.where(n > a.ring, (n - a.ring) // G * G, torch.zeros_like(n))

def kivi_attend(q, k, v, kq, vq, T):
    H, D = q.shape[1], q.shape[2]
    k, v, kq, vq = (x.transpose(0, 1) for x in (k, v, kq, vq))  # (KV, T, D)
    grp = H // k.shape[0]
    rep = lambda x: x.repeat_interleave(grp, dim=0)
    qh = q.transpose(0, 1)
    sf = qh @ rep(k).transpose(1, 2) / math.sqrt(D)
    sq = qh @ rep(kq).transpose(1, 2) / math.sqrt(D)
    kp = torch.arange(T)[None, :]; qp = torch.arange(T)[:, None]
    n_q = nq(qp + 1)
    useq = (kp < n_q) & (kp >= 32)  # the sink group stays f16
    s = torch.where(useq, sq, sf).masked_fill(kp > qp, float("-inf"))
    p = torch.softmax(s, -1)
    o = (p * useq) @ rep(vq) + (p * ~useq) @ rep(v)
    return o.transpose(0, 1).reshape(T, H * D)

def attention(self, i, h, cos, sin, start_pos, cache):
    s, w, p = self.shape, self.w, f"blk.{i}."
    T = h.shape[0]
    q, k, v = h @ w[p + "attn_q"].T, h @ w[p + "attn_k"].T, h @ w[p + "attn_v"].T
    q = q.view(T, s.n_heads, s.head_dim); k = k.view(T, s.n_kv_heads, s.head_dim); v = v.view(T, s.n_kv_heads, s.head_dim)
    q = L.rope(q, cos, sin)
    kr = f16(L.rope(k, cos, sin)); v16 = f16(v)
    if a.bits == 0:
        o = kivi_attend(q, kr, v16, kr, v16, T)
    else:
        if a.prerope:
            kq = L.rope(quant_k(f16(k).transpose(0, 1)).transpose(0, 1), cos, sin)
        else:
            kq = quant_k(kr.transpose(0, 1)).transpose(0, 1)
        vq = quant_v(v16.transpose(0, 1)).transpose(0, 1)
        o = kivi_attend(q, kr, v16, kq, vq, T)
    return o @ w[p + "attn_o"].T

L.Reference._attention = attention
import edgerun
from edgerun.defaults import default_model
path = a.model or default_model(quiet=True)
em = edgerun.Model(path, threads=1, ctx=256)
from corpus import load_text
add_bos = bool(em.metadata("tokenizer.add_bos")) and em.bos_id >= 0
toks = em.tokenize(load_text(), add_bos=add_bos, special=False)
ref = load_edge_reference(path)
torch.set_num_threads(2)
ctx = a.ctx; first = ctx // 2; nll = 0.0; cnt = 0; t0 = time.time()
for c in range(a.chunks):
    chunk = toks[c * ctx:(c + 1) * ctx]
    if add_bos: chunk = [em.bos_id] + chunk[1:]
    lg = ref.logits(chunk).double()[first:ctx - 1]
    tg = torch.tensor(chunk[first + 1:ctx])
    nll += float((torch.logsumexp(lg, 1) - lg[torch.arange(len(tg)), tg]).sum()); cnt += len(tg)
print(f"{' '.join(sys.argv[1:]) or 'f16'}: ppl {math.exp(nll / cnt):.4f}  ({time.time() - t0:.0f} s)", flush=True)
