"""numfmt against the other number-format libraries: one operation, timed in one run.

The operation: quantize 2**22 standard-normal float32 values to a format and back to
float32 (round to nearest, ties to even), for BF16, FP16 and OCP FP8 E4M3; and
stochastic rounding to BF16 where the library has it. Every library that is installed
is measured in the same process, on the same input:

* ``numfmt``: ``jax.jit(lambda x: nf.quantize(x, fmt))``; stochastic with a key argument;
* ``jax``: ``x.astype(dtype).astype(float32)`` under ``jax.jit`` (no stochastic rounding);
* ``ml_dtypes``: the same round trip on a NumPy array (NumPy's own cast for float16);
* ``gfloat``: ``gfloat.round_ndarray`` on a ``jax.numpy`` array under ``jax.jit`` (its
  array-API path) and on a NumPy array; stochastic: ``RoundMode.Stochastic`` with 16
  random bits (``srnumbits=16``, exact for float32 -> BF16), drawn inside the timed call;
* ``pychop``: ``pychop.Chop(exp_bits, sig_bits, rmode)`` (rmode 1: nearest even, 5:
  stochastic) called on a JAX array (its JAX backend, as the library runs it, and the
  same call wrapped in ``jax.jit``) and on a NumPy array (its NumPy backend with the
  default ``chunk_size=800``, which goes through dask, and with one chunk);
* ``qtorch`` (QPyTorch): ``qtorch.quant.float_quantize(x, exp, man, rounding)`` on a CPU
  ``torch`` tensor;
* ``qwix``: ``qwix.dequantize(qwix.quantize(x, jnp.float8_e4m3fn,
  calibration_method="fixed,-448,448"))`` under ``jax.jit``: the fixed range makes the
  scale 1, so this is the plain cast (qwix refuses 16-bit qtypes, and its stochastic
  rounding is for integer qtypes only);
* ``copy``: ``jax.jit(lambda x: x * 2.0)``, one read and one write: the memory ceiling.

Timing: ``timing.round_robin``: every case is run twice first (compilation, caches),
then all cases are timed round-robin, ``--reps`` times each, so that a shared machine's
changing load moves all of them alike; the table gives the minimum. Outputs that are
JAX arrays are waited for with ``block_until_ready``.

Correctness, from the last warm-up output: for nearest-even, the share of elements whose
float32 bits equal ml_dtypes' round trip (NumPy's for float16). For stochastic
rounding, the share of results that are one of the two BF16 neighbours of the input,
and a bias score z = sum(q - x) / sqrt(sum(var)), where var = step**2 * f * (1 - f) is
the variance of exact stochastic rounding at each element: |z| of a few units or less is
what an unbiased rounding gives.

pychop's E4M3 is its IEEE-style (exp_bits=4, sig_bits=3) format, whose largest finite
value is 240 where OCP E4M3 has 448; on this input (|x| < 6) the two agree. qtorch's
float_quantize likewise takes only exponent and mantissa widths.

Usage::

    python benchmarks/bench_comparison.py              # the table in docs/comparison.md
    python benchmarks/bench_comparison.py --log2n 16 --reps 2   # a quick smoke run
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import sys
import warnings

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
from machine import describe
from timing import Case, Report, add_common_args, reps_of, round_robin

import numfmt as nf


def _try_import(name):
    try:
        return importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - a missing library is a result to report
        return f"{type(exc).__name__}: {exc}".splitlines()[0]


# (name, numfmt format, JAX / NumPy dtype, exponent bits, mantissa bits)
FORMATS = [
    ("bf16", nf.BF16, ml_dtypes.bfloat16, 8, 7),
    ("fp16", nf.FP16, np.float16, 5, 10),
    ("e4m3", nf.E4M3, ml_dtypes.float8_e4m3fn, 4, 3),
]
RNE, SR = "nearest even", "stochastic"


def _as_f32(out) -> np.ndarray:
    if hasattr(out, "detach"):  # torch
        out = out.detach().cpu().numpy()
    return np.asarray(out, dtype=np.float32)


def check_rne(out, ref_bits) -> str:
    got = _as_f32(out).view(np.uint32)
    return f"{100.0 * np.mean(got == ref_bits):.4f}%"


def check_sr_bf16(out, x: np.ndarray) -> str:
    """Share of results on one of the two BF16 neighbours of x, and a bias z-score."""
    q = _as_f32(out).astype(np.float64)
    bits = x.view(np.uint32)
    lo = (bits & np.uint32(0xFFFF0000)).view(np.float32).astype(np.float64)  # toward zero
    exact = (bits & np.uint32(0xFFFF)) == 0
    hi = np.where(exact, lo, ((bits & np.uint32(0xFFFF0000)) + np.uint32(0x10000)).view(np.float32))
    on = (q == lo) | (q == hi)
    step = np.abs(hi - lo)
    f = np.where(exact, 0.0, np.abs(x.astype(np.float64) - lo) / np.where(exact, 1.0, step))
    var = step**2 * f * (1 - f)
    z = np.sum(q - x) / np.sqrt(np.sum(var))
    return f"neighbours {100.0 * np.mean(on):.4f}%, bias z={z:+.1f}"


def build_cases(x, x_np):
    libs = {}
    cases = []

    def add(lib, backend, fmt, mode, fn, arg, label=None):
        # label: the library's own name for the rounding mode, where it differs
        cases.append({"lib": lib, "backend": backend, "fmt": fmt, "mode": mode, "fn": fn, "arg": arg, "label": label or mode})

    add("copy (x * 2.0)", "jax.jit", "-", "-", jax.jit(lambda v: v * 2.0), x)

    # numfmt
    for name, fmt, _, _, _ in FORMATS:
        add("numfmt", "jax.jit", name, RNE, jax.jit(lambda v, fmt=fmt: nf.quantize(v, fmt)), x)
    key = jax.random.key(1)
    sr_nf = jax.jit(lambda v, k: nf.quantize(v, nf.BF16, "stochastic", key=k))
    add("numfmt", "jax.jit", "bf16", SR, lambda v: sr_nf(v, key), x)

    # JAX's own cast and ml_dtypes / NumPy
    for name, _, dt, _, _ in FORMATS:
        add("jax", "jax.jit astype", name, RNE, jax.jit(lambda v, dt=dt: v.astype(dt).astype(jnp.float32)), x)
    for name, _, dt, _, _ in FORMATS:
        add("ml_dtypes" if name != "fp16" else "NumPy", "numpy astype", name, RNE,
            lambda v, dt=dt: v.astype(dt).astype(np.float32), x_np)  # fmt: skip

    gfloat = _try_import("gfloat")
    if isinstance(gfloat, str):
        libs["gfloat"] = gfloat
    else:
        import gfloat.formats as gf
        from gfloat.types import RoundMode

        libs["gfloat"] = None
        fis = {"bf16": gf.format_info_bfloat16, "fp16": gf.format_info_binary16, "e4m3": gf.format_info_ocp_e4m3}
        for name, *_ in FORMATS:
            fi = fis[name]
            add("gfloat", "jax.jit (jnp arrays)", name, RNE, jax.jit(lambda v, fi=fi: gfloat.round_ndarray(fi, v)), x)
            add("gfloat", "numpy", name, RNE, lambda v, fi=fi: gfloat.round_ndarray(fi, v), x_np)
        bf = fis["bf16"]

        @jax.jit
        def gf_sr(v, k):
            bits = jax.random.bits(k, v.shape, jnp.uint16).astype(jnp.int32)
            return gfloat.round_ndarray(bf, v, RoundMode.Stochastic, srbits=bits, srnumbits=16)

        add("gfloat", "jax.jit (jnp arrays)", "bf16", SR, lambda v: gf_sr(v, key), x)
        rng = np.random.default_rng(1)
        add("gfloat", "numpy", "bf16", SR,
            lambda v: gfloat.round_ndarray(bf, v, RoundMode.Stochastic,
                                           srbits=rng.integers(0, 1 << 16, v.shape), srnumbits=16),
            x_np)  # fmt: skip

    pychop = _try_import("pychop")
    if isinstance(pychop, str):
        libs["pychop"] = pychop
    else:
        libs["pychop"] = None
        os.environ.pop("chop_backend", None)  # "auto": the backend follows the array type
        n = x_np.size
        for name, _, _, e, m in FORMATS:
            add("pychop", "jax", name, RNE, pychop.Chop(e, m, rmode=1), x)
            chop = pychop.Chop(e, m, rmode=1)
            add("pychop", "jax, wrapped in jax.jit", name, RNE, jax.jit(lambda v, c=chop: c(v)), x)
            add("pychop", "numpy (default chunk_size=800: dask)", name, RNE, pychop.Chop(e, m, rmode=1), x_np)
            add("pychop", "numpy, one chunk", name, RNE, pychop.Chop(e, m, rmode=1, chunk_size=n + 1), x_np)
        add("pychop", "jax", "bf16", SR, pychop.Chop(8, 7, rmode=5), x)
        add("pychop", "numpy", "bf16", SR, pychop.Chop(8, 7, rmode=5), x_np)

    qtorch_quant = _try_import("qtorch.quant")
    if isinstance(qtorch_quant, str):
        libs["qtorch"] = qtorch_quant
    else:
        import torch

        libs["qtorch"] = None
        x_t = torch.from_numpy(x_np.copy())
        for name, _, _, e, m in FORMATS:
            add("qtorch", f"torch {torch.__version__} CPU", name, RNE,
                lambda v, e=e, m=m: qtorch_quant.float_quantize(v, e, m, "nearest"), x_t,
                label='"nearest"')  # fmt: skip
        add("qtorch", f"torch {torch.__version__} CPU", "bf16", SR,
            lambda v: qtorch_quant.float_quantize(v, 8, 7, "stochastic"), x_t)  # fmt: skip

    qwix = _try_import("qwix")
    if isinstance(qwix, str):
        libs["qwix"] = qwix
    else:
        libs["qwix"] = None
        q8 = jax.jit(
            lambda v: qwix.dequantize(qwix.quantize(v, jnp.float8_e4m3fn, calibration_method="fixed,-448,448"))
        )
        add("qwix", "jax.jit, fixed range (scale 1)", "e4m3", RNE, q8, x)
    return cases, libs


def machine() -> str:
    return describe("ml_dtypes", "numpy", "gfloat", "pychop", "torch", "qtorch", "qwix")


def checker(c, refs, x_np):
    """The check of a case's output: bit-equal share (nearest even) or neighbours and bias (stochastic)."""
    if c["mode"] == RNE:
        return lambda out: check_rne(out, refs[c["fmt"]]) + " bit-equal"
    if c["mode"] == SR:
        return lambda out: check_sr_bf16(out, x_np)
    return None


