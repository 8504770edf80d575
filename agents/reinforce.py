"""REINFORCE with a baseline: Monte Carlo returns and the score-function gradient.

The policy gradient theorem in its Monte Carlo form (Williams 1992, "Simple Statistical
Gradient-Following Algorithms for Connectionist RL"; Sutton & Barto 2018, eqs. 13.8 and 13.11):

    ∇θ J(θ) ≈ E_π[ Σ_t (G_t − b(s_t)) ∇θ log π_θ(a_t|s_t) ],   G_t = Σ_{k≥t} γ^{k−t} r_k,

estimated on whole episodes drawn from the current policy. The γ^t weight of the exact
discounted gradient is dropped, as in common practice (Nota & Thomas 2020, "Is the Policy
Gradient a Gradient?"), so every step counts alike. No gradient ever passes through an
action: this is the score-function (likelihood-ratio) estimator by definition, so the agent
accepts only ``estimator=score``. The estimator object of ``policies.estimators`` is not called:
it scores fresh draws against a cost function, while REINFORCE's "cost" is the return that
followed the action actually taken, known only for that one stored action. The agent applies
the same identity to the stored actions directly; ``estimator.num_samples`` and
``estimator.baseline`` do not apply (the baseline here is ``agent.baseline``).

Box actions are scored at the stored pre-tanh draw u (``TanhNormal.log_prob_pre_tanh``),
never at atanh(a): at saturation tanh(u) rounds to ±1 and the inverse is infinite.

Baselines (any b(s_t) independent of a_t leaves the gradient unbiased; Williams 1992):
  none   b = 0
  mean   b = the batch mean of G (a constant; strictly it includes each G_t, a bias of O(1/B))
  value  b = V_φ(s_t), regressed on G by least squares (Sutton & Barto 2018, §13.4). V is fitted
         *after* the advantages are computed: fitted first, V(s_t) would have seen G_t.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pathwise.agents.buffers import EpisodeBatch, RolloutStorage
from pathwise.agents.fields import param
from pathwise.agents.optim import make_adam, optimizer_step
from pathwise.policies.networks import mlp
from pathwise.policies.policy import Policy

BASELINES = ("none", "mean", "value")


@dataclass
class ReinforceConfig:
    """REINFORCE hyperparameters (defaults close to Spinning Up's VPG, Achiam 2018)."""

    name: str = param("reinforce", "agent name")
    lr: float = param(1e-3, "Adam learning rate of the policy")
    value_lr: float = param(1e-3, "Adam learning rate of the value baseline V")
    gamma: float = param(0.99, "discount factor of the returns")
    batch_steps: int = param(2000, "minimum steps of completed episodes per policy update")
    baseline: str = param("value", "none | mean (batch mean of G) | value (learned V(s))")
    normalize_advantages: bool = param(True, "divide advantages by their batch std "
                                             "(a per-batch step size; centring is the baseline's)")
    entropy_coef: float = param(0.0, "weight of the entropy bonus in the actor loss")
    hidden_sizes: list = param([64, 64], "hidden layer widths of policy and value networks")
    value_updates: int = param(80, "gradient steps on V per batch (baseline=value)")
    value_batch_size: int = param(0, "minibatch size of those steps, drawn with replacement "
                                     "(0: the whole batch)")
    bootstrap_truncated: bool = param(True, "baseline=value: add γ·V(s_T) to the return of an "
                                            "episode cut by a time limit")
    max_grad_norm: float | None = param(0.5, "clip each network's gradient norm (None: off)")

    def validate(self) -> list[str]:
        """Problems with these values, one line each (empty when valid)."""
        problems = []
        for name in ("lr", "value_lr", "batch_steps"):
            if getattr(self, name) <= 0:
                problems.append(f"agent.{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.gamma <= 1.0:
            problems.append(f"agent.gamma must be in [0, 1], got {self.gamma}")
        if self.baseline not in BASELINES:
            problems.append(f"agent.baseline must be one of {', '.join(BASELINES)}, "
                            f"got {self.baseline!r}")
        if self.entropy_coef < 0:
            problems.append(f"agent.entropy_coef must be >= 0, got {self.entropy_coef}")
        if self.value_updates < 0 or self.value_batch_size < 0:
            problems.append("agent.value_updates and agent.value_batch_size must be >= 0")
        if self.baseline == "value" and self.value_updates == 0:
            problems.append("agent.baseline=value needs agent.value_updates > 0 (V would never "
                            "learn)")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            problems.append(f"agent.max_grad_norm must be > 0 or None, got {self.max_grad_norm}")
        if any(int(h) <= 0 for h in self.hidden_sizes):
            problems.append(f"agent.hidden_sizes must be positive, got {list(self.hidden_sizes)}")
        return problems

    def first_update(self) -> tuple[str, int]:
        """The setting, and its value in env steps, before which no update can run (the first
        batch needs at least this many steps of completed episodes)."""
        return "batch_steps", self.batch_steps


class Reinforce:
    """REINFORCE agent: policy, optional value baseline, episode storage, and the update.

    One policy gradient step per batch of at least ``batch_steps`` steps of completed episodes,
    then the storage is emptied (on-policy: a batch is used once).
    """

    def __init__(self, obs_dim: int, action_dim: int, discrete: bool, config: ReinforceConfig,
                 estimator, device: torch.device | str = "cpu", num_envs: int = 1,
                 action_low=None, action_high=None, action_start: int = 0,
                 nan_policy: str = "stop"):
        if getattr(estimator, "name", estimator) != "score":
            raise ValueError("REINFORCE is a score-function method: use estimator=score")
        self.config = config
        self.device = torch.device(device)
        self.discrete, self.action_dim, self.num_envs = discrete, action_dim, num_envs
        self.policy = Policy(obs_dim, action_dim, discrete, config.hidden_sizes, action_low,
                             action_high, action_start=action_start).to(self.device)
        self.actor_optimizer = make_adam(self.policy.parameters(), config.lr)
        self.value = self.value_optimizer = None
        if config.baseline == "value":
            self.value = mlp(obs_dim, 1, [int(h) for h in config.hidden_sizes]).to(self.device)
            self.value_optimizer = make_adam(self.value.parameters(), config.value_lr)
        # Room for one batch plus the episodes running when it completes; grows if needed.
        rows = 2 * -(-config.batch_steps // num_envs)
        self.storage = RolloutStorage(num_envs, obs_dim, action_dim, discrete, self.device,
                                      capacity=rows)
        self._last_action = self._last_pre_tanh = None  # act() → observe() hand-over
        # nan_policy=skip: optimizer steps skipped for a non-finite loss or gradient.
        self.skip_nonfinite = nan_policy == "skip"
        self.nan_skips = torch.zeros((), dtype=torch.long, device=self.device)

    def _value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.value(obs).squeeze(-1)

    def truncation_bootstrap(self):
        """V(s) to add γ·V(s_T) to episodes cut by a time limit, or None (module doc)."""
        if self.value is not None and self.config.bootstrap_truncated:
            return self._value
        return None

    # -- losses -----------------------------------------------------------------------------
    def log_prob(self, batch: EpisodeBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """log π_θ(a_t|s_t) of the stored actions, and the closed-form entropy where one exists
        (categorical) or None (tanh-Gaussian)."""
        dist = self.policy.distribution(batch.obs)
        if self.discrete:
            one_hot = F.one_hot(batch.action, self.action_dim).to(dist.logits.dtype)
            return dist.log_prob(one_hot), dist.entropy()
        return dist.log_prob_pre_tanh(batch.pre_tanh), None

    def baselined_return(self, batch: EpisodeBatch) -> torch.Tensor:
        """G_t − b(s_t) for the configured baseline (no gradient)."""
        returns = batch.returns
        if self.config.baseline == "mean":
            return returns - returns.mean()
        if self.config.baseline == "value":
            with torch.no_grad():
                return returns - self._value(batch.obs)
        return returns

    def advantage(self, batch: EpisodeBatch, raw: torch.Tensor | None = None) -> torch.Tensor:
        """The advantage the actor is weighted by: ``baselined_return``, divided by its batch
        std when ``normalize_advantages``."""
        adv = self.baselined_return(batch) if raw is None else raw
        if self.config.normalize_advantages:
            # Scaling only: subtracting the mean here too would turn baseline=none into mean.
            # Advantages (nearly) equal across the batch, e.g. baseline=none on a policy that
            # always earns the same return, have no spread to scale by: dividing by their ~0 std
            # would multiply them by up to 1e8. Those are left as they are.
            std = adv.std(correction=0)
            spread = std > 1e-6 * adv.abs().mean() + 1e-8
            adv = torch.where(spread, adv / std.clamp_min(1e-8), adv)
        return adv.detach()

    def actor_loss(self, batch: EpisodeBatch, advantage: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """−mean_t(A_t · log π(a_t|s_t)) − c·H: its gradient is the REINFORCE estimate (module
        doc). Returns the loss and the policy's entropy (estimate) for logging.

        The entropy bonus is exact for the categorical policy. The tanh-Gaussian has no closed
        form, so H = −E[log π(a)] is estimated on the stored actions, with its score-function
        gradient ∇H = −E[log π(a) ∇ log π(a)] (E[∇ log π] = 0), as for the return: no
        gradient through the action, in keeping with this agent's estimator.
        """
        if advantage is None:
            advantage = self.advantage(batch)
        log_prob, entropy = self.log_prob(batch)
        loss = -(advantage * log_prob).mean()
        if entropy is None:
            entropy_estimate = -log_prob.detach()
            entropy_surrogate = -(log_prob.detach() * log_prob)
        else:
            entropy_estimate = entropy_surrogate = entropy
        if self.config.entropy_coef > 0:
            loss = loss - self.config.entropy_coef * entropy_surrogate.mean()
        return loss, entropy_estimate.detach().mean()

    def value_loss(self, batch: EpisodeBatch) -> torch.Tensor:
        """Least-squares fit of V(s_t) to the Monte Carlo return G_t (Sutton & Barto, §13.4)."""
        return F.mse_loss(self._value(batch.obs), batch.returns)

    # -- one update -------------------------------------------------------------------------
    def _step(self, optimizer, loss: torch.Tensor, params) -> None:
        skipped = optimizer_step(optimizer, loss, params, self.skip_nonfinite,
                                 self.config.max_grad_norm)
        if skipped is not None:
            self.nan_skips += skipped

    def update(self, batch: EpisodeBatch) -> dict[str, torch.Tensor]:
        """One policy-gradient step on ``batch``, then ``value_updates`` steps on V."""
        raw = self.baselined_return(batch)  # with V as it was before seeing these returns
        actor_loss, entropy = self.actor_loss(batch, self.advantage(batch, raw))
        self._step(self.actor_optimizer, actor_loss, self.policy.parameters())
        # Before normalisation: how much of the returns' spread the baseline removed.
        metrics = {"losses/actor": actor_loss.detach(), "charts/entropy": entropy,
                   "charts/advantage_std": raw.std(correction=0),
                   "charts/return_std": batch.returns.std(correction=0),
                   "charts/batch_episodes": batch.done.sum()}
        if self.value is not None:
            n, size = batch.returns.shape[0], self.config.value_batch_size
            for _ in range(self.config.value_updates):
                part = batch
                if 0 < size < n:
                    idx = torch.randint(0, n, (size,), device=self.device)
                    part = EpisodeBatch(*(x[idx] if x is not None else None for x in batch))
                value_loss = self.value_loss(part)
                self._step(self.value_optimizer, value_loss, self.value.parameters())
            metrics["losses/value"] = value_loss.detach()
        if self.skip_nonfinite:
            metrics["charts/nan_skips"] = self.nan_skips.clone()
        return metrics

    # -- the runner's protocol --------------------------------------------------------------
    def act(self, obs: torch.Tensor, global_step: int) -> torch.Tensor:
        """A draw from the current policy: [-1, 1]^d (Box) or a long index (Discrete)."""
        with torch.no_grad():
            if self.discrete:
                action, u = self.policy.act(obs), None
            else:
                dist = self.policy.distribution(obs)
                u = dist.rsample_pre_tanh()
                action = dist.squash(u)
        self._last_action, self._last_pre_tanh = action, u
        return action

    def observe(self, obs: torch.Tensor, action: torch.Tensor, step) -> None:
        """Store one vector step (``step``: the env's StepResult). ``action`` must be the one
        the last ``act`` returned: its pre-tanh draw u is kept from there."""
        if action is not self._last_action:
            raise RuntimeError("Reinforce.observe needs the action returned by the last act() "
                               "(its pre-tanh draw is stored with it); REINFORCE is on-policy")
        self.storage.add(obs, action, step.reward, step.next_obs, step.terminated,
                         step.truncated, self._last_pre_tanh, done=getattr(step, "done", None))

    def train_step(self, global_step: int) -> dict[str, torch.Tensor] | None:
        """One update once ``batch_steps`` steps of completed episodes are stored and the
        episodes running at that moment have ended (``RolloutStorage``: no length bias), else
        None."""
        if not self.storage.batch_ready(self.config.batch_steps):
            return None
        metrics = self.update(self.storage.episodes(self.config.gamma,
                                                    self.truncation_bootstrap()))
        self.storage.clear()  # the policy changed: the batch and the running episodes are stale
        return metrics

    def envs_restarted(self) -> None:
        """The envs were reset outside the loop (a resume that could not rebuild their state):
        the episodes that were running will never complete."""
        self.storage.drop_running()

    def state_dict(self) -> dict:
        state = {"policy": self.policy.state_dict(),
                 "actor_optimizer": self.actor_optimizer.state_dict(),
                 "storage": self.storage.state_dict(), "nan_skips": self.nan_skips.clone()}
        if self.value is not None:
            state["value"] = self.value.state_dict()
            state["value_optimizer"] = self.value_optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        if self.value is not None:
            self.value.load_state_dict(state["value"])
            self.value_optimizer.load_state_dict(state["value_optimizer"])
        self.storage.load_state_dict(state["storage"])
        if "nan_skips" in state:
            self.nan_skips.copy_(state["nan_skips"])

