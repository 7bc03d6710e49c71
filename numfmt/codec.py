"""The one generic codec: ``encode``, ``decode`` and ``quantize`` for every format.

Every format is data (:mod:`numfmt.formats`); this module has one rounding engine
that works on the integer bit pattern of the input, as hardware converters and
``ml_dtypes``' ``float8.h`` do. It never takes an exponent from ``log2`` or ``frexp``.

How a float input is rounded into a float format with ``p`` mantissa bits:

1. Split the input's bits into sign, biased exponent ``E_in`` and mantissa.
2. In the target's normal range the magnitude code is the input's magnitude bits
   re-biased (``A = (E_in - bias_in + bias) << P | m``) with ``P - p`` fraction bits to
   drop; below it (subnormals, or the flush region of a format without them) it is the
   significand shifted right by more bits. Either way the code is ``round(X / 2**d)``
   for an integer ``X`` and a per-element shift ``d``, and a carry out of the mantissa
   moves into the exponent field by itself.
3. The rounding mode decides the increment from the dropped bits (``numfmt.rounding``).
4. Codes past ``max_code`` overflow (docs/semantics.md); NaN, inf, the sign of zero and
   unsigned formats are settled last with selects.

``decode`` builds the output float's bits from the code the same way in reverse.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from numfmt import formats as _formats
from numfmt import rounding as _rounding
from numfmt.formats import CodebookFormat, FloatFormat, IntFormat

__all__ = ["encode", "decode", "quantize"]


# ---- the input's layout ----------------------------------------------------------------


class _Layout:
    """Bit layout of an IEEE binary input type (float32 or float64)."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        info = np.finfo(self.dtype)
        self.width = self.dtype.itemsize * 8
        self.man = info.nmant  # P: stored mantissa bits
        self.bias = -info.minexp + 1
        self.uint = jnp.uint32 if self.width == 32 else jnp.uint64
        self.sint = jnp.int32 if self.width == 32 else jnp.int64


_F32 = _Layout(np.float32)
_F64 = _Layout(np.float64)


