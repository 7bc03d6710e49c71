"""The description of a quantized product: :class:`OperandSpec` and :class:`MatmulConfig`.

Kept apart from :mod:`numfmt.matmul`, which computes products, so that the ready
configs of :mod:`numfmt.matmul_profiles` are built on this module and the product
resolves profile names through them without an import circle.
"""

from __future__ import annotations

import dataclasses

from numfmt import formats as _formats
from numfmt.accumulator import Accumulator
from numfmt.checks import check_bool, check_int
from numfmt.formats import IntFormat
from numfmt.scheme import QuantScheme
from numfmt.tensorcore import TensorCoreModel

__all__ = ["GRANULARITIES", "MatmulConfig", "OperandSpec"]

GRANULARITIES = ("none", "tensor", "channel", "block")


@dataclasses.dataclass(frozen=True)
class OperandSpec:
    """How one operand of a product is quantized: a :class:`~numfmt.scheme.QuantScheme` along the contraction.

    Args:
      fmt: element format (a format object or a name).
      granularity: which values share a scale, along the contraction axis:
        ``"none"`` (no scale: ``quantize(x, fmt)``), ``"tensor"`` (one scale),
        ``"channel"`` (one per row of the lhs / column of the rhs, shared along the
        contraction: the scheme's ``axis`` is the contraction axis, the one meaning of
        "channel" in numfmt) or ``"block"`` (``block_size`` consecutive contraction elements).
      block_size: for ``"block"``: must divide the contraction length (no padding).
      block_rows: for ``"block"``: that many consecutive rows of the lhs (columns of the
        rhs: the axis that is not contracted) share each block's scale, so that a scale
        covers a ``block_rows x block_size`` tile (DeepSeek-V3's 128 x 128 weight tiles,
        arXiv 2412.19437 section 3.3). When it does not divide that axis, the last tile
        has the rows that are left (as DeepSeek-V3's reference kernels tile a weight in
        ceil-div blocks). None: 1.
      scale_fmt: the scales' format (FP32, BF16, E8M0, E4M3, ...).
      scale_rounding: ``"floor"``, ``"ceil"`` or ``"nearest"`` (:mod:`numfmt.scaled`);
        None: floor for power-of-two scale formats (OCP MX), nearest otherwise.
      rounding: the element rounding mode (``"stochastic"`` needs ``key=``).
      symmetric: False gives affine integers with a zero point (IntFormat, per tensor or channel).
      two_level: NVFP4's second level, an FP32 tensor scale over the block scales
        (``"block"`` with a non-power-of-two scale format, e.g. E2M1 with E4M3 scales).
      saturate: with ``"none"``, whether values past ``fmt.max`` saturate (default True,
        as FP8 training recipes clip; ``nf.quantize`` keeps the IEEE default False, where
        an overflow becomes inf or NaN). Scaled elements always saturate (OCP MX).
      nonfinite: ``"propagate"`` (a NaN or inf makes its scale group NaN, the OCP MX
        reference's rule) or ``"ignore"``.

    ``spec.scheme`` is the scheme of the operand laid out as ``(batch, rows, K)``.
    """

    fmt: object = _formats.FP32
    granularity: str = dataclasses.field(default="none", kw_only=True)
    block_size: int | None = dataclasses.field(default=None, kw_only=True)
    block_rows: int | None = dataclasses.field(default=None, kw_only=True)
    scale_fmt: object = dataclasses.field(default=_formats.FP32, kw_only=True)
    scale_rounding: str | None = dataclasses.field(default=None, kw_only=True)
    rounding: str = dataclasses.field(default="nearest_even", kw_only=True)
    symmetric: bool = dataclasses.field(default=True, kw_only=True)
    two_level: bool = dataclasses.field(default=False, kw_only=True)
    saturate: bool = dataclasses.field(default=True, kw_only=True)
    nonfinite: str = dataclasses.field(default="propagate", kw_only=True)
    scheme: QuantScheme = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {GRANULARITIES}, got {self.granularity!r}")
        if self.granularity == "block" and self.block_size is None:
            raise ValueError("granularity='block' needs block_size, a positive int; got None")
        if self.granularity != "block" and self.block_size is not None:
            raise ValueError(f"block_size is for granularity='block', got granularity={self.granularity!r}")
        if self.block_rows is not None:
            if self.granularity != "block":
                raise ValueError(f"block_rows is for granularity='block', got granularity={self.granularity!r}")
            object.__setattr__(self, "block_rows", check_int(self.block_rows, "block_rows", lo=1))
        symmetric = check_bool(self.symmetric, "symmetric")
        if not symmetric and self.granularity not in ("tensor", "channel"):
            raise ValueError("symmetric=False (a zero point) needs an IntFormat with granularity 'tensor' or 'channel'")
        if check_bool(self.two_level, "two_level") and self.granularity != "block":
            raise ValueError("two_level scaling is NVFP4's: granularity='block' with E4M3 (non-power-of-two) scales")
        if self.granularity == "none":
            scheme = QuantScheme(self.fmt, rounding=self.rounding, saturate=self.saturate, scale_fmt=None,
                                 nonfinite=self.nonfinite)
        else:
            check_bool(self.saturate, "saturate")
            scheme = QuantScheme(
                self.fmt, rounding=self.rounding, scale_fmt=self.scale_fmt,
                axis=None if self.granularity == "tensor" else -1, block_size=self.block_size,
                scale_rounding=self.scale_rounding, symmetric=symmetric, tensor_scale=self.two_level,
                nonfinite=self.nonfinite)
        for name in ("fmt", "rounding"):
            object.__setattr__(self, name, getattr(scheme, name))
        object.__setattr__(self, "scale_fmt", _formats.get(self.scale_fmt))
        object.__setattr__(self, "scheme", scheme)

    @property
    def is_identity(self) -> bool:
        """Whether quantizing a float32 array by this spec changes nothing."""
        return self.granularity == "none" and self.fmt == _formats.FP32 and self.rounding == "nearest_even"


