"""Differentiable rollouts through a torch env, shared by APG and SHAC: one window of H steps
of every env with the policy's reparameterized actions, the window's return with its episode
boundaries and terminal values, TD(λ) targets, and the running observation normalisation.

What a window is. From the observations ``obs`` the envs are at, each of the N envs takes H
steps with ``a_t = tanh(μ + σ·ε_t)`` (``rsample``) through ``NativeVecEnv.step_differentiable``,
so the rewards carry gradients to the policy through the actions *and* through every later
state (backpropagation through time; SVG(∞), Heess et al. 2015, "Learning Continuous Control
Policies by Stochastic Value Gradients", §4). At the end the env's state is detached
(``env.state = env.state.detach()``): the next window starts from where this one stopped, with
no graph behind it (truncated BPTT).

Episode ends inside a window. The env's SAME_STEP autoreset already guarantees that no
gradient crosses an autoreset (envs/vector.py). The *sums* must respect the boundary too: a
step that ends an episode closes that env's return, and the steps after it start a new
discounted sum at γ⁰. A sum that ran on across the boundary would credit the first actions
of a new episode with γ^k-discounted rewards of the old one and vice versa: no gradient flows
between them, but the discounting (and, for SHAC, which value bootstraps where) would be wrong.
Each closed sum is bootstrapped with a terminal value (SHAC; Xu et al. 2022, §3.2 and the
done handling of its reference implementation):

    V_end = V(final_obs)   where the episode was truncated (time limit), or at the window end
    V_end = 0              where it terminated

and APG is the case V ≡ 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Added to the running variance before its square root (as SHAC's RunningMeanStd): a feature
# that never varies (yet) is divided by 0.003, not by 0.
NORM_EPS = 1e-5


@dataclass
class Window:
    """One H-step window of N envs. Time-major tensors, shape (H, N, ...)."""

    obs: torch.Tensor  # (H, N, obs_dim) raw observation each step acted on; detached
    reward: torch.Tensor  # (H, N) with its graph to the actions and the states
    terminated: torch.Tensor  # (H, N) bool
    done: torch.Tensor  # (H, N) bool: the step ended its episode (terminated | truncated)
    final_obs: torch.Tensor  # (H, N, obs_dim) raw successor of each step, with its graph
    next_obs: torch.Tensor  # (N, obs_dim) raw observation the next window acts from; detached

    @property
    def ends(self) -> torch.Tensor:
        """(H, N) bool: where a discounted sum closes and bootstraps: the episode ends, and
        the window's last step (the window cuts every running episode)."""
        ends = self.done.clone()
        ends[-1] = True
        return ends


def rollout(envs, actor, obs: torch.Tensor, horizon: int, normalize) -> Window:
    """H differentiable steps of ``envs`` (a ``NativeVecEnv``) with ``actor``'s reparameterized
    actions from ``obs``; then the env's state is detached, so the graph ends here.

    ``normalize(obs)`` is what the actor sees (affine, so the gradient passes through it).
    """
    seen, rewards, terminals, dones, finals = [], [], [], [], []
    for _ in range(horizon):
        action = actor.distribution(normalize(obs)).rsample()
        next_obs, reward, terminated, _, info = envs.step_differentiable(action)
        seen.append(obs.detach())
        rewards.append(reward)
        terminals.append(terminated)
        dones.append(info["_final_obs"])
        finals.append(info["final_obs"])
        obs = next_obs  # where an episode ended: the new one's first obs, no graph behind it
    envs.env.state = envs.env.state.detach()  # truncated BPTT: cut the graph at the window end
    return Window(torch.stack(seen), torch.stack(rewards), torch.stack(terminals),
                  torch.stack(dones), torch.stack(finals), obs.detach())


def window_return(reward: torch.Tensor, done: torch.Tensor, gamma: float,
                  end_value: torch.Tensor | None = None) -> torch.Tensor:
    """(N,) per env: Σ over the window's episode segments of

        Σ_{t in segment} γ^{t − t_start} r_t  +  γ^{t_end − t_start + 1} · end_value[t_end]

    where a segment starts at the window's start or after an episode end and closes at an
    episode end or the window's last step (SHAC's actor objective, Xu et al. 2022, eq. 5, per
    env, before the 1/(N·H)). ``end_value`` (H, N): the value to bootstrap with where a
    segment closes (``terminal_values``); None for APG (no bootstrap).
    """
    horizon = reward.shape[0]
    discount = torch.ones_like(reward[0])
    total = torch.zeros_like(reward[0])
    for t in range(horizon):
        total = total + discount * reward[t]
        discount = discount * gamma
        if end_value is not None:
            closes = done[t] if t < horizon - 1 else torch.ones_like(done[t])
            total = total + torch.where(closes, discount * end_value[t], 0.0)
        discount = torch.where(done[t], 1.0, discount)  # a new episode starts at γ⁰
    return total


