"""Speed of numfmt's quantize round trip against a plain copy, JAX, ml_dtypes and gfloat.

Input: standard-normal float32 values, 2**24 on a CPU and 2**28 on a GPU (so that a
GPU's times are not its launch overhead), or ``--log2n``. For each format, the op is
the quantize round trip (float32 -> format -> float32). All cases are timed by
``timing.round_robin`` (two warm-ups, then one run of each per repetition, each ended
with ``jax.block_until_ready``), so that a shared machine's changing load moves all of
them alike. The table gives each time as a ratio to the copy timed beside it, from the
medians and again from the minima:

* ``numfmt``: ``jax.jit(lambda x: numfmt.quantize(x, fmt))`` (nearest_even);
* ``copy``: ``jax.jit(lambda x: x * 2.0)``, one read and one write: the memory ceiling;
* ``jax astype``: ``x.astype(dtype).astype(float32)`` under jit, where JAX has the dtype
  (XLA on CPU fails to compile the float6 casts: reported as ``fails``);
* ``ml_dtypes`` (CPU runs only: it runs on the host): the same round trip on a NumPy
  array (``x.astype(dtype).astype(float32)``; NumPy's own cast for float16 and int8);
* ``gfloat``: ``jax.jit(lambda x: gfloat.round_ndarray(fi, x))`` with jax.numpy as the
  array namespace (gfloat 0.5.2's array-API path); left out, with a note, where gfloat
  is not installed. gfloat raises a data-dependent error on overflow in formats with
  neither inf nor NaN unless ``sat=True``, which cannot be jitted, so those formats use
  ``sat=True`` (the same values as numfmt gives there: +-max).

Each competitor's output (its last warm-up run) is compared with numfmt's; one that
differs is marked ``†``. INT8's ``jax astype`` / ``ml_dtypes`` columns are C casts
(truncate, wrap), not the same operation as numfmt's round-and-clamp: they show the
cost of a cast only. The custom format is e3m3, IEEE-style (inf and NaN at the top
exponent), which no library but gfloat (given a FormatInfo) has.

Targets: numfmt at most 1.3x the copy, and at least 5x faster than gfloat.

Usage::

    python benchmarks/bench_codec.py               # the table (docs/benchmarks.md)
    python benchmarks/bench_codec.py --modes       # every rounding mode for E4M3
    python benchmarks/bench_codec.py --log2n 16    # a quick smoke run
"""

from __future__ import annotations

import argparse
import sys
import warnings

import jax
import jax.numpy as jnp
import ml_dtypes
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

import numfmt as nf

try:
    import gfloat
    import gfloat.formats as gf
    from gfloat.types import Domain, FormatInfo
except ImportError:  # pragma: no cover - gfloat is in the `bench` extra
    gfloat = None

CUSTOM = nf.FloatFormat("e3m3", 3, 3)
GFLOAT_MISSING = "gfloat is not installed here (`pip install gfloat`): its column is left out."


def _gfloat_formats():
    if gfloat is None:
        return {}
    # INT8 as gfloat spells it: 8-bit two's complement with unit step (bias -6 moves
    # format_info_ocp_int8's step 2**-6 to 1), range [-128, 127].
    int8 = FormatInfo(
        name="int8", k=8, precision=8, bias=-6, has_nz=False, domain=Domain.Finite,
        num_high_nans=0, has_subnormals=True, is_signed=True, is_twos_complement=True,
    )  # fmt: skip
    # e3m3 as numfmt's default FloatFormat: IEEE style, inf and NaNs at the top exponent.
    e3m3 = FormatInfo(
        name="e3m3", k=7, precision=4, bias=3, has_nz=True, domain=Domain.Extended,
        num_high_nans=2**3 - 1, has_subnormals=True, is_signed=True, is_twos_complement=False,
    )  # fmt: skip
    return {
        "fp16": gf.format_info_binary16,
        "bf16": gf.format_info_bfloat16,
        "e4m3": gf.format_info_ocp_e4m3,
        "e5m2": gf.format_info_ocp_e5m2,
        "e2m1": gf.format_info_ocp_e2m1,
        "e3m2": gf.format_info_ocp_e3m2,
        "int8": int8,
        "e3m3": e3m3,
    }


