"""The codec's rules for special values: overflow, inf and NaN inputs, zero and its sign.

Rounding picks a neighbour on the format's grid; these rules decide everything the grid
does not: what a value past the overflow threshold becomes, what an input inf or NaN
becomes, the sign of a zero, and the values an unsigned or zero-less format cannot
hold. They are decisions about a *format* (and ``saturate``), made once at trace time,
and every quantize path applies the same ones in its own domain:
:func:`numfmt.nearest.quantize_nearest` on the input's bit pattern, and
:func:`numfmt.encoder.settle` on codes (behind ``encode``, ``quantize_float`` and so
``decode(encode(x))``). docs/semantics.md states the rules in words.

Each rule returns one of :data:`INF`, :data:`NAN`, :data:`MAX` (the largest finite
magnitude, with the input's sign) or :data:`ZERO` (``+0``). A NaN result is always the
format's one NaN code (``fmt.nan_code``; the canonical quiet NaN of the output float).
"""

from __future__ import annotations

__all__ = [
    "INF",
    "MAX",
    "NAN",
    "ZERO",
    "inf_result",
    "keeps_negative_zero",
    "nan_result",
    "negative_result",
    "overflow_result",
    "zero_result",
]

INF, NAN, MAX, ZERO = "inf", "nan", "max", "zero"


def overflow_result(fmt, saturate: bool) -> str:
    """A finite input past the overflow threshold that the rounding mode sends toward infinity.

    IEEE 754-2019 §7.4: the directed modes send some overflows to the largest finite
    value instead (``numfmt.rounding.overflows_to_infinity``); those always get :data:`MAX`.
    ``saturate`` (OCP 8-bit FP v1.0 "saturation mode") gives :data:`MAX`; otherwise inf
    where the format has inf, else NaN where it has NaN, else :data:`MAX`.
    """
    if saturate:
        return MAX
    if fmt.has_inf:
        return INF
    return NAN if fmt.has_nan else MAX


def inf_result(fmt, saturate: bool) -> str:
    """An infinite input: inf where the format has inf (``saturate`` is for finite values),
    else as an overflow: :data:`MAX` with ``saturate``, else NaN, or :data:`MAX` without NaN."""
    if fmt.has_inf:
        return INF
    return overflow_result(fmt, saturate)


def nan_result(fmt) -> str:
    """A NaN input: the format's NaN, or :data:`ZERO` (``+0``) in a format without NaN."""
    return NAN if fmt.has_nan else ZERO


def keeps_negative_zero(fmt) -> bool:
    """Whether a zero result keeps the input's sign (formats with ``-0``); else it is ``+0``."""
    return bool(fmt.has_negative_zero)


def negative_result(fmt) -> str:
    """In an unsigned format, a negative input that does not round to zero (or any negative
    input, where the format has no zero): out of range, so NaN where the format has NaN,
    else :data:`ZERO`."""
    return NAN if fmt.has_nan else ZERO


def zero_result(fmt) -> str:
    """A zero input: zero (signed by :func:`keeps_negative_zero`), or NaN in a format
    without a zero (E8M0, where zero has no code)."""
    return ZERO if fmt.has_zero else NAN
