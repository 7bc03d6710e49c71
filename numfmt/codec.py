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
from numfmt.checks import check_bool, is_traced
from numfmt.decoder import check_codes, decode_any
from numfmt.encoder import encode_any, quantize_fast_ok, quantize_float
from numfmt.formats import CodebookFormat, fits
from numfmt.nearest import nearest_ok, quantize_nearest

__all__ = ["decode", "encode", "quantize", "quantize_dtype"]


# ---- public API -------------------------------------------------------------------------


def _check_fmt(fmt):
    return _formats.get(fmt)


def quantize_dtype(x_dtype, fmt) -> np.dtype:
    """The dtype of ``quantize``'s result for inputs of ``x_dtype``: one that holds every value of ``fmt``.

    The rule (docs/semantics.md): ``x_dtype`` itself when it holds every value of
    ``fmt`` (:func:`numfmt.formats.fits`); else float32 when that does (float16 and
    bfloat16 inputs of a wider format, e.g. float16 into bf16, whose 65408..65504 round
    to 65536, past float16); else float64 when ``jax_enable_x64`` is on. Else (integer
    formats wider than 24 bits, custom float formats beyond float32, without x64) the
    result is float32 and the values float32 cannot hold are rounded once to it, as
    ``decode(codes, fmt, float32)`` does: for intN that is only the clamp bound
    ``2**(N-1) - 1`` (and ``-(2**(N-1) - 1)`` when narrow).
    """
    x_dtype = np.dtype(x_dtype)
    fmt = _formats.get(fmt)
    if fits(fmt, x_dtype):
        return x_dtype
    if fits(fmt, np.float32) or not jax.config.jax_enable_x64:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _check_key(key):
    """A key for stochastic rounding: a ``jax.random.key`` (typed) or a legacy ``PRNGKey`` (uint32[2])."""
    if isinstance(key, (jax.Array, np.ndarray)) or is_traced(key):
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or (key.dtype == jnp.uint32 and key.shape == (2,)):
            return key
        what = f"an array of dtype {key.dtype} and shape {key.shape}"
    else:
        what = f"{key!r} ({type(key).__name__})"
    raise TypeError(f"key must be a JAX random key, made by jax.random.key(seed) (or jax.random.PRNGKey(seed)), "
                    f"got {what}")


def _check_args(x, fmt, rounding, key, rbits, random_bits, variant, saturate):
    """Validates everything at the API boundary; returns (x, fmt, rounding, rbits, saturate)."""
    fmt = _formats.get(fmt)
    rounding = _rounding.check_rounding(rounding, fmt)
    saturate = check_bool(saturate, "saturate")
    x_in = jnp.asarray(x)
    _, lay = as_float_input(x_in)
    if rounding != "stochastic":
        for name, value in (("key", key), ("rbits", rbits), ("random_bits", random_bits)):
            if value is not None:
                raise ValueError(f"{name} is only used with rounding='stochastic', got rounding={rounding!r}")
        return x_in, fmt, rounding, None, saturate
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
    if key is not None:
        _check_key(key)
    if random_bits is not None:
        rb = jnp.asarray(random_bits)
        want = jnp.uint64 if width == 64 else jnp.uint32
        if rb.dtype != want:
            raise TypeError(f"random_bits must have dtype {jnp.dtype(want).name} for {x_in.dtype} inputs, got {rb.dtype}")
        if rb.shape != x_in.shape:
            raise ValueError(f"random_bits must have the shape of x, {x_in.shape}, got {rb.shape}")
    return x_in, fmt, rounding, rbits, saturate


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


@functools.partial(jax.jit, static_argnames=("fmt", "rounding", "saturate", "rbits", "variant", "dtype"))
def _quantize_jit(x, key, random_bits, fmt, rounding, saturate, rbits, variant, dtype):
    rand = _random_words(x, key, random_bits, rounding)
    sr = (rand, rbits, variant)
    xw, lay = as_float_input(x)
    # The short paths compute in the input's layout (float32 for float16 and bfloat16),
    # which holds every value of fmt there, so the cast to dtype is exact.
    if rounding == "nearest_even" and nearest_ok(fmt, lay):
        return quantize_nearest(xw, fmt, saturate, lay).astype(dtype)
    if quantize_fast_ok(fmt, lay):
        return quantize_float(xw, fmt, rounding, saturate, lay, sr).astype(dtype)
    return decode_any(encode_any(x, fmt, rounding, saturate, sr), fmt, dtype)


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
    x, fmt, rounding, rbits, saturate = _check_args(x, fmt, rounding, key, rbits, random_bits, sr_variant, saturate)
    return _encode_jit(x, key, random_bits, fmt, rounding, saturate, rbits, sr_variant)


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
    """Round ``x`` to a value of ``fmt`` by ``rounding``, returned as floats.

    Equal to ``decode(encode(x, fmt, ...), fmt, quantize_dtype(x.dtype, fmt))`` (the
    arguments are those of :func:`encode`), computed without forming the codes where the
    format allows. The result has ``x``'s dtype when that holds every value of ``fmt``,
    else float32 (or float64 with x64) so that no value of ``fmt`` turns into another
    or into inf (:func:`quantize_dtype`, docs/semantics.md).

    ``rounding`` is the third positional argument, as in the contract of docs/design.md
    ``quantize(x, fmt, rounding)``: the codec's calls read like a cast with a mode. The
    scaled functions take it keyword-only, after their scale options.
    """
    x, fmt, rounding, rbits, saturate = _check_args(x, fmt, rounding, key, rbits, random_bits, sr_variant, saturate)
    return _quantize_jit(x, key, random_bits, fmt, rounding, saturate, rbits, sr_variant, quantize_dtype(x.dtype, fmt))
