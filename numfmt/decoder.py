"""The decoding engine: the values of codes, built as the output float's bits."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from numfmt.bitlayout import F32, F64
from numfmt.formats import CodebookFormat, FloatFormat, IntFormat, fits
from numfmt.logcodec import decode_log


def compose(S_int, k, lay):
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


def decode_float(codes, fmt: FloatFormat, lay):
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
    bits = compose(sig, k, lay)
    if not fmt.has_negative_zero:
        # A format without -0 (FNUZ) reads every zero-valued code as +0, also the
        # sign-bit codes of a flushed subnormal field.
        sign = sign & (sig != 0)
    bits = jnp.where(sign, bits | U(1 << (lay.width - 1)), bits)
    out = lax.bitcast_convert_type(bits, lay.dtype)
    if fmt.has_inf:
        out = jnp.where(C == U(fmt.inf_code), jnp.where(sign, -jnp.inf, jnp.inf).astype(lay.dtype), out)
    if fmt.has_nan:  # which codes are NaN is the format's answer (formats.FloatFormat.is_nan_code)
        is_nan = fmt.is_nan_code(c & U((1 << fmt.bits) - 1))
        out = jnp.where(is_nan, jnp.array(jnp.nan, lay.dtype), out)
    return out


@functools.cache
def decode_table(fmt, dtype_name):
    """Every code's value, rounded once to ``dtype`` (NumPy casts round to nearest even)."""
    n = 1 << fmt.bits
    vals = np.empty(n, dtype=np.float64)
    for code in range(n):
        vals[code] = table_value(fmt, code)
    return vals.astype(np.dtype(dtype_name))


def table_value(fmt, code):
    if isinstance(fmt, CodebookFormat):
        return fmt.table[code] if code < len(fmt.table) else np.nan
    mag = code & ~fmt.sign_mask
    neg = bool(code & fmt.sign_mask)
    if fmt.is_nan_code(code):
        return np.nan
    if code in fmt.inf_codes:
        return -np.inf if neg else np.inf
    v = float(fmt.value_of(mag))
    return -v if neg and (v != 0 or fmt.has_negative_zero) else v


def check_codes(codes):
    codes = jnp.asarray(codes)
    if not (jnp.issubdtype(codes.dtype, jnp.integer)) or codes.dtype == jnp.bool_:
        raise TypeError(f"codes must be an integer array (uint8, uint16 or uint32 codes), got dtype {codes.dtype}")
    return codes


def decode_any(codes, fmt, dtype):
    dtype = np.dtype(dtype)
    if fmt.kind == "log":  # the logarithmic formats: a table of correctly rounded powers
        return decode_log(codes, fmt, dtype)
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
        return jnp.asarray(decode_table(fmt, dtype.name))[codes.astype(jnp.int32) & ((1 << fmt.bits) - 1)]
    lay = F64 if dtype == np.float64 else F32
    if fits(fmt, lay.dtype):
        return decode_float(codes, fmt, lay).astype(dtype)
    if fmt.bits <= 16:
        table = jnp.asarray(decode_table(fmt, dtype.name))
        return table[codes.astype(jnp.int32) & ((1 << fmt.bits) - 1)]
    if jax.config.jax_enable_x64:
        return decode_float(codes, fmt, F64).astype(dtype)
    raise ValueError(
        f"the values of {fmt.name} do not all fit in {dtype.name}; decoding it needs "
        "jax_enable_x64 (the values are then computed in float64 and rounded once)"
    )
