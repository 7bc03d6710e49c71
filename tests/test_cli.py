"""Tests of numfmt.cli: run in-process through ``main([...])``, and once as ``python -m numfmt``."""

import math
import os
import pathlib
import subprocess
import sys

import pytest

import numfmt as nf
from numfmt import cli

REPO = pathlib.Path(__file__).resolve().parents[1]


def run(capsys, *argv):
    """Run the CLI in-process; return (exit status, stdout, stderr)."""
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def rows(out):
    """The data rows of a table printed by the CLI (below its ``----`` rule), split on spaces."""
    lines = out.strip().splitlines()
    start = next(i for i, line in enumerate(lines) if set(line.replace(" ", "")) == {"-"})
    return [line.split() for line in lines[start + 1 :]]


def card(out):
    """``numfmt info`` output as {field: text}."""
    fields = {}
    for line in out.strip().splitlines():
        key, _, value = line.partition("  ")
        fields[key.strip()] = value.strip()
    return fields


# ---- list ---------------------------------------------------------------------------------


def test_list_names_every_registered_format(capsys):
    status, out, err = run(capsys, "list")
    assert status == 0 and err == ""
    listed = {row[0]: row for row in rows(out)}
    assert list(listed) == nf.names()
    assert listed["e4m3"][1:5] == ["float", "8", "s1e4m3", "7"]
    assert listed["e4m3"][5] == "448.0"
    assert listed["e4m3"][-2:] == ["no", "yes"]  # no inf, has NaN
    assert listed["e5m2"][-2:] == ["yes", "yes"]
    assert listed["e2m1"][5] == "6.0" and listed["e2m1"][-2:] == ["no", "no"]
    assert listed["int8"][1:4] == ["int", "8", "int8"] and listed["int8"][5] == "127"
    assert listed["e8m0"][3] == "s0e8m0"


def test_list_hex(capsys):
    status, out, _ = run(capsys, "list", "--hex")
    assert status == 0
    fp32 = next(row for row in rows(out) if row[0] == "fp32")
    assert "0x1.fffffep+127" in fp32 and "0x1p-149" in fp32


