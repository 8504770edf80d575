"""The process a run trains in: device, seeds, threads, and the C heap."""

from __future__ import annotations

import ctypes
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from pathwise.errors import ConfigError


def resolve_device(name: str, option: str = "device=") -> torch.device:
    """``auto`` is CUDA when present; a CUDA device without CUDA is a one-line error that
    names the ``option`` to change (``device=`` in a config, ``--device `` on a command)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"{option}{name} requested but CUDA is not available; "
                          f"use {option}cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"{option}{name}: not a device; use cpu, cuda, cuda:N or auto") \
            from None


def available_cores() -> int:
    """CPUs this process may run on: its affinity mask where the OS has one (a Slurm job's
    allocation, ``taskset``), else every core of the machine."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def auto_threads(window: float = 0.2) -> int:
    """Torch threads for a run that was given none (``torch_threads=0``): the cores this
    process may use that are idle right now, at least one.

    The networks here are small MLPs: on an idle machine a run gains from the cores it has
    (as Stable-Baselines3, which keeps torch's default, does), but threads that have to share
    a core with another job slow every update several times over (README, Speed). "Right now"
    is the CPU time the machine spent idle over ``window`` seconds (``/proc/stat``); the load
    average, where there is no /proc, lags by a minute. A sweep divides the cores between its
    jobs instead (``sweeps.job_threads``).
    """
    cores = available_cores()
    busy = _busy_cpus(window)
    idle = (os.cpu_count() or cores) - busy
    return max(1, min(cores, int(idle + 0.5)))


def _busy_cpus(window: float) -> float:
    """How many CPUs' worth of time the machine is busy, measured over ``window`` seconds."""
    def snapshot() -> tuple[int, int] | None:
        try:
            fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return None
        return fields[3] + fields[4], sum(fields[:8])  # (idle + iowait, total) in jiffies

    first = snapshot()
    if first is None:
        try:
            return os.getloadavg()[0]
        except (OSError, AttributeError):  # Windows: assume an idle machine
            return 0.0
    time.sleep(window)
    second = snapshot()
    idle, total = second[0] - first[0], second[1] - first[1]
    if total <= 0:
        return 0.0
    return (1.0 - idle / total) * (os.cpu_count() or 1)


def environ_for_other_libraries() -> dict[str, str]:
    """This process's environment without the variables ``import pathwise`` set for itself
    (``OMP_WAIT_POLICY``): for a subprocess that runs another library as its users run it."""
    import pathwise

    return {k: v for k, v in os.environ.items() if k not in pathwise.DEFAULTED_ENV}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def keep_freed_memory() -> None:
    """glibc: keep freed heap memory for reuse instead of handing it back to the kernel.

    torch's CPU allocator does not cache: each SAC update allocates and frees a few MB, and
    with glibc's default (dynamic) thresholds the top of the heap is trimmed after most
    updates, so its pages fault in again at the next one (README, Speed). Fixed thresholds
    (mmap from 32 MiB, the replay buffer's arrays; trim beyond 64 MiB free) keep that churn in
    the heap. Process-wide; no-op off Linux/glibc. PyTorch's CPU tuning guide suggests
    jemalloc or tcmalloc for the same reason.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    mallopt(m_mmap_threshold, 32 << 20)
    mallopt(m_trim_threshold, 64 << 20)


def load_average() -> str:
    """The 1, 5 and 15-minute load averages, for a benchmark's report ("?" where unknown)."""
    try:
        return ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except (OSError, AttributeError):
        return "?"


def describe_machine(device: str | torch.device | None = None) -> str:
    """One line for a benchmark table: CPU model and count, the GPU of ``device`` (when it is
    CUDA), OS, Python and torch versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    device = torch.device(device) if device is not None else None
    gpu = torch.cuda.get_device_name(device) if device is not None and device.type == "cuda" \
        else "no GPU used"
    return (f"{cpu}, {os.cpu_count()} logical CPUs, {gpu}; {platform.system()} "
            f"{platform.release()}; Python {platform.python_version()}, torch "
            f"{torch.__version__}")
