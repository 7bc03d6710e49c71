"""Tests of numfmt.packing: layouts, round trips, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numfmt.packing import SUPPORTED_BITS, pack, packed_nbytes, unpack


def _reference_pack(codes, bits):
    """The little-endian bit stream of the module doc, built with NumPy's packbits."""
    codes = np.asarray(codes, dtype=np.uint64).reshape(-1) & np.uint64((1 << bits) - 1)
    stream = ((codes[:, None] >> np.arange(bits, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)
    return np.packbits(stream.reshape(-1), bitorder="little")


def test_four_bit_layout_first_code_in_low_nibble():
    np.testing.assert_array_equal(pack(jnp.array([1, 2, 15, 0], jnp.uint8), 4), [0x21, 0x0F])


def test_two_and_one_bit_layout():
    np.testing.assert_array_equal(pack(jnp.array([1, 2, 3, 0]), 2), [0b00111001])
    np.testing.assert_array_equal(pack(jnp.array([1, 0, 0, 0, 0, 0, 0, 1, 1]), 1), [0x81, 0x01])


def test_six_bit_codes_four_to_three_bytes():
    codes = jnp.array([0x3F, 0x00, 0x2A, 0x15], jnp.uint8)
    out = pack(codes, 6)
    assert out.shape == (3,)
    # stream: 111111 000000 010101 101010 (first code lowest)
    word = 0x3F | (0x00 << 6) | (0x2A << 12) | (0x15 << 18)
    np.testing.assert_array_equal(out, [word & 0xFF, (word >> 8) & 0xFF, word >> 16])


@pytest.mark.parametrize("bits", SUPPORTED_BITS)
def test_matches_reference_bit_stream(bits):
    rng = np.random.default_rng(bits)
    n = 37
    codes = rng.integers(0, 2**bits, size=n, dtype=np.uint64).astype(np.uint32)
    np.testing.assert_array_equal(pack(jnp.asarray(codes), bits), _reference_pack(codes, bits))
    assert pack(jnp.asarray(codes), bits).shape == (packed_nbytes(n, bits),)


@settings(deadline=None)
@given(bits=st.sampled_from(SUPPORTED_BITS), data=st.data())
def test_round_trip(bits, data):
    n = data.draw(st.sampled_from([0, 1, 5, 8, 13, 64]))  # few shapes: few compilations
    top = 2**bits - 1
    codes = np.array(data.draw(st.lists(st.integers(0, top), min_size=n, max_size=n)), dtype=np.uint32)
    dtype = np.uint8 if bits <= 8 else (np.uint16 if bits <= 16 else np.uint32)
    packed = pack(jnp.asarray(codes.astype(dtype)), bits)
    assert packed.dtype == jnp.uint8
    assert packed.shape == (packed_nbytes(n, bits),)
    back = unpack(packed, bits, n)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, codes.astype(dtype))


def test_unpack_to_shape_and_under_jit():
    codes = jnp.arange(24, dtype=jnp.uint8).reshape(4, 6) % 16
    packed = jax.jit(pack, static_argnums=1)(codes, 4)
    back = jax.jit(unpack, static_argnums=(1, 2))(packed, 4, (4, 6))
    np.testing.assert_array_equal(back, codes)


def test_high_bits_are_dropped():
    np.testing.assert_array_equal(unpack(pack(jnp.array([0x1F, 0xF3], jnp.uint8), 4), 4, 2), [0xF, 0x3])


def test_signed_codes_keep_their_bit_pattern():
    # int8 two's complement codes pack as their unsigned bytes.
    np.testing.assert_array_equal(pack(jnp.array([-1, 1], jnp.int8), 8), [0xFF, 0x01])


def test_packed_nbytes():
    assert packed_nbytes(4096, 4) == 2048
    assert packed_nbytes(5, 6) == 4
    assert packed_nbytes(0, 3) == 0
    assert packed_nbytes(3, 32) == 12


@pytest.mark.parametrize("bits", [0, 9, 12, 33, -1])
def test_bad_bits(bits):
    with pytest.raises(ValueError, match="bits must be one of"):
        pack(jnp.zeros(4, jnp.uint8), bits)
    with pytest.raises(ValueError, match="bits must be one of"):
        unpack(jnp.zeros(4, jnp.uint8), bits, 4)


def test_bad_inputs():
    with pytest.raises(TypeError, match="bits must be an int"):
        pack(jnp.zeros(4, jnp.uint8), 4.0)
    with pytest.raises(TypeError, match="codes must be an integer array"):
        pack(jnp.zeros(4, jnp.float32), 4)
    with pytest.raises(ValueError, match="packed has 1 bytes; 4 codes of 4 bits need 2"):
        unpack(jnp.zeros(1, jnp.uint8), 4, 4)
    with pytest.raises(ValueError, match="n must be non-negative"):
        unpack(jnp.zeros(1, jnp.uint8), 4, -1)
    with pytest.raises(ValueError, match="n must be a non-negative int"):
        packed_nbytes(-1, 4)
