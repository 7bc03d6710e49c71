"""Synthetic test data: the distributions the study and :func:`numfmt.analysis.sweep` use.

Every sampler is a pure function of ``(shape, seed)`` on the host (NumPy's PCG64), so
a study is reproducible without JAX keys. All return float32 arrays.

==================  ==============================================================================
``gaussian``        standard normal, unit variance.
``laplace``         Laplace with scale ``1/sqrt(2)``: unit variance, heavier tails than Gaussian
                    (a common model of trained weights).
``log_uniform``     random sign times ``2**U(-binades/2, binades/2)``: magnitudes spread evenly
                    over ``binades`` binades (16 by default): a dynamic-range stress test.
``heavy_tailed``    Student's t with 3 degrees of freedom, scaled to unit variance, plus
                    outliers: in a 2-D (or higher) array a few whole channels (columns of the last
                    axis, 1 in 128, at least one) are multiplied by 20 to 60, the "outlier
                    features" of transformer activations (Dettmers et al., LLM.int8(), 2022); in
                    a 1-D array, 1 element in 1024 is.
==================  ==============================================================================
"""

from __future__ import annotations

import numpy as np

__all__ = ["DISTRIBUTIONS", "activation_like", "sample", "weight_like"]

DISTRIBUTIONS = ("gaussian", "laplace", "log_uniform", "heavy_tailed")


def _check(distribution):
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution {distribution!r}: expected one of {', '.join(DISTRIBUTIONS)}")


def sample(distribution: str, shape, seed: int = 0, *, binades: float = 16.0) -> np.ndarray:
    """Draw an array of ``shape`` from ``distribution`` (one of :data:`DISTRIBUTIONS`).

    Args:
      distribution: the name (module doc for the definitions).
      shape: the array's shape (an int or a tuple).
      seed: the seed of NumPy's default generator: same seed, same data.
      binades: the spread of ``log_uniform``.
    """
    _check(distribution)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    rng = np.random.default_rng(seed)
    if distribution == "gaussian":
        x = rng.standard_normal(shape)
    elif distribution == "laplace":
        x = rng.laplace(0.0, 1 / np.sqrt(2), shape)
    elif distribution == "log_uniform":
        mags = np.exp2(rng.uniform(-binades / 2, binades / 2, shape))
        x = np.where(rng.random(shape) < 0.5, -mags, mags)
    else:
        x = rng.standard_t(3, shape) / np.sqrt(3.0)  # t(3) has variance 3
        factor = rng.uniform(20, 60)
        if len(shape) >= 2:
            channels = shape[-1]
            k = max(1, channels // 128)
            idx = rng.choice(channels, k, replace=False)
            x[..., idx] *= rng.uniform(20, 60, k)
        elif x.size:
            k = max(1, x.size // 1024)
            idx = rng.choice(x.size, k, replace=False)
            x.reshape(-1)[idx] *= factor
    return np.asarray(x, dtype=np.float32)


def weight_like(distribution: str, out_features: int, in_features: int, seed: int = 0) -> np.ndarray:
    """A weight matrix ``(out_features, in_features)`` with standard deviation ``1/sqrt(in_features)``
    (the usual initialization scale), drawn from ``distribution``."""
    return (sample(distribution, (out_features, in_features), seed) / np.float32(np.sqrt(in_features))).astype(
        np.float32)


def activation_like(distribution: str, tokens: int, hidden: int, seed: int = 0) -> np.ndarray:
    """An activation matrix ``(tokens, hidden)`` of unit scale, drawn from ``distribution``
    (``heavy_tailed`` gives it outlier channels along ``hidden``)."""
    return sample(distribution, (tokens, hidden), seed)
