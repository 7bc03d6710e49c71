"""Where a jitted numfmt operation spends its time: the time of each XLA kernel, from JAX's profiler.

The benchmark tables give one time per operation; this script splits it into XLA's
kernels (fusions, reductions, GEMMs, copies) so that a slow row can be traced to the
kernel that makes it slow, on any backend and without an external profiler. Each case
is jitted, run twice (compilation, warm-up), then run ``--calls`` times inside
``jax.profiler.trace``; the trace is read back with ``jax.profiler.ProfileData``:

* on a GPU, the device's kernels (the profiler's ``XLA Ops`` line, or its streams'
  kernels where that line is missing), device time per call;
* on a CPU, the host events named like an instruction of the compiled module (XLA's CPU
  runtime traces each kernel it runs; conditionals and loops are left out, their
  kernels are counted), time per call summed over threads.

Cases, by group:

* ``scaled``: a jitted copy ``x * 2.0`` (the memory ceiling) and bench_scaled's rows:
  every quantizer (codes and scales) and every one-pass fake quantization; on a GPU also
  the one-pass INT8 and NVFP4 rows with the division's integer correction left out
  (``uncorrected``: NOT exact, timing only; it shows what the correctly rounded
  quotient costs there, numfmt.bitlayout.quotient_nearest);
* ``matmul``: ``jnp.matmul`` with bfloat16 operands and ``qmatmul`` with E4M3
  per-tensor operands and with the ``mxfp8`` profile (issue 15's 1.5x target);
* ``tc``: ``qmatmul`` with the ``h100_fp8_fast_accum`` tensor-core model.

Sizes: ``--n`` for scaled (default: bench_scaled's, 4096^2 on a CPU, 16384^2 on a GPU),
``--nm`` for matmul (8192 on a GPU, 1024 on a CPU), ``--nt`` for tc (2048 / 256).

    python benchmarks/profile_kernels.py [scaled] [matmul] [tc] [--calls 5] [--top 6]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import glob
import os
import re
import tempfile
import time

import jax
import jax.numpy as jnp
from bench_scaled import ONE_PASS, QUANTIZERS
from jax import lax
from machine import describe
from timing import on_gpu

import numfmt as nf
from numfmt import bitlayout
from numfmt.matmul import MatmulConfig, OperandSpec, qmatmul
from numfmt.quantcore import quantize_with

# Instructions that only wrap other kernels (their events would count those twice) or
# name no work.
_WRAPPERS = {"conditional", "while", "call", "parameter", "tuple", "get-tuple-element", "bitcast", "constant"}
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = .*?\s([a-z][\w-]*)\(", re.MULTILINE)


def kernel_names(compiled) -> set[str]:
    """The names of the compiled module's instructions that are kernels (not wrappers)."""
    return {name for name, op in _INSTRUCTION.findall(compiled.as_text()) if op not in _WRAPPERS}


def device_events(profile, kernels: set[str]):
    """``(name, duration_ns)`` of the kernels in a profile: a GPU's, or the CPU's named in ``kernels``."""
    gpu = [p for p in profile.planes if p.name.startswith("/device:GPU")]
    if gpu:
        for plane in gpu:
            lines = list(plane.lines)
            ops = [ln for ln in lines if ln.name == "XLA Ops"]
            for line in ops or [ln for ln in lines if "Stream" in ln.name]:
                for ev in line.events:
                    yield ev.name, ev.duration_ns
        return
    for plane in profile.planes:
        for line in plane.lines:
            for ev in line.events:
                if ev.name in kernels:
                    yield ev.name, ev.duration_ns


def profile_case(fn, args, calls: int):
    """``(wall seconds per call, {kernel: (ns per call, count per call)})`` of ``fn(*args)``.

    Where the profiler cannot trace (a GPU without CUPTI, say), the kernels are empty
    and the wall time is taken untraced; the reason is printed.
    """
    compiled = fn.lower(*args).compile()
    for _ in range(2):
        jax.block_until_ready(fn(*args))

    def timed():
        t0 = time.perf_counter()
        for _ in range(calls):
            jax.block_until_ready(fn(*args))
        return (time.perf_counter() - t0) / calls

    total, count = collections.defaultdict(int), collections.Counter()
    with tempfile.TemporaryDirectory() as d:
        try:
            with jax.profiler.trace(d):
                wall = timed()
            files = glob.glob(os.path.join(d, "**", "*.xplane.pb"), recursive=True)
            if not files:
                raise RuntimeError("the trace wrote no .xplane.pb")
            for pb in files:
                for name, ns in device_events(jax.profiler.ProfileData.from_file(pb), kernel_names(compiled)):
                    total[name] += ns
                    count[name] += 1
        except Exception as exc:  # noqa: BLE001 - a diagnostic script: say why, time it untraced
            print(f"  (no kernel times: {type(exc).__name__}: {str(exc)[:200]})")
            wall = timed()
    return wall, {k: (total[k] / calls, count[k] / calls) for k in total}


