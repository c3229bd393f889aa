"""onnxruntime as a second peer: the bench's float SmolLM2 through ONNX Runtime on the CPU, beside llama.cpp and
edgerun, one table (same float model, prompt, thread count, perplexity chunks and measurement protocol as
bench_vs_llamacpp.py, whose llama.cpp / edgerun halves it reuses).

The ONNX models, built once under bench/out/ort/ (--reuse keeps them):
  hf/         the float GGUF as an HF Llama folder: `edgeconv export --quant f32` (q/k rows un-permuted), written
              back as config.json + model.safetensors (models/hf_names.ours_to_hf)
  f32/        ONNX Runtime GenAI's model builder (`-p fp32 -e cpu`): the layout ORT ships LLMs in — GroupQueryAttention
              with a KV cache (past_key_values.* -> present.*), SkipSimplifiedLayerNormalization, RoPE caches
  int4/       f32/ quantized by onnxruntime.quantization.matmul_nbits_quantizer: MatMulNBits, 4 bits, block 32,
              symmetric, accuracy_level 4 (int8 activations, ORT's fastest CPU path); the tied embedding Gather
              stays f32 and the head (a MatMul on the transposed embedding) is quantized like every MatMul
ORT runs (fresh process each, intra-op threads = --threads, inter-op 1, all graph optimisations):
  speed       the first --prompt-tokens tokens of the text (edgerun's tokenizer, which gives llama.cpp's ids: the
              bench checks the perplexity chunks by hash) in one run, then --gen-tokens greedy steps of one
              token each, feeding present.* back as past_key_values.*; a warm-up run, then one timed run
  perplexity  workers.llama_ppl_chunks / score_chunk (llama-perplexity's protocol) on one run per chunk
  size        model.onnx + model.onnx.data; peak RSS = VmHWM of the process
Run:  nice python bench/bench_onnxruntime.py --threads 2 --chunks 20  [--reuse] [--skip-peers]
Outputs: bench/out/bench_onnxruntime.{json,md} and the table on stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
import bench_vs_llamacpp as bv  # noqa: E402
from sysmeasure import HWM_SNIPPET, loadavg, machine_info, run_process  # noqa: E402
from workers import RESULT_TAG, chunks_sha256, llama_ppl_chunks, score_chunk  # noqa: E402

ORT_DIR = os.path.join(bv.OUT_DIR, "ort")


# ----------------------------------------------------------------------------- building the ONNX models
def build_hf_folder(float_model: str, log) -> str:
    """The float GGUF as an HF LlamaForCausalLM folder (f32 safetensors + config.json)."""
    sys.path[:0] = [os.path.join(bv.REPO, "converter"), bv.REPO]
    from edgeconv.format import EdgeFile
    from models.hf_names import ours_to_hf
    from safetensors.numpy import save_file

    out = os.path.join(ORT_DIR, "hf")
    os.makedirs(out, exist_ok=True)
    edge = os.path.join(ORT_DIR, "float.f32.edge")
    bv.edge_call("edgeconv", ["export", float_model, "-o", edge, "--quant", "f32", "-q"])
    with EdgeFile(edge) as f:
        md = f.metadata
        tensors = {ours_to_hf(t.name): np.ascontiguousarray(f.array(t.name), dtype=np.float32) for t in f.tensors}
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": int(md["llm.d_model"]),
           "intermediate_size": int(md["llm.d_ff"]), "num_hidden_layers": int(md["llm.n_layers"]),
           "num_attention_heads": int(md["llm.n_heads"]), "num_key_value_heads": int(md["llm.n_kv_heads"]),
           "head_dim": int(md["llm.head_dim"]), "vocab_size": int(md["llm.vocab_size"]),
           "max_position_embeddings": int(md["llm.max_ctx"]), "rms_norm_eps": float(md["llm.rms_eps"]),
           "rope_theta": float(md["llm.rope_theta"]), "tie_word_embeddings": bool(md["llm.tied_head"]),
           "hidden_act": "silu", "bos_token_id": int(md["tokenizer.bos_id"]), "eos_token_id": int(md["tokenizer.eos_id"]),
           "torch_dtype": "float32"}
    save_file(tensors, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    write_tokenizer_json(md, out)
    with open(os.path.join(out, "config.json"), "w") as fh:
        json.dump(cfg, fh, indent=1)
    log(f"HF folder from {os.path.basename(float_model)}: {len(tensors)} tensors")
    return edge


def write_tokenizer_json(md, out: str) -> None:
    """tokenizer.json (byte-level BPE: the GGUF's tokens and merges) — the GenAI builder loads one with
    AutoTokenizer; the bench itself feeds ORT the token ids of edgerun's tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    if md["tokenizer.model"] != "gpt2":
        raise SystemExit(f"tokenizer model {md['tokenizer.model']!r}: only byte-level BPE is written for the builder")
    vocab = {t: i for i, t in enumerate(md["tokenizer.tokens"])}
    merges = [tuple(m.split(" ", 1)) for m in md["tokenizer.merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.save(os.path.join(out, "tokenizer.json"))
    with open(os.path.join(out, "tokenizer_config.json"), "w") as fh:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": int(md["llm.max_ctx"])}, fh)


def build_onnx(a, log) -> tuple[str, dict]:
    """f32/ and int4/ ONNX folders; returns the f32 .edge (for the tokenizer) and {quant: model.onnx}."""
    edge = os.path.join(ORT_DIR, "float.f32.edge")
    f32, int4 = (os.path.join(ORT_DIR, q, "model.onnx") for q in ("f32", "int4"))
    if not (a.reuse and os.path.exists(edge)):
        edge = build_hf_folder(a.float_model, log)
    if not (a.reuse and os.path.exists(f32)):
        t0 = time.perf_counter()
        r = run_process([sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", os.path.join(ORT_DIR, "hf"),
                         "-o", os.path.dirname(f32), "-p", "fp32", "-e", "cpu", "-c", os.path.join(ORT_DIR, "cache")],
                        1800)
        if r["rc"] != 0:
            raise SystemExit(f"the GenAI model builder failed:\n{(r['stdout'] + r['stderr'])[-3000:]}")
        log(f"GenAI builder fp32: {time.perf_counter() - t0:.0f} s")
    if not (a.reuse and os.path.exists(int4)):
        import onnx
        from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

        t0 = time.perf_counter()
        cfg = DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=True, accuracy_level=4)
        q = MatMulNBitsQuantizer(onnx.load(f32), algo_config=cfg)
        q.process()
        os.makedirs(os.path.dirname(int4), exist_ok=True)
        onnx.save(q.model.model, int4, save_as_external_data=True, location="model.onnx.data")
        log(f"MatMulNBits int4 (block 32, accuracy_level 4): {time.perf_counter() - t0:.0f} s")
    return edge, {"f32": f32, "int4": int4}


def onnx_bytes(path: str) -> int:
    d = os.path.dirname(path)
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.startswith("model.onnx"))


# ----------------------------------------------------------------------------- the ORT worker (own process)
class OrtLM:
    """A GenAI-builder decoder driven by plain onnxruntime: input_ids, attention_mask, past_key_values.*."""

    def __init__(self, path: str, threads: int):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        self.past = [i for i in self.s.get_inputs() if i.name.startswith("past_key_values")]
        self.present = [o.name for o in self.s.get_outputs() if o.name.startswith("present")]
        self.kv_heads, self.head_dim = self.past[0].shape[1], None
        self.reset()

    def reset(self) -> None:
        self.cache = None
        self.n = 0

    def eval(self, tokens: list[int]) -> np.ndarray:
        """Logits [len(tokens), vocab] after appending tokens to the cache."""
        ids = np.asarray([tokens], np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones((1, self.n + len(tokens)), np.int64)}
        if self.cache is None:
            hd = self.head_dim or 64
            for i in self.past:
                feed[i.name] = np.zeros((1, self.kv_heads, 0, hd), np.float32)
        else:
            feed.update(self.cache)
        outs = self.s.run(["logits"] + self.present, feed)
        self.cache = {p.name: o for p, o in zip(self.past, self._order(outs[1:]))}
        self.n += len(tokens)
        return outs[0][0]

    def _order(self, presents):
        byname = dict(zip(self.present, presents))
        return [byname[p.name.replace("past_key_values", "present")] for p in self.past]


def _tokens(edge: str, text: str) -> tuple[list[int], bool, int]:
    sys.path[:0] = [os.path.join(bv.REPO, "converter"), os.path.join(bv.REPO, "runtime")]
    from edgerun import Model

    m = Model(edge, threads=1)
    add_bos = bool(m.metadata("tokenizer.add_bos")) and m.bos_id >= 0
    return m.tokenize(text, add_bos=add_bos, special=False), add_bos, m.bos_id


def worker_speed(p: dict) -> dict:
    with open(p["text"], encoding="utf-8") as f:
        toks, add_bos, bos = _tokens(p["edge"], f.read(20000))
    prompt = toks[:p["prompt_tokens"]]  # as llama.cpp's worker: BOS only where the vocabulary adds it
    lm = OrtLM(p["model"], p["threads"])
    lm.head_dim = p["head_dim"]
    runs = []
    for r in range(2):
        lm.reset()
        t0 = time.perf_counter()
        tok = int(np.argmax(lm.eval(prompt)[-1]))
        t1 = time.perf_counter()
        for _ in range(p["gen_tokens"]):
            tok = int(np.argmax(lm.eval([tok])[-1]))
        t2 = time.perf_counter()
        if r:
            runs.append({"prefill_tok_s": len(prompt) / (t1 - t0), "decode_tok_s": p["gen_tokens"] / (t2 - t1)})
    return runs[-1]


def worker_ppl(p: dict) -> dict:
    with open(p["text"], encoding="utf-8") as f:
        tokens, add_bos, bos = _tokens(p["edge"], f.read())
    chunks = llama_ppl_chunks(tokens, p["ctx"], p["chunks"], bos if add_bos else None)
    lm = OrtLM(p["model"], p["threads"])
    lm.head_dim = p["head_dim"]
    nll, count = 0.0, 0
    t0 = time.perf_counter()
    for c in chunks:
        lm.reset()
        s, k = score_chunk(lm.eval(c), c)
        nll, count = nll + s, count + k
    return {"ppl": float(np.exp(nll / count)), "scored": count, "chunks": len(chunks), "eval_s": time.perf_counter() - t0,
            "chunk_tokens_sha256": chunks_sha256(chunks)}


def run_ort(kind: str, params: dict) -> dict:
    code = (f"{HWM_SNIPPET}; sys.argv = [{__file__!r}, '--worker', {kind!r}, {json.dumps(params)!r}]; "
            f"import runpy; runpy.run_path(sys.argv[0], run_name='__main__')")
    r = run_process([sys.executable, "-c", code], 1800)
    lines = [ln for ln in r["stdout"].splitlines() if ln.startswith(RESULT_TAG)]
    if r["rc"] != 0 or not lines:
        raise RuntimeError(f"ORT worker {kind} failed (rc={r['rc']}):\n{r['stderr'][-3000:]}")
    return dict(json.loads(lines[-1][len(RESULT_TAG):]), peak_rss_mib=r["peak_rss_mib"], foreign_cores=r["foreign_cores"])


# ----------------------------------------------------------------------------- orchestration
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chunks", type=int, default=20)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--prompt-tokens", type=int, default=256)
    ap.add_argument("--gen-tokens", type=int, default=128)
    ap.add_argument("--runs", type=int, default=1, help="speed rounds (medians)")
    ap.add_argument("--float-model", default=bv.FLOAT_MODEL)
    ap.add_argument("--llama-quants", default="F16,Q4_0", help="llama.cpp rows (bench_vs_llamacpp names)")
    ap.add_argument("--edge-recipes", default="f16,int4", help="edgerun rows")
    ap.add_argument("--skip-peers", action="store_true", help="only the ORT rows")
    ap.add_argument("--reuse", action="store_true", help="keep models already built under bench/out/")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        res = {"speed": worker_speed, "ppl": worker_ppl}[a.worker[0]](json.loads(a.worker[1]))
        print(RESULT_TAG + json.dumps(res), flush=True)
        return 0
    a.llama_quants = [q for q in a.llama_quants.split(",") if q]
    a.edge_recipes = [r for r in a.edge_recipes.split(",") if r]
    a.quiet_wait = 0
    log = lambda m: print(f"[bench_onnxruntime] {m}", file=sys.stderr, flush=True)  # noqa: E731
    if not os.path.exists(a.float_model):
        raise SystemExit(f"{a.float_model} is missing: python bench/make_float_model.py")
    text = bv.ensure_text()
    load0 = loadavg()
    edge, onnx_models = build_onnx(a, log)
    hd = json.load(open(os.path.join(ORT_DIR, "hf", "config.json")))["head_dim"]
    models = []
    if not a.skip_peers:
        models += bv.prepare_llamacpp(a, log)
        edge_models, _ = bv.prepare_edgerun(a, log, None)
        models += edge_models
    for q, path in onnx_models.items():
        models.append({"engine": "onnxruntime", "quant": q, "path": path})
    for _ in range(a.runs):
        for m in models:
            log(f"speed {m['engine']} {m['quant']}")
            if m["engine"] == "onnxruntime":
                r = run_ort("speed", {"model": m["path"], "edge": edge, "text": text, "threads": a.threads,
                                      "prompt_tokens": a.prompt_tokens, "gen_tokens": a.gen_tokens, "head_dim": hd})
            else:
                r = bv.speed_once(m, a)
            m.setdefault("speed", []).append(r)
    for m in models:
        log(f"perplexity {m['engine']} {m['quant']}")
        if m["engine"] == "onnxruntime":
            m["ppl"] = run_ort("ppl", {"model": m["path"], "edge": edge, "text": text, "threads": a.threads,
                                       "ctx": a.ctx, "chunks": a.chunks, "head_dim": hd})
        else:
            m["ppl"] = bv.perplexity(m, a)
    rows = []
    for m in models:
        size = onnx_bytes(m["path"]) if m["engine"] == "onnxruntime" else os.path.getsize(m["path"])
        med = lambda k: statistics.median(r[k] for r in m["speed"] if r.get(k) is not None)  # noqa: E731
        rows.append({"engine": m["engine"], "quant": m["quant"], "size_mb": size / 1e6,
                     "prefill_tok_s": med("prefill_tok_s"), "decode_tok_s": med("decode_tok_s"),
                     "ppl": m["ppl"]["ppl"], "peak_rss_mib": med("peak_rss_mib"), "other_load": med("foreign_cores"),
                     "chunks_sha256": m["ppl"].get("chunk_tokens_sha256")})
    hashes = {r["chunks_sha256"] for r in rows if r["chunks_sha256"]}
    hdr = ["engine", "quant", "size MB", "prefill tok/s", "decode tok/s", "ppl", "peak RSS MiB", "other load"]
    body = [[r["engine"], r["quant"], f"{r['size_mb']:.1f}", f"{r['prefill_tok_s']:.1f}", f"{r['decode_tok_s']:.1f}",
             f"{r['ppl']:.4f}", f"{r['peak_rss_mib']:.0f}", f"{r['other_load']:.2f}"] for r in rows]
    md = "| " + " | ".join(hdr) + " |\n|" + "---|" * len(hdr) + "\n" + "\n".join("| " + " | ".join(b) + " |" for b in body)
    note = (f"threads {a.threads}, prompt {a.prompt_tokens} + {a.gen_tokens} greedy tokens, perplexity {a.chunks} chunks "
            f"of {a.ctx} (2nd half scored); perplexity chunks identical across engines: {len(hashes) <= 1}; "
            f"load average {load0:.1f} at start, {loadavg():.1f} at end")
    print(md + "\n\n" + note)
    os.makedirs(bv.OUT_DIR, exist_ok=True)
    with open(os.path.join(bv.OUT_DIR, "bench_onnxruntime.json"), "w") as f:
        json.dump({"rows": rows, "note": note, "machine": machine_info()}, f, indent=1)
    with open(os.path.join(bv.OUT_DIR, "bench_onnxruntime.md"), "w") as f:
        f.write(md + "\n\n" + note + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
