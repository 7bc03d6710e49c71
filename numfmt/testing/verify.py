"""``verify``: check a converter into a number format against the exact oracle.

A *candidate* is any function that takes an array of source floats (float32 by
default) and returns the codes (unsigned bit patterns) of a format, as a hardware
converter, a kernel or another library would. ``verify`` compares it with
:func:`numfmt.testing.reference_round`, the exact ``Fraction`` oracle, in three stages:

1. the structured hard cases of :func:`numfmt.testing.strategies.cases_for` (ties and
   one source ulp either side, the overflow threshold, subnormal edges, specials), in
   one batch: Berkeley TestFloat's approach of testing where rounding decides;
2. with ``exhaustive=True``, every bit pattern of a 16-bit source (float16, bfloat16),
   in chunks; otherwise
3. random batches drawn by hypothesis from :func:`~numfmt.testing.strategies.floats_for`
   (the only stage that needs hypothesis); the simplest failing input of a failing
   batch is then shrunk by a greedy descent on its bit pattern (:func:`_shrink`).

A mismatch raises :class:`Mismatch` (an ``AssertionError``) for the *simplest* failing
input (finite before inf before NaN, then the smallest magnitude, ``+`` before ``-``),
with its bits, value, family, and the expected and actual codes with their values.
Where both codes are NaN the candidate counts as right, whatever NaN code it gives.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter

import numpy as np

from numfmt import formats as _formats
from numfmt.checks import check_bool
from numfmt.describe import format_value
from numfmt.formats import CodebookFormat
from numfmt.testing import strategies as _strategies
from numfmt.testing.reference import DETERMINISTIC_MODES as _MODES
from numfmt.testing.reference import reference_decode, reference_round

__all__ = ["CandidateError", "Mismatch", "VerifyReport", "verify"]

_CHUNK = 1 << 13  # inputs per candidate call in the exhaustive stage
_RANDOM_FAMILIES = ("random_bits", "near_grid", "near_tie", "in_range")


@dataclasses.dataclass(frozen=True)
class VerifyReport:
    """What ``verify`` checked: counts per stage and per family of input."""

    candidate: str
    fmt: str
    rounding: str
    saturate: bool
    source: str
    structured: int
    exhaustive: int
    random: int
    families: dict

    @property
    def checked(self) -> int:
        """Inputs checked in all stages (an input drawn twice counts twice)."""
        return self.structured + self.exhaustive + self.random

    def __str__(self) -> str:
        stages = [f"{self.structured} structured"]
        if self.exhaustive:
            stages.append(f"{self.exhaustive} exhaustive")
        if self.random:
            stages.append(f"{self.random} random")
        head = (f"verify: {self.candidate} matches the exact rounding of {self.source} into {self.fmt} "
                f"(rounding={self.rounding!r}, saturate={self.saturate}): "
                f"{self.checked} inputs ({', '.join(stages)}), no mismatch")
        fams = ", ".join(f"{name} {n}" for name, n in sorted(self.families.items(), key=lambda kv: -kv[1]))
        return f"{head}\n  families: {fams}"


class Mismatch(AssertionError):
    """A candidate's code differs from the oracle's; the fields say where.

    ``value`` is the input (a NumPy scalar of the source type), ``family`` the family it
    came from, ``expected`` / ``actual`` the codes, ``stage`` the stage that found it.
    """

    def __init__(self, message, *, value, family, expected, actual, stage):
        super().__init__(message)
        self.value, self.family, self.expected, self.actual, self.stage = value, family, expected, actual, stage


class CandidateError(RuntimeError):
    """The candidate raised an exception: it could not be checked (not a mismatch).

    The message names the candidate, the exception and the batch of inputs it was
    given; the candidate's own exception is the ``__cause__``.
    """


def _name(candidate) -> str:
    name = getattr(candidate, "__qualname__", None) or getattr(candidate, "__name__", None) or repr(candidate)
    module = getattr(candidate, "__module__", None)
    return f"{module}.{name}" if module and module not in ("__main__", "builtins") else name


def _show_value(v) -> str:
    # exact: every value of a format of at most 32 bits is a float64 (nan, ±inf, -0.0 too)
    return format_value(v)


class _Checker:
    """Runs the candidate on batches, checks its output and compares it with the cached oracle."""

    def __init__(self, candidate, fmt, rounding, saturate, dtype, name):
        self.candidate, self.fmt, self.rounding, self.saturate = candidate, fmt, rounding, saturate
        self.dtype, self.name = dtype, name
        self.uint = np.dtype(f"u{dtype.itemsize}")
        self.n_codes = len(fmt.table) if isinstance(fmt, CodebookFormat) else 1 << fmt.bits
        self._expected: dict[int, int] = {}  # keyed by input bits: -0.0 and +0.0 differ
        self._is_nan: dict[int, bool] = {}

    def expected(self, bits: np.ndarray) -> np.ndarray:
        out = np.empty(bits.shape, dtype=np.int64)
        for i, b in enumerate(bits.tolist()):
            code = self._expected.get(b)
            if code is None:
                value = np.array(b, dtype=self.uint).view(self.dtype)[()]
                code = self._expected[b] = reference_round(value, self.fmt, self.rounding, saturate=self.saturate)
            out[i] = code
        return out

    def is_nan(self, code: int) -> bool:
        if code not in self._is_nan:
            v = reference_decode(code, self.fmt)
            self._is_nan[code] = isinstance(v, float) and np.isnan(v)
        return self._is_nan[code]

    def actual(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):  # the inputs include inf and NaN on purpose
            try:
                out = self.candidate(x)
            except Exception as err:
                shown = ", ".join(format_value(v) for v in x[:4]) + (", ..." if x.size > 4 else "")
                raise CandidateError(
                    f"candidate {self.name} raised {type(err).__name__}: {err} (called on {x.size} {self.dtype.name} "
                    f"inputs: {shown})") from err
        try:
            arr = np.asarray(out)
        except Exception as err:  # any result that is no array is the candidate's error
            raise TypeError(f"candidate {self.name} must return an array of codes, got {type(out).__name__}") from err
        if arr.dtype.kind != "u":
            raise TypeError(
                f"candidate {self.name} must return unsigned integer codes (e.g. {self.fmt.code_dtype}) of "
                f"{self.fmt.name}, got dtype {arr.dtype}")
        if arr.shape != x.shape:
            raise ValueError(f"candidate {self.name} must return codes of the input's shape {x.shape}, got {arr.shape}")
        bad = arr >= self.n_codes
        if bad.any():
            first = int(arr[bad].reshape(-1)[0])
            raise ValueError(
                f"candidate {self.name} returned code {first:#x}, out of range for {self.fmt.name} "
                f"(codes are 0..{self.n_codes - 1:#x})")
        return arr.astype(np.int64)

    def failures(self, x: np.ndarray) -> list[tuple[int, int, int]]:
        """``(index, expected, actual)`` of every input of ``x`` that the candidate gets wrong."""
        got = self.actual(x)
        want = self.expected(x.view(self.uint))
        wrong = np.nonzero(got != want)[0]
        return [(int(i), int(want[i]), int(got[i])) for i in wrong
                if not (self.is_nan(int(want[i])) and self.is_nan(int(got[i])))]


def _mismatch(checker: _Checker, value, family: str, expected: int, actual: int, stage: str) -> Mismatch:
    fmt, dtype = checker.fmt, checker.dtype
    bits = int(np.asarray(value).view(checker.uint))
    digits = 2 * dtype.itemsize
    width = max(1, (fmt.bits + 3) // 4)
    about = _strategies.FAMILIES.get(family) or _strategies.REGIONS.get(family, "")
    where = f"{family}: {about}" if about else family
    if family in _RANDOM_FAMILIES:  # say where a random input fell on the grid
        where += f" (the input is {_strategies.REGIONS[_strategies.family_of(value, fmt)]})"
    xf = float(value)
    exact = float.hex(xf) if np.isfinite(xf) else ""
    lines = [
        (f"candidate {checker.name} does not round {dtype.name} into {fmt.name} exactly "
         f"(rounding={checker.rounding!r}, saturate={checker.saturate})"),
        f"  input     0x{bits:0{digits}x}  {value} {exact}".rstrip(),
        f"  family    {where}",
        f"  expected  0x{expected:0{width}x}  {_show_value(reference_decode(expected, fmt))}",
        f"  actual    0x{actual:0{width}x}  {_show_value(reference_decode(actual, fmt))}",
        f"  found by  {stage}",
    ]
    return Mismatch("\n".join(lines), value=value, family=family, expected=expected, actual=actual, stage=stage)


def _simplest(checker, values, family, fails, stage):
    """The Mismatch of the simplest failing input; ``family(i)`` names input ``i``'s family."""
    i, want, got = min(fails, key=lambda f: _strategies.simplicity(values[f[0]]))
    return _mismatch(checker, values[i], family(i), want, got, stage)


