"""Run every benchmark script and print its output under a heading, for docs/benchmarks.md.

Each section gives the command, the UTC date and time, and the load average before
and after, because this page's machines are often shared. Times are only comparable
within one script's table, never across sections or machines.

Usage::

    python benchmarks/run_all.py                 # codec, modes, stochastic, scaled, matmul
    python benchmarks/run_all.py --exhaustive    # also the 2**32-input ml_dtypes check (minutes)
    python benchmarks/run_all.py --only codec scaled
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

BENCHMARKS = {
    "codec": ["bench_codec.py"],
    "modes": ["bench_codec.py", "--modes"],
    "stochastic": ["bench_stochastic.py", "--reps", "15"],
    "scaled": ["bench_scaled.py"],
    "matmul": ["bench_matmul.py"],
    "exhaustive": ["exhaustive_vs_ml_dtypes.py"],
}


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), help="run only these")
    parser.add_argument("--exhaustive", action="store_true", help="include the exhaustive ml_dtypes check")
    args = parser.parse_args(argv)
    names = args.only or [n for n in BENCHMARKS if n != "exhaustive" or args.exhaustive]
    status = 0
    for name in names:
        script, *flags = BENCHMARKS[name]
        cmd = [sys.executable, os.path.join(HERE, script), *flags]
        shown = " ".join(["python", f"benchmarks/{script}", *flags])
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        print(f"## {name}\n\nCommand: `{shown}`. Run {now}, load average {_load()} (1, 5, 15 min).\n", flush=True)
        t0 = time.perf_counter()
        # XLA's compile errors (an expected `fails` cell) print stack traces on stderr.
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=False)
        print(proc.stdout.rstrip())
        print(f"\n(exit status {proc.returncode}, {time.perf_counter() - t0:.0f} s, load after: {_load()})\n", flush=True)
        status = status or proc.returncode
    return status


if __name__ == "__main__":
    sys.exit(main())
