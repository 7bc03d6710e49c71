"""Checks of arguments at the API boundary, each raising an error that names the argument.

Data values are never checked here: inside ``jit`` NaN, inf and overflow follow the
codec's rules (docs/semantics.md). These checks look at Python-level arguments only
(flags, sizes, axes), so they run once at trace time.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["check_bool", "check_int", "is_traced", "static_hint"]


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
