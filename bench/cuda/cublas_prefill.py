"""The other prefill GEMM design of issue 9 §2, measured for comparison with cuda_gemm_mma: dequantize the
weights into f16 and call cuBLAS (through PyTorch's f16 matmul, f32 accumulation). Per shape of the 1.2B
model's prefill matmuls at 128 tokens: the cuBLAS GEMM time (median of 50 event-timed launches after warm-up)
and the least time the dequantization pass can take (read the int4_64 / q8_0 bytes, write the f16 matrix, at
the copy bandwidth --bw); their sum is a lower bound for "dequantize + cuBLAS". Prints a markdown table.

    python3 bench/cuda/cublas_prefill.py [--bw 4.2e12] [--tokens 128]
"""
import argparse

import torch

SHAPES = [(2048, 2048), (512, 2048), (8192, 2048), (2048, 8192), (49152, 2048)]
BYTES_PER_W = {"int4_64": 34 / 64, "q8_0": 34 / 32}


def median_us(fn, n=50):
    for _ in range(5):
        fn()
    ts = []
    for _ in range(n):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b) * 1e3)
    ts.sort()
    return ts[len(ts) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bw", type=float, default=4.2e12)
    ap.add_argument("--tokens", type=int, default=128)
    a = ap.parse_args()
    T = a.tokens
    print("| rows x n | T | cuBLAS f16 GEMM us | TFLOPS | dequant bound us int4_64 / q8_0 | dequant+cuBLAS >= us int4_64 / q8_0 |")
    print("|---|---|---|---|---|---|")
    for rows, n in SHAPES:
        x = torch.randn(T, n, device="cuda", dtype=torch.float16)
        w = torch.randn(n, rows, device="cuda", dtype=torch.float16) * 0.02
        y = torch.empty(T, rows, device="cuda", dtype=torch.float16)
        us = median_us(lambda: torch.matmul(x, w, out=y))
        dq = {k: (rows * n * (b + 2)) / a.bw * 1e6 for k, b in BYTES_PER_W.items()}
        print(f"| {rows}x{n} | {T} | {us:.1f} | {2 * rows * n * T / us / 1e6:.1f} | {dq['int4_64']:.1f} / {dq['q8_0']:.1f} | "
              f"{us + dq['int4_64']:.1f} / {us + dq['q8_0']:.1f} |")


if __name__ == "__main__":
    main()
