"""Speed of numfmt's quantize round trip against a plain copy, JAX, ml_dtypes and gfloat.

Input: 2**24 standard-normal float32 values. For each format, the op is the quantize
round trip (float32 -> format -> float32). Every case is warmed up twice, then all
cases are timed round-robin (one run of each per repetition, each ended with
``jax.block_until_ready``), so that a shared machine's changing load moves all of them
alike. The table gives each time as a ratio to the copy timed beside it, from the
medians and again from the minima:

* ``numfmt``: ``jax.jit(lambda x: numfmt.quantize(x, fmt))`` (nearest_even);
* ``copy``: ``jax.jit(lambda x: x * 2.0)``, one read and one write: the memory ceiling;
* ``jax astype``: ``x.astype(dtype).astype(float32)`` under jit, where JAX has the dtype
  (XLA on CPU fails to compile the float6 casts: reported as ``fails``);
* ``ml_dtypes``: the same round trip on a NumPy array (``x.astype(dtype).astype(float32)``;
  NumPy's own cast for float16 and int8);
* ``gfloat``: ``jax.jit(lambda x: gfloat.round_ndarray(fi, x))`` with jax.numpy as the
  array namespace (gfloat 0.5.2's array-API path). gfloat raises a data-dependent
  error on overflow in formats with neither inf nor NaN unless ``sat=True``, which
  cannot be jitted, so those formats use ``sat=True`` (the same values as numfmt gives
  there: +-max).

Each competitor's output is compared with numfmt's; one that differs is marked ``†``.
INT8's ``jax astype`` / ``ml_dtypes`` columns are C casts (truncate, wrap), not the same
operation as numfmt's round-and-clamp: they show the cost of a cast only. The custom
format is e3m3, IEEE-style (inf and NaN at the top exponent), which no library but
gfloat (given a FormatInfo) has.

Targets: numfmt at most 1.3x the copy, and at least 5x faster than gfloat.

Usage::

    python benchmarks/bench_codec.py               # the table (docs/benchmarks.md)
    python benchmarks/bench_codec.py --modes       # every rounding mode for E4M3
    python benchmarks/bench_codec.py --log2n 16    # a quick smoke run
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from machine import describe

import numfmt as nf

try:
    import gfloat
    import gfloat.formats as gf
    from gfloat.types import Domain, FormatInfo
except ImportError:  # pragma: no cover - gfloat is in the `bench` extra
    gfloat = None

N = 1 << 24
CUSTOM = nf.FloatFormat("e3m3", 3, 3)


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


def _run(fn, arg) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(fn(arg))
    return time.perf_counter() - t0


def interleaved(cases: dict, reps: int, warmup: int = 2) -> dict:
    """Wall times in ms of each ``fn(arg)`` in ``cases`` (name -> (fn, arg)), round-robin.

    One run of every case per repetition, so that a change in a shared machine's load
    during the run moves all of them alike. Returns name -> list of ms, or a short
    string for a case that fails to compile or run (a result to report).
    """
    times, live = {}, {}
    for name, (fn, arg) in cases.items():
        try:
            for _ in range(warmup):
                jax.block_until_ready(fn(arg))
            live[name], times[name] = (fn, arg), []
        except Exception as exc:  # noqa: BLE001 - a competitor failing is a result to report
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            times[name] = f"{type(exc).__name__}: {msg}"
    for _ in range(reps):
        for name, (fn, arg) in live.items():
            times[name].append(1e3 * _run(fn, arg))
    return times


def _quantize_fn(fmt, rounding="nearest_even", **kw):
    return jax.jit(lambda x: nf.quantize(x, fmt, rounding, **kw))


def machine() -> str:
    return describe("ml_dtypes", "gfloat")


def variants(fmt, gfi):
    """``{column: fn}``: every way of computing the round trip for ``fmt`` (fn takes the input)."""
    out = {"numfmt": _quantize_fn(fmt)}
    dt = JAX_DTYPES.get(fmt.name)
    if dt is not None:
        out["jax astype"] = jax.jit(lambda x: x.astype(dt).astype(jnp.float32))
    ndt = NUMPY_DTYPES.get(fmt.name)
    if ndt is not None:

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
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return bool(np.array_equal(a, b, equal_nan=True))


def bench_formats(reps: int, n: int = N):
    """Per format: {column: list of ms} (with the copy timed beside it) and which columns agree with numfmt."""
    x = jax.random.normal(jax.random.key(0), (n,), jnp.float32)
    x_np = np.asarray(x)
    copy = jax.jit(lambda x: x * 2.0)
    gfi = _gfloat_formats()
    cases, agree = {}, {}
    for fmt in FORMATS:
        # The copy is a case of every format: each ratio's two times come from the same
        # repetitions, next to each other.
        cases[(fmt.name, "copy")] = (copy, x)
        fns = variants(fmt, gfi)
        ref = None
        for col, fn in fns.items():
            arg = x_np if col == "ml_dtypes" else x
            cases[(fmt.name, col)] = (fn, arg)
            try:
                got = np.asarray(fn(arg))
            except Exception:  # noqa: BLE001 - interleaved() reports the failure
                got = None
            if col == "numfmt":
                ref = got
            elif got is not None:
                agree[(fmt.name, col)] = _same(ref, got)
    times = interleaved(cases, reps)
    rows = []
    for fmt in FORMATS:
        rows.append((fmt.name, {col: t for (f, col), t in times.items() if f == fmt.name}))
    return rows, agree


COLUMNS = ("jax astype", "ml_dtypes", "gfloat")


def _ratio(t, copy, stat) -> str:
    if t is None:
        return "n/a"
    if isinstance(t, str):
        return "fails ‡"
    return f"{stat(t) / stat(copy):.2f}"


def table_formats(rows, agree, stat=statistics.median) -> str:
    head = (
        "format", "copy ms", "numfmt ms", "numfmt/copy", "jax astype/copy", "ml_dtypes/copy", "gfloat/copy",
        "numfmt speedup vs gfloat", "targets (<=1.3x copy, >=5x gfloat)",
    )  # fmt: skip
    body = []
    for name, t in rows:
        copy, ours = t["copy"], t["numfmt"]
        cells = [name, f"{stat(copy):.1f}", f"{stat(ours):.1f}", _ratio(ours, copy, stat)]
        for col in COLUMNS:
            r = _ratio(t.get(col), copy, stat)
            if agree.get((name, col)) is False:
                r += " †"  # a different result from numfmt's (see the script's docstring)
            cells.append(r)
        g = t.get("gfloat")
        speedup = stat(g) / stat(ours) if isinstance(g, list) else None
        cells.append("n/a" if speedup is None else f"{speedup:.1f}x")
        ok_copy = stat(ours) / stat(copy) <= 1.3
        ok_g = speedup is not None and speedup >= 5
        verdict = "met" if ok_copy and ok_g else "MISS: " + ", ".join(
            m for m, bad in (("copy", not ok_copy), ("gfloat", not ok_g)) if bad
        )
        cells.append(verdict)
        body.append(cells)
    return _markdown(head, body)


def bench_modes(reps: int, n: int = N):
    x = jax.random.normal(jax.random.key(0), (n,), jnp.float32)
    cases = {"copy": (jax.jit(lambda x: x * 2.0), x)}
    for mode in nf.ROUNDING_MODES:
        kw = {"key": jax.random.key(1)} if mode == "stochastic" else {}
        cases[mode] = (_quantize_fn(nf.E4M3, mode, **kw), x)
    times = interleaved(cases, reps)
    copy = times.pop("copy")
    head = ("E4M3 rounding", "numfmt ms", "copy ms", "numfmt/copy")
    body = [
        (m, t if isinstance(t, str) else f"{statistics.median(t):.1f}", f"{statistics.median(copy):.1f}", _ratio(t, copy, statistics.median))
        for m, t in times.items()
    ]
    return _markdown(head, body)


def _markdown(head, body) -> str:
    widths = [max(len(str(r[i])) for r in [head, *body]) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(str(v).rjust(w) for v, w in zip(r, widths)) + " |"
    return "\n".join([line(head), "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"] + [line(r) for r in body])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", action="store_true", help="time every rounding mode for E4M3 instead")
    parser.add_argument("--reps", type=int, default=15, help="timed repetitions (default 15)")
    parser.add_argument("--log2n", type=int, default=24, help="log2 of the input size (default 24)")
    args = parser.parse_args(argv)
    # gfloat asks for int64 under jit; without jax_enable_x64 JAX gives int32 (enough here) and warns.
    warnings.filterwarnings("ignore", message="Explicitly requested dtype int64")
    n = 1 << args.log2n
    print(f"# {machine()}")
    print(f"# input: 2**{args.log2n} standard-normal float32; {args.reps} round-robin repetitions after 2 warm-ups\n")
    if args.modes:
        print(bench_modes(args.reps, n))
        return 0
    rows, agree = bench_formats(args.reps, n)
    print("Medians:\n")
    print(table_formats(rows, agree, statistics.median))
    print("\nMinima:\n")
    print(table_formats(rows, agree, min))
    if any(v is False for v in agree.values()):
        print("\n† gives other values than numfmt on this input:", ", ".join(f"{f} {c}" for (f, c), v in agree.items() if not v))
    else:
        print("\nEvery competitor gave the same values as numfmt on this input.")
    for name, t in rows:
        for col, v in t.items():
            if isinstance(v, str):
                print(f"‡ {name} {col} fails: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
