"""Ready :class:`~numfmt.matmul.MatmulConfig` s for known hardware and recipes.

Each profile names its source in a comment here and in docs/matmul.md:
:func:`matmul_profile` looks one up by name.
"""

from __future__ import annotations

import dataclasses

from numfmt import formats as _formats
from numfmt import tensorcore as _tc
from numfmt.accumulator import Accumulator
from numfmt.matmul_config import MatmulConfig, OperandSpec

__all__ = ["MATMUL_PROFILES", "matmul_profile"]


def _mx(elem):
    return OperandSpec(elem, granularity="block", block_size=32, scale_fmt=_formats.E8M0, scale_rounding="floor")


def _raw(fmt, model):
    """A raw hardware product: operands cast to ``fmt`` (nearest even, saturating), no scales."""
    return MatmulConfig(OperandSpec(fmt), OperandSpec(fmt), model)


_NVFP4 = OperandSpec(_formats.E2M1, granularity="block", block_size=16, scale_fmt=_formats.E4M3, two_level=True)
# DeepSeek-V3's activations: 1 x 128 tiles along the contraction, FP32 scales.
_E4M3_BLOCK128 = OperandSpec(_formats.E4M3, granularity="block", block_size=128, scale_fmt=_formats.FP32)

_PROFILES = {
    # Plain FP32 (the reference: exact products, float32 sums in the native matmul's order).
    "fp32": MatmulConfig(),
    # BF16 operands, FP32 accumulation: mixed-precision training (Kalamkar et al. 2019,
    # arXiv 1905.12322), idealized (the native float32 matmul's sum). h100_bf16 is the
    # H100's own accumulation of the same product.
    "bf16_fp32acc": MatmulConfig(_formats.BF16, _formats.BF16),
    # Raw H100 tensor-core products, bit-exact models fitted to recorded H100 output
    # (numfmt.tensorcore, docs/hardware.md): cuBLASLt FP8 with fast accumulation (one
    # 14-bit truncating running sum), cuBLASLt's default FP8 mode (promotion to FP32
    # every 128), BF16 / FP16 / TF32 operands with float32 output, and FP32 on CUDA
    # cores (exact FMAs in order). Operands are cast to the hardware's dtype (nearest
    # even, saturating), unscaled. Kernels chosen by shape may split K: not modelled.
    "h100_fp8_fast_accum": _raw(_formats.E4M3, _tc.H100_FP8_FAST_ACCUM),
    "h100_fp8": _raw(_formats.E4M3, _tc.H100_FP8),
    "h100_bf16": _raw(_formats.BF16, _tc.H100_BF16),
    "h100_fp16": _raw(_formats.FP16, _tc.H100_FP16),
    "h100_tf32": _raw(_formats.TF32, _tc.H100_TF32),
    "h100_fp32": _raw(_formats.FP32, _tc.H100_FP32),
    # DeepSeek-V3 (arXiv 2412.19437) section 3.3: E4M3 operands with FP32 scales, one per
    # 1 x 128 activation block (along K) and one per 128 x 128 weight tile (128 output
    # columns x 128 contraction elements), the fast-accumulation tensor core, partial
    # sums promoted to FP32 every 128 elements and multiplied by the two block scales
    # there. NOT fitted to hardware (the recorded data hold no block scales; docs/matmul.md).
    "deepseek_v3_fp8": MatmulConfig(
        _E4M3_BLOCK128, dataclasses.replace(_E4M3_BLOCK128, block_rows=128),
        dataclasses.replace(_tc.H100_FP8_FAST_ACCUM, promotion_interval=128, name="deepseek_v3_fp8")),
    # OCP Microscaling Formats (MX) v1.0: blocks of 32, E8M0 scales (floor rule, §6.3),
    # FP32 accumulation of the block dot products.
    "mxfp8": MatmulConfig(_mx(_formats.E4M3), _mx(_formats.E4M3)),
    "mxfp4": MatmulConfig(_mx(_formats.E2M1), _mx(_formats.E2M1)),
    # NVIDIA NVFP4 (Blackwell): E2M1 in blocks of 16 with E4M3 scales and an FP32 tensor scale.
    "nvfp4": MatmulConfig(_NVFP4, _NVFP4),
    # TFLite int8 (Jacob et al. 2018, arXiv 1712.05877; TFLite's int8 quantization spec):
    # asymmetric per-tensor int8 activations, symmetric per-channel int8 weights in
    # [-127, 127], exact int32 accumulation; the integer-only pipeline with
    # requantization is numfmt.intgemm.
    "int8_tflite": MatmulConfig(
        OperandSpec(_formats.INT8, granularity="tensor", symmetric=False),
        OperandSpec(_formats.get("int8_narrow"), granularity="channel"),
        Accumulator(_formats.INT32)),
}

MATMUL_PROFILES = tuple(_PROFILES)


def matmul_profile(name: str) -> MatmulConfig:
    """A ready :class:`MatmulConfig` by name (sources in the comments and docs/matmul.md).

    ``fp32``, ``bf16_fp32acc``; the H100 tensor-core models fitted to recorded hardware
    output, ``h100_fp8_fast_accum``, ``h100_fp8``, ``h100_bf16``, ``h100_fp16``,
    ``h100_tf32``, ``h100_fp32`` (raw: unscaled operands cast to the hardware's dtype);
    the recipes ``deepseek_v3_fp8`` (not fitted to hardware), ``mxfp8``, ``mxfp4``,
    ``nvfp4``, ``int8_tflite``. Unknown names raise ValueError listing them. Change a
    field with ``dataclasses.replace``: e.g. ``rhs=OperandSpec(nf.E5M2)`` on an FP8
    profile gives the hardware's E4M3 x E5M2 product.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_")
    if key not in _PROFILES:
        raise ValueError(f"unknown matmul profile {name!r}; known profiles: {', '.join(MATMUL_PROFILES)}")
    return _PROFILES[key]
