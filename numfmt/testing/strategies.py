"""Hypothesis strategies for number formats and for the inputs of a conversion.

``formats()``, ``codes(fmt)`` and ``values(fmt)`` draw formats, bit patterns and
representable values. ``floats_for(fmt, source)`` draws from the structured hard cases
of :func:`numfmt.testing.cases.cases_for` (re-exported here with ``FAMILIES``,
``family_of`` and the rest) and from random inputs around the whole grid of ``fmt``.
"""

from __future__ import annotations

import numpy as np

from numfmt import formats as _formats
from numfmt.formats import CodebookFormat, FloatFormat, IntFormat
from numfmt.testing.cases import (
    FAMILIES,
    REGIONS,
    Case,
    cases_for,
    family_of,
    finite_max_bits,
    floor_bits,
    range_bits,
    signed_values,
    simplicity,
    source_dtype,
    uint_dtype,
)
from numfmt.testing.reference import reference_decode


def _st():
    """hypothesis.strategies, imported on use: the cases need no hypothesis, the strategies do."""
    from hypothesis import strategies

    return strategies


__all__ = [
    "FAMILIES",
    "REGIONS",
    "Case",
    "cases_for",
    "codes",
    "family_of",
    "floats_for",
    "formats",
    "simplicity",
    "source_dtype",
    "values",
]


# ---- strategies --------------------------------------------------------------------------


def _try_format(**kwargs):
    try:
        return FloatFormat(**kwargs)
    except ValueError:
        return None


def _custom_float(draw):
    """Draws a FloatFormat (or None where the constructor refuses the combination); see formats()."""
    st = _st()
    exp_bits = draw(st.integers(1, 8))
    man_bits = draw(st.integers(0, 10))
    specials = draw(st.sampled_from(["ieee", "fn", "fnuz", "none"]))
    default = 2 ** (exp_bits - 1) - (0 if specials == "fnuz" else 1)
    bias = draw(st.one_of(st.just(default), st.integers(default - 2 ** exp_bits, default + 2 ** exp_bits)))
    subnormals = draw(st.booleans())
    signed = True if specials == "fnuz" else draw(st.booleans())
    name = f"e{exp_bits}m{man_bits}_b{bias}_{specials}{'' if subnormals else '_ftz'}{'' if signed else '_u'}"
    return _try_format(name=name, exp_bits=exp_bits, man_bits=man_bits, bias=bias,
                       signed=signed, subnormals=subnormals, specials=specials)


def formats(*, builtin: bool = True, custom: bool = True, ints: bool = True, max_bits: int = 16):
    """Draw number formats: registered ones and custom ``FloatFormat`` / ``IntFormat``.

    Custom float formats have 1..8 exponent bits, 0..10 mantissa bits, a random bias
    near the IEEE one, any of the ``ieee`` / ``fn`` / ``fnuz`` / ``none`` special styles,
    subnormals on or off, signed or not (``fnuz`` is always signed); combinations that
    ``FloatFormat`` rejects (no positive finite value, say) are not drawn. Custom
    integer formats have 1..16 bits, signed or not, narrow or not. Only formats of at
    most ``max_bits`` bits are drawn.
    """
    st = _st()
    options = []
    if builtin:
        registered = [_formats.get(n) for n in _formats.names()]
        options.append(st.sampled_from([f for f in registered if f.bits <= max_bits]))
    if custom:
        options.append(st.composite(_custom_float)().filter(lambda f: f is not None and f.bits <= max_bits))
    if ints:
        options.append(st.builds(
            lambda bits, signed, narrow: IntFormat(
                f"{'' if signed else 'u'}int{bits}{'_narrow' if narrow and signed and bits > 1 else ''}",
                bits, signed=signed, narrow=narrow and signed and bits > 1),
            st.integers(1, min(16, max_bits)), st.booleans(), st.booleans()))
    if not options:
        raise ValueError("formats(): at least one of builtin, custom and ints must be True")
    return st.one_of(options)


def codes(fmt, *, finite: bool = False):
    """Draw codes (bit patterns) of ``fmt`` as ints.

    ``finite=True`` draws only codes of numbers: it leaves out inf and NaN, and the one
    code of a narrow integer format that is outside its range (``min - 1``).
    """
    fmt = _formats.get(fmt)
    n = len(fmt.table) if isinstance(fmt, CodebookFormat) else 1 << fmt.bits
    strategy = _st().integers(0, n - 1)
    if finite and isinstance(fmt, FloatFormat):
        strategy = strategy.filter(fmt.is_finite_code)
    if finite and isinstance(fmt, IntFormat) and fmt.narrow:
        strategy = strategy.filter(lambda c: c != 1 << (fmt.bits - 1))
    return strategy


def values(fmt, *, finite: bool = True):
    """Draw values of ``fmt`` (as Python floats, exactly; ``-0.0`` where the format has it)."""
    fmt = _formats.get(fmt)
    return codes(fmt, finite=finite).map(lambda c: float(reference_decode(c, fmt)))


def floats_for(fmt, source=np.float32, *, labelled: bool = False):
    """Draw inputs of type ``source`` for a conversion into ``fmt``.

    A mix, in equal parts, of: the structured cases of :func:`cases_for` (a family drawn
    uniformly, then a case of it); random bit
    patterns of the source type; inputs a few source ulps from a random value or a
    random tie of ``fmt`` (anywhere on its grid, not only the sampled part); and random
    inputs between a quarter of ``fmt``'s smallest value and twice its largest. With
    ``labelled=True`` each draw is a :class:`Case` ``(value, family)``, else the bare
    NumPy scalar. Shrinking moves toward the families listed first in ``FAMILIES`` and
    toward bit pattern 0.
    """
    st = _st()
    fmt = _formats.get(fmt)
    dtype = source_dtype(source)
    uint = uint_dtype(dtype)
    width = 8 * dtype.itemsize
    top = finite_max_bits(dtype)

    def make(bits: int, family: str) -> Case:
        return Case(np.array(bits, dtype=uint).view(dtype)[()], family)

    # A family first, then a case of it: the few cases of a rare family (the overflow
    # threshold, say) come up as often as the many ties.
    by_family: dict[str, list[Case]] = {}
    for case in cases_for(fmt, dtype):
        by_family.setdefault(case.family, []).append(case)
    names = sorted(by_family, key=list(FAMILIES).index)
    structured = st.sampled_from(names).flatmap(lambda name: st.sampled_from(by_family[name]))
    raw = st.integers(0, (1 << width) - 1).map(lambda b: make(b, "random_bits"))

    grid_values, past_max = signed_values(fmt)

    @st.composite
    def near(draw, tie: bool):
        i = draw(st.integers(0, len(grid_values) - (2 if tie else 1)))
        x = (grid_values[i] + grid_values[i + 1]) / 2 if tie else grid_values[i]
        lo = floor_bits(abs(x), dtype)
        bits = min(max((top if lo is None else lo) + draw(st.integers(-3, 4)), 0), top)
        negative = draw(st.booleans()) if x == 0 else x < 0
        return make(bits | (1 << (width - 1) if negative else 0), "near_tie" if tie else "near_grid")

    smallest, largest = range_bits(fmt, dtype, past_max)
    in_range = st.tuples(st.integers(smallest, largest), st.booleans()).map(
        lambda t: make(t[0] | (1 << (width - 1) if t[1] else 0), "in_range"))
    strategy = st.one_of(structured, raw, near(False), near(True), in_range)
    return strategy if labelled else strategy.map(lambda case: case.value)
