"""What the ``numfmt`` subcommands share: the user-error exception and the checks of format and rounding names.

A module of its own, below :mod:`numfmt.cli`, so that the modules holding subcommands
(:mod:`numfmt.verify_cli`, :mod:`numfmt.study`) use it without importing the command
line that registers them.
"""

from __future__ import annotations

from numfmt import formats as _formats
from numfmt.rounding import check_rounding, modes_of

__all__ = ["CLIError", "get_format", "get_rounding"]


class CLIError(Exception):
    """A user error: printed as ``numfmt: error: ...`` on stderr, exit status 2."""


def get_format(name: str):
    """The format called ``name``; a CLIError with the close names when there is none."""
    try:
        return _formats.get(name)
    except ValueError as exc:
        if str(exc).startswith(f"unknown format {name!r}:"):  # a known kind of name, out of range (int40)
            raise CLIError(str(exc)) from None
        close = _formats.close_names(name)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise CLIError(f"unknown format {name!r}.{hint} ('numfmt list' shows every format)") from None
    except TypeError:
        raise CLIError(f"unknown format {name!r} ('numfmt list' shows every format)") from None


def get_rounding(name: str, fmt=None) -> str:
    """The canonical name of the rounding mode ``name`` (for ``fmt``, when given); a CLIError listing the modes."""
    try:
        return check_rounding(name, fmt)
    except (ValueError, TypeError):
        # log formats have modes of their own
        raise CLIError(f"unknown rounding {name!r}: expected one of {', '.join(modes_of(fmt))}") from None
