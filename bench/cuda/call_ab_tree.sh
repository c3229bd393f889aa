#!/usr/bin/env bash
# bench/cuda/call_ab_tree.sh — A/B of this tree against an older one in the same device call (s22): the old tree
# is this one with OLD_PATCH (a `git diff OLD..` of this tree, carried) applied in reverse, copied to /tmp/old and
# built there beside build/gpu (which must exist: build_gpu.sh); then ROUNDS rounds, each running
# bench/bench_cuda.py (no HF, no MoE budget row) from the new tree and then from the old one, so both see the same
# machine. Sourced after build_gpu.sh (uses el, OUT); results in $OUT/ab_{new,old}_R/bench_cuda.json and a summary
# $OUT/ab.md. Settings: OLD_PATCH, ROUNDS (2), AB_SHAPES (135m,1b), AB_RECIPES (int4), AB_RUNS (2).
#   OLD_PATCH=.lcp/s22.patch . bench/cuda/call_ab_tree.sh
ab_build_old() {
  local patch; patch=$(realpath "$OLD_PATCH")
  rm -rf /tmp/old && mkdir -p /tmp/old && tar --exclude=./build --exclude=./.lcp --exclude=./.whl -cf - . | tar -xf - -C /tmp/old &&
    (cd /tmp/old && git apply -R "$patch") &&
    cmake -S /tmp/old -B /tmp/old/build/gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DEDGE_TESTS=OFF \
      -Dpybind11_DIR="$(python3 -c 'import pybind11;print(pybind11.get_cmake_dir())')" >/tmp/old_build.log 2>&1 &&
    ninja -C /tmp/old/build/gpu -j${AB_JOBS:-8} >>/tmp/old_build.log 2>&1
  echo "old tree build rc=$?" >>/tmp/old_build.log
}
ab_run() {
  local r t dir out; out=$(realpath "$OUT")
  for r in $(seq "${ROUNDS:-2}"); do
    for t in new old; do
      dir=$PWD; [ $t = old ] && dir=/tmp/old
      ( cd "$dir" && EDGE_CUDA_PLUGIN=$dir/runtime/edgerun/libedge_cuda_backend.so timeout ${AB_TIMEOUT:-150} python3 bench/bench_cuda.py \
          --out "$out/ab_${t}_$r" --shapes "${AB_SHAPES:-135m,1b}" --recipes "${AB_RECIPES:-int4}" --no-hf --moe-budget 0 \
          --runs "${AB_RUNS:-2}" --edgert "$dir/build/gpu/edgert" --work /tmp/ab_work ) >"$OUT/ab_${t}_$r.log" 2>&1
      el "A/B round $r $t rc=$?"
    done
  done
  python3 - "$OUT" <<'PY' >"$OUT/ab.md"
import glob, json, os, sys
out = sys.argv[1]
rows = {}
for f in sorted(glob.glob(os.path.join(out, "ab_*_*", "bench_cuda.json"))):
    tree = os.path.basename(os.path.dirname(f)).split("_")[1]
    for r in json.load(open(f)).get("rows", []):
        key = (r.get("shape"), r.get("recipe"))
        d = rows.setdefault(key, {})
        d.setdefault(tree, []).append(r.get("python", {}).get("decode_tok_s"))
        d.setdefault(tree + "_rt", []).append(r.get("edgert", {}).get("decode_tok_s"))
        d.setdefault(tree + "_pre", []).append(r.get("python", {}).get("prefill_tok_s"))
med = lambda a: sorted(x for x in a if x)[len([x for x in a if x]) // 2] if any(a) else float("nan")  # noqa: E731
print("| shape | recipe | decode py new / old (rounds) | ratio | edgert new / old | ratio | prefill py new / old | ratio |")
print("|---|---|---|---|---|---|---|---|")
for (s, rc), v in rows.items():
    cells = []
    for k in ("", "_rt", "_pre"):
        n, o = v.get("new" + k, []), v.get("old" + k, [])
        cells.append(f"{med(n):.0f} / {med(o):.0f} ({n} / {o}) | {med(n) / med(o):.3f}")
    print(f"| {s} | {rc} | " + " | ".join(cells) + " |")
PY
  cat "$OUT/ab.md"
}
