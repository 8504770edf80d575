"""Evaluating a policy: N episodes in fresh envs, the same code for training and ``eval``;
and the record each ``pathwise eval`` leaves (``evals.jsonl``)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from pathwise.envs.make import make_env
from pathwise.envs.seeding import EVALUATION, derive_seeds

# Episodes run side by side, one policy forward pass for all of them per step.
MAX_PARALLEL = 16
EVALS_FILE = "evals.jsonl"


@dataclass
class EvalResult:
    episodes: int
    return_mean: float
    return_std: float
    length_mean: float
    returns: list[float]
    lengths: list[int]

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate(policy, env_id: str, episodes: int = 10, seed: int = 0,
             deterministic: bool = True, env=None) -> EvalResult:
    """Mean return of ``episodes`` episodes of ``policy`` (SB3's ``predict`` protocol).

    Episode i is reset with the i-th evaluation seed derived from ``seed`` (a stream no
    training env draws from: ``pathwise.envs.seeding``), so a run and ``pathwise eval`` of its
    policy see the same episodes. Up to ``MAX_PARALLEL`` episodes run at once in envs of their
    own; with ``env`` given (video recording, a user's env) they run one after another in it.
    Stochastic actions come from torch's generator seeded inside a forked RNG state: the
    caller's (training's) random stream is left untouched.
    """
    seeds = derive_seeds(seed, episodes, EVALUATION)
    param = next(policy.parameters(), None)
    cuda = [param.device] if param is not None and param.is_cuda else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(derive_seeds(seed, 1, EVALUATION, 1)[0])
        if env is not None:
            results = [_episodes(policy, [env], [s], deterministic)[0] for s in seeds]
        else:
            results = []
            for start in range(0, episodes, MAX_PARALLEL):
                wave = seeds[start:start + MAX_PARALLEL]
                envs = []
                try:
                    envs += [make_env(env_id) for _ in wave]
                    results += _episodes(policy, envs, wave, deterministic)
                finally:
                    for e in envs:
                        e.close()
    returns = [ret for ret, _ in results]
    lengths = [length for _, length in results]
    return EvalResult(episodes, float(np.mean(returns)), float(np.std(returns)),
                      float(np.mean(lengths)), returns, lengths)


def _episodes(policy, envs: list, seeds: list[int], deterministic: bool) -> list[tuple]:
    """One episode in each env, stepped together: ``[(return, length), ...]``."""
    obs = [env.reset(seed=s)[0] for env, s in zip(envs, seeds)]
    totals, lengths = [0.0] * len(envs), [0] * len(envs)
    active = list(range(len(envs)))
    while active:
        actions, _ = policy.predict(np.stack([obs[i] for i in active]),
                                    deterministic=deterministic)
        still = []
        for i, action in zip(active, actions):
            obs[i], reward, terminated, truncated, _ = envs[i].step(action)
            totals[i] += float(reward)
            lengths[i] += 1
            if not (terminated or truncated):
                still.append(i)
        active = still
    return list(zip(totals, lengths))


# -- records of `pathwise eval` ---------------------------------------------------------------
def eval_record(result: EvalResult, *, policy_file: Path, policy_step: int | None, env: str,
                deterministic: bool, seed: int, device: str) -> dict:
    """What one ``pathwise eval`` measured and of what: a line of ``evals.jsonl``."""
    return {"time": datetime.now().astimezone().isoformat(timespec="seconds"),
            "policy": str(policy_file), "policy_step": policy_step, "env": env,
            "deterministic": deterministic, "seed": seed, "device": device,
            "episodes": result.episodes, "return_mean": result.return_mean,
            "return_std": result.return_std, "length_mean": result.length_mean,
            "returns": result.returns, "lengths": result.lengths}


def append_record(folder: Path, record: dict) -> Path:
    """Append ``record`` to ``folder/evals.jsonl`` in one write (earlier evaluations stay);
    the file follows the umask."""
    path = Path(folder) / EVALS_FILE
    line = (json.dumps(record) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return path


def read_records(folder: Path) -> list[dict]:
    path = Path(folder) / EVALS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def log_to_wandb(record: dict, *, mode: str, wandb_cfg: dict, run_dir: Path, name: str,
                 agent: str, estimator: str, train_config: dict | None,
                 videos: list[Path] = ()) -> Path | None:
    """A ``job_type=eval`` wandb run in the env's group, with the returns and any videos."""
    from pathwise.training.tracking import open_wandb_run

    env = record["env"]
    run = open_wandb_run(mode, project=wandb_cfg.get("project", "pathwise"),
                         entity=wandb_cfg.get("entity"), group=env, job_type="eval",
                         tags=[agent, estimator, env, "eval"],
                         config={**{k: v for k, v in record.items()
                                    if k not in ("returns", "lengths")}, "train": train_config},
                         run_dir=run_dir, name=name)
    if run is None:
        return None
    try:
        run.log({"global_step": int(record["policy_step"] or 0),
                 "eval/return_mean": record["return_mean"],
                 "eval/return_std": record["return_std"],
                 "eval/length_mean": record["length_mean"]})
        run.log_table("eval/episodes", ["episode", "return", "length"],
                      [[i, r, n] for i, (r, n) in enumerate(zip(record["returns"],
                                                                record["lengths"]))])
        if videos:
            run.log_files("video", {f"eval/video_{i}": p for i, p in enumerate(videos)})
        run.summary({"eval/return_mean": record["return_mean"],
                     "eval/return_std": record["return_std"],
                     "eval/episodes": record["episodes"]})
    except BaseException:
        run.finish(1)
        raise
    run.finish(0)
    return run.dir
