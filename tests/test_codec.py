"""Unit tests of numfmt.codec: known answers, containers, JAX transforms, bad input.

The property tests against the exact oracle live in test_codec_properties.py, and the
bit-exact comparison with ml_dtypes in test_vs_ml_dtypes.py.
"""

import itertools
import os
import subprocess
import sys
import textwrap
from fractions import Fraction

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

import numfmt as nf
from numfmt.testing import reference_round

F32 = np.float32


def codes(x, fmt, *args, **kw):
    return np.asarray(nf.encode(np.asarray(x, F32), fmt, *args, **kw)).astype(np.int64).tolist()


# ---- known answers, worked out by hand from the format definitions -------------------


def test_e4m3_known_codes():
    # 1.0 = 0 0111 000; 448 = 0 1111 110 (max); 464 is the tie 448|480 -> even (448);
    # 465 is past it -> NaN (0x7f), as OCP FP8 v1.0 says for E4M3 without saturation.
    assert codes([1.0, 448.0, 464.0, 465.0, -0.0, 2.0**-9, 2.0**-10], nf.E4M3) == [
        0x38, 0x7E, 0x7E, 0x7F, 0x80, 0x01, 0x00
    ]
    assert codes([465.0, -1e9, np.inf], nf.E4M3, saturate=True) == [0x7E, 0xFE, 0x7E]


def test_rounding_modes_on_e2m1():
    # E2M1 values: 0 0.5 1 1.5 2 3 4 6 (codes 0..7).
    x = [2.5, -2.5, 5.0, 0.25, 7.0]
    assert codes(x, nf.E2M1, "nearest_even") == [4, 12, 6, 0, 7]  # 5 -> 4 (even), 7 -> 6 (max)
    assert codes(x, nf.E2M1, "nearest_away") == [5, 13, 7, 1, 7]
    assert codes(x, nf.E2M1, "toward_zero") == [4, 12, 6, 0, 7]
    assert codes(x, nf.E2M1, "up") == [5, 12, 7, 1, 7]
    assert codes(x, nf.E2M1, "down") == [4, 13, 6, 0, 7]
    assert codes(x, nf.E2M1, "odd") == [5, 13, 7, 1, 7]


def test_directed_overflow_follows_ieee_7_4():
    big = [1e6, -1e6]
    assert codes(big, nf.E5M2, "nearest_even") == [0x7C, 0xFC]  # +-inf
    assert codes(big, nf.E5M2, "toward_zero") == [0x7B, 0xFB]  # +-max
    assert codes(big, nf.E5M2, "up") == [0x7C, 0xFB]
    assert codes(big, nf.E5M2, "down") == [0x7B, 0xFC]


def test_integers_round_then_clamp():
    x = [2.5, 3.5, -2.5, -8.5, 7.5, 100.0, -100.0, np.inf, np.nan]
    assert codes(x, nf.INT4) == [2, 4, 0xE, 0x8, 7, 7, 0x8, 7, 0]
    assert codes([-3.0, 300.0, 0.5, 1.5], nf.UINT8) == [0, 255, 0, 2]
    assert codes([-200.0], "int8_narrow") == [0x81]  # -127: the narrow range
    assert codes([2.0**31, -(2.0**31), 123456789.0], nf.INT32) == [0x7FFFFFFF, 0x80000000, 123456792]


def test_e8m0_is_unsigned_without_zero():
    # Ties go to the even code (IEEE P3109): 3 = 1.5 * 2 -> 2 (code 128), 6 -> 8 (130).
    assert codes([1.0, 3.0, 6.0, 0.0, -1.0, 2.0**-140], nf.E8M0) == [127, 128, 130, 255, 255, 0]


def test_container_dtypes():
    x = np.ones(3, F32)
    assert nf.encode(x, nf.E2M1).dtype == jnp.uint8
    assert nf.encode(x, nf.BF16).dtype == jnp.uint16
    assert nf.encode(x, nf.TF32).dtype == jnp.uint32
    assert nf.encode(x, "int17").dtype == jnp.uint32


def test_half_and_bfloat16_inputs_are_exact():
    v = np.array([1.0, 3.0, 0.1, -65504.0, 6e-8], F32)
    for dtype in (jnp.float16, jnp.bfloat16):
        xh = jnp.asarray(v, dtype)
        widened = np.asarray(xh.astype(jnp.float32))
        assert codes(widened, nf.E4M3) == np.asarray(nf.encode(xh, nf.E4M3)).tolist()
        assert nf.quantize(xh, nf.E4M3).dtype == dtype


def test_decode_round_trips_every_code():
    for fmt in (nf.E4M3, nf.E5M2, nf.E2M1, nf.E3M2, nf.E8M0, nf.INT4, nf.UINT4, nf.BF16):
        all_codes = np.arange(1 << fmt.bits, dtype=fmt.code_dtype)
        vals = np.asarray(nf.decode(all_codes, fmt))
        again = np.asarray(nf.encode(vals, fmt)).astype(np.int64)
        finite = np.isfinite(vals)
        # Every finite code comes back, except -0 in formats that keep it (+0 and -0
        # both come back as themselves) and the unused flush codes.
        assert np.array_equal(again[finite], np.where(vals[finite] == 0, again[finite], all_codes[finite]))
        if fmt.dtype is not None and fmt.kind == "float":
            ref = all_codes.view(fmt.dtype).astype(np.float32)
            assert np.array_equal(vals, ref, equal_nan=True)


