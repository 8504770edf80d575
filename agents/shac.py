"""Short-Horizon Actor-Critic (SHAC): APG over short windows, plus a learned terminal value.

Xu, Makoviychuk, Narang, Ramos, Matusik, Garg, Macklin (2022), "Accelerated Policy Learning
with Parallel Differentiable Simulation", ICLR. Each iteration rolls N envs H steps (H = 32)
with the policy's reparameterized actions, as APG does (``agents/apg.py``), and

1. **actor**: minimises (eq. 5)

       L_θ = −1/(N·H) Σ_i [ Σ_{t<H} γ^{t − t_start} r_t^i + γ^{h − t_start} V_φ'(s_h^i) ]

   differentiated through the dynamics *and* through the terminal value's input s_h (the
   value network's own parameters are held fixed): the window is short, so its gradient stays
   tame in chaotic dynamics (Parmas et al. 2018), and V carries the long-term return. At an
   episode end inside the window the sum closes with V(final obs) for a truncation and 0 for
   a termination, and the next episode's sum starts at γ⁰ (``rollout.window_return``). Like
   the reference implementation, the terminal values come from the target critic φ'.
2. **critic**: regresses V_φ(s_t) on TD(λ) targets (eq. 7, ``rollout.td_lambda_targets``),
   computed from the window's detached rewards and the target critic's values, for
   ``critic_iterations`` epochs of ``critic_minibatches`` shuffled minibatches each (the
   paper's 16 and 4), loss ‖V_φ(s) − V̂(s)‖² (eq. 8);
3. **target critic**: Polyak averaging φ' ← φ' + τ (φ − φ'), once per iteration (the paper's
   α = 0.2 is 1 − τ, so τ = 0.8).

Networks use ELU activations (the paper's); the policy is the library's ``Policy`` (a ReLU
MLP with a tanh-Gaussian head, which the saved policy.pt format fixes), and the actor's
Gaussian noise is its state-dependent σ rather than the paper's state-independent one.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from pathwise.agents.apg import APG, APGConfig
from pathwise.agents.fields import param
from pathwise.agents.rollout import Window, td_lambda_targets, terminal_values
from pathwise.policies.networks import mlp


@dataclass
class SHACConfig(APGConfig):
    """SHAC hyperparameters (defaults: Xu et al. 2022, appendix A.2)."""

    name: str = param("shac", "agent name")
    critic_lr: float = param(2e-3, "Adam learning rate of the value network V")
    critic_hidden_sizes: list = param([64, 64], "hidden layer widths of V (ELU)")
    lam: float = param(0.95, "λ of the TD(λ) targets of V")
    critic_iterations: int = param(16, "epochs over each window's states per critic update")
    critic_minibatches: int = param(4, "minibatches per epoch (each N·H / this states)")
    tau: float = param(0.8, "Polyak rate of the target critic per window (the paper's α = "
                            "1 − τ = 0.2)")

    def validate(self) -> list[str]:
        problems = super().validate()
        if self.critic_lr <= 0:
            problems.append(f"agent.critic_lr must be > 0, got {self.critic_lr}")
        if any(int(h) <= 0 for h in self.critic_hidden_sizes):
            problems.append(f"agent.critic_hidden_sizes must be positive, got "
                            f"{list(self.critic_hidden_sizes)}")
        if not 0.0 <= self.lam <= 1.0:
            problems.append(f"agent.lam must be in [0, 1], got {self.lam}")
        if self.critic_iterations < 1 or self.critic_minibatches < 1:
            problems.append("agent.critic_iterations and agent.critic_minibatches must be >= 1")
        if not 0.0 < self.tau <= 1.0:
            problems.append(f"agent.tau must be in (0, 1], got {self.tau}")
        return problems


class SHAC(APG):
    """SHAC agent: APG's policy and rollout, plus the value network, its target and their
    update."""

    def __init__(self, obs_dim: int, action_dim: int, discrete: bool, config: SHACConfig,
                 estimator=None, device: torch.device | str = "cpu", num_envs: int = 1,
                 action_low=None, action_high=None, action_start: int = 0,
                 nan_policy: str = "stop"):
        super().__init__(obs_dim, action_dim, discrete, config, estimator, device, num_envs,
                         action_low, action_high, action_start, nan_policy)
        hidden = [int(h) for h in config.critic_hidden_sizes]
        self.critic = mlp(obs_dim, 1, hidden, activation=nn.ELU).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.critic_optimizer = self._adam(self.critic.parameters(), config.critic_lr)
        self._critic_params = list(self.critic.parameters())
        self._target_params = list(self.critic_target.parameters())

    def _optimizers(self):
        return [(self.actor_optimizer, self.config.lr),
                (self.critic_optimizer, self.config.critic_lr)]

    def value(self, obs: torch.Tensor, target: bool = False) -> torch.Tensor:
        """V(s) of raw observations (normalised with the window's statistics) → (B,)."""
        net = self.critic_target if target else self.critic
        return net(self.normalizer(obs)).squeeze(-1)

    # -- the objective ----------------------------------------------------------------------
    def terminal_values(self, window: Window) -> torch.Tensor:
        """(H, N) target-critic values of each step's successor, 0 after a termination; with
        gradients to the observations (the target network has no trainable parameters)."""
        return terminal_values(lambda obs: self.value(obs, target=True), window.final_obs,
                               window.terminated)

    def critic_loss(self, obs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean squared error of V on TD(λ) targets (Xu et al. 2022, eq. 8)."""
        return (self.value(obs) - targets).square().mean()

    def critic_update(self, window: Window, end_value: torch.Tensor) -> dict[str, torch.Tensor]:
        """TD(λ) targets from the window, ``critic_iterations`` epochs of minibatch steps on V,
        then one Polyak step of the target."""
        cfg = self.config
        targets = td_lambda_targets(window.reward, end_value, window.ends, cfg.gamma, cfg.lam)
        obs = window.obs.reshape(-1, window.obs.shape[-1])
        targets = targets.reshape(-1)
        for _ in range(cfg.critic_iterations):
            order = torch.randperm(obs.shape[0], device=self.device)
            epoch = []
            for batch in order.chunk(cfg.critic_minibatches):
                loss = self.critic_loss(obs[batch], targets[batch])
                self._step(self.critic_optimizer, loss, self._critic_params)
                epoch.append(loss.detach())
        with torch.no_grad():  # φ' ← φ' + τ(φ − φ')
            torch._foreach_lerp_(self._target_params, self._critic_params, cfg.tau)
        # The last epoch's mean loss: how well V fits this window's targets after training.
        last = torch.stack(epoch).mean()
        return {"losses/critic": last, "charts/value_target": targets.mean()}

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {**super().state_dict(), "critic": self.critic.state_dict(),
                "critic_target": self.critic_target.state_dict(),
                "critic_optimizer": self.critic_optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