def _as_float_input(x, arg="x"):
    """Checks that ``x`` is a real float array; widens float16/bfloat16 to float32 exactly."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"{arg} must be a real floating-point array (float16, bfloat16, float32 or float64), "
            f"got dtype {x.dtype}"
        )
    if x.dtype == jnp.float64:
        return x, _F64
    if x.dtype.itemsize > 4:
        raise TypeError(f"{arg} has unsupported dtype {x.dtype}")
    return x.astype(jnp.float32), _F32


# ---- float targets ----------------------------------------------------------------------


def _split(x, lay):
    """Sign (bool), biased exponent (int), mantissa and magnitude bits of ``x``."""
    u = lax.bitcast_convert_type(x, lay.uint)
    sign = (u >> lay.uint(lay.width - 1)) == 1
    mag = u & lay.uint((1 << (lay.width - 1)) - 1)
    e_in = (mag >> lay.uint(lay.man)).astype(lay.sint)
    man = mag & lay.uint((1 << lay.man) - 1)
    return sign, e_in, man, mag


def _float_magnitude(x, fmt: FloatFormat, rounding, lay, sr):
    """Round ``|x|`` onto the format's extended grid: the magnitude code ``C``.

    Returns ``(sign, C, in_range, sig, is_nan, is_inf)``; ``C`` may exceed
    ``max_code`` (overflow) and is not yet clamped; ``in_range`` marks inputs in the
    target's normal range. ``sr`` is ``(rand, rbits, variant)`` for stochastic rounding.
    """
    U, S = lay.uint, lay.sint
    P, p = lay.man, fmt.man_bits
    shift = P - p
    sign, e_in, man, mag = _split(x, lay)
    inf_bits = ((1 << (lay.width - 1)) - 1) ^ ((1 << P) - 1)
    is_nan = mag > U(inf_bits)
    is_inf = mag == U(inf_bits)
    emin_t = fmt.emin  # unbiased exponent of the target's lowest normal binade

    # Unbiased exponent e and significand sig (leading one at bit P for normals).
    if emin_t < 1 - lay.bias:
        # The target reaches below the input's normal range: normalize input
        # subnormals with a count of leading zeros (an integer op, not frexp).
        sub = e_in == 0
        lz = jnp.where(sub, lax.clz(man).astype(S) - S(lay.width - 1 - P), S(0))
        sig = jnp.where(sub, man << lz.astype(U), man | U(1 << P))
        e = jnp.where(sub, S(1 - lay.bias) - lz, e_in - S(lay.bias))
        normal_in = sig != 0
    else:
        sig = jnp.where(e_in == 0, man, man | U(1 << P))
        e = jnp.maximum(e_in, 1) - S(lay.bias)
        normal_in = e_in != 0

    in_range = normal_in & (e >= emin_t)
    # Normal range: the re-biased magnitude. The exponent field is clamped just past
    # the format's top so that huge inputs overflow without wrapping the integer.
    e_field = jnp.minimum(e + S(fmt.bias), S(1 << fmt.exp_bits)).astype(U)
    a_normal = (e_field << U(P)) | (sig & U((1 << P) - 1))
    # Below the normal range: the significand, shifted further. Without subnormals
    # the grid there is {0, min_normal}: p more bits go, and come back after.
    flush = not fmt.subnormals and fmt.emin_field == 1
    d_below = S(shift + (p if flush else 0) + emin_t) - e
    X = jnp.where(in_range, a_normal, sig)
    d_true = jnp.where(in_range, S(shift), d_below)
    # Past P + 2 bits every bit of sig is dropped and sig < half a step: same result.
    d = jnp.minimum(d_true, S(P + 2))
    rand, rbits, variant = sr
    C = _rounding.round_shift(X, d, sign, rounding, d_true=d_true, rand=rand, rbits=rbits, variant=variant)
    if flush:
        C = jnp.where(in_range, C, C << U(p))
    if fmt.specials == "e8m0":
        # No zero: a positive value below the lowest binade has only one neighbour.
        C = jnp.where(in_range, C, U(0))
    return sign, C, in_range, sig, is_nan, is_inf


def _settle(C, sign, sig, is_nan, is_inf, fmt: FloatFormat, rounding, saturate, U):
    """Apply overflow, the specials, the sign of zero and the unsigned range.

    Returns ``(C, neg, nan, inf)``: the final magnitude code (clamped to ``max_code``),
    whether the result carries a minus sign, and whether it is NaN or infinity.
    The rules are those of docs/semantics.md.
    """
    max_code = U(fmt.max_code)
    overflow = (C > max_code) & ~(is_nan | is_inf)
    raw_nonzero = C != 0
    C = jnp.minimum(C, max_code)
    to_inf = jnp.zeros_like(sign) if saturate else _rounding.overflows_to_infinity(rounding, sign)
    to_infinity = (overflow & to_inf) | is_inf
    nan = jnp.zeros_like(sign)
    if fmt.has_inf:
        inf = to_infinity
    else:
        # No inf: "infinity" is NaN where the format has NaN, else the largest value;
        # with saturate, an infinite input becomes the largest value too.
        inf = nan
        if fmt.has_nan:
            nan = (overflow & to_inf) | (is_inf & (not saturate))
    if fmt.has_negative_zero:
        neg = sign
    else:
        neg = sign & (C != 0)
    if not fmt.signed:
        # The non-negative half of a signed format: a negative value that does not
        # round to zero is out of range.
        out = sign & (raw_nonzero | (not fmt.has_zero) | is_inf)
        if fmt.has_nan:
            nan = nan | out
        else:
            C = jnp.where(out, U(0), C)
            inf = inf & ~out
        neg = jnp.zeros_like(sign)
    if not fmt.has_zero:
        nan = nan | (sig == 0)  # zero has no code (E8M0)
    if fmt.has_nan:
        nan = nan | is_nan
    else:
        C = jnp.where(is_nan, U(0), C)
        neg = neg & ~is_nan
        inf = inf & ~is_nan
    return C, neg, nan, inf


def _encode_float(x, fmt: FloatFormat, rounding, saturate, lay, sr):
    """Codes of ``x`` (float32 or float64) in the float format ``fmt``."""
    U = lay.uint
    sign, C, _, sig, is_nan, is_inf = _float_magnitude(x, fmt, rounding, lay, sr)
    C, neg, nan, inf = _settle(C, sign, sig, is_nan, is_inf, fmt, rounding, saturate, U)
    if fmt.has_inf:
        C = jnp.where(inf, U(fmt.inf_code), C)
    code = jnp.where(neg, C | U(fmt.sign_mask), C)
    if fmt.has_nan:
        code = jnp.where(nan, U(fmt.nan_code), code)
    return code.astype(fmt.code_dtype)


def _quantize_fast_ok(fmt, lay) -> bool:
    """Whether ``_quantize_float`` applies: every normal binade of fmt is normal in lay."""
    if not (isinstance(fmt, FloatFormat) and fmt.emin >= 1 - lay.bias and _fits(fmt, lay.dtype)):
        return False
    # Subnormal values are built by a float product, which must not meet the dtype's
    # own subnormals (XLA on CPU flushes those to zero), unless both subnormal ranges
    # coincide and the code's bits are the value's bits (BF16, TF32 in float32).
    lowest = fmt.emin - (fmt.man_bits if fmt.subnormals else 0)
    return lowest >= 1 - lay.bias or fmt.emin == 1 - lay.bias


def _quantize_float(x, fmt: FloatFormat, rounding, saturate, lay, sr):
    """``decode(encode(x))`` without forming the code: the value's bits directly."""
    U, S = lay.uint, lay.sint
    P, p = lay.man, fmt.man_bits
    sign, C, _, sig, is_nan, is_inf = _float_magnitude(x, fmt, rounding, lay, sr)
    C, neg, nan, inf = _settle(C, sign, sig, is_nan, is_inf, fmt, rounding, saturate, U)
    # Normal codes: shift the code into place and move the bias back.
    normal_bits = ((C << U(P - p)).astype(S) + S((lay.bias - fmt.bias) << P)).astype(U)
    # Subnormal codes (and the flush grid {0, min_normal}): C steps of 2**(emin - p),
    # an exact product since the format fits the dtype.
    step = np.asarray(2.0 ** (fmt.emin - p), lay.dtype)
    sub_bits = lax.bitcast_convert_type(C.astype(lay.dtype) * step, U)
    if fmt.emin == 1 - lay.bias:
        bits = normal_bits  # same exponent range: subnormal codes shift into place too
    else:
        bits = jnp.where(C >= U(fmt.emin_field << p), normal_bits, sub_bits)
    if fmt.has_inf:
        bits = jnp.where(inf, U(((1 << (lay.width - 1)) - 1) ^ ((1 << P) - 1)), bits)
    bits = jnp.where(neg, bits | U(1 << (lay.width - 1)), bits)
    out = lax.bitcast_convert_type(bits, lay.dtype)
    if fmt.has_nan:
        out = jnp.where(nan, jnp.asarray(np.nan, lay.dtype), out)
    return out


