"""The study's results as text: ``report.md``, ``results.json`` and the printed summary.

Takes the dict that ``numfmt.study.run_study`` assembles from
:mod:`numfmt.analysis.experiments`; writes no figures (``numfmt.study`` does).
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from numfmt.analysis import lowbit_study
from numfmt.analysis.tables import to_markdown
from numfmt.describe import format_value

__all__ = ["jsonable", "summary", "write_json", "write_report"]

SCHEME_NAMES = {
    "cast": "cast (no scale)",
    "tensor": "per-tensor",
    "row": "per-row",
    "block32": "block 32 (FP32 scale)",
    "mx": "MX (block 32, E8M0)",
    "nvfp4": "NVFP4 (block 16, E4M3)",
}
SCHEME_BITS = {"cast": "0", "tensor": "≈ 0", "row": "32 / row", "block32": "1", "mx": "0.25", "nvfp4": "0.5"}


def _num(v, spec=".3g") -> str:
    """A report cell: ``–`` for a missing value, ``n/a`` for NaN (a metric that does not
    apply), text as is, every number by :func:`numfmt.describe.format_value`."""
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    if math.isnan(float(v)):
        return "n/a"
    return format_value(v, spec)


def _db(v) -> str:
    return _num(v, ".1f")


def _signed(v) -> str:
    """``+0.68``; values that round to zero print as ``0.00`` (no ``-0.00``)."""
    return "0.00" if abs(v) < 0.005 else f"{v:+.2f}"


def _pct(fraction) -> str:
    v = 100 * fraction
    if v == 0:
        return "0"
    return "<0.01" if v < 0.01 else f"{v:.3g}"


def _table(headers, rows) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "".join(" --- |" if i == 0 else " ---: |"
                                                              for i in range(len(headers)))]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _mean(values):
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else float("nan")


# ---- report.md --------------------------------------------------------------------------------


def write_report(results: dict, figures, out) -> str:
    """Write ``report.md`` into ``out``; returns its path."""
    cfg = results["config"]
    figs = {os.path.basename(f) for f in figures}
    parts = [_intro(results)]
    parts.append(_section_formats(results, figs))
    parts.append(_section_quantization(results, figs))
    parts.append(_section_scaled(results, figs))
    parts.append(_section_matmul(results, figs))
    parts.append(_section_stochastic(results, figs))
    if "lowbit" in results:  # 1- to 4-bit weights (numfmt.analysis.lowbit_study)
        parts.append(lowbit_study.render(results["lowbit"]))
    parts.append("## Files\n\n" + "\n".join(f"* `{os.path.basename(f)}`" for f in [*figures, "results.json"])
                 + "\n\nStep timings (s): " + ", ".join(f"{k}: {v:.1f}" for k, v in results["timings_s"].items())
                 + f". Total {cfg['seconds']:.1f} s.\n")
    path = os.path.join(out, "report.md")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n\n".join(parts))
    return path


def _figure(figs, name, caption) -> str:
    if name in figs:
        return f"![{caption}]({name})\n\n*Figure: {caption}.*"
    return f"*(`{name}` was not drawn: matplotlib is missing, or no selected format applies.)*"


def _intro(results) -> str:
    cfg = results["config"]
    shape = "×".join(map(str, cfg["tensor_shape"]))
    note = f"\n\n> **Figures:** {results['figure_note']}" if results.get("figure_note") else ""
    return (
        f"# numfmt study{' (quick)' if cfg['quick'] else ''}\n\n"
        f"Generated {cfg['date']} by `numfmt study{' --quick' if cfg['quick'] else ''}` with numfmt {cfg['numfmt']}, "
        f"JAX {cfg['jax']} ({cfg['backend']}), NumPy {cfg['numpy']}, Python {cfg['python']} on {cfg['machine']}; "
        f"it took {cfg['seconds']:.1f} s. Seed {cfg['seed']}.\n\n"
        f"**Formats:** {', '.join(f'`{f}`' for f in cfg['formats'])}.\n\n"
        f"**Data:** 8 synthetic tensors of {shape}: weight-like (standard deviation 1/√{cfg['tensor_shape'][1]}) and "
        "activation-like (unit scale), each drawn from four distributions: Gaussian, Laplace, log-uniform over 16 "
        "binades, and heavy-tailed (Student t, 3 degrees of freedom) with outliers (1 channel in 128 scaled by 20-60). "
        "Every number here is in `results.json`; docs/study.md explains how to read each part." + note
    )


def _section_formats(results, figs) -> str:
    cols = ["name", "bits", "layout", "bias", "max", "min_normal", "min_subnormal", "eps", "unit_roundoff",
            "binades", "dynamic_range_db", "nan_codes", "inf_codes"]
    heads = ["format", "bits", "layout", "bias", "max", "min normal", "min subnormal", "eps", "u (nearest)",
             "range (binades)", "range (dB)", "NaN codes", "inf codes"]
    return ("## 1. The formats\n\n" + to_markdown(results["format_table"], cols, headers=heads) + "\n\n"
            "*u* is the unit roundoff of round to nearest, 2^-(man_bits+1); the dynamic range is max / min subnormal "
            "(for a codebook, max / smallest non-zero magnitude).\n\n"
            + _figure(figs, "value_grid.png", "each format's positive values on a log axis"))


def _section_quantization(results, figs) -> str:
    cfg = results["config"]
    q = results["quantization"]
    fmts, rnds, dsets = cfg["formats"], cfg["roundings"], cfg["datasets"]
    by = {}
    for r in q["rows"]:
        by.setdefault((r["format"], r["rounding"]), []).append(r)
    scaling = {r["format"]: r["scaling"] for r in q["rows"]}
    mean_rows, bias_rows, ds_rows, uf_rows = [], [], [], []
    for f in fmts:
        cells, bias = [], []
        for rd in rnds:
            rows = by.get((f, rd), [])
            ok = [r for r in rows if "error" not in r]
            cells.append(_db(_mean(r["sqnr_db"] for r in ok)) if ok else "n/a")
            w = next((r for r in ok if r["dataset"] == dsets[0]), None)
            bias.append(_signed(w["bias"] / w["abs_rms"]) if w and w["abs_rms"] else "n/a")
        mean_rows.append([f"`{f}`", scaling.get(f, "")] + cells)
        bias_rows.append([f"`{f}`"] + bias)
        rn = {r["dataset"]: r for r in by.get((f, "nearest_even"), []) if "error" not in r}
        ds_rows.append([f"`{f}`"] + [_db(rn[d]["sqnr_db"]) if d in rn else "n/a" for d in dsets])
        uf_rows.append([f"`{f}`"] + [_pct(rn[d]["underflow"] / rn[d]["count"]) if d in rn else "n/a"
                                     for d in dsets])
    short = [d.replace("weight/", "w/").replace("activation/", "a/") for d in dsets]
    text = [
        "## 2. Quantization error by format and rounding mode",
        ("Formats of at most 8 bits and integer formats are used as they are in practice, with one absmax scale per "
        "tensor (FP32, `s = max|x| / fmt.max`, the same as `numfmt.quantize_scaled(x, fmt)`); wider float formats "
        "are cast directly (scaling `none`). SQNR = 10·log10(Σx² / Σ(q(x) − x)²); higher is better, and every 6.02 dB "
        "is one more bit."),
        "**Mean SQNR (dB) over the 8 tensors**, by rounding mode:",
        _table(["format", "scaling", *rnds], mean_rows),
        (f"**Bias relative to the RMS error** (mean signed error / RMS error) on `{dsets[0]}`: about 0 for an "
        "unbiased rounding. `up` and `down` are biased by construction: ±0.87 (= √3/2) if the error were uniform "
        "over one step, as for integers; less for float formats, whose step grows with |x|. `toward_zero` is biased "
        "toward zero for each sign, which cancels on symmetric data; `odd` picks the neighbour with an odd last bit, "
        "unbiased on average but with errors up to a whole step."),
        _table(["format", *rnds], bias_rows),
        "**SQNR (dB) by tensor**, nearest_even (w = weight-like, a = activation-like):",
        _table(["format", *short], ds_rows),
        ("**Values flushed to zero (%)**, nearest_even: the small values a format's range cannot hold after scaling "
        "(log-uniform data spreads over 16 binades)."),
        _table(["format", *short], uf_rows),
        _figure(figs, "error_histogram.png", f"signed rounding error of {q['histogram_format']} in ulps: "
                "nearest modes stay within ±0.5 ulp, directed and stochastic modes within ±1"),
        "### Dynamic range: SQNR against the input's scale",
        ("Gaussian data times 2^k, cast to each format with no scale (saturating). A float format keeps a near-constant "
        "SQNR over its exponent range and falls off at both ends (subnormals below, clipping above); an integer "
        "format has a single peak."),
        _table(["format", "peak SQNR (dB)", "at scale", "binades within 6 dB of the peak"], _range_rows(results)),
        _figure(figs, "sqnr_vs_scale.png", "SQNR against input scale; the flat part is the usable range"),
    ]
    return "\n\n".join(text)


def _range_rows(results):
    rows = []
    for f in results["config"]["formats"]:
        pts = [r for r in results["range"] if r["format"] == f and r["sqnr_db"] is not None
               and math.isfinite(r["sqnr_db"])]
        if not pts:
            rows.append([f"`{f}`", "n/a", "", ""])
            continue
        best = max(pts, key=lambda r: r["sqnr_db"])
        scales = sorted(r["scale"] for r in results["range"] if r["format"] == f)
        step = math.log2(scales[1] / scales[0]) if len(scales) > 1 else 1
        within = sum(1 for r in pts if r["sqnr_db"] >= best["sqnr_db"] - 6)
        span = f"{within * step:g}" + (" (all: the whole sweep)" if within == len(scales) else "")
        rows.append([f"`{f}`", _db(best["sqnr_db"]), f"2^{round(math.log2(best['scale']))}", span])
    return rows


def _section_scaled(results, figs) -> str:
    s = results["scaled"]
    if not s["elements"]:
        return "## 3. Scaled against unscaled quantization\n\nNo format of at most 8 bits was selected."
    heads = [SCHEME_NAMES[k] for k in s["schemes"]]
    by = {(r["format"], r["scheme"], r.get("dataset")): r for r in s["rows"] if "error" not in r}

    def cell(f, k, ds):
        r = by.get((f, k, ds))
        if r is None:
            return "–"
        mark = " †" if (r.get("nan_produced") or r.get("overflow")) else ""
        return _db(r["sqnr_db"]) + mark

    parts = ["## 3. Scaled against unscaled quantization; MX and NVFP4 against per-tensor",
             ("The element formats of at most 8 bits, with no scale (a plain cast, saturating), one scale per tensor, "
             "per row (the reduction axis: per output channel of a weight, per token of an activation), per block of "
             "32 along the row with an FP32 scale, OCP MX v1.0 (block 32, power-of-two E8M0 scale) and NVIDIA NVFP4 "
             "(E2M1 elements, block 16, E4M3 scale and an FP32 tensor scale). Cells are SQNR in dB; – means the "
             "scheme does not apply (MX has no codebook elements; NVFP4 is E2M1 only); † marks NaN or overflow.")]
    if s.get("note"):
        parts.append(f"> **Note:** {s['note']}; only the cast and the per-tensor scale were measured.")
    for ds in ("weight/gaussian", "activation/heavy_tailed", None):
        if ds is None:
            rows = []
            for f in s["elements"]:
                cells = []
                for k in s["schemes"]:
                    vals = [r["sqnr_db"] for (ff, kk, d), r in by.items() if ff == f and kk == k]
                    cells.append(_db(_mean(vals)) if vals else "–")
                rows.append([f"`{f}`", *cells])
            parts += ["**Mean over the 8 tensors:**", _table(["element", *heads], rows)]
        else:
            rows = [[f"`{f}`", *[cell(f, k, ds) for k in s["schemes"]]] for f in s["elements"]]
            parts += [f"**`{ds}`:**", _table(["element", *heads], rows)]
    cols = results["config"]["tensor_shape"][1]
    bits = {**SCHEME_BITS, "row": f"{32 / cols:.2g}"}
    parts.append("Storage cost of the scales, in bits per value on top of the element: "
                 + ", ".join(f"{SCHEME_NAMES[k]} {bits[k]}" for k in s["schemes"]) + ".")
    parts.append(_figure(figs, "scaled_vs_unscaled.png", "SQNR by element format and scaling scheme"))
    return "\n\n".join(parts)


def _section_matmul(results, figs) -> str:
    m = results["matmul"]
    n = np.asarray(m["n"])
    picks = sorted({int(n[np.argmin(np.abs(n - k))]) for k in (16, 256, m["k_max"])})
    rows = []
    for c in m["curves"]:
        over = float(np.max(c["exceed_probabilistic"]))
        for k in picks:
            i = int(np.where(n == k)[0][0])
            rows.append([f"`{c['accumulator']}` ({c['layout']})", c["rounding"], _num(c["u"]), str(k),
                         _num(c["median"][i]), _num(c["max"][i]), _num(c["deterministic"][i]),
                         _num(c["probabilistic"][i]), f"{100 * over:.0f}%"])
    return "\n\n".join([
        "## 4. Dot products: error against K, per accumulator",
        (f"Each entry of a matmul is a dot product of length K. Here a, b ~ U[0, 1) (float32, {m['trials']} "
        "independent dot products), every product and every addition rounded into the accumulator (sequentially, "
        "each rounding exact: `numfmt.analysis.dot_partials`). The error is |ŝ − s| / Σ|aᵢbᵢ|. Bounds: the "
        "deterministic γ_K = Ku/(1 − Ku) (Higham 2002, §3.1), always valid; Higham & Mary's (2019) λ√K·u, valid with "
        f"probability ≥ {m['confidence']:.0%} *if* the rounding errors were independent and of mean zero, a model "
        "that round to nearest breaks when the sum stagnates; and the same bound for stochastic rounding, where "
        "Connolly, Higham & Mary (2021) prove it (with u = 2^(1−p), the bound of one stochastic rounding)."),
        _table(["accumulator", "rounding", "u", "K", "median error", "max error", "γ_K", "λ√K·u bound",
                "trials over λ√K·u (worst K)"], rows),
        _matmul_reading(m),
        _hardware_table(m, picks),
        _figure(figs, "matmul_error_vs_k.png", "relative error of length-K dot products: median, 10-90% band and "
                "largest over the trials; dashed and dotted: the bounds (γ_n ends where Ku ≥ 1)"),
    ])


def _hardware_table(m, picks) -> str:
    """The same error for the matmul profiles users run on modelled H100 tensor cores."""
    hw = m.get("hardware") or []
    if not hw:
        return ""
    n = np.asarray(m["n"])
    rows = []
    for c in hw:
        for k in picks:
            i = int(np.where(n == k)[0][0])
            rows.append([f"`{c['profile']}`", c["operands"], str(k), _num(c["median"][i]), _num(c["max"][i]),
                         f"{100 * c['mean_signed'][i]:+.3g} %"])
    return "\n\n".join([
        ("The products users run: the same a, b rounded to each profile's operand format (nearest even), each "
         "length-K dot product computed by the profile's tensor-core model (`numfmt.tensorcore.tensorcore_dot`, "
         "what `qmatmul` runs; fitted bit for bit to recorded H100 output, docs/hardware.md), against the exact dot "
         "product of the rounded operands. The fast FP8 accumulation truncates, so its error is one-sided and grows "
         "about linearly with K; promotion every 128 (`h100_fp8`) keeps it flat."),
        _table(["profile", "operands", "K", "median error", "max error", "mean signed error"], rows),
    ])


def _matmul_reading(m) -> str:
    """What the curves show in this run, stated from the numbers."""
    lines = []
    for c in m["curves"]:
        worst = float(np.max(c["exceed_probabilistic"]))
        over_det = float(np.max(c["exceed_deterministic"]))
        if over_det > 0:
            lines.append(f"`{c['accumulator']}` {c['rounding']}: {over_det:.0%} of the trials exceed γ_K at some K "
                         "(a bug: γ_K is a theorem)")
        if worst > 1 - m["confidence"]:
            lines.append(f"`{c['accumulator']}` {c['rounding']}: up to {worst:.0%} of the trials exceed the "
                         f"probabilistic bound λ√K·u")
    ratios = []
    for acc in dict.fromkeys(c["accumulator"] for c in m["curves"]):
        cs = {c["rounding"]: c for c in m["curves"] if c["accumulator"] == acc}
        rn, sr = cs["nearest_even"]["median"][-1], cs["stochastic"]["median"][-1]
        ratios.append(f"`{acc}` {rn / sr:.2g}×" if sr > 0 else f"`{acc}` n/a")
    text = ("Read it as: while K·u is small, both roundings grow like √K, well below γ_K. Once the running sum is "
            "so large that a new product is below half an ulp of it, round to nearest stagnates: its error grows "
            "about linearly and bends toward 1 (nothing more is added), while stochastic rounding keeps growing like "
            f"√K. At K = {m['k_max']}, median error of nearest_even over stochastic: " + ", ".join(ratios) + ". ")
    if lines:
        text += "Bounds exceeded in this run: " + "; ".join(lines) + "."
    else:
        text += ("In this run no trial exceeded γ_K (a theorem) or the probabilistic bound (which holds with "
                 f"probability ≥ {m['confidence']:.0%}).")
    return text


def _section_stochastic(results, figs) -> str:
    st = results["stochastic"]
    parts = ["## 5. Stochastic rounding: bias and stagnation"]
    if st["bias"]:
        rows = [[f"`{r['format']}`", r["rounding"], f"{r['mean_ulp']:+.4f} ± {2 * r['stderr_ulp']:.4f}",
                 f"{r['expected_ulp']:+.4f}", f"{r['rms_ulp']:.3f}"] for r in st["bias"]]
        parts += [(f"**Bias.** x ~ U[1, 2) ({st['bias'][0]['n']} values); mean signed error in ulps with a 2-standard-"
                  "error interval, and the value theory expects: 0 for nearest and exact stochastic rounding, −1/2 for "
                  "truncation, −2^-(r+1) for stochastic rounding that truncates the fraction to r random bits "
                  "(`rbits=r`, `sr_variant='truncate'`), about 0 for the P3109 `unbiased` variant."),
                  _table(["format", "rounding", "mean error (ulp)", "expected", "RMS error (ulp)"], rows),
                  _figure(figs, "sr_bias.png", "mean rounding error in ulps with ±2 standard errors")]
    else:
        parts.append("No float format of at most 16 bits was selected, so the bias was not measured.")
    if st["harmonic"]:
        rows = [[f"`{h['accumulator']}`", str(h["n"]), f"{h['exact']:.4f}",
                 f"{h['nearest_even']:.6g} (final from k = {h['nearest_even_stalls_at']})",
                 f"{h['stochastic_mean']:.4f} ± {h['stochastic_std']:.4f}"] for h in st["harmonic"]]
        parts += [("**Harmonic series** Σ 1/k computed in the accumulator format (each term rounded, then added). "
                  "Round to nearest stops growing once 1/k is below half an ulp of the sum; stochastic rounding "
                  "(mean ± standard deviation over the runs) keeps tracking the exact value."),
                  _table(["format", "terms", "exact", "nearest_even", "stochastic"], rows)]
        parts.append("**Stagnation.** 1 plus a quarter of an ulp of 1, added K times: round to nearest never moves; "
                     "stochastic rounding moves up with probability 1/4 per step and is right on average.")
        parts.append(_figure(figs, "stagnation.png", "running sums: exact (dashed), nearest_even, stochastic runs"))
    return "\n\n".join(parts)


# ---- results.json -----------------------------------------------------------------------------


def jsonable(obj):
    """``obj`` with NumPy values as lists / numbers and non-finite floats as "nan", "inf", "-inf"."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    if obj is None or isinstance(obj, str):
        return obj
    return getattr(obj, "name", str(obj))


