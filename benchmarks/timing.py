"""The benchmarks' one timing loop, one Markdown table writer and one report format.

Timing: every case is run ``warmup`` times first (compilation, caches; the last
warm-up output goes to the case's ``check``, so no case runs an extra time for an
agreement check), then all cases are timed round-robin, one run of each per
repetition, so that a shared machine's changing load moves all of them alike. A JAX
output is waited for with ``jax.block_until_ready``; a case with its own ``timer``
(``torch.cuda`` events, say) measures itself. Times are seconds; tables give medians
(and minima where a script says so).

Report: a script's header lines (machine, input), its tables and notes, printed as
Markdown and, with ``--out DIR``, written to ``DIR/<name>.md`` and ``DIR/<name>.json``
(the raw times too), so that a GPU run's tables can be copied back.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import jax

# The scripts run as `python benchmarks/<script>.py`: import numfmt from this checkout,
# not from wherever else it is installed.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


def on_gpu() -> bool:
    """Whether JAX's default device is a GPU (CUDA or ROCm)."""
    return jax.default_backend() in ("gpu", "cuda", "rocm")


@dataclasses.dataclass
class Case:
    """One thing to time: ``fn(*args)``.

    ``timer(fn, args)``, if given, runs it once and returns its seconds (for work JAX
    does not see, such as a torch CUDA kernel). ``check(output)``, if given, is called
    once with the last warm-up output; its result is kept as ``Timing.check``.
    """

    fn: Callable
    args: tuple = ()
    timer: Callable | None = None
    check: Callable | None = None


@dataclasses.dataclass
class Timing:
    """A case's seconds per repetition, or the error that stopped it (a result to report)."""

    times: list = dataclasses.field(default_factory=list)
    error: str | None = None
    check: Any = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)


def wall_timer(fn, args) -> float:
    """Seconds of one ``fn(*args)``, its JAX output waited for."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t0


def _short_error(exc: Exception) -> str:
    msg = str(exc).strip()
    return f"{type(exc).__name__}: {msg.splitlines()[0] if msg else ''}"[:200]


def round_robin(cases: dict, reps: int, warmup: int = 2) -> dict:
    """``{name: Timing}`` for ``{name: Case}``: warm-ups, then ``reps`` round-robin repetitions."""
    out, live = {}, {}
    for name, case in cases.items():
        out[name] = res = Timing()
        result = None
        try:
            for _ in range(max(warmup, 1)):
                result = case.fn(*case.args)
                jax.block_until_ready(result)
            if case.check is not None:
                res.check = case.check(result)
            del result
            live[name] = case
        except Exception as exc:  # noqa: BLE001 - a case failing (a competitor's compile error) is a result
            res.error = _short_error(exc)
    for _ in range(reps):
        for name, case in live.items():
            out[name].times.append((case.timer or wall_timer)(case.fn, case.args))
    return out


def ratio(t: Timing | None, base: Timing, stat: str = "median") -> str:
    """``t / base`` by a statistic (``"median"`` or ``"min"``) as a cell: n/a, fails, or 2 decimals."""
    if t is None:
        return "n/a"
    if not t.ok:
        return "fails"
    return f"{getattr(t, stat) / getattr(base, stat):.2f}"


def ms(t: Timing | None, stat: str = "median", digits: int = 2) -> str:
    """A time in milliseconds as a cell."""
    if t is None:
        return "n/a"
    if not t.ok:
        return "fails"
    return f"{1e3 * getattr(t, stat):.{digits}f}"


def markdown_table(head, rows, align: str | None = None) -> str:
    """A Markdown table with padded columns; ``align`` is one of "l" / "r" per column (default: first l, rest r)."""
    head = [str(h) for h in head]
    rows = [[str(c) for c in r] for r in rows]
    align = align or "l" + "r" * (len(head) - 1)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(r):
        return "| " + " | ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(r, widths, align)) + " |"

    rule = "| " + " | ".join("-" * (w - 1) + ":" if a == "r" else "-" * w for w, a in zip(widths, align)) + " |"
    return "\n".join([line(head), rule, *(line(r) for r in rows)])


class Report:
    """A benchmark's output: header lines, tables and notes; Markdown on stdout, and files with ``--out``."""

    def __init__(self, name: str, *header: str):
        self.name = name
        self.parts: list[str] = [f"# {h}" for h in header]
        self.data: dict = {"name": name, "header": list(header), "tables": [], "notes": [], "times": {}}

    def table(self, title: str, head, rows, align: str | None = None):
        if title:
            self.parts.append(title)
        self.parts.append(markdown_table(head, rows, align))
        self.data["tables"].append({"title": title, "head": list(head), "rows": [list(map(str, r)) for r in rows]})

    def note(self, text: str):
        self.parts.append(text)
        self.data["notes"].append(text)

    def times(self, label: str, timings: dict):
        """Keep the raw seconds of ``{name: Timing}`` (names made strings) for the JSON file."""
        self.data["times"][label] = {
            " / ".join(map(str, k)) if isinstance(k, tuple) else str(k): (t.times if t.ok else t.error)
            for k, t in timings.items()
        }

    def markdown(self) -> str:
        return "\n\n".join(self.parts) + "\n"

    def emit(self, out_dir: str | None = None):
        """Print the Markdown; with ``out_dir``, also write ``<name>.md`` and ``<name>.json`` there."""
        text = self.markdown()
        print(text, end="", flush=True)
        if out_dir:
            os.makedirs(out_dir, exist_ok=True)
            with open(os.path.join(out_dir, f"{self.name}.md"), "w") as f:
                f.write(text)
            with open(os.path.join(out_dir, f"{self.name}.json"), "w") as f:
                json.dump(self.data, f, indent=1)


def add_common_args(parser, reps: int):
    """The flags every benchmark script takes: ``--reps``, ``--short`` and ``--out``."""
    parser.add_argument("--reps", type=int, default=None, help=f"timed repetitions (default {reps}; --short: fewer)")
    parser.add_argument("--short", action="store_true", help="fewer repetitions (run_all --short)")
    parser.add_argument("--out", default=None, help="also write <name>.md and <name>.json into this folder")
    parser.set_defaults(default_reps=reps)


def reps_of(args) -> int:
    """``--reps`` if given, else the script's default, else 5 with ``--short``."""
    if args.reps is not None:
        return args.reps
    return min(5, args.default_reps) if args.short else args.default_reps
