"""Sub-byte codes packed into bytes: :func:`pack`, :func:`unpack`, :func:`packed_nbytes`.

The layout is one little-endian bit stream: code ``i`` of a ``b``-bit array occupies
bits ``[i*b, (i+1)*b)`` of the stream, and byte ``j`` holds stream bits
``[8j, 8j+8)`` with the lowest stream bit in the byte's least significant bit. So

* 4-bit codes: two per byte, the first code in the low nibble (the order of
  CUDA's ``__nv_fp4x2_e2m1`` and of ``ml_dtypes``' packed int4 helpers);
* 2- and 1-bit codes: four and eight per byte, first code lowest;
* 6-bit codes: four codes in three bytes (24 bits); 3-, 5- and 7-bit codes: eight
  codes in 3, 5 and 7 bytes;
* 8-, 16- and 32-bit codes: whole bytes, little-endian.

The input is flattened in row-major order; a final partial group is padded with zero
bits, so ``pack`` returns ``ceil(n * bits / 8)`` bytes. ``unpack`` takes the element
count (or shape) back. Bits of a code above ``bits`` are dropped (inside ``jit`` no
value is checked by raising, docs/design.md).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

__all__ = ["SUPPORTED_BITS", "pack", "packed_nbytes", "unpack"]

SUPPORTED_BITS = tuple(range(1, 9)) + (16, 32)


def _check_bits(bits) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise TypeError(f"bits must be an int, one of {SUPPORTED_BITS}, got {bits!r}")
    if int(bits) not in SUPPORTED_BITS:
        raise ValueError(f"bits must be one of {SUPPORTED_BITS}, got {bits}")
    return int(bits)


def packed_nbytes(n: int, bits: int) -> int:
    """The number of bytes ``pack`` gives for ``n`` codes of ``bits`` bits: ``ceil(n*bits/8)``.

    Also defined for any bit width 1..64 that ``pack`` does not store (used for storage
    accounting of scales in odd widths).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 64:
        raise ValueError(f"bits must be an int in [1, 64], got {bits!r}")
    return -(-int(n) * int(bits) // 8)


def _group(bits: int) -> tuple[int, int]:
    """(codes, bytes) of the smallest whole-byte group: 8 / gcd(bits, 8) codes."""
    codes = 8 // math.gcd(bits, 8)
    return codes, codes * bits // 8


def pack(codes, bits: int):
    """Pack unsigned ``bits``-bit codes into a flat uint8 array.

    Args:
      codes: an integer array of any shape (as ``numfmt.encode`` returns them); it is
        flattened in row-major order.
      bits: the code width: 1 to 8, 16 or 32.

    Returns:
      a 1-D uint8 array of ``packed_nbytes(codes.size, bits)`` bytes (layout in the
      module doc).
    """
    bits = _check_bits(bits)
    codes = jnp.asarray(codes)
    if not jnp.issubdtype(codes.dtype, jnp.integer):
        raise TypeError(f"codes must be an integer array, got dtype {codes.dtype}")
    flat = codes.reshape(-1)
    n = flat.shape[0]
    if bits in (8, 16, 32):
        # Whole bytes, little-endian: peel off each byte of the (masked) code.
        wide = flat.astype(jnp.uint32)
        nb = bits // 8
        shifts = jnp.arange(nb, dtype=jnp.uint32) * jnp.uint32(8)
        return ((wide[:, None] >> shifts) & jnp.uint32(0xFF)).astype(jnp.uint8).reshape(-1)
    wide = flat.astype(jnp.uint32) & jnp.uint32((1 << bits) - 1)
    per, nbytes_group = _group(bits)
    pad = (-n) % per
    wide = jnp.pad(wide, (0, pad)).reshape(-1, per)
    if nbytes_group == 1:
        # 1, 2, 4 bits: a byte is the OR of its codes shifted into place.
        shifts = jnp.arange(per, dtype=jnp.uint32) * jnp.uint32(bits)
        out = jnp.sum(wide << shifts, axis=1, dtype=jnp.uint32)  # disjoint bits: sum == OR
        return out.astype(jnp.uint8)
    # 3, 5, 6, 7 bits: a group of `per` codes is at most 56 bits, so build it as two
    # 32-bit halves of the stream (no uint64 without jax_enable_x64).
    shifts = np.arange(per) * bits
    lo = jnp.zeros(wide.shape[0], jnp.uint32)
    hi = jnp.zeros(wide.shape[0], jnp.uint32)
    for j, s in enumerate(shifts):
        c = wide[:, j]
        if s < 32:
            lo = lo | (c << jnp.uint32(s))
            if s + bits > 32:
                hi = hi | (c >> jnp.uint32(32 - s))
        else:
            hi = hi | (c << jnp.uint32(s - 32))
    byte_list = []
    for k in range(nbytes_group):
        word, off = (lo, 8 * k) if k < 4 else (hi, 8 * (k - 4))
        byte_list.append((word >> jnp.uint32(off)) & jnp.uint32(0xFF))
    out = jnp.stack(byte_list, axis=1).astype(jnp.uint8).reshape(-1)
    return out[: packed_nbytes(n, bits)]


def unpack(packed, bits: int, n):
    """Unpack ``n`` codes of ``bits`` bits from bytes made by :func:`pack`.

    Args:
      packed: a 1-D uint8 array (any integer dtype; only the low 8 bits are read).
      bits: the code width: 1 to 8, 16 or 32.
      n: the number of codes, or a shape tuple to give the result.

    Returns:
      the codes in the smallest unsigned container (uint8, uint16 or uint32), flat
      (``n`` an int) or with shape ``n``.
    """
    bits = _check_bits(bits)
    shape = (n,) if isinstance(n, (int, np.integer)) and not isinstance(n, bool) else n
    try:
        shape = tuple(int(d) for d in shape)
    except TypeError:
        raise TypeError(f"n must be an int or a shape tuple, got {n!r}") from None
    if any(d < 0 for d in shape):
        raise ValueError(f"n must be non-negative, got {n!r}")
    count = math.prod(shape)
    packed = jnp.asarray(packed)
    if not jnp.issubdtype(packed.dtype, jnp.integer):
        raise TypeError(f"packed must be an integer (uint8) array, got dtype {packed.dtype}")
    packed = packed.reshape(-1)
    need = packed_nbytes(count, bits)
    if packed.shape[0] < need:
        raise ValueError(f"packed has {packed.shape[0]} bytes; {count} codes of {bits} bits need {need}")
    b = packed[:need].astype(jnp.uint32) & jnp.uint32(0xFF)
    out_dtype = jnp.uint8 if bits <= 8 else (jnp.uint16 if bits <= 16 else jnp.uint32)
    if bits in (8, 16, 32):
        nb = bits // 8
        shifts = jnp.arange(nb, dtype=jnp.uint32) * jnp.uint32(8)
        codes = jnp.sum(b.reshape(-1, nb) << shifts, axis=1, dtype=jnp.uint32)
        return codes.astype(out_dtype).reshape(shape)
    per, nbytes_group = _group(bits)
    mask = jnp.uint32((1 << bits) - 1)
    b = jnp.pad(b, (0, (-need) % nbytes_group)).reshape(-1, nbytes_group)
    if nbytes_group == 1:
        shifts = jnp.arange(per, dtype=jnp.uint32) * jnp.uint32(bits)
        codes = (b >> shifts) & mask
    else:
        lo = jnp.zeros(b.shape[0], jnp.uint32)
        hi = jnp.zeros(b.shape[0], jnp.uint32)
        for k in range(nbytes_group):
            if k < 4:
                lo = lo | (b[:, k] << jnp.uint32(8 * k))
            else:
                hi = hi | (b[:, k] << jnp.uint32(8 * (k - 4)))
        cols = []
        for j in range(per):
            s = j * bits
            if s + bits <= 32:
                c = lo >> jnp.uint32(s)
            elif s >= 32:
                c = hi >> jnp.uint32(s - 32)
            else:
                c = (lo >> jnp.uint32(s)) | (hi << jnp.uint32(32 - s))
            cols.append(c & mask)
        codes = jnp.stack(cols, axis=1)
    return codes.reshape(-1)[:count].astype(out_dtype).reshape(shape)
