"""Speed of numfmt's quantized matrix products against jnp.matmul and cuBLASLt FP8, in one run.

Sizes by backend (or ``--size`` / ``--emulated-size``): on a GPU, 8192 x 8192 x 8192
for the native products and 4096^3 for the emulated accumulator and the integer
products (big enough that a time is not launch overhead); on a CPU, 2048^3 for
everything. Every JAX case is
jitted, warmed up twice and timed by ``timing.round_robin`` (one run of each per
repetition, each ended with ``block_until_ready``); torch's cases are timed with
``torch.cuda`` events. The table gives medians, TFLOP/s (2 M N K / time) and the
ratios to the two ``jnp.matmul`` references of the same size and run.

Rows:

* ``jnp.matmul`` float32, ``precision=HIGHEST`` (the exact-FP32-product reference);
* ``jnp.matmul`` with bfloat16 operands (cast before the timed call) and a float32
  result (``preferred_element_type``): what a GPU's tensor cores give for 16 bits;
* on a GPU with torch (CUDA) installed, cuBLASLt FP8 through ``torch._scaled_mm``: E4M3
  operands (cast before), per-tensor scales 1, float32 out, ``use_fast_accum`` False
  and True; left out, with a note, elsewhere;
* ``qmatmul`` of the two float32 operands, quantization included: E4M3 per-tensor
  scales with an FP32 accumulator (the fast path), and the ``mxfp8`` profile;
* ``qmatmul`` with an emulated accumulator (E4M3 in blocks of 128, an E8M13
  ``Accumulator``, dot_width 32, promotion every 128: the guessed ``h100_fp8`` of
  earlier runs) at the emulated size;
* ``qmatmul`` with the hardware profiles (``h100_fp8_fast_accum``, ``h100_fp8``,
  ``h100_bf16``, ``h100_fp16``, ``h100_tf32``, ``h100_fp32``, ``deepseek_v3_fp8``: the
  bit-exact tensor-core models of ``numfmt.tensorcore``) at the hardware size
  (``--hardware-size``: 512 on a CPU, 4096 on a GPU), with their own float32 HIGHEST
  reference of that size in the same run;
* at the emulated size, the ``int8_tflite`` profile (quantize, exact int32 matmul,
  rescale) and ``numfmt.intgemm.int_linear`` (int8 in and out: int32 GEMM, folded zero
  points, fixed-point requantization).

Targets: on a GPU (issue 15) the fast path and ``mxfp8`` at most 1.5x ``jnp.matmul``
bfloat16, and the FP8 hardware profiles at 4096^3 at most 20x float32 HIGHEST; on a
CPU the fast path at most 1.3x float32 HIGHEST, the emulated accumulator at most 10x
and the FP8 hardware profiles at 512^3 at most 100x (issue 12).

Usage::

    python benchmarks/bench_matmul.py              # sizes by backend
    python benchmarks/bench_matmul.py --size 512   # quicker
"""

from __future__ import annotations

import argparse
import sys

import jax
import jax.numpy as jnp
from jax import lax
from machine import describe
from timing import Case, Report, add_common_args, ms, on_gpu, reps_of, round_robin

import numfmt as nf
from numfmt import intgemm
from numfmt.accumulator import Accumulator
from numfmt.matmul import MatmulConfig, OperandSpec, qmatmul

F32, BF16 = "jnp.matmul float32 (HIGHEST)", "jnp.matmul bfloat16 operands, float32 result"
FAST = "qmatmul fast path: E4M3 per-tensor, FP32 accumulator"
MXFP8 = "qmatmul mxfp8 profile"
EMULATED = "qmatmul emulated Accumulator (E8M13, dot_width 32, promotion 128, 128-blocks)"
HARDWARE = ("h100_fp8_fast_accum", "h100_fp8", "h100_bf16", "h100_fp16", "h100_tf32", "h100_fp32", "deepseek_v3_fp8")
FP8_HARDWARE = ("h100_fp8_fast_accum", "h100_fp8", "deepseek_v3_fp8")


def _hw(name):
    return f"qmatmul {name} (tensor-core model)"


def targets():
    """``{row: (reference row, bound)}``: the issue's target for this backend."""
    if on_gpu():
        return {FAST: (BF16, 1.5), MXFP8: (BF16, 1.5), **{_hw(p): (F32, 20.0) for p in FP8_HARDWARE}}
    return {FAST: (F32, 1.3), EMULATED: (F32, 10.0), **{_hw(p): (F32, 100.0) for p in FP8_HARDWARE}}


_BLOCK128 = OperandSpec(nf.E4M3, granularity="block", block_size=128)
EMULATED_CONFIG = MatmulConfig(_BLOCK128, _BLOCK128, Accumulator(nf.E8M13, dot_width=32, promotion_interval=128,
                                                                  rounding="toward_zero"))


def torch_fp8_cases(a, b):
    """``{name: Case}`` for cuBLASLt FP8 through ``torch._scaled_mm``, or a string saying why there are none."""
    if not on_gpu():
        return "torch's cuBLASLt FP8 needs a GPU"
    try:
        import numpy as np
        import torch
    except ImportError:
        return "torch is not installed here"
    if not torch.cuda.is_available() or not hasattr(torch, "_scaled_mm"):
        return f"torch {torch.__version__} has no CUDA or no _scaled_mm here"
    ta = torch.from_numpy(np.array(a)).cuda().to(torch.float8_e4m3fn)
    # _scaled_mm wants its second operand column-major: the transpose of a contiguous (N, K).
    tb = torch.from_numpy(np.array(b)).cuda().to(torch.float8_e4m3fn).t().contiguous().t()
    one = torch.ones((), device="cuda", dtype=torch.float32)

    def timer(fn, args):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(*args)
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    def product(fast):
        def fn():
            return torch._scaled_mm(ta, tb, scale_a=one, scale_b=one, out_dtype=torch.float32, use_fast_accum=fast)

        return fn

    return {
        f"cuBLASLt FP8 torch._scaled_mm, use_fast_accum={fast}": Case(product(fast), timer=timer)
        for fast in (False, True)
    }


