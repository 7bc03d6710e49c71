"""``numfmt study``: the standard error study of number formats, in one command.

    numfmt study                          the full study of the default formats (< 2 min)
    numfmt study --quick                  a smaller run (< 20 s)
    numfmt study --formats e4m3,e2m1,int8 --out results/

It draws synthetic weight-like and activation-like tensors (Gaussian, Laplace,
log-uniform, heavy-tailed with outlier channels) and measures (the experiments are in
:mod:`numfmt.analysis.experiments`):

1. the format table;
2. the quantization error of every format under every rounding mode, and SQNR against
   the input's scale;
3. scaled against unscaled quantization, and MX / NVFP4 block scaling against one scale
   per tensor (with :mod:`numfmt.scaled`);
4. the error of dot products (matmul entries) against their length K for several
   accumulator formats, with the deterministic and probabilistic bounds;
5. the bias of stochastic rounding, and stagnation under round to nearest.

It writes ``report.md``, PNG figures and ``results.json`` (every number) to ``--out``
and prints a summary; docs/study.md explains how to read them. Bad ``--formats`` or an
unwritable ``--out`` exit with status 2 and a message.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time

import numpy as np

from numfmt import formats as _formats
from numfmt.analysis import experiments as _exp
from numfmt.analysis.experiments import DEFAULT_FORMATS, QUICK_FORMATS
from numfmt.analysis.lowbit_study import section_lowbit
from numfmt.analysis.report import SCHEME_NAMES, summary, write_json, write_report

__all__ = [
    "DEFAULT_FORMATS",
    "FIGURES",
    "QUICK_FORMATS",
    "StudyError",
    "add_arguments",
    "add_parser",
    "check_out",
    "main",
    "parse_formats",
    "run_args",
    "run_study",
]

HELP = "run the standard error study of number formats; writes report.md, figures and results.json"

#: The figures the study writes (when matplotlib is installed), with their captions.
FIGURES = {
    "value_grid.png": "Where each format has values",
    "error_histogram.png": "Rounding error in ulps, by rounding mode",
    "sqnr_vs_scale.png": "SQNR against the input's scale (no scaling)",
    "scaled_vs_unscaled.png": "SQNR by element format and scaling scheme",
    "matmul_error_vs_k.png": "Dot-product error against K, with the bounds",
    "stagnation.png": "Stagnation: round to nearest against stochastic rounding",
    "sr_bias.png": "Mean rounding error (bias) in ulps",
}


class StudyError(Exception):
    """A user error (bad --formats, unwritable --out): exit status 2."""


class Progress:
    """Progress lines on stderr; on a terminal a counter rewrites itself in place."""

    def __init__(self, stream=None, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.start = time.perf_counter()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def log(self, msg: str) -> None:
        if not self.quiet:
            print(f"[{self.elapsed():5.1f}s] {msg}", file=self.stream, flush=True)

    def __call__(self, label: str, done: int, total: int) -> None:
        if self.quiet or total <= 1:
            return
        now = time.perf_counter()
        if 0 < done < total and now - self._last < (0.25 if self.tty else 3.0):
            return
        self._last = now
        line = f"[{self.elapsed():5.1f}s]     {label}: {done}/{total}"
        if self.tty:
            print("\r" + line, end="\n" if done == total else "", file=self.stream, flush=True)
        elif done > 0:
            print(line, file=self.stream, flush=True)


# ---- checks -----------------------------------------------------------------------------------


def parse_formats(items) -> list:
    """``"e4m3,e2m1 int8"`` (or a list of such strings) -> formats; StudyError naming unknown ones."""
    items = [items] if isinstance(items, str) else list(items)
    names = [n for item in items for n in str(item).replace(",", " ").split() if n]
    if not names:
        raise StudyError("--formats is empty: give format names such as e4m3,e2m1,int8 ('numfmt list' shows them)")
    out, bad = [], []
    for name in names:
        try:
            out.append(_formats.get(name))
        except (ValueError, TypeError):
            close = _formats.close_names(name)
            bad.append(f"{name!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
    if bad:
        raise StudyError(f"unknown format{'s' if len(bad) > 1 else ''} in --formats: {', '.join(bad)}; "
                         "'numfmt list' shows every format")
    return out


def check_out(path) -> str:
    """Create the directory ``path`` and check that it can be written to; StudyError otherwise."""
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise StudyError(f"--out {path} exists and is not a directory")
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".numfmt-write-test-"):
            pass
    except OSError as exc:
        raise StudyError(f"cannot write to --out {path}: {exc.strerror or exc}") from None
    return path


# ---- running it -------------------------------------------------------------------------------


def run_study(formats=None, *, quick: bool = False, out="numfmt-study", seed: int = 0, quiet: bool = False) -> dict:
    """Run the study and write its files to ``out``; returns ``{"results": ..., "files": [...]}``.

    ``formats``: formats or names (default :data:`DEFAULT_FORMATS`, or :data:`QUICK_FORMATS`
    with ``quick``). Raises :class:`StudyError` for unknown formats or an unwritable ``out``.
    """
    if formats is not None:
        items = [formats] if isinstance(formats, (str, _formats.Format)) else list(formats)
        formats = [g for f in items for g in ([f] if isinstance(f, _formats.Format) else parse_formats(f))]
    out = check_out(out)
    p = _exp.plan(formats, quick, seed)
    prog = Progress(quiet=quiet)
    prog.log(f"numfmt study{' --quick' if quick else ''}: {len(p.formats)} formats "
             f"({', '.join(f.name for f in p.formats)}) -> {out}")
    timings = {}

    def timed(label, fn, *args):
        prog.log(label)
        t = time.perf_counter()
        r = fn(*args)
        timings[label] = round(time.perf_counter() - t, 3)
        return r

    from numfmt.analysis.tables import format_table

    names, X = _exp.datasets(p)
    results = {"config": _config(p, names, X)}
    results["format_table"] = timed("1/5 format table", format_table, list(p.formats))
    results["quantization"] = timed("2/5 quantization error of every format x rounding mode",
                                    _exp.section_quantization, p, names, X, prog)
    results["range"] = timed("2/5 SQNR against input scale", _exp.section_range, p, X.shape, prog)
    results["scaled"] = timed("3/5 scaled against unscaled; MX and NVFP4 against per-tensor",
                              _exp.section_scaled, p, names, X, results["quantization"]["rows"], prog)
    results["matmul"] = timed("4/5 dot-product error against K, per accumulator", _exp.section_matmul, p, prog)
    results["stochastic"] = timed("5/5 stochastic rounding: bias and stagnation", _exp.section_stochastic,
                                  p, X.shape, prog)
    results["lowbit"] = timed("binary, ternary and log4 weights against int2, int4, nf4", section_lowbit,
                              p, names, X, prog)
    files, note = timed("figures", write_figures, results, out)
    results["figure_note"] = note
    results["timings_s"] = timings
    results["config"]["seconds"] = round(prog.elapsed(), 2)
    files.append(write_report(results, files, out))
    files.append(write_json(results, out))
    prog.log(f"done in {prog.elapsed():.1f} s")
    print(summary(results, out, files), flush=True)
    return {"results": results, "files": files}


def _config(p, names, X) -> dict:
    import platform

    import jax

    import numfmt as nf

    return {
        "formats": [f.name for f in p.formats], "quick": p.quick, "seed": p.seed, "roundings": list(p.roundings),
        "datasets": names, "tensor_shape": list(X.shape[1:]), "scales": list(p.scales),
        "accumulators": [f"{a.name} (e{a.exp_bits}m{a.man_bits})" for a in p.accumulators],
        "k_max": p.k_max, "trials": p.trials, "schemes": list(p.schemes),
        "numfmt": nf.__version__, "jax": jax.__version__, "numpy": np.__version__,
        "python": platform.python_version(), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "backend": jax.default_backend(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


# ---- figures ----------------------------------------------------------------------------------


def write_figures(results, out) -> tuple[list, str | None]:
    """Draw every figure of :data:`FIGURES` into ``out``; returns (paths, note or None)."""
    try:
        from numfmt import plot
    except ImportError as exc:  # pragma: no cover - plot imports matplotlib lazily
        return [], str(exc)
    try:
        plot.new_figure()
    except ImportError as exc:
        return [], f"{exc}; the report has its tables but no figures"
    paths = []

    def save(ax_or_fig, name):
        path = os.path.join(out, name)
        plot.save(ax_or_fig, path)
        paths.append(path)

    cfg = results["config"]
    save(plot.value_grid(cfg["formats"]), "value_grid.png")

    q = results["quantization"]
    if q["histogram"]:
        save(plot.error_histogram(q["histogram"], range=(-1, 1), bins=80, xlabel="signed rounding error (ulp of the format at x)",
                                  title=f"{q['histogram_format']}: rounding error on {cfg['datasets'][0]}, "
                                        "per rounding mode"), "error_histogram.png")

    save(plot.sqnr_vs_scale(results["range"]), "sqnr_vs_scale.png")

    s = results["scaled"]
    if s["elements"]:
        fig, axes = plot.new_figure(2, 1, width=max(9.0, 1.5 * len(s["elements"])), height=7.5)
        for ax, ds in zip(axes, ("weight/gaussian", "activation/heavy_tailed")):
            groups = {f: {SCHEME_NAMES[r["scheme"]]: r.get("sqnr_db") for r in s["rows"]
                          if r.get("dataset") == ds and r["format"] == f} for f in s["elements"]}
            plot.bars(groups, ylabel="SQNR (dB)", ax=ax, value_format=".1f", title=f"{ds}: SQNR by element format and scaling scheme "
                      "(higher is better)")
        save(fig, "scaled_vs_unscaled.png")

    m = results["matmul"]
    accs = list(dict.fromkeys(c["accumulator"] for c in m["curves"]))
    ncols = 2 if len(accs) > 1 else 1
    nrows = math.ceil(len(accs) / ncols)
    fig, axes = plot.new_figure(nrows, ncols, width=6.0 * ncols, height=4.3 * nrows)
    axes = np.atleast_1d(axes).ravel()
    for ax, acc in zip(axes, accs):
        curves = {c["rounding"]: c for c in m["curves"] if c["accumulator"] == acc}
        rn, sr = curves["nearest_even"], curves["stochastic"]
        bounds = {
            "γ_n, nearest (deterministic)": (rn["deterministic"], {"color": "0.1", "linestyle": "--"}),
            "λ√n·u, nearest (model, 99%)": (rn["probabilistic"], {"color": "C0", "linestyle": "--"}),
            "λ√n·2u, stochastic (theorem, 99%)": (sr["probabilistic"], {"color": "C1", "linestyle": ":"}),
        }
        plot.error_vs_n(m["n"], {"nearest_even": rn["trials_rel"], "stochastic": sr["trials_rel"]}, bounds, ax=ax,
                        title=f"accumulator {acc} ({rn['layout']})", xlabel="K (length of the dot product)",
                        legend=False)
    for ax in axes[len(accs):]:
        ax.set_visible(False)
    fig.suptitle(f"Dot products of a, b ~ U[0, 1): relative error against K ({m['trials']} trials per K)")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=4, fontsize=8, frameon=False)
    save(fig, "matmul_error_vs_k.png")

    st = results["stochastic"]
    if st["stagnation"]:
        k = len(st["stagnation"])
        fig, axes = plot.new_figure(1, k, width=5.0 * k, height=4.0)
        for ax, res in zip(np.atleast_1d(axes), st["stagnation"]):
            plot.stagnation(res, ax=ax)
        save(fig, "stagnation.png")
    if st["bias"]:
        rows = st["bias"]
        save(plot.estimates([f"{r['format']}: {r['rounding']}" for r in rows], [r["mean_ulp"] for r in rows],
                            [2 * r["stderr_ulp"] for r in rows], expected=[r["expected_ulp"] for r in rows],
                            xlabel="mean rounding error (ulp) of x ~ U[1, 2); 0 = unbiased",
                            title="Bias of each rounding mode"), "sr_bias.png")
    return paths, None


# ---- command line -----------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the study's options to ``parser`` (for ``numfmt study``)."""
    parser.add_argument("--out", default="numfmt-study", metavar="DIR",
                        help="directory for report.md, the figures and results.json (default ./numfmt-study)")
    parser.add_argument("--formats", nargs="+", default=None, metavar="FMT",
                        help="formats to study, comma or space separated (default: "
                             f"{','.join(DEFAULT_FORMATS)}; with --quick: {','.join(QUICK_FORMATS)})")
    parser.add_argument("--quick", action="store_true",
                        help="a smaller run: fewer formats, rounding modes and samples (under 20 s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def run_args(args: argparse.Namespace) -> int:
    """Run the study from parsed arguments; returns the exit status (2 for user errors)."""
    try:
        formats = parse_formats(args.formats) if args.formats is not None else None
        run_study(formats, quick=args.quick, out=args.out, seed=args.seed, quiet=args.quiet)
    except StudyError as exc:
        print(f"numfmt study: error: {exc}", file=sys.stderr)
        return 2
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``study`` on an ``argparse`` subparsers object; ``args._run(args)`` runs it."""
    parser = subparsers.add_parser("study", help=HELP, description=HELP)
    add_arguments(parser)
    parser.set_defaults(_run=run_args)
    return parser


def main(argv=None) -> int:
    """``numfmt study`` on its own: parse ``argv`` (default ``sys.argv[1:]``), run, return the exit status."""
    parser = argparse.ArgumentParser(prog="numfmt study", description=HELP)
    add_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    return run_args(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
