"""Train a small MLP on scikit-learn's digits in FP32, BF16, FP8 and with INT8/4/2 weights.

    python examples/train_mlp.py            # the table of docs/training.md (a few minutes on a CPU)
    python examples/train_mlp.py --quick    # a CI-sized run (seconds)

The data set is the 8x8 handwritten digits bundled with scikit-learn (1797 images,
no download). The model is 64 -> 128 -> 10 with ReLU, trained by minibatch SGD. The
matrix products go through ``numfmt.matmul.dot_general`` with a config per variant:

* FP32: plain; BF16: BF16 operands and gradients, FP32 accumulation, FP32 weights.
* FP8: E4M3 operands (per-tensor scales) forward, E5M2 gradients (per-tensor scales)
  backward, FP32 accumulation. Three ways to keep the weights: an FP32 master copy;
  BF16 weights updated with round-to-nearest (small updates vanish); BF16 weights
  updated with stochastic rounding (they survive on average).
* INT8 / INT4 / INT2 weights (symmetric, per output channel, narrow range, or a
  k-means codebook of 2**bits values, Deep Compression), after training (PTQ) or
  fine-tuned with quantization in the loop (QAT: straight-through ``fake_quant`` for
  linear, centroid gradients for k-means). Activations stay float.
* Binary weights (XNOR-Net: ``alpha * sign(w)``, ``alpha`` the mean ``|w|`` per output
  channel), ternary weights (TWN: ``delta = 0.7 mean |w|``) and log4 weights (powers of
  two, absmax scale per output channel), after training and with QAT (``fake_binarize``,
  ``fake_ternarize``: the clipped straight-through estimator; ``fake_quant`` for log4).

Prints the accuracy table (markdown) and saves the loss curves as a PNG.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import numfmt as nf
from numfmt.autodiff import fake_quant
from numfmt.matmul import MatmulConfig, OperandSpec, dot_general

try:
    from numfmt import codebook as _codebook
except ImportError:  # k-means rows are skipped without numfmt.codebook
    _codebook = None

DIMS = (((1,), (0,)), ((), ()))


def load_digits(seed=0):
    from sklearn.datasets import load_digits as _load

    d = _load()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int32)
    perm = np.random.default_rng(seed).permutation(len(x))
    x, y = x[perm], y[perm]
    n_test = 360
    return (x[n_test:], y[n_test:]), (x[:n_test], y[:n_test])


def init_params(key, sizes=(64, 128, 10)):
    params = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        k = jax.random.fold_in(key, i)
        params.append({"w": jax.random.normal(k, (a, b), jnp.float32) * np.sqrt(2.0 / a),
                       "b": jnp.zeros((b,), jnp.float32)})
    return params


def forward(params, x, dot, wq=None):
    """``wq(w)`` transforms each weight before use (fake quantization for QAT)."""
    h = x
    for i, layer in enumerate(params):
        w = layer["w"] if wq is None else wq(layer["w"])
        h = dot(h, w, DIMS) + layer["b"]
        if i < len(params) - 1:
            h = jax.nn.relu(h)
    return h


def loss_fn(params, x, y, dot, wq=None):
    logits = forward(params, x, dot, wq)
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))


def accuracy(params, x, y):
    logits = forward(params, jnp.asarray(x), lax.dot_general)
    return float(jnp.mean(jnp.argmax(logits, -1) == jnp.asarray(y)))


def plain_dot(lhs, rhs, dims, key=None):
    return lax.dot_general(lhs, rhs, dims, precision=lax.Precision.HIGHEST)


def make_dot(config):
    if config is None:
        return plain_dot
    return lambda lhs, rhs, dims, key=None: dot_general(lhs, rhs, dims, config=config, key=key)


@functools.partial(jax.jit, static_argnames=("config", "store", "update_rounding", "lr", "wq"))
def sgd_step(params, x, y, key, *, config, store, update_rounding, lr, wq):
    """One SGD step; ``store``: the format weights are kept in (None: FP32)."""
    k_fwd, k_upd = jax.random.split(key)
    stochastic_grads = config is not None and config.uses_stochastic()
    base = make_dot(config)
    dot = functools.partial(base, key=k_fwd) if stochastic_grads else base
    value, grads = jax.value_and_grad(loss_fn)(params, x, y, dot, wq)

    def update(p, g, k):
        new = p - lr * g
        if store is None:
            return new
        if update_rounding == "stochastic":
            return nf.quantize(new, store, "stochastic", key=k)
        return nf.quantize(new, store)

    leaves, tree = jax.tree.flatten(params)
    gleaves = jax.tree.leaves(grads)
    new = [update(p, g, jax.random.fold_in(k_upd, i)) for i, (p, g) in enumerate(zip(leaves, gleaves))]
    return jax.tree.unflatten(tree, new), value


def train(params, data, *, epochs, lr, batch, seed, config=None, store=None, update_rounding="nearest_even",
          wq=None):
    (x, y), _ = data
    n = len(x)
    if store is not None:
        params = jax.tree.map(lambda p: nf.quantize(p, store), params)
    losses = []
    rng = np.random.default_rng(seed)
    key = jax.random.key(seed)
    step = 0
    for _ in range(epochs):
        perm = rng.permutation(n)
        total = 0.0
        for i in range(0, n - batch + 1, batch):
            idx = perm[i:i + batch]
            params, value = sgd_step(params, jnp.asarray(x[idx]), jnp.asarray(y[idx]), jax.random.fold_in(key, step),
                                     config=config, store=store, update_rounding=update_rounding, lr=lr, wq=wq)
            total += float(value)
            step += 1
        losses.append(total / (n // batch))
    return params, losses


# ---- weight quantization -----------------------------------------------------------------------------


def int_format(bits):
    return nf.get(f"int{bits}_narrow")


def linear_wq(bits):
    fmt = int_format(bits)

    def wq(w):  # per output channel: the values of a column share a scale
        return fake_quant(w, fmt, granularity="channel", axis=0)

    return wq


def lowbit_wq(kind):
    """Binary / ternary / log4 weights, one scale per output channel (the values of a column share it)."""
    if kind == "binary":
        return lambda w: nf.fake_binarize(w, axis=0)
    if kind == "ternary":
        return lambda w: nf.fake_ternarize(w, axis=0)
    return lambda w: fake_quant(w, nf.LOG4, granularity="channel", axis=0)


def quantize_weights(params, fn):
    return [{"w": fn(layer["w"]), "b": layer["b"]} for layer in params]


def kmeans_qat(params, data, bits, *, epochs, lr, batch, seed):
    """Deep Compression §3: fine-tune the shared values with the summed gradients of their weights."""
    (x, y), _ = data
    cbs = [_codebook.kmeans_quantize(layer["w"], bits) for layer in params]
    biases = [layer["b"] for layer in params]

    @jax.jit
    def grads_at(ws, bs, xb, yb):
        p = [{"w": w, "b": b} for w, b in zip(ws, bs)]
        return jax.value_and_grad(loss_fn)(p, xb, yb, plain_dot)

    # The summed gradient of a shared value grows with its cluster: step by the mean
    # (lr * k / size), so one learning rate suits every bit width.
    lrs = [lr * len(c.codebook) / c.size for c in cbs]
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(epochs):
        perm = rng.permutation(len(x))
        total, count = 0.0, 0
        for i in range(0, len(x) - batch + 1, batch):
            idx = perm[i:i + batch]
            value, g = grads_at([c.dequantize() for c in cbs], biases, jnp.asarray(x[idx]), jnp.asarray(y[idx]))
            cbs = [_codebook.kmeans_qat_update(c, gl["w"], lc) for c, gl, lc in zip(cbs, g, lrs)]
            biases = [b - lr * gl["b"] for b, gl in zip(biases, g)]
            total += float(value)
            count += 1
        losses.append(total / count)
    return [{"w": c.dequantize(), "b": b} for c, b in zip(cbs, biases)], losses


# ---- the experiment ----------------------------------------------------------------------------------


def fp8_config(stochastic_grads=False):
    fwd = OperandSpec(nf.E4M3, granularity="tensor")
    grad = OperandSpec(nf.E5M2, granularity="tensor", rounding="stochastic" if stochastic_grads else "nearest_even")
    return MatmulConfig(fwd, fwd, grad=grad)


def run(quick=False, out_dir=".", seed=0, log=print):
    data = load_digits(seed)
    epochs, ft_epochs = (2, 1) if quick else (40, 10)
    lr, batch = 0.05, 32
    if quick:
        n = 384
        data = ((data[0][0][:n], data[0][1][:n]), data[1])
    p0 = init_params(jax.random.key(seed))
    test = data[1]
    rows, curves = [], {}
    t0 = time.time()

    def add(name, params, losses=None, note=""):
        acc = accuracy(params, *test)
        rows.append((name, acc, note))
        if losses:
            curves[name] = losses
        log(f"  {name:<34s} {100 * acc:6.2f}%   ({time.time() - t0:.0f}s)")

    fp32, losses = train(p0, data, epochs=epochs, lr=lr, batch=batch, seed=seed)
    add("FP32", fp32, losses)
    p, _ = train(fp32, data, epochs=ft_epochs, lr=lr, batch=batch, seed=seed + 1)
    add(f"FP32, {ft_epochs} more epochs (the QAT budget)", p)
    bf16 = MatmulConfig(nf.BF16, nf.BF16, grad=nf.BF16)
    p, losses = train(p0, data, epochs=epochs, lr=lr, batch=batch, seed=seed, config=bf16)
    add("BF16 (operands and gradients)", p, losses)
    p, losses = train(p0, data, epochs=epochs, lr=lr, batch=batch, seed=seed, config=fp8_config())
    add("FP8, FP32 master weights", p, losses)
    for rounding, label in (("nearest_even", "RNE"), ("stochastic", "SR")):
        p, losses = train(p0, data, epochs=epochs, lr=lr, batch=batch, seed=seed, config=fp8_config(),
                          store=nf.BF16, update_rounding=rounding)
        add(f"FP8, BF16 weights, {label} updates", p, losses)

    for bits in (8, 4, 2):
        add(f"INT{bits} linear, PTQ", quantize_weights(fp32, linear_wq(bits)))
        p, losses = train(fp32, data, epochs=ft_epochs, lr=lr, batch=batch, seed=seed + 1, wq=linear_wq(bits))
        add(f"INT{bits} linear, QAT", quantize_weights(p, linear_wq(bits)), losses)
        if _codebook is None:
            continue
        add(f"INT{bits} k-means, PTQ", quantize_weights(fp32, lambda w, bits=bits: _codebook.kmeans_quantize(w, bits).dequantize()))
        p, losses = kmeans_qat(fp32, data, bits, epochs=ft_epochs, lr=lr, batch=batch, seed=seed + 1)
        add(f"INT{bits} k-means, QAT", p, losses)

    for kind, label in (("binary", "Binary (XNOR-Net alpha)"), ("ternary", "Ternary (TWN)"), ("log4", "log4")):
        wq = lowbit_wq(kind)
        add(f"{label}, PTQ", quantize_weights(fp32, wq))
        p, losses = train(fp32, data, epochs=ft_epochs, lr=lr, batch=batch, seed=seed + 1, wq=wq)
        add(f"{label}, QAT", quantize_weights(p, wq), losses)

    table = ["| variant | test accuracy | vs FP32 |", "| --- | --- | --- |"]
    base = rows[0][1]
    for name, acc, _ in rows:
        table.append(f"| {name} | {100 * acc:.2f}% | {100 * (acc - base):+.2f} |")
    log("\n".join(table))
    png = os.path.join(out_dir, "train_mlp_loss.png")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for name, losses in curves.items():
            ax = axes[0] if len(losses) == epochs else axes[1]
            ax.plot(range(1, len(losses) + 1), losses, label=name)
        axes[0].set_title("training from scratch")
        axes[1].set_title("QAT fine-tuning from the FP32 model")
        for ax in axes:
            ax.set_xlabel("epoch")
            ax.set_ylabel("training loss")
            ax.set_yscale("log")
            ax.legend(fontsize=7)
        fig.tight_layout()
        os.makedirs(out_dir, exist_ok=True)
        fig.savefig(png, dpi=110)
        plt.close(fig)
        log(f"loss curves: {png}")
    except ImportError:
        png = None
    return {"rows": rows, "curves": curves, "table": "\n".join(table), "png": png}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a CI-sized run")
    parser.add_argument("--out", default=".", help="where to save the loss curves PNG")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=1,
                        help="repeat with seeds seed .. seed + N - 1 (data split, init, batches) and "
                             "print the mean and range of each row")
    args = parser.parse_args(argv)
    try:  # before training: an --out that cannot be made fails now, not after minutes (issue 14)
        os.makedirs(args.out, exist_ok=True)
    except OSError as exc:
        parser.error(f"--out {args.out}: {exc.strerror or exc}")
    results = [run(quick=args.quick, out_dir=args.out, seed=args.seed + i) for i in range(args.seeds)]
    if args.seeds > 1:
        names = [r[0] for r in results[0]["rows"]]
        accs = np.array([[r[1] for r in res["rows"]] for res in results])
        lines = [f"| variant | test accuracy, mean of {args.seeds} seeds | min - max | vs FP32 |",
                 "| --- | --- | --- | --- |"]
        for i, name in enumerate(names):
            lines.append(f"| {name} | {100 * accs[:, i].mean():.2f}% | {100 * accs[:, i].min():.2f} - "
                         f"{100 * accs[:, i].max():.2f} | {100 * (accs[:, i] - accs[:, 0]).mean():+.2f} |")
        print("\n".join(lines))
    return results[0]


if __name__ == "__main__":
    main(sys.argv[1:])
