"""PyTorch reference architectures: the numerical spec the C++ runtime is tested against.

    llama.py       Reference decoder for Llama/SmolLM2/TinyLlama, Qwen2 (q/k/v bias), Qwen3 (q/k norm)
    hf_names.py    Hugging Face <-> our tensor names; HF config.json -> llm.* keys
    tiny.py        tiny random-weight HF models for tests: make_tiny(arch) for every family, dense here,
                   MoE in moe/tiny.py                                     (needs transformers)
    tiny_tokenizer.py  the tiny byte-level BPE tokenizer + its HF files (a leaf: imports no builder)
    edge_loader.py load an .edge file into a Reference (dequantizing)   (needs edgeconv)
"""

from .llama import KVCache, ModelShape, Reference

__all__ = ["Reference", "KVCache", "ModelShape"]
