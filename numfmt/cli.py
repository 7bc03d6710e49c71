"""The ``numfmt`` command line: look formats up, list their codes, encode and decode.

    numfmt list                       every registered format, one line each
    numfmt info e4m3                  one format's card: layout, range, specials
    numfmt values e2m1                every code of a format of at most 8 bits
    numfmt encode e4m3 464 465        round values to codes (--rounding, --saturate)
    numfmt decode e5m2 0x7c 124       codes to values

Values print as ``repr`` of the float64 value (the shortest decimal that reads back
to the same float, so it names the value exactly), ``--hex`` as
``float.hex`` and ``--exact`` as the exact decimal expansion. Inputs and outputs go
through float64 (the CLI runs the codec with ``jax_enable_x64``), so a decimal input
is rounded once, straight to the target format, never through float32.

Every subcommand is registered the one way, with the :func:`command` decorator: this
module's own below, and those of :mod:`numfmt.study` and :mod:`numfmt.verify_cli`
(which import nothing from here) at the end of this module. A new subcommand is a
function registered with :func:`command`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from collections.abc import Callable

import numpy as np

import numfmt as nf
from numfmt import formats as _formats
from numfmt import study, verify_cli
from numfmt.bitlayout import x64
from numfmt.cliargs import CLIError, get_format, get_rounding
from numfmt.describe import (
    LIST_HEADERS,
    LIST_RIGHT,
    bin_code,
    card,
    format_value,
    hex_code,
    is_int,
    list_row,
    table,
)
from numfmt.rounding import ROUNDING_MODES

__all__ = ["CLIError", "Command", "command", "commands", "get_format", "get_rounding", "main"]

#: The widest format whose every code ``numfmt values`` lists.
MAX_VALUES_BITS = 8


@dataclasses.dataclass(frozen=True)
class Command:
    """A subcommand: its name, one-line help, how it adds its arguments, and its body."""

    name: str
    help: str
    run: Callable[[argparse.Namespace], int | None]
    arguments: Callable[[argparse.ArgumentParser], None] | None = None


_COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, arguments: Callable[[argparse.ArgumentParser], None] | None = None):
    """Register the decorated function ``run(args) -> exit status`` as subcommand ``name``.

    ``arguments(parser)`` adds the subcommand's own arguments. ``run`` reports user
    errors by raising :class:`CLIError`; returning None means success.
    """

    def register(run):
        if name in _COMMANDS and _COMMANDS[name].run is not run:
            raise ValueError(f"the subcommand {name!r} is already registered")
        _COMMANDS[name] = Command(name, help, run, arguments)
        return run

    return register


def commands() -> list[str]:
    """The names of the registered subcommands."""
    return list(_COMMANDS)


# ---- shared helpers ---------------------------------------------------------------------


def decode_codes(codes: list[int], fmt) -> list[float]:
    """Decode ``codes`` with :func:`numfmt.decode` to float64 values."""
    import jax.numpy as jnp

    with x64():
        out = nf.decode(np.asarray(codes, dtype=fmt.code_dtype), fmt, dtype=jnp.float64)
        return [float(v) for v in np.asarray(out).reshape(-1)]


def parse_code(text: str, fmt) -> int:
    """A code written in hex (``0x7e``), binary (``0b0111``), octal (``0o17``) or decimal."""
    try:
        code = int(text, 0)
    except ValueError:
        try:
            code = int(text, 10)  # "010": int(.., 0) refuses leading zeros
        except ValueError:
            raise CLIError(f"code {text!r} is not an integer (write it in hex as 0x.. or in decimal)") from None
    top = (1 << fmt.bits) - 1
    if not 0 <= code <= top:
        raise CLIError(
            f"code {text!r} does not fit in {fmt.name}'s {fmt.bits} bits "
            f"(codes are {hex_code(0, fmt.bits)}..{hex_code(top, fmt.bits)}, 0..{top})"
        )
    return code


# A C99 hex float needs its 0x: bare hex digits ("ff", "e5", "dead") are not numbers
# (float.fromhex would take them), and hex codes belong to 'numfmt decode'.
_HEX_FLOAT = re.compile(r"^\s*[+-]?0x", re.IGNORECASE)


def parse_number(text: str) -> float:
    """A real number: decimal (``1e-3``, ``-0``), ``inf``, ``nan`` or a C99 hex float (``0x1.8p3``)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        if _HEX_FLOAT.match(text):
            return float.fromhex(text)
    except (ValueError, OverflowError):
        pass
    raise CLIError(_not_numbers([text]))