def test_decode_to_other_dtypes():
    c = nf.encode(np.array([1.5, -448.0], F32), nf.E4M3)
    assert nf.decode(c, nf.E4M3, jnp.bfloat16).dtype == jnp.bfloat16
    assert np.asarray(nf.decode(c, nf.E4M3, jnp.float16)).tolist() == [1.5, -448.0]


def test_codebook_nearest_and_ties_to_lower_code():
    table = np.asarray(nf.NF4.table)
    mid = (table[3] + table[4]) / 2
    got = codes([-2.0, 2.0, 0.0, table[5], float(np.float32(mid)) + 1e-6], nf.NF4)
    assert got[:4] == [0, 15, 7, 5]
    assert got[4] == 4
    assert np.asarray(nf.decode(np.arange(16, dtype=np.uint8), nf.NF4)).tolist() == list(
        table.astype(F32)
    )


def test_codebook_midpoints_compare_exactly():
    # Every float32 next to each exact midpoint of NF4's table: a midpoint rounded to float32
    # can land on an input that is strictly nearer one side (-0.2346074 is nearer code 5).
    table = [Fraction(float(v)) for v in nf.NF4.table]
    xs = [np.float32(-0.23460739850997925), np.float32(np.nan), np.float32(-np.nan)]
    for lo, hi in itertools.pairwise(table):
        m = np.float32(float((lo + hi) / 2))
        xs += [np.nextafter(m, F32(-1)), m, np.nextafter(m, F32(1))]
    x = np.array(xs, F32)
    want = [reference_round(v, nf.NF4, "nearest_even") for v in x]
    assert codes(x, nf.NF4) == want
    assert want[:3] == [5, 7, 7]  # nearest; NaN gives the code of 0.0


# ---- JAX transformations ----------------------------------------------------------------


def _sample(n=4096, seed=0):
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2**32, size=n, dtype=np.uint64).astype(np.uint32)
    return np.concatenate([bits.view(F32), rng.standard_normal(n).astype(F32) * 100])


@pytest.mark.parametrize("fmt", [nf.E4M3, nf.E2M1, nf.INT8, nf.BF16, nf.E8M0])
def test_jit_and_vmap_match_eager(fmt):
    x = _sample().reshape(16, -1)
    eager = np.asarray(nf.encode(x, fmt, "nearest_away"))
    jitted = np.asarray(jax.jit(lambda v: nf.encode(v, fmt, "nearest_away"))(x))
    mapped = np.asarray(jax.vmap(lambda v: nf.encode(v, fmt, "nearest_away"))(x))
    assert np.array_equal(eager, jitted) and np.array_equal(eager, mapped)
    q = np.asarray(jax.jit(jax.vmap(lambda v: nf.quantize(v, fmt)))(x))
    assert np.array_equal(q, np.asarray(nf.quantize(x, fmt)), equal_nan=True)


def test_sharded_input_matches_unsharded():
    script = textwrap.dedent(
        """
        import numpy as np, jax
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
        import numfmt as nf
        assert len(jax.devices()) == 4, jax.devices()
        rng = np.random.default_rng(0)
        x = (rng.standard_normal((64, 256)) * 50).astype(np.float32)
        mesh = Mesh(np.array(jax.devices()), ("d",))
        xs = jax.device_put(x, NamedSharding(mesh, P("d", None)))
        key = jax.random.key(3)
        for fmt in (nf.E4M3, nf.E2M1, nf.INT4, nf.BF16):
            f = jax.jit(lambda v: (nf.encode(v, fmt), nf.quantize(v, fmt, "stochastic", key=key)))
            a, b = f(xs)
            c, d = f(x)
            assert len(a.sharding.device_set) == 4
            assert np.array_equal(np.asarray(a), np.asarray(c)), fmt
            assert np.array_equal(np.asarray(b), np.asarray(d)), fmt
        print("OK")
        """
    )
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK" in out.stdout


def test_float64_is_rounded_once():
    # 1 + 2**-4 + 2**-30 in float64 lies just above the E4M3 tie between 1 and 1.125;
    # float32 keeps only 23 bits and rounds it onto the tie, which then goes to even
    # (1.0). Rounded once, straight from float64, it must go up to 1.125.
    v = 1.0 + 2.0**-4 + 2.0**-30
    assert np.float32(v) == np.float32(1.0625)
    with jax.enable_x64(True):
        x = jnp.asarray([v, -v], jnp.float64)
        assert np.asarray(nf.encode(x, nf.E4M3)).tolist() == [0x39, 0xB9]
        assert np.asarray(nf.quantize(x, nf.E4M3)).tolist() == [1.125, -1.125]
    assert codes([np.float32(v)], nf.E4M3) == [0x38]


# ---- bad input gets a clear error -------------------------------------------------------


