"""DeepSeek-V3's FP8 accumulation experiment, redone with the fitted H100 models.

    python benchmarks/fp8_accumulation_error.py            # M = N = 512, K = 1024, 4096, 16384
    python benchmarks/fp8_accumulation_error.py --size 256 # quicker

E4M3 operands drawn uniform in [0, 1) (rounded to nearest), products by
``H100_FP8_FAST_ACCUM`` (cuBLASLt's fast accumulation: one E8M13 running sum) and
``H100_FP8`` (cuBLASLt's default mode: promotion to float32 every 128 elements, the
fix of DeepSeek-V3 section 3.3); relative error of each output against the exact
(float64) product: its mean (signed) and the largest magnitude. The second table gives
the same figures for the hardware's recorded outputs (tests/data/h100) next to the
model's on the same operands. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from machine import describe

import numfmt as nf
from numfmt import tensorcore as tc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import tensorcore_cases as cases  # the recorded data and their reader


def rel_error(out, a, b):
    """(mean signed, max |.|) relative error of ``out`` against the exact ``a @ b.T``."""
    exact = a.astype(np.float64) @ b.astype(np.float64).T
    rel = (np.asarray(out, np.float64) - exact) / exact
    return rel.mean(), np.abs(rel).max()


def fmt(x):
    return f"{100 * x:+.3f} %"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args(argv)
    n = args.size
    rng = np.random.default_rng(0)
    print(f"# FP8 accumulation error, E4M3 uniform [0, 1), {n} x {n} x K ({describe()})\n")
    print("| K | fast accumulation: mean | max | promotion every 128: mean | max |")
    print("| --- | --- | --- | --- | --- |")
    for k in (1024, 4096, 16384):
        a = np.asarray(nf.quantize(jnp.asarray(rng.random((n, k), np.float32)), nf.E4M3))
        b = np.asarray(nf.quantize(jnp.asarray(rng.random((n, k), np.float32)), nf.E4M3))
        fast = rel_error(tc.tensorcore_dot(a, b, tc.H100_FP8_FAST_ACCUM), a, b)
        slow = rel_error(tc.tensorcore_dot(a, b, tc.H100_FP8), a, b)
        print(f"| {k} | {fmt(fast[0])} | {100 * fast[1]:.3f} % | {fmt(slow[0])} | {100 * slow[1]:.3f} % |", flush=True)

    print("\n# The recorded H100 outputs and the models on the same operands\n")
    print("| case | mode | H100: mean | max | model: mean | max |")
    print("| --- | --- | --- | --- | --- | --- |")
    for case, parts in (("uniform01/K1024", 1), ("uniform01/K4096", 1), ("splitk_uniform01/M32/K8192", 3),
                        ("splitk_uniform01/M128/K16384", 6)):
        a, b = cases.operands(case)
        fast_model = dataclasses.replace(tc.H100_FP8_FAST_ACCUM, split_k=parts)
        for mode, model in (("fast", fast_model), ("slow", tc.H100_FP8)):
            hw = rel_error(cases.array(f"{case}/fp8_{mode}"), a, b)
            mine = rel_error(tc.tensorcore_dot(a, b, model), a, b)
            print(f"| `{case}` | {mode} | {fmt(hw[0])} | {100 * hw[1]:.3f} % | {fmt(mine[0])} | "
                  f"{100 * mine[1]:.3f} % |", flush=True)


if __name__ == "__main__":
    main()
