"""The loop every agent shares: collect → store → update → evaluate → log → checkpoint.

An agent plugs in through five methods:
    act(obs, global_step) -> action        exploration action, in the policy's space
    observe(obs, action, step_result)      store what the env returned
    train_step(global_step) -> dict|None   gradient updates owed now (tensors, not floats)
    state_dict() / load_state_dict(state)  everything needed to resume
and a ``policy`` attribute (``policies.policy.Policy``) for evaluation and saving.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from agents.checkpoint import (CHECKPOINT_FORMAT, FORMAT_VERSION, atomic_save, safe_load,
                               save_policy)
from agents.config import ConfigError, TrainConfig
from agents.evaluation import EvalResult, evaluate
from agents.sac import SAC, SACConfig
from agents.tracking import JsonlWriter
from envs.make import make_vec_env


class TrainingError(RuntimeError):
    """Training stopped (a non-finite loss, …); the message is one line."""


@dataclass
class TrainResult:
    run_dir: Path
    global_step: int
    final_eval: EvalResult | None


def agent_classes() -> dict:
    from agents.reinforce import Reinforce, ReinforceConfig

    return {"sac": (SAC, SACConfig), "reinforce": (Reinforce, ReinforceConfig)}


def as_train_config(config) -> TrainConfig:
    """A ``TrainConfig`` from a dataclass, a DictConfig or a plain dict (with validation)."""
    if isinstance(config, TrainConfig):
        cfg = config
    else:
        data = OmegaConf.to_container(config, resolve=True) \
            if OmegaConf.is_config(config) else dict(config)
        agent = dict(data.pop("agent", {}) or {})
        name = agent.get("name", "sac")
        if name not in agent_classes():
            raise ConfigError(f"unknown agent {name!r}; valid: {', '.join(agent_classes())}")
        agent_cls = agent_classes()[name][1]
        schema = OmegaConf.structured(TrainConfig(agent=agent_cls()))
        cfg = OmegaConf.to_object(OmegaConf.merge(schema, {**data, "agent": agent}))
    problems = validate(cfg)
    if problems:
        raise ConfigError(problems[0])
    return cfg


def validate(cfg: TrainConfig) -> list[str]:
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
    if cfg.estimator.name not in ("pathwise", "score", "exact"):
        problems.append(f"unknown estimator {cfg.estimator.name!r}; valid: pathwise, score, exact")
    if cfg.estimator.num_samples < 0:
        problems.append(f"estimator.num_samples must be >= 0, got {cfg.estimator.num_samples}")
    if cfg.estimator.baseline not in ("none", "mean"):
        problems.append(f"estimator.baseline must be none or mean, got {cfg.estimator.baseline!r}")
    return problems + cfg.agent.validate()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name} requested but CUDA is not available; use device=cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def default_run_dir(cfg: TrainConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    env = cfg.env.replace("/", "-")
    return Path("runs") / env / f"{cfg.agent.name}-{cfg.estimator.name}" / f"s{cfg.seed}-{stamp}"


def build_agent(cfg: TrainConfig, envs, device: torch.device):
    agent_cls = agent_classes()[cfg.agent.name][0]
    space = envs.single_action_space
    low = None if envs.is_discrete else space.low.tolist()
    high = None if envs.is_discrete else space.high.tolist()
    try:
        estimator = cfg.estimator.build()
        return agent_cls(envs.obs_dim, envs.action_dim, envs.is_discrete, cfg.agent, estimator,
                         device=device, num_envs=envs.num_envs, action_low=low, action_high=high)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _crossed(step: int, n: int, every: int) -> bool:
    """Did the last ``n`` steps, ending at ``step``, pass a multiple of ``every``?"""
    return every > 0 and step // every > (step - n) // every


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state()[1].tolist(),
            "numpy_pos": int(np.random.get_state()[2]), "python": repr(random.getstate()),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def train(config, progress=None) -> TrainResult:
    """Train one agent as ``config`` says; return where the run went and its final evaluation.

    ``progress(global_step, info)`` is called after every vector step when given.
    """
    cfg = as_train_config(config)
    device = resolve_device(cfg.device)
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    seed_everything(cfg.seed)
    envs = make_vec_env(cfg.env, cfg.num_envs, cfg.seed, device)
    try:
        agent = build_agent(cfg, envs, device)
        run_dir = Path(cfg.run_dir) if cfg.run_dir else default_run_dir(cfg)
        if run_dir.exists() and any(run_dir.iterdir()):
            raise ConfigError(f"run_dir {run_dir} already exists and is not empty; "
                              f"choose another (it is never overwritten)")
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
        return _loop(cfg, agent, envs, run_dir, progress)
    finally:
        envs.close()


def _loop(cfg: TrainConfig, agent, envs, run_dir: Path, progress) -> TrainResult:
    writer = JsonlWriter(run_dir / "metrics.jsonl")
    start = time.perf_counter()
    global_step, last_metrics, final_eval = 0, None, None
    last_return = math.nan
    sps_mark = (0, start)

    def log(record: dict) -> None:
        writer.log({"global_step": global_step, "time": time.perf_counter() - start, **record})

    obs = envs.reset(seed=cfg.seed)
    try:
        while global_step < cfg.total_steps:
            action = agent.act(obs, global_step)
            result = envs.step(action)
            agent.observe(obs, action, result)
            obs = result.obs
            global_step += envs.num_envs
            metrics = agent.train_step(global_step)
            if metrics is not None:
                last_metrics = metrics
            for ret, length in zip(result.episode_returns, result.episode_lengths):
                last_return = ret
                log({"charts/episodic_return": ret, "charts/episodic_length": length})
            if _crossed(global_step, envs.num_envs, cfg.log_every):
                now = time.perf_counter()
                record = {"charts/sps": (global_step - sps_mark[0]) / max(now - sps_mark[1], 1e-9)}
                sps_mark = (global_step, now)
                if last_metrics is not None:
                    # The only host sync of the loop: once per log interval.
                    values = {k: float(v) for k, v in last_metrics.items()}
                    bad = [k for k, v in values.items() if not math.isfinite(v)]
                    if bad:
                        raise TrainingError(f"non-finite {bad[0]} at step {global_step}; "
                                            f"the last checkpoint is kept")
                    record.update(values)
                log(record)
            if _crossed(global_step, envs.num_envs, cfg.eval_every):
                final_eval = evaluate(agent.policy, cfg.env, cfg.eval_episodes, seed=cfg.seed + 1)
                log({"eval/return_mean": final_eval.return_mean,
                     "eval/return_std": final_eval.return_std})
            if _crossed(global_step, envs.num_envs, cfg.checkpoint_every):
                save_checkpoint(run_dir, cfg, agent, global_step)
            if progress is not None:
                progress(global_step, {"episodic_return": last_return})
        if final_eval is None or not _crossed(global_step, envs.num_envs, cfg.eval_every):
            final_eval = evaluate(agent.policy, cfg.env, cfg.eval_episodes, seed=cfg.seed + 1)
            log({"eval/return_mean": final_eval.return_mean,
                 "eval/return_std": final_eval.return_std})
        save_checkpoint(run_dir, cfg, agent, global_step)
        save_policy(agent.policy, run_dir / "policy.pt", env_id=cfg.env, agent=cfg.agent.name,
                    estimator=cfg.estimator.name, global_step=global_step,
                    final_return=final_eval.return_mean)
    finally:
        writer.close()
    return TrainResult(run_dir, global_step, final_eval)


def save_checkpoint(run_dir: Path, cfg: TrainConfig, agent, global_step: int) -> None:
    atomic_save({"format": CHECKPOINT_FORMAT, "version": FORMAT_VERSION,
                 "config": dataclasses.asdict(cfg), "global_step": global_step,
                 "agent": agent.state_dict(), "rng": _rng_state()},
                run_dir / "checkpoints" / "last.pt")


def load_checkpoint(path) -> dict:
    return safe_load(path, CHECKPOINT_FORMAT)
