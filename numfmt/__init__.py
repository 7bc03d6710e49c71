"""numfmt: bit-exact emulation of number formats in JAX.

The public surface, re-exported here family by family: each module below exports all
of its ``__all__`` here or, for the namespaces (``numfmt.analysis``, ``numfmt.testing``,
``numfmt.ops``, ``numfmt.plot``), nothing but itself. docs/api.md lists every public
name by layer; docs/design.md gives the layers and the decided semantics.
"""

from numfmt import (
    accumulator,
    analysis,
    autodiff,
    calibration,
    codebook,
    codec,
    formats,
    intgemm,
    logformat,
    lowbit,
    lowbit_matmul,
    matmul,
    matmul_config,
    matmul_profiles,
    mx,
    packing,
    rounding,
    scaled,
    tensorcore,
)
from numfmt.accumulator import *
from numfmt.autodiff import *
from numfmt.calibration import *
from numfmt.codebook import *
from numfmt.codec import *
from numfmt.formats import *
from numfmt.intgemm import *
from numfmt.logformat import *
from numfmt.lowbit import *
from numfmt.lowbit_matmul import *
from numfmt.matmul import *
from numfmt.matmul_config import *
from numfmt.matmul_profiles import *
from numfmt.mx import *
from numfmt.packing import *
from numfmt.rounding import *
from numfmt.scaled import *
from numfmt.tensorcore import *

# Each family whole, in the order of the layers (docs/api.md).
__all__ = ["analysis"]
__all__ += formats.__all__
__all__ += logformat.__all__
__all__ += rounding.__all__
__all__ += codec.__all__
__all__ += packing.__all__
__all__ += calibration.__all__
__all__ += scaled.__all__
__all__ += mx.__all__
__all__ += codebook.__all__
__all__ += lowbit.__all__
__all__ += autodiff.__all__
__all__ += accumulator.__all__
__all__ += tensorcore.__all__
__all__ += matmul_config.__all__
__all__ += matmul.__all__
__all__ += matmul_profiles.__all__
__all__ += intgemm.__all__
__all__ += lowbit_matmul.__all__

__version__ = "0.1.0"


def __getattr__(name):
    # numfmt.plot needs matplotlib and numfmt.testing's strategies need hypothesis,
    # optional extras; numfmt.ops is a checking tool. Import them only when asked for,
    # so that `import numfmt` needs numpy and jax alone and stays quick.
    if name in ("ops", "plot", "testing"):
        import importlib

        return importlib.import_module(f"numfmt.{name}")
    raise AttributeError(f"module 'numfmt' has no attribute {name!r}")
