"""The experiments of ``numfmt study``, one function per section of its report.

Each takes a :class:`Plan` (what to compute, from ``plan(formats, quick)``) and returns
plain data (dicts, lists, NumPy arrays); ``numfmt.study`` writes them out. They are
usable on their own, e.g. ``section_matmul(plan(quick=True))``. ``progress`` is an
optional callable ``progress(label, done, total)``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from numfmt import codec as _codec
from numfmt import formats as _formats
from numfmt import mx as _mx
from numfmt import scaled as _scaled
from numfmt.formats import FloatFormat
from numfmt.rounding import ROUNDING_MODES

__all__ = [
    "ALL_ROUNDINGS",
    "DEFAULT_FORMATS",
    "HARDWARE_PROFILES",
    "QUICK_FORMATS",
    "QUICK_ROUNDINGS",
    "Plan",
    "datasets",
    "hardware_vs_k",
    "plan",
    "scaled_by_tensor",
    "section_matmul",
    "section_quantization",
    "section_range",
    "section_scaled",
    "section_stochastic",
]

DEFAULT_FORMATS = ("fp16", "bf16", "e5m2", "e4m3", "e3m2", "e2m3", "e2m1", "int8", "int4", "nf4")
QUICK_FORMATS = ("bf16", "e5m2", "e4m3", "e2m1", "int8", "nf4")
ALL_ROUNDINGS = ROUNDING_MODES
QUICK_ROUNDINGS = ("nearest_even", "toward_zero", "stochastic")
#: The matmul profiles whose dot products the study measures against K: the H100
#: tensor-core models fitted to recorded hardware (numfmt.tensorcore), as users run them.
HARDWARE_PROFILES = ("h100_fp8_fast_accum", "h100_fp8", "h100_bf16", "h100_fp16")


def _no_progress(label, done, total):
    pass


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one run computes; ``plan()`` fills it from the options."""

    formats: tuple
    quick: bool
    roundings: tuple
    rows: int
    cols: int
    scales: tuple
    accumulators: tuple
    k_max: int
    trials: int
    schemes: tuple
    seed: int = 0


def plan(formats=None, quick: bool = False, seed: int = 0) -> Plan:
    """The study's settings: formats (default or quick set), roundings, sizes and trial counts."""
    names = formats or (QUICK_FORMATS if quick else DEFAULT_FORMATS)
    fmts = tuple(dict.fromkeys(_formats.get(f) for f in names))
    return Plan(
        formats=fmts,
        quick=quick,
        roundings=QUICK_ROUNDINGS if quick else ALL_ROUNDINGS,
        rows=64 if quick else 256,
        cols=256 if quick else 1024,
        scales=tuple(2.0 ** k for k in range(-32, 32, 2)),
        accumulators=(_formats.BF16, _formats.FP16) if quick else (_formats.FP32, _formats.BF16, _formats.FP16, _formats.E8M13),
        k_max=2048 if quick else 8192,
        trials=32 if quick else 64,
        schemes=("cast", "tensor", "mx", "nvfp4") if quick else ("cast", "tensor", "row", "block32", "mx", "nvfp4"),
        seed=seed,
    )


def datasets(p: Plan) -> tuple[list[str], np.ndarray]:
    """The 8 synthetic tensors, stacked ``(8, rows, cols)``: weight-like and activation-like."""
    from numfmt.analysis.data import DISTRIBUTIONS, activation_like, weight_like

    names, arrays = [], []
    for i, dist in enumerate(DISTRIBUTIONS):
        names.append(f"weight/{dist}")
        arrays.append(weight_like(dist, p.rows, p.cols, seed=p.seed + i))
    for i, dist in enumerate(DISTRIBUTIONS):
        names.append(f"activation/{dist}")
        arrays.append(activation_like(dist, p.rows, p.cols, seed=p.seed + 100 + i))
    return names, np.stack(arrays)


