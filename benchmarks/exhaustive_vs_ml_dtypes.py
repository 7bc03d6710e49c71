"""Exhaustive bit-exactness of ``numfmt.encode`` against ml_dtypes, for all 2**32 float32 inputs.

For every float format of the registry that has a NumPy / ml_dtypes dtype, every
float32 bit pattern is encoded by ``numfmt.encode(x, fmt)`` (nearest_even,
saturate=False) and cast by ``x.astype(fmt.dtype)`` (NumPy's cast for float16 and
float32, ml_dtypes' for the rest), and the codes are compared. A mismatch is
accepted only if it falls in one of these families (see docs/conformance.md):

``both_nan``         both codes are NaN (any NaN code counts).
``nan_input_zero``   a format without NaN (FP4, FP6): a NaN input gives a zero in both;
                     numfmt gives +0, ml_dtypes a zero whose sign is the inverse of the
                     NaN's sign bit (an artifact of its conversion).
``e8m0_tie``         E8M0 only: the input is exactly ``1.5 * 2**k``, ml_dtypes rounds the
                     tie up, numfmt gives the even code, one below ml_dtypes' (IEEE P3109;
                     DESIGN.md). ``1.5 * 2**127`` is one of them: ml_dtypes overflows to NaN.
``e8m0_subnormal``   E8M0 only: float32 subnormals in ``(2**-127, 1.5 * 2**-127)``;
                     ml_dtypes 0.6 gives code 1 (``2**-126``), numfmt the nearer ``2**-127``
                     (code 0). An ml_dtypes bug.

Anything else is ``unexplained``, and the script exits with status 1.

On the same inputs it also checks ``numfmt.quantize(x, fmt)`` against
``numfmt.decode(encode(x, fmt), fmt)``, bit for bit (any NaN equals any NaN): quantize
takes shorter paths than encode (``numfmt/nearest.py``), and this check carries the
bit-exactness above over to them. Each input where they differ counts in
``quantize_differs``, which must be 0.

Integer formats are not compared: an ml_dtypes / NumPy int cast truncates and wraps
like C, while numfmt rounds and clamps (quantization semantics, DESIGN.md).

Usage::

    python benchmarks/exhaustive_vs_ml_dtypes.py                 # every format, 2 workers
    python benchmarks/exhaustive_vs_ml_dtypes.py --formats e8m0 --workers 1
    python benchmarks/exhaustive_vs_ml_dtypes.py --chunks 4      # a quick partial run

Memory is bounded by the chunk size (2**24 inputs by default): at most about 2 GB per
worker, which keeps its freed buffers for the next chunk. Workers are separate
processes started with 'spawn' (JAX is not fork-safe); with ``--workers 1`` the chunks
run in this process. The whole run takes about 8 minutes on 2 CPU cores, a third of
it for fp16, whose reference (NumPy's float16 cast) is slow on underflow
(docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import functools
import multiprocessing
import os
import sys
import time

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FAMILIES = ("equal", "both_nan", "nan_input_zero", "e8m0_tie", "e8m0_subnormal", "unexplained")
# Every count of the table: the families (which add up to the inputs), and the inputs
# where quantize differs from decode(encode).
COUNTS = FAMILIES + ("quantize_differs",)
# Families that are mismatches of bits (both_nan is a mismatch of codes but not of meaning).
ACCEPTED_MISMATCHES = ("both_nan", "nan_input_zero", "e8m0_tie", "e8m0_subnormal")
MAX_EXAMPLES = 8

# Each chunk allocates a few arrays of 2**24 elements. By default glibc maps every one
# of them fresh (mmap) and unmaps it when freed, so each chunk pays hundreds of
# thousands of page faults: a third of the run time went to the kernel. These
# settings make the workers' malloc keep and reuse that memory (glibc reads them at
# process start-up; other C libraries ignore them).
_MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(1 << 32),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 33),
    "MALLOC_TOP_PAD_": str(1 << 28),
}

# float32 bit patterns that matter to the E8M0 families.
_TWO_M127 = 0x00400000  # 2**-127, a float32 subnormal: E8M0's smallest value (code 0)
_TIE_M127 = 0x00600000  # 1.5 * 2**-127: the tie between codes 0 and 1


def compared_formats():
    """The registry's float formats that have a NumPy / ml_dtypes dtype, in registry order."""
    import numfmt as nf

    out = []
    for name in nf.names():
        fmt = nf.get(name)
        if isinstance(fmt, nf.FloatFormat) and fmt.dtype is not None:
            out.append(fmt)
    return out


