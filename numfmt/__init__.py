"""numfmt: bit-exact emulation of number formats in JAX.

The public surface is re-exported here; see DESIGN.md and docs/ for the layers.
"""

from numfmt import analysis
from numfmt.accumulator import E8M13, Accumulator
from numfmt.autodiff import fake_quant, quantize_grad
from numfmt.calibration import (
    MinMaxState,
    calibrate,
    minmax_init,
    minmax_range,
    minmax_update,
)
from numfmt.codebook import (
    CodebookArray,
    StorageReport,
    centroid_grads,
    huffman_code_lengths,
    kmeans_qat_update,
    kmeans_quantize,
    magnitude_prune,
    storage_report,
)
from numfmt.codec import decode, encode, quantize
from numfmt.formats import (
    BF16,
    E2M1,
    E2M3,
    E3M2,
    E3M4,
    E4M3,
    E4M3B11FNUZ,
    E4M3FNUZ,
    E4M3IEEE,
    E5M2,
    E5M2FNUZ,
    E8M0,
    FP16,
    FP32,
    INT2,
    INT4,
    INT8,
    INT16,
    INT32,
    NF4,
    TF32,
    UINT2,
    UINT4,
    UINT8,
    CodebookFormat,
    FloatFormat,
    IntFormat,
    get,
    names,
    register,
)
from numfmt.intgemm import int_gemm, quantize_multiplier, requantize
from numfmt.logformat import LOG4, LOG4_SQRT2, LOG8, LOG8_SQRT2, LogFormat
from numfmt.lowbit import binarize, fake_binarize, fake_ternarize, ternarize
from numfmt.lowbit_matmul import binary_matmul, log_matmul, lowbit_weight_matmul
from numfmt.matmul import MatmulConfig, OperandSpec, dot_general, qmatmul
from numfmt.matmul_profiles import MATMUL_PROFILES, matmul_profile
from numfmt.mx import mx_quantize, nvfp4_quantize
from numfmt.packing import pack, packed_nbytes, unpack
from numfmt.rounding import ROUNDING_MODES
from numfmt.scaled import QArray, dequantize, quantize_scaled

__all__ = [
    "BF16",
    "E2M1",
    "E2M3",
    "E3M2",
    "E3M4",
    "E4M3",
    "E4M3B11FNUZ",
    "E4M3FNUZ",
    "E4M3IEEE",
    "E5M2",
    "E5M2FNUZ",
    "E8M0",
    "E8M13",
    "FP16",
    "FP32",
    "INT2",
    "INT4",
    "INT8",
    "INT16",
    "INT32",
    "LOG4",
    "LOG4_SQRT2",
    "LOG8",
    "LOG8_SQRT2",
    "MATMUL_PROFILES",
    "NF4",
    "ROUNDING_MODES",
    "TF32",
    "UINT2",
    "UINT4",
    "UINT8",
    "Accumulator",
    "CodebookArray",
    "CodebookFormat",
    "FloatFormat",
    "IntFormat",
    "LogFormat",
    "MatmulConfig",
    "MinMaxState",
    "OperandSpec",
    "QArray",
    "StorageReport",
    "analysis",
    "binarize",
    "binary_matmul",
    "calibrate",
    "centroid_grads",
    "decode",
    "dequantize",
    "dot_general",
    "encode",
    "fake_binarize",
    "fake_quant",
    "fake_ternarize",
    "get",
    "huffman_code_lengths",
    "int_gemm",
    "kmeans_qat_update",
    "kmeans_quantize",
    "log_matmul",
    "lowbit_weight_matmul",
    "magnitude_prune",
    "matmul_profile",
    "minmax_init",
    "minmax_range",
    "minmax_update",
    "mx_quantize",
    "names",
    "nvfp4_quantize",
    "pack",
    "packed_nbytes",
    "qmatmul",
    "quantize",
    "quantize_grad",
    "quantize_multiplier",
    "quantize_scaled",
    "register",
    "requantize",
    "storage_report",
    "ternarize",
    "unpack",
]

__version__ = "0.1.0"


def __getattr__(name):
    # numfmt.plot needs matplotlib and numfmt.testing's strategies need hypothesis,
    # optional extras; numfmt.ops is a checking tool. Import them only when asked for,
    # so that `import numfmt` needs numpy and jax alone and stays quick.
    if name in ("ops", "plot", "testing"):
        import importlib

        return importlib.import_module(f"numfmt.{name}")
    raise AttributeError(f"module 'numfmt' has no attribute {name!r}")
