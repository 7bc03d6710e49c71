"""The bit layout of IEEE binary inputs: how the codec reads float16 to float64 arrays."""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


class Layout:
    """Bit layout of an IEEE binary input type (float32 or float64)."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        info = np.finfo(self.dtype)
        self.width = self.dtype.itemsize * 8
        self.man = info.nmant  # P: stored mantissa bits
        self.bias = -info.minexp + 1
        self.uint = jnp.uint32 if self.width == 32 else jnp.uint64
        self.sint = jnp.int32 if self.width == 32 else jnp.int64


F32 = Layout(np.float32)
F64 = Layout(np.float64)


def check_float_input(x, arg="x"):
    """``x`` as a JAX array; a TypeError naming ``arg`` unless it is floating-point."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{arg} must be a floating-point array, got dtype {x.dtype}")
    return x


def as_float_input(x, arg="x"):
    """Checks that ``x`` is a real float array; widens float16/bfloat16 to float32 exactly."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"{arg} must be a real floating-point array (float16, bfloat16, float32 or float64), "
            f"got dtype {x.dtype}"
        )
    if x.dtype == jnp.float64:
        return x, F64
    if x.dtype.itemsize > 4:
        raise TypeError(f"{arg} has unsupported dtype {x.dtype}")
    return x.astype(jnp.float32), F32


def split_bits(x, lay):
    """Sign (bool), biased exponent (int), mantissa and magnitude bits of ``x``."""
    u = lax.bitcast_convert_type(x, lay.uint)
    sign = (u >> lay.uint(lay.width - 1)) == 1
    mag = u & lay.uint((1 << (lay.width - 1)) - 1)
    e_in = (mag >> lay.uint(lay.man)).astype(lay.sint)
    man = mag & lay.uint((1 << lay.man) - 1)
    return sign, e_in, man, mag


@contextlib.contextmanager
def x64():
    """Run JAX with 64-bit types inside (so float64 inputs stay float64 and decode is exact)."""
    if hasattr(jax, "enable_x64"):  # newer jax: a config state usable as a context
        with jax.enable_x64(True):
            yield
    else:  # pragma: no cover - older jax
        from jax.experimental import enable_x64

        with enable_x64():
            yield
