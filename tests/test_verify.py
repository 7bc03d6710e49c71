"""Tests of numfmt.testing.verify: it passes right converters and catches planted bugs.

Each planted bug is a correct converter (the ml_dtypes cast) with one classic mistake.
``verify`` must catch it with its default budget, from the structured cases and also
from the random draws alone (``edge_cases=False``), and report the simplest failing
input with the right family.
"""

import os
import pathlib
import re
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

import numfmt as nf
from numfmt.testing import Mismatch, VerifyReport, verify

E4M3 = ml_dtypes.float8_e4m3fn
E5M2 = ml_dtypes.float8_e5m2


def good_e4m3(x):
    return np.asarray(x).astype(E4M3).view(np.uint8)


def good_e5m2(x):
    return np.asarray(x).astype(E5M2).view(np.uint8)


def _neighbour_codes(c):
    """Codes one step toward zero and one away, on the magnitude, keeping the sign."""
    mag, sign = c & 0x7F, c & 0x80
    down = np.where(mag > 0, mag - 1, mag) | sign
    return down.astype(np.uint8), ((mag + 1) | sign).astype(np.uint8)


def ties_away(x):
    """(a) rounds ties away from zero instead of to even."""
    x = np.asarray(x, np.float32)
    c = good_e4m3(x)
    v = np.abs(c.view(E4M3).astype(np.float64))
    down, up = _neighbour_codes(c)
    v_up = np.abs(up.view(E4M3).astype(np.float64))
    v_down = np.abs(down.view(E4M3).astype(np.float64))
    a = np.abs(x.astype(np.float64))
    c = np.where((a == (v + v_up) / 2) & np.isfinite(v_up) & (v_up > v), up, c)
    return np.where((a == (v + v_down) / 2) & (v_down > v), down, c).astype(np.uint8)


def overflow_to_max(x):
    """(b) clamps to max instead of giving NaN past the overflow threshold."""
    x = np.asarray(x, np.float32)
    return good_e4m3(np.where(np.isnan(x), x, np.clip(x, -448, 448)))


def flush_subnormals(x):
    """(c) flushes subnormal results to zero (keeping the sign)."""
    c = good_e4m3(x)
    return np.where((c & 0x78) == 0, c & 0x80, c).astype(np.uint8)


def overflow_off_by_one(x):
    """(d) treats the overflow threshold itself (464, a tie that rounds down to 448) as overflow."""
    x = np.asarray(x, np.float32)
    return np.where(np.abs(x) >= 464, good_e4m3(x) | 0x7F, good_e4m3(x)).astype(np.uint8)


def wrong_zero_sign(x):
    """(e) always gives +0, losing the sign of a negative zero result."""
    c = good_e4m3(x)
    return np.where((c & 0x7F) == 0, 0, c).astype(np.uint8)


# (bug, input bits, family, expected code, actual code)
PLANTED = [
    (ties_away, 0x3A800000, "half_min_subnormal", 0x00, 0x01),  # 2**-10: the tie between 0 and 2**-9
    (overflow_to_max, 0x43E80001, "overflow_threshold+ulp", 0x7F, 0x7E),  # just past 464: NaN, not 448
    (flush_subnormals, 0x3A800001, "half_min_subnormal+ulp", 0x01, 0x00),  # just past 2**-10
    (overflow_off_by_one, 0x43E80000, "overflow_threshold", 0x7E, 0x7F),  # 464 itself rounds to 448
    (wrong_zero_sign, 0x80000000, "zero", 0x80, 0x00),  # -0.0
]


def test_ml_dtypes_cast_passes():
    report = verify(good_e4m3, nf.E4M3)
    assert isinstance(report, VerifyReport)
    assert report.structured > 1000 and report.random >= 6000 and report.exhaustive == 0
    assert report.families["overflow_threshold"] > 0 and report.families["tie"] > 0
    text = str(report)
    assert "good_e4m3" in text and "e4m3" in text and "no mismatch" in text


@pytest.mark.parametrize("edge_cases", [True, False], ids=["structured", "random_only"])
@pytest.mark.parametrize(("bug", "bits", "family", "want", "got"), PLANTED, ids=[p[0].__name__ for p in PLANTED])
def test_planted_bug_is_caught_with_the_simplest_input(bug, bits, family, want, got, edge_cases):
    with pytest.raises(Mismatch) as info:
        verify(bug, nf.E4M3, edge_cases=edge_cases)
    err = info.value
    assert isinstance(err, AssertionError)
    assert int(np.asarray(err.value).view(np.uint32)) == bits
    assert (err.family, err.expected, err.actual) == (family, want, got)
    message = str(err)
    assert f"0x{bits:08x}" in message
    assert f"family    {family}:" in message
    assert f"expected  0x{want:02x}" in message and f"actual    0x{got:02x}" in message
    assert bug.__name__ in message
    assert ("structured" if edge_cases else "random draws") in err.stage


def test_mismatch_message_shows_values():
    with pytest.raises(Mismatch) as info:
        verify(overflow_to_max, nf.E4M3)
    message = str(info.value)
    assert "464.0000305175781" in message  # the input in decimal
    assert "0x1.d000020000000p+8" in message  # and exactly
    assert "expected  0x7f  nan" in message and "actual    0x7e  448.0" in message