def _check_args(candidate, fmt, rounding, source, exhaustive, max_examples, batch_size):
    check_bool(exhaustive, "exhaustive")
    if not callable(candidate):
        raise TypeError(f"candidate must be a function from an array of floats to codes, got {candidate!r}")
    fmt = _formats.get(fmt)
    modes = _MODES + (("nearest_log",) if fmt.kind == "log" else ())  # the log domain's nearest
    if rounding not in modes:
        raise ValueError(f"rounding must be one of {modes}, got {rounding!r}")
    if isinstance(fmt, CodebookFormat) and rounding not in ("nearest_even", "nearest_away"):
        raise ValueError(f"codebook format {fmt.name} rounds to nearest only, got rounding={rounding!r}")
    dtype = _strategies.source_dtype(source)
    if exhaustive and dtype.itemsize > 2:
        raise ValueError(
            f"format too wide for exhaustive: source {dtype.name} has 2**{8 * dtype.itemsize} bit patterns; "
            f"exhaustive=True takes a 16-bit source (source='fp16' or 'bf16')")
    for arg, value in (("max_examples", max_examples), ("batch_size", batch_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{arg} must be a positive int, got {value!r}")
    return fmt, dtype


def verify(
    candidate,
    fmt,
    rounding="nearest_even",
    *,
    saturate=False,
    source=np.float32,
    exhaustive=False,
    max_examples=None,
    edge_cases=True,
    batch_size=64,
    seed=0,
    name=None,
) -> VerifyReport:
    """Check that ``candidate`` rounds ``source`` floats into ``fmt`` exactly as the oracle does.

    Args:
      candidate: a function ``x -> codes``: ``x`` is a 1-D NumPy array of ``source``
        floats, the result an array of unsigned integers of the same shape holding codes
        of ``fmt`` (the bits ``numfmt.encode`` gives; a JAX array is fine).
      fmt: the target format (object or name).
      rounding: one of ``nearest_even``, ``nearest_away``, ``toward_zero``, ``up``,
        ``down``, ``odd`` (IEEE 754-2019 §4.3 plus round-to-odd).
      saturate: what the candidate does past ``max`` (docs/semantics.md).
      source: the input type: float32 (default), float16, bfloat16 or float64, as a
        dtype or a name (``"fp16"``, ``"bf16"``, ...).
      exhaustive: check every bit pattern of the source instead of random draws; only
        for 16-bit sources (a wider one raises ``ValueError``).
      max_examples: random batches to draw (default 100), of ``batch_size`` inputs each.
      edge_cases: run the structured cases first (they are also used to find a simpler
        failing input when the random stage finds one).
      seed: seeds hypothesis: the same program gives the same draws (hypothesis also mixes
        in the literal constants of the loaded modules, so which inputs are drawn can
        differ between programs; docs/verify.md).
      name: the candidate's name in messages (default: its qualified name).

    Returns:
      a :class:`VerifyReport` (``str()`` gives a summary).

    Raises:
      Mismatch: (an ``AssertionError``) for the simplest failing input, with its bits,
        value and family and the expected and actual codes and values.
      CandidateError: the candidate raised an exception (its ``__cause__``).
      TypeError / ValueError: for bad arguments, or a candidate whose result has the
        wrong dtype, shape or out-of-range codes.
    """
    fmt, dtype = _check_args(candidate, fmt, rounding, source, exhaustive, max_examples, batch_size)
    saturate, edge_cases = check_bool(saturate, "saturate"), check_bool(edge_cases, "edge_cases")
    checker = _Checker(candidate, fmt, rounding, saturate, dtype, name or _name(candidate))
    families: Counter = Counter()

    cases = _strategies.cases_for(fmt, dtype)
    values = np.array([c.value for c in cases], dtype=dtype)
    labels = [c.family for c in cases]
    if edge_cases:
        fails = checker.failures(values)
        if fails:
            raise _simplest(checker, values, labels.__getitem__, fails,
                            f"the structured cases ({len(values)} checked, {len(fails)} wrong); the simplest is shown")
        families.update(labels)
    structured = len(values) if edge_cases else 0

    if exhaustive:
        total = 1 << (8 * dtype.itemsize)
        for start in range(0, total, _CHUNK):
            chunk = np.arange(start, min(start + _CHUNK, total), dtype=checker.uint).view(dtype)
            fails = checker.failures(chunk)
            if fails:
                # family_of is an exact search: run it for the one input shown only.
                raise _simplest(checker, chunk, lambda i, chunk=chunk: _strategies.family_of(chunk[i], fmt), fails,
                                f"the exhaustive check of every {dtype.name} input; the simplest failing one is shown")
        families["exhaustive"] += total
        return VerifyReport(checker.name, fmt.name, rounding, saturate, dtype.name, structured, total, 0,
                            dict(families))

    drawn = _random_stage(checker, fmt, dtype, max_examples or 100, batch_size, seed, families)
    if isinstance(drawn, Mismatch):
        raise _prefer_structured(checker, drawn, values, labels, edge_cases)
    return VerifyReport(checker.name, fmt.name, rounding, saturate, dtype.name, structured, 0, drawn,
                        dict(families))


def _random_stage(checker, fmt, dtype, max_examples, batch_size, seed, families):
    """Hypothesis draws batches of labelled inputs; returns the count checked, or a Mismatch.

    Hypothesis only generates here (no shrinking of a 64-input batch, which would call
    the candidate thousands of times); the failing input is then made simpler by
    :func:`_shrink`, which needs one candidate call per step.
    """
    # hypothesis (the test extra) is needed for this stage only
    from hypothesis import HealthCheck, Phase, find, settings
    from hypothesis import strategies as st
    from hypothesis.errors import NoSuchExample

    strategy = st.lists(_strategies.floats_for(fmt, dtype, labelled=True), min_size=batch_size, max_size=batch_size)
    seen = {"batches": 0, "inputs": 0}

    def wrong(batch):
        fails = checker.failures(np.array([c.value for c in batch], dtype=dtype))
        if not fails:
            seen["batches"] += 1
            seen["inputs"] += len(batch)
            families.update(c.family for c in batch)
        return bool(fails)

    config = settings(max_examples=max_examples, database=None, deadline=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck))
    try:
        batch = find(strategy, wrong, settings=config, random=random.Random(seed))
    except NoSuchExample:
        return seen["inputs"]
    values = np.array([c.value for c in batch], dtype=dtype)
    fails = checker.failures(values)
    i = min((f[0] for f in fails), key=lambda j: _strategies.simplicity(values[j]))
    value, family = _shrink(checker, values[i], batch[i].family)
    stage = (f"random draws (hypothesis, seed={seed}): {seen['batches']} batches of {batch_size} passed, "
             f"then one failed; its simplest failing input was shrunk")
    want, got = checker.failures(np.array([value], dtype=dtype))[0][1:]
    return _mismatch(checker, value, family, want, got, stage)


def _shrink(checker, value, family):
    """Make a failing input simpler: greedy descent on its bit pattern toward smaller magnitudes.

    Each step tries, in one candidate call, the bit pattern minus every power of two and
    with its low bits cleared, and keeps the simplest that still fails. On a failing
    interval (everything past the overflow threshold, say) this is a binary search
    that ends at the interval's smallest input. The family of the result is its family
    among the structured cases if it is one of them, else the drawn family if the input
    did not change, else where it lies on the grid (:func:`strategies.family_of`).
    """
    dtype, uint = checker.dtype, checker.uint
    bits = int(np.asarray(value).view(uint))
    width = 8 * dtype.itemsize
    sign = bits & (1 << (width - 1))
    start = bits
    for _ in range(4 * width):
        mag = bits & ~sign
        trial = {mag - (1 << k) for k in range(width - 1) if (1 << k) <= mag}
        trial |= {mag & ~((1 << k) - 1) for k in range(1, width - 1)}
        trial = sorted(t | s for t in trial for s in {0, sign} if (t | s) != bits)
        if not trial:
            break
        x = np.array(trial, dtype=uint).view(dtype)
        fails = [x[f[0]] for f in checker.failures(x)]
        simpler = [v for v in fails if _strategies.simplicity(v) < _strategies.simplicity(value)]
        if not simpler:
            break
        value = min(simpler, key=_strategies.simplicity)
        bits = int(np.asarray(value).view(uint))
        sign = bits & (1 << (width - 1))
    known = {int(np.asarray(c.value).view(uint)): c.family for c in _strategies.cases_for(checker.fmt, dtype)}
    if bits in known:
        return value, known[bits]
    return value, family if bits == start else _strategies.family_of(value, checker.fmt)


def _prefer_structured(checker, found: Mismatch, values, labels, edge_cases) -> Mismatch:
    """A simpler failing structured case, if there is one (only when the structured stage was skipped)."""
    if edge_cases:
        return found
    fails = [f for f in checker.failures(values)
             if _strategies.simplicity(values[f[0]]) < _strategies.simplicity(found.value)]
    if not fails:
        return found
    simpler = _simplest(checker, values, labels.__getitem__, fails, "")
    stage = f"{found.stage}; then minimized over the structured cases"
    return _mismatch(checker, simpler.value, simpler.family, simpler.expected, simpler.actual, stage)