def reference_codes(x: np.ndarray, fmt) -> np.ndarray:
    """The codes of the NumPy / ml_dtypes cast of float32 ``x`` to ``fmt.dtype``."""
    if fmt.dtype == np.float32:
        return x.view(np.uint32)
    with np.errstate(all="ignore"):
        return x.astype(fmt.dtype).view(fmt.code_dtype)


@functools.cache
def _nan_table(fmt):
    """Whether each code of ``fmt`` is NaN, read two ways: numfmt.decode and the dtype."""
    import numfmt as nf

    codes = np.arange(1 << fmt.bits, dtype=np.uint32).astype(fmt.code_dtype)
    ours = np.isnan(np.asarray(nf.decode(codes, fmt)))
    theirs = np.isnan(codes.view(fmt.dtype).astype(np.float32))
    return ours, theirs


def _is_nan_bits(b):
    """Whether float32 bit patterns are NaN: exponent all ones and mantissa non-zero."""
    return (b & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)


def _is_nan_code(codes: np.ndarray, fmt, side: str) -> np.ndarray:
    if fmt.bits == 32:  # float32 itself
        return _is_nan_bits(codes)
    ours, theirs = _nan_table(fmt)
    return (ours if side == "ours" else theirs)[codes]


def is_e8m0_tie(bits: np.ndarray) -> np.ndarray:
    """Whether float32 bit patterns are exactly ``1.5 * 2**k`` with ``k >= -127`` (positive)."""
    e = bits >> np.uint32(23)
    m = bits & np.uint32(0x7FFFFF)
    return ((e >= 1) & (e <= 254) & (m == 0x400000)) | (bits == _TIE_M127)


def is_e8m0_subnormal_case(bits: np.ndarray) -> np.ndarray:
    """Positive float32 subnormals strictly between ``2**-127`` and ``1.5 * 2**-127``.

    Such an ``x = m * 2**-149`` is nearer ``2**-127 = 2**22 * 2**-149`` than
    ``2**-126 = 2**23 * 2**-149`` exactly when ``m - 2**22 < 2**23 - m``, i.e.
    ``2 * m < 3 * 2**22``: this integer test is the exact one.
    """
    m = bits.astype(np.int64)
    return (m > _TWO_M127) & (2 * m < 3 * (1 << 22))


def classify(bits: np.ndarray, ours: np.ndarray, ref: np.ndarray, fmt):
    """Counts of each family (FAMILIES) and up to MAX_EXAMPLES unexplained examples.

    ``bits``: the float32 inputs as uint32; ``ours``: numfmt's codes; ``ref``: the
    reference codes (same dtype as ours). Examples are ``("encode", input bits, numfmt
    code, reference code)``.
    """
    counts = dict.fromkeys(FAMILIES, 0)
    diff = np.flatnonzero(ours != ref)
    counts["equal"] = bits.size - diff.size
    if diff.size == 0:
        return counts, []
    b, o, r = bits[diff], ours[diff], ref[diff]
    left = np.ones(diff.size, bool)

    def take(name, mask):
        mask = mask & left
        counts[name] += int(mask.sum())
        left[mask] = False

    take("both_nan", _is_nan_code(o, fmt, "ours") & _is_nan_code(r, fmt, "theirs"))
    if not fmt.has_nan:
        input_nan = _is_nan_bits(b)
        magnitude = np.uint32((1 << (fmt.bits - int(fmt.signed))) - 1)
        take("nan_input_zero", input_nan & (o == 0) & ((r & r.dtype.type(magnitude)) == 0))
    if fmt.specials == "e8m0":
        o32, r32 = o.astype(np.int64), r.astype(np.int64)
        take("e8m0_tie", is_e8m0_tie(b) & (o32 % 2 == 0) & (o32 == r32 - 1))
        take("e8m0_subnormal", is_e8m0_subnormal_case(b) & (o32 == 0) & (r32 == 1))
    counts["unexplained"] = int(left.sum())
    examples = [
        ("encode", int(bb), int(oo), int(rr))
        for bb, oo, rr in zip(b[left][:MAX_EXAMPLES], o[left][:MAX_EXAMPLES], r[left][:MAX_EXAMPLES])
    ]
    return counts, examples


