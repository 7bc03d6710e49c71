"""Misuse that used to pass silently or fail unhelpfully (issue 14): each case failed before its fix.

A new user's mistakes get a clear error at the boundary, naming the argument and what
was expected (and, for a traced argument that must be static, how to make it static);
no result is silently wrong.
"""

from __future__ import annotations

import functools
import pathlib
import re
import uuid

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numfmt as nf
from numfmt import cli, formats

REPO = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture
def registry(monkeypatch):
    """The format registry, restored after the test."""
    monkeypatch.setattr(formats, "_REGISTRY", dict(formats._REGISTRY))
    monkeypatch.setattr(formats, "_ALIASES", dict(formats._ALIASES))


# ---- the registry -----------------------------------------------------------------------


def test_register_refuses_a_built_in_name(registry):
    with pytest.raises(ValueError, match="'e4m3' belongs to the built-in format"):
        nf.register(nf.FloatFormat("e4m3", 4, 3))
    with pytest.raises(ValueError, match="built-in"):
        nf.register(nf.FloatFormat("e4m3", 4, 3), overwrite=True)
    with pytest.raises(ValueError, match="'float8_e4m3fn' belongs"):
        nf.register(nf.FloatFormat("mine", 4, 3), "float8_e4m3fn")
    # Every path still sees the one E4M3: the name, the alias, the constant, MX.
    assert nf.get("e4m3") is nf.E4M3 and nf.get("float8_e4m3fn").max == 448.0
    assert np.asarray(nf.quantize(np.array([300.0, 440.0], np.float32), "e4m3")).tolist() == [288.0, 448.0]
    assert nf.mx_quantize(np.ones((1, 32), np.float32), "e4m3").fmt is nf.E4M3
    assert "mine" not in nf.names()  # a refused registration leaves nothing behind


def test_register_a_taken_user_name_needs_overwrite(registry):
    first = nf.register(nf.FloatFormat("myfmt", 4, 3), "mf")
    assert nf.register(nf.FloatFormat("myfmt", 4, 3), "mf") is not None  # an equal format: a no-op
    second = nf.FloatFormat("myfmt", 5, 2)
    with pytest.raises(ValueError, match="'myfmt' is taken .* overwrite=True"):
        nf.register(second)
    assert nf.get("mf") == first
    with pytest.raises(TypeError, match="overwrite must be True or False"):
        nf.register(second, overwrite="yes")
    nf.register(second, overwrite=True)
    assert nf.get("myfmt") is second and nf.get("mf") is second


# ---- intgemm ------------------------------------------------------------------------------


def test_int_gemm_refuses_float_operands():
    w = np.ones((2, 1), np.int32)
    with pytest.raises(TypeError, match="x_q must be integers .* got dtype float"):
        nf.int_gemm(np.array([[1.7, -1.7]]), w, 0, 0)
    with pytest.raises(TypeError, match="w_zero_point must be integers"):
        nf.int_gemm(np.ones((1, 2), np.int8), w, 0, 0.5)
    with pytest.raises(TypeError, match="acc must be integers"):
        nf.requantize(np.ones(3, np.float32), 2**30, 0, 0)
    assert np.asarray(nf.int_gemm(np.array([[2, -1]], np.int8), w, 0, 0)).tolist() == [[1]]


# ---- flags, keys, static arguments, names ----------------------------------------------------

X = np.array([1.3, 300.0, 500.0], np.float32)


@pytest.mark.parametrize("fn", [nf.encode, nf.quantize])
@pytest.mark.parametrize("flag", ["no", "False", 1, None])
def test_saturate_must_be_a_bool(fn, flag):
    with pytest.raises(TypeError, match="saturate must be True or False"):
        fn(X, nf.E4M3, saturate=flag)


def test_traced_saturate_says_it_must_be_static():
    with pytest.raises(TypeError, match=r"saturate must be a Python bool known at trace time.*static_argnames"):
        jax.jit(lambda x, s: nf.quantize(x, nf.E4M3, saturate=s))(X, True)


def test_jitting_quantize_with_a_format_says_how_to_fix_it():
    with pytest.raises(TypeError, match=r"fmt .* traced value.*static_argnames=\('fmt',\).*functools.partial"):
        jax.jit(nf.quantize)(X, nf.E4M3)
    # Both fixes work.
    static = jax.jit(nf.quantize, static_argnames=("fmt",))(X, fmt=nf.E4M3)
    bound = jax.jit(functools.partial(nf.quantize, fmt=nf.E4M3))(X)
    np.testing.assert_array_equal(static, bound)


@pytest.mark.parametrize("key", [0, np.uint32(7), np.zeros(3, np.uint32), "key"])
def test_a_key_must_be_a_jax_key(key):
    with pytest.raises(TypeError, match=r"key must be a JAX random key, made by jax.random.key\(seed\)"):
        nf.quantize(X, nf.E4M3, "stochastic", key=key)


def test_an_integer_width_past_32_bits_says_the_limit():
    with pytest.raises(ValueError, match="N = 1 to 32 bits, got 40"):
        nf.get("int40")
    with pytest.raises(ValueError, match="N = 1 to 32 bits, got 0"):
        nf.get("uint0")


# ---- quantize's result dtype ----------------------------------------------------------------


