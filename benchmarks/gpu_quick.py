"""The GPU matrix-product targets of issue 15 in minutes, each row printed as soon as it is timed.

For a GPU lent for a few minutes, where ``bench_matmul.py`` at its GPU sizes does not
finish (a tensor-core profile's first compilation at 4096^3 took 108 s on an H100).
Every row is jitted, run once (compilation; the ``first`` column), then timed
``reps`` times with ``block_until_ready``; medians and minima in ms. torch's cuBLASLt
FP8 rows are timed with CUDA events.

    JAX_PLATFORMS=cuda python benchmarks/gpu_quick.py native   # 8192^3: f32 HIGHEST, bf16, cuBLASLt FP8,
                                                               # qmatmul E4M3 per-tensor and mxfp8 (target <= 1.5x bf16)
    JAX_PLATFORMS=cuda python benchmarks/gpu_quick.py tc       # tensor-core profiles at 2048^3 and 4096^3 (target <= 20x f32)
    JAX_PLATFORMS=cuda python benchmarks/gpu_quick.py unroll   # h100_fp8_fast_accum at 2048^3, K-loop unroll variants
    JAX_PLATFORMS=cuda python benchmarks/gpu_quick.py tcparts  # one block step of it at 4096^2 outputs, and its parts
    JAX_PLATFORMS=cuda python benchmarks/gpu_quick.py layouts  # the products laid out (M, n, N) vs (M, N, n):
                                                               # one block step at 4096^2, the product at 2048^3

Sizes: ``NN`` (native, default 8192), ``N1`` / ``N2`` (tensor-core, 2048 / 4096) from the
environment. With ``OUT`` set, ``tc`` writes the optimized HLO of the 4096^3
``h100_fp8_fast_accum`` product to ``$OUT/hlo_fp8fast_4096.txt``. Ratios are to the
references timed in the same run (docs/benchmarks.md, "GPU runs").
"""

from __future__ import annotations

import os
import sys
import time

import jax
import jax.numpy as jnp
from bench_matmul import BF16, F32, cases_at, targets
from jax import lax
from machine import describe
from timing import Case, on_gpu, round_robin, wall_timer

import numfmt as nf
from numfmt import tensorcore_kernel
from numfmt.matmul import qmatmul


def say(*args):
    print(*args, flush=True)


def operands(n):
    k0, k1 = jax.random.split(jax.random.key(0))
    return jax.random.normal(k0, (n, n), jnp.float32), jax.random.normal(k1, (n, n), jnp.float32)


def row(name, n, fn, args, reps, ref=None):
    """Time ``fn(*args)`` (its first call, then ``timing.round_robin``); print one line; return the median (s)."""
    first = wall_timer(fn, args)
    t = round_robin({name: Case(fn, args)}, reps, warmup=0)[name]
    ratio = "" if ref is None else f"  {t.median / ref:.2f}x the reference"
    say(f"{name:48s} {n}^3  first {first * 1e3:9.1f} ms  median {t.median * 1e3:9.3f} ms  min {t.min * 1e3:9.3f} ms{ratio}")
    return t.median


def f32_highest(n, a, b, reps=5):
    return row("jnp.matmul float32 HIGHEST (reference)", n,
               jax.jit(lambda x, y: jnp.matmul(x, y, precision=lax.Precision.HIGHEST)), (a, b), reps)


def native():
    """bench_matmul's native rows (its cases, operands and targets), each printed when timed."""
    n = int(os.environ.get("NN", "8192"))
    cases, notes = cases_at(n, native=True, emulated=False)
    for note in notes:
        say(note)
    goal, times = targets(), {}
    for name, case in cases.items():
        if case.timer is None:  # a JAX case: its first call (compilation) is printed too
            times[name] = row(name, n, case.fn, case.args, 10, times.get(F32))
        else:  # torch's cuBLASLt rows time themselves (CUDA events)
            times[name] = round_robin({name: case}, 10, warmup=1)[name].median
            say(f"{name:48s} {n}^3  median {times[name] * 1e3:9.3f} ms")
        if BF16 in times and name != BF16:
            say(f"{'':48s} {times[name] / times[BF16]:.2f}x bf16")
        if name in goal:
            ref, bound = goal[name]
            say(f"{'':48s} target: <= {bound:g}x {'bf16' if ref == BF16 else 'f32 HIGHEST'}: "
                f"{times[name] / times[ref]:.2f}x")


def tc():
    n1, n2 = int(os.environ.get("N1", "2048")), int(os.environ.get("N2", "4096"))
    plan = [(n1, "h100_fp8_fast_accum", 3)] + [(n2, p, r) for p, r in (
        ("h100_fp8_fast_accum", 3), ("h100_fp8", 2), ("deepseek_v3_fp8", 2), ("h100_bf16", 2))]
    for n, profile, reps in plan:
        a, b = operands(n)
        ref = f32_highest(n, a, b)
        fn = jax.jit(lambda x, y, p=profile: qmatmul(x, y, p))
        if n == n2 and profile == "h100_fp8_fast_accum" and os.environ.get("OUT"):
            t0 = time.perf_counter()
            compiled = fn.lower(a, b).compile()
            say(f"compiled in {time.perf_counter() - t0:.1f} s")
            with open(os.path.join(os.environ["OUT"], "hlo_fp8fast_4096.txt"), "w") as f:
                f.write(compiled.as_text())
        row(profile, n, fn, (a, b), reps, ref)


