"""Tests of numfmt.plot: every figure draws, is labelled, and saves a real PNG."""

import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import numfmt as nf
from numfmt import analysis as A
from numfmt import plot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def saved(ax, tmp_path, name="fig.png"):
    """Save the Axes' figure; check the file is a PNG that matplotlib reads back."""
    from matplotlib.image import imread

    path = tmp_path / name
    plot.save(ax, path)
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1024
    img = imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    return img


def labelled(ax, legend=True):
    assert ax.get_xlabel() and ax.get_ylabel() or ax.get_yticklabels()
    if legend:
        assert ax.get_legend() is not None


def test_value_grid(tmp_path):
    ax = plot.value_grid(["bf16", "e4m3", "e2m1", "int4", "nf4"])
    assert ax.get_xscale() == "log"
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0].startswith("bf16") and labels[-1].startswith("nf4")  # top to bottom
    labelled(ax)
    saved(ax, tmp_path)


def test_error_histogram(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(4000).astype(np.float32)
    errs = {r: A.ulp_error(x, nf.quantize(x, "e4m3", r), "e4m3", signed=True) for r in ("nearest_even", "up")}
    ax = plot.error_histogram(errs, range=(-1, 1), title="e4m3")
    labelled(ax)
    assert ax.get_ylabel() == "density"
    saved(ax, tmp_path)
    ax = plot.error_histogram(np.array([0.0, 0.0]))  # a single array, a degenerate range
    assert ax.get_legend() is None


def test_sqnr_vs_scale_computes_or_takes_results(tmp_path):
    ax = plot.sqnr_vs_scale(formats=["e4m3", "int8"], scales=2.0 ** np.arange(-8, 9, 4), n=512)
    assert ax.get_xscale() == "log" and "SQNR" in ax.get_ylabel()
    assert len(ax.get_lines()) == 2
    labelled(ax)
    saved(ax, tmp_path)
    rows = [{"format": "x", "scale": s, "sqnr_db": v} for s, v in ((1.0, 10.0), (2.0, float("inf")), (4.0, None))]
    ax = plot.sqnr_vs_scale(rows)
    assert np.isnan(ax.get_lines()[0].get_ydata()[1:]).all()
    with pytest.raises(ValueError, match="formats"):
        plot.sqnr_vs_scale()


def test_error_vs_n_with_bounds(tmp_path):
    n = np.arange(1, 65)
    rng = np.random.default_rng(1)
    errs = {"nearest_even": rng.random((64, 16)) * 1e-3, "single": rng.random(64) * 1e-3}
    u = 2.0**-11
    bounds = {"gamma_n": A.gamma(n, u), "probabilistic": (A.gamma_tilde(n, u, 3.0), {"linestyle": ":"})}
    ax = plot.error_vs_n(n, errs, bounds, title="fp16")
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    labels = ax.get_legend_handles_labels()[1]
    assert "gamma_n" in labels and any("nearest_even" in s for s in labels)
    labelled(ax)
    saved(ax, tmp_path)


def test_stagnation(tmp_path):
    ax = plot.stagnation(fmt="bf16", n=256, runs=4)
    labelled(ax)
    assert "2^-9" in ax.get_title()
    labels = ax.get_legend_handles_labels()[1]
    assert "exact" in labels and "nearest_even" in labels
    saved(ax, tmp_path)
    with pytest.raises(ValueError, match="fmt"):
        plot.stagnation()


def test_bars_and_estimates(tmp_path):
    groups = {"e4m3": {"cast": 31.0, "mx": 29.0}, "nf4": {"cast": 0.0, "mx": None}}
    ax = plot.bars(groups, ylabel="SQNR (dB)", title="t")
    assert len(ax.patches) == 3
    labelled(ax)
    saved(ax, tmp_path, "bars.png")
    ax = plot.estimates(["a", "b"], [0.0, -0.5], [0.01, 0.01], expected=[0.0, None], xlabel="ulp")
    assert ax.get_xlabel() == "ulp"
    labelled(ax)
    saved(ax, tmp_path, "est.png")


def test_new_figure_and_external_axes(tmp_path):
    fig, axes = plot.new_figure(1, 2)
    assert plot.value_grid("e2m1", ax=axes[0]) is axes[0]
    assert plot.bars({"g": {"a": 1.0}}, ax=axes[1]) is axes[1]
    assert axes[0].collections or axes[0].lines  # drawn into the axes given
    assert len(axes[1].patches) == 1
    saved(fig, tmp_path)


def test_missing_matplotlib_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install 'numfmt\[plot\]'"):
        plot.value_grid(["e4m3"])
