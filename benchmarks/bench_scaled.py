"""Speed of scaled / block quantization against the memory ceiling and gfloat.

Input: a standard-normal float32 matrix, 4096 x 4096 (2**24 values) on a CPU and
16384 x 16384 (2**28) on a GPU, or ``--n``. Every case is jitted and timed by
``timing.round_robin`` (two warm-ups, then one run of each per repetition, each ended
with ``block_until_ready``); the table gives medians and ratios to the copy of the same
run:

* a jitted plain copy ``x * 2.0`` of the same matrix (the memory ceiling);
* quantize, producing the QArray (uint8 codes and scales): ``mx_quantize`` to MXFP8
  (E4M3) and MXFP4 (E2M1), ``nvfp4_quantize``, per-channel INT8
  (``quantize_scaled(x, "int8", axis=1)``), per-block INT8 (blocks of 32 along
  axis 1, FP32 scales) and per-column INT8 (``axis=0``: a weight's output channels,
  groups that do not include the last axis), and per-tensor affine UINT8 (a zero point);
* the same with ``.dequantize()`` after it: the fake-quantized float32 values through
  the stored codes (two passes by design, no target);
* the fake-quantized values in one pass (``quantize_with(..., codes=False,
  values=True)``, what ``fake_quant`` and the matmul operands run) for the same schemes;
* on a CPU only, beside the MX ``+ dequantize`` rows (the same operation): gfloat
  0.5.2's ``quantize_block`` (OCP MX block quantize-dequantize, scalar Python per
  element) on a slice of whole blocks after one warm-up block, extrapolated linearly to
  the full matrix. It runs on the host, so a GPU run leaves it out.

Target (issue 15): every scaled quantization, and every one-pass fake quantization, at
most 1.3x the copy.

Usage::

    python benchmarks/bench_scaled.py [--n 4096] [--reps 10] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from machine import describe
from timing import (
    Case,
    Report,
    add_common_args,
    ms,
    on_gpu,
    ratio,
    reps_of,
    round_robin,
)

from numfmt.mx import mx_quantize, nvfp4_quantize
from numfmt.quantcore import quantize_with
from numfmt.scaled import quantize_scaled
from numfmt.scheme import NVFP4, QuantScheme, mx_scheme

TARGET = 1.3
QUANTIZERS = {
    "mx_quantize MXFP8 e4m3": lambda a: mx_quantize(a, "e4m3"),
    "mx_quantize MXFP4 e2m1": lambda a: mx_quantize(a, "e2m1"),
    "nvfp4_quantize": nvfp4_quantize,
    "quantize_scaled int8 per-channel": lambda a: quantize_scaled(a, "int8", axis=1),
    "quantize_scaled int8 per-block 32": lambda a: quantize_scaled(a, "int8", axis=1, block_size=32),
    "quantize_scaled int8 per-column (axis 0)": lambda a: quantize_scaled(a, "int8", axis=0),
    "quantize_scaled uint8 affine per-tensor": lambda a: quantize_scaled(a, "uint8", symmetric=False),
}
# Fake quantization in one pass (what fake_quant and the matmul operands run): the
# group absmax, then one loop that quantizes and dequantizes; no codes written.
ONE_PASS = {
    "one pass: MXFP8 e4m3 fake quant": mx_scheme("e4m3"),
    "one pass: MXFP4 e2m1 fake quant": mx_scheme("e2m1"),
    "one pass: NVFP4 fake quant": NVFP4,
    "one pass: int8 per-channel fake quant": QuantScheme("int8", axis=1),
    "one pass: int8 per-block 32 fake quant": QuantScheme("int8", axis=1, block_size=32),
    "one pass: int8 per-column (axis 0) fake quant": QuantScheme("int8", axis=0),
    "one pass: uint8 affine per-tensor fake quant": QuantScheme("uint8", symmetric=False),
}
GFLOAT_FORMATS = {"mx_quantize MXFP8 e4m3": "format_info_mxfp8_e4m3", "mx_quantize MXFP4 e2m1": "format_info_mxfp4_e2m1"}


def gfloat_time(x: np.ndarray, block_format, blocks: int) -> float:
    """Seconds for gfloat's quantize_block over the whole matrix, extrapolated from ``blocks`` blocks."""
    from gfloat.block import compute_scale_amax, quantize_block

    flat = x.reshape(-1, 32)[:blocks].astype(np.float64)
    quantize_block(block_format, flat[0], compute_scale_amax)  # a warm-up: imports, caches
    t0 = time.perf_counter()
    for row in flat:
        quantize_block(block_format, row, compute_scale_amax)
    return (time.perf_counter() - t0) * (x.size / 32) / blocks


def _gfloat_column(name, x, blocks, t):
    if on_gpu():
        return "", ""
    base = name.removesuffix(" + dequantize")
    if base in GFLOAT_FORMATS and base != name:  # quantize_block gives the dequantized values
        try:
            import gfloat.formats as gff
        except ImportError:
            return "n/a (gfloat not installed)", ""
        tg = gfloat_time(np.asarray(x), getattr(gff, GFLOAT_FORMATS[base]), blocks)
        return f"{tg * 1e3:.0f} (extrapolated from {blocks} blocks)", f"{tg / t.median:.0f}x"
    if "int8" in name:
        return "n/a (gfloat has no per-channel or per-block integer quantizer)", ""
    if "nvfp4" in name:
        return "n/a (gfloat 0.5.2 has no two-level NVFP4 scaling)", ""
    return "", ""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=None, help="matrix side (default: 4096 CPU, 16384 GPU)")
    ap.add_argument("--gfloat-blocks", type=int, default=256)
    add_common_args(ap, reps=10)
    args = ap.parse_args(argv)
    n = args.n or (16384 if on_gpu() else 4096)
    reps = reps_of(args)

    x = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    cases = {"copy x * 2.0 (ceiling)": Case(jax.jit(lambda a: a * 2.0), (x,))}
    for name, quantize in QUANTIZERS.items():
        cases[name] = Case(jax.jit(quantize), (x,))
    for name, quantize in QUANTIZERS.items():
        cases[f"{name} + dequantize"] = Case(jax.jit(lambda a, q=quantize: q(a).dequantize()), (x,))
    for name, scheme in ONE_PASS.items():
        cases[name] = Case(jax.jit(lambda a, s=scheme: quantize_with(a, s, codes=False, values=True).values), (x,))
    times = round_robin(cases, reps)

    report = Report("scaled", describe("gfloat"),
                    f"input: {n}x{n} standard-normal float32; median of {reps} round-robin runs after 2 warm-ups")
    copy = times["copy x * 2.0 (ceiling)"]
    rows = []
    for name, t in times.items():
        is_copy = t is copy
        verdict = "" if is_copy or not t.ok else ("met" if t.median / copy.median <= TARGET else "MISS")
        if name.endswith(" + dequantize"):  # codes stored and read back: two passes by design (no target)
            verdict = "(two passes)"
        g, s = _gfloat_column(name, x, args.gfloat_blocks, t) if t.ok else ("", "")
        rows.append((name, ms(t), ratio(t, copy), verdict, g, s))
    head = ("op", "numfmt ms", "x copy", f"target <= {TARGET}x copy", "gfloat quantize_block ms", "numfmt speed-up")
    report.table("", head, rows, align="lrrrrr")
    report.times("scaled", times)
    if on_gpu():
        report.note("gfloat's quantize_block is scalar Python on the host: a GPU run leaves it out.")
    for name, t in times.items():
        if not t.ok:
            report.note(f"{name} fails: {t.error}")
    report.emit(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
