"""Formats, values and codes as text: the tables and cards that ``numfmt`` prints.

Depends on :mod:`numfmt.formats` only (no JAX), so anything that shows a format (the
command line, format tables in the docs) spells it the same way.
"""

from __future__ import annotations

import math
from decimal import Decimal

from numfmt import formats as _formats

#: The columns of ``numfmt list``, and those right-aligned.
LIST_HEADERS = ["name", "kind", "bits", "layout", "bias", "max", "min normal", "min subnormal", "eps", "inf", "nan"]
LIST_RIGHT = frozenset({2, 4, 5, 6, 7, 8})


def is_int(fmt) -> bool:
    return fmt.kind == "int"


def format_value(value, style: str = "repr", integer: bool = False) -> str:
    """One number as text, the one way numfmt prints numbers (CLI, tables, reports, verify).

    ``style``: ``"repr"`` (the shortest decimal that reads back to the same float64, so
    it names the value exactly), ``"hex"`` (``float.hex`` without trailing zeros),
    ``"exact"`` (the exact decimal expansion), or a format spec such as ``".3g"``.
    Non-finite values are ``nan``, ``inf``, ``-inf`` in every style; with ``integer``
    an integral value prints as an integer (``448``, not ``448.0``).
    """
    v = float(value)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if integer and v == int(v):
        return str(int(v))
    if style == "repr":
        return repr(v)
    if style == "hex":
        return short_hex(v)
    if style == "exact":
        return str(Decimal(v))
    return format(v, style)


def short_hex(v: float) -> str:
    """``float.hex`` without the trailing zeros of the fraction: ``0x1.cp+8``."""
    text = float(v).hex()
    mantissa, _, exponent = text.partition("p")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}p{exponent}"


def hex_code(code: int, bits: int) -> str:
    return f"0x{code:0{max(1, (bits + 3) // 4)}x}"


def bin_code(code: int, bits: int) -> str:
    return f"{code:0{bits}b}"


def layout(fmt) -> str:
    """``s1e4m3`` for floats, ``int8`` / ``uint8`` for integers, ``16 values`` for codebooks."""
    if fmt.kind == "float":
        return f"s{int(fmt.signed)}e{fmt.exp_bits}m{fmt.man_bits}"
    if fmt.kind == "int":
        return f"{'' if fmt.signed else 'u'}int{fmt.bits}{' narrow' if fmt.narrow else ''}"
    if fmt.kind == "log":
        return fmt.describe_layout()
    return f"{len(fmt.values())} values"