def _spec(value, arg):
    if isinstance(value, OperandSpec):
        return value
    if isinstance(value, (str, _formats.Format)):
        return OperandSpec(value)
    raise TypeError(f"{arg} must be an OperandSpec or a format, got {type(value).__name__}")


@dataclasses.dataclass(frozen=True)
class MatmulConfig:
    """Everything that decides how a quantized product is computed; hashable, frozen.

    Args:
      lhs, rhs: :class:`OperandSpec` of each operand (a format is taken as
        ``OperandSpec(fmt)``).
      accumulator: how the forward product sums its products: an
        :class:`~numfmt.accumulator.Accumulator` (FP32 native, INT32, or an emulated
        format such as a BF16 or stochastic accumulator), or a
        :class:`~numfmt.tensorcore.TensorCoreModel`, the bit-exact model of a matrix
        unit fitted to recorded hardware (``numfmt.tensorcore.H100_*``). A model's
        ``lhs_fmt`` / ``rhs_fmt`` are replaced by the element formats of ``lhs`` and
        ``rhs`` (so ``dataclasses.replace(cfg, rhs=OperandSpec(nf.E5M2))`` of an FP8
        profile is the hardware's E4M3 x E5M2 product).
      output: a format the result is rounded into (nearest even), or None (float32).
      grad: the spec of the cotangent in both backward products (e.g. E5M2 with
        ``rounding="stochastic"``), or None: not quantized.
      grad_accumulator: the accumulator of the backward products (default: FP32);
        an Accumulator or a TensorCoreModel, as ``accumulator``.
    """

    lhs: object = OperandSpec()
    rhs: object = OperandSpec()
    accumulator: object = Accumulator()  # (frozen, so sharing it is safe)
    output: object = None
    grad: object = None
    grad_accumulator: object = None

    def __post_init__(self):
        object.__setattr__(self, "lhs", _spec(self.lhs, "lhs"))
        object.__setattr__(self, "rhs", _spec(self.rhs, "rhs"))
        if self.grad is not None:
            object.__setattr__(self, "grad", _spec(self.grad, "grad"))
        if self.accumulator is None:
            raise TypeError("accumulator must be an Accumulator or a TensorCoreModel, got None")
        for name in ("accumulator", "grad_accumulator"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (Accumulator, TensorCoreModel)):
                raise TypeError(f"{name} must be an Accumulator or a TensorCoreModel, got {type(value).__name__}")
        if self.output is not None:
            object.__setattr__(self, "output", _formats.get(self.output))
        if isinstance(self.accumulator, TensorCoreModel):
            object.__setattr__(self, "accumulator", tensorcore_for(self.accumulator, self.lhs, self.rhs, "accumulator"))
        if isinstance(self.grad_accumulator, TensorCoreModel):
            g = self.grad or OperandSpec()
            tensorcore_for(self.grad_accumulator, g, self.rhs, "grad_accumulator (cotangent x rhs)")
            tensorcore_for(self.grad_accumulator, g, self.lhs, "grad_accumulator (cotangent x lhs)")
        for acc in (self.accumulator, self.grad_accumulator):
            if isinstance(acc, Accumulator) and acc.is_int:
                for side in (self.lhs, self.rhs):
                    if not isinstance(side.fmt, IntFormat):
                        raise ValueError(f"an integer accumulator needs integer operands, got {side.fmt.name}")  # noqa: TRY004

    def uses_stochastic(self) -> bool:
        """Whether any operand, cotangent or accumulator rounds stochastically (then ``key=`` is needed)."""
        specs = [self.lhs, self.rhs] + ([self.grad] if self.grad is not None else [])
        accs = [a for a in (self.accumulator, self.grad_accumulator) if isinstance(a, Accumulator)]
        return any(s.rounding == "stochastic" for s in specs) or any(a.rounding == "stochastic" for a in accs)


def tensorcore_for(model: TensorCoreModel, lspec: OperandSpec, rspec: OperandSpec, what: str) -> TensorCoreModel:
    """``model`` with the operands' element formats of ``lspec`` and ``rspec`` (checked).

    A tensor core multiplies the element values; scales are applied outside it (the
    epilogue, or at each promotion for block scales along the contraction).
    """
    for side, spec in (("lhs", lspec), ("rhs", rspec)):
        if spec.scheme.elem_scale != 1.0 or not spec.symmetric:
            raise ValueError(f"{what}: a TensorCoreModel multiplies float element values; the {side} spec "
                             f"({spec.fmt.name}, elem_scale={spec.scheme.elem_scale}, symmetric={spec.symmetric}) "
                             "has integer elements or a zero point")
        if spec.granularity == "block":
            p = model.promotion_interval
            if p is None or spec.block_size % p or model.split_k != 1 or model.block_interleave != 1:
                raise ValueError(
                    f"{what}: block scales along the contraction are applied as each promotion interval's sum "
                    f"is promoted: the model needs a promotion_interval dividing block_size={spec.block_size}, "
                    f"split_k=1 and block_interleave=1; got promotion_interval={p}, split_k={model.split_k}")
    try:
        return dataclasses.replace(model, lhs_fmt=lspec.fmt, rhs_fmt=rspec.fmt)
    except ValueError as e:
        raise ValueError(f"{what}: the operands' element formats ({lspec.fmt.name} x {rspec.fmt.name}) do not fit "
                         f"the TensorCoreModel {model.name!r}: {e}") from None
