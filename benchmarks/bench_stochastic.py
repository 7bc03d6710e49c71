"""Speed of numfmt's stochastic quantize against a plain copy, nearest_even and gfloat.

Input: standard-normal float32 values, 2**24 on a CPU and 2**28 on a GPU (or
``--log2n``). The op is the stochastic quantize round trip (float32 -> format ->
float32) to BF16, E4M3 and E2M1, random-bit generation included, each variant jitted
as one function and timed as the median of ``--reps`` runs by ``timing.round_robin``
(two warm-ups, then one run of each per repetition, each ended with
``block_until_ready``), so that a shared machine's changing load affects them alike:

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
  gives there too: ±max). Left out, with a note, where gfloat is not installed.

Usage::

    python benchmarks/bench_stochastic.py [--reps 15] [--log2n 16]
"""

from __future__ import annotations

import argparse
import sys
import warnings

import jax
import jax.numpy as jnp
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
except ImportError:  # pragma: no cover - gfloat is in the `bench` extra
    gfloat = None

FORMATS = [nf.BF16, nf.E4M3, nf.E2M1]
GFLOAT = {"bf16": "format_info_bfloat16", "e4m3": "format_info_ocp_e4m3", "e2m1": "format_info_ocp_e2m1"}
RNG_IMPLS = ("threefry2x32", "rbg", "unsafe_rbg")


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


def bench(reps: int, n: int):
    """``{(format, variant): Timing}``, with the copy under ``("copy", "")``."""
    x = jax.random.normal(jax.random.key(0), (n,), jnp.float32)
    cases = {("copy", ""): Case(jax.jit(lambda x: x * 2.0), (x,))}
    for fmt in FORMATS:
        for name, (fn, extra) in variants(fmt).items():
            cases[(fmt.name, name)] = Case(fn, (x, *extra))
    return round_robin(cases, reps)


def table(times):
    copy = times[("copy", "")]
    names = [v for f, v in times if f == FORMATS[0].name]
    head = ["format", "copy ms"] + [f"{n} ms (/copy)" for n in names] + ["gfloat / sr key", "gfloat / sr threefry"]
    rows = []
    for fmt in FORMATS:
        cells = [fmt.name, ms(copy, digits=1)]
        for n in names:
            t = times[(fmt.name, n)]
            cells.append(f"{ms(t, digits=1)} ({ratio(t, copy)})" if t.ok else f"fails ({t.error.split(':')[0]})")
        g = times.get((fmt.name, "gfloat sr"))
        for ours in ("sr key", "sr threefry"):
            t = times[(fmt.name, ours)]
            cells.append(f"{g.median / t.median:.2f}" if g is not None and g.ok and t.ok else "-")
        rows.append(cells)
    return head, rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log2n", type=int, default=None, help="log2 of the input size (default: 24 CPU, 28 GPU)")
    add_common_args(parser, reps=15)
    args = parser.parse_args(argv)
    # gfloat asks for int64 under jit; without jax_enable_x64 JAX gives int32 (enough here) and warns.
    warnings.filterwarnings("ignore", message="Explicitly requested dtype int64")
    log2n = (28 if on_gpu() else 24) if args.log2n is None else args.log2n
    reps = reps_of(args)
    report = Report("stochastic", describe("gfloat"),
                    f"input: 2**{log2n} standard-normal float32; stochastic quantize, random bits included; "
                    f"median of {reps} round-robin runs after 2 warm-ups")  # fmt: skip
    if gfloat is None:
        report.note("gfloat is not installed here (`pip install gfloat`): its column is left out.")
    times = bench(reps, 1 << log2n)
    report.times("stochastic", times)
    report.table("", *table(times))
    report.emit(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