FORMATS = [nf.FP16, nf.BF16, nf.E4M3, nf.E5M2, nf.E2M1, nf.E3M2, nf.INT8, CUSTOM]
JAX_DTYPES = {
    "fp16": jnp.float16,
    "bf16": jnp.bfloat16,
    "e4m3": jnp.float8_e4m3fn,
    "e5m2": jnp.float8_e5m2,
    "e2m1": getattr(jnp, "float4_e2m1fn", None),
    "e3m2": getattr(jnp, "float6_e3m2fn", None),
    "int8": jnp.int8,
}
NUMPY_DTYPES = {
    "fp16": np.float16,
    "bf16": ml_dtypes.bfloat16,
    "e4m3": ml_dtypes.float8_e4m3fn,
    "e5m2": ml_dtypes.float8_e5m2,
    "e2m1": ml_dtypes.float4_e2m1fn,
    "e3m2": ml_dtypes.float6_e3m2fn,
    "int8": np.int8,
}




def default_log2n() -> int:
    """2**24 values on a CPU (the tables of docs/benchmarks.md), 2**28 (1 GiB) on a GPU."""
    return 28 if on_gpu() else 24


def _quantize_fn(fmt, rounding="nearest_even", **kw):
    return jax.jit(lambda x: nf.quantize(x, fmt, rounding, **kw))


def variants(fmt, gfi):
    """``{column: fn}``: every way of computing the round trip for ``fmt`` (fn takes the input)."""
    out = {"numfmt": _quantize_fn(fmt)}
    dt = JAX_DTYPES.get(fmt.name)
    if dt is not None:
        out["jax astype"] = jax.jit(lambda x: x.astype(dt).astype(jnp.float32))
    ndt = NUMPY_DTYPES.get(fmt.name)
    if ndt is not None and not on_gpu():

        def np_round_trip(a):
            with np.errstate(all="ignore"):
                return a.astype(ndt).astype(np.float32)

        out["ml_dtypes"] = np_round_trip
    fi = gfi.get(fmt.name)
    if fi is not None:
        # gfloat raises a data-dependent error (not jittable) on overflow in a format with
        # neither inf nor NaN unless sat=True; numfmt gives +-max there too.
        sat = fi.domain == Domain.Finite and fi.num_nans == 0
        out["gfloat"] = jax.jit(lambda x: gfloat.round_ndarray(fi, x, sat=sat))
    return out


def _same(a, b) -> bool:
    if isinstance(a, jax.Array) and isinstance(b, jax.Array):  # on the device: no copy to the host
        return bool(jnp.array_equal(a.astype(jnp.float32), b.astype(jnp.float32), equal_nan=True))
    return bool(np.array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32), equal_nan=True))


def bench_formats(reps: int, n: int):
    """``{(format, column): Timing}`` (the copy timed beside every format); ``Timing.check``: agrees with numfmt."""
    x = jax.random.normal(jax.random.key(0), (n,), jnp.float32)
    x_np = None if on_gpu() else np.asarray(x)
    copy = jax.jit(lambda x: x * 2.0)
    gfi = _gfloat_formats()
    ref = {}  # numfmt's output for the format being warmed up (warm-ups run in this dict's order)
    cases = {}
    for fmt in FORMATS:
        # The copy is a case of every format: each ratio's two times come from the same
        # repetitions, next to each other.
        cases[(fmt.name, "copy")] = Case(copy, (x,))
        for col, fn in variants(fmt, gfi).items():
            arg = x_np if col == "ml_dtypes" else x
            if col == "numfmt":
                check = lambda out: ref.update(out=out)
            else:
                check = lambda out: _same(ref["out"], out)
            cases[(fmt.name, col)] = Case(fn, (arg,), check=check)
    return round_robin(cases, reps)


COLUMNS = ("jax astype", "ml_dtypes", "gfloat")