def report(name: str, wall: float, kernels: dict, top: int, ref: float | None):
    """Print one case: wall time per call (and its ratio to ``ref``), then its ``top`` kernels."""
    summed = sum(ns for ns, _ in kernels.values())
    rel = "" if ref is None else f" = {wall / ref:.2f}x the copy"
    print(f"\n{name}: {wall * 1e3:.3f} ms per call{rel}; kernels {summed / 1e6:.3f} ms in all")
    for k, (ns, n) in sorted(kernels.items(), key=lambda kv: -kv[1][0])[:top]:
        share = ns / summed if summed else 0.0
        print(f"  {ns / 1e6:9.3f} ms  {share:6.1%}  x{n:g}  {k[:90]}")


@contextlib.contextmanager
def _uncorrected():
    """The GPU quotient without its integer correction, while traced (timing only: not exact)."""
    saved = bitlayout._corrected_quotient
    bitlayout._corrected_quotient = bitlayout._float_div
    try:
        yield
    finally:
        bitlayout._corrected_quotient = saved


def scaled_cases(n: int):
    x = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    cases = {"copy x * 2.0 (ceiling)": (jax.jit(lambda a: a * 2.0), (x,), None)}
    for name, q in QUANTIZERS.items():
        cases[name] = (jax.jit(q), (x,), None)
    for name, scheme in ONE_PASS.items():
        cases[name] = (jax.jit(lambda a, s=scheme: quantize_with(a, s, codes=False, values=True).values), (x,), None)
        if on_gpu() and ("int8" in name or "NVFP4" in name):
            cases[name + ", uncorrected (timing only)"] = (
                jax.jit(lambda a, s=scheme: quantize_with(a, s, codes=False, values=True).values), (x,), _uncorrected)
    return cases


def matmul_cases(n: int):
    k0, k1 = jax.random.split(jax.random.key(1))
    a, b = jax.random.normal(k0, (n, n), jnp.float32), jax.random.normal(k1, (n, n), jnp.float32)
    fp8 = OperandSpec(nf.E4M3, granularity="tensor")
    return {
        f"jnp.matmul bfloat16 operands, float32 result, {n}^3": (
            jax.jit(lambda x, y: jnp.matmul(x, y, preferred_element_type=jnp.float32)),
            (a.astype(jnp.bfloat16), b.astype(jnp.bfloat16)), None),
        f"qmatmul E4M3 per-tensor (fast path), {n}^3": (
            jax.jit(lambda x, y: qmatmul(x, y, MatmulConfig(fp8, fp8))), (a, b), None),
        f"qmatmul mxfp8, {n}^3": (jax.jit(lambda x, y: qmatmul(x, y, "mxfp8")), (a, b), None),
    }


def tc_cases(n: int):
    k0, k1 = jax.random.split(jax.random.key(2))
    a, b = jax.random.normal(k0, (n, n), jnp.float32), jax.random.normal(k1, (n, n), jnp.float32)
    return {
        f"jnp.matmul float32 HIGHEST, {n}^3": (
            jax.jit(lambda x, y: jnp.matmul(x, y, precision=lax.Precision.HIGHEST)), (a, b), None),
        f"qmatmul h100_fp8_fast_accum, {n}^3": (
            jax.jit(lambda x, y: qmatmul(x, y, "h100_fp8_fast_accum")), (a, b), None),
    }


def main():
    gpu = on_gpu()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("groups", nargs="*", default=["scaled"], choices=["scaled", "matmul", "tc"])
    p.add_argument("--n", type=int, default=16384 if gpu else 4096)
    p.add_argument("--nm", type=int, default=8192 if gpu else 1024)
    p.add_argument("--nt", type=int, default=2048 if gpu else 256)
    p.add_argument("--calls", type=int, default=5)
    p.add_argument("--top", type=int, default=6)
    args = p.parse_args()
    print(f"# profile_kernels: {describe()}", flush=True)
    makers = {"scaled": lambda: scaled_cases(args.n), "matmul": lambda: matmul_cases(args.nm),
              "tc": lambda: tc_cases(args.nt)}
    for group in args.groups:
        ref = None
        for name, (fn, fargs, ctx) in makers[group]().items():
            with ctx() if ctx else contextlib.nullcontext():
                wall, kernels = profile_case(fn, fargs, args.calls)
            report(name, wall, kernels, args.top, ref)
            if group == "scaled" and ref is None:
                ref = wall
            print(flush=True, end="")


if __name__ == "__main__":
    main()
