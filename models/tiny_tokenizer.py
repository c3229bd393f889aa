"""The tiny test tokenizer: a deterministic byte-level BPE whose vocabulary size is chosen, and the HF
tokenizer files (tokenizer.json + tokenizer_config.json with a ChatML template) that go beside a tiny
model. A leaf module: the dense builder (models/tiny.py), the MoE builder (models/moe/tiny.py) and the
large random SmallThinker (models/random_moe.py) all use it, and it imports none of them.

    tok = make_tokenizer(320)          # tokenizers.Tokenizer with exactly 320 ids
    write_tokenizer(tok, folder)       # tokenizer.json, tokenizer_config.json
"""

from __future__ import annotations

import json
import os

__all__ = ["make_tokenizer", "write_tokenizer", "SPECIAL_TOKENS", "CHATML_TEMPLATE", "CORPUS"]

# Same ids as SmolLM2: <|endoftext|> = 0 (bos/pad), <|im_start|> = 1, <|im_end|> = 2 (eos).
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Training text for the tokenizer: enough distinct words for ~300 merges.
CORPUS = """\
The quick brown fox jumps over the lazy dog while the small grey cat watches from a sunny window.
Edge devices run language models on phones, boards and tiny computers without any network access.
A runtime reads weights from a single file, maps it into memory, and computes one token at a time.
Quantization stores numbers with fewer bits: four-bit integers, eight-bit blocks, and micro-scaled
floating point formats share one exponent among thirty-two neighbouring values.
Hello world! How are you today? I am fine, thank you. What time is it? It is twelve o'clock.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 128 256 1024 3.14159 2.71828 -7 +13 100% $5 #hashtag @user.
def main(): print("hello") return 0 # comments, brackets [x] {y} (z) <tag> a+b=c x*y/z
Rivers flow through valleys toward the ocean; mountains rise above forests covered in snow.
Students learn mathematics, physics, chemistry, biology, history, geography, music and painting.
The library opens at nine in the morning and closes at six in the evening, except on holidays.
Bonjour, merci, gracias, danke, grazie, obrigado, spasibo, arigato, xiexie, shukran, dhanyavad.
Assistant: I can help with writing, reading, summarizing, translating, explaining and planning.
User: Please explain attention, normalization, rotary embeddings, caches and greedy decoding.
"""


def make_tokenizer(vocab_size: int, allow_fewer: bool = False):
    """A byte-level BPE `tokenizers.Tokenizer` with exactly `vocab_size` ids (3 specials first, then
    the 256 byte symbols, then merges learned on a fixed text). Deterministic. allow_fewer: where the
    text yields fewer merges, return the smaller tokenizer (a model's vocabulary padded past its
    tokenizer, as real checkpoints pad theirs: the ids above it are never produced by encoding)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=1, show_progress=False,
                                  special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([CORPUS] * 4, trainer=trainer)
    if tok.get_vocab_size() != vocab_size and not (allow_fewer and tok.get_vocab_size() < vocab_size):
        raise ValueError(f"the tokenizer corpus yields {tok.get_vocab_size()} ids, not vocab_size="
                         f"{vocab_size}; use a vocab_size in [{256 + len(SPECIAL_TOKENS)}, "
                         f"{tok.get_vocab_size()}]")
    return tok


def write_tokenizer(tok, dir: str) -> None:
    tok.save(os.path.join(dir, "tokenizer.json"))
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "add_bos_token": False,
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 256,
        "chat_template": CHATML_TEMPLATE,
    }
    with open(os.path.join(dir, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
