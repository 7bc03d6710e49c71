"""The recorded H100 cases (tests/data/h100) and the model that reproduces each output.

Shared by tests/test_tensorcore.py, which measures every figure, and by
``python -m tests.tensorcore_cases`` (run from the repository root), which prints the
table in docs/hardware.md from the same measurement. Each entry names the recorded output, the named model, and the
kernel structure the library chose for that shape (cuBLAS and XLA pick kernels by
shape: split-K, promotion of partial sums, sliced K). The kernel parameters were read
off the data one case at a time (docs/hardware.md says how); the arithmetic of the
matrix unit is the named model's and is the same for every case.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import ml_dtypes
import numpy as np

import numfmt as nf
from numfmt import tensorcore as tc

DATA = Path(__file__).resolve().parent / "data" / "h100"
FILES = ("fp8_gemm.npz", "gemm_16bit_tf32.npz", "more_fp8_bf16.npz", "fp8_epilogue_rowwise_splitk.npz")

_R = dataclasses.replace
FAST, SLOW = tc.H100_FP8_FAST_ACCUM, tc.H100_FP8
BF16, FP16, TF32, FP32 = tc.H100_BF16, tc.H100_FP16, tc.H100_TF32, tc.H100_FP32
TF32_XLA = _R(TF32, operand_rounding="nearest_away", name="h100_tf32 (XLA: ties away)")


@dataclasses.dataclass(frozen=True)
class Case:
    """One recorded output and how the model reproduces it."""

    case: str                 # the npz key prefix, e.g. "uniform01/K256"
    output: str               # the output's name, e.g. "fp8_fast"
    model: tc.TensorCoreModel
    kernel: str = ""          # the kernel structure, when not the named model's default
    out_fmt: object = nf.FP32
    scales: int | str | None = None  # index into the case's "scales", "rowwise", or None
    best: float | None = None  # not fitted: the best agreement reached (a known limit)
    why: str = ""

    @property
    def id(self) -> str:
        return f"{self.case}/{self.output}"


@functools.cache
def _npz(name):
    return np.load(DATA / name)


def array(key: str) -> np.ndarray:
    """The recorded array ``key`` from whichever file holds it."""
    for name in FILES:
        d = _npz(name)
        if key in d.files:
            return d[key]
    raise KeyError(key)


_DTYPES = {"e4m3": ml_dtypes.float8_e4m3fn, "e5m2": ml_dtypes.float8_e5m2, "bf16": ml_dtypes.bfloat16,
           "fp16": np.float16, "f32": np.float32}


def operand_kinds(case: str) -> tuple[str, str]:
    """The operand formats of a case, as the data README gives them."""
    for prefix, kinds in (("bf16", ("bf16", "bf16")), ("fp16", ("fp16", "fp16")), ("f32", ("f32", "f32")),
                          ("e4m3xe5m2", ("e4m3", "e5m2")), ("e5m2xe4m3", ("e5m2", "e4m3"))):
        if case.startswith(prefix):
            return kinds
    return "e4m3", "e4m3"


def operands(case: str) -> tuple[np.ndarray, np.ndarray]:
    """``a`` (M, K) and ``b`` (N, K) as float32 values (B transposed: contraction last)."""
    ka, kb = operand_kinds(case)
    a = array(f"{case}/A").view(_DTYPES[ka]).astype(np.float32)
    b = array(f"{case}/B").view(_DTYPES[kb]).astype(np.float32)
    return a, np.ascontiguousarray(b.T)


def _xla(model, k: int, *, promote=None, split=None, triton_reduce=False):
    """The model inside XLA's kernel for a 128 x 128 x K dot, as recorded.

    ``triton_reduce``: the split parts are added by XLA's Triton reduce fusion (optimized
    HLO compiled on the H100, jax 0.11.2: ``input_reduce_fusion``, num_warps 4, output tile
    [1, 64]): ``tl.sum`` over a [split, 64] tile in Triton's default layout, 2 warps along
    the parts, each thread holding every other part and adding them by a pairwise tree.
    """
    if promote:
        return _R(model, promotion_interval=promote), f"XLA: partial sums added in float32 every {promote}"
    if triton_reduce:
        return (_R(model, split_k=split, split_k_granule=1, split_k_partials=2, split_k_tree=True),
                f"XLA split-K: {split} parts of {k // split}, Triton reduce (2 warps' pairwise trees, then added)")
    if split:
        return (_R(model, split_k=split, split_k_granule=1, split_k_partials=4),
                f"XLA split-K: {split} parts of {k // split}, reduced in 4 partial sums")
    return model, ""


def _cases() -> list[Case]:
    out = []
    gemm = ["uniform01/K16", "uniform01/K32", "uniform01/K64", "uniform01/K128", "uniform01/K256",
            "uniform01/K1024", "uniform01/K4096", "normal/K32", "normal/K128", "normal/K1024", "logspread/K16",
            "logspread/K32", "logspread/K64", "logspread/K128", "probe_align/K16", "probe_align/K32",
            "probe_align/K64", "probe_align/K128", "probe_align/K256"]
    # XLA's partial-sum interval per fp8_gemm case (cases not listed: one running sum).
    promote = {"logspread/K64": 16, "logspread/K128": 16, "uniform01/K256": 32, "uniform01/K1024": 64,
               "normal/K1024": 64}
    fp8_xla = {"uniform01/K32": None, "normal/K32": None, "logspread/K32": None, "probe_align/K32": None,
               "probe_align/K64": None, "probe_align/K128": None, "uniform01/K256": 32, "uniform01/K1024": 64,
               "normal/K1024": 64}
    for case in gemm:
        k = int(case.rsplit("K", 1)[1])
        out += [Case(case, "fp8_fast", FAST), Case(case, "fp8_slow", SLOW)]
        p = promote.get(case)
        for name, model in (("bf16", _R(BF16, lhs_fmt=nf.BF16)), ("fp16", FP16), ("tf32", TF32_XLA), ("f32", FP32)):
            if case == "uniform01/K4096":  # 32 parts of 128 (K tile 64), then the Triton reduce
                out.append(Case(case, name, *_xla(model, k, split=32, triton_reduce=True)))
            else:
                out.append(Case(case, name, *_xla(model, k, promote=p)))
        # jax's own FP8 dot: XLA either runs FP8 MMAs (with partial sums every P) or
        # converts to BF16 and runs BF16 MMAs, by shape.
        if case == "uniform01/K4096":  # as the 16-bit dots above (FP8 parts add exactly in any order)
            m, kernel = _xla(FAST, k, split=32, triton_reduce=True)
            out.append(Case(case, "jax_f8", m, "XLA: FP8 MMAs; " + kernel[4:]))
        elif case in fp8_xla:
            p8 = fp8_xla[case]
            m = FAST if p8 is None else _R(FAST, promotion_interval=p8)
            kernel = "XLA: FP8 MMAs" + (f", partial sums added in float32 every {p8}" if p8 else "")
            out.append(Case(case, "jax_f8", m, kernel))
        else:
            m, kernel = _xla(BF16, k, promote=p)
            kernel = "XLA: converted to BF16, BF16 MMAs" + (f"; {kernel[5:]}" if kernel else "")
            if case == "probe_align/K256":
                # Triton mma.sync (2 warps, K tile 64) on FP8 operands converted to 16 bits:
                # dot-operand kWidth 4, so each MMA takes every other pair of K elements.
                m = _R(m, block_interleave=2)
                kernel = "XLA: converted to 16 bits, mma.sync m16n8k16 on K pairs dealt to 2 MMAs per 32"
            out.append(Case(case, "jax_f8", m, kernel))
    for case, model, kernel in (
            ("bf16_normal/K16", BF16, ""), ("bf16_normal/K32", BF16, ""),
            ("bf16_normal/K64", *_xla(BF16, 64, promote=16)), ("bf16_normal/K256", *_xla(BF16, 256, split=8)),
            ("bf16_logspread/K16", BF16, ""), ("bf16_logspread/K32", BF16, ""),
            ("bf16_probe_align/K16", BF16, ""), ("bf16_probe_align/K32", BF16, ""),
            ("fp16_normal/K16", FP16, ""), ("fp16_normal/K32", FP16, ""),
            ("fp16_normal/K256", *_xla(FP16, 256, split=8)),
            ("bf16_cancel/K16", BF16, ""), ("bf16_cancel/K64", BF16, "")):
        out.append(Case(case, "jax", model, kernel))
    for case in ("bf16_normal/K16", "bf16_normal/K32", "bf16_normal/K64", "bf16_normal/K256",
                 "bf16_logspread/K16", "bf16_logspread/K32", "bf16_probe_align/K16", "bf16_probe_align/K32"):
        out.append(Case(case, "torch_out16", BF16, "cuBLAS", out_fmt=nf.BF16))
    for case in ("fp16_normal/K16", "fp16_normal/K32", "fp16_normal/K256"):
        out.append(Case(case, "torch_out16", FP16, "cuBLAS", out_fmt=nf.FP16))
    sliced4 = "cuBLAS: sliced K, 4 parts of k-tiles of {g}, added in order"
    for k in (16, 32, 256):
        case = f"f32_normal/K{k}"
        out.append(Case(case, "jax_default", *(_xla(TF32_XLA, k, split=8) if k == 256 else (TF32_XLA, ""))))
        out.append(Case(case, "jax_highest", *(_xla(FP32, k, split=8) if k == 256 else (FP32, ""))))
        torch_tf32 = {16: (_R(TF32, block_size=4, promotion_interval=4),
                           "cuBLAS: MMAs of 4 products, partial sums added in float32 every 4"),
                      32: (TF32, "cuBLAS"),
                      256: (_R(TF32, promotion_interval=64), "cuBLAS: partial sums added in float32 every 64")}[k]
        out.append(Case(case, "torch_tf32", *torch_tf32))
        torch_fp32 = {16: (_R(FP32, promotion_interval=4), "cuBLAS: partial sums added in float32 every 4"),
                      32: (FP32, "cuBLAS"),
                      256: (_R(FP32, split_k=4, split_k_granule=8, split_k_interleave=True), sliced4.format(g=8))}[k]
        out.append(Case(case, "torch_fp32", *torch_fp32))
    for k in (32, 128):
        case = f"e4m3xe5m2_normal/K{k}"
        for mode, model in (("fast", _R(FAST, rhs_fmt=nf.E5M2)), ("slow", _R(SLOW, rhs_fmt=nf.E5M2))):
            out += [Case(case, f"fp8_{mode}", model), Case(case, f"fp8_{mode}_bf16out", model, out_fmt=nf.BF16)]
    for m in (16, 32, 64, 128):
        out += [Case(f"shape_uniform01/M{m}/K4096", "fp8_fast", FAST), Case(f"shape_uniform01/M{m}/K4096",
                                                                           "fp8_slow", SLOW)]
    for k in (16, 32, 128):
        case = f"e5m2xe4m3_wide/K{k}"
        out += [Case(case, "fp8_fast", _R(FAST, lhs_fmt=nf.E5M2)), Case(case, "fp8_slow", _R(SLOW, lhs_fmt=nf.E5M2))]
    for case, parts in (("splitk_uniform01/M64/K16384", 6), ("splitk_uniform01/M32/K8192", 3),
                        ("splitk_uniform01/M16/K16384", 6), ("splitk_uniform01/M128/K16384", 6)):
        out.append(Case(case, "fp8_fast", _R(FAST, split_k=parts),
                        f"cuBLASLt split-K: {parts} parts of 2816, added in order"))
        out.append(Case(case, "fp8_slow", SLOW))
    for k in (256, 1024):
        for i in range(5):
            for mode, model in (("fast", FAST), ("slow", SLOW)):
                out.append(Case(f"epilogue/K{k}", f"s{i}_fp8_{mode}_f32", model, scales=i))
                out.append(Case(f"epilogue/K{k}", f"s{i}_fp8_{mode}_bf16out", model, out_fmt=nf.BF16, scales=i))
    for k in (1024, 4096):
        for mode, model in (("fast", FAST), ("slow", SLOW)):
            out.append(Case(f"rowwise/K{k}", f"fp8_{mode}_bf16out", model, out_fmt=nf.BF16, scales="rowwise"))
    return out


CASES = _cases()


def _padded_k(model, k: int) -> int:
    """K rounded up to a few sizes, so that cases share compilations.

    Zero products change nothing in the named models (tests/test_tensorcore.py checks
    it), except where the split of K depends on K itself.
    """
    if model.split_k > 1:
        return k
    return next(b for b in (256, 1024, 4096, 16384) if b >= k)


_TILE, _BATCH = 128, 16


@functools.cache
def _results(model: tc.TensorCoreModel) -> dict:
    """The model's accumulator for every case it serves, computed in a few batched calls.

    Rows and columns are independent (each output depends on its own row and column
    only), so every case is cut into 128 x 128 tiles, zero-padded, and the tiles of all
    cases with the same padded K go through one compiled function, 16 at a time.
    """
    groups: dict[int, list] = {}
    for case in sorted({c.case for c in CASES if c.model == model}):
        a, b = operands(case)
        m, k = a.shape
        n = b.shape[0]
        kk = _padded_k(model, k)
        a = np.pad(a, [(0, -m % _TILE), (0, kk - k)])
        b = np.pad(b, [(0, _TILE - n), (0, kk - k)])
        for t in range(a.shape[0] // _TILE):
            groups.setdefault(kk, []).append((case, t, m, n, a[t * _TILE:(t + 1) * _TILE], b))
    out: dict[str, np.ndarray] = {}
    for tiles in groups.values():
        tiles += [tiles[-1]] * (-len(tiles) % _BATCH)  # whole batches: one compilation per K
        for start in range(0, len(tiles), _BATCH):
            chunk = tiles[start:start + _BATCH]
            acc = np.asarray(tc.tensorcore_dot(np.stack([x[4] for x in chunk]), np.stack([x[5] for x in chunk]), model))
            for (case, t, m, n, _, _), tile in zip(chunk, acc):
                full = out.setdefault(case, np.zeros((-(-m // _TILE) * _TILE, n), np.float32))
                full[t * _TILE:(t + 1) * _TILE] = tile[:, :n]
    return {case: v[:operands(case)[0].shape[0]] for case, v in out.items()}


def raw(case: str, model: tc.TensorCoreModel) -> np.ndarray:
    """The model's accumulator for a recorded case."""
    return _results(model)[case]