def _not_numbers(texts) -> str:
    these = ", ".join(repr(t) for t in texts)
    return (f"{these} {'is not a number' if len(texts) == 1 else 'are not numbers'} (examples: 0.1, -2.5e3, inf, "
            "nan, and hex floats with their 0x: 0x1.8p3); to read a code, use 'numfmt decode FORMAT 0x..'")


def parse_numbers(texts) -> list[float]:
    """:func:`parse_number` of each text; one CLIError naming every text that is not a number."""
    values, bad = [], []
    for text in texts:
        try:
            values.append(parse_number(text))
        except CLIError:
            bad.append(text)
    if bad:
        raise CLIError(_not_numbers(bad))
    return values


def _value_style(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--hex", dest="style", action="store_const", const="hex", default="repr",
                       help="show values as float.hex (0x1.cp+8)")
    group.add_argument("--exact", dest="style", action="store_const", const="exact",
                       help="show values as their exact decimal expansion")


# Values such as -inf, -1e5 and -0x1p3 are numbers, not options (argparse on its own
# only takes -1 and -1.5 for numbers).
_NEGATIVE_NUMBER = re.compile(r"^-(\d|\.\d|inf|nan|0x)", re.IGNORECASE)


def _accept_negative_numbers(parser: argparse.ArgumentParser) -> None:
    parser._negative_number_matcher = _NEGATIVE_NUMBER  # read by argparse's option parsing


# ---- list ---------------------------------------------------------------------------------


def _list_arguments(parser):
    _value_style(parser)


@command("list", "every registered format and its key properties", _list_arguments)
def _list(args) -> None:
    rows = [list_row(_formats.get(name), args.style) for name in _formats.names()]
    print(table(LIST_HEADERS, rows, right=LIST_RIGHT))


# ---- info ---------------------------------------------------------------------------------


def _info_arguments(parser):
    parser.add_argument("format", help="a format name or alias, e.g. e4m3, bf16, int8")
    _value_style(parser)


@command("info", "one format's card: bit layout, range, specials", _info_arguments)
def _info(args) -> None:
    fields = card(get_format(args.format), args.style)
    width = max(len(key) for key, _ in fields)
    for key, value in fields:
        print(f"{key.ljust(width)}  {value}")


# ---- values -------------------------------------------------------------------------------


def _values_arguments(parser):
    parser.add_argument("format", help=f"a format of at most {MAX_VALUES_BITS} bits")
    _value_style(parser)


@command("values", f"every code of a format of at most {MAX_VALUES_BITS} bits with its value", _values_arguments)
def _values(args) -> None:
    fmt = get_format(args.format)
    if fmt.bits > MAX_VALUES_BITS:
        raise CLIError(
            f"'values' lists formats of at most {MAX_VALUES_BITS} bits; {fmt.name} has {fmt.bits} "
            f"({2 ** fmt.bits} codes). Use 'numfmt decode {fmt.name} CODE...' for single codes."
        )
    codes = list(range(1 << fmt.bits))
    values = decode_codes(codes, fmt)
    rows = [[hex_code(c, fmt.bits), bin_code(c, fmt.bits), format_value(v, args.style, is_int(fmt))]
            for c, v in zip(codes, values)]
    print(table(["code", "bits", "value"], rows, right={2}))


# ---- encode / decode ----------------------------------------------------------------------


