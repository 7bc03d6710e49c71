"""Run every benchmark script on whatever device JAX has and print its tables under headings.

Each section gives the command, the UTC date and time, and the load average before
and after, because this page's machines are often shared; each script's own header
names the device (CPU model, or GPU model, driver and CUDA), the backend and the
versions of jax and jaxlib. Times are only comparable within one script's table, never
across sections or machines. Sizes follow the backend (bigger on a GPU, so that times
are not launch overhead): see each script's docstring.

Usage::

    python benchmarks/run_all.py                       # codec, modes, stochastic, scaled, matmul
    python benchmarks/run_all.py --short               # fewer repetitions: minutes, not tens of minutes
    python benchmarks/run_all.py --short --out DIR     # also DIR/<name>.md, .json, and DIR/run_all.md
    python benchmarks/run_all.py --only codec scaled
    python benchmarks/run_all.py --only comparison     # the library comparison of docs/comparison.md
    python benchmarks/run_all.py --exhaustive          # also the 2**32-input ml_dtypes check (minutes)
    python benchmarks/run_all.py --smoke               # tiny sizes, one repetition: do the scripts run?

On a GPU: ``JAX_PLATFORMS=cuda python benchmarks/run_all.py --short --out $OUT``
(benchmarks/README.md).
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
    "stochastic": ["bench_stochastic.py"],
    "scaled": ["bench_scaled.py"],
    "matmul": ["bench_matmul.py"],
    "comparison": ["bench_comparison.py"],
    "exhaustive": ["exhaustive_vs_ml_dtypes.py"],
}
OPT_IN = ("comparison", "exhaustive")  # run only when asked for
# --smoke: tiny sizes and one repetition, to check that every script runs (no figures).
SMOKE = {
    "codec": ["--log2n", "12"], "modes": ["--log2n", "12"], "stochastic": ["--log2n", "12"],
    "scaled": ["--n", "256", "--gfloat-blocks", "4"], "matmul": ["--size", "256", "--emulated-size", "128"],
    "comparison": ["--log2n", "12"], "exhaustive": ["--chunks", "1"],
}  # fmt: skip
TAKES_COMMON_FLAGS = {"codec", "modes", "stochastic", "scaled", "matmul", "comparison"}


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), help="run only these")
    parser.add_argument("--exhaustive", action="store_true", help="include the exhaustive ml_dtypes check")
    parser.add_argument("--short", action="store_true", help="fewer repetitions in every script (same sizes)")
    parser.add_argument("--out", default=None, help="write each script's .md and .json, and run_all.md, here")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repetition: checks that the scripts run")
    parser.add_argument("--timeout", type=float, default=None, help="seconds allowed to each script (default none)")
    args = parser.parse_args(argv)
    names = args.only or [n for n in BENCHMARKS if n not in OPT_IN or (n == "exhaustive" and args.exhaustive)]
    if args.out:
        os.makedirs(args.out, exist_ok=True)
    sections, status, t_all = [], 0, time.perf_counter()
    for name in names:
        script, *flags = BENCHMARKS[name]
        if args.smoke:
            flags += SMOKE[name] + (["--reps", "1"] if name in TAKES_COMMON_FLAGS else [])
        if name in TAKES_COMMON_FLAGS:
            flags += ["--short"] * args.short + (["--out", args.out] if args.out else [])
        cmd = [sys.executable, os.path.join(HERE, script), *flags]
        shown = " ".join(["python", f"benchmarks/{script}", *(f for f in flags if f not in ("--out", args.out))])
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        head = f"## {name}\n\nCommand: `{shown}`. Run {now}, load average {_load()} (1, 5, 15 min).\n"
        print(head, flush=True)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=args.timeout)
            out, err, code = proc.stdout, proc.stderr, proc.returncode
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            err, code = f"timed out after {args.timeout:.0f} s", 124
        print(out.rstrip())
        tail = f"\n(exit status {code}, {time.perf_counter() - t0:.0f} s, load after: {_load()})\n"
        if code != 0:
            # XLA's compile errors (an expected `fails` cell) print stack traces on stderr:
            # shown only when the script itself failed.
            tail += "\nstderr (last lines):\n\n```\n" + "\n".join(err.rstrip().splitlines()[-20:]) + "\n```\n"
        print(tail, flush=True)
        sections.append(f"{head}\n{out.rstrip()}\n{tail}")
        if args.out:
            with open(os.path.join(args.out, f"{name}.stderr.txt"), "w") as f:
                f.write(err)
        status = status or code
    total = f"All {len(names)} sections: {time.perf_counter() - t_all:.0f} s wall time."
    print(total)
    if args.out:
        with open(os.path.join(args.out, "run_all.md"), "w") as f:
            f.write("\n".join(sections) + "\n" + total + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
