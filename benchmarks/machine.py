"""One line describing the machine a benchmark ran on, for the table's header.

On a CPU: the CPU model, its count and the load average. On a GPU: the GPU's model,
its driver and memory (from ``nvidia-smi`` where it exists), the CUDA version XLA's
backend reports, and the host CPU. Always the backend and the versions of jax, jaxlib,
the jax CUDA plugin if installed, and any ``packages`` named.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib.metadata import PackageNotFoundError, distributions, version

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


def _nvidia_smi() -> str | None:
    """``name, driver, memory`` of the first GPU from nvidia-smi, or None."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.strip().splitlines()[0] if out.strip() else ""
    parts = [p.strip() for p in first.split(",")]
    return f"{parts[0]}, driver {parts[1]}, {parts[2]}" if len(parts) == 3 else None


def _platform_version() -> str:
    """What XLA's backend says of itself (on CUDA: the CUDA and cuDNN versions)."""
    try:
        from jax.extend.backend import get_backend

        return " ".join(get_backend().platform_version.split())
    except Exception:  # noqa: BLE001 - a description, not a requirement
        return "unknown"


def _versions(packages) -> list[str]:
    names = ["jax", "jaxlib"]
    # jax's CUDA plugins are named jax-cuda12-plugin, jax-cuda13-pjrt, ...
    names += sorted({d.metadata["Name"] for d in distributions() if (d.metadata["Name"] or "").startswith("jax-cuda")})
    out = []
    for name in [*names, *packages]:
        try:
            out.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            pass
    return out


def describe(*packages: str) -> str:
    """The device (GPU model, driver, CUDA; or CPU model), backend, load and versions: one line."""
    backend = jax.default_backend()
    dev = jax.devices()[0]
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    host = f"{os.cpu_count()} CPUs, {cpu_model()}{load}"
    if backend == "cpu":
        device = f"CPU: {host}"
    else:
        smi = _nvidia_smi()
        gpu = smi if smi else dev.device_kind
        device = f"GPU: {gpu} ({len(jax.devices())} device(s)); {_platform_version()}; host {host}"
    return f"{device}; backend {backend}; {', '.join(_versions(packages))}"
