"""Checks of arguments at the API boundary, each raising an error that names the argument.

Data values are never checked here: inside ``jit`` NaN, inf and overflow follow the
codec's rules (docs/semantics.md). These checks look at Python-level arguments only
(flags, sizes, axes), so they run once at trace time.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["NEAREST_MODES", "check_bool", "check_codebook_rounding", "check_int", "check_positive", "is_traced",
           "normalize_axes", "static_hint"]

NEAREST_MODES = ("nearest_even", "nearest_away")


def is_traced(value) -> bool:
    """Whether ``value`` is a JAX tracer (an argument of a function being traced by ``jit``, ``vmap`` ...)."""
    return type(value).__name__.endswith("Tracer")


def static_hint(arg: str) -> str:
    """How to pass ``arg`` as a static (trace-time) argument: the fix an error about a traced ``arg`` names."""
    return (f"mark {arg} static (jax.jit(f, static_argnames=('{arg}',))) "
            f"or bind it with functools.partial(f, {arg}=...)")


def check_bool(value, arg: str) -> bool:
    """``value`` if it is a bool (or a NumPy bool); else a TypeError naming ``arg``.

    Truthy strings such as ``"no"`` are refused: ``saturate="no"`` would otherwise
    saturate. A traced value (inside ``jit``) is refused with a hint to make it static.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if is_traced(value):
        raise TypeError(f"{arg} must be a Python bool known at trace time, got a traced value: {static_hint(arg)}")
    raise TypeError(f"{arg} must be True or False, got {value!r} ({type(value).__name__})")


def check_int(value, arg: str, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as an int if it is an integer (not a bool) within ``[lo, hi]``; else an error naming ``arg``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{arg} must be an int, got {value!r} ({type(value).__name__})")
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        span = f">= {lo}" if hi is None else (f"<= {hi}" if lo is None else f"in [{lo}, {hi}]")
        raise ValueError(f"{arg} must be an int {span}, got {value}")
    return value


def check_positive(value, arg: str) -> float:
    """``value`` as a float if it is a positive finite real number (not a bool); else an error naming ``arg``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{arg} must be a positive finite number, got {value!r} ({type(value).__name__})")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{arg} must be a positive finite number, got {value!r}")
    return float(value)


def check_codebook_rounding(fmt, rounding: str) -> None:
    """A ValueError unless ``rounding`` (a canonical mode name) suits ``fmt``.

    A codebook format (NF4, k-means tables) has no grid to round along: it takes a
    nearest mode only, and the codec then picks the nearest table value.
    """
    # A codebook is a format with a table of values (checks sits below the formats layer).
    if getattr(fmt, "table", None) is not None and rounding not in NEAREST_MODES:
        raise ValueError(f"codebook format {fmt.name} supports nearest rounding only, got {rounding!r}")


def normalize_axes(axis, ndim: int, arg: str = "axis"):
    """``axis`` (None, an int or a sequence of ints) as a sorted tuple of non-negative axes.

    None stays None (all axes). Raises a TypeError or ValueError naming ``arg`` for
    non-integers, axes out of range for ``ndim`` dimensions, repeats and an empty tuple.
    """
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, numbers.Integral) and not isinstance(axis, (bool, np.bool_)) else axis
    try:
        axes = tuple(axes)
    except TypeError:
        raise TypeError(f"{arg} must be None, an int or a tuple of ints, got {axis!r}") from None
    out = []
    for a in axes:
        if isinstance(a, (bool, np.bool_)) or not isinstance(a, numbers.Integral):
            raise TypeError(f"{arg} must be None, an int or a tuple of ints, got {axis!r}")
        if not -ndim <= a < ndim:
            raise ValueError(f"{arg}={a} is out of range for an array of {ndim} dimension(s)")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{arg} has repeated axes: {axis!r}")
    if not out:
        raise ValueError(f"{arg} must name at least one axis (use None for all), got {axis!r}")
    return tuple(sorted(out))
