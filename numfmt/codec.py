"""The public codec: ``encode``, ``decode`` and ``quantize`` for every format.

Every format is data (:mod:`numfmt.formats`); one engine serves them all. It works on
the integer bit pattern of the input, as hardware converters and ``ml_dtypes``'
``float8.h`` do, and never takes an exponent from ``log2`` or ``frexp``:
:mod:`numfmt.encoder` rounds, :mod:`numfmt.decoder` builds values from codes, and
:mod:`numfmt.rounding` holds the rounding step shared by every format. This module
checks the arguments at the API boundary and jit-compiles the engine per format.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from numfmt import formats as _formats
from numfmt import rounding as _rounding
from numfmt.bitlayout import F64, as_float_input
from numfmt.decoder import check_codes, decode_any
from numfmt.encoder import encode_any, quantize_fast_ok, quantize_float
from numfmt.formats import CodebookFormat
from numfmt.nearest import nearest_ok, quantize_nearest

__all__ = ["decode", "encode", "quantize"]


# ---- public API -------------------------------------------------------------------------


def _check_fmt(fmt):
    return _formats.get(fmt)


def _check_args(x, fmt, rounding, key, rbits, random_bits, variant):
    """Validates everything at the API boundary; returns (x, fmt, rounding, rbits)."""
    fmt = _formats.get(fmt)
    rounding = _rounding.check_rounding(rounding, fmt)
    x_in = jnp.asarray(x)
    _, lay = as_float_input(x_in)
    if rounding != "stochastic":
        for name, value in (("key", key), ("rbits", rbits), ("random_bits", random_bits)):
            if value is not None:
                raise ValueError(f"{name} is only used with rounding='stochastic', got rounding={rounding!r}")
        return x_in, fmt, rounding, None
    if isinstance(fmt, CodebookFormat):
        raise ValueError(f"codebook format {fmt.name} supports nearest rounding only, not 'stochastic'")  # noqa: TRY004
    width = 64 if lay is F64 else 32
    if rbits is not None:
        if isinstance(rbits, bool) or not isinstance(rbits, (int, np.integer)) or not 1 <= rbits <= width - 1:
            raise ValueError(f"rbits must be an int in [1, {width - 1}] for {x_in.dtype} inputs, or None, got {rbits!r}")
        rbits = int(rbits)
    if variant not in _rounding.SR_VARIANTS:
        raise ValueError(f"sr_variant must be one of {_rounding.SR_VARIANTS}, got {variant!r}")
    if key is None and random_bits is None:
        raise ValueError("rounding='stochastic' needs key= (a jax.random key) or random_bits=")
    if key is not None and random_bits is not None:
        raise ValueError("pass either key= or random_bits=, not both")
    if random_bits is not None:
        rb = jnp.asarray(random_bits)
        want = jnp.uint64 if width == 64 else jnp.uint32
        if rb.dtype != want:
            raise TypeError(f"random_bits must have dtype {jnp.dtype(want).name} for {x_in.dtype} inputs, got {rb.dtype}")
        if rb.shape != x_in.shape:
            raise ValueError(f"random_bits must have the shape of x, {x_in.shape}, got {rb.shape}")
    return x_in, fmt, rounding, rbits


def _random_words(x, key, random_bits, rounding):
    if rounding != "stochastic":
        return None
    if random_bits is not None:
        return random_bits
    dtype = jnp.uint64 if x.dtype == jnp.float64 else jnp.uint32
    return _rounding.hash_bits(key, x.shape, dtype)


@functools.partial(jax.jit, static_argnames=("fmt", "rounding", "saturate", "rbits", "variant"))
def _encode_jit(x, key, random_bits, fmt, rounding, saturate, rbits, variant):
    rand = _random_words(x, key, random_bits, rounding)
    return encode_any(x, fmt, rounding, saturate, (rand, rbits, variant))


@functools.partial(jax.jit, static_argnames=("fmt", "rounding", "saturate", "rbits", "variant"))
def _quantize_jit(x, key, random_bits, fmt, rounding, saturate, rbits, variant):
    rand = _random_words(x, key, random_bits, rounding)
    sr = (rand, rbits, variant)
    xw, lay = as_float_input(x)
    if rounding == "nearest_even" and nearest_ok(fmt, lay):
        return quantize_nearest(xw, fmt, saturate, lay).astype(x.dtype)
    if quantize_fast_ok(fmt, lay):
        return quantize_float(xw, fmt, rounding, saturate, lay, sr).astype(x.dtype)
    return decode_any(encode_any(x, fmt, rounding, saturate, sr), fmt, x.dtype)


@functools.partial(jax.jit, static_argnames=("fmt", "dtype"))
def _decode_jit(codes, fmt, dtype):
    return decode_any(codes, fmt, dtype)


def encode(
    x,
    fmt,
    rounding="nearest_even",
    *,
    key=None,
    rbits=None,
    saturate=False,
    random_bits=None,
    sr_variant="truncate",
):
    """Round ``x`` into ``fmt`` and return the codes (bit patterns).

    Args:
      x: a float16, bfloat16, float32 or float64 array (float64 with
        ``jax_enable_x64``; it is rounded once, straight to ``fmt``).
      fmt: a format object or name (``numfmt.get``).
      rounding: one of ``numfmt.ROUNDING_MODES``: the IEEE 754-2019 §4.3 attributes
        (``nearest_even``, ``nearest_away``, ``toward_zero``, ``up``, ``down``),
        round-to-odd (``odd``) and ``stochastic``. docs/semantics.md gives every edge case.
      key: a ``jax.random`` key, for ``stochastic``: the random words come from a keyed
        counter hash (``numfmt.rounding.hash_bits``); same key, same result.
      rbits: for ``stochastic``, how many random bits decide (1 to 31 for float32
        inputs, 1 to 63 for float64); None uses every dropped bit (exact).
      saturate: finite values past ``fmt.max`` become ``±max`` instead of inf / NaN
        (OCP 8-bit FP v1.0 "saturation mode").
      random_bits: instead of ``key``, the random words themselves: uint32 for
        float16/bfloat16/float32 inputs, uint64 for float64, with the shape of ``x``.
      sr_variant: ``"truncate"`` or ``"unbiased"`` (P3109), how the fraction is cut to
        ``rbits`` bits (``numfmt.rounding.stochastic_increment``).

    Returns:
      unsigned codes in the smallest container (uint8 up to 8 bits, uint16, uint32),
      sub-byte codes in the low bits; signed integer formats give two's complement.
    """
    x, fmt, rounding, rbits = _check_args(x, fmt, rounding, key, rbits, random_bits, sr_variant)
    return _encode_jit(x, key, random_bits, fmt, rounding, bool(saturate), rbits, sr_variant)


def decode(codes, fmt, dtype=jnp.float32):
    """The values of ``codes`` in ``fmt``, as floats of ``dtype``.

    Values are exact when ``dtype`` holds every value of ``fmt``; otherwise each is
    rounded once to ``dtype`` (nearest even). Bits above ``fmt.bits`` are ignored.
    """
    fmt = _check_fmt(fmt)
    codes = check_codes(codes)
    dtype = np.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype must be a float dtype (float16, bfloat16, float32, float64), got {dtype}")
    return _decode_jit(codes, fmt, dtype)


def quantize(
    x,
    fmt,
    rounding="nearest_even",
    *,
    key=None,
    rbits=None,
    saturate=False,
    random_bits=None,
    sr_variant="truncate",
):
    """Round ``x`` to a value of ``fmt`` by ``rounding``; the result has ``x``'s dtype.

    Equal to ``decode(encode(x, fmt, ...), fmt, x.dtype)`` (the arguments are those of
    :func:`encode`), computed without forming the codes where the format allows.
    """
    x, fmt, rounding, rbits = _check_args(x, fmt, rounding, key, rbits, random_bits, sr_variant)
    return _quantize_jit(x, key, random_bits, fmt, rounding, bool(saturate), rbits, sr_variant)
