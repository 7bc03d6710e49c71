"""Results that must not depend on the backend (issue 15 item 5: the suite on a GPU).

XLA differs between CPU and GPU where numfmt must not: a GPU runs float32 dots with
TF32 or bf16 operands unless a dot asks for ``precision=HIGHEST``, and the fusion of a
``a * b + c`` into one FMA (on CPU too, inside one fused loop) depends on what the
compiler fuses. These tests check, on any backend, that numfmt's products ask for the
precision they promise and that its documented roundings happen as documented.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import extend as jex

import numfmt as nf

# ---- every float dot asks for HIGHEST --------------------------------------------------------------


def _dots(jaxpr, out):
    """``(primitive, operand dtypes, precision)`` of every dot and convolution, sub-jaxprs included."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in ("dot_general", "conv_general_dilated"):
            out.append((eqn.primitive.name, [v.aval.dtype for v in eqn.invars], eqn.params.get("precision")))
        for param in eqn.params.values():
            for sub in param if isinstance(param, (list, tuple)) else [param]:
                if isinstance(sub, jex.core.ClosedJaxpr):
                    _dots(sub.jaxpr, out)
                elif isinstance(sub, jex.core.Jaxpr):
                    _dots(sub, out)
    return out


def _highest(precision) -> bool:
    """Both operands at HIGHEST (a single Precision, or a pair)."""
    pair = precision if isinstance(precision, (list, tuple)) else (precision, precision)
    return len(pair) == 2 and all(p == jax.lax.Precision.HIGHEST for p in pair)


def _float_dots_below_highest(fn, *args):
    """Every dot of ``fn``, and those with float32 (or wider) operands without HIGHEST.

    A dot of bfloat16 operands is exact in every precision mode (its products are exact
    in float32, and there is no narrower format for XLA to round them to): the GPU fast
    path's bf16 route (numfmt.matmul, docs/matmul.md) is such a dot and passes.
    """
    found = _dots(jax.make_jaxpr(fn)(*args).jaxpr, [])

    def below(d):
        floats = [t for t in d[1] if jnp.issubdtype(t, jnp.floating)]
        return floats and not all(t == jnp.bfloat16 for t in floats) and not _highest(d[2])

    return found, [d for d in found if below(d)]


_RNG = np.random.default_rng(0)
A = jnp.asarray(_RNG.standard_normal((8, 256)), jnp.float32)
B = jnp.asarray(_RNG.standard_normal((256, 4)), jnp.float32)

_LAYER = nf.prepare_linear(np.asarray(B), np.zeros(4, np.float32), x_scale=0.1, x_zero_point=1, out_scale=0.5,
                           out_zero_point=0)
PRODUCTS = {f"qmatmul[{p}]": (lambda a, b, p=p: nf.qmatmul(a, b, p, key=jax.random.key(0))) for p in nf.MATMUL_PROFILES}
PRODUCTS.update({
    "dot_general": lambda a, b: nf.dot_general(a, b, (((1,), (0,)), ((), ())), config="mxfp8"),
    "log_matmul": lambda a, b: nf.log_matmul(nf.quantize_scaled(a, "log4", axis=1), nf.quantize_scaled(b, "log4", axis=0)),
    "binary_matmul": lambda a, b: nf.binary_matmul(nf.binarize(a, axis=1), nf.binarize(b, axis=0)),
    "lowbit_weight_matmul": lambda a, b: nf.lowbit_weight_matmul(nf.quantize_scaled(a, "int8", axis=1),
                                                                 nf.ternarize(b, axis=0)),
    "int_gemm": lambda a, b: nf.int_gemm(jnp.round(a).astype(jnp.int8), jnp.round(b).astype(jnp.int8), 1, 0),
    "int_linear": lambda a, b: nf.int_linear(jnp.round(a).astype(jnp.int8), _LAYER),
})


@pytest.mark.parametrize("name", sorted(PRODUCTS))
def test_every_float_product_asks_for_highest_precision(name):
    # Without precision=HIGHEST a GPU rounds float32 operands to TF32 or bf16 (on the CPU
    # the precision is ignored, so only the jaxpr shows the difference): a product that
    # promises float32 (or exact) arithmetic must ask for HIGHEST; an integer dot is exact.
    found, bad = _float_dots_below_highest(PRODUCTS[name], A, B)
    assert not bad, f"{name}: float dots without precision=HIGHEST: {bad}"
    assert name.startswith(("log_", "binary_")) or found, f"{name}: no dot at all (has the product moved?)"