@functools.cache
def _numfmt_side(fmt):
    """A jitted ``x -> (encode(x), how many quantize(x) != decode(encode(x)))``.

    One compiled function per format, so that the quantize check costs no transfer of
    its arrays: only a count comes back. (Not an argmax for an example as well: on
    XLA CPU that reduction costs three times the rest of the function.)
    """
    import jax
    import jax.numpy as jnp
    from jax import lax

    import numfmt as nf

    def side(x):
        codes = nf.encode(x, fmt)
        q = lax.bitcast_convert_type(nf.quantize(x, fmt), jnp.uint32)
        d = lax.bitcast_convert_type(nf.decode(codes, fmt, jnp.float32), jnp.uint32)
        differs = (q != d) & ~(_is_nan_bits(q) & _is_nan_bits(d))
        return codes, jnp.sum(differs, dtype=jnp.int32)

    return jax.jit(side)


def check_bits(bits: np.ndarray, fmt):
    """Encode the float32 patterns ``bits`` with numfmt and ml_dtypes; ``classify`` them.

    Also counts the inputs where ``quantize`` differs from ``decode(encode)``; for the
    first of them an example ``("quantize", input bits, quantize bits, decode bits)``.
    """
    import numfmt as nf

    x = bits.view(np.float32)
    ours, n_differ = _numfmt_side(fmt)(x)
    ours = np.asarray(ours)
    counts, examples = classify(bits, ours, reference_codes(x, fmt), fmt)
    counts["quantize_differs"] = int(n_differ)
    if counts["quantize_differs"]:  # a failure: find the first example the slow way
        q = np.asarray(nf.quantize(x, fmt)).view(np.uint32)
        d = np.asarray(nf.decode(ours, fmt)).view(np.uint32)
        i = int(np.flatnonzero((q != d) & ~(_is_nan_bits(q) & _is_nan_bits(d)))[0])
        examples.append(("quantize", int(bits[i]), int(q[i]), int(d[i])))
    return counts, examples


