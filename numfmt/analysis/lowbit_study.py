"""The study's section on 1- to 4-bit weights: binary, ternary, log4 against int2, int4 and nf4.

:func:`section_lowbit` quantizes the study's four weight-like tensors with each scheme of
:data:`LOWBIT_SCHEMES`, all with one scale per output channel (per row of a weight
``(out, in)``, the XNOR-Net / TWN granularity), and measures the error
(:func:`numfmt.analysis.error_stats`) and the storage, scales included
(``QArray.bits_per_value``). :func:`render` writes it as a section of ``report.md``.
"""

from __future__ import annotations

import math

import numpy as np

from numfmt.lowbit import binarize, ternarize
from numfmt.scaled import quantize_scaled

__all__ = ["LOWBIT_SCHEMES", "render", "section_lowbit"]

#: (name, how it quantizes), in the order of the report's table.
LOWBIT_SCHEMES = (
    ("binary", "binarize: ±alpha, alpha = mean |w| per row (XNOR-Net)"),
    ("ternary", "ternarize: {-alpha, 0, alpha}, delta = 0.7 mean |w| per row (TWN)"),
    ("int2", "int2 {-2, -1, 0, 1} times an absmax scale per row"),
    ("log4", "log4 {0, ±2^-3 .. ±2^3} times an absmax scale per row, nearest (linear)"),
    ("log4 nearest_log", "log4 as above, rounded to the nearest power in the log domain"),
    ("log4_sqrt2", "log4_sqrt2 {0, ±2^-1.5 .. ±2^1.5}, absmax scale per row, nearest (linear)"),
    ("int4", "int4 {-8 .. 7} times an absmax scale per row"),
    ("nf4", "nf4 (QLoRA NormalFloat) times an absmax scale per row"),
)


def _quantize(name, w):
    if name == "binary":
        return binarize(w, axis=1)
    if name == "ternary":
        return ternarize(w, axis=1)
    fmt, _, rounding = name.partition(" ")
    return quantize_scaled(w, fmt, axis=1, rounding=rounding or "nearest_even")


def section_lowbit(p, names, X, progress=None) -> dict:
    """Error and bits per value of each scheme of :data:`LOWBIT_SCHEMES` on the weight-like tensors.

    Args:
      p: the study's :class:`numfmt.analysis.experiments.Plan` (unused but for its seed).
      names, X: the study's tensors (``numfmt.analysis.experiments.datasets``); the ones
        named ``weight/...`` are used.
      progress: optional ``progress(label, done, total)``.

    Returns:
      ``{"rows": [...], "schemes": [[name, description], ...]}``: one row per tensor and
      scheme with ``bits_per_value`` and the keys of ``error_stats``.
    """
    from numfmt.analysis.metrics import error_stats

    weights = [(n, x) for n, x in zip(names, X) if n.startswith("weight/")]
    rows = []
    jobs = [(s, n, x) for s, _ in LOWBIT_SCHEMES for n, x in weights]
    for i, (scheme, dataset, w) in enumerate(jobs):
        if progress is not None:
            progress("low-bit scheme x tensor", i, len(jobs))
        q = _quantize(scheme, w)
        stats = error_stats(w, np.asarray(q.dequantize()))
        rows.append({"dataset": dataset, "scheme": scheme, "bits_per_value": q.bits_per_value, **stats})
    if progress is not None:
        progress("low-bit scheme x tensor", len(jobs), len(jobs))
    return {"rows": rows, "schemes": [list(s) for s in LOWBIT_SCHEMES]}


def _mean(values):
    vals = [v for v in values if math.isfinite(v)]
    return sum(vals) / len(vals) if vals else math.nan


def render(section: dict) -> str:
    """The report's markdown for :func:`section_lowbit`'s result; the reading is stated from the numbers."""
    datasets = list(dict.fromkeys(r["dataset"] for r in section["rows"]))
    schemes = [name for name, _ in section["schemes"]]
    by = {(r["scheme"], r["dataset"]): r for r in section["rows"]}

    def db(v):
        return "∞" if math.isinf(v) else ("n/a" if math.isnan(v) else f"{v:.1f}")

    def mean_db(name):
        return _mean([by[(name, d)]["sqnr_db"] for d in datasets])

    head = ["scheme", "bits / value", *[f"`{d.split('/')[-1]}`" for d in datasets], "mean"]
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    for name in schemes:
        cells = [f"`{name}`", f"{by[(name, datasets[0])]['bits_per_value']:.3f}",
                 *[db(by[(name, d)]["sqnr_db"]) for d in datasets], db(mean_db(name))]
        lines.append("| " + " | ".join(cells) + " |")
    best = []
    for bits in sorted({math.floor(by[(n, datasets[0])]["bits_per_value"]) for n in schemes}):
        group = [n for n in schemes if math.floor(by[(n, datasets[0])]["bits_per_value"]) == bits]
        if len(group) > 1:
            picks = [f"{d.split('/')[-1]} `{max(group, key=lambda n, d=d: by[(n, d)]['sqnr_db'])}`" for d in datasets]
            best.append(f"{bits} bits: " + ", ".join(picks))
    reading = "Best SQNR per storage budget and tensor: " + "; ".join(best) + "."
    if "log4" in schemes and "log4 nearest_log" in schemes:
        reading += (f" Rounding log4 to the nearest power in the log domain (the paper's rule) gives "
                    f"{db(mean_db('log4 nearest_log'))} dB on average against {db(mean_db('log4'))} dB for the "
                    "nearest value: the linear rule minimizes the squared error, which is what SQNR measures.")
    reading += (" SQNR weighs each weight by its square: on the heavy-tailed tensors the outlier channels dominate "
                "it, which favours grids that reach the row's absmax exactly and wide ranges over the mean-magnitude "
                "alphas of XNOR-Net and TWN (least-squares optimal only for their own sign or threshold pattern).")
    how = "\n".join(f"* `{name}`: {text}" for name, text in section["schemes"])
    return "\n\n".join([
        "## 6. Binary, ternary and logarithmic weights",
        ("The four weight-like tensors quantized to 1, 2 and 4 bits per value, each with one scale per row (per "
         "output channel). Bits per value count the packed codes and the FP32 scales; cells are SQNR in dB, "
         "10 log10(Σw² / Σ(ŵ − w)²). docs/lowbit.md defines each scheme."),
        how,
        "\n".join(lines),
        reading,
    ])
