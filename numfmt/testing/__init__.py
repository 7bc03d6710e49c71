"""Testing tools: the exact reference oracle, hypothesis strategies and ``verify``.

This package depends on the formats layer only (:mod:`numfmt.formats`, and
:mod:`numfmt.describe` to print values), never on the codec it checks.
hypothesis (the ``test`` extra) is imported only when a strategy is built or
``verify`` draws random inputs, so ``import numfmt`` works without it.
"""

from numfmt.testing import strategies
from numfmt.testing.reference import reference_decode, reference_round
from numfmt.testing.verify import CandidateError, Mismatch, VerifyReport, verify

__all__ = ["CandidateError", "Mismatch", "VerifyReport", "reference_decode", "reference_round", "strategies", "verify"]
