"""The training configuration: one dataclass tree, the schema of the Hydra configs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pathwise.agents.fields import param
from pathwise.agents.sac import SACConfig


class ConfigError(ValueError):
    """An invalid configuration value; the message is one line."""


@dataclass
class EstimatorConfig:
    """Which gradient estimator trains the actor, and its options."""

    name: str = param("pathwise", "actor gradient estimator: pathwise | score | exact")
    num_samples: int = param(0, "actions drawn per state (0: 1 for pathwise, 4 for score)")
    baseline: str = param("mean", "score: none | mean (leave-one-out over num_samples)")

    def build(self):
        from pathwise.policies.estimators import get_estimator

        if self.name == "pathwise":
            return get_estimator("pathwise", num_samples=self.num_samples or 1)
        if self.name == "score":
            # A single sample has no leave-one-out baseline: get_estimator says so in one line
            # rather than this silently dropping the baseline the config asked for.
            return get_estimator("score", num_samples=self.num_samples or 4,
                                 baseline=self.baseline)
        if self.name == "exact" and self.num_samples:
            raise ValueError("estimator 'exact' sums over every action: "
                             "estimator.num_samples does not apply (leave it at 0)")
        return get_estimator(self.name)


@dataclass
class WandbConfig:
    """Weights & Biases logging."""

    mode: str = param("offline", "offline (no account; `wandb sync` later) | online | disabled")
    project: str = param("pathwise", "wandb project")
    entity: str | None = param(None, "wandb entity (team or user); None: your default")


@dataclass
class DiagnosticsConfig:
    """Actor-gradient statistics of every applicable estimator (agents/diagnostics.py)."""

    every: int = param(0, "env steps between gradient diagnostics, logged as grad/* (0: off)")
    samples: int = param(16, "K: independent gradient estimates per estimator and measurement")
    batch_size: int = param(64, "SAC: states from the replay buffer the objective averages over")
    num_samples: int = param(4, "action draws per state of every sampling estimator (score's "
                                "leave-one-out baseline needs >= 2)")
    reference_samples: int = param(256, "Box SAC: draws per state of the pathwise reference "
                                        "gradient (Discrete: the exact gradient)")
    episodes: int = param(16, "REINFORCE: fresh episodes per measurement, one estimate each")

    def validate(self) -> list[str]:
        """Problems with these values, one line each (empty when valid)."""
        problems = []
        if self.every < 0:
            problems.append(f"diagnostics.every must be >= 0, got {self.every}")
        for name in ("samples", "episodes"):
            if getattr(self, name) < 2:
                problems.append(f"diagnostics.{name} must be >= 2 (a variance needs two "
                                f"estimates), got {getattr(self, name)}")
        for name in ("batch_size", "num_samples", "reference_samples"):
            if getattr(self, name) < 1:
                problems.append(f"diagnostics.{name} must be >= 1, got {getattr(self, name)}")
        return problems


@dataclass
class TrainConfig:
    """One training run."""

    env: str = param("Pendulum-v1", "Gymnasium env id")
    agent: Any = param(SACConfig(), "agent: sac | reinforce, with its hyperparameters")
    estimator: EstimatorConfig = param(EstimatorConfig(), "actor gradient estimator")
    seed: int = param(0, "seed of torch, numpy, Python and the envs")
    total_steps: int = param(20_000, "env steps to train for (summed over vector envs)")
    num_envs: int = param(1, "parallel envs collecting experience")
    device: str = param("auto", "cpu | cuda | cuda:N | auto (CUDA when available)")
    run_dir: str | None = param(None, "where this run goes; None: "
                                      "runs/<env>/<agent>-<estimator>/s<seed>-<timestamp>")
    resume: str | None = param(None, "run dir whose checkpoints/last.pt to continue from")
    eval_every: int = param(5000, "env steps between deterministic evaluations (0: off)")
    eval_episodes: int = param(10, "episodes per evaluation")
    checkpoint_every: int = param(10_000, "env steps between checkpoints (0: at the end only)")
    log_every: int = param(1000, "env steps between logged training losses")
    torch_threads: int = param(0, "torch intra-op threads (0: torch's default); in a sweep (-m), "
                                  "at most the job's share of the cores, which 0 takes whole")
    compile: bool = param(False, "wrap the agent's update (its loss functions, forward and "
                                 "backward) in torch.compile; CPU or CUDA")
    compile_mode: str = param("default", "torch.compile mode: default | reduce-overhead | "
                                         "max-autotune | max-autotune-no-cudagraphs")
    cudagraphs: bool = param(False, "capture the compiled update as CUDA graphs (implies "
                                    "compile; device=cuda only)")
    nan_policy: str = param("stop", "non-finite loss or parameter: stop (exit 1, last good "
                                    "checkpoint kept) | skip (skip the update, count in "
                                    "charts/nan_skips)")
    wandb: WandbConfig = param(WandbConfig(), "Weights & Biases logging")
    diagnostics: DiagnosticsConfig = param(DiagnosticsConfig(), "estimator gradient diagnostics")


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def check_positive(name: str, value, allow_zero: bool = False) -> None:
    if value is None or (value < 0 if allow_zero else value <= 0):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be {bound}, got {value}")
