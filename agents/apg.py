"""Analytic policy gradient (APG): backpropagation through time through a differentiable env.

The policy's reparameterized actions a_t = tanh(μ_θ(s_t) + σ_θ(s_t)·ε_t) are rolled through H
steps of a torch env over N envs at once, and the loss is minus the window's discounted
return, differentiated exactly through the dynamics (SVG(∞): Heess et al. 2015, "Learning
Continuous Control Policies by Stochastic Value Gradients", eq. 4 with the model replaced by
the simulator itself; Brax's ``training/agents/apg`` trains the same way):

    L(θ) = −1/(N·H) Σ_i Σ_t γ^{t − t_start} r_t^i

where t_start is the window's first step or, after an episode ended inside the window, the new
episode's first step (``rollout.window_return``: a done closes that env's sum). The 1/(N·H) is
SHAC's normalisation (Xu et al. 2022, eq. 5, of which this is the case V ≡ 0): the loss is a
per-step reward, comparable across horizons. No estimator is swapped in: the gradient is
pathwise through the env, so the agent accepts only ``estimator=pathwise``; the score
function of the same objective is ``agent=reinforce``.

Windows. With ``carry_state`` (the default) each window continues the running episodes from
where the last one stopped, with the env's state detached at the boundary: truncated BPTT, H
steps of gradient however long the episodes. Without it each window starts new episodes from
the reset distribution, which with H equal to the episode length is full-episode BPTT.

The gradient of a long window can explode where the dynamics are chaotic (Parmas et al. 2018,
"PIPPS"; ``pathwise lab horizon`` measures it): ``max_grad_norm`` clips it, a short
``horizon`` truncates it, and SHAC (``agents/shac.py``) adds a learned terminal value so that a
short window still sees past its end.

Observations are normalised by running statistics (``normalize_obs``, as SHAC); the saved
policy (``self.policy``) has them folded into its first layer, so it acts on raw observations
like any other ``Policy``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from gymnasium import spaces

from pathwise.agents.fields import param
from pathwise.agents.optim import make_adam, optimizer_step
from pathwise.agents.rollout import (
    ObsNormalizer,
    Window,
    fold_normalization,
    rollout,
    window_return,
)
from pathwise.policies.policy import Policy


@dataclass
class APGConfig:
    """Analytic policy gradient hyperparameters (optimiser settings: SHAC's, Xu et al. 2022,
    appendix A.2)."""

    name: str = param("apg", "agent name")
    horizon: int = param(32, "H: env steps per window, backpropagated through (BPTT)")
    lr: float = param(2e-3, "Adam learning rate of the policy")
    lr_decay_steps: int = param(0, "env steps over which the learning rate decays linearly to "
                                   "0 (0: constant)")
    betas: list = param([0.7, 0.95], "Adam's (β1, β2)")
    gamma: float = param(0.99, "discount factor inside a window (restarts at each window and "
                               "episode start)")
    max_grad_norm: float | None = param(1.0, "clip the policy's gradient norm (None: off)")
    hidden_sizes: list = param([64, 64], "hidden layer widths of the policy")
    normalize_obs: bool = param(True, "normalise observations by running mean and std (folded "
                                      "into the saved policy)")
    carry_state: bool = param(True, "windows continue the running episodes from their "
                                    "detached state (truncated BPTT); false: every window "
                                    "starts new episodes")

    def validate(self) -> list[str]:
        """Problems with these values, one line each (empty when valid)."""
        problems = []
        if self.horizon < 1:
            problems.append(f"agent.horizon must be >= 1, got {self.horizon}")
        if self.lr <= 0:
            problems.append(f"agent.lr must be > 0, got {self.lr}")
        if self.lr_decay_steps < 0:
            problems.append(f"agent.lr_decay_steps must be >= 0, got {self.lr_decay_steps}")
        if len(self.betas) != 2 or not all(0.0 <= float(b) < 1.0 for b in self.betas):
            problems.append(f"agent.betas must be two numbers in [0, 1), got {list(self.betas)}")
        if not 0.0 <= self.gamma <= 1.0:
            problems.append(f"agent.gamma must be in [0, 1], got {self.gamma}")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            problems.append(f"agent.max_grad_norm must be > 0 or None, got {self.max_grad_norm}")
        if any(int(h) <= 0 for h in self.hidden_sizes):
            problems.append(f"agent.hidden_sizes must be positive, got {list(self.hidden_sizes)}")
        return problems

    def run_problems(self, cfg, envs) -> list[str]:
        """What keeps this agent from training in ``envs`` (built for run config ``cfg``): a
        gradient through the dynamics needs one of pathwise's differentiable torch envs, with
        Box actions."""
        from pathwise.envs import TORCH_ENVS

        box = [i for i, cls in TORCH_ENVS.items()
               if isinstance(cls(1).single_action_space, spaces.Box)]
        agent = f"agent={self.name} backpropagates through the env's dynamics"
        if not hasattr(envs, "step_differentiable"):
            return [f"{agent}, and {cfg.env} is not a differentiable torch env; use one of: "
                    f"{', '.join(box)}"]
        if envs.is_discrete:
            return [f"{agent} with reparameterized Box actions; {cfg.env} has "
                    f"Discrete({envs.action_dim}) actions; use one of: {', '.join(box)}"]
        if cfg.diagnostics.every > 0:
            return [f"diagnostics.every applies to agent=sac and agent=reinforce; agent="
                    f"{self.name}'s gradient through the dynamics is measured by `pathwise lab "
                    f"horizon`"]
        return []


class APG:
    """APG agent: the policy, its optimiser, the observation statistics, and ``rollout``, which
    the training loop calls in place of act/step/observe/train_step (it steps the envs itself).
    """

    def __init__(self, obs_dim: int, action_dim: int, discrete: bool, config: APGConfig,
                 estimator=None, device: torch.device | str = "cpu", num_envs: int = 1,
                 action_low=None, action_high=None, action_start: int = 0,
                 nan_policy: str = "stop"):
        name = config.name.upper()
        if discrete:
            raise ValueError(f"{name} backpropagates through reparameterized actions: it needs "
                             f"a Box action space, this env's is Discrete({action_dim})")
        if getattr(estimator, "name", estimator or "pathwise") != "pathwise":
            raise ValueError(f"{name}'s gradient is pathwise through the dynamics: use "
                             f"estimator=pathwise (the score function of this objective is "
                             f"agent=reinforce)")
        self.config = config
        self.device = torch.device(device)
        self.discrete, self.action_dim, self.num_envs = False, action_dim, num_envs
        # The actor acts on normalised observations; ``policy`` is the same policy on raw ones
        # (fold_normalization), what the loop evaluates and saves.
        self.actor = Policy(obs_dim, action_dim, False, config.hidden_sizes, action_low,
                            action_high).to(self.device)
        self.normalizer = ObsNormalizer(obs_dim, self.device, config.normalize_obs)
        self.policy = self.actor
        if config.normalize_obs:
            self.policy = copy.deepcopy(self.actor).requires_grad_(False)
        self.actor_optimizer = self._adam(self.actor.parameters(), config.lr)
        self._actor_params = list(self.actor.parameters())
        # nan_policy=skip: optimizer steps skipped for a non-finite loss or gradient.
        self.skip_nonfinite = nan_policy == "skip"
        self.nan_skips = torch.zeros((), dtype=torch.long, device=self.device)
        self.export_policy()

    def _adam(self, params, lr: float) -> torch.optim.Adam:
        optimizer = make_adam(params, lr)
        for group in optimizer.param_groups:  # read at every step, so set once here
            group["betas"] = tuple(float(b) for b in self.config.betas)
        return optimizer

    def _step(self, optimizer, loss: torch.Tensor, params) -> None:
        skipped = optimizer_step(optimizer, loss, params, self.skip_nonfinite,
                                 self.config.max_grad_norm)
        if skipped is not None:
            self.nan_skips += skipped

    def _set_lr(self, global_step: int) -> float:
        """Linear decay to 0 over ``lr_decay_steps`` env steps (SHAC's schedule); returns the
        fraction of the initial rates in use."""
        steps = self.config.lr_decay_steps
        fraction = max(0.0, 1.0 - global_step / steps) if steps else 1.0
        for optimizer, lr in self._optimizers():
            for group in optimizer.param_groups:
                group["lr"] = lr * fraction
        return fraction

    def _optimizers(self):
        return [(self.actor_optimizer, self.config.lr)]

    # -- the objective ----------------------------------------------------------------------
    def terminal_values(self, window: Window) -> torch.Tensor | None:
        """Values to bootstrap each closed sum with (``rollout.window_return``): none for APG."""
        return None

    def actor_loss(self, window: Window, end_value: torch.Tensor | None = None) -> torch.Tensor:
        """−1/(N·H) Σ_i (the window's discounted return of env i, plus its terminal values)."""
        horizon, n = window.reward.shape
        returns = window_return(window.reward, window.done, self.config.gamma, end_value)
        return -returns.sum() / (n * horizon)

    def critic_update(self, window: Window, end_value) -> dict[str, torch.Tensor]:
        """Critic training after the actor's step: none for APG."""
        return {}

    # -- the runner's protocol --------------------------------------------------------------
    def rollout(self, envs, obs: torch.Tensor, global_step: int):
        """One window: H differentiable steps of every env, one actor step (and SHAC's critic
        steps). Returns (the observations to act from next, env steps taken, metrics)."""
        cfg = self.config
        if not cfg.carry_state:
            obs = envs.reset()  # new episodes; the cut ones are not counted as episodes
        fraction = self._set_lr(global_step)
        window = rollout(envs, self.actor, obs, cfg.horizon, self.normalizer)
        end_value = self.terminal_values(window)
        actor_loss = self.actor_loss(window, end_value)
        self._step(self.actor_optimizer, actor_loss, self._actor_params)
        metrics = {"losses/actor": actor_loss.detach(),
                   "charts/lr": torch.tensor(cfg.lr * fraction)}
        metrics.update(self.critic_update(window, end_value))
        # Statistics of this window's observations, for the next window (not this one: its
        # objective was one function of θ under one normalisation).
        self.normalizer.update(window.obs)
        self.normalizer.freeze()
        self.export_policy()
        if self.skip_nonfinite:
            metrics["charts/nan_skips"] = self.nan_skips.clone()
        return window.next_obs, cfg.horizon * envs.num_envs, metrics

    def export_policy(self) -> None:
        """``policy`` ← ``actor`` with the normalisation folded in (when it is on)."""
        if self.policy is not self.actor:
            fold_normalization(self.actor, self.policy, self.normalizer.shift,
                               self.normalizer.scale)

    def act(self, obs: torch.Tensor, global_step: int) -> torch.Tensor:
        """A draw from the current policy, in [-1, 1]^d (raw observations)."""
        return self.policy.act(obs)

    def state_dict(self) -> dict:
        return {"actor": self.actor.state_dict(),
                "actor_optimizer": self.actor_optimizer.state_dict(),
                "normalizer": self.normalizer.state_dict(), "nan_skips": self.nan_skips.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.actor.load_state_dict(state["actor"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.normalizer.load_state_dict(state["normalizer"])
        self.nan_skips.copy_(state["nan_skips"])
        self.export_policy()
