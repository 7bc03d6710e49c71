"""numfmt on sharded arrays: each case jitted on an unsharded array and on the same array
sharded over 4 devices, bits compared. Run in a process of its own (the device count is
fixed when JAX starts) by tests/test_sharding.py:

    XLA_FLAGS=--xla_force_host_platform_device_count=4 JAX_PLATFORMS=cpu \\
        python tests/sharded_cases.py {core|all}

It prints one JSON object: for each case and layout, the number of elements that differ
from the unsharded result (0: bit-identical, NaNs equal), or an error message; for the
fast path's native products with a sharded contraction axis, the largest difference
relative to the sum of the products' magnitudes and the number of outputs that differ.
"""

from __future__ import annotations

import dataclasses
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import numfmt as nf


def _data():
    rng = np.random.default_rng(0)
    # Rows of very different magnitudes (scales that differ per row and block), a
    # subnormal, a negative zero and a value near float32's top.
    x = (rng.standard_normal((64, 256)) * np.exp(3 * rng.standard_normal((64, 1)))).astype(np.float32)
    x[3, 5], x[7, 100], x[9, 33] = 1e-41, -0.0, 3e38
    w = rng.standard_normal((256, 128)).astype(np.float32)
    return x, w


KEY = jax.random.key(1)


def _q(q):  # what a QArray holds and what it gives back
    return q.codes, q.scale, q.zero_point, q.tensor_scale, q.dequantize()


QUANTIZERS = {
    "mx_quantize e4m3": lambda v: _q(nf.mx_quantize(v, "e4m3")),
    "mx_quantize e2m1": lambda v: _q(nf.mx_quantize(v, "e2m1")),
    "nvfp4_quantize": lambda v: _q(nf.nvfp4_quantize(v)),
    "int8 per-channel": lambda v: _q(nf.quantize_scaled(v, "int8", axis=1)),
    "int8 per-column": lambda v: _q(nf.quantize_scaled(v, "int8", axis=0)),
    "int8 blocks of 32": lambda v: _q(nf.quantize_scaled(v, "int8", axis=1, block_size=32)),
    "uint8 affine per-tensor": lambda v: _q(nf.quantize_scaled(v, "uint8", symmetric=False)),
    "e4m3 per-tensor, stochastic": lambda v: _q(nf.quantize_scaled(v, "e4m3", rounding="stochastic", key=KEY)),
    "fake_quant blocks": lambda v: nf.fake_quant(v, "e4m3", granularity="block", axis=1, block_size=32),
    "fake_quant gradient": lambda v: jax.grad(lambda u: jnp.sum(nf.fake_quant(u, "int8", axis=1) ** 2))(v),
    "calibrate absmax": lambda v: nf.calibrate(v, "int8", axis=1),
    "calibrate range": lambda v: nf.calibrate(v, "int8", symmetric=False),
    "calibrate mse": lambda v: nf.calibrate(v, "int8", "mse", axis=1, num_ratios=10),
    "ternarize": lambda v: nf.fake_ternarize(v),
    "binarize per row": lambda v: _q(nf.binarize(v, axis=1)),
    "k-means 3 bits": lambda v: jax.tree_util.tree_leaves(nf.kmeans_quantize(v, 3, iters=5)),
}
CORE_QUANTIZERS = ("mx_quantize e4m3", "nvfp4_quantize", "int8 per-column", "uint8 affine per-tensor",
                   "fake_quant gradient", "calibrate absmax")

# Products whose accumulation numfmt models (tensor cores, the Accumulator emulation,
# integers): the same bits whatever is sharded. The fast path's native float32 sums
# ("fp32", "mxfp8") are summed per shard and then across shards when K is sharded.
EMULATED = {
    "emulated E8M13, chunks of 16, promotion 64": nf.MatmulConfig(
        nf.OperandSpec(nf.E4M3), nf.OperandSpec(nf.E4M3),
        nf.Accumulator(nf.E8M13, dot_width=16, promotion_interval=64)),
    "emulated BF16 pairwise": nf.MatmulConfig(
        nf.OperandSpec(nf.E4M3), nf.OperandSpec(nf.E4M3), nf.Accumulator(nf.BF16, dot_width=4, order="pairwise")),
}
MODELLED = ("h100_fp8_fast_accum", "h100_fp8", "h100_bf16", "h100_tf32", "h100_fp32", "deepseek_v3_fp8", "nvfp4",
            "int8_tflite", *EMULATED)