def test_list_as_a_subprocess():
    # On a GPU the test process already holds JAX's preallocated 75 % of the device
    # memory: the child allocates as it goes instead of asking for another 75 %.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               XLA_PYTHON_CLIENT_PREALLOCATE="false")
    done = subprocess.run(
        [sys.executable, "-m", "numfmt", "list"], capture_output=True, text=True, cwd=REPO, env=env, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    first_column = [line.split()[0] for line in done.stdout.splitlines()[2:]]
    assert first_column == nf.names()


# ---- info ---------------------------------------------------------------------------------


def test_info_e4m3(capsys):
    status, out, err = run(capsys, "info", "e4m3")
    assert status == 0 and err == ""
    fields = card(out)
    assert fields["name"] == "e4m3"
    assert fields["bias"] == "7"
    assert fields["max"].split()[0] == "448.0"
    assert fields["min normal"].startswith("0.015625")
    assert fields["min subnormal"].startswith("0.001953125")
    assert fields["eps"].startswith("0.125")
    assert fields["emax, emin"] == "8, -6"
    assert fields["inf"] == "none"
    assert fields["NaN"].startswith("0x7f, 0xff")
    assert fields["-0"] == "0x80"
    assert fields["ml_dtypes"] == "float8_e4m3fn"
    assert fields["dynamic range"].startswith(f"{math.log2(448 / 2**-9):.2f} binades")
    assert "float8_e4m3fn" in fields["aliases"]


def test_info_by_alias_and_ieee_specials(capsys):
    status, out, _ = run(capsys, "info", "float32")
    assert status == 0
    fields = card(out)
    assert fields["name"] == "fp32"
    assert fields["inf"] == "+inf 0x7f800000, -inf 0xff800000"
    assert fields["NaN"].startswith("0x7f800001..0x7fffffff, 0xff800001..0xffffffff")
    assert "0x7fc00000" in fields["NaN"]
    assert fields["dynamic range"].startswith("277.00")


def test_info_int_and_codebook(capsys):
    status, out, _ = run(capsys, "info", "int8")
    assert status == 0
    fields = card(out)
    assert fields["range"] == "[-128, 127]" and fields["ml_dtypes"] == "int8"
    status, out, _ = run(capsys, "info", "nf4")
    assert status == 0
    assert card(out)["values"].split(", ")[0] == "-1.0"


# ---- values -------------------------------------------------------------------------------


def test_values_e2m1(capsys):
    status, out, err = run(capsys, "values", "e2m1")
    assert status == 0 and err == ""
    table = rows(out)
    assert [row[0] for row in table] == [f"0x{c:x}" for c in range(16)]
    assert [row[1] for row in table] == [f"{c:04b}" for c in range(16)]
    values = [float(row[2]) for row in table]
    positive = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
    assert values == positive + [-v for v in positive]
    assert math.copysign(1.0, values[8]) == -1.0  # code 0x8 is -0


@pytest.mark.parametrize("name", [n for n in nf.names() if nf.get(n).bits <= cli.MAX_VALUES_BITS])
def test_values_lists_every_code(capsys, name):
    fmt = nf.get(name)
    status, out, _ = run(capsys, "values", name)
    assert status == 0
    table = rows(out)
    assert [int(row[0], 16) for row in table] == list(range(2**fmt.bits))
    finite = {float(row[2]) for row in table if math.isfinite(float(row[2]))}
    assert finite == set(fmt.values().tolist())


def test_values_too_wide(capsys):
    status, out, err = run(capsys, "values", "fp32")
    assert status == 2 and out == ""
    assert "at most 8 bits" in err and "Traceback" not in err


# ---- encode / decode ----------------------------------------------------------------------


def test_encode_e4m3_overflow_threshold(capsys):
    status, out, err = run(capsys, "encode", "e4m3", "464", "465")
    assert status == 0 and err == ""
    (x1, code1, bits1, value1), (x2, code2, bits2, value2) = rows(out)
    assert (x1, code1, bits1, value1) == ("464", "0x7e", "01111110", "448.0")  # the tie rounds to even 448
    assert (x2, code2, bits2, value2) == ("465", "0x7f", "01111111", "nan")  # past it: NaN (E4M3 has no inf)


def test_encode_saturate_rounding_and_negative_numbers(capsys):
    status, out, _ = run(capsys, "encode", "e4m3", "1000", "-inf", "-1e5", "--saturate")
    assert status == 0
    assert [row[1] for row in rows(out)] == ["0x7e", "0xfe", "0xfe"]
    status, out, _ = run(capsys, "encode", "e5m2", "1.1", "-1.1", "--rounding", "toward_zero")
    assert status == 0
    assert [row[3] for row in rows(out)] == ["1.0", "-1.0"]
    status, out, _ = run(capsys, "encode", "int8", "2.5", "-300", "-r", "rne")
    assert status == 0
    assert [row[3] for row in rows(out)] == ["2", "-128"]


def test_encode_is_one_rounding_from_float64(capsys):
    # 1 + 2**-8 + 2**-30 is above the bf16 tie at 1 + 2**-8; through float32 it would be the tie itself
    # and round to even (1.0). Rounded once, straight from float64, it goes up.
    status, out, _ = run(capsys, "encode", "bf16", (1 + 2**-8 + 2**-30).hex())
    assert status == 0
    assert rows(out)[0][1:] == ["0x3f81", "0011111110000001", "1.0078125"]


def test_encode_stochastic_is_a_function_of_the_seed(capsys):
    argv = ["encode", "bf16", *["1.001"] * 16, "--rounding", "stochastic", "--seed", "7"]
    status, first, _ = run(capsys, *argv)
    assert status == 0
    assert run(capsys, *argv)[1] == first
    assert {row[3] for row in rows(first)} <= {"1.0", "1.0078125"}


def test_decode_e5m2(capsys):
    status, out, err = run(capsys, "decode", "e5m2", "0x7c", "124", "0b11111100", "0x7b")
    assert status == 0 and err == ""
    assert [row[2] for row in rows(out)] == ["inf", "inf", "-inf", "57344.0"]
    assert [row[0] for row in rows(out)] == ["0x7c", "0x7c", "0xfc", "0x7b"]


def test_decode_is_exact(capsys):
    status, out, _ = run(capsys, "decode", "int32", "0x7fffffff", "0x80000001")
    assert status == 0
    assert [row[2] for row in rows(out)] == ["2147483647", "-2147483647"]
    status, out, _ = run(capsys, "decode", "fp32", "1", "--hex")
    assert rows(out)[0][2] == "0x1p-149"


def test_decode_code_too_wide(capsys):
    status, out, err = run(capsys, "decode", "e4m3", "0x100")
    assert status == 2 and out == ""
    assert "8 bits" in err and "Traceback" not in err
    status, _, err = run(capsys, "decode", "e4m3", "seven")
    assert status == 2 and "not an integer" in err


# ---- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["info", "e4m4"], ["values", "e4m4"], ["encode", "e4m4", "1"], ["decode", "e4m4", "1"]])
def test_unknown_format(capsys, argv):
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == ""
    assert "did you mean" in err.lower() and "e4m3" in err
    assert "Traceback" not in err


def test_unknown_rounding(capsys):
    status, out, err = run(capsys, "encode", "e4m3", "1", "--rounding", "sideways")
    assert status == 2 and out == ""
    assert "sideways" in err
    for mode in nf.ROUNDING_MODES:
        assert mode in err


def test_usage_errors_exit_2(capsys):
    assert run(capsys, "info")[0] == 2  # missing argument: argparse's usage error
    assert run(capsys, "frobnicate")[0] == 2
    assert run(capsys)[0] == 2  # no subcommand: help on stderr
    assert run(capsys, "encode", "e4m3", "one")[0] == 2


def test_version(capsys):
    status, out, _ = run(capsys, "--version")
    assert status == 0 and nf.__version__ in out


# ---- subcommand registration --------------------------------------------------------------


def test_a_module_can_add_a_subcommand(capsys, monkeypatch):
    monkeypatch.setattr(cli, "_COMMANDS", dict(cli._COMMANDS))

    def arguments(parser):
        parser.add_argument("format")

    @cli.command("bits", "print a format's width", arguments)
    def bits(args):
        print(cli.get_format(args.format).bits)

    assert "bits" in cli.commands()
    status, out, _ = run(capsys, "bits", "e5m2")
    assert (status, out) == (0, "8\n")
    status, _, err = run(capsys, "bits", "e4m4")
    assert status == 2 and "did you mean" in err.lower()
