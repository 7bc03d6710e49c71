"""Testing tools: the exact reference oracle (and, later, strategies and ``verify``).

This package depends on :mod:`numfmt.formats` only, never on the codec it checks.
"""

from numfmt.testing.reference import reference_decode, reference_round

__all__ = ["reference_decode", "reference_round"]
