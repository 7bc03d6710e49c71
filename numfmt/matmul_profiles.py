"""Ready :class:`~numfmt.matmul.MatmulConfig` s for known hardware and recipes.

Each profile names its source in a comment here and in docs/matmul.md:
:func:`matmul_profile` looks one up by name.
"""

from __future__ import annotations

from numfmt import formats as _formats
from numfmt.accumulator import E8M13, Accumulator
from numfmt.matmul import MatmulConfig, OperandSpec

__all__ = ["MATMUL_PROFILES", "matmul_profile"]

_E4M3_BLOCK128 = OperandSpec(_formats.E4M3, granularity="block", block_size=128, scale_fmt=_formats.FP32)


def _mx(elem):
    return OperandSpec(elem, granularity="block", block_size=32, scale_fmt=_formats.E8M0, scale_rounding="floor")


_NVFP4 = OperandSpec(_formats.E2M1, granularity="block", block_size=16, scale_fmt=_formats.E4M3, two_level=True)

_PROFILES = {
    # Plain FP32 (the reference).
    "fp32": MatmulConfig(),
    # BF16 operands, FP32 accumulation: mixed-precision training (Kalamkar et al. 2019,
    # arXiv 1905.12322); A100/H100 tensor cores in BF16 mode.
    "bf16_fp32acc": MatmulConfig(_formats.BF16, _formats.BF16),
    # DeepSeek-V3 (arXiv 2412.19437) §3.3.2: E4M3 operands with fine-grained scales of
    # 128 contraction elements (FP32 scales); the H800 tensor core keeps ~14 bits of the
    # running sum (E8M13, truncating: later measurements of Hopper's FP8 MMA report
    # truncation), WGMMA instructions of K = 32, promotion to FP32 every 128 elements.
    "h100_fp8": MatmulConfig(_E4M3_BLOCK128, _E4M3_BLOCK128,
                             Accumulator(E8M13, dot_width=32, promotion_interval=128, rounding="toward_zero")),
    # The same without promotion: the whole contraction in the ~14-bit accumulator.
    "h100_fp8_no_promotion": MatmulConfig(_E4M3_BLOCK128, _E4M3_BLOCK128,
                                          Accumulator(E8M13, dot_width=32, rounding="toward_zero")),
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

    ``fp32``, ``bf16_fp32acc``, ``h100_fp8``, ``h100_fp8_no_promotion``, ``mxfp8``,
    ``mxfp4``, ``nvfp4``, ``int8_tflite``. Unknown names raise ValueError listing them.
    Change a field with ``dataclasses.replace``.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_")
    if key not in _PROFILES:
        raise ValueError(f"unknown matmul profile {name!r}; known profiles: {', '.join(MATMUL_PROFILES)}")
    return _PROFILES[key]