def scaled_by_tensor(x, fmt, rounding, key):
    """One FP32 absmax scale per tensor (axis 0 indexes tensors): :func:`numfmt.scaled.quantize_scaled`
    with the scale shared along every other axis.

    Returns ``(dequantized, y, q)``: the values, and ``x / s`` with its quantized value.
    """
    import jax.numpy as jnp

    x = jnp.asarray(x)
    qa = _scaled.quantize_scaled(x, fmt, axis=tuple(range(1, x.ndim)), rounding=rounding,
                                 key=key if rounding == "stochastic" else None)
    y = x / qa.scale  # the element values before rounding, as quantize_scaled forms them
    return qa.dequantize(), y, _codec.decode(qa.codes, qa.fmt, jnp.float32)


def _uses_scale(fmt) -> bool:
    """Formats used with a scale in practice: all but the wide (> 8-bit) float formats."""
    return not (isinstance(fmt, FloatFormat) and fmt.bits > 8)


def section_quantization(p: Plan, names, X, progress=_no_progress) -> dict:
    """Error of every format x rounding mode on every tensor."""
    import jax

    from numfmt.analysis.metrics import error_stats, ulp_error

    rows, hist = [], {}
    hist_fmt = _histogram_format(p.formats)
    combos = [(f, r) for f in p.formats for r in p.roundings]
    for i, (fmt, rounding) in enumerate(combos):
        key = jax.random.key(p.seed * 1000 + i)
        scaling = "tensor" if _uses_scale(fmt) else "none"
        try:
            if scaling == "tensor":
                deq, y, q = scaled_by_tensor(X, fmt, rounding, key)
            else:
                deq = _codec.quantize(X, fmt, rounding, key=key if rounding == "stochastic" else None, saturate=True)
            deq = np.asarray(deq)
        except ValueError as exc:  # e.g. a codebook format with a directed mode
            rows.append({"format": fmt.name, "rounding": rounding, "scaling": scaling, "error": str(exc)})
            progress("format x rounding", i + 1, len(combos))
            continue
        for d, name in enumerate(names):
            stats = error_stats(X[d], deq[d], None if scaling == "tensor" else fmt)
            rows.append({"dataset": name, "format": fmt.name, "rounding": rounding, "scaling": scaling, **stats})
        if fmt == hist_fmt and isinstance(fmt, FloatFormat):
            ys, qs = (np.asarray(y[0]), np.asarray(q[0])) if scaling == "tensor" else (X[0], deq[0])
            hist[rounding] = ulp_error(ys, qs, fmt, signed=True).ravel()
        progress("format x rounding", i + 1, len(combos))
    return {"rows": rows, "histogram_format": None if hist_fmt is None else hist_fmt.name, "histogram": hist}


def _histogram_format(formats):
    floats = [f for f in formats if isinstance(f, FloatFormat) and f.bits <= 16]
    for f in floats:
        if f.name == "e4m3":
            return f
    small = [f for f in floats if f.bits <= 8]
    return (small or floats or [None])[0]


def section_range(p: Plan, X_shape, progress=_no_progress) -> list:
    """SQNR against input scale: Gaussian data times 2**k, cast (saturating) to each format."""
    from numfmt.analysis.data import sample
    from numfmt.analysis.metrics import error_stats

    total = int(np.prod(X_shape))
    per = total // len(p.scales)
    g = sample("gaussian", (per,), seed=p.seed + 7)
    base = np.zeros(total, np.float32)
    rows = []
    stacked = np.concatenate([(g * np.float32(s)).astype(np.float32) for s in p.scales])
    base[: stacked.size] = stacked
    data = base.reshape(X_shape)  # the shape of the tensors: the cast's compiled code is shared
    for i, fmt in enumerate(p.formats):
        out = np.asarray(_codec.quantize(data, fmt, "nearest_even", saturate=True)).reshape(-1)
        for j, s in enumerate(p.scales):
            sl = slice(j * per, (j + 1) * per)
            st = error_stats(base[sl], out[sl], fmt)
            rows.append({"format": fmt.name, "scale": s, "sqnr_db": st["sqnr_db"], "rel_rms": st["rel_rms"],
                         "saturated": st["saturated"], "underflow": st["underflow"]})
        progress("formats", i + 1, len(p.formats))
    return rows


