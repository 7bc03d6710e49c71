"""Which instructions of a compiled XLA module produce arrays of a given size (for tests
that check that a computation does not write an intermediate array as large as its input)."""

from __future__ import annotations

import math
import re

# Instructions that name an existing buffer or pass one along rather than write one.
PLUMBING = ("parameter", "bitcast", "get-tuple-element", "tuple")


def entry_arrays(hlo_text: str, sizes) -> list[tuple[str, str]]:
    """``(opcode, dtype)`` of each instruction of the ENTRY computation of ``hlo_text``
    (``compiled.as_text()``) whose result is, or holds, an array with a number of elements
    in ``sizes``; :data:`PLUMBING` instructions are left out."""
    sizes = set(sizes)
    entry = hlo_text.split("\nENTRY")[1].split("\n}\n")[0]
    found = []
    for op_type, op in re.findall(r"= (\S+?) ([a-z][\w-]*)\(", entry):
        if op in PLUMBING:
            continue
        for dt, dims in re.findall(r"(\w+)\[([\d,]*)\]", op_type):
            if dims and math.prod(int(d) for d in dims.split(",")) in sizes:
                found.append((op, dt))
    return found
