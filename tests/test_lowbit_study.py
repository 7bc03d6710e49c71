"""Tests of numfmt.analysis.lowbit_study: the study's section on binary, ternary and log4 weights."""

import numpy as np

from numfmt.analysis.data import weight_like
from numfmt.analysis.lowbit_study import LOWBIT_SCHEMES, render, section_lowbit


def test_section_lowbit_rows_and_report():
    names = ["weight/gaussian", "weight/heavy_tailed", "activation/gaussian"]
    X = np.stack([weight_like("gaussian", 16, 64, seed=0), weight_like("heavy_tailed", 16, 64, seed=1),
                  np.ones((16, 64), np.float32)])
    calls = []
    out = section_lowbit(None, names, X, progress=lambda *a: calls.append(a))
    rows = out["rows"]
    assert len(rows) == 2 * len(LOWBIT_SCHEMES)  # weights only
    by = {(r["scheme"], r["dataset"]): r for r in rows}
    scale_bits = 32 / 64  # one FP32 scale per row of 64
    assert by[("binary", "weight/gaussian")]["bits_per_value"] == 1 + scale_bits
    assert by[("ternary", "weight/gaussian")]["bits_per_value"] == 2 + scale_bits
    assert by[("log4", "weight/gaussian")]["bits_per_value"] == 4 + scale_bits
    # More bits, less error, for the same family of grids.
    g = {s: by[(s, "weight/gaussian")]["sqnr_db"] for s, _ in LOWBIT_SCHEMES}
    assert g["binary"] < g["ternary"] < g["log4"] and g["int2"] < g["int4"]
    # Linear nearest minimizes the squared error: it beats the log-domain rule on SQNR.
    assert g["log4"] >= g["log4 nearest_log"]
    text = render(out)
    assert text.startswith("## 6. Binary, ternary and logarithmic weights")
    assert "| `ternary` | 2.500 |" in text and "Best SQNR per storage budget" in text
    assert calls[-1][1] == calls[-1][2]
