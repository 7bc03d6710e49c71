"""Where number-format libraries disagree: numfmt's answer and each library's, measured.

For a list of inputs at the known points of disagreement (E8M0 ties, the E4M3 overflow
threshold, NaN into FP4, ties-away against ties-to-even, overflow to NaN against
saturation, float16 overflow), this script converts each input with

* numfmt (``numfmt.encode``, then ``numfmt.decode``),
* ml_dtypes (``np.float32(x).astype(dtype)``),
* JAX (``jnp.asarray(x, jnp.float32).astype(dtype)``),
* gfloat (``gfloat.round_float``, which takes the rounding mode and ``sat``),
* PyTorch (``torch.tensor(x).to(dtype)``), only if it is installed,

and prints a markdown table of the values they give ("—" where the library has no
such format or option; an exception's name where it raises). Inputs are float32.
Values print as ``repr`` of the float; a NaN whose sign bit is set prints as ``-nan``.

Usage::

    python benchmarks/conformance_cases.py > table.md
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys

import ml_dtypes
import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numfmt as nf

F32_ABOVE_464 = float(np.nextafter(np.float32(464), np.float32(np.inf)))
F32_BELOW_65520 = float(np.nextafter(np.float32(65520), np.float32(0)))

# (format, input, rounding, saturate, what the case shows)
CASES = [
    ("e8m0", 3.0, "nearest_even", False, "E8M0 tie between 2 and 4: even code (P3109) or up"),
    ("e8m0", 0.75, "nearest_even", False, "E8M0 tie between 0.5 and 1"),
    ("e8m0", 1.5 * 2.0**127, "nearest_even", False, "E8M0 tie at the top: 2**127 or NaN"),
    ("e4m3", 448.0, "nearest_even", False, "E4M3 (OCP, fn) max"),
    ("e4m3", 464.0, "nearest_even", False, "E4M3 overflow threshold: a tie that rounds to 448"),
    ("e4m3", F32_ABOVE_464, "nearest_even", False, "one float32 ulp past it: NaN (no inf)"),
    ("e4m3", 480.0, "nearest_even", False, "E4M3 past max"),
    ("e4m3", 500.0, "nearest_even", False, "E4M3 past max"),
    ("e4m3", math.inf, "nearest_even", False, "inf into E4M3 (no inf)"),
    ("e4m3", 500.0, "nearest_even", True, "E4M3 saturating"),
    ("e4m3", math.inf, "nearest_even", True, "inf, saturating: max (OCP)"),
    ("e4m3ieee", 240.0, "nearest_even", False, "float8_e4m3 (IEEE-like, with inf): max 240"),
    ("e4m3ieee", 248.0, "nearest_even", False, "its overflow tie: rounds up to even, past max: inf"),
    ("e4m3ieee", 464.0, "nearest_even", False, "464 in the IEEE-like E4M3"),
    ("e4m3ieee", 480.0, "nearest_even", False, "480 in the IEEE-like E4M3"),
    ("e5m2", 61440.0, "nearest_even", False, "E5M2 overflow tie: inf"),
    ("e5m2", 1e5, "nearest_even", False, "E5M2 overflow"),
    ("e5m2", 1e5, "nearest_even", True, "E5M2 saturating"),
    ("e2m1", math.nan, "nearest_even", False, "NaN into FP4 (no NaN code)"),
    ("e2m1", -math.nan, "nearest_even", False, "-NaN into FP4"),
    ("e2m1", math.inf, "nearest_even", False, "inf into FP4 (no inf, no NaN)"),
    ("e2m1", 7.0, "nearest_even", False, "past FP4's max 6"),
    ("e2m1", 2.5, "nearest_even", False, "FP4 tie between 2 and 3, to even"),
    ("e2m1", 2.5, "nearest_away", False, "FP4 tie between 2 and 3, away"),
    ("e4m3", 1.0625, "nearest_even", False, "E4M3 tie between 1 and 1.125, to even"),
    ("e4m3", 1.0625, "nearest_away", False, "E4M3 tie between 1 and 1.125, away"),
    ("fp16", F32_BELOW_65520, "nearest_even", False, "float16: just below the overflow tie"),
    ("fp16", 65520.0, "nearest_even", False, "float16 overflow tie: inf"),
    ("fp16", 1e5, "nearest_even", False, "float16 overflow"),
    ("fp16", 1e5, "toward_zero", False, "float16 overflow toward zero: max"),
]

NUMFMT_FORMATS = {"e8m0": nf.E8M0, "e4m3": nf.E4M3, "e4m3ieee": nf.E4M3IEEE, "e5m2": nf.E5M2,
                  "e2m1": nf.E2M1, "fp16": nf.FP16}
ML_DTYPES = {"e8m0": ml_dtypes.float8_e8m0fnu, "e4m3": ml_dtypes.float8_e4m3fn,
             "e4m3ieee": ml_dtypes.float8_e4m3, "e5m2": ml_dtypes.float8_e5m2,
             "e2m1": ml_dtypes.float4_e2m1fn, "fp16": np.float16}
GFLOAT_FORMATS = {"e8m0": "format_info_ocp_e8m0", "e4m3": "format_info_ocp_e4m3", "e5m2": "format_info_ocp_e5m2",
                  "e2m1": "format_info_ocp_e2m1", "fp16": "format_info_binary16"}
GFLOAT_MODES = {"nearest_even": "TiesToEven", "nearest_away": "TiesToAway", "toward_zero": "TowardZero"}
TORCH_DTYPES = {"e8m0": "float8_e8m0fnu", "e4m3": "float8_e4m3fn", "e5m2": "float8_e5m2", "fp16": "float16"}

NOT_OFFERED = "—"


def show(v) -> str:
    v = float(v)
    if math.isnan(v):
        return "-nan" if math.copysign(1.0, v) < 0 else "nan"
    if v == 0:
        return "-0" if math.copysign(1.0, v) < 0 else "0"
    return repr(v).removesuffix(".0") if abs(v) < 1e16 else repr(v)


def guarded(fn):
    def run(*args):
        try:
            return fn(*args)
        except Exception as err:  # noqa: BLE001 - a library that raises: the error is the answer
            return f"{type(err).__name__}"
    return run


@guarded
def numfmt_value(fmt, x, rounding, saturate):
    import jax.numpy as jnp

    f = NUMFMT_FORMATS[fmt]
    codes = nf.encode(jnp.asarray([x], dtype=jnp.float32), f, rounding, saturate=saturate)
    return show(np.asarray(nf.decode(codes, f, dtype=jnp.float32))[0])


@guarded
def ml_dtypes_value(fmt, x, rounding, saturate):
    if rounding != "nearest_even" or saturate:
        return NOT_OFFERED
    with np.errstate(all="ignore"):
        return show(np.array([x], np.float32).astype(ML_DTYPES[fmt]).astype(np.float32)[0])


@guarded
def jax_value(fmt, x, rounding, saturate):
    import jax.numpy as jnp

    if rounding != "nearest_even" or saturate:
        return NOT_OFFERED
    out = jnp.asarray([x], dtype=jnp.float32).astype(np.dtype(ML_DTYPES[fmt]))
    return show(np.asarray(out.astype(jnp.float32))[0])


@guarded
def gfloat_value(fmt, x, rounding, saturate):
    import gfloat
    import gfloat.formats

    if fmt not in GFLOAT_FORMATS or rounding not in GFLOAT_MODES:
        return NOT_OFFERED
    fi = getattr(gfloat.formats, GFLOAT_FORMATS[fmt])
    mode = getattr(gfloat.RoundMode, GFLOAT_MODES[rounding])
    return show(gfloat.round_float(fi, float(np.float32(x)), mode, sat=saturate))


@guarded
def torch_value(fmt, x, rounding, saturate):
    import torch

    if rounding != "nearest_even" or saturate or not hasattr(torch, TORCH_DTYPES.get(fmt, "-")):
        return NOT_OFFERED
    out = torch.tensor([x], dtype=torch.float32).to(getattr(torch, TORCH_DTYPES[fmt]))
    return show(out.to(torch.float32)[0].item())


def libraries():
    libs = [("numfmt", numfmt_value), ("ml_dtypes", ml_dtypes_value), ("jax astype", jax_value)]
    if importlib.util.find_spec("gfloat"):
        libs.append(("gfloat", gfloat_value))
    if importlib.util.find_spec("torch"):
        libs.append(("torch", torch_value))
    return libs


def versions(libs) -> str:
    import jax

    found = {"numfmt": nf.__version__, "ml_dtypes": ml_dtypes.__version__, "jax astype": jax.__version__}
    for name, module in (("gfloat", "gfloat"), ("torch", "torch")):
        if any(n == name for n, _ in libs):
            from importlib.metadata import version

            found[name] = version(module)
    return ", ".join(f"{k} {v}" for k, v in found.items())


def main() -> int:
    libs = libraries()
    print(f"Versions: {versions(libs)}; Python {sys.version.split()[0]}.\n")
    head = ["format", "input (float32)", "rounding", "saturate", *[n for n, _ in libs], "what it shows"]
    print("| " + " | ".join(head) + " |")
    print("| " + " | ".join(["---"] * 4 + ["---:"] * len(libs) + ["---"]) + " |")
    for fmt, x, rounding, saturate, note in CASES:
        cells = [fmt, show(np.float32(x)), rounding, "yes" if saturate else "no"]
        cells += [fn(fmt, x, rounding, saturate) for _, fn in libs]
        print("| " + " | ".join(cells + [note]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