# ---- integer targets --------------------------------------------------------------------


def _encode_int(x, fmt: IntFormat, rounding, lay, sr):
    """Round to an integer by the mode, then clamp to the format's range."""
    U, S = lay.uint, lay.sint
    P = lay.man
    sign, e_in, man, mag = _split(x, lay)
    is_nan = mag > U(((1 << (lay.width - 1)) - 1) ^ ((1 << P) - 1))
    sig = jnp.where(e_in == 0, man, man | U(1 << P))
    e = jnp.maximum(e_in, 1) - S(lay.bias)  # value = sig * 2**(e - P)
    # |x| < 2**32 needs at most a left shift of 32 - (P + 1) bits (float32: 8).
    left_max = max(0, 32 - (P + 1))
    d_true = jnp.maximum(S(P) - e, 0)
    d = jnp.minimum(d_true, S(P + 2))
    rand, rbits, variant = sr
    right = _rounding.round_shift(sig, d, sign, rounding, d_true=d_true, rand=rand, rbits=rbits, variant=variant)
    left = sig << jnp.clip(e - S(P), 0, S(left_max)).astype(U)
    big = e >= 32  # |x| >= 2**32: past every 32-bit range, inf included
    magnitude = jnp.where(e >= P, left, right)
    top = U(fmt.max)
    bottom = U(-fmt.min)  # magnitude of the most negative value
    magnitude = jnp.where(sign, jnp.minimum(magnitude, bottom), jnp.minimum(magnitude, top))
    magnitude = jnp.where(big, jnp.where(sign, bottom, top), magnitude)
    magnitude = jnp.where(is_nan, U(0), magnitude).astype(jnp.uint32)
    mask = jnp.uint32((1 << fmt.bits) - 1)
    code = jnp.where(sign & (magnitude != 0), (~magnitude + jnp.uint32(1)) & mask, magnitude)
    return code.astype(fmt.code_dtype)


# ---- codebook targets -------------------------------------------------------------------


