"""The moe.* / layout keys of a llama.cpp MoE GGUF (qwen3moe, llama = Mixtral, olmoe, smallthinker).

gguf_moe_hparams(arch, get, shapes, n_layers, where) -> {llm.d_ff, moe.*, llm.rope_layers / llm.swa_layers /
llm.swa_window / llm.qk_norm_scope where they differ from the defaults}, the same keys plan.hf_hparams writes
for the HF folder of the same model:
  moe.n_experts, moe.n_experts_used   <arch>.expert_count, <arch>.expert_used_count
  moe.d_expert                        the F of blk.i.ffn_gate_exps [E, F, D] (checked against
                                      <arch>.expert_feed_forward_length when the file has it)
  moe.layers                          1 for blocks with a router (blk.i.ffn_gate_inp), 0 for dense blocks, whose
                                      FFN width llm.d_ff is <arch>.feed_forward_length (0 when every block is MoE)
  moe.gating                          <arch>.expert_gating_func (llama.cpp: 1 softmax, 2 sigmoid), else the family's
  moe.norm_topk                       <arch>.expert_weights_norm, else what llama.cpp's graph does (Arch.gguf_norm_topk)
  moe.act / router_input / predictor  the family's (MoeSpec)
  layout                              Arch.gguf_swa_period with <arch>.attention.sliding_window: blocks i % period == 0
                                      are global NoPE, the others RoPE + that window; OLMoE's whole-projection q/k norm
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

GATING = {1: "softmax", 2: "sigmoid"}  # llama.cpp's LLAMA_EXPERT_GATING_FUNC_TYPE


def gguf_moe_hparams(arch, get: Callable[..., Any], shapes: Mapping, n_layers: int, where: str) -> dict:
    a, m = arch.gguf_arch, arch.moe
    E = int(get(f"{a}.expert_count", required=True))
    k = int(get(f"{a}.expert_used_count", required=True))
    layers = [int(f"blk.{i}.ffn_gate_inp.weight" in shapes) for i in range(n_layers)]
    if not any(layers):
        raise ValueError(f"{where}: expert_count {E} but no block has a router (blk.N.ffn_gate_inp.weight)")
    first = layers.index(1)
    gate = shapes.get(f"blk.{first}.ffn_gate_exps.weight")
    if gate is None or len(gate) != 3:
        raise ValueError(f"{where}: block {first} has a router but no fused experts blk.{first}.ffn_gate_exps.weight "
                         "(per-expert GGUF tensors of old Mixtral files are not supported)")
    F = int(gate[1])
    key_f = get(f"{a}.expert_feed_forward_length")
    if key_f is not None and int(key_f) != F:
        raise ValueError(f"{where}: expert_feed_forward_length {key_f} but ffn_gate_exps has F = {F}")
    if E < 1 or not 1 <= k <= E:
        raise ValueError(f"{where}: needs 1 <= expert_used_count ({k}) <= expert_count ({E})")
    d_ff = 0 if all(layers) else int(get(f"{a}.feed_forward_length", required=True))
    gf = get(f"{a}.expert_gating_func")
    if gf is not None and int(gf) not in GATING:
        raise ValueError(f"{where}: expert_gating_func {gf} is not supported (1 softmax, 2 sigmoid)")
    gating = GATING[int(gf)] if gf is not None else m.gating
    norm = get(f"{a}.expert_weights_norm")
    out = {"llm.d_ff": d_ff, "moe.n_experts": E, "moe.n_experts_used": k, "moe.d_expert": F, "moe.gating": gating,
           "moe.norm_topk": int(bool(arch.gguf_norm_topk if norm is None else norm)), "moe.act": m.act,
           "moe.router_input": m.router_input, "moe.layers": layers, "moe.predictor": m.predictor}
    window = int(get(f"{a}.attention.sliding_window", 0) or 0)
    if arch.gguf_swa_period and window > 0:
        flags = [int(i % arch.gguf_swa_period != 0) for i in range(n_layers)]
        if not all(flags):
            out["llm.rope_layers"] = flags
        if any(flags):
            out["llm.swa_layers"], out["llm.swa_window"] = flags, window
    if arch.qk_norm and arch.qk_norm_scope != "head":
        out["llm.qk_norm_scope"] = arch.qk_norm_scope
    return out