CORE_MODELLED = ("h100_fp8_fast_accum", "deepseek_v3_fp8", "int8_tflite", "emulated E8M13, chunks of 16, promotion 64")
NATIVE = ("fp32", "bf16_fp32acc", "mxfp8")


def _gradients(config):
    """Both operands' gradients through ``qmatmul`` with ``config`` (a training step's products)."""
    def grads(a, b):
        return jax.grad(lambda u, v: jnp.sum(jnp.sin(nf.qmatmul(u, v, config))), argnums=(0, 1))(a, b)
    return grads


# The backward's products contract over M (the weight's gradient) and N: with the
# modelled accumulator there too, sharding M or K changes no bit.
TRAINING = dataclasses.replace(nf.matmul_profile("h100_fp8_fast_accum"), grad=nf.OperandSpec(nf.E5M2),
                               grad_accumulator=nf.H100_FP8_FAST_ACCUM)


def _product(name):
    """``qmatmul`` with the profile or emulated config ``name``."""
    config = EMULATED[name] if name in EMULATED else nf.matmul_profile(name)
    return lambda a, b: nf.qmatmul(a, b, config)


def _differ(got, ref) -> int:
    """How many elements of ``got`` differ from ``ref`` (bits, NaNs equal); same dtype and shape."""
    if got.dtype.kind == "f":
        return int(np.sum(~((got == ref) & (np.signbit(got) == np.signbit(ref)) | (np.isnan(got) & np.isnan(ref)))))
    return int(np.sum(got != ref))


def _compare(fn, args, shardings) -> int | str:
    f = jax.jit(fn)
    ref = jax.tree_util.tree_leaves(f(*args))
    try:
        got = jax.tree_util.tree_leaves(f(*(jax.device_put(a, s) for a, s in zip(args, shardings))))
    except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
        return f"{type(exc).__name__}: {str(exc)[:300]}"
    got, ref = [np.asarray(v) for v in got], [np.asarray(v) for v in ref]
    if [(v.dtype, v.shape) for v in got] != [(v.dtype, v.shape) for v in ref]:
        return f"other outputs: {[(v.dtype.name, v.shape) for v in got]} for {[(v.dtype.name, v.shape) for v in ref]}"
    return sum(_differ(g, r) for g, r in zip(got, ref))


def main(group: str) -> dict:
    assert len(jax.devices()) == 4, jax.devices()
    x, w = _data()
    d = np.array(jax.devices())
    rows = Mesh(d, ("d",))
    grid = Mesh(d.reshape(2, 2), ("a", "b"))
    layouts = {"2d": NamedSharding(grid, P("a", "b"))}
    if group == "all":
        layouts |= {"rows": NamedSharding(rows, P("d", None)), "columns": NamedSharding(rows, P(None, "d"))}
    out = {}
    for name in QUANTIZERS if group == "all" else CORE_QUANTIZERS:
        for lay, sh in layouts.items():
            out[f"{name} [{lay}]"] = _compare(QUANTIZERS[name], (x,), (sh,))
    k_split = (NamedSharding(rows, P(None, "d")), NamedSharding(rows, P("d", None)))  # K over 4 devices
    m_split = (NamedSharding(rows, P("d", None)), NamedSharding(rows, P(None, None)))
    for name in MODELLED if group == "all" else CORE_MODELLED:
        fn = _product(name)
        out[f"qmatmul {name} [K sharded]"] = _compare(fn, (x, w), k_split)
        if group == "all":
            out[f"qmatmul {name} [M sharded]"] = _compare(fn, (x, w), m_split)
    for lay, split in (("K sharded", k_split), ("M sharded", m_split)):
        out[f"qmatmul gradients, E5M2 cotangents [{lay}]"] = _compare(_gradients(TRAINING), (x, w), split)
    native = {}
    for name in NATIVE if group == "all" else NATIVE[:1]:
        fn = jax.jit(_product(name))
        out[f"qmatmul {name} [M sharded]"] = _compare(fn, (x, w), m_split)
        ref = np.asarray(fn(x, w), np.float64)
        got = np.asarray(fn(*(jax.device_put(a, s) for a, s in zip((x, w), k_split))), np.float64)
        mag = np.abs(x.astype(np.float64)) @ np.abs(w.astype(np.float64))
        finite = np.isfinite(ref) & np.isfinite(mag) & (mag > 0)
        native[name] = (float(np.max(np.abs(got - ref)[finite] / mag[finite])), int(np.sum(got[finite] != ref[finite])))
    return {"differ": out, "native_k_sharded": native}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1] if len(sys.argv) > 1 else "core")))