def terminal_values(value_fn, final_obs: torch.Tensor, terminated: torch.Tensor) -> torch.Tensor:
    """(H, N): V(final_obs_t), the value of each step's true successor, and 0 where the step
    terminated (nothing follows a terminal state; a truncated episode's state goes on)."""
    h, n = terminated.shape
    values = value_fn(final_obs.reshape(h * n, -1)).reshape(h, n)
    return torch.where(terminated, 0.0, values)


def td_lambda_targets(reward: torch.Tensor, next_value: torch.Tensor, ends: torch.Tensor,
                      gamma: float, lam: float) -> torch.Tensor:
    """(H, N) TD(λ) targets of V(s_t) for a window (Xu et al. 2022, §3.3, eq. 7: the
    λ-weighted average of the k-step returns inside the window, the longest one taking the
    remaining weight λ^{h−t−1}), by the backward recursion

        G_t = r_t + γ · next_value_t                                   where ends_t
        G_t = r_t + γ · ((1 − λ) · next_value_t + λ · G_{t+1})          otherwise

    ``next_value`` (H, N): the target critic's value of each step's successor (0 after a
    termination: ``terminal_values``); ``ends``: ``Window.ends``. An episode end inside the
    window cuts the recursion: a target never mixes two episodes. Inputs are detached.
    """
    reward, next_value = reward.detach(), next_value.detach()
    targets = torch.empty_like(reward)
    later = torch.zeros_like(reward[0])  # G_{t+1}
    for t in reversed(range(reward.shape[0])):
        blended = torch.where(ends[t], next_value[t], (1.0 - lam) * next_value[t] + lam * later)
        later = reward[t] + gamma * blended
        targets[t] = later
    return targets


class ObsNormalizer:
    """Running mean and variance of the observations (Chan et al. 1979's parallel update, in
    float64), and ``(obs − mean) / sqrt(var + eps)`` with the statistics frozen between
    ``freeze`` calls: inside a window every step is normalised alike, so the window's
    objective is one function of the policy's parameters (SHAC normalises with a copy taken at
    the window's start, and so does this).

    Disabled (``enabled=False``), it is the identity.
    """

    def __init__(self, dim: int, device: torch.device, enabled: bool = True):
        self.enabled = enabled
        self.mean = torch.zeros(dim, dtype=torch.float64, device=device)
        self.var = torch.ones(dim, dtype=torch.float64, device=device)
        self.count = torch.zeros((), dtype=torch.float64, device=device)
        self.freeze()

    def update(self, x: torch.Tensor) -> None:
        """Add a batch (B, dim) of observations to the running statistics."""
        if not self.enabled:
            return
        x = x.detach().reshape(-1, self.mean.shape[0]).double()
        n = x.shape[0]
        batch_mean, batch_var = x.mean(0), x.var(0, correction=0)
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.var = (self.var * self.count + batch_var * n
                    + delta.square() * (self.count * n / total)) / total
        self.count = total

    def freeze(self) -> None:
        """Take the current statistics as the ones ``__call__`` uses."""
        self.shift = self.mean.float()
        self.scale = (self.var + NORM_EPS).sqrt().float()

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.shift) / self.scale if self.enabled else obs

    def state_dict(self) -> dict:
        return {"mean": self.mean.clone(), "var": self.var.clone(), "count": self.count.clone(),
                "shift": self.shift.clone(), "scale": self.scale.clone()}

    def load_state_dict(self, state: dict) -> None:
        device = self.mean.device
        self.mean, self.var, self.count, self.shift, self.scale = (
            state[k].to(device).clone() for k in ("mean", "var", "count", "shift", "scale"))


@torch.no_grad()
def fold_normalization(source, target, shift: torch.Tensor, scale: torch.Tensor) -> None:
    """Copy ``source`` (a ``Policy`` acting on normalised observations) into ``target`` (the
    same architecture, acting on raw ones) with the normalisation folded into the first layer:

        W · (x − m) / s + b = (W / s) · x + (b − (W / s) · m)

    so ``target`` is the same policy as a plain ``Policy``: it saves as policy.pt, and
    ``pathwise eval`` and Stable-Baselines3's ``predict`` use it as any other."""
    target.load_state_dict(source.state_dict())
    first = next(m for m in target.net if isinstance(m, torch.nn.Linear))
    weight = first.weight / scale
    first.weight.copy_(weight)
    first.bias.sub_(weight @ shift)


__all__ = ["NORM_EPS", "ObsNormalizer", "Window", "fold_normalization", "rollout",
           "td_lambda_targets", "terminal_values", "window_return"]