def test_the_precision_check_sees_a_default_precision_dot():
    # The check itself: a plain float32 matmul is caught, an integer one and HIGHEST pass.
    assert _float_dots_below_highest(lambda a, b: a @ b, A, B)[1]
    assert not _float_dots_below_highest(lambda a, b: jnp.matmul(a, b, precision="highest"), A, B)[1]
    assert not _float_dots_below_highest(lambda a, b: a.astype(jnp.int32) @ b.astype(jnp.int32), A, B)[1]
    assert _float_dots_below_highest(lambda a, b: jax.jit(lambda x: x @ b)(a), A, B)[1]  # inside a sub-jaxpr
    # bf16 operands are exact at any precision; one float32 operand beside them is not.
    assert not _float_dots_below_highest(lambda a, b: a.astype(jnp.bfloat16) @ b.astype(jnp.bfloat16), A, B)[1]
    assert _float_dots_below_highest(lambda a, b: jnp.matmul(a.astype(jnp.bfloat16), b), A, B)[1]


@pytest.mark.parametrize("name", ["qmatmul[mxfp8]", "qmatmul[mxfp4]", "qmatmul[nvfp4]", "dot_general"])
def test_the_gpu_bf16_route_is_a_bf16_dot(name, on_gpu):
    # What a GPU trace of these products runs (the fast path's bf16 route, found on an
    # H100 by the test above): traced here with the backend check forced (conftest's
    # on_gpu), the only float dots have bfloat16 operands and a float32 result, so the
    # check above passes them.
    found, bad = _float_dots_below_highest(PRODUCTS[name], A, B)
    assert not bad, bad
    floats = [d for d in found if any(jnp.issubdtype(t, jnp.floating) for t in d[1])]
    assert floats and all(t == jnp.bfloat16 for d in floats for t in d[1]), floats


# ---- log_matmul base sqrt(2): the two documented roundings, no FMA ---------------------------------


def _log_matmul_oracle(codes_a, codes_b, fmt):
    """``(float(P) + fl(sqrt2) * float(Q)) * 2**shift`` of log_matmul's docstring, each step rounded, in NumPy."""
    ca, cb = codes_a.astype(np.int64), codes_b.astype(np.int64)
    ea, eb = (ca & fmt.max_code) - fmt.bias, (cb & fmt.max_code) - fmt.bias
    live = ((ca & fmt.max_code) != 0)[:, :, None] & ((cb & fmt.max_code) != 0)[None]
    sign = np.where((ca & fmt.sign_mask)[:, :, None] != (cb & fmt.sign_mask)[None], -1, 1)
    t0 = 2 * fmt.emin
    t = ea[:, :, None] + eb[None] - t0
    term = np.where(live, sign * (np.int64(1) << np.where(live, t, 0) // 2), 0)
    even, odd = np.where(t % 2 == 0, term, 0).sum(1), np.where(t % 2 == 1, term, 0).sum(1)
    P, Q = (even, odd) if t0 % 2 == 0 else (2 * odd, even)
    product = np.float32(np.sqrt(2)) * Q.astype(np.float32)  # rounded to float32 on its own
    return (P.astype(np.float32) + product) * np.float32(2.0 ** (t0 // 2))


@pytest.mark.parametrize("shape", [(16, 64, 16), (3, 200, 5)])
def test_log_matmul_sqrt2_rounds_the_product_and_the_sum_separately(shape):
    # XLA contracts P + c * Q into one FMA inside a fused loop (on this CPU too): about a
    # quarter of these results then differ in the last bit from the documented two roundings.
    M, K, N = shape
    fmt = nf.LOG4_SQRT2
    rng = np.random.default_rng(K)

    def unscaled(v):  # scale 1, so that the result is the register sum itself
        return nf.QArray(nf.encode(v, fmt), jnp.float32(1), fmt=fmt, scale_fmt=nf.FP32, shape=v.shape, dtype=v.dtype)

    qa = unscaled(rng.standard_normal((M, K)).astype(np.float32) * 4)
    qb = unscaled(rng.standard_normal((K, N)).astype(np.float32) * 4)
    want = _log_matmul_oracle(np.asarray(qa.codes), np.asarray(qb.codes), fmt)
    got = nf.log_matmul(qa, qb)
    np.testing.assert_array_equal(np.asarray(got).view(np.uint32), want.view(np.uint32))
    f = jax.jit(jax.vmap(nf.log_matmul, in_axes=(None, 0)))  # a bigger fused program: the same bits
    np.testing.assert_array_equal(np.asarray(f(qa, jax.tree_util.tree_map(lambda v: jnp.stack([v, v]), qb)))[1], want)
