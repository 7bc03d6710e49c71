"""Error analysis: how wrong is it, and is that what theory says?

* :mod:`~numfmt.analysis.metrics`: :func:`error_stats`, :func:`ulp`, :func:`ulp_error`,
  :func:`unit_roundoff`;
* :mod:`~numfmt.analysis.bounds`: the deterministic ``gamma_n``, Higham & Mary's
  probabilistic bound and its stochastic-rounding version;
* :mod:`~numfmt.analysis.tables`: :func:`format_table`, Markdown and DataFrame output;
* :mod:`~numfmt.analysis.sweep`: :func:`sweep` over formats, roundings, scales and data;
* :mod:`~numfmt.analysis.data`: the synthetic distributions;
* :mod:`~numfmt.analysis.accumulate`: an exact model of sequential low-precision
  accumulation (sums, dot products, stagnation).

See docs/analysis.md for the formulas and their sources.
"""

from numfmt.analysis.accumulate import (
    dot_partials,
    harmonic_sum,
    recursive_sum,
    stagnation,
)
from numfmt.analysis.bounds import (
    dot_product_bounds,
    failure_probability,
    gamma,
    gamma_tilde,
    lambda_for_confidence,
)
from numfmt.analysis.data import DISTRIBUTIONS, activation_like, sample, weight_like
from numfmt.analysis.metrics import (
    error_stats,
    precision,
    ulp,
    ulp_error,
    unit_roundoff,
)
from numfmt.analysis.sweep import quantization_error, sweep
from numfmt.analysis.tables import (
    as_frame,
    format_row,
    format_table,
    inf_codes,
    nan_codes,
    to_markdown,
)

__all__ = [
    "DISTRIBUTIONS",
    "activation_like",
    "as_frame",
    "dot_partials",
    "dot_product_bounds",
    "error_stats",
    "failure_probability",
    "format_row",
    "format_table",
    "gamma",
    "gamma_tilde",
    "harmonic_sum",
    "inf_codes",
    "lambda_for_confidence",
    "nan_codes",
    "precision",
    "quantization_error",
    "recursive_sum",
    "sample",
    "stagnation",
    "sweep",
    "to_markdown",
    "ulp",
    "ulp_error",
    "unit_roundoff",
    "weight_like",
]
