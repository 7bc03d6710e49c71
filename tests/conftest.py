"""Shared pytest configuration: the hypothesis profiles, and the ``on_gpu`` fixture.

``default`` keeps the whole suite quick on a laptop; ``ci`` draws more examples.
Choose one with ``HYPOTHESIS_PROFILE=ci python -m pytest`` (or pytest's
``--hypothesis-profile ci``). Neither has a deadline: the first call of a jitted
function compiles, which would trip one.
"""

import os

import jax
import pytest
from hypothesis import HealthCheck, settings

from numfmt import matmul

settings.register_profile(
    "default",
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def on_gpu(monkeypatch):
    """Trace the matmul as for a GPU (``numfmt.matmul._on_gpu`` forced), on this backend.

    jax caches the traces of inner jitted functions: cleared before and after, so that
    neither this trace nor a later CPU test reuses a trace of the other route.
    """
    monkeypatch.setattr(matmul, "_on_gpu", lambda: True)
    jax.clear_caches()
    yield
    jax.clear_caches()