def _encode_codebook(x, fmt: CodebookFormat, rounding):
    if rounding not in ("nearest_even", "nearest_away"):
        raise ValueError(f"codebook format {fmt.name} supports nearest rounding only, got {rounding!r}")
    table = np.asarray(fmt.table)
    mids = jnp.asarray((table[1:] + table[:-1]) / 2, dtype=x.dtype)
    # side='left' counts the midpoints strictly below x: a tie goes to the lower code.
    idx = jnp.searchsorted(mids, x, side="left")
    zero_idx = int(np.argmin(np.abs(table)))
    idx = jnp.where(jnp.isnan(x), zero_idx, idx)
    return idx.astype(fmt.code_dtype)


# ---- decode -----------------------------------------------------------------------------


def _compose(S_int, k, lay):
    """Float bits of ``S_int * 2**k`` for integers ``0 <= S_int < 2**(P+1)``, assumed exact."""
    U, Si = lay.uint, lay.sint
    f = S_int.astype(lay.dtype)  # exact: S_int has at most P + 1 bits
    fb = lax.bitcast_convert_type(f, U)
    new_e = (fb >> U(lay.man)).astype(Si) + k
    normal_bits = (fb.astype(Si) + (k << Si(lay.man))).astype(U)
    # Below the output's normal range the result is a subnormal: its bits are S << (k + kmin).
    kmin = lay.bias - 1 + lay.man
    sub_bits = S_int << jnp.clip(k + Si(kmin), 0, Si(lay.width - 1)).astype(U)
    bits = jnp.where(new_e >= 1, normal_bits, sub_bits)
    return jnp.where(S_int == 0, U(0), bits)


def _fits(fmt: FloatFormat, dtype) -> bool:
    info = np.finfo(dtype)
    return (
        fmt.man_bits <= info.nmant
        and fmt.emax <= info.maxexp - 1
        and fmt.emin - (fmt.man_bits if fmt.subnormals else 0) >= info.minexp - info.nmant
    )


def _decode_float(codes, fmt: FloatFormat, lay):
    """Exact values of the codes, as floats of ``lay.dtype`` (which must hold them)."""
    U, S = lay.uint, lay.sint
    p = fmt.man_bits
    c = codes.astype(U)
    sign = (c & U(fmt.sign_mask)) != 0 if fmt.signed else jnp.zeros(c.shape, bool)
    C = c & U((1 << (fmt.exp_bits + p)) - 1)
    E = (C >> U(p)).astype(S)
    M = C & U((1 << p) - 1)
    normal = E >= fmt.emin_field
    sig = jnp.where(normal, M | U(1 << p), M if fmt.subnormals else U(0))
    k = jnp.where(normal, E, S(1)) - S(fmt.bias + p)
    bits = _compose(sig, k, lay)
    bits = jnp.where(sign, bits | U(1 << (lay.width - 1)), bits)
    out = lax.bitcast_convert_type(bits, lay.dtype)
    if fmt.has_inf:
        out = jnp.where(C == U(fmt.inf_code), jnp.where(sign, -jnp.inf, jnp.inf).astype(lay.dtype), out)
    if fmt.specials == "ieee":
        is_nan = (E == (1 << fmt.exp_bits) - 1) & (M != 0)
    elif fmt.specials in ("fn", "e8m0"):
        is_nan = C == U((1 << (fmt.exp_bits + p)) - 1)
    elif fmt.specials == "fnuz":
        is_nan = c == U(fmt.sign_mask)
    else:
        is_nan = None
    if is_nan is not None:
        out = jnp.where(is_nan, jnp.array(jnp.nan, lay.dtype), out)
    return out


@functools.lru_cache(maxsize=None)
def _decode_table(fmt, dtype_name):
    """Every code's value, rounded once to ``dtype`` (NumPy casts round to nearest even)."""
    from numfmt.formats import _container_dtype  # noqa: F401  (layout only)

    n = 1 << fmt.bits
    vals = np.empty(n, dtype=np.float64)
    for code in range(n):
        vals[code] = _table_value(fmt, code)
    return vals.astype(np.dtype(dtype_name))


def _table_value(fmt, code):
    if isinstance(fmt, CodebookFormat):
        return fmt.table[code] if code < len(fmt.table) else np.nan
    mag = code & ~fmt.sign_mask
    neg = bool(code & fmt.sign_mask)
    if fmt.specials == "fnuz" and code == fmt.sign_mask:
        return np.nan
    if mag > fmt.max_code:
        if fmt.has_inf and mag == fmt.inf_code:
            return -np.inf if neg else np.inf
        return np.nan
    v = float(fmt.value_of(mag))
    return -v if neg else v


