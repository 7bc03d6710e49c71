"""Tests of benchmarks/timing.py: the one timing loop, table writer and report of the benchmarks."""

import json
import pathlib
import sys

import jax.numpy as jnp
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
import timing


def test_round_robin_warms_up_checks_the_last_warm_up_and_interleaves():
    calls = []

    def make(name):
        def fn(v):
            calls.append(name)
            return jnp.asarray(v + len(calls))

        return fn

    seen = {}
    cases = {
        "a": timing.Case(make("a"), (1,), check=lambda out: seen.setdefault("a", int(out))),
        "b": timing.Case(make("b"), (10,)),
    }
    res = timing.round_robin(cases, reps=3, warmup=2)
    # Two warm-ups each, then one run of each per repetition: a b a b a b.
    assert calls == ["a", "a", "b", "b"] + ["a", "b"] * 3
    assert seen["a"] == 1 + 2  # the second (last) warm-up's output
    assert res["a"].check == 3 and res["b"].check is None
    assert all(len(t.times) == 3 and t.ok for t in res.values())
    assert res["a"].min <= res["a"].median


def test_round_robin_reports_a_failing_case_and_uses_a_case_timer():
    def boom():
        raise RuntimeError("no kernel for this\nsecond line")

    fixed = timing.Case(lambda: None, timer=lambda fn, args: 0.25)
    res = timing.round_robin({"boom": timing.Case(boom), "fixed": fixed}, reps=4)
    assert res["boom"].error == "RuntimeError: no kernel for this" and res["boom"].times == []
    assert res["fixed"].times == [0.25] * 4
    assert timing.ratio(res["boom"], res["fixed"]) == "fails" and timing.ms(None) == "n/a"
    assert timing.ratio(res["fixed"], res["fixed"], "min") == "1.00" and timing.ms(res["fixed"]) == "250.00"


def test_markdown_table_pads_and_aligns():
    text = timing.markdown_table(("op", "ms"), [("copy", "1.5"), ("quantize", "12.25")])
    assert text.splitlines() == [
        "| op       |    ms |",
        "| -------- | ----: |",
        "| copy     |   1.5 |",
        "| quantize | 12.25 |",
    ]


def test_report_prints_and_writes_markdown_and_json(tmp_path, capsys):
    report = timing.Report("demo", "CPU: test machine", "input: 8 values")
    report.table("Medians:", ("op", "ms"), [("copy", "1.0")])
    report.note("a note")
    report.times("t", {("fmt", "numfmt"): timing.Timing(times=[0.5]), "bad": timing.Timing(error="E: x")})
    report.emit(str(tmp_path))
    printed = capsys.readouterr().out
    assert printed.startswith("# CPU: test machine\n\n# input: 8 values\n\nMedians:\n\n| op ")
    assert (tmp_path / "demo.md").read_text() == printed
    data = json.loads((tmp_path / "demo.json").read_text())
    assert data["tables"] == [{"title": "Medians:", "head": ["op", "ms"], "rows": [["copy", "1.0"]]}]
    assert data["times"]["t"] == {"fmt / numfmt": [0.5], "bad": "E: x"}
    assert data["notes"] == ["a note"]


@pytest.mark.parametrize(("short", "reps", "want"), [(False, None, 15), (True, None, 5), (True, 3, 3)])
def test_reps_follow_short_and_reps(short, reps, want):
    import argparse

    parser = argparse.ArgumentParser()
    timing.add_common_args(parser, reps=15)
    argv = (["--short"] if short else []) + ([] if reps is None else ["--reps", str(reps)])
    assert timing.reps_of(parser.parse_args(argv)) == want


def test_profile_kernels_times_the_kernels_of_the_compiled_module():
    """benchmarks/profile_kernels.py: the kernels it reports are the compiled module's
    (its conditional left out, the kernels inside it counted), each timed once per call."""
    import jax
    import profile_kernels as pk
    from jax import lax

    fn = jax.jit(lambda a: lax.cond(a[0] >= 0, lambda v: jnp.exp(v) * 2.0, lambda v: v - 1.0, a) + jnp.sum(a))
    x = jnp.arange(1 << 16, dtype=jnp.float32) / (1 << 16)
    compiled = fn.lower(x).compile()
    names = pk.kernel_names(compiled)
    ops = dict(pk._INSTRUCTION.findall(compiled.as_text()))
    assert "conditional" in ops.values()  # the module has one, and it is not a kernel
    assert all(ops[n] not in pk._WRAPPERS for n in names) and len(names) >= 2
    wall, kernels = pk.profile_case(fn, (x,), calls=3)
    assert wall > 0
    assert kernels and set(kernels) <= names
    assert all(count == 1 for _, count in kernels.values())  # one run of each kernel per call
    assert all(ns > 0 for ns, _ in kernels.values())
