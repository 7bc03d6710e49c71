"""numfmt: bit-exact emulation of number formats in JAX.

The public surface is re-exported here; see DESIGN.md and docs/ for the layers.
"""

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
from numfmt.rounding import ROUNDING_MODES
from numfmt.codec import decode, encode, quantize

__version__ = "0.1.0"
