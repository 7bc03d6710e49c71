"""Tests of numfmt.checks: boundary argument checks name the argument and refuse look-alikes."""

import jax
import numpy as np
import pytest

from numfmt.checks import check_bool, check_int


@pytest.mark.parametrize("value", [True, False, np.bool_(True)])
def test_check_bool_accepts_bools(value):
    assert check_bool(value, "saturate") is bool(value)


@pytest.mark.parametrize("value", ["no", "", 1, 0, None, 1.0])
def test_check_bool_refuses_look_alikes(value):
    with pytest.raises(TypeError, match="saturate must be True or False"):
        check_bool(value, "saturate")


def test_check_bool_under_jit_says_how_to_make_it_static():
    def f(flag):
        check_bool(flag, "saturate")
        return flag

    with pytest.raises(TypeError, match="static"):
        jax.jit(f)(True)


def test_check_int():
    assert check_int(np.int64(3), "bits", 1, 8) == 3
    with pytest.raises(TypeError, match="bits must be an int"):
        check_int(True, "bits")
    with pytest.raises(TypeError, match="bits must be an int"):
        check_int(3.0, "bits")
    with pytest.raises(ValueError, match=r"bits must be an int in \[1, 8\], got 9"):
        check_int(9, "bits", 1, 8)
    with pytest.raises(ValueError, match="block_size must be an int >= 1, got 0"):
        check_int(0, "block_size", 1)
