"""The architecture registry (converter/edgeconv/archs/): every family is a declaration, found by its file;
the layout keys every file carries; declared fields instead of family-name switches."""
from __future__ import annotations

import os
from dataclasses import replace

import pytest

from edgeconv import archs
from edgeconv.archs import ARCHS, LAYOUT_KEYS, Arch, arch_keys, hf_hparams, register
from edgeconv.archs.plan import moe_hparams

_DENSE_CFG = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=320, rms_norm_eps=1e-6, rope_theta=10000.0)


def test_every_family_file_is_registered():
    """Adding a family is adding a file: archs/__init__ imports every module but registry and plan."""
    folder = os.path.dirname(archs.__file__)
    files = sorted(f[:-3] for f in os.listdir(folder)
                   if f.endswith(".py") and f not in ("__init__.py", "registry.py", "plan.py"))
    assert list(archs.FAMILY_MODULES) == files
    assert sorted({a.__module__.rsplit(".", 1)[1] for a in ARCHS.values()}) == files


def test_every_family_writes_the_layout_keys():
    for name, arch in ARCHS.items():
        keys = arch_keys(arch)
        assert keys["llm.norm"] == "rms" and keys["llm.ffn_act"] == ("gelu_tanh" if arch.name == "gemma3" else "silu"), name
        assert keys["llm.rope_type"] == "rotate_half", name
        assert {k for k, _ in LAYOUT_KEYS.values()} <= set(keys), name
    hp = hf_hparams(ARCHS["LlamaForCausalLM"], dict(_DENSE_CFG, model_type="llama"))
    assert (hp["llm.norm"], hp["llm.ffn_act"], hp["llm.rope_type"]) == ("rms", "silu", "rotate_half")


def test_a_layout_value_the_format_lacks_is_refused_at_registration():
    class Gelu(Arch):
        name = "gelu_test"
        gguf_arch = "gelu_test"
        ffn_act = "gelu_erf"

    with pytest.raises(ValueError, match="llm.ffn_act"):
        register("GeluTestForCausalLM")(Gelu)
    assert "GeluTestForCausalLM" not in ARCHS


def test_sparse_layers_come_from_the_declared_keys():
    """Which blocks are MoE is read from the config keys the MoeSpec names, whatever the family."""
    base = ARCHS["Qwen3MoeForCausalLM"]
    cfg = dict(_DENSE_CFG, num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32, mlp_only_layers=[1],
               decoder_sparse_step=2, every_other=2)
    assert moe_hparams(base, cfg, 4, "t")["moe.layers"] == [0, 0, 0, 1]
    step_only = type("StepOnly", (base,), {"moe": replace(base.moe, mlp_only_layers_key=None,
                                                          sparse_step_key="every_other")})
    assert moe_hparams(step_only, cfg, 4, "t")["moe.layers"] == [0, 1, 0, 1]
    everywhere = type("Everywhere", (base,), {"moe": replace(base.moe, mlp_only_layers_key=None,
                                                             sparse_step_key=None)})
    hp = moe_hparams(everywhere, cfg, 4, "t")
    assert hp["moe.layers"] == [1, 1, 1, 1] and hp["llm.d_ff"] == 0
    with pytest.raises(ValueError, match="mlp_only_layers"):
        moe_hparams(base, dict(cfg, mlp_only_layers=[7]), 4, "t")
