"""numfmt under ``jit`` with arrays sharded over several devices (4 simulated CPU devices).

Quantization, calibration, fake quantization and its gradient, and every product whose
accumulation numfmt models must give the same bits sharded as unsharded, the
contraction axis included (tests/sharded_cases.py lists the cases). The fast path's
native float32 product is the one exception, and only for a sharded contraction axis:
XLA sums each shard's part and then the parts, another order of the same float32
additions (docs/semantics.md, "Sharded arrays"); its difference is checked to be of that size.
The default run checks a core set on a 2 x 2 mesh; ``-m slow`` every case on three layouts.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

_SCRIPT = pathlib.Path(__file__).resolve().parent / "sharded_cases.py"


def _run(group: str) -> dict:
    # The repository root first on the child's path: numfmt imports there as it does in
    # this process, installed or not (the child's own path starts at tests/).
    path = os.pathsep.join(p for p in (str(_SCRIPT.parent.parent), os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu",
               PYTHONPATH=path)
    out = subprocess.run([sys.executable, str(_SCRIPT), group], env=env, capture_output=True, text=True,
                         timeout=900, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _check(result: dict, expected_cases: int):
    differ = result["differ"]
    assert len(differ) == expected_cases, sorted(differ)
    assert {k: v for k, v in differ.items() if v != 0} == {}
    # float32 sums in another order: each within K * 2**-24 of the magnitudes' sum (K = 256).
    # Some outputs must differ: else the arrays were not sharded as asked, and the
    # equalities above would prove nothing.
    for name, (rel, count) in result["native_k_sharded"].items():
        assert 0 < rel <= 256 * 2.0**-24 and count > 0, (name, rel, count)


def test_core_cases_sharded_equal_unsharded():
    _check(_run("core"), 6 + 4 + 2 + 1)


@pytest.mark.slow
def test_every_case_on_three_layouts():
    _check(_run("all"), 16 * 3 + 10 * 2 + 2 + 3)
