"""Re-record the H100 matrix-product data (tests/data/h100) on a machine with an NVIDIA GPU.

    python benchmarks/record_hardware.py --out /tmp/h100       # needs torch (CUDA) and jax[cuda]

Writes the four ``.npz`` files of tests/data/h100 in the same layout (keys
``CASE/K<k>/NAME``; ``A`` is M x K and ``B`` K x N, as bit patterns; outputs float32,
``_bf16out`` ones bfloat16 stored as float32), from fresh operands drawn as the data
README describes: cuBLASLt FP8 products through ``torch._scaled_mm`` (fast and default
accumulation, per-tensor and row-wise scales, float32 and bfloat16 outputs), BF16 /
FP16 / TF32 / float32 products through ``jax.lax.dot`` and ``jnp.matmul``, and torch's
16-bit and float32 products; and a fifth file, ``xla_inexact_parts.npz`` (XLA's split-K
dots with parts that are not exact, to fit the arithmetic inside Triton's parts; not
recorded yet). Then compare with ``python -m tests.tensorcore_cases``
after copying the files into tests/data/h100 (the operands differ from the recorded
ones, so kernel choices per shape can be re-checked too).

Nothing here runs without a CUDA GPU.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import ml_dtypes
import numpy as np

E4M3, E5M2, BF16 = ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2, ml_dtypes.bfloat16
SCALES = [(1.0, 1.0), (0.0625, 0.7), (0.3, 3.1), (0.001, 7.77), (123.456, 0.01)]


# ---- operands ----------------------------------------------------------------------------------


def _cast(x, dtype):
    return np.asarray(x, np.float32).astype(dtype)


def uniform01(rng, shape, dtype=E4M3):
    return _cast(rng.random(shape), dtype)


def normal(rng, shape, dtype=E4M3):
    return _cast(rng.standard_normal(shape), dtype)


def logspread(rng, shape, dtype=E4M3):
    """sign x 2**e x (1 + m/8), e in [-9, 8]."""
    e = rng.integers(-9, 9, shape)
    m = rng.integers(0, 8, shape)
    s = rng.choice([-1.0, 1.0], shape)
    return _cast(s * np.exp2(e) * (1 + m / 8), dtype)


def probe_a(rng, m, k, dtype=E4M3, top=8):
    """Each row: one large element and up to k-1 smaller ones 0..24 binades below it."""
    a = np.zeros((m, k), np.float32)
    for i in range(m):
        big = rng.integers(0, k)
        e = rng.integers(-2, top)
        a[i, big] = rng.choice([-1, 1]) * np.exp2(e) * (1 + rng.integers(0, 8) / 8)
        others = rng.choice(k, size=rng.integers(0, k), replace=False)
        same = rng.random() < 0.5
        for j in others:
            if j == big:
                continue
            sign = 1.0 if same else rng.choice([-1.0, 1.0])
            a[i, j] = sign * np.sign(a[i, big]) * np.exp2(e - rng.integers(0, 25)) * (1 + rng.integers(0, 8) / 8)
    return _cast(a, dtype)


def probe_b(rng, k, n=32, dtype=E4M3):
    """Columns: all ones, then 2**-8 .. 2**7, then random values."""
    b = np.empty((k, n), np.float32)
    b[:, 0] = 1.0
    for j in range(1, 17):
        b[:, j] = 2.0 ** (j - 9)
    b[:, 17:] = rng.standard_normal((k, n - 17)) * np.exp2(rng.integers(-4, 5, (k, n - 17)))
    return _cast(b, dtype)


def bits(x):
    return x.view({1: np.uint8, 2: np.uint16, 4: np.uint32}[x.dtype.itemsize])


# ---- products ----------------------------------------------------------------------------------


class Gpu:
    """The products the data README lists, on the first CUDA device."""

    def __init__(self):
        import jax  # GPU-only dependencies load here
        import jax.numpy as jnp
        import torch

        if not torch.cuda.is_available() or jax.default_backend() != "gpu":
            raise SystemExit("record_hardware.py needs a CUDA GPU visible to torch and to jax")
        self.torch, self.jax, self.jnp = torch, jax, jnp
        self.dev = torch.device("cuda")

    def _t(self, x):
        """A numpy array of E4M3 / E5M2 / BF16 / FP16 / FP32 values as a CUDA tensor (same bits)."""
        torch = self.torch
        if x.dtype in (np.float16, np.float32):
            return torch.from_numpy(np.ascontiguousarray(x)).to(self.dev)
        kind = {E4M3: torch.float8_e4m3fn, E5M2: torch.float8_e5m2, BF16: torch.bfloat16}[x.dtype.type]
        raw = np.ascontiguousarray(bits(x)).view(np.int16 if x.dtype.itemsize == 2 else np.uint8)
        return torch.from_numpy(raw).view(kind).to(self.dev)

    def scaled_mm(self, a, b, *, fast, scale_a=1.0, scale_b=1.0, out_bf16=False):
        """cuBLASLt FP8 GEMM via torch._scaled_mm (b column-major, as it requires)."""
        torch = self.torch
        ta, tb = self._t(a), self._t(b).t().contiguous().t()
        sa = torch.as_tensor(np.asarray(scale_a, np.float32), device=self.dev)
        sb = torch.as_tensor(np.asarray(scale_b, np.float32), device=self.dev)
        out = torch._scaled_mm(ta, tb, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16 if out_bf16 else torch.float32,
                               use_fast_accum=fast)
        return out.float().cpu().numpy()

    def torch_mm(self, a, b, tf32=None):
        torch = self.torch
        if tf32 is not None:
            torch.backends.cuda.matmul.allow_tf32 = tf32
        return (self._t(a) @ self._t(b)).float().cpu().numpy()

    def jax_dot(self, a, b, precision=None):
        jnp = self.jnp
        out = self.jax.lax.dot(jnp.asarray(a), jnp.asarray(b), precision=precision,
                               preferred_element_type=jnp.float32)
        return np.asarray(out, np.float32)


def _fp8_gemm(gpu, rng):
    out = {}
    cases = [("uniform01", k, uniform01) for k in (16, 32, 64, 128, 256, 1024, 4096)]
    cases += [("normal", k, normal) for k in (32, 128, 1024)]
    cases += [("logspread", k, logspread) for k in (16, 32, 64, 128)]
    cases += [("probe_align", k, None) for k in (16, 32, 64, 128, 256)]
    hi = gpu.jax.lax.Precision.HIGHEST
    for name, k, draw in cases:
        if draw is None:
            a, b = probe_a(rng, 1024, k), probe_b(rng, k)
        else:
            a, b = draw(rng, (128, k)), draw(rng, (k, 128))
        key = f"{name}/K{k}"
        out[f"{key}/A"], out[f"{key}/B"] = bits(a), bits(b)
        out[f"{key}/fp8_fast"] = gpu.scaled_mm(a, b, fast=True)
        out[f"{key}/fp8_slow"] = gpu.scaled_mm(a, b, fast=False)
        out[f"{key}/jax_f8"] = gpu.jax_dot(a, b)
        out[f"{key}/bf16"] = gpu.jax_dot(a.astype(BF16), b.astype(BF16))
        out[f"{key}/fp16"] = gpu.jax_dot(a.astype(np.float16), b.astype(np.float16))
        out[f"{key}/tf32"] = gpu.jax_dot(a.astype(np.float32), b.astype(np.float32))
        out[f"{key}/f32"] = gpu.jax_dot(a.astype(np.float32), b.astype(np.float32), precision=hi)
    return out


def _gemm_16bit_tf32(gpu, rng):
    out = {}
    hi = gpu.jax.lax.Precision.HIGHEST
    for name, dtype, ks, draw in (("bf16_normal", BF16, (16, 32, 64, 256), normal),
                                  ("bf16_logspread", BF16, (16, 32), logspread),
                                  ("bf16_probe_align", BF16, (16, 32), None),
                                  ("fp16_normal", np.float16, (16, 32, 256), normal)):
        for k in ks:
            if draw is None:
                a = probe_a(rng, 1024, k, dtype, top=30)
                b = probe_b(rng, k, dtype=dtype)
            else:
                a, b = draw(rng, (128, k), dtype), draw(rng, (k, 128), dtype)
            key = f"{name}/K{k}"
            out[f"{key}/A"], out[f"{key}/B"] = bits(a), bits(b)
            out[f"{key}/jax"] = gpu.jax_dot(a, b)
            out[f"{key}/torch_out16"] = gpu.torch_mm(a, b)
    for k in (16, 32, 256):
        a = rng.standard_normal((128, k)).astype(np.float32)
        b = rng.standard_normal((k, 128)).astype(np.float32)
        key = f"f32_normal/K{k}"
        out[f"{key}/A"], out[f"{key}/B"] = bits(a), bits(b)
        out[f"{key}/jax_default"] = gpu.jax_dot(a, b)
        out[f"{key}/jax_highest"] = gpu.jax_dot(a, b, precision=hi)
        out[f"{key}/torch_tf32"] = gpu.torch_mm(a, b, tf32=True)
        out[f"{key}/torch_fp32"] = gpu.torch_mm(a, b, tf32=False)
    for k in (32, 128):
        a, b = normal(rng, (128, k)), normal(rng, (k, 128), E5M2)
        key = f"e4m3xe5m2_normal/K{k}"
        out[f"{key}/A"], out[f"{key}/B"] = bits(a), bits(b)
        for mode, fast in (("fast", True), ("slow", False)):
            out[f"{key}/fp8_{mode}"] = gpu.scaled_mm(a, b, fast=fast)
            out[f"{key}/fp8_{mode}_bf16out"] = gpu.scaled_mm(a, b, fast=fast, out_bf16=True)
    return out


def _more_fp8_bf16(gpu, rng):
    out = {}
    a_all, b_all = uniform01(rng, (2048, 4096)), uniform01(rng, (4096, 2048))
    for m in (16, 32, 64, 128):
        a, b = a_all[:m], b_all[:, :m]
        key = f"shape_uniform01/M{m}/K4096"
        out[f"{key}/A"], out[f"{key}/B"] = bits(a), bits(b)
        out[f"{key}/fp8_fast"] = gpu.scaled_mm(a, b, fast=True)
        out[f"{key}/fp8_slow"] = gpu.scaled_mm(a, b, fast=False)
    for k in (16, 32, 128):
        a = _cast(rng.choice([-1, 1], (256, k)) * np.exp2(rng.integers(-14, 15, (256, k)))
                  * (1 + rng.integers(0, 4, (256, k)) / 4), E5M2)
        b = normal(rng, (k, 64))
        key = f"e5m2xe4m3_wide/K{k}"
        out[f"{key}/A"], out[f"{key}/B"] = bits(a), bits(b)
        out[f"{key}/fp8_fast"] = gpu.scaled_mm(a, b, fast=True)
        out[f"{key}/fp8_slow"] = gpu.scaled_mm(a, b, fast=False)
    for k in (16, 64):
        a = np.zeros((1024, k), np.float32)
        for i in range(1024):
            v = rng.standard_normal() * 2.0 ** rng.integers(-4, 5)
            a[i, 0], a[i, 1] = v, -v * (1 + rng.integers(-2, 3) / 128)
            small = rng.choice(np.arange(2, k), size=rng.integers(1, k - 1), replace=False)
            a[i, small] = rng.choice([-1, 1], small.size) * np.exp2(rng.integers(-30, 0, small.size))
        a = _cast(a, BF16)
        b = _cast(np.ones((k, 16)), BF16)
        key = f"bf16_cancel/K{k}"
        out[f"{key}/A"], out[f"{key}/B"] = bits(a), bits(b)
        out[f"{key}/jax"] = gpu.jax_dot(a, b)
    return out


def _fp8_epilogue_rowwise_splitk(gpu, rng):
    out = {}
    for k in (256, 1024):
        a, b = uniform01(rng, (128, k)), normal(rng, (k, 128))
        key = f"epilogue/K{k}"
        out[f"{key}/A"], out[f"{key}/B"] = bits(a), bits(b)
        out[f"{key}/scales"] = np.asarray(SCALES, np.float32)
        for i, (sa, sb) in enumerate(np.asarray(SCALES, np.float32)):
            for mode, fast in (("fast", True), ("slow", False)):
                out[f"{key}/s{i}_fp8_{mode}_f32"] = gpu.scaled_mm(a, b, fast=fast, scale_a=sa, scale_b=sb)
                out[f"{key}/s{i}_fp8_{mode}_bf16out"] = gpu.scaled_mm(a, b, fast=fast, scale_a=sa, scale_b=sb,
                                                                      out_bf16=True)
    for k in (1024, 4096):
        a, b = uniform01(rng, (128, k)), uniform01(rng, (k, 128))
        sa = rng.uniform(0.1, 4.0, (128, 1)).astype(np.float32)
        sb = rng.uniform(0.1, 4.0, (1, 128)).astype(np.float32)
        key = f"rowwise/K{k}"
        out[f"{key}/A"], out[f"{key}/B"] = bits(a), bits(b)
        out[f"{key}/scale_a"], out[f"{key}/scale_b"] = sa, sb
        for mode, fast in (("fast", True), ("slow", False)):
            out[f"{key}/fp8_{mode}_bf16out"] = gpu.scaled_mm(a, b, fast=fast, scale_a=sa, scale_b=sb, out_bf16=True)
    for m, k in ((64, 16384), (32, 8192), (16, 16384), (128, 16384)):
        a, b = uniform01(rng, (m, k)), uniform01(rng, (k, m))
        key = f"splitk_uniform01/M{m}/K{k}"
        out[f"{key}/A"], out[f"{key}/B"] = bits(a), bits(b)
        out[f"{key}/fp8_fast"] = gpu.scaled_mm(a, b, fast=True)
        out[f"{key}/fp8_slow"] = gpu.scaled_mm(a, b, fast=False)
    return out


def _xla_inexact_parts(gpu, rng):
    """XLA's split-K dots with parts that are not exact (not in tests/data/h100 yet).

    The recorded 128 x 128 x 4096 operands (``uniform01``) made each of XLA's 32 parts of
    128 exact, so the arithmetic inside a part (Triton's MMA loop) was never seen; on an
    H100 (2026-11-26) the ``H100_BF16`` model with XLA's split gave 34.363 % of live
    outputs on normal operands (docs/hardware.md). Recorded here for a fit: normal
    operands at K = 4096, and operands that are zero outside one part of 128 (the split
    adds exact zeros, so those outputs are one part's sum as the kernel forms it), both
    bf16 with float32 output and float32 at default precision and HIGHEST.
    """
    out = {}
    hi = gpu.jax.lax.Precision.HIGHEST
    for name, part in (("normal", None), ("onepart", 7)):
        a = rng.standard_normal((128, 4096)) * np.exp2(rng.integers(-3, 4, (128, 4096)))
        b = rng.standard_normal((4096, 128)) * np.exp2(rng.integers(-3, 4, (4096, 128)))
        if part is not None:
            keep = np.zeros(4096, bool)
            keep[128 * part:128 * (part + 1)] = True
            a, b = a * keep[None, :], b * keep[:, None]
        a16, b16 = a.astype(np.float32).astype(BF16), b.astype(np.float32).astype(BF16)
        key = f"xla_{name}/K4096"
        out[f"{key}/A"], out[f"{key}/B"] = bits(a16), bits(b16)
        out[f"{key}/bf16"] = gpu.jax_dot(a16, b16)
        a32, b32 = a.astype(np.float32), b.astype(np.float32)
        out[f"{key}/A32"], out[f"{key}/B32"] = bits(a32), bits(b32)
        out[f"{key}/tf32"] = gpu.jax_dot(a32, b32)
        out[f"{key}/f32"] = gpu.jax_dot(a32, b32, precision=hi)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the .npz files")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    gpu = Gpu()
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, fn in (("fp8_gemm", _fp8_gemm), ("gemm_16bit_tf32", _gemm_16bit_tf32),
                     ("more_fp8_bf16", _more_fp8_bf16), ("fp8_epilogue_rowwise_splitk", _fp8_epilogue_rowwise_splitk),
                     ("xla_inexact_parts", _xla_inexact_parts)):
        arrays = fn(gpu, rng)
        np.savez_compressed(args.out / f"{name}.npz", **{k: np.asarray(v) for k, v in arrays.items()})
        print(f"{name}.npz: {len(arrays)} arrays", flush=True)
    print(f"device: {gpu.torch.cuda.get_device_name()}, torch {gpu.torch.__version__}, jax {gpu.jax.__version__}")


if __name__ == "__main__":
    main()
