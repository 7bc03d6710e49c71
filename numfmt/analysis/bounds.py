"""Error bounds for sums and dot products of length ``n``.

For the recursive (sequential) evaluation of ``s = sum_i x_i y_i`` in a floating-point
format with unit roundoff ``u`` (:func:`numfmt.analysis.unit_roundoff`), the computed
``s_hat`` satisfies ``|s_hat - s| <= c_n * sum_i |x_i y_i|``, with ``c_n``:

* deterministic (worst case): ``gamma_n = n u / (1 - n u)`` for ``n u < 1``
  (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., 2002, §3.1, eq. 3.5);
* probabilistic (Higham & Mary, "A new approach to probabilistic rounding error
  analysis", SIAM J. Sci. Comput. 41(5), A2815-A2835, 2019, Thm 2.4 and Thm 3.1):
  ``gamma_tilde_n(lam) = exp(lam sqrt(n) u + n u**2 / (1 - u)) - 1 = lam sqrt(n) u + O(u**2)``,
  holding with probability at least ``1 - 2 n exp(-lam**2 (1 - u)**2 / 2)``, *if* the
  rounding errors are independent random variables of mean zero. That is a model for
  round to nearest, which fails in cases such as stagnation;
* stochastic rounding (Connolly, Higham & Mary, "Stochastic rounding and its
  probabilistic backward error analysis", SIAM J. Sci. Comput. 43(1), A566-A585, 2021):
  the errors of stochastic rounding are proved to be mean-zero and mean-independent, so
  the same ``gamma_tilde_n(lam)`` bound holds with the same probability with no
  assumption at all, with ``u`` the bound on one stochastic rounding error,
  ``2**(1-p)`` (``unit_roundoff(fmt, "stochastic")``).

All functions take NumPy-broadcastable ``n`` and return float64 NumPy arrays (floats
for scalar input).
"""

from __future__ import annotations

import numpy as np

from numfmt import rounding as _rounding
from numfmt.analysis.metrics import unit_roundoff

__all__ = [
    "dot_product_bounds",
    "failure_probability",
    "gamma",
    "gamma_tilde",
    "lambda_for_confidence",
]


def _out(v):
    v = np.asarray(v, dtype=np.float64)
    return float(v) if v.ndim == 0 else v


def gamma(n, u):
    """``gamma_n = n u / (1 - n u)``: the worst-case relative error bound of ``n`` roundings.

    ``inf`` where ``n u >= 1`` (the bound says nothing there).
    """
    n = np.asarray(n, dtype=np.float64)
    nu = n * u
    with np.errstate(divide="ignore"):
        return _out(np.where(nu < 1, nu / np.where(nu < 1, 1 - nu, 1), np.inf))


def gamma_tilde(n, u, lam):
    """Higham & Mary's probabilistic constant ``exp(lam sqrt(n) u + n u**2/(1-u)) - 1``.

    It is ``lam sqrt(n) u + O(u**2)``; :func:`failure_probability` gives how likely it
    is to be exceeded.
    """
    n = np.asarray(n, dtype=np.float64)
    return _out(np.expm1(lam * np.sqrt(n) * u + n * u * u / (1 - u)))


def failure_probability(n, u, lam, terms=None):
    """The probability that the ``gamma_tilde(n, u, lam)`` bound may fail.

    For one product of ``n`` factors ``(1 + delta_k)`` it is at most
    ``2 exp(-lam**2 (1 - u)**2 / 2)`` (Higham & Mary 2019, Thm 2.4); a dot product
    bounds ``terms`` such products (``n`` by default) together, so by the union bound
    ``terms * 2 exp(-lam**2 (1 - u)**2 / 2)`` (their Thm 3.1). Clipped to ``[0, 1]``.
    """
    n = np.asarray(n, dtype=np.float64)
    terms = n if terms is None else np.asarray(terms, dtype=np.float64)
    return _out(np.minimum(1.0, terms * 2 * np.exp(-(lam**2) * (1 - u) ** 2 / 2)))


def lambda_for_confidence(n, u, confidence=0.99):
    """The smallest ``lam`` for which the dot-product bound holds with probability ``confidence``.

    Solves ``2 n exp(-lam**2 (1-u)**2 / 2) = 1 - confidence``:
    ``lam = sqrt(2 log(2 n / (1 - confidence))) / (1 - u)``; 0 for ``n = 0`` (a sum of
    no terms has no rounding error to bound, so its bound is 0).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = np.sqrt(2 * np.log(2 * n / (1 - confidence))) / (1 - u)
    return _out(np.where(n > 0, lam, 0.0))


def dot_product_bounds(n, fmt, rounding="nearest_even", *, confidence=0.99) -> dict:
    """The relative error bounds of a length-``n`` dot product accumulated in ``fmt``.

    The bounds are on ``|s_hat - s| / sum_i |x_i y_i|``, for recursive summation where
    each product and each addition is rounded to ``fmt`` by ``rounding``.

    Returns a dict of float64 arrays (or floats) with keys:

    * ``u``: the unit roundoff (:func:`numfmt.analysis.unit_roundoff`);
    * ``deterministic``: ``gamma_n``, always valid;
    * ``probabilistic``: ``gamma_tilde_n(lam)``, holding with probability at least
      ``confidence``: an assumption (Higham & Mary 2019) for deterministic roundings,
      a theorem (Connolly, Higham & Mary 2021) for ``"stochastic"``;
    * ``lam``: the ``lam`` used, from :func:`lambda_for_confidence`;
    * ``confidence``; ``rigorous``: whether the probabilistic bound is a theorem here.
    """
    rounding = _rounding.check_rounding(rounding)
    u = unit_roundoff(fmt, rounding)
    lam = lambda_for_confidence(n, u, confidence)
    return {
        "u": u,
        "deterministic": gamma(n, u),
        "probabilistic": gamma_tilde(n, u, lam),
        "lam": lam,
        "confidence": confidence,
        "rigorous": rounding == "stochastic",
    }
