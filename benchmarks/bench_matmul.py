"""Speed of numfmt's quantized matrix products against ``jnp.matmul`` in float32, in one run.

    python benchmarks/bench_matmul.py              # 2048 x 2048 x 2048
    python benchmarks/bench_matmul.py --size 512   # quicker

Rows (each jitted, compiled first, then the median of ``--repeat`` runs):

* ``jnp.matmul`` float32 (``precision=HIGHEST``): the reference;
* fast path: E4M3 operands with per-tensor scales, FP32 accumulator (quantize both
  operands, one native matmul) -- target within 1.3x of the reference;
* emulated ~14-bit accumulator: the ``h100_fp8`` profile (E4M3, 128-blocks, E8M13
  accumulator, dot_width 32, promotion every 128) -- target within 10x;
* the ``int8_tflite`` profile (quantize, exact int32 matmul, rescale);
* ``numfmt.intgemm.int_linear``: the integer-only layer on int8 inputs (int32 GEMM
  with folded zero-point terms, fixed-point requantization to int8).

Prints a markdown table with the machine; docs/matmul.md records a run.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from machine import describe
from timing import median_time

import numfmt as nf
from numfmt import intgemm
from numfmt.matmul import MatmulConfig, OperandSpec, qmatmul
from numfmt.matmul_profiles import matmul_profile


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    n = args.size
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.standard_normal((n, n)), jnp.float32)
    b = jnp.asarray(rng.standard_normal((n, n)), jnp.float32)

    fp8_tensor = OperandSpec(nf.E4M3, granularity="tensor")
    configs = {
        "fast path: E4M3 per-tensor, FP32 accumulator": MatmulConfig(fp8_tensor, fp8_tensor),
        "emulated: h100_fp8 (E8M13 acc, dot_width 32, promotion 128)": matmul_profile("h100_fp8"),
        "int8_tflite profile (int32 accumulator)": matmul_profile("int8_tflite"),
    }
    rows = []
    ref = median_time(jax.jit(lambda x, y: jnp.matmul(x, y, precision=lax.Precision.HIGHEST)), a, b, reps=args.repeat, warmup=1)
    rows.append(("jnp.matmul float32 (HIGHEST)", ref))
    for name, cfg in configs.items():
        f = jax.jit(lambda x, y, cfg=cfg: qmatmul(x, y, cfg))
        rows.append((name, median_time(f, a, b, reps=args.repeat, warmup=1)))
    x_scale = float(jnp.max(jnp.abs(a))) / 127
    layer = intgemm.prepare_linear(b, None, x_scale=x_scale, x_zero_point=0, out_scale=x_scale * 8.0,
                                   out_zero_point=0)
    xq = intgemm.quantize_affine(a, x_scale, 0).astype(jnp.int8)
    f = jax.jit(lambda x, layer: intgemm.int_linear(x, layer))
    rows.append(("intgemm.int_linear (int8 in, int8 out)", median_time(f, xq, layer, reps=args.repeat, warmup=1)))

    print(f"size {n}x{n}x{n}; median of {args.repeat}; {describe()}")
    print("| product | time (ms) | vs jnp.matmul float32 |")
    print("| --- | --- | --- |")
    for name, t in rows:
        print(f"| {name} | {1e3 * t:.1f} | {t / ref:.2f}x |")


if __name__ == "__main__":
    main()