def _check_codes(codes):
    codes = jnp.asarray(codes)
    if not (jnp.issubdtype(codes.dtype, jnp.integer)) or codes.dtype == jnp.bool_:
        raise TypeError(f"codes must be an integer array (uint8, uint16 or uint32 codes), got dtype {codes.dtype}")
    return codes


def _decode(codes, fmt, dtype):
    dtype = np.dtype(dtype)
    if isinstance(fmt, IntFormat):
        c = codes.astype(jnp.uint32) & jnp.uint32((1 << fmt.bits) - 1)
        if fmt.signed:
            top = jnp.uint32(1 << (fmt.bits - 1))
            v = lax.bitcast_convert_type(c ^ top, jnp.int32) - lax.bitcast_convert_type(top, jnp.int32)
            if fmt.bits == 32:
                v = lax.bitcast_convert_type(c, jnp.int32)
            return v.astype(dtype)
        return c.astype(dtype)
    if isinstance(fmt, CodebookFormat):
        return jnp.asarray(_decode_table(fmt, dtype.name))[codes.astype(jnp.int32) & ((1 << fmt.bits) - 1)]
    lay = _F64 if dtype == np.float64 else _F32
    if _fits(fmt, lay.dtype):
        return _decode_float(codes, fmt, lay).astype(dtype)
    if fmt.bits <= 16:
        table = jnp.asarray(_decode_table(fmt, dtype.name))
        return table[codes.astype(jnp.int32) & ((1 << fmt.bits) - 1)]
    if jax.config.jax_enable_x64:
        return _decode_float(codes, fmt, _F64).astype(dtype)
    raise ValueError(
        f"the values of {fmt.name} do not all fit in {dtype.name}; decoding it needs "
        "jax_enable_x64 (the values are then computed in float64 and rounded once)"
    )


# ---- public API -------------------------------------------------------------------------


def _check_fmt(fmt):
    return _formats.get(fmt)


def _check_args(x, fmt, rounding, key, rbits, random_bits, variant):
    """Validates everything at the API boundary; returns (x, fmt, rounding, rbits)."""
    fmt = _formats.get(fmt)
    rounding = _rounding.check_rounding(rounding)
    x_in = jnp.asarray(x)
    _, lay = _as_float_input(x_in)
    if rounding != "stochastic":
        for name, value in (("key", key), ("rbits", rbits), ("random_bits", random_bits)):
            if value is not None:
                raise ValueError(f"{name} is only used with rounding='stochastic', got rounding={rounding!r}")
        return x_in, fmt, rounding, None
    if isinstance(fmt, CodebookFormat):
        raise ValueError(f"codebook format {fmt.name} supports nearest rounding only, not 'stochastic'")
    width = 64 if lay is _F64 else 32
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


def _encode_impl(x, fmt, rounding, saturate, sr):
    x, lay = _as_float_input(x)
    if isinstance(fmt, IntFormat):
        return _encode_int(x, fmt, rounding, lay, sr)
    if isinstance(fmt, CodebookFormat):
        return _encode_codebook(x, fmt, rounding)
    return _encode_float(x, fmt, rounding, saturate, lay, sr)


@functools.partial(jax.jit, static_argnames=("fmt", "rounding", "saturate", "rbits", "variant"))
def _encode_jit(x, key, random_bits, fmt, rounding, saturate, rbits, variant):
    rand = _random_words(x, key, random_bits, rounding)
    return _encode_impl(x, fmt, rounding, saturate, (rand, rbits, variant))


@functools.partial(jax.jit, static_argnames=("fmt", "rounding", "saturate", "rbits", "variant"))
def _quantize_jit(x, key, random_bits, fmt, rounding, saturate, rbits, variant):
    rand = _random_words(x, key, random_bits, rounding)
    sr = (rand, rbits, variant)
    xw, lay = _as_float_input(x)
    if _quantize_fast_ok(fmt, lay):
        return _quantize_float(xw, fmt, rounding, saturate, lay, sr).astype(x.dtype)
    return _decode(_encode_impl(x, fmt, rounding, saturate, sr), fmt, x.dtype)


@functools.partial(jax.jit, static_argnames=("fmt", "dtype"))
def _decode_jit(codes, fmt, dtype):
    return _decode(codes, fmt, dtype)


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
    codes = _check_codes(codes)
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