def model_output(c: Case) -> np.ndarray:
    """The model's output for one recorded case, epilogue included."""
    acc = raw(c.case, c.model)
    scale_a = scale_b = None
    if c.scales == "rowwise":
        scale_a, scale_b = array(f"{c.case}/scale_a"), array(f"{c.case}/scale_b")
    elif c.scales is not None:
        scale_a, scale_b = (float(v) for v in array(f"{c.case}/scales")[c.scales])
    if scale_a is None and c.out_fmt == nf.FP32:
        return acc
    return np.asarray(tc.tensorcore_epilogue(acc, scale_a=scale_a, scale_b=scale_b, out_fmt=c.out_fmt))


def agreement(c: Case) -> float:
    """The fraction of the case's outputs bit-identical to the hardware's."""
    hw = array(c.id)
    mine = model_output(c).astype(np.float32)
    return float(np.mean(mine.view(np.uint32) == hw.view(np.uint32)))


def _main():  # pragma: no cover - prints the agreement table of docs/hardware.md
    import sys
    import time

    only = sys.argv[1] if len(sys.argv) > 1 else ""
    print("| case | output | model | kernel | bit-identical |")
    print("| --- | --- | --- | --- | --- |")
    start = time.time()
    for c in CASES:
        if only not in c.id:
            continue
        frac = agreement(c)
        figure = "100 %" if frac == 1 else f"{100 * frac:.3f} %"
        note = " (not fitted)" if c.best is not None else ""
        print(f"| `{c.case}` | `{c.output}` | {c.model.name} | {c.kernel or 'as named'} | {figure}{note} |",
              flush=True)
    print(f"\n{len(CASES)} outputs, {time.time() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    _main()