def _compact(results: dict) -> dict:
    """The results with the large arrays summarized (histogram counts, sums on the n grid)."""
    out = dict(results)
    q = dict(results["quantization"])
    edges = np.linspace(-1, 1, 81)
    q["histogram"] = {"edges_ulp": edges, **{k: np.histogram(v, bins=edges)[0] for k, v in q["histogram"].items()}}
    out["quantization"] = q
    st = dict(results["stochastic"])
    grid = np.asarray(results["matmul"]["n"]) - 1
    stag = []
    for s in st["stagnation"]:
        entry = {k: s[k] for k in ("format", "increment", "start")}
        entry["steps"] = np.asarray(s["steps"])[grid]
        entry["exact"] = np.asarray(s["exact"])[grid]
        if "nearest_even" in s:
            entry["nearest_even"] = np.asarray(s["nearest_even"])[grid, 0]
        if "stochastic" in s:
            runs = np.asarray(s["stochastic"])[grid]
            entry.update(stochastic_mean=runs.mean(1), stochastic_min=runs.min(1), stochastic_max=runs.max(1))
        stag.append(entry)
    st["stagnation"] = stag
    out["stochastic"] = st
    return out


def write_json(results: dict, out) -> str:
    """Write ``results.json`` (strict JSON: no NaN literals) into ``out``; returns its path."""
    path = os.path.join(out, "results.json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(jsonable(_compact(results)), fh, allow_nan=False, indent=1)
    return path


# ---- the printed summary ----------------------------------------------------------------------


def summary(results: dict, out, files) -> str:
    """A few lines and a table for the terminal."""
    cfg = results["config"]
    q = results["quantization"]["rows"]
    s = results["scaled"]
    act = "activation/heavy_tailed"
    rows = []
    for f in cfg["formats"]:
        rn = [r for r in q if r["format"] == f and r["rounding"] == "nearest_even" and "error" not in r]
        line = [f, str(next((r["bits"] for r in results["format_table"] if r["name"] == f), "")),
                _db(_mean(r["sqnr_db"] for r in rn))]
        cand = [r for r in s["rows"] if r["format"] == f and r.get("dataset") == act and "error" not in r]
        if cand:
            best = max(cand, key=lambda r: r["sqnr_db"] if math.isfinite(r["sqnr_db"]) else -1e9)
            worst = min(cand, key=lambda r: r["sqnr_db"] if math.isfinite(r["sqnr_db"]) else -1e9)
            line += [f"{SCHEME_NAMES[best['scheme']]} {_db(best['sqnr_db'])}",
                     f"{SCHEME_NAMES[worst['scheme']]} {_db(worst['sqnr_db'])}"]
        else:
            line += ["–", "–"]
        rows.append(line)
    heads = ["format", "bits", "SQNR dB (mean)", f"best on {act}", "worst"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]
    table = ["  ".join(h.ljust(w) for h, w in zip(heads, widths)), "  ".join("-" * w for w in widths)]
    table += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    m = results["matmul"]
    dots = []
    for acc in dict.fromkeys(c["accumulator"] for c in m["curves"]):
        cs = {c["rounding"]: c for c in m["curves"] if c["accumulator"] == acc}
        dots.append(f"{acc} nearest {_num(cs['nearest_even']['median'][-1], '.2g')} / "
                    f"stochastic {_num(cs['stochastic']['median'][-1], '.2g')}")
    lines = [(f"\nnumfmt study: {len(cfg['formats'])} formats, 8 tensors of "
             f"{'x'.join(map(str, cfg['tensor_shape']))}, {cfg['seconds']:.1f} s"), "", *table, "",
             f"dot products, K={m['k_max']}, median relative error: " + "; ".join(dots)]
    for h in results["stochastic"]["harmonic"]:
        lines.append(f"harmonic sum of {h['n']} terms in {h['accumulator']} (exact {h['exact']:.3f}): nearest "
                     f"{h['nearest_even']:.4g}, stochastic {h['stochastic_mean']:.3f} ± {h['stochastic_std']:.3f}")
    pngs = [f for f in files if f.endswith(".png")]
    lines += ["", f"wrote report.md, results.json and {len(pngs)} figures to {out}"]
    return "\n".join(lines)
