"""Rounding modes: their names, and the checks made at the API boundary.

The modes follow IEEE 754-2019 §4.3 (the four directed / nearest attributes plus
roundTiesToAway), round-to-odd (Boldo & Melquiond, "Emulation of FMA and correctly
rounded sums", IEEE TC 2008), and stochastic rounding (see ``numfmt.codec``).
"""

from __future__ import annotations

DETERMINISTIC_MODES = ("nearest_even", "nearest_away", "toward_zero", "up", "down", "odd")
ROUNDING_MODES = DETERMINISTIC_MODES + ("stochastic",)

_ALIASES = {
    "rne": "nearest_even",
    "nearest": "nearest_even",
    "rna": "nearest_away",
    "rtz": "toward_zero",
    "truncate": "toward_zero",
    "rtp": "up",
    "ceil": "up",
    "rtn": "down",
    "floor": "down",
    "rto": "odd",
    "sr": "stochastic",
}


def check_rounding(rounding) -> str:
    """Return the canonical name of ``rounding``; raise ValueError naming the known modes."""
    if not isinstance(rounding, str):
        raise TypeError(f"rounding must be a str, one of {ROUNDING_MODES}, got {rounding!r}")
    name = _ALIASES.get(rounding.strip().lower(), rounding.strip().lower())
    if name not in ROUNDING_MODES:
        raise ValueError(f"unknown rounding {rounding!r}: expected one of {', '.join(ROUNDING_MODES)}")
    return name
