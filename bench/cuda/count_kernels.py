"""Kernels per decoded token on the CUDA backend: the recorded one-token step's kernel nodes
(EDGE_CUDA_GRAPH_REPORT=1, csrc/backend/cuda/cuda_step.cu), with EDGE_CUDA_FUSE=0 and fused (default), for
bench/bench_cuda.py's shapes at one recipe (random weights written the same way).
    python bench/cuda/count_kernels.py [--shapes 135m,1b] [--recipe int4] [--work /tmp/edge_kcount]   (a markdown table)"""
import argparse
import os
import re
import subprocess
import sys

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
CHILD = "import edgerun; m = edgerun.Model(r'{p}', device='cuda', ctx=64); m.eval([1, 2, 3]); m.eval([4]); m.eval([5])"


def count(path: str, fuse: bool) -> str:
    pp = os.pathsep.join([os.path.join(REPO, "runtime"), os.path.join(REPO, "converter"), REPO, os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, EDGE_CUDA_GRAPH_REPORT="1", EDGE_CUDA_FUSE="1" if fuse else "0", PYTHONPATH=pp)
    r = subprocess.run([sys.executable, "-c", CHILD.format(p=path)], env=env, capture_output=True, text=True, timeout=120)
    m = re.search(r"recorded step: (\d+) kernels", r.stderr)
    return m.group(1) if m else "? (" + r.stderr.strip().replace("\n", " ")[-200:] + ")"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shapes", default="135m,1b")
    ap.add_argument("--recipe", default="int4")
    ap.add_argument("--work", default="/tmp/edge_kcount")
    a = ap.parse_args()
    import bench_cuda
    from random_edge import write_random_edge

    os.makedirs(a.work, exist_ok=True)
    tpl = bench_cuda.templates(a.work)
    print(f"| shape ({a.recipe}) | layers | kernels per token, EDGE_CUDA_FUSE=0 | fused |\n|---|---|---|---|")
    for sk in a.shapes.split(","):
        s = bench_cuda.SHAPES[sk]
        path = os.path.join(a.work, f"{sk}.{a.recipe}.edge")
        write_random_edge(tpl[(s["arch"], a.recipe)], path, s)
        print(f"| {sk} | {s['n_layers']} | {count(path, False)} | {count(path, True)} |", flush=True)
        os.remove(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
