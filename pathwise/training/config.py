"""The training configuration: one dataclass tree, the schema of the Hydra configs.

Every default lives here (the agents' own in their config dataclasses); the YAML files under
``configs/`` choose groups and presets, and repeat no default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from omegaconf import OmegaConf

from pathwise.agents.fields import param
from pathwise.agents.optim import NAN_POLICIES
from pathwise.agents.sac import SACConfig
from pathwise.errors import ConfigError
from pathwise.training import registry


@dataclass
class EstimatorConfig:
    """Which gradient estimator trains the actor, and its options."""

    name: str = param("pathwise", "actor gradient estimator: pathwise | score | exact | "
                                  "straight_through | gumbel_rao | reinmax (the last four: "
                                  "discrete actions only)")
    num_samples: int = param(0, "actions drawn per state (0: 1 for pathwise, 4 for score)")
    baseline: str = param("mean", "score: none | mean (leave-one-out over num_samples)")
    mc_samples: int = param(10, "gumbel_rao: conditional Gumbel draws averaged in the backward "
                                "pass (Paulus et al. 2021)")
    max_actions: int = param(4096, "exact: the most joint actions per state it sums over; "
                                   "refused above (MultiDiscrete: Π n_j)")

    def resolved(self) -> EstimatorConfig:
        """With ``num_samples`` made explicit (0 means the estimator's own default), so that a
        run's config.yaml records what trained it."""
        if self.num_samples or self.name not in DEFAULT_DRAWS:
            return self
        return dataclasses.replace(self, num_samples=DEFAULT_DRAWS[self.name])

    def build(self):
        from pathwise.policies.estimators import get_estimator

        if self.name == "exact":
            if self.num_samples:
                raise ValueError("estimator 'exact' sums over every action: "
                                 "estimator.num_samples does not apply (leave it at 0)")
            return get_estimator("exact", max_actions=self.max_actions)
        draws = self.resolved().num_samples
        if self.name == "score":
            # A single sample has no leave-one-out baseline: get_estimator says so in one line
            # rather than this silently dropping the baseline the config asked for.
            return get_estimator("score", num_samples=draws, baseline=self.baseline)
        if self.name == "gumbel_rao":
            return get_estimator("gumbel_rao", num_samples=draws, mc_samples=self.mc_samples)
        return get_estimator(self.name, num_samples=draws)

    def problems(self) -> list[str]:
        """Problems with these values, one line each (empty when valid). An option set away
        from its default for an estimator that ignores it is one: it would silently do
        nothing."""
        problems = []
        if self.name not in ESTIMATOR_NAMES:
            problems.append(f"unknown estimator {self.name!r}; valid: "
                            f"{', '.join(ESTIMATOR_NAMES)}")
        if self.num_samples < 0:
            problems.append(f"estimator.num_samples must be >= 0, got {self.num_samples}")
        if self.baseline not in ("none", "mean"):
            problems.append(f"estimator.baseline must be none or mean, got {self.baseline!r}")
        defaults = EstimatorConfig()
        for option, owner in (("mc_samples", "gumbel_rao"), ("max_actions", "exact")):
            value = getattr(self, option)
            if value < 1:
                problems.append(f"estimator.{option} must be >= 1, got {value}")
            elif self.name != owner and value != getattr(defaults, option):
                problems.append(f"estimator.{option} applies to estimator={owner} only; this "
                                f"run has estimator={self.name}")
        return problems


ESTIMATOR_NAMES = ("pathwise", "score", "exact", "straight_through", "gumbel_rao", "reinmax")
# Actions drawn per state when estimator.num_samples is 0: one, as SAC does, for pathwise and
# the straight-through family; four for score, whose leave-one-out baseline needs two or more
# (Kool et al. 2019).
DEFAULT_DRAWS = {"pathwise": 1, "score": 4, "straight_through": 1, "gumbel_rao": 1,
                 "reinmax": 1}


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
    reference_samples: int = param(256, "SAC: draws per state of the reference gradient where "
                                        "it is not exact (Box: pathwise; a joint discrete set "
                                        "above max_actions: leave-one-out score)")
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
    action_bins: int = param(0, "N >= 2: train in a Box action space cut into N evenly spaced "
                                "values per dimension (MultiDiscrete([N] * d), discrete SAC); "
                                "the saved policy still acts in the Box. 0: off")
    eval_env: str | None = param(None, "env id evaluations run on; None: the training env, or "
                                       "Gymnasium's own for a torch port (pathwise/Pendulum-v1 "
                                       "-> Pendulum-v1)")
    eval_every: int = param(5000, "env steps between deterministic evaluations (0: off)")
    eval_episodes: int = param(10, "episodes per evaluation")
    checkpoint_every: int = param(10_000, "env steps between checkpoints (0: at the end only)")
    log_every: int = param(1000, "env steps between logged training losses")
    torch_threads: int = param(0, "torch intra-op threads; 0: the cores idle when the run "
                                  "starts, at least 1 (a sweep's jobs share the cores out)")
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
CUDAGRAPHS_ON_CPU = "cudagraphs=true needs device=cuda (CUDA graphs capture GPU kernels); " \
                    "this run is on the CPU: drop cudagraphs, or use compile=true"


def evaluation_env(cfg: TrainConfig) -> str:
    """The env id a run's evaluations use (``eval_env``, or its default)."""
    from pathwise.envs import GYMNASIUM_ORIGINALS

    return cfg.eval_env or GYMNASIUM_ORIGINALS.get(cfg.env, cfg.env)


def as_train_config(config) -> TrainConfig:
    """A validated ``TrainConfig`` from a dataclass, a DictConfig or a plain dict (a run's
    ``config.yaml``); an invalid one raises ``ConfigError`` with one line."""
    if isinstance(config, TrainConfig):
        cfg = config
    else:
        from omegaconf.errors import OmegaConfBaseException

        data = OmegaConf.to_container(config, resolve=True) \
            if OmegaConf.is_config(config) else dict(config)
        agent = dict(data.pop("agent", {}) or {})
        schema = OmegaConf.structured(TrainConfig(agent=registry.agent_config(
            agent.get("name", "sac"))()))
        try:
            cfg = OmegaConf.to_object(OmegaConf.merge(schema, {**data, "agent": agent}))
        except OmegaConfBaseException as err:
            key = getattr(err, "full_key", None)
            reason = str(err).splitlines()[0]
            if type(err).__name__ in ("ConfigKeyError", "ConfigAttributeError") and key:
                raise ConfigError(f"unknown key {key!r}") from None
            raise ConfigError(f"invalid config{f' at {key}' if key else ''}: {reason}") from None
    problems = validate(cfg)
    if problems:
        raise ConfigError(problems[0])
    cfg.estimator = cfg.estimator.resolved()
    return cfg


def validate(cfg: TrainConfig) -> list[str]:
    """Problems with a config, one line each (empty when valid)."""
    problems = []
    for name in ("total_steps", "num_envs", "eval_episodes", "log_every"):
        if getattr(cfg, name) <= 0:
            problems.append(f"{name} must be > 0, got {getattr(cfg, name)}")
    for name in ("eval_every", "checkpoint_every", "torch_threads"):
        if getattr(cfg, name) < 0:
            problems.append(f"{name} must be >= 0, got {getattr(cfg, name)}")
    if cfg.wandb.mode not in ("offline", "online", "disabled"):
        problems.append(f"wandb.mode must be offline, online or disabled, got {cfg.wandb.mode!r}")
    if not (cfg.device in ("cpu", "cuda", "auto") or cfg.device.startswith("cuda:")):
        problems.append(f"device must be cpu, cuda, cuda:N or auto, got {cfg.device!r}")
    problems += cfg.estimator.problems()
    if cfg.action_bins < 0 or cfg.action_bins == 1:
        problems.append(f"action_bins must be >= 2 (or 0: off), got {cfg.action_bins}")
    if cfg.nan_policy not in NAN_POLICIES:
        problems.append(f"nan_policy must be stop or skip, got {cfg.nan_policy!r}")
    if cfg.compile_mode not in COMPILE_MODES:
        problems.append(f"compile_mode must be one of {', '.join(COMPILE_MODES)}, "
                        f"got {cfg.compile_mode!r}")
    if cfg.cudagraphs and cfg.device == "cpu":
        problems.append(CUDAGRAPHS_ON_CPU)
    if cfg.seed < 0:
        problems.append(f"seed must be >= 0, got {cfg.seed}")
    first_update = getattr(cfg.agent, "first_update", None)
    if first_update is not None:  # a run that would end before its first gradient update
        key, steps = first_update()
        if cfg.total_steps <= steps:
            problems.append(f"total_steps={cfg.total_steps} is not past agent.{key}={steps}: "
                            f"no gradient update would run; raise total_steps or lower "
                            f"agent.{key}")
    return problems + cfg.diagnostics.validate() + cfg.agent.validate()
