"""Figures for number formats and their errors (matplotlib, an optional extra).

Install with ``pip install 'numfmt[plot]'``. Every function draws on ``ax`` when given
(any matplotlib Axes, e.g. from ``plt.subplots()``) or on a new figure, and returns the
Axes; :func:`save` writes a PNG. New figures are built with the object-oriented API
(``matplotlib.figure.Figure``), so nothing here touches pyplot's global state or needs
a display.

* :func:`value_grid`: each format's positive representable values on a log axis;
* :func:`error_histogram`: histograms of errors (e.g. in ulps) side by side;
* :func:`sqnr_vs_scale`: SQNR against the input's scale, the dynamic-range picture;
* :func:`error_vs_n`: error of sums / dot products against their length, with bounds;
* :func:`stagnation`: stochastic rounding against round to nearest under stagnation;
* :func:`bars`: grouped bars (e.g. SQNR by format and scaling scheme);
* :func:`estimates`: estimates with intervals against expected values (e.g. rounding bias).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from numfmt import formats as _formats

__all__ = [
    "bars",
    "error_histogram",
    "error_vs_n",
    "estimates",
    "new_figure",
    "save",
    "sqnr_vs_scale",
    "stagnation",
    "value_grid",
]


def _matplotlib():
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            "numfmt.plot needs matplotlib, an optional extra: pip install 'numfmt[plot]' (or pip install matplotlib)"
        ) from None
    return Figure


def new_figure(nrows: int = 1, ncols: int = 1, *, width: float = 7.0, height: float = 4.2, **subplot_kw):
    """A new ``(figure, axes)`` pair with a constrained layout; ``axes`` is an array when there are several."""
    Figure = _matplotlib()
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=True, **subplot_kw)
    return fig, axes


def _axes(ax, **size):
    if ax is not None:
        return ax
    _, ax = new_figure(**size)
    return ax


def save(fig_or_ax, path, *, dpi: int = 130):
    """Write the figure (or the figure of an Axes) to ``path`` (PNG by its suffix); returns ``path``."""
    fig = getattr(fig_or_ax, "figure", fig_or_ax)
    fig.savefig(path, dpi=dpi)
    return path


def _rows(results):
    """A list of dicts from a list of dicts or a pandas DataFrame."""
    if hasattr(results, "to_dict"):
        return results.to_dict("records")
    return list(results)


# ---- value grid ------------------------------------------------------------------------------


def value_grid(formats, *, ax=None, tick_bits: int = 8):
    """Each format's positive finite values as ticks on a log axis, one row per format.

    Formats of at most ``tick_bits`` bits show every value (normal values and
    subnormals in different colours) and set the axis range; wider ones (bf16, fp32)
    show their range as a bar, cut at the edges of the axis with their limits written
    next to it. Zero and negative values are not drawn (a log axis).
    """
    formats = [_formats.get(f) for f in ([formats] if isinstance(formats, (str, _formats.Format)) else formats)]
    ax = _axes(ax, width=8.0, height=0.5 * len(formats) + 2.0)
    positive = {}  # each narrow format's positive values: values() loops in Python, so once each
    for f in formats:
        if f.bits <= tick_bits:
            v = f.values()
            positive[f] = v[v > 0]
    if positive:
        lows = [float(np.min(v)) for v in positive.values()]
        highs = [float(f.max) for f in positive]
        lo_lim, hi_lim = min(lows) / 4, max(highs) * 64  # room on the right for the labels
    else:
        lo_lim, hi_lim = 2.0**-20, 2.0**24
    labels, seen = [], set()
    for row, fmt in enumerate(formats):
        y = len(formats) - 1 - row
        labels.append((y, f"{fmt.name} ({fmt.bits} bits)"))
        if fmt in positive:
            values = positive[fmt]
            low = float(fmt.min_normal) if fmt.kind == "float" else 0.0
            sub, normal = values[values < low], values[values >= low]
            for vals, color, name in ((normal, "C0", "normal value"), (sub, "C1", "subnormal value")):
                if len(vals):
                    ax.scatter(vals, np.full(len(vals), y), marker="|", s=220, linewidths=0.7, color=color,
                               label=None if name in seen else name)
                    seen.add(name)
            ax.annotate(f"{len(values)} values", (values.max(), y), xytext=(8, 0), textcoords="offset points",
                        va="center", fontsize=8, color="0.3")
        else:
            lo, hi = float(fmt.min_subnormal), float(fmt.max)
            name = "range of a wide format (too dense to draw each value)"
            ax.plot([max(lo, lo_lim), min(hi, hi_lim)], [y, y], lw=7, color="C2", alpha=0.45, solid_capstyle="butt",
                    label=None if name in seen else name)
            seen.add(name)
            ax.annotate(f"{lo:.3g} .. {hi:.3g}  (beyond the axis)", (math.sqrt(lo_lim * hi_lim), y), xytext=(0, 7),
                        textcoords="offset points", ha="center", va="bottom", fontsize=8, color="0.25")
    ax.set_xscale("log", base=2)
    ax.set_xlim(lo_lim, hi_lim)
    ax.set_yticks([y for y, _ in labels], [text for _, text in labels])
    ax.set_ylim(-0.7, len(formats) - 0.3)
    ax.set_xlabel("positive representable value (log scale; zero and negatives not drawn)")
    ax.set_title("Value grids: where each format has values")
    ax.grid(axis="x", which="major", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize=8, frameon=False)
    return ax


# ---- error histogram -------------------------------------------------------------------------


def error_histogram(errors, *, bins: int = 80, range=None, density: bool = True, xlabel: str = "error (ulp)",
                    title: str | None = None, logy: bool = False, ax=None):
    """Histograms of errors, one step curve per entry of ``errors`` (label -> array).

    A single array is drawn unlabelled. NaN and inf are left out. ``range`` is the
    ``(low, high)`` of the bins, shared by every curve (default: all finite data).
    """
    ax = _axes(ax)
    if not isinstance(errors, Mapping):
        errors = {None: errors}
    arrays = {k: np.asarray(v, dtype=np.float64).ravel() for k, v in errors.items()}
    arrays = {k: v[np.isfinite(v)] for k, v in arrays.items()}
    if range is None:
        lows = [v.min() for v in arrays.values() if v.size]
        highs = [v.max() for v in arrays.values() if v.size]
        range = (min(lows), max(highs)) if lows else (0.0, 1.0)
        if range[0] == range[1]:
            range = (range[0] - 0.5, range[1] + 0.5)
    edges = np.linspace(range[0], range[1], bins + 1)
    for label, v in arrays.items():
        ax.hist(v, bins=edges, density=density, histtype="step", linewidth=1.6, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density" if density else "count")
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    if any(k is not None for k in arrays):
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


# ---- SQNR against scale ----------------------------------------------------------------------


def sqnr_vs_scale(results=None, *, formats=None, scales=None, distribution: str = "gaussian",
                  rounding: str = "nearest_even", n: int = 16384, ax=None, title: str | None = None):
    """SQNR (dB) against the input's scale, one curve per format: the dynamic-range picture.

    ``results`` is a table with ``format``, ``scale`` and ``sqnr_db`` columns (from
    :func:`numfmt.analysis.sweep`, a list of dicts or a DataFrame). Without it, it is
    computed: ``distribution`` data times each of ``scales`` (default ``2**-30 .. 2**30``),
    cast to each of ``formats`` by ``rounding`` with ``saturate=True``, so that values
    past ``max`` clip (and the SQNR falls) instead of becoming inf or NaN.
    """
    if results is None:
        from numfmt.analysis.sweep import quantization_error, sweep

        if formats is None:
            raise ValueError("pass results= (a sweep table) or formats= to compute one")
        scales = 2.0 ** np.arange(-30, 31, 2) if scales is None else scales

        def fn(x, fmt, rounding, key):
            return quantization_error(x, fmt, rounding, key, saturate=True)

        results = sweep(fn, formats=formats, roundings=[rounding], scales=scales, distributions=[distribution],
                        shape=(n,), as_frame=False)
    rows = _rows(results)
    ax = _axes(ax, width=8.0, height=4.6)
    order = list(dict.fromkeys(r["format"] for r in rows))
    styles = ["-", "--", "-.", ":"]
    for i, name in enumerate(order):
        pts = sorted((r["scale"], r["sqnr_db"]) for r in rows if r["format"] == name)
        x = np.array([p[0] for p in pts], dtype=np.float64)
        y = np.array([np.nan if p[1] is None or not math.isfinite(p[1]) else p[1] for p in pts], dtype=np.float64)
        ax.plot(x, y, styles[(i // 10) % len(styles)], marker=".", markersize=4, linewidth=1.5, label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("input scale (standard deviation of the data, log scale)")
    ax.set_ylabel("SQNR (dB)")
    ax.set_title(title or "Signal-to-quantization-noise ratio against input scale (no scaling)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return ax


# ---- error against n -------------------------------------------------------------------------


def error_vs_n(n, errors, bounds=None, *, ax=None, title: str | None = None,
               ylabel: str = "relative error  |ŝ - s| / Σ|a·b|", xlabel: str = "n (terms summed)",
               legend: bool = True):
    """Error of a length-``n`` sum against ``n`` on log-log axes, with bounds.

    Args:
      n: the lengths (x axis).
      errors: label -> array of shape ``(len(n),)`` or ``(len(n), trials)``; with trials
        the median is drawn as a line, the 10th to 90th percentiles as a band and the
        largest error as a thin line.
      bounds: label -> array ``(len(n),)``, or ``(array, style)`` with a dict of
        matplotlib line properties; drawn dashed. Infinite values (a bound that says
        nothing, such as ``gamma_n`` once ``n u >= 1``) are left out.
      legend: draw the legend on the Axes (False to make a shared one, e.g. with
        ``fig.legend(*ax.get_legend_handles_labels())``).
    """
    ax = _axes(ax)
    n = np.asarray(n, dtype=np.float64)
    for i, (label, e) in enumerate(errors.items()):
        e = np.asarray(e, dtype=np.float64)
        color = f"C{i}"
        if e.ndim == 2:
            med = np.median(e, axis=1)
            lo, hi = np.percentile(e, 10, axis=1), np.percentile(e, 90, axis=1)
            lo = np.where(lo > 0, lo, np.nan)
            ax.fill_between(n, lo, hi, color=color, alpha=0.18, linewidth=0)
            ax.plot(n, np.where(med > 0, med, np.nan), color=color, linewidth=1.8,
                    label=f"{label}: median, 10-90% band of {e.shape[1]} trials")
            ax.plot(n, e.max(axis=1), color=color, linewidth=0.7, alpha=0.8, label=f"{label}: largest")
        else:
            ax.plot(n, np.where(e > 0, e, np.nan), color=color, linewidth=1.8, label=label)
    grays = ["0.15", "0.45", "tab:brown", "tab:olive", "tab:purple"]
    for j, (label, b) in enumerate((bounds or {}).items()):
        style = {"color": grays[j % len(grays)], "linestyle": "--", "linewidth": 1.3}
        if isinstance(b, tuple):
            b, extra = b
            style.update(extra)
        b = np.asarray(b, dtype=np.float64)
        ax.plot(n, np.where(np.isfinite(b), b, np.nan), label=label, **style)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3, which="major")
    if legend:
        ax.legend(fontsize=7, loc="best")
    return ax


# ---- stagnation ------------------------------------------------------------------------------


def stagnation(result=None, *, fmt=None, increment=None, n: int = 4096, start: float = 1.0, runs: int = 16,
               ax=None, title: str | None = None):
    """Round to nearest against stochastic rounding when adding a small increment many times.

    ``result`` comes from :func:`numfmt.analysis.stagnation`; without it one is
    computed for ``fmt`` (``increment`` defaults to a quarter of the ulp of ``start``).
    Each stochastic run is a thin line, their mean a thick one, the exact sum dashed.
    """
    if result is None:
        from numfmt.analysis.accumulate import stagnation as _stagnation

        if fmt is None:
            raise ValueError("pass result= (from numfmt.analysis.stagnation) or fmt= to compute one")
        fmt = _formats.get(fmt)
        if increment is None:
            increment = 2.0 ** (math.floor(math.log2(start)) - fmt.man_bits - 2)
        result = _stagnation(fmt, increment, n, start=start, runs=runs)
    ax = _axes(ax)
    steps = np.asarray(result["steps"])
    ax.plot(steps, result["exact"], "k--", linewidth=1.5, label="exact")
    if "nearest_even" in result:
        ax.plot(steps, np.asarray(result["nearest_even"])[:, 0], color="C0", linewidth=2, label="nearest_even")
    if "stochastic" in result:
        runs_ = np.asarray(result["stochastic"])
        for j in range(runs_.shape[1]):
            ax.plot(steps, runs_[:, j], color="C1", linewidth=0.6, alpha=0.35,
                    label="stochastic (each run)" if j == 0 else None)
        ax.plot(steps, runs_.mean(axis=1), color="C1", linewidth=2, label=f"stochastic (mean of {runs_.shape[1]})")
    ax.set_xlabel("number of additions")
    ax.set_ylabel("running sum")
    inc = _pow2_text(result["increment"])
    ax.set_title(title or f"{result.get('format', '')}: {_pow2_text(result['start'])} + {inc} + {inc} + ...")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return ax


def _pow2_text(v: float) -> str:
    """``2^-9`` for a power of two, else ``%g``."""
    m, e = math.frexp(v)
    if v > 0 and m == 0.5:
        return "1" if e == 1 else f"2^{e - 1}"
    return f"{v:g}"


# ---- grouped bars ----------------------------------------------------------------------------


def bars(groups, *, ylabel: str = "", title: str | None = None, ax=None, annotate: bool = True,
         value_format: str = ".3g"):
    """Grouped bars: ``groups`` maps a group label to ``{bar label: value}``.

    A bar label keeps its colour in every group; a group draws only the bars it has
    (missing, None or non-finite values are left out), centred on its tick.
    ``annotate`` writes each value on its bar (with ``value_format``), so that a bar of
    height 0 still shows.
    """
    ax = _axes(ax, width=8.5, height=4.4)
    group_names = list(groups)
    bar_names = list(dict.fromkeys(b for g in groups.values() for b in g))
    colors = {b: f"C{j % 10}" for j, b in enumerate(bar_names)}
    most = max((sum(1 for v in g.values() if v is not None and math.isfinite(v)) for g in groups.values()), default=1)
    width = 0.8 / max(1, most)
    drawn = set()
    for i, g in enumerate(group_names):
        items = [(b, v) for b, v in groups[g].items() if v is not None and math.isfinite(v)]
        for j, (b, v) in enumerate(items):
            pos = i - width * len(items) / 2 + width * (j + 0.5)
            ax.bar(pos, v, width * 0.9, color=colors[b], label=None if b in drawn else b)
            drawn.add(b)
            if annotate:  # upright labels when the bars are too narrow for them side by side
                ax.annotate(format(v, value_format), (pos, v), xytext=(0, 2 if v >= 0 else -2), textcoords="offset points",
                            ha="center", va="bottom" if v >= 0 else "top", fontsize=6.5,
                            rotation=90 if most > 4 else 0)
    ax.set_xticks(np.arange(len(group_names)), group_names)
    ax.set_xlim(-0.6, len(group_names) - 0.4)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.axhline(0, color="0.3", linewidth=0.8)
    ax.grid(axis="y", alpha=0.3)
    ax.margins(y=0.12)
    ax.legend(fontsize=8, ncol=min(len(bar_names), 6), loc="upper center", bbox_to_anchor=(0.5, -0.08),
              frameon=False)
    return ax


def estimates(labels, values, halfwidths=None, *, expected=None, xlabel: str = "", title: str | None = None,
              ax=None):
    """Estimates with intervals, one row each (a "forest plot"), and optional expected values.

    Args:
      labels: one label per row, drawn top to bottom.
      values: the estimates; ``halfwidths``: the half widths of their intervals.
      expected: the value theory expects for each row (None to skip a row), drawn as a
        hollow diamond.
    """
    ax = _axes(ax, width=8.0, height=0.32 * len(labels) + 1.6)
    y = np.arange(len(labels))[::-1]
    values = np.asarray(values, dtype=np.float64)
    err = None if halfwidths is None else np.asarray(halfwidths, dtype=np.float64)
    ax.errorbar(values, y, xerr=err, fmt="o", color="C0", ecolor="C0", capsize=3, markersize=5,
                label="measured (±2 standard errors)")
    if expected is not None:
        ex = np.array([np.nan if e is None else e for e in expected], dtype=np.float64)
        ax.scatter(ex, y, marker="D", s=40, facecolors="none", edgecolors="C3", linewidths=1.2, label="expected",
                   zorder=3)
    ax.axvline(0, color="0.3", linewidth=0.8)
    ax.set_yticks(y, labels)
    ax.set_ylim(-0.7, len(labels) - 0.3)
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return ax