def section_scaled(p: Plan, names, X, quant_rows, progress=_no_progress) -> dict:
    """Cast, per-tensor, per-row, per-block and MX / NVFP4 scaling of each small element format."""
    from numfmt.analysis.metrics import error_stats

    elems = [f for f in p.formats if f.bits <= 8 and getattr(f, "signed", True)]
    schemes = list(p.schemes)
    tensor = {(r["format"], r["dataset"]): r for r in quant_rows
              if r.get("rounding") == "nearest_even" and "dataset" in r}
    rows = []
    jobs = [(f, s) for f in elems for s in schemes]
    for i, (fmt, scheme) in enumerate(jobs):
        progress("element format x scheme", i, len(jobs))
        bits = None
        deq = None
        try:
            if scheme == "cast":
                deq = np.asarray(_codec.quantize(X, fmt, "nearest_even", saturate=True))
                bits = fmt.bits
            elif scheme == "tensor":
                for d, name in enumerate(names):
                    r = tensor.get((fmt.name, name))
                    if r is not None:
                        rows.append({**{k: v for k, v in r.items() if k not in ("rounding", "scaling")},
                                     "scheme": "tensor", "bits_per_value": fmt.bits + 32 / X[d].size})
                continue
            elif scheme == "row":
                q = _scaled.quantize_scaled(X, fmt, axis=2)
                deq, bits = np.asarray(q.dequantize()), fmt.bits + 32 / X.shape[2]
            elif scheme == "block32":
                q = _scaled.quantize_scaled(X, fmt, axis=2, block_size=32)
                deq, bits = np.asarray(q.dequantize()), fmt.bits + 1.0
            elif scheme == "mx":
                if fmt.kind == "codebook":
                    continue
                q = _mx.mx_quantize(X, fmt, axis=-1)
                deq, bits = np.asarray(q.dequantize()), fmt.bits + 0.25
            elif scheme == "nvfp4":
                if fmt.name != "e2m1":
                    continue
                deq = np.stack([np.asarray(_mx.nvfp4_quantize(X[d], axis=-1).dequantize()) for d in range(len(X))])
                bits = 4 + 8 / 16 + 32 / X[0].size
        except (ValueError, TypeError) as exc:
            rows.append({"format": fmt.name, "scheme": scheme, "error": str(exc)})
            continue
        for d, name in enumerate(names):
            stats = error_stats(X[d], deq[d], fmt if scheme == "cast" else None)
            rows.append({"dataset": name, "format": fmt.name, "scheme": scheme, "bits_per_value": bits, **stats})
    progress("element format x scheme", len(jobs), len(jobs))
    return {"rows": rows, "schemes": schemes, "elements": [f.name for f in elems]}


def _n_grid(k_max: int) -> np.ndarray:
    """About 48 lengths from 1 to ``k_max``, evenly spaced on a log scale, powers of two included."""
    logs = np.round(np.logspace(0, math.log10(k_max), 48)).astype(int)
    pow2 = 2 ** np.arange(int(math.log2(k_max)) + 1)
    return np.unique(np.concatenate([logs, pow2[pow2 <= k_max], [k_max]]))