def test_overflow_to_max_passes_with_saturate():
    # The same clamp is right when saturation is asked for (but inf must stay max too).
    assert verify(overflow_to_max, nf.E4M3, saturate=True)


def test_e5m2_overflow_to_max_is_caught():
    def clamp(x):
        x = np.asarray(x, np.float32)
        return good_e5m2(np.where(np.isnan(x), x, np.clip(x, -57344, 57344)))

    with pytest.raises(Mismatch, match="expected  0x7c  inf"):
        verify(clamp, nf.E5M2)


def test_any_nan_code_counts_as_nan():
    # ml_dtypes keeps the input's sign on NaN (0xff); the oracle gives 0x7f: both NaN.
    def all_nan_negative(x):
        c = good_e4m3(x)
        return np.where((c & 0x7F) == 0x7F, 0xFF, c).astype(np.uint8)

    assert verify(all_nan_negative, nf.E4M3, max_examples=5)


def test_exhaustive_fp16_into_e5m2():
    report = verify(good_e5m2, nf.E5M2, source="fp16", exhaustive=True)
    assert report.exhaustive == 65536 and report.random == 0


def test_exhaustive_finds_a_bug_the_structured_cases_miss():
    # Wrong for one input only, far from any structured case.
    bad_bits = 0x4A3B  # a float16 between two e5m2 values, not near a tie

    def one_wrong(x):
        c = good_e5m2(x)
        return np.where(np.asarray(x).view(np.uint16) == bad_bits, c ^ 1, c).astype(np.uint8)

    with pytest.raises(Mismatch) as info:
        verify(one_wrong, nf.E5M2, source="fp16", exhaustive=True)
    assert int(np.asarray(info.value.value).view(np.uint16)) == bad_bits
    assert info.value.family == "normal_range" and "exhaustive" in info.value.stage


def test_jax_codec_as_candidate():
    def codec(x):
        return nf.encode(x, nf.E2M1, "toward_zero")

    assert verify(codec, nf.E2M1, "toward_zero", max_examples=10)


# ---- bad input ------------------------------------------------------------------------------


def test_candidate_returning_floats_is_a_type_error():
    with pytest.raises(TypeError, match=r"candidate .*lambda.* must return unsigned integer codes.*float32"):
        verify(lambda x: np.asarray(x), nf.E4M3)


def test_candidate_returning_signed_ints_is_a_type_error():
    with pytest.raises(TypeError, match="must return unsigned integer codes"):
        verify(lambda x: good_e4m3(x).astype(np.int32), nf.E4M3)


def test_candidate_returning_the_wrong_shape_is_a_value_error():
    with pytest.raises(ValueError, match=r"must return codes of the input's shape"):
        verify(lambda x: good_e4m3(x)[:-1], nf.E4M3)


def test_candidate_returning_out_of_range_codes_is_a_value_error():
    with pytest.raises(ValueError, match=r"returned code 0x1.., out of range for e2m1"):
        verify(lambda x: (good_e4m3(x).astype(np.uint16) | 0x100), nf.E2M1)


def test_exhaustive_float32_is_too_wide():
    with pytest.raises(ValueError, match="format too wide for exhaustive"):
        verify(good_e4m3, nf.E4M3, exhaustive=True)


def test_bad_arguments():
    with pytest.raises(TypeError, match="candidate must be a function"):
        verify(42, nf.E4M3)
    with pytest.raises(ValueError, match="unknown format"):
        verify(good_e4m3, "e4m9")
    with pytest.raises(ValueError, match="rounding must be one of"):
        verify(good_e4m3, nf.E4M3, "stochastic")
    with pytest.raises(ValueError, match="max_examples must be a positive int"):
        verify(good_e4m3, nf.E4M3, max_examples=0)
    with pytest.raises(ValueError, match="source must be one of"):
        verify(good_e4m3, nf.E4M3, source="fp8")


def test_verify_page_example_prints_what_the_page_shows():
    # Run as the page says, a script of its own. The totals line is fixed; the random
    # stage's family counts depend on hypothesis, which mixes the literal constants of
    # the loaded modules into its draws (the page says so), so only the families are compared.
    page = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "verify.md").read_text()
    section = page[page.index("## `verify`"):]
    code, shown = section.split("```python\n")[1].split("```\n```\n")
    shown = shown.split("```")[0].strip().splitlines()
    # On a GPU the test process already holds JAX's preallocated 75 % of the device
    # memory: the child allocates as it goes instead of asking for another 75 %.
    env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=pathlib.Path(__file__).resolve().parent.parent, timeout=600,
                         check=True, env=env)
    printed = run.stdout.strip().splitlines()
    assert printed[0] == shown[0]

    def families(line):
        return dict(re.findall(r"([\w+-]+) (\d+)", line.partition("families:")[2]))

    got, page_counts = families(printed[1]), families(shown[1])
    assert set(page_counts) <= set(got) and sum(map(int, got.values())) == 7430  # every input has one family