@contextlib.contextmanager
def _environ(env: dict):
    """Sets environment variables for the duration (for child processes), then restores them."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@functools.lru_cache(maxsize=1)
def _offsets(chunk_bits: int) -> np.ndarray:
    return np.arange(1 << chunk_bits, dtype=np.uint32)


def _check_chunk(fmt_name: str, index: int, chunk_bits: int):
    """Worker task: chunk ``index`` of the 2**32 patterns, for one format."""
    import numfmt as nf

    fmt = nf.get(fmt_name)
    bits = _offsets(chunk_bits) + np.uint32(index << chunk_bits)
    # time.time, not perf_counter: the spans of different worker processes are compared.
    t0 = time.time()
    counts, examples = check_bits(bits, fmt)
    return fmt_name, index, counts, examples, t0, time.time()


def run(formats=None, *, chunk_bits: int = 24, workers: int = 2, chunks: int | None = None, verbose=True):
    """Compare every float32 pattern (or the first ``chunks`` chunks) for each format.

    Returns ``{name: {"counts": {...}, "examples": [...], "seconds": ..., "wall": ...}}`` and
    the total wall time. ``seconds`` is the sum of the format's chunk times (worker
    seconds); ``wall`` is the span from its first chunk's start to its last chunk's end.
    ``workers`` processes ('spawn') share the (format, chunk) tasks, in format order.
    """
    import numfmt as nf

    fmts = compared_formats() if formats is None else [nf.get(f) for f in formats]
    n_chunks = 1 << (32 - chunk_bits)
    if chunks is not None:
        n_chunks = min(n_chunks, chunks)
    tasks = [(f.name, i, chunk_bits) for f in fmts for i in range(n_chunks)]
    results = {
        f.name: {"counts": dict.fromkeys(COUNTS, 0), "examples": [], "seconds": 0.0, "span": [np.inf, -np.inf], "done": 0}
        for f in fmts
    }

    def absorb(out):
        name, _, counts, examples, start, end = out
        res = results[name]
        for k, v in counts.items():
            res["counts"][k] += v
        res["examples"].extend(examples[: MAX_EXAMPLES - len(res["examples"])])
        res["seconds"] += end - start
        res["span"] = [min(res["span"][0], start), max(res["span"][1], end)]
        res["done"] += 1
        if verbose and res["done"] == n_chunks:
            c = res["counts"]
            print(
                f"  {name}: {res['span'][1] - res['span'][0]:.0f} s wall, unexplained {c['unexplained']},"
                f" quantize_differs {c['quantize_differs']}"
                f" ({time.perf_counter() - t0:.0f} s since start)",
                file=sys.stderr,
                flush=True,
            )

    t0 = time.perf_counter()
    if workers <= 1:
        for task in tasks:
            absorb(_check_chunk(*task))
    else:
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            with _environ(_MALLOC_ENV):  # the workers start at the first submit
                futures = [pool.submit(_check_chunk, *task) for task in tasks]
            for fut in concurrent.futures.as_completed(futures):
                absorb(fut.result())
    for res in results.values():
        span = res.pop("span")
        res["wall"] = span[1] - span[0] if res.pop("done") else 0.0
    return results, time.perf_counter() - t0


def format_table(results) -> str:
    cols = ("format",) + COUNTS + ("wall s", "worker s")
    rows = []
    for name, res in results.items():
        c = res["counts"]
        rows.append((name,) + tuple(f"{c[k]:,}" for k in COUNTS) + (f"{res['wall']:.0f}", f"{res['seconds']:.0f}"))
    widths = [max(len(r[i]) for r in rows + [cols]) for i in range(len(cols))]
    line = lambda r: "| " + " | ".join(v.rjust(w) for v, w in zip(r, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|"
    return "\n".join([line(cols), sep] + [line(r) for r in rows])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--formats", nargs="*", help="format names (default: every one with a dtype)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--chunk-bits", type=int, default=24, help="log2 of the inputs per chunk (default 24)")
    parser.add_argument("--chunks", type=int, default=None, help="only the first N chunks (a partial run)")
    args = parser.parse_args(argv)
    results, wall = run(args.formats, chunk_bits=args.chunk_bits, workers=args.workers, chunks=args.chunks)
    print(format_table(results))
    n = (1 << 32) if args.chunks is None else min(1 << 32, args.chunks << args.chunk_bits)
    print(f"\n{n} float32 inputs per format, {len(results)} formats, {args.workers} workers: {wall:.1f} s wall")
    bad = {k: v for k, v in results.items() if v["counts"]["unexplained"] or v["counts"]["quantize_differs"]}
    for name, res in bad.items():
        c = res["counts"]
        print(f"{name}: {c['unexplained']} unexplained mismatches, {c['quantize_differs']} quantize differences, e.g.:")
        for line in describe_examples(res["examples"]):
            print("    " + line)
    return 1 if bad else 0


def describe_examples(examples) -> list[str]:
    """One line per example of ``check_bits`` / ``run``."""
    lines = []
    for kind, bits, a, b in examples:
        x = np.array(bits, np.uint32).view(np.float32)
        if kind == "encode":
            lines.append(f"encode 0x{bits:08x} ({x!r}): numfmt code 0x{a:x}, ml_dtypes code 0x{b:x}")
        else:
            lines.append(f"quantize 0x{bits:08x} ({x!r}): quantize bits 0x{a:08x}, decode(encode) bits 0x{b:08x}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
