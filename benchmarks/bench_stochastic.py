"""Speed of numfmt's stochastic quantize against a plain copy, nearest_even and gfloat.

Input: 2**24 standard-normal float32 values. The op is the stochastic quantize round
trip (float32 -> format -> float32) to BF16, E4M3 and E2M1, random-bit generation
included, each variant jitted as one function and timed as the median of ``--reps``
runs after a warm-up, each ended with ``block_until_ready``; all of them are timed
round-robin in the same run (one run of each per repetition), so that a shared
machine's changing load affects them alike:

* ``copy``: ``jax.jit(lambda x: x * 2.0)``: one read and one write, the memory ceiling;
* ``nearest``: ``numfmt.quantize(x, fmt)`` (nearest_even), no random bits;
* ``sr key``: ``numfmt.quantize(x, fmt, "stochastic", key=k)``: the built-in keyed
  counter hash (``numfmt.rounding.hash_bits``), fused into the rounding kernel;
* ``sr threefry`` / ``sr rbg`` / ``sr unsafe_rbg``: the same, with
  ``random_bits=jax.random.bits(k, x.shape, uint32)`` from a key of that
  implementation (``jax.random.key(0, impl=...)``), generated inside the same jit;
* ``gfloat sr``: gfloat's ``round_ndarray(fi, x, RoundMode.Stochastic, srbits=...,
  srnumbits=r)`` with jax.numpy arrays under jit, its ``srbits`` the top r bits of
  ``jax.random.bits`` from a threefry key, r = the bits a float32 input drops in the
  normal range (BF16 16, E4M3 20, E2M1 22; with fewer, gfloat's fraction is cut). E2M1
  has neither inf nor NaN: gfloat raises a data-dependent error on overflow unless
  ``sat=True``, which cannot be jitted, so E2M1 uses ``sat=True`` (the values numfmt
  gives there too: ±max).

Usage::

    python benchmarks/bench_stochastic.py [--reps 15]
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

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from machine import describe

import numfmt as nf

try:
    import gfloat
    import gfloat.formats as gf
except ImportError:  # pragma: no cover - gfloat is in the `bench` extra
    gfloat = None

N = 1 << 24
FORMATS = [nf.BF16, nf.E4M3, nf.E2M1]
GFLOAT = {"bf16": "format_info_bfloat16", "e4m3": "format_info_ocp_e4m3", "e2m1": "format_info_ocp_e2m1"}
RNG_IMPLS = ("threefry2x32", "rbg", "unsafe_rbg")


def _run(fn, args) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t0


def interleaved_ms(cases: dict, reps: int, warmup: int = 2) -> dict:
    """Median wall time in ms of each ``fn(*args)`` in ``cases`` (name -> (fn, args)).

    The cases are timed round-robin, one run of each per repetition, so that a change
    in the machine's load during the run affects all of them alike (the ratios to the
    copy stay fair on a shared machine). A case that fails is reported as a string.
    """
    times, live = {}, {}
    for name, (fn, args) in cases.items():
        try:
            for _ in range(warmup):
                jax.block_until_ready(fn(*args))
            live[name], times[name] = (fn, args), []
        except Exception as exc:  # noqa: BLE001 - a competitor failing is a result to report
            times[name] = f"fails ({type(exc).__name__})"
    for _ in range(reps):
        for name, (fn, args) in live.items():
            times[name].append(_run(fn, args))
    return {n: (t if isinstance(t, str) else 1e3 * statistics.median(t)) for n, t in times.items()}


def machine() -> str:
    return describe("gfloat")


def variants(fmt):
    """``{column: (jitted fn, args)}``: every way of computing the op for ``fmt``."""
    out = {
        "nearest": (jax.jit(lambda x: nf.quantize(x, fmt)), ()),
        "sr key": (jax.jit(lambda x, k: nf.quantize(x, fmt, "stochastic", key=k)), (jax.random.key(1),)),
    }
    for impl in RNG_IMPLS:

        def sr_bits(x, k):
            bits = jax.random.bits(k, x.shape, jnp.uint32)
            return nf.quantize(x, fmt, "stochastic", random_bits=bits)

        name = "sr " + ("threefry" if impl.startswith("threefry") else impl)
        out[name] = (jax.jit(sr_bits), (jax.random.key(1, impl=impl),))
    if gfloat is not None:
        fi = getattr(gf, GFLOAT[fmt.name])
        r = 23 - fmt.man_bits
        sat = fmt is nf.E2M1

        def g(x, k):
            srbits = (jax.random.bits(k, x.shape, jnp.uint32) >> (32 - r)).astype(jnp.int32)
            return gfloat.round_ndarray(fi, x, gfloat.RoundMode.Stochastic, sat=sat, srbits=srbits, srnumbits=r)

        out["gfloat sr"] = (jax.jit(g), (jax.random.key(1),))
    return out


def bench(reps: int):
    x = jax.random.normal(jax.random.key(0), (N,), jnp.float32)
    cases = {("copy", ""): (jax.jit(lambda x: x * 2.0), (x,))}
    for fmt in FORMATS:
        for name, (fn, extra) in variants(fmt).items():
            cases[(fmt.name, name)] = (fn, (x, *extra))
    ms = interleaved_ms(cases, reps)
    copy_ms = ms.pop(("copy", ""))
    rows = []
    for fmt in FORMATS:
        rows.append((fmt.name, {name: t for (f, name), t in ms.items() if f == fmt.name}))
    return copy_ms, rows


def _fmt(v, copy_ms):
    if isinstance(v, str):
        return v, "-"
    return f"{v:.1f}", f"{v / copy_ms:.2f}"


def table(copy_ms, rows) -> str:
    names = list(rows[0][1])
    head = ["format", "copy ms"] + [f"{n} ms (/copy)" for n in names] + ["gfloat / sr key", "gfloat / sr threefry"]
    body = []
    for fmt_name, times in rows:
        cells = [fmt_name, f"{copy_ms:.1f}"]
        for n in names:
            ms, ratio = _fmt(times[n], copy_ms)
            cells.append(f"{ms} ({ratio})")
        g = times.get("gfloat sr")
        for ours in (times["sr key"], times["sr threefry"]):
            cells.append(f"{g / ours:.2f}" if isinstance(g, float) and isinstance(ours, float) else "-")
        body.append(cells)
    widths = [max(len(str(r[i])) for r in [head, *body]) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(str(v).rjust(w) for v, w in zip(r, widths)) + " |"
    return "\n".join([line(head), "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"] + [line(r) for r in body])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=15, help="timed repetitions (median; default 15)")
    args = parser.parse_args(argv)
    # gfloat asks for int64 under jit; without jax_enable_x64 JAX gives int32 (enough here) and warns.
    warnings.filterwarnings("ignore", message="Explicitly requested dtype int64")
    print(f"# {machine()}")
    print(
        f"# input: {N} standard-normal float32; stochastic quantize, random bits included; median of {args.reps} runs after warm-up\n"
    )
    copy_ms, rows = bench(args.reps)
    print(table(copy_ms, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