def _encode_arguments(parser):
    _accept_negative_numbers(parser)
    parser.add_argument("format", help="the target format")
    parser.add_argument("x", nargs="+", help="numbers: 0.1, -2.5e3, inf, nan, or hex floats such as 0x1.8p3")
    parser.add_argument("--rounding", "-r", default="nearest_even",
                        help=f"one of {', '.join(ROUNDING_MODES)} (default nearest_even)")
    parser.add_argument("--saturate", action="store_true", help="finite values past max become +-max")
    parser.add_argument("--seed", type=int, default=None, help="PRNG seed for --rounding stochastic (default 0)")
    parser.add_argument("--rbits", type=int, default=None, help="random bits that decide stochastic rounding")
    _value_style(parser)


@command("encode", "round numbers to codes of a format and show them", _encode_arguments)
def _encode(args) -> None:
    import jax
    import jax.numpy as jnp

    fmt = get_format(args.format)
    rounding = get_rounding(args.rounding, fmt)
    xs = parse_numbers(args.x)
    if rounding != "stochastic" and args.seed is not None:  # as nf.encode refuses rbits= (--rbits)
        raise CLIError(f"--seed is only used with --rounding stochastic, got --rounding {rounding}")
    with x64():
        key = jax.random.key(0 if args.seed is None else args.seed) if rounding == "stochastic" else None
        codes = nf.encode(jnp.asarray(np.asarray(xs, dtype=np.float64)), fmt, rounding,
                          key=key, rbits=args.rbits, saturate=args.saturate)
        codes = [int(c) for c in np.asarray(codes).reshape(-1)]
    values = decode_codes(codes, fmt)
    rows = [[text, hex_code(c, fmt.bits), bin_code(c, fmt.bits), format_value(v, args.style, is_int(fmt))]
            for text, c, v in zip(args.x, codes, values)]
    print(table(["x", "code", "bits", "value"], rows, right={0, 3}))


def _decode_arguments(parser):
    parser.add_argument("format", help="the format of the codes")
    parser.add_argument("code", nargs="+", help="codes in hex (0x7c), binary (0b0111) or decimal")
    _value_style(parser)


@command("decode", "show the values of codes of a format", _decode_arguments)
def _decode(args) -> None:
    fmt = get_format(args.format)
    codes = [parse_code(t, fmt) for t in args.code]
    values = decode_codes(codes, fmt)
    rows = [[hex_code(c, fmt.bits), bin_code(c, fmt.bits), format_value(v, args.style, is_int(fmt))]
            for c, v in zip(codes, values)]
    print(table(["code", "bits", "value"], rows, right={2}))


# ---- the subcommands defined in their own modules ----------------------------------------

command("study", study.HELP, study.add_arguments)(study.run_args)
command("verify", verify_cli.HELP, verify_cli.add_arguments)(verify_cli.run)


# ---- main ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``numfmt`` argument parser, with a subparser per registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="numfmt",
        description="Bit-exact number formats: list them, inspect one, encode and decode values.",
    )
    parser.add_argument("--version", action="version", version=f"numfmt {nf.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in _COMMANDS.values():
        child = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        if cmd.arguments is not None:
            cmd.arguments(child)
        child.set_defaults(_run=cmd.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse's usage errors (status 2), --help and --version (0)
        return exc.code if isinstance(exc.code, int) else 2
    if getattr(args, "_run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        status = args._run(args)
        sys.stdout.flush()
        return 0 if status is None else int(status)
    except CLIError as exc:
        print(f"numfmt: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, TypeError) as exc:  # bad input caught at the API boundary
        if os.environ.get("NUMFMT_DEBUG"):
            raise
        print(f"numfmt: error: {exc}", file=sys.stderr)
        return 2
    except NotImplementedError as exc:
        print(f"numfmt: error: not implemented yet{': ' + str(exc) if str(exc) else ''}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `numfmt values e4m3 | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
