"""Tests of ``numfmt study``: the quick run makes every file it promises; bad input exits 2."""

import argparse
import contextlib
import io
import json
import time

import pytest

from numfmt import study
from numfmt.analysis.experiments import QUICK_FORMATS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    start = time.perf_counter()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = study.main(["--quick", "--out", str(out), "--quiet"])
    return status, out, time.perf_counter() - start, printed.getvalue()


def test_quick_study_writes_every_file(quick_run):
    status, out, _seconds, _ = quick_run
    assert status == 0
    names = {p.name for p in out.iterdir()}
    assert {"report.md", "results.json", *study.FIGURES} <= names
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    for name in study.FIGURES:
        data = (out / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE, name
        assert len(data) > 1024, name
        img = imread(out / name)
        assert img.ndim == 3 and min(img.shape[:2]) > 200, name


def test_quick_study_json_parses_strictly(quick_run):
    _, out, _, _ = quick_run

    def no_constants(name):
        raise ValueError(f"non-standard JSON constant {name}")

    data = json.loads((out / "results.json").read_text(), parse_constant=no_constants)
    assert data["config"]["quick"] is True
    assert data["config"]["formats"] == list(QUICK_FORMATS)
    assert {r["name"] for r in data["format_table"]} == set(QUICK_FORMATS)
    assert data["quantization"]["rows"] and data["scaled"]["rows"] and data["range"]
    curves = data["matmul"]["curves"]
    assert {c["rounding"] for c in curves} == {"nearest_even", "stochastic"}
    # γ_n is a theorem: no trial may exceed it.
    assert all(max(c["exceed_deterministic"]) == 0 for c in curves)
    assert data["stochastic"]["bias"] and data["stochastic"]["harmonic"]


def test_quick_study_report_names_every_format(quick_run):
    _, out, _, _ = quick_run
    report = (out / "report.md").read_text()
    for name in QUICK_FORMATS:
        assert f"`{name}`" in report, name
    for figure in study.FIGURES:
        assert f"({figure})" in report
    for heading in ("## 1.", "## 2.", "## 3.", "## 4.", "## 5.", "## 6."):
        assert heading in report


def test_quick_study_prints_a_summary(quick_run):
    _, out, _, printed = quick_run
    for name in QUICK_FORMATS:
        assert f"\n{name} " in printed, name
    assert "dot products, K=" in printed and "harmonic sum" in printed
    assert f"wrote report.md, results.json and {len(study.FIGURES)} figures to {out}" in printed


def test_formats_option_accepts_commas_and_spaces():
    assert [f.name for f in study.parse_formats(["e4m3,int8", "bf16"])] == ["e4m3", "int8", "bf16"]


def test_unknown_format_exits_2(tmp_path, capsys):
    status = study.main(["--formats", "e4m3,e9m9", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert status == 2
    assert "e9m9" in err and "numfmt list" in err
    assert not (tmp_path / "x").exists()
    assert study.main(["--formats", ",", "--out", str(tmp_path)]) == 2


def test_unwritable_out_exits_2(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert study.main(["--quick", "--out", str(blocker)]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert study.main(["--quick", "--out", str(blocker / "sub")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_bad_option_exits_2(capsys):
    assert study.main(["--no-such-option"]) == 2


def test_cli_hooks():
    parser = argparse.ArgumentParser(prog="numfmt")
    sub = parser.add_subparsers()
    study.add_parser(sub)
    args = parser.parse_args(["study", "--quick", "--formats", "e4m3", "e2m1", "--out", "d"])
    assert args._run is study.run_args and args.quick and args.formats == ["e4m3", "e2m1"] and args.out == "d"


def test_registered_with_numfmt_cli(tmp_path, capsys):
    from numfmt import cli

    if not hasattr(cli, "commands"):
        pytest.skip("numfmt.cli has no command registry")
    assert "study" in cli.commands()
    assert cli.main(["study", "--formats", "bogus", "--out", str(tmp_path)]) == 2
    assert "bogus" in capsys.readouterr().err
