"""Parameter sweeps: run a function over a grid and collect a tidy table."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping

import jax
import numpy as np

from numfmt import codec as _codec
from numfmt import formats as _formats
from numfmt import rounding as _rounding
from numfmt.analysis.data import sample
from numfmt.analysis.metrics import error_stats

__all__ = ["quantization_error", "sweep"]


def quantization_error(x, fmt, rounding="nearest_even", key=None, **options) -> dict:
    """:func:`~numfmt.analysis.error_stats` of ``quantize(x, fmt, rounding)`` against ``x``.

    The default function of :func:`sweep`; ``options`` go to :func:`numfmt.quantize`
    (``saturate``, ``rbits``, ...).
    """
    if rounding != "stochastic":
        key = None
    y = _codec.quantize(x, fmt, rounding, key=key, **options)
    return error_stats(x, y, fmt)


def sweep(
    fn: Callable = quantization_error,
    *,
    formats=("e4m3",),
    roundings=("nearest_even",),
    scales=(1.0,),
    distributions=("gaussian",),
    shape=(4096,),
    seed: int = 0,
    errors: str = "raise",
    as_frame: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
    **grid,
):
    """Run ``fn`` over every combination of the grid; one row per combination.

    For each distribution and scale, the data is ``scale * sample(distribution, shape,
    seed)`` (:func:`numfmt.analysis.data.sample`), drawn once. ``fn`` is then called as
    ``fn(x, fmt, rounding, key, **point)`` for every format, rounding mode and point of
    the extra ``grid`` axes, where ``key`` is a ``jax.random`` key (used by stochastic
    rounding) fixed by ``seed`` and the position in the grid. ``fn`` returns a dict of
    results (or a single number, stored as ``"value"``).

    Args:
      fn: the measurement; :func:`quantization_error` (the ``error_stats`` of a plain
        ``quantize``) by default.
      formats, roundings, scales, distributions: the grid axes.
      shape, seed: the data's shape and seed.
      errors: ``"raise"``, or ``"record"`` to store a ValueError / TypeError message in
        an ``"error"`` column and go on (e.g. a codebook format with a directed mode).
      as_frame: return a pandas DataFrame (True), a list of dicts (False), or a
        DataFrame when pandas is installed (None).
      progress: called as ``progress(done, total)`` after each combination.
      **grid: more axes: name -> sequence of values, passed to ``fn`` as keywords.

    Returns:
      the tidy table: columns ``distribution``, ``scale``, ``format``, ``rounding``, the
      extra grid axes, then ``fn``'s results.

    Example::

        rows = nf.analysis.sweep(formats=["e4m3", "e5m2"], scales=2.0 ** np.arange(-12, 13, 4))
        best = max(rows, key=lambda r: r["sqnr_db"])
    """
    if errors not in ("raise", "record"):
        raise ValueError(f"errors must be 'raise' or 'record', got {errors!r}")
    formats = [formats] if isinstance(formats, (str, _formats.Format)) else list(formats)
    formats = [_formats.get(f) for f in formats]
    roundings = [roundings] if isinstance(roundings, str) else list(roundings)
    roundings = [_rounding.check_rounding(r) for r in roundings]
    distributions = [distributions] if isinstance(distributions, str) else list(distributions)
    scales = [float(s) for s in np.atleast_1d(np.asarray(scales, dtype=np.float64))]
    for name, values in grid.items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise TypeError(f"grid axis {name!r} must be a sequence of values, got {values!r}")
    axes = {k: list(v) for k, v in grid.items()}
    points = [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]
    total = len(distributions) * len(scales) * len(formats) * len(roundings) * len(points)
    base_key = jax.random.key(seed)
    rows, done = [], 0
    for dist in distributions:
        data = sample(dist, shape, seed)
        for scale in scales:
            x = (data * np.float32(scale)).astype(np.float32)
            for fmt in formats:
                for rounding in roundings:
                    for point in points:
                        key = jax.random.fold_in(base_key, done)
                        row = {"distribution": dist, "scale": scale, "format": fmt.name, "rounding": rounding,
                               **point}
                        try:
                            result = fn(x, fmt, rounding, key, **point)
                        except (ValueError, TypeError) as exc:
                            if errors == "raise":
                                raise
                            result = {"error": str(exc)}
                        if not isinstance(result, Mapping):
                            result = {"value": result}
                        row.update(result)
                        rows.append(row)
                        done += 1
                        if progress is not None:
                            progress(done, total)
    if as_frame is None:
        try:
            import pandas  # noqa: F401
        except ImportError:
            as_frame = False
        else:
            as_frame = True
    if as_frame:
        from numfmt.analysis.tables import as_frame as _frame

        return _frame(rows)
    return rows
