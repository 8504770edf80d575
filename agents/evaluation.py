"""Run a policy for N episodes in a fresh env; the same code serves training and `eval`."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from envs.make import make_env


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
    """Mean return of ``episodes`` episodes; episode i is reset with seed ``seed + i``."""
    own_env = env is None
    env = make_env(env_id) if own_env else env
    returns, lengths = [], []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            total, length, done = 0.0, 0, False
            while not done:
                action, _ = policy.predict(obs, deterministic=deterministic)
                obs, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                length += 1
                done = terminated or truncated
            returns.append(total)
            lengths.append(length)
    finally:
        if own_env:
            env.close()
    return EvalResult(episodes, float(np.mean(returns)), float(np.std(returns)),
                      float(np.mean(lengths)), returns, lengths)