def cases_at(n: int, native: bool, emulated: bool, hardware: bool = False):
    """The cases of one size: the two references, then the native rows and/or the emulated and integer ones."""
    k0, k1 = jax.random.split(jax.random.key(0))
    a = jax.random.normal(k0, (n, n), jnp.float32)
    b = jax.random.normal(k1, (n, n), jnp.float32)
    cases = {
        F32: Case(jax.jit(lambda x, y: jnp.matmul(x, y, precision=lax.Precision.HIGHEST)), (a, b)),
        BF16: Case(jax.jit(lambda x, y: jnp.matmul(x, y, preferred_element_type=jnp.float32)),
                   (a.astype(jnp.bfloat16), b.astype(jnp.bfloat16))),
    }  # fmt: skip
    notes = []
    if native:
        torch_cases = torch_fp8_cases(a, b)
        if isinstance(torch_cases, str):
            notes.append(f"cuBLASLt FP8 left out: {torch_cases}.")
        else:
            cases.update(torch_cases)
        fp8_tensor = OperandSpec(nf.E4M3, granularity="tensor")
        for name, cfg in ((FAST, MatmulConfig(fp8_tensor, fp8_tensor)), (MXFP8, "mxfp8")):
            cases[name] = Case(jax.jit(lambda x, y, cfg=cfg: qmatmul(x, y, cfg)), (a, b))
    if emulated:
        # The emulated accumulator, and the integer products: int32 x int32 dots, which a
        # GPU's cuBLAS does not take, so they run at the smaller size there.
        cases[EMULATED] = Case(jax.jit(lambda x, y: qmatmul(x, y, EMULATED_CONFIG)), (a, b))
        cases["qmatmul int8_tflite profile (int32 accumulator)"] = Case(
            jax.jit(lambda x, y: qmatmul(x, y, "int8_tflite")), (a, b))
        x_scale = float(jnp.max(jnp.abs(a))) / 127
        layer = intgemm.prepare_linear(b, None, x_scale=x_scale, x_zero_point=0, out_scale=x_scale * 8.0,
                                       out_zero_point=0)  # fmt: skip
        xq = intgemm.quantize_affine(a, x_scale, 0).astype(jnp.int8)
        cases["intgemm.int_linear (int8 in, int8 out)"] = Case(jax.jit(intgemm.int_linear), (xq, layer))
    if hardware:
        for name in HARDWARE:
            cases[_hw(name)] = Case(jax.jit(lambda x, y, name=name: qmatmul(x, y, name)), (a, b))
    return cases, notes


def rows_of(n: int, times: dict, goal: dict):
    ref32, ref16 = times[F32], times[BF16]
    rows = []
    for name, t in times.items():
        if not t.ok:
            rows.append((name, f"{n}^3", "fails", "", "", "", t.error[:80]))
            continue
        tflops = 2.0 * n**3 / t.median / 1e12
        r32, r16 = t.median / ref32.median, t.median / ref16.median
        verdict = ""
        if name in goal:
            ref, bound = goal[name]
            got = r16 if ref == BF16 else r32
            verdict = f"<= {bound:g}x {'bf16' if ref == BF16 else 'f32'}: {'met' if got <= bound else 'MISS'}"
        rows.append((name, f"{n}^3", ms(t), f"{tflops:.3g}", f"{r32:.2f}x", f"{r16:.2f}x", verdict))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=None, help="M = N = K of the native products (8192 GPU, 2048 CPU)")
    parser.add_argument("--emulated-size", type=int, default=None, help="of the emulated and integer products (4096 GPU, 2048 CPU)")
    parser.add_argument("--hardware-size", type=int, default=None,
                        help="of the hardware (tensor-core model) profiles (4096 GPU, 512 CPU); 0 leaves them out")
    parser.add_argument("--only-hardware", action="store_true", help="time the hardware profiles alone")
    add_common_args(parser, reps=5)
    args = parser.parse_args(argv)
    n = args.size or (8192 if on_gpu() else 2048)
    n_emu = args.emulated_size or (4096 if on_gpu() else min(n, 2048))
    n_hw = (4096 if on_gpu() else 512) if args.hardware_size is None else args.hardware_size
    reps = reps_of(args)
    report = Report("matmul", describe("torch"),
                    f"float32 operands from jax.random.normal; median of {reps} round-robin runs after 2 warm-ups")  # fmt: skip
    head = ("product", "size", "ms", "TFLOP/s", "/ f32 HIGHEST", "/ bf16", "target")
    rows, goal = [], targets()
    groups = [(n, True, True, False)] if n_emu == n else [(n, True, False, False), (n_emu, False, True, False)]
    if args.only_hardware:
        groups = []
    if n_hw:
        same = [g for g in groups if g[0] == n_hw]
        groups = [g[:3] + (True,) if g[0] == n_hw else g for g in groups] if same else groups + [(n_hw, False, False, True)]
    for size, native, emulated, hardware in groups:
        cases, notes = cases_at(size, native, emulated, hardware)
        times = round_robin(cases, reps)
        report.times(f"{size}^3", times)
        rows += rows_of(size, times, goal)
        for note in notes:
            report.note(note)
    report.table("", head, rows, align="lrrrrrl")
    report.emit(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
