"""One line describing the machine a benchmark ran on, for the table's header."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version

import jax


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(*packages: str) -> str:
    """Device, CPU count and model, load average, and the versions of jax and ``packages``."""
    dev = jax.devices()[0]
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    versions = [f"jax {jax.__version__}"]
    for name in packages:
        try:
            versions.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            pass
    return f"{dev.platform} ({dev.device_kind}), {os.cpu_count()} CPUs, {cpu_model()}{load}; {', '.join(versions)}"