def table(headers: list[str], rows: list[list[str]], right: set[int] = frozenset()) -> str:
    """Rows as aligned columns, two spaces apart; columns in ``right`` right-aligned."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells):
        parts = [str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def list_row(fmt, style: str = "repr") -> list[str]:
    """One row of ``numfmt list``: the cells under :data:`LIST_HEADERS`."""
    def yes_no(flag):
        return "yes" if flag else "no"

    def show(v):
        return format_value(v, style, integer=is_int(fmt))

    if fmt.kind == "codebook":
        return [fmt.name, fmt.kind, str(fmt.bits), layout(fmt), "-", show(fmt.max), "-", "-", "-", "no", "no"]
    bias = str(fmt.bias) if fmt.kind == "float" else "-"
    return [
        fmt.name,
        fmt.kind,
        str(fmt.bits),
        layout(fmt),
        bias,
        show(fmt.max),
        show(fmt.min_normal),
        show(fmt.min_subnormal),
        show(fmt.eps),
        yes_no(fmt.has_inf),
        yes_no(fmt.has_nan),
    ]



def card(fmt, style: str = "repr") -> list[tuple[str, str]]:
    """``numfmt info``: (field, text) pairs describing ``fmt``."""
    names = aliases(fmt)
    fields = [("name", fmt.name)] + ([("aliases", ", ".join(names))] if names else [])
    fields += [("kind", fmt.kind), ("bits", str(fmt.bits))]
    builder = {"float": _float_card, "int": _int_card, "log": _log_card}.get(fmt.kind, _codebook_card)
    fields += builder(fmt, style)
    dtype = fmt.dtype
    fields.append(("ml_dtypes", dtype.name if dtype is not None else "none"))
    return fields


def aliases(fmt) -> list[str]:
    """The other names ``numfmt.get`` knows ``fmt`` by (none for unregistered formats)."""
    if fmt.name not in _formats.names():
        return []
    return _formats.aliases(fmt.name)


def _code_span(lo: int, hi: int, bits: int) -> str:
    return hex_code(lo, bits) if lo == hi else f"{hex_code(lo, bits)}..{hex_code(hi, bits)}"


def _nan_codes(fmt) -> str:
    if not fmt.has_nan:
        return "none"
    codes = ", ".join(_code_span(lo, hi, fmt.bits) for lo, hi in fmt.nan_code_ranges)
    return f"{codes}  (encode gives {hex_code(fmt.nan_code, fmt.bits)})"


def _power_of_two(v: float) -> str:
    mantissa, exponent = math.frexp(v)
    return f"2**{exponent - 1}" if mantissa == 0.5 else short_hex(v)


_SPECIALS_NOTE = {
    "ieee": "IEEE 754: exponent all ones is inf (mantissa 0) or NaN",
    "fn": "finite + NaN (OCP E4M3): no inf, NaN only at exponent and mantissa all ones",
    "fnuz": "finite, unsigned zero: no inf, no -0, the one NaN at the code of -0",
    "none": "every code is a finite number",
    "e8m0": "OCP E8M0 scale: unsigned, no zero, NaN at all ones",
}


def _float_card(fmt, style: str) -> list[tuple[str, str]]:
    def show(v, note):
        return format_value(v, style) if style == "hex" else f"{format_value(v, style)}  ({note})"

    fields = ("S" * int(fmt.signed) + " " + "E" * fmt.exp_bits + " " + "M" * fmt.man_bits).strip()
    sign = f"sign {int(fmt.signed)} + " if fmt.signed else "no sign, "
    card = [
        ("layout", f"{layout(fmt)}: {sign}exponent {fmt.exp_bits} + mantissa {fmt.man_bits} = {fmt.bits} bits"),
        ("bit fields", fields),
        ("bias", str(fmt.bias)),
        ("emax, emin", f"{fmt.emax}, {fmt.emin}"),
        ("max", show(fmt.max, _power_of_two(fmt.max))),
        ("min normal", show(fmt.min_normal, _power_of_two(fmt.min_normal))),
        ("min subnormal", show(fmt.min_subnormal, _power_of_two(fmt.min_subnormal))
         + ("" if fmt.subnormals else "  (no subnormals: the min normal)")),
        ("eps", show(fmt.eps, _power_of_two(fmt.eps))),
        ("subnormals", "yes" if fmt.subnormals else "no"),
    ]
    inf = ", ".join(f"{sign}inf {hex_code(code, fmt.bits)}" for sign, code in zip("+-", fmt.inf_codes)) or "none"
    zero = "none" if not fmt.has_zero else hex_code(0, fmt.bits)
    card += [
        ("inf", inf),
        ("NaN", _nan_codes(fmt)),
        ("zero", zero),
        ("-0", hex_code(fmt.sign_mask, fmt.bits) if fmt.has_negative_zero else "none"),
        ("specials", f"{fmt.specials}: {_SPECIALS_NOTE[fmt.specials]}"),
        ("dynamic range", f"{math.log2(fmt.max / fmt.min_subnormal):.2f} binades  (log2(max / min subnormal))"),
    ]
    return card


def _int_card(fmt, style: str) -> list[tuple[str, str]]:
    kind = "two's complement" if fmt.signed else "unsigned"
    card = [
        ("layout", f"{layout(fmt)}: {fmt.bits}-bit {kind}" + (", symmetric (no most negative value)" if fmt.narrow else "")),
        ("range", f"[{fmt.min}, {fmt.max}]"),
        ("max", str(fmt.max)),
        ("min", str(fmt.min)),
    ]
    if fmt.signed:
        top = (1 << fmt.bits) - 1
        half = 1 << (fmt.bits - 1)
        card.append(("codes", f"{hex_code(0, fmt.bits)}..{hex_code(half - 1, fmt.bits)} are 0..{fmt.max}, "
                     f"{hex_code(half, fmt.bits)}..{hex_code(top, fmt.bits)} are {-half}..-1"
                     + (f" ({hex_code(half, fmt.bits)} is never produced)" if fmt.narrow else "")))
    card += [
        ("rounding", "by the rounding mode, then clamped to the range"),
        ("dynamic range", f"{math.log2(fmt.max):.2f} binades  (log2(max / 1))" if fmt.max > 1 else "0 binades"),
    ]
    return card


def _codebook_card(fmt, style: str) -> list[tuple[str, str]]:
    values = fmt.values()
    nonzero = [abs(v) for v in values if v != 0]
    return [
        ("layout", f"{fmt.bits}-bit index into a table of {len(values)} values"),
        ("max", format_value(fmt.max, style)),
        ("values", ", ".join(format_value(v, style) for v in values)),
        ("dynamic range", f"{math.log2(fmt.max / min(nonzero)):.2f} binades  (log2(max / smallest non-zero))"),
    ]


def _log_card(fmt, style: str) -> list[tuple[str, str]]:
    """The fields of ``numfmt info`` for a log format (after name, aliases, kind and bits)."""
    sign = f"sign {int(fmt.signed)} + " if fmt.signed else "no sign, "
    top = (1 << fmt.exp_bits) - 1
    base = "2" if fmt.root == 1 else "sqrt(2)"
    power = "2**e" if fmt.root == 1 else "2**(e/2)"
    return [
        ("layout", f"{fmt.describe_layout()}: {sign}exponent field {fmt.exp_bits} = {fmt.bits} bits"),
        ("values", f"0 and {'±' if fmt.signed else ''}{base}**e for e = {fmt.emin} .. {fmt.emax}"),
        ("codes", f"field 0 is zero; field F = 1..{top} is {power} with e = F - {fmt.bias}"),
        ("max", f"{format_value(fmt.max, style)}  ({base}**{fmt.emax})"),
        ("min", f"{format_value(fmt.min_normal, style)}  ({base}**{fmt.emin}, the smallest positive value)"),
        ("inf", "none"),
        ("NaN", "none (encode gives +0 for NaN)"),
        ("zero", hex_code(0, fmt.bits)),
        ("-0", hex_code(fmt.sign_mask, fmt.bits) if fmt.signed else "none"),
        ("rounding", "linear-domain modes (default nearest_even) and nearest_log"
                     + ("; stochastic" if fmt.stochastic_rounding else "")),
        ("dynamic range", f"{(fmt.emax - fmt.emin) / fmt.root:.2f} binades  (log2(max / min))"),
    ]