def test_unknown_format_lists_close_names():
    with pytest.raises(ValueError, match="unknown format 'e4m4'.*e4m3"):
        nf.encode(np.ones(2, F32), "e4m4")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"exp_bits": 0, "man_bits": 3}, "exp_bits must be in"),
        ({"exp_bits": 9, "man_bits": 3}, "exp_bits must be in"),
        ({"exp_bits": 4, "man_bits": 24}, "man_bits must be in"),
        ({"exp_bits": 4, "man_bits": -1}, "man_bits must be in"),
        ({"exp_bits": 4, "man_bits": 3, "specials": "weird"}, "specials must be one of"),
        ({"exp_bits": 4, "man_bits": 3, "signed": False, "specials": "fnuz"}, "needs signed=True"),
        ({"exp_bits": 8, "man_bits": 23, "signed": True, "bias": 127, "specials": "ieee", "subnormals": True}, None),
    ],
)
def test_float_format_checks_its_fields(kwargs, match):
    if match is None:
        nf.FloatFormat("ok", **kwargs)
        return
    with pytest.raises((ValueError, TypeError), match=match):
        nf.FloatFormat("bad", **kwargs)


def test_int_format_checks_bits():
    for bits in (0, 33):
        with pytest.raises(ValueError, match="bits must be in"):
            nf.IntFormat("bad", bits)
    with pytest.raises(ValueError, match="unknown format"):
        nf.get("int33")


def test_unknown_rounding():
    with pytest.raises(ValueError, match="unknown rounding 'nearest_odd'.*nearest_even"):
        nf.encode(np.ones(2, F32), nf.E4M3, "nearest_odd")


@pytest.mark.parametrize("bad", [np.arange(4), np.arange(4, dtype=np.uint8), np.ones(2, np.complex64), [True]])
def test_encode_rejects_non_float_arrays(bad):
    with pytest.raises(TypeError, match="x must be a real floating-point array"):
        nf.encode(bad, nf.E4M3)
    with pytest.raises(TypeError, match="x must be a real floating-point array"):
        nf.quantize(bad, nf.E4M3)


def test_decode_rejects_float_codes():
    with pytest.raises(TypeError, match="codes must be an integer array"):
        nf.decode(np.ones(3, F32), nf.E4M3)
    with pytest.raises(TypeError, match="dtype must be a float dtype"):
        nf.decode(np.ones(3, np.uint8), nf.E4M3, np.int32)


def test_stochastic_needs_a_key():
    with pytest.raises(ValueError, match="key"):
        nf.encode(np.ones(3, F32), nf.E4M3, "stochastic")


def test_inside_jit_data_never_raises():
    weird = np.array([np.nan, np.inf, -np.inf, 1e38, -0.0], F32)
    out = jax.jit(lambda v: nf.quantize(v, nf.E2M1))(weird)
    assert np.asarray(out).tolist() == [0.0, 6.0, -6.0, 6.0, -0.0]


def test_ml_dtypes_names_resolve_to_matching_formats():
    for name in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz",
                 "float8_e4m3b11fnuz", "float8_e4m3", "float8_e3m4", "float6_e3m2fn",
                 "float6_e2m3fn", "float4_e2m1fn", "float8_e8m0fnu", "bfloat16", "int4", "uint2"):
        assert nf.get(name).dtype == np.dtype(getattr(ml_dtypes, name)), name
    assert nf.get("float16").dtype == np.float16 and nf.get("int3").max == 3


def test_both_kinds_of_jax_key_work():
    a = nf.quantize(np.array([1.3, 300.0], np.float32), nf.E4M3, "stochastic", key=jax.random.key(0))
    b = nf.quantize(np.array([1.3, 300.0], np.float32), nf.E4M3, "stochastic", key=jax.random.PRNGKey(0))
    assert a.shape == b.shape == (2,)


@pytest.mark.parametrize("dtype, fmt, want", [
    (jnp.float16, nf.E4M3, jnp.float16),     # float16 holds every E4M3 value
    (jnp.bfloat16, nf.E5M2, jnp.bfloat16),
    (jnp.float16, nf.INT16, jnp.float32),    # 32767 is not a float16
    (jnp.bfloat16, nf.FP16, jnp.float32),
    (jnp.bfloat16, nf.NF4, jnp.float32),     # NF4's table values are float32s, not bfloat16s
    (jnp.float32, nf.E4M3, jnp.float32),
    (jnp.float32, nf.INT32, jnp.float32),    # no dtype holds int32 without x64: float32, documented
])
def test_quantize_dtype(dtype, fmt, want):
    assert nf.quantize_dtype(dtype, fmt) == want
    assert nf.quantize(jnp.ones(3, dtype), fmt).dtype == want
    assert nf.fits(fmt, want) or fmt is nf.INT32


def test_quantize_dtype_is_float64_with_x64_where_float32_cannot_hold_the_format():
    with jax.enable_x64(True):
        assert nf.quantize_dtype(jnp.float32, nf.INT32) == jnp.float64
        q = nf.quantize(np.array([3e9, -3e9], np.float32), nf.INT32)
        assert q.dtype == jnp.float64 and np.asarray(q).tolist() == [2**31 - 1, -(2**31)]
