"""Shared pytest configuration: the hypothesis profiles.

``default`` keeps the whole suite quick on a laptop; ``ci`` draws more examples.
Choose one with ``HYPOTHESIS_PROFILE=ci python -m pytest`` (or pytest's
``--hypothesis-profile ci``). Neither has a deadline: the first call of a jitted
function compiles, which would trip one.
"""

import os

from hypothesis import HealthCheck, settings

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
