"""Kernels per decoded token on the CUDA backend: the recorded one-token step's kernel nodes
(EDGE_CUDA_GRAPH_REPORT=1, csrc/backend/cuda/cuda_step.cu), fused (default) and EDGE_CUDA_FUSE=0, for each .edge file given.
    python bench/cuda/count_kernels.py FILE.edge [...]      (prints a markdown table)"""
import os
import re
import subprocess
import sys

CHILD = "import edgerun; m = edgerun.Model(r'{p}', device='cuda', ctx=64); m.eval([1, 2, 3]); m.eval([4]); m.eval([5])"


def count(path: str, fuse: bool) -> int | None:
    env = dict(os.environ, EDGE_CUDA_GRAPH_REPORT="1", EDGE_CUDA_FUSE="1" if fuse else "0")
    r = subprocess.run([sys.executable, "-c", CHILD.format(p=path)], env=env, capture_output=True, text=True, timeout=300)
    m = re.search(r"recorded step: (\d+) kernels", r.stderr)
    return int(m.group(1)) if m else None


def main() -> int:
    print("| file | kernels per token, EDGE_CUDA_FUSE=0 | fused |\n|---|---|---|")
    for p in sys.argv[1:]:
        print(f"| {os.path.basename(p)} | {count(p, False)} | {count(p, True)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