def section_matmul(p: Plan, progress=_no_progress) -> dict:
    """Relative error of length-n dot products against n, per accumulator and rounding."""
    import jax

    from numfmt.analysis.accumulate import dot_partials
    from numfmt.analysis.bounds import dot_product_bounds

    rng = np.random.default_rng(p.seed + 3)
    a = rng.random((p.k_max, p.trials), dtype=np.float32)
    b = rng.random((p.k_max, p.trials), dtype=np.float32)
    grid = _n_grid(p.k_max)
    out = {"n": grid.tolist(), "trials": p.trials, "k_max": p.k_max, "data": "a, b ~ U[0, 1) float32",
           "confidence": 0.99, "curves": []}
    jobs = [(acc, r) for acc in p.accumulators for r in ("nearest_even", "stochastic")]
    for i, (acc, rounding) in enumerate(jobs):
        progress("accumulator x rounding", i, len(jobs))
        comp, exact, mag = dot_partials(a, b, acc, rounding, key=jax.random.key(p.seed + 11 + i))
        rel = np.abs(comp - exact) / mag
        rel_g = rel[grid - 1]  # (len(grid), trials)
        bnd = dot_product_bounds(grid, acc, rounding, confidence=0.99)
        out["curves"].append({
            "accumulator": acc.name, "layout": f"e{acc.exp_bits}m{acc.man_bits}", "rounding": rounding,
            "u": bnd["u"], "median": np.median(rel_g, axis=1), "mean": rel_g.mean(axis=1), "max": rel_g.max(axis=1),
            "min": rel_g.min(axis=1),
            "deterministic": bnd["deterministic"], "probabilistic": bnd["probabilistic"], "lam": bnd["lam"],
            "rigorous": bnd["rigorous"],
            "exceed_deterministic": (rel_g > bnd["deterministic"][:, None]).mean(axis=1),
            "exceed_probabilistic": (rel_g > bnd["probabilistic"][:, None]).mean(axis=1),
            "trials_rel": rel_g,
        })
    progress("accumulator x rounding", len(jobs), len(jobs))
    out["hardware"] = hardware_vs_k(a, b, grid, HARDWARE_PROFILES[:2] if p.quick else HARDWARE_PROFILES)
    return out


def hardware_vs_k(a, b, grid, profiles) -> list:
    """Error of length-n dot products against n for matmul profiles with a tensor-core model.

    ``a``, ``b``: ``(k_max, trials)`` float32; each trial's operands are rounded to the
    profile's operand formats (nearest even, as its ``OperandSpec`` does), and the dot
    product of the first ``n`` elements, for each ``n`` of ``grid``, is computed by the
    profile's :class:`~numfmt.tensorcore.TensorCoreModel` (:func:`numfmt.tensorcore.tensorcore_dot`,
    the function ``qmatmul`` runs; zeros past ``n`` change nothing for a model that does
    not split K). The error is relative to the exact dot product of the rounded
    operands (float64; the products are exact).
    """
    import jax.numpy as jnp

    from numfmt.matmul_profiles import matmul_profile
    from numfmt.tensorcore import tensorcore_dot

    k_max, trials = a.shape
    mask = (np.arange(k_max)[None, :] < np.asarray(grid)[:, None]).astype(np.float32)  # (G, K)
    curves = []
    for name in profiles:
        cfg = matmul_profile(name)
        model = cfg.accumulator
        qa = np.asarray(_codec.quantize(a.T, cfg.lhs.fmt, saturate=True), np.float32)  # (T, K)
        qb = np.asarray(_codec.quantize(b.T, cfg.rhs.fmt, saturate=True), np.float32)
        ma = (mask[:, None, :] * qa[None]).reshape(len(grid) * trials, 1, k_max)
        mb = (mask[:, None, :] * qb[None]).reshape(len(grid) * trials, 1, k_max)
        got = np.asarray(tensorcore_dot(jnp.asarray(ma), jnp.asarray(mb), model), np.float64)
        got = got.reshape(len(grid), trials)
        exact = np.cumsum(qa.astype(np.float64) * qb, axis=1)[:, np.asarray(grid) - 1].T  # (G, T)
        mag = np.cumsum(np.abs(qa.astype(np.float64) * qb), axis=1)[:, np.asarray(grid) - 1].T
        rel = np.abs(got - exact) / np.where(mag > 0, mag, 1)
        signed = np.where(exact != 0, got / np.where(exact != 0, exact, 1) - 1, 0)
        curves.append({"profile": name, "model": model.name, "operands": f"{cfg.lhs.fmt.name} x {cfg.rhs.fmt.name}",
                       "median": np.median(rel, axis=1), "mean": rel.mean(axis=1), "max": rel.max(axis=1),
                       "mean_signed": signed.mean(axis=1), "trials_rel": rel})
    return curves


