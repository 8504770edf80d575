"""Run a policy for N episodes in a fresh env; the same code serves training and `eval`."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from pathwise.envs.make import make_env

# Evaluation episodes start from seeds of their own: far from the training envs' seeds
# (seed + i for sub-env i), and 1000 apart per training seed, so runs with seeds s and s + 1
# are not evaluated on the same start states.
EVAL_SEED_OFFSET = 1_000_000


def eval_seed(train_seed: int) -> int:
    """The first evaluation seed of a run trained with ``train_seed`` (episode i: +i)."""
    return EVAL_SEED_OFFSET + 1000 * int(train_seed)


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
    """Mean return of ``episodes`` episodes; episode i is reset with seed ``seed + i``.

    Stochastic actions are drawn from torch's generator seeded with ``seed`` inside a forked
    RNG state: reproducible, and the caller's (training's) random stream is left untouched.
    """
    own_env = env is None
    env = make_env(env_id) if own_env else env
    param = next(policy.parameters(), None)
    cuda = [param.device] if param is not None and param.is_cuda else []
    try:
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            episodes_run = [_episode(policy, env, seed + i, deterministic)
                            for i in range(episodes)]
    finally:
        if own_env:
            env.close()
    returns = [ret for ret, _ in episodes_run]
    lengths = [length for _, length in episodes_run]
    return EvalResult(episodes, float(np.mean(returns)), float(np.std(returns)),
                      float(np.mean(lengths)), returns, lengths)


def _episode(policy, env, seed: int, deterministic: bool) -> tuple[float, int]:
    obs, _ = env.reset(seed=seed)
    total, length, done = 0.0, 0, False
    while not done:
        action, _ = policy.predict(obs, deterministic=deterministic)
        obs, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        length += 1
        done = terminated or truncated
    return total, length
