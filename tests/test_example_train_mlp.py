"""The training example runs end to end at a CI size (examples/train_mlp.py --quick)."""

import importlib.util
import os

import pytest

# A deeper re-run (CI runs it: .ci/run, marker "slow"); the default run stays under 15 minutes.
pytestmark = pytest.mark.slow

pytest.importorskip("sklearn")

HERE = os.path.dirname(__file__)


def test_train_mlp_quick(tmp_path):
    spec = importlib.util.spec_from_file_location("train_mlp", os.path.join(HERE, "..", "examples", "train_mlp.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out_dir = tmp_path / "not" / "yet"  # --out need not exist (issue 14: it crashed after training)
    out = mod.main(["--quick", "--out", str(out_dir)])
    names = [r[0] for r in out["rows"]]
    assert names[0] == "FP32" and "FP8, BF16 weights, SR updates" in names
    assert any(n.startswith("INT2 linear, QAT") for n in names)
    for label in ("Binary (XNOR-Net alpha)", "Ternary (TWN)", "log4"):
        assert f"{label}, PTQ" in names and f"{label}, QAT" in names
    for _, acc, _ in out["rows"]:
        assert 0.0 <= acc <= 1.0
    assert out["rows"][0][1] > 0.5  # FP32 learns something even in two short epochs
    assert out["png"] is None or (os.path.exists(out["png"]) and os.path.dirname(out["png"]) == str(out_dir))
    assert "| FP32 |" in out["table"]
