"""Sweeps: how many torch threads a job of ``pathwise train -m`` may use.

A sweep runs on the engines users already have, chosen by one override: Hydra's basic launcher
(one job after another), ``hydra/launcher=joblib`` (parallel processes on this machine),
``hydra/launcher=slurm`` or ``submitit_local`` (submitit), ``hydra/launcher=ray``, or a wandb
sweep whose agents run ``pathwise train`` (configs/sweeps/). No scheduler lives here.

What does live here is the one thing a launcher cannot know: that torch, left alone, starts as
many intra-op threads as the machine has cores in *every* job. Two parallel jobs on two cores
would each run two threads and spend their time waiting for each other. So each job gets a
thread budget: its launcher's share of the cores it runs on, such that jobs × threads never
exceeds the cores. ``torch_threads=0`` (in a single run: the idle cores) takes the whole budget;
a larger explicit value is cut down to it.
"""

from __future__ import annotations

from collections.abc import Mapping

from pathwise.training.runtime import available_cores

BASIC = "BasicLauncher"
JOBLIB = "JoblibLauncher"
SUBMITIT_LOCAL = "LocalLauncher"
SUBMITIT_SLURM = "SlurmLauncher"
RAY = "RayLauncher"


def launcher_kind(launcher: Mapping) -> str:
    """The class name of ``hydra.launcher._target_`` (``BasicLauncher``, ``JoblibLauncher``…)."""
    return str(launcher.get("_target_") or BASIC).rpartition(".")[2]


def joblib_workers(n_jobs: int | None, cores: int) -> int:
    """Processes joblib runs at once for ``n_jobs`` (its convention: -1 is every core, -2 all
    but one, None is 1)."""
    if n_jobs is None or n_jobs == 0:
        return 1
    if n_jobs < 0:
        return max(1, cores + 1 + n_jobs)
    return n_jobs


def _ray_cpus(launcher: Mapping) -> int | None:
    ray = launcher.get("ray") or {}
    remote = ray.get("remote") or {}
    return remote.get("num_cpus")


def thread_budget(launcher: Mapping, cores: int | None = None) -> int:
    """Torch threads one job of a sweep may use on ``cores`` (default: this process's), given
    the resolved ``hydra.launcher`` config.

    * basic launcher: the jobs run one at a time in this process, so each has every core;
    * joblib: ``n_jobs`` processes share the machine: cores // n_jobs each;
    * submitit (Slurm or local) and Ray: each job is given ``cpus_per_task`` /
      ``ray.remote.num_cpus`` CPUs (1 when unset, which is what Slurm and Ray reserve);
    * any other launcher: 1, which never oversubscribes.
    """
    cores = max(1, cores if cores is not None else available_cores())
    kind = launcher_kind(launcher)
    if kind == BASIC:
        return cores
    if kind == JOBLIB:
        return max(1, cores // joblib_workers(launcher.get("n_jobs"), cores))
    if kind in (SUBMITIT_LOCAL, SUBMITIT_SLURM):
        return max(1, min(cores, launcher.get("cpus_per_task") or 1))
    if kind == RAY:
        return max(1, min(cores, int(_ray_cpus(launcher) or 1)))
    return 1


def job_threads(torch_threads: int, launcher: Mapping, cores: int | None = None) -> int:
    """The ``torch_threads`` a sweep job runs with: the budget for 0, else the smaller of the
    two."""
    budget = thread_budget(launcher, cores)
    return budget if torch_threads <= 0 else min(torch_threads, budget)


def runs_in_parallel(launcher: Mapping) -> bool:
    """Whether jobs may share a terminal at once (then no job draws a progress bar)."""
    return launcher_kind(launcher) != BASIC
