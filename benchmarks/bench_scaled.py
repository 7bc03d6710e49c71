"""Speed of scaled / block quantization against the memory ceiling and gfloat.

Prints a table: the median wall time (time.perf_counter, after warm-up, every result
blocked on with block_until_ready) of

* a jitted plain copy ``x * 2.0`` of the same matrix (the memory ceiling),
* ``mx_quantize`` to MXFP8 (E4M3) and MXFP4 (E2M1), per-channel INT8
  (``quantize_scaled(x, "int8", axis=1)``) and ``nvfp4_quantize``, each jitted,
  producing the QArray; and an MXFP8 quantize + dequantize round trip (fake quant),
* gfloat 0.5.2's ``quantize_block`` (OCP MX block quantize-dequantize, scalar Python per
  element) on a slice of whole blocks, extrapolated linearly to the full matrix.

Run:  python benchmarks/bench_scaled.py [--n 4096] [--reps 10]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from machine import describe
from timing import median_time

from numfmt.mx import mx_quantize, nvfp4_quantize
from numfmt.scaled import quantize_scaled


def gfloat_time(x: np.ndarray, block_format, blocks: int) -> float | None:
    """Seconds for gfloat's quantize_block over the whole matrix, extrapolated from ``blocks`` blocks."""
    try:
        from gfloat.block import compute_scale_amax, quantize_block
    except ImportError:
        return None
    flat = x.reshape(-1, 32)[:blocks].astype(np.float64)
    t0 = time.perf_counter()
    for row in flat:
        quantize_block(block_format, row, compute_scale_amax)
    return (time.perf_counter() - t0) * (x.size / 32) / blocks


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--gfloat-blocks", type=int, default=256)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((args.n, args.n)).astype(np.float32)
    x = jnp.asarray(x_np)

    copy = jax.jit(lambda a: a * 2.0)
    ops = {
        "copy x * 2.0 (ceiling)": copy,
        "mx_quantize MXFP8 e4m3": jax.jit(lambda a: mx_quantize(a, "e4m3")),
        "mx_quantize MXFP4 e2m1": jax.jit(lambda a: mx_quantize(a, "e2m1")),
        "quantize_scaled int8 per-channel": jax.jit(lambda a: quantize_scaled(a, "int8", axis=1)),
        "nvfp4_quantize": jax.jit(nvfp4_quantize),
        "mx_quantize e4m3 + dequantize": jax.jit(lambda a: mx_quantize(a, "e4m3").dequantize()),
    }
    try:
        import gfloat.formats as gff

        gfloat_fmt = {"mx_quantize MXFP8 e4m3": gff.format_info_mxfp8_e4m3,
                      "mx_quantize MXFP4 e2m1": gff.format_info_mxfp4_e2m1}
    except ImportError:
        gfloat_fmt = {}

    print(f"# {args.n}x{args.n} float32, median of {args.reps}; {describe('gfloat')}")
    print("| op | numfmt ms | x copy | gfloat quantize_block ms | numfmt speed-up |")
    print("| --- | ---: | ---: | ---: | ---: |")
    base = None
    for name, fn in ops.items():
        t = median_time(fn, x, reps=args.reps)
        base = t if base is None else base
        if name in gfloat_fmt:
            tg = gfloat_time(x_np, gfloat_fmt[name], args.gfloat_blocks)
            g = f"{tg * 1e3:.0f} (extrapolated from {args.gfloat_blocks} blocks)"
            s = f"{tg / t:.0f}x"
        elif "int8" in name:
            g, s = "n/a (gfloat has no per-channel integer quantizer)", ""
        elif "nvfp4" in name:
            g, s = "n/a (gfloat 0.5.2 has no two-level NVFP4 scaling)", ""
        else:
            g, s = "", ""
        print(f"| {name} | {t * 1e3:.2f} | {t / base:.2f} | {g} | {s} |")


if __name__ == "__main__":
    main()
