"""``numfmt verify module:function FMT``: check a converter against the exact oracle.

    numfmt verify mypkg.convert:to_e4m3 e4m3
    numfmt verify mypkg.convert:to_e5m2 e5m2 --source fp16 --exhaustive
    numfmt verify mypkg.convert:to_e4m3_sat e4m3 --saturate --rounding toward_zero

``module:function`` names a function from a 1-D NumPy array of source floats to the
codes of the format (see :func:`numfmt.testing.verify`). The current directory is on
the import path, as with ``python -m``. Exit status (:data:`EXIT_STATUS`): 0 when the
function matches, 1 on a mismatch (the message gives the simplest failing input), 2
for a usage error (a module or function that cannot be imported, an unknown format or
rounding, a source too wide for ``--exhaustive``, a function that returns no codes),
3 when the function raises an exception (reported in one message, no traceback).
"""

from __future__ import annotations

import importlib
import os
import sys

from numfmt.cliargs import CLIError, get_format, get_rounding

HELP = "check a converter function (module:function) against the exact rounding oracle"

#: The exit statuses of ``numfmt verify``.
EXIT_STATUS = {"match": 0, "mismatch": 1, "usage error": 2, "candidate raised": 3}


def add_arguments(parser) -> None:
    parser.add_argument("candidate", help="module:function, a function from an array of floats to codes")
    parser.add_argument("format", help="the target format, e.g. e4m3")
    parser.add_argument("--rounding", "-r", default="nearest_even",
                        help="nearest_even (default), nearest_away, toward_zero, up, down or odd")
    parser.add_argument("--saturate", action="store_true", help="the function saturates past max")
    parser.add_argument("--source", default="fp32", choices=["fp16", "bf16", "fp32"],
                        help="the input type (default fp32)")
    parser.add_argument("--exhaustive", action="store_true",
                        help="check every input of a 16-bit source (--source fp16 or bf16)")
    parser.add_argument("--max-examples", type=int, default=None, help="random batches to draw (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random draws (default 0)")


def load_candidate(spec: str):
    """The function named ``module:function`` (``function`` may be dotted); CLIError if there is none."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise CLIError(f"candidate must be written module:function (e.g. mypkg.convert:to_e4m3), got {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does, so local modules import
    try:
        obj = importlib.import_module(module_name)
    except Exception as err:  # an import error, or any error the module raises on import
        raise CLIError(f"cannot import module {module_name!r}: {type(err).__name__}: {err}") from err
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise CLIError(f"module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise CLIError(f"{spec} is not a function (got {type(obj).__name__})")
    return obj


def run(args) -> int | None:
    # needs hypothesis (the test extra): imported only when the subcommand runs
    from numfmt.testing.verify import CandidateError, Mismatch, verify

    fmt = get_format(args.format)
    rounding = get_rounding(args.rounding, fmt)
    candidate = load_candidate(args.candidate)
    try:
        report = verify(candidate, fmt, rounding, saturate=args.saturate, source=args.source,
                        exhaustive=args.exhaustive, max_examples=args.max_examples, seed=args.seed,
                        name=args.candidate)
    except Mismatch as err:
        print(err)
        return EXIT_STATUS["mismatch"]
    except CandidateError as err:
        print(f"numfmt verify: {err}", file=sys.stderr)
        return EXIT_STATUS["candidate raised"]
    print(report)
    return None