def test_float16_quantized_to_bf16_never_becomes_inf():
    x = jnp.asarray([65408.0, 65504.0, -65504.0, 1.5], jnp.float16)
    q = nf.quantize(x, nf.BF16)
    assert q.dtype == jnp.float32
    assert np.asarray(q).tolist() == [65536.0, 65536.0, -65536.0, 1.5]


@pytest.mark.parametrize("dtype, fmt", [
    (jnp.float16, nf.INT16),    # 32767 is not a float16
    (jnp.bfloat16, nf.FP16),    # nor is 1 + 2**-10 a bfloat16
    (jnp.bfloat16, nf.NF4),     # NF4's table values are float32s, not bfloat16s
], ids=["fp16-int16", "bf16-fp16", "bf16-nf4"])
def test_values_the_input_dtype_cannot_hold_come_back_in_float32(dtype, fmt):
    x = jnp.asarray(np.linspace(-70000, 70000, 101).tolist() + [1 + 2**-10, 0.0796], jnp.float32).astype(dtype)
    q = nf.quantize(x, fmt)
    assert q.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(q), np.asarray(nf.decode(nf.encode(x, fmt), fmt, jnp.float32)))


# ---- the command line ------------------------------------------------------------------------


def test_encode_refuses_bare_hex_digits(capsys):
    assert cli.main(["encode", "e5m2", "abc", "e5", "ff", "dead"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "'abc', 'e5', 'ff', 'dead' are not numbers" in err and "numfmt decode" in err
    assert cli.main(["encode", "e5m2", "0x1.8p3", "-0x1p3"]) == 0  # hex floats keep their 0x


def test_seed_without_stochastic_is_an_error_like_rbits(capsys):
    assert cli.main(["encode", "e4m3", "1.3", "--seed", "3"]) == 2
    assert "--seed is only used with --rounding stochastic" in capsys.readouterr().err
    assert cli.main(["encode", "e4m3", "1.3", "--rbits", "3"]) == 2
    assert cli.main(["encode", "e4m3", "1.3", "-r", "stochastic", "--seed", "3"]) == 0


def test_verify_reports_a_raising_candidate_with_its_own_status(tmp_path, monkeypatch, capsys):
    name = f"conv_{uuid.uuid4().hex[:12]}"
    (tmp_path / f"{name}.py").write_text("def raises(x):\n    raise ValueError('not for this input')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    status = cli.main(["verify", f"{name}:raises", "e4m3"])
    out, err = capsys.readouterr()
    assert status == 3 and status not in (0, 1, 2)
    assert "raised ValueError: not for this input" in err and "Traceback" not in out + err


def test_int40_on_the_command_line(capsys):
    assert cli.main(["info", "int40"]) == 2
    assert "1 to 32 bits" in capsys.readouterr().err


# ---- docs a user reads -----------------------------------------------------------------------


def test_the_design_page_is_in_the_repository_and_cited():
    assert (REPO / "docs" / "design.md").is_file()
    cited = [p for p in [*REPO.glob("numfmt/**/*.py"), *REPO.glob("docs/*.md"), *REPO.glob("tests/*.py"),
                         REPO / "README.md"]
             if p.name != "test_misuse.py" and re.search(r"(?<![/\w])DESIGN\.md", p.read_text())]
    assert not cited, f"cite docs/design.md, not DESIGN.md: {cited}"


def test_readme_states_every_accepted_difference_from_ml_dtypes():
    text = " ".join((REPO / "README.md").read_text().split())
    for family in ("NaN codes", "NaN inputs into formats without NaN", "E8M0 ties", "E8M0 inputs just above"):
        assert family in text, family


# ---- the accumulator's public functions, the codebook's report -------------------------------


_A = np.ones((1, 2, 8), np.float32)
_B = np.ones((1, 3, 8), np.float32)
_ACC = nf.Accumulator(nf.BF16, dot_width=4)


@pytest.mark.parametrize("call, error, message", [
    (lambda: nf.accumulate(_A, _B, nf.BF16), TypeError, "acc must be an Accumulator"),
    (lambda: nf.accumulate(_A, _B, nf.Accumulator(nf.FP32)), ValueError, "needs a dot_width"),
    (lambda: nf.accumulate(_A[0], _B[0], _ACC), ValueError, r"a must have shape \(B, rows, K\)"),
    (lambda: nf.accumulate(_A, _B[..., :4], _ACC), ValueError, "the same B and K"),
    (lambda: nf.accumulate(np.ones((2, 2, 8), np.float32), _B, _ACC), ValueError, "the same B and K"),
    (lambda: nf.accumulate(_A[..., :6], _B[..., :6], _ACC), ValueError, "multiple of dot_width = 4"),
    (lambda: nf.accumulate(_A, _B, nf.Accumulator(nf.INT32, dot_width=4)), TypeError, "int32 element values"),
    (lambda: nf.round_add(np.float32(1), np.float32(2), nf.BF16), TypeError, "acc must be an Accumulator"),
    (lambda: nf.storage_report(_A), TypeError, "q must be a CodebookArray"),  # was: no attribute 'labels'
])
def test_accumulate_round_add_and_storage_report_name_what_is_wrong(call, error, message):
    # Before, these failed inside: "unsupported operand type(s) for //", a reshape of the
    # wrong size, a missing attribute; a float operand of an integer accumulator passed.
    with pytest.raises(error, match=message):
        call()
