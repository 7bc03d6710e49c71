"""Tables: :func:`format_table` (a format's numbers side by side) and plain-text rendering.

Tables are lists of dicts (one per row), which need nothing installed; :func:`as_frame`
turns one into a pandas DataFrame where pandas is available.
"""

from __future__ import annotations

import math

from numfmt import formats as _formats
from numfmt.analysis.metrics import unit_roundoff
from numfmt.describe import format_value
from numfmt.describe import layout as _layout
from numfmt.formats import CodebookFormat, FloatFormat, IntFormat

__all__ = ["FORMAT_COLUMNS", "as_frame", "format_row", "format_table", "inf_codes", "nan_codes", "to_markdown"]

#: The columns of :func:`format_table`, in order.
FORMAT_COLUMNS = (
    "name", "kind", "bits", "layout", "bias", "emin", "emax", "max", "min_normal", "min_subnormal",
    "eps", "unit_roundoff", "binades", "dynamic_range_db", "nan_codes", "inf_codes",
)


def nan_codes(fmt) -> int:
    """How many of the ``2**bits`` codes of ``fmt`` mean NaN (the format's ``nan_code_ranges``)."""
    return sum(hi - lo + 1 for lo, hi in _formats.get(fmt).nan_code_ranges)


def inf_codes(fmt) -> int:
    """How many codes of ``fmt`` mean an infinity (``+inf`` and ``-inf``)."""
    return len(_formats.get(fmt).inf_codes)


def _smallest_positive(fmt) -> float:
    if isinstance(fmt, CodebookFormat):
        return min(abs(v) for v in fmt.table if v != 0)
    return float(fmt.min_subnormal)


def format_row(fmt) -> dict:
    """One row of :func:`format_table` (see there for the columns)."""
    fmt = _formats.get(fmt)
    top = float(fmt.max)
    low = _smallest_positive(fmt)
    ratio = top / low
    row = {
        "name": fmt.name,
        "kind": fmt.kind,
        "bits": fmt.bits,
        "layout": _layout(fmt),
        "bias": None,
        "emin": None,
        "emax": None,
        "max": top,
        "min_normal": None,
        "min_subnormal": low,
        "eps": None,
        "unit_roundoff": None,
        "binades": math.log2(ratio),
        "dynamic_range_db": 20 * math.log10(ratio),
        "nan_codes": nan_codes(fmt),
        "inf_codes": inf_codes(fmt),
    }
    if isinstance(fmt, FloatFormat):
        row.update(bias=fmt.bias, emin=fmt.emin, emax=fmt.emax, min_normal=fmt.min_normal, eps=fmt.eps,
                   unit_roundoff=unit_roundoff(fmt, "nearest_even"))
    elif isinstance(fmt, IntFormat):
        row.update(bias=0, min_normal=1.0, eps=1.0)
    elif fmt.kind == "log":
        row.update(bias=fmt.bias, emin=fmt.emin, emax=fmt.emax, min_normal=fmt.min_normal, eps=fmt.eps)
    return row


def format_table(formats=None) -> list[dict]:
    """The numbers that characterize each format, one dict per format.

    Columns (:data:`FORMAT_COLUMNS`):

    * ``name``, ``kind`` (float / int / codebook), ``bits``, ``layout`` (``s1e4m3``, ``int8``);
    * ``bias``, ``emin``, ``emax``: exponent bias and the unbiased exponents of the lowest
      normal and the highest finite binade (floats; ints have bias 0);
    * ``max``: largest finite value; ``min_normal`` = ``2**emin``; ``min_subnormal``: the
      smallest positive value (``min_normal`` when there are no subnormals; for a
      codebook the smallest non-zero magnitude); ``eps`` = ``2**-man_bits`` (1 for ints);
    * ``unit_roundoff``: ``2**-(man_bits+1)``, the relative error bound of round to
      nearest (floats only);
    * ``binades`` = ``log2(max / min_subnormal)`` and ``dynamic_range_db`` =
      ``20 log10(max / min_subnormal)``: the dynamic range, counting subnormals;
    * ``nan_codes``, ``inf_codes``: how many codes are NaN, and infinities.

    Args:
      formats: formats or names; None means every registered format.

    Returns:
      a list of dicts (:func:`as_frame` makes a DataFrame of it; :func:`to_markdown` text).
    """
    if formats is None:
        formats = _formats.names()
    elif isinstance(formats, (str, _formats.Format)):
        formats = [formats]
    return [format_row(f) for f in formats]


# ---- rendering ------------------------------------------------------------------------------


def _cell(v, digits: int) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):  # integral values below 1e7 as integers, others to `digits` digits
        return format_value(v, f".{digits}g", integer=abs(v) < 1e7)
    return str(v)


def to_markdown(rows, columns=None, *, headers=None, digits: int = 4) -> str:
    """Rows (dicts) as a GitHub-flavoured Markdown table.

    ``columns`` picks and orders the keys (default: those of the first row); ``headers``
    renames them; floats print with ``digits`` significant digits, None as blank.
    """
    rows = list(rows)
    if not rows:
        return ""
    columns = list(columns or rows[0].keys())
    headers = list(headers or columns)
    cells = [[_cell(r.get(c), digits) for c in columns] for r in rows]
    numeric = [all(_is_number(r.get(c)) for r in rows) for c in columns]
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "".join(" ---: |" if n else " --- |" for n in numeric)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def _is_number(v) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def as_frame(rows):
    """A pandas DataFrame of the rows; ImportError with a hint when pandas is missing."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("as_frame needs pandas: pip install pandas (or use the list of dicts as is)") from None
    return pd.DataFrame(list(rows))