def table_formats(times, stat="median"):
    """Head and rows of the table, from the medians (``stat="median"``) or the minima (``"min"``)."""
    cols = [c for c in COLUMNS if any(col == c for _, col in times)]
    head = ["format", "copy ms", "numfmt ms", "numfmt/copy", *(f"{c}/copy" for c in cols),
            "numfmt speedup vs gfloat", "targets (<=1.3x copy, >=5x gfloat)"]  # fmt: skip
    rows = []
    for fmt in FORMATS:
        copy, ours = times[(fmt.name, "copy")], times[(fmt.name, "numfmt")]
        cells = [fmt.name, ms(copy, stat, 1), ms(ours, stat, 1), ratio(ours, copy, stat)]
        for col in cols:
            t = times.get((fmt.name, col))
            r = ratio(t, copy, stat)
            if t is not None and t.ok and t.check is False:
                r += " †"  # a different result from numfmt's (see the script's docstring)
            elif t is not None and not t.ok:
                r += " ‡"
            cells.append(r)
        g = times.get((fmt.name, "gfloat"))
        speedup = getattr(g, stat) / getattr(ours, stat) if g is not None and g.ok else None
        cells.append("n/a" if speedup is None else f"{speedup:.1f}x")
        ok_copy = getattr(ours, stat) / getattr(copy, stat) <= 1.3
        ok_g = g is None or (speedup is not None and speedup >= 5)  # without gfloat: the copy target only
        missed = [m for m, bad in (("copy", not ok_copy), ("gfloat", not ok_g)) if bad]
        cells.append("met" if not missed else "MISS: " + ", ".join(missed))
        rows.append(cells)
    return head, rows


def bench_modes(reps: int, n: int, report: Report):
    x = jax.random.normal(jax.random.key(0), (n,), jnp.float32)
    cases = {"copy": Case(jax.jit(lambda x: x * 2.0), (x,))}
    for mode in nf.ROUNDING_MODES:
        kw = {"key": jax.random.key(1)} if mode == "stochastic" else {}
        cases[mode] = Case(_quantize_fn(nf.E4M3, mode, **kw), (x,))
    times = round_robin(cases, reps)
    copy = times.pop("copy")
    rows = [(m, ms(t, digits=1), ms(copy, digits=1), ratio(t, copy)) for m, t in times.items()]
    report.table("", ("E4M3 rounding", "numfmt ms", "copy ms", "numfmt/copy"), rows)
    report.times("modes", {**times, "copy": copy})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", action="store_true", help="time every rounding mode for E4M3 instead")
    parser.add_argument("--log2n", type=int, default=None, help="log2 of the input size (default: 24 CPU, 28 GPU)")
    add_common_args(parser, reps=15)
    args = parser.parse_args(argv)
    # gfloat asks for int64 under jit; without jax_enable_x64 JAX gives int32 (enough here) and warns.
    warnings.filterwarnings("ignore", message="Explicitly requested dtype int64")
    log2n = default_log2n() if args.log2n is None else args.log2n
    reps = reps_of(args)
    report = Report("modes" if args.modes else "codec", describe("ml_dtypes", "gfloat"),
                    f"input: 2**{log2n} standard-normal float32; {reps} round-robin repetitions after 2 warm-ups")
    if gfloat is None:
        report.note(GFLOAT_MISSING)
    if args.modes:
        bench_modes(reps, 1 << log2n, report)
        report.emit(args.out)
        return 0
    times = bench_formats(reps, 1 << log2n)
    report.times("formats", times)
    report.table("Medians:", *table_formats(times, "median"))
    report.table("Minima:", *table_formats(times, "min"))
    differ = [f"{f} {c}" for (f, c), t in times.items() if c not in ("numfmt", "copy") and t.ok and t.check is False]
    if differ:
        report.note("† gives other values than numfmt on this input: " + ", ".join(differ))
    else:
        report.note("Every competitor gave the same values as numfmt on this input.")
    if on_gpu():
        report.note("ml_dtypes runs on the host, so a GPU run leaves it out.")
    for (f, c), t in times.items():
        if not t.ok:
            report.note(f"‡ {f} {c} fails: {t.error}")
    report.emit(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