def section_stochastic(p: Plan, X_shape, progress=_no_progress) -> dict:
    """Bias of stochastic rounding (exact and with few random bits); stagnation; harmonic sums."""
    import jax

    from numfmt.analysis.accumulate import harmonic_sum, stagnation

    out = {"bias": [], "stagnation": [], "harmonic": []}
    floats = [f for f in p.formats if isinstance(f, FloatFormat) and f.bits <= 16 and f.signed]
    bias_formats = floats[:1] if p.quick else floats[:3]
    rng = np.random.default_rng(p.seed + 5)
    x = (1 + rng.random(int(np.prod(X_shape)), dtype=np.float32)).reshape(X_shape)  # U[1, 2)
    variants = [("nearest_even", None, "truncate"), ("toward_zero", None, "truncate"),
                ("stochastic", None, "truncate"), ("stochastic", 3, "truncate"), ("stochastic", 3, "unbiased")]
    if not p.quick:
        variants += [("stochastic", 6, "truncate"), ("stochastic", 6, "unbiased")]
    for fmt in bias_formats:
        ulp = 2.0 ** -fmt.man_bits  # in [1, 2)
        for i, (rounding, rbits, variant) in enumerate(variants):
            key = jax.random.key(p.seed + 21 + i) if rounding == "stochastic" else None
            q = np.asarray(_codec.quantize(x, fmt, rounding, key=key, rbits=rbits, sr_variant=variant, saturate=True))
            e = (q.astype(np.float64) - x) / ulp
            label = rounding if rbits is None else f"stochastic, rbits={rbits} ({variant})"
            expected = {"nearest_even": 0.0, "toward_zero": -0.5, "stochastic": 0.0}[rounding]
            if rbits is not None and variant == "truncate":
                expected = -(2.0 ** -(rbits + 1))  # floor(f 2**r)/2**r - f, f uniform
            out["bias"].append({"format": fmt.name, "rounding": label, "mean_ulp": float(e.mean()),
                                "stderr_ulp": float(e.std() / math.sqrt(e.size)), "rms_ulp": float(np.sqrt((e * e).mean())),
                                "expected_ulp": expected, "n": int(e.size)})
    accs = [a for a in p.accumulators if a.man_bits < 20]
    exact = float(np.sum(1.0 / np.arange(1, p.k_max + 1)))  # the harmonic sum H(k_max), in float64
    for i, acc in enumerate(accs):
        progress("stagnation and harmonic sums", i, len(accs))
        inc = 2.0 ** -(acc.man_bits + 2)  # a quarter of the ulp of 1
        st = stagnation(acc, inc, p.k_max, start=1.0, runs=p.trials, seed=p.seed + 31 + i)
        out["stagnation"].append(st)
        rn = harmonic_sum(acc, p.k_max, "nearest_even", runs=p.trials)
        sr = harmonic_sum(acc, p.k_max, "stochastic", runs=p.trials, seed=p.seed + 41 + i)
        stall = int(np.argmax(rn[:, 0] == rn[-1, 0])) + 1
        out["harmonic"].append({"accumulator": acc.name, "n": p.k_max, "exact": exact,
                                "nearest_even": float(rn[-1, 0]), "nearest_even_stalls_at": stall,
                                "stochastic_mean": float(sr[-1].mean()), "stochastic_std": float(sr[-1].std())})
    progress("stagnation and harmonic sums", len(accs), len(accs))
    return out