def table(cases, times):
    """Head and rows: each case's minimum time, its ratio to the copy and numfmt's speed-up over it."""
    copy = next(times[i].min for i, c in enumerate(cases) if c["lib"].startswith("copy"))
    ours = {(c["fmt"], c["mode"]): times[i].min for i, c in enumerate(cases) if c["lib"] == "numfmt" and times[i].ok}
    head = ("library", "backend", "format", "rounding", "time ms (min)", "/ copy", "numfmt speedup", "check")
    rows = []
    for i, c in enumerate(cases):
        t = times[i]
        if not t.ok:
            rows.append((c["lib"], c["backend"], c["fmt"], c["label"], "fails", "", "", t.error[:80]))
            continue
        mine = ours.get((c["fmt"], c["mode"]))
        speed = "" if c["lib"] == "numfmt" or c["lib"].startswith("copy") or mine is None else f"{t.min / mine:.1f}x"
        rows.append((c["lib"], c["backend"], c["fmt"], c["label"], f"{1e3 * t.min:.1f}", f"{t.min / copy:.1f}",
                     speed, t.check or ""))  # fmt: skip
    return head, rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log2n", type=int, default=22, help="log2 of the input size (default 22)")
    add_common_args(parser, reps=7)
    args = parser.parse_args(argv)
    # gfloat asks for int64 under jit; without jax_enable_x64 JAX gives int32 (enough here) and warns.
    warnings.filterwarnings("ignore", message="Explicitly requested dtype")
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="pychop")  # its log2 / overflow warnings

    reps = reps_of(args)
    x = jax.random.normal(jax.random.key(0), (1 << args.log2n,), jnp.float32)
    x_np = np.asarray(x).copy()
    refs = {name: x_np.astype(dt).astype(np.float32).view(np.uint32) for name, _, dt, _, _ in FORMATS}
    cases, libs = build_cases(x, x_np)
    report = Report("comparison", f"{datetime.date.today().isoformat()}; {machine()}",
                    f"input: 2**{args.log2n} standard-normal float32; min of {reps} round-robin repetitions "
                    "after 2 warm-ups")  # fmt: skip
    for lib, why in libs.items():
        if why:
            report.note(f"{lib}: not measured ({why})")
    times = round_robin({i: Case(c["fn"], (c["arg"],), check=checker(c, refs, x_np)) for i, c in enumerate(cases)},
                        reps)  # fmt: skip
    report.table("", *table(cases, times), align="llllrrrl")
    report.note("check: nearest even: share of elements bit-equal to ml_dtypes (NumPy for fp16);\n"
                "stochastic: share of results on a BF16 neighbour of the input, and the bias z-score.")  # fmt: skip
    report.emit(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
