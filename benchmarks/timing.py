"""The median wall time of a JAX function, after warm-up (compilation) runs."""

from __future__ import annotations

import statistics
import time

import jax


def median_time(fn, *args, reps: int, warmup: int = 2) -> float:
    """Seconds: the median of ``reps`` timed calls of ``fn(*args)``, each waited for."""
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
