"""Tests of ``numfmt verify module:function FMT`` (numfmt.verify_cli)."""

import textwrap
import uuid

import pytest

from numfmt import cli

CONVERTERS = textwrap.dedent(
    """
    import ml_dtypes
    import numpy as np

    def to_e4m3(x):
        return np.asarray(x).astype(ml_dtypes.float8_e4m3fn).view(np.uint8)

    def to_e5m2(x):
        return np.asarray(x).astype(ml_dtypes.float8_e5m2).view(np.uint8)

    def clamped(x):  # overflow to max instead of NaN
        x = np.asarray(x, np.float32)
        return to_e4m3(np.where(np.isnan(x), x, np.clip(x, -448, 448)))

    def floats(x):
        return np.asarray(x, np.float32)

    NOT_A_FUNCTION = 3
    """
)


@pytest.fixture
def module(tmp_path, monkeypatch):
    """A module of converters, importable from the current directory under a fresh name."""
    name = f"converters_{uuid.uuid4().hex[:12]}"  # fresh: no cached import between tests
    (tmp_path / f"{name}.py").write_text(CONVERTERS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_verify_is_registered():
    cli.build_parser()
    assert "verify" in cli.commands()


def test_matching_function_exits_0(module, capsys):
    assert cli.main(["verify", f"{module}:to_e4m3", "e4m3", "--max-examples", "5"]) == 0
    out = capsys.readouterr().out
    assert f"{module}:to_e4m3 matches" in out and "no mismatch" in out


def test_exhaustive_fp16(module, capsys):
    assert cli.main(["verify", f"{module}:to_e5m2", "e5m2", "--source", "fp16", "--exhaustive"]) == 0
    assert "65536 exhaustive" in capsys.readouterr().out


def test_mismatch_exits_1_with_the_message(module, capsys):
    assert cli.main(["verify", f"{module}:clamped", "e4m3"]) == 1
    out = capsys.readouterr().out
    assert "0x43e80001" in out and "overflow_threshold+ulp" in out
    assert "expected  0x7f  nan" in out and "actual    0x7e  448.0" in out


def test_saturate_flag(module, capsys):
    assert cli.main(["verify", f"{module}:clamped", "e4m3", "--saturate", "--max-examples", "5"]) == 0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
        ("{module}:missing", "has no attribute 'missing'"),
        ("{module}:NOT_A_FUNCTION", "is not a function"),
        ("{module}", "must be written module:function"),
    ],
)
def test_unimportable_candidate_exits_2(module, capsys, spec, message):
    assert cli.main(["verify", spec.format(module=module), "e4m3"]) == 2
    assert message in capsys.readouterr().err


def test_usage_errors_exit_2(module, capsys):
    assert cli.main(["verify", f"{module}:to_e4m3", "e4m9"]) == 2
    assert "unknown format 'e4m9'" in capsys.readouterr().err
    assert cli.main(["verify", f"{module}:to_e4m3", "e4m3", "--rounding", "sideways"]) == 2
    assert "unknown rounding" in capsys.readouterr().err
    assert cli.main(["verify", f"{module}:to_e4m3", "e4m3", "--exhaustive"]) == 2
    assert "format too wide for exhaustive" in capsys.readouterr().err
    assert cli.main(["verify", f"{module}:floats", "e4m3"]) == 2
    assert "must return unsigned integer codes" in capsys.readouterr().err