def unroll():
    n = int(os.environ.get("N1", "2048"))
    a, b = operands(n)
    ref = f32_highest(n, a, b)
    for elements in (32, 256, 1024):  # trace-time setting: each variant compiles anew
        tensorcore_kernel.UNROLL_ELEMENTS = elements
        row(f"h100_fp8_fast_accum, UNROLL_ELEMENTS={elements}", n,
            jax.jit(lambda x, y: qmatmul(x, y, "h100_fp8_fast_accum")), (a, b), 3, ref)


def tcparts():
    """Where one block step of ``h100_fp8_fast_accum`` spends its time, at ``N2``^2 outputs.

    Rows: the whole product over K = ``N2`` (per step: divided by its steps); one step
    alone (``_block_fast`` on the first block, outside the loop); its parts, each jitted
    on its own: the exponent products (``levels`` matrix products of K = block size)
    and the aligned, truncated products summed in int32 (one fused reduction). A step
    alone much cheaper than the loop's per-step time points at the loop (carries,
    copies, launches); parts much cheaper than the step point at the (M, N) elementwise work.
    """
    from numfmt import tensorcore as tc
    from numfmt.formats import E4M3

    n = int(os.environ.get("N2", "4096"))
    model = tc.H100_FP8_FAST_ACCUM
    bs, steps = model.block_size, n // model.block_size
    a, b = (nf.quantize(v, E4M3) for v in operands(n))
    whole = row("tensorcore_dot, whole product", n, jax.jit(lambda x, y: tc.tensorcore_dot(x, y.T, model)), (a, b), 3)
    say(f"{'':48s} {whole / steps * 1e3:.3f} ms per step of {bs} ({steps} steps)")
    nlev = tensorcore_kernel.levels(model) or 1

    row("one block step (_block_fast, operands included)", n, jax.jit(first_block(model, n, nlev)), (a, b.T), 5)
    xa, xb = a[:, :bs], b[:bs, :]
    row(f"its exponent products ({nlev} x K={bs}, HIGHEST)", n, jax.jit(lambda x, y: [
        jnp.einsum("mi,in->mn", x * (j + 1), y, precision=lax.Precision.HIGHEST) for j in range(nlev)]), (xa, xb), 5)
    scale = jnp.ones((n, n), jnp.float32)
    row("its aligned products, int32 sum (one reduction)", n, jax.jit(
        lambda x, y, s: jnp.sum(((x[:, :, None] * y[None, :, :]) * s[:, None, :]).astype(jnp.int32), axis=1)),
        (xa, xb, scale), 5)


def first_block(model, n, nlev, minor=None):
    """One fast-path block step of ``model`` on the first block of (n, K) operands, in the
    layout of ``minor`` (default: the backend's, ``tensorcore_kernel.reduce_minor``)."""
    from numfmt.formats import E4M3

    bs = model.block_size
    minor = tensorcore_kernel.reduce_minor() if minor is None else minor

    def step(x, y):
        fa = tensorcore_kernel._fast_operand(*tensorcore_kernel.decompose(x, E4M3)[:2], bs)
        fb = tensorcore_kernel._fast_operand(*tensorcore_kernel.decompose(y, E4M3)[:2], bs)
        blk_a = (fa[0][:, :bs], fa[1][:, :bs], fa[2][:, 0])
        blk_b = (fb[0][:, :bs], fb[1][:, :bs], fb[2][:, 0]) if minor else (fb[0][:, :bs].T, fb[1][:, :bs].T, fb[2][:, 0])
        return tensorcore_kernel._block_fast(model, jnp.zeros((n, n), jnp.float32), blk_a, blk_b, nlev, minor=minor)

    return step


def layouts():
    """The two layouts of a block's products (``tensorcore_kernel.reduce_minor``): (M, n, N)
    summed over n, the CPU's, and (M, N, n) summed over the minor axis, the GPU's by
    default: one block step at ``N2``^2 outputs and the whole ``h100_fp8_fast_accum``
    product at ``N1``^3, each in both; the same bits (printed)."""
    from numfmt import tensorcore as tc
    from numfmt.formats import E4M3

    n1, n2 = int(os.environ.get("N1", "2048")), int(os.environ.get("N2", "4096"))
    model = tc.H100_FP8_FAST_ACCUM
    nlev = tensorcore_kernel.levels(model) or 1
    a, b = (nf.quantize(v, E4M3) for v in operands(n2))
    for minor in (False, True):
        name = "(M, N, n) minor-axis sum" if minor else "(M, n, N) sum over n"
        row(f"one block step, {name}", n2, jax.jit(first_block(model, n2, nlev, minor)), (a, b), 5)
    a, b = operands(n1)
    ref = f32_highest(n1, a, b)
    saved, outs = tensorcore_kernel.reduce_minor, []
    try:
        for minor in (False, True):
            tensorcore_kernel.reduce_minor = lambda backend=None, m=minor: m  # read at trace time
            fn = jax.jit(lambda x, y: qmatmul(x, y, "h100_fp8_fast_accum"))
            name = "(M, N, n) minor-axis sum" if minor else "(M, n, N) sum over n"
            row(f"h100_fp8_fast_accum, {name}", n1, fn, (a, b), 3, ref)
            outs.append(fn(a, b))
    finally:
        tensorcore_kernel.reduce_minor = saved
    same = bool(jnp.all(lax.bitcast_convert_type(outs[0], jnp.uint32) == lax.bitcast_convert_type(outs[1], jnp.uint32)))
    say(f"{'':48s} the two layouts give the same bits: {same}")


if __name__ == "__main__":
    stage = sys.argv[1] if len(sys.argv) > 1 else "native"
    say(f"# gpu_quick {stage}: {describe()}{'' if on_gpu() else ' (not a GPU: sizes as given)'}")
    {"native": native, "tc": tc, "unroll": unroll, "tcparts": tcparts, "layouts": layouts}[stage]()
