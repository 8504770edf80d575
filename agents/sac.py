"""Soft Actor-Critic for Box, Discrete and factorized discrete action spaces (MultiDiscrete,
MultiBinary, a Box cut into ``action_bins``), with a swappable actor estimator.

The actor minimises, per state s, the maximum-entropy objective (Haarnoja et al. 2018,
"Soft Actor-Critic Algorithms and Applications", eq. 7; Christodoulou 2019 for discrete):

    J_π(s) = E_{a ~ π(·|s)} [ α · log π(a|s) − min_i Q_i(s, a) ]

and *how its gradient is estimated* is the one config value ``estimator``:

* ``pathwise``: differentiate −Q through a reparameterized action. Box: the tanh-Gaussian
  ``rsample`` (SAC's own estimator). Discrete: a Gumbel-softmax sample.
* ``score``: likelihood-ratio gradient of the very same objective, no gradient through the
  action, with a leave-one-out baseline over ``num_samples`` actions per state.
* ``exact`` (Discrete): the all-action sum Σ_a π(a|s)(α log π(a|s) − Q(s, a)), discrete
  SAC's actor loss; zero sampling noise.
* ``straight_through``, ``gumbel_rao``, ``reinmax`` (discrete actions only): the critic sees
  the exact one-hot sample; they differ in the gradient sent back through it
  (``policies.estimators``).

How the critic sees a relaxed discrete action
---------------------------------------------
For Discrete spaces the critic outputs one value per action, ``q(s) ∈ R^|A|``, and a one-hot
or relaxed action ``y`` is valued ``Q(s, y) = ⟨y, q(s)⟩``: the linear extension of Q from the
simplex's vertices to its interior. Why:
  1. The critic is trained only on actions that were taken, i.e. on vertices. A network fed
     ``y`` as input would be queried at relaxed points it never saw; the linear extension
     needs no extrapolation.
  2. All three estimators then use one and the same critic, so a comparison isolates the
     estimator. ``exact`` needs a single forward pass.
  3. The pathwise gradient's only bias is the relaxation's own: E[softmax((l + g)/τ)] ≠
     softmax(l) (docs/estimator-facts.md §3), which shrinks as τ → 0.
Because ``Q`` is linear in ``y``, straight-through (``hard=True``) and soft samples give the
same actor gradient; ``hard`` changes only the reported loss value.

The entropy term α·log π is computed in closed form (−α·H(π)) for the categorical policy by
every estimator, and on the same sampled actions for the tanh-Gaussian (no closed form).

Factorized actions: k sub-actions of n_1..n_k values
----------------------------------------------------
MultiDiscrete(nvec), MultiBinary(k) (= k sub-actions of 2) and a Box with ``action_bins=N``
(= d sub-actions of N; Tang & Agrawal 2020) share one path:

* Policy: ``Independent(GumbelSoftmax(logits[B, k, n_max]), 1)``, shorter sub-actions padded
  with a zero-probability logit (``policies.policy``); every estimator accepts it.
* Critic: an MLP ensemble on [s, y], y the concatenated one-hots of the k sub-actions
  (Σ_j n_j inputs), like the Box critic. A q-head would need one output per *joint* action,
  Π_j n_j of them (11⁶ for HalfCheetah in 11 bins), so the linear extension ⟨y, q(s)⟩,
  which values a relaxed y without extrapolating, is not available: ``pathwise`` (soft
  Gumbel-softmax) queries the critic at relaxed points off the one-hot vertices it was
  trained on, and its bias is the relaxation's plus the critic's extrapolation.
  ``hard=True`` and the straight-through family feed it exact one-hots. ``exact``
  enumerates the joint set, Π_j n_j actions per state (never a padded value), and is
  refused above ``estimator.max_actions``.
* Entropy: in closed form per sub-action and summed, H(π) = Σ_j H(π_j) (the factors are
  independent given s), in the actor's objective, the critic's target and α's loss.
* Entropy target: ``target_entropy_scale · Σ_j log n_j``: the sum of each sub-action's share
  of its own maximum entropy log n_j, the Discrete rule applied sub-action by sub-action (it
  equals ``scale · log|A|`` for the joint set, |A| = Π_j n_j). One α holds the sum: the joint
  entropy is on target while one sub-action may sit above its share and another below. The
  fraction, 0.3 by default, matters: 0.98 of the maximum asks for a nearly uniform policy,
  which α can only hold by growing without bound on small action spaces (Christodoulou
  2019's 0.98·log|A| does this on CartPole). Box's −dim(A) does not carry over: it is a
  differential entropy, and a categorical's entropy is never negative.
* Critic target: V(s') = E_{a'~π}[min_i Q'_i(s', a')] + α·H(π(·|s')) with one sampled a' (as
  Box SAC samples) and the entropy exact; E[−log π(a')] = H, so only Q is sampled.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pathwise.agents.buffers import Batch, ReplayBuffer
from pathwise.agents.fields import param
from pathwise.agents.optim import make_adam, optimizer_step
from pathwise.policies.networks import QEnsemble
from pathwise.policies.policy import Policy


@dataclass
class TemperatureSchedule:
    """Gumbel-softmax temperature τ_t = max(end, start · exp(−decay · t)), piecewise constant
    over blocks of ``every`` env steps (Jang et al. 2017, §4.1)."""

    start: float = param(1.0, "Gumbel-softmax temperature at step 0")
    end: float = param(0.5, "lowest temperature the schedule reaches")
    decay: float = param(3e-5, "exponential decay rate per env step")
    every: int = param(1000, "recompute the temperature every this many env steps")

    def __call__(self, step: int) -> float:
        t = (step // self.every) * self.every
        return max(self.end, self.start * math.exp(-self.decay * t))


@dataclass
class SACConfig:
    """Soft Actor-Critic hyperparameters (defaults: Haarnoja et al. 2018, table 1)."""

    name: str = param("sac", "agent name")
    lr: float = param(3e-4, "Adam learning rate of actor and critics")
    alpha_lr: float = param(3e-4, "Adam learning rate of the entropy coefficient")
    gamma: float = param(0.99, "discount factor")
    tau: float = param(0.005, "Polyak averaging rate of the target critics")
    batch_size: int = param(256, "minibatch size per gradient update")
    buffer_size: int = param(1_000_000, "replay buffer capacity, in transitions")
    learning_starts: int = param(5000, "env steps of uniform random actions before updates")
    updates_per_step: float = param(1.0, "gradient updates per env transition collected")
    hidden_sizes: list = param([256, 256], "hidden layer widths of actor and critics")
    alpha: float = param(0.2, "initial entropy coefficient α")
    autotune: bool = param(True, "learn α to hold the policy's entropy at the target")
    target_entropy: float | None = param(None, "entropy target; None: −dim(A) for Box (of "
                                               "the action in [-1, 1]^dim, before rescaling "
                                               "to the env's bounds), "
                                               "target_entropy_scale·log|A| for Discrete, "
                                               "target_entropy_scale·Σ_j log n_j for k "
                                               "sub-actions of n_j values")
    target_entropy_scale: float = param(
        0.3, "discrete actions: entropy target as a fraction of the maximum log|A| (per "
             "sub-action for MultiDiscrete; 0.98 makes α blow up on small action spaces)")
    temperature: TemperatureSchedule = param(TemperatureSchedule(),
                                             "Gumbel-softmax temperature schedule")
    hard: bool = param(False, "discrete pathwise: straight-through (one-hot forward) samples")

    def validate(self) -> list[str]:
        """Problems with these values, one line each (empty when valid)."""
        problems = []
        for name in ("lr", "alpha_lr", "batch_size", "buffer_size", "updates_per_step", "alpha"):
            if getattr(self, name) <= 0:
                problems.append(f"agent.{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.gamma <= 1.0:
            problems.append(f"agent.gamma must be in [0, 1], got {self.gamma}")
        if not 0.0 < self.tau <= 1.0:
            problems.append(f"agent.tau must be in (0, 1], got {self.tau}")
        if self.learning_starts < 0:
            problems.append(f"agent.learning_starts must be >= 0, got {self.learning_starts}")
        if self.batch_size > self.buffer_size:
            problems.append(f"agent.batch_size={self.batch_size} exceeds "
                            f"agent.buffer_size={self.buffer_size}")
        elif self.batch_size > max(self.learning_starts, 1):
            problems.append(
                f"agent.batch_size={self.batch_size} is larger than the buffer holds at "
                f"agent.learning_starts={self.learning_starts}; raise learning_starts")
        if any(int(h) <= 0 for h in self.hidden_sizes):
            problems.append(f"agent.hidden_sizes must be positive, got {list(self.hidden_sizes)}")
        t = self.temperature
        if t.start <= 0 or t.end <= 0:
            problems.append(f"agent.temperature start and end must be > 0, got {t.start}, {t.end}")
        if t.decay < 0 or t.every <= 0:
            problems.append("agent.temperature.decay must be >= 0 and every > 0")
        if not 0.0 < self.target_entropy_scale <= 1.0:
            problems.append(f"agent.target_entropy_scale must be in (0, 1], "
                            f"got {self.target_entropy_scale}")
        return problems

    def first_update(self) -> tuple[str, int]:
        """The setting, and its value in env steps, before which no update runs."""
        return "learning_starts", self.learning_starts

    def space_problems(self, discrete: bool, action_dim: int,
                       nvec: list[int] | None = None) -> list[str]:
        """Settings that do not fit the env's action space, one line each.

        Box actions: the Gumbel-softmax settings (``hard``, ``temperature``) and
        ``target_entropy_scale`` apply to discrete actions only; set away from their defaults
        they would silently do nothing. Discrete actions: a ``target_entropy`` outside
        [0, log|A|] (factorized: [0, Σ_j log n_j] for sub-actions of ``nvec`` values), such
        as Box's −dim(A), is an entropy no categorical policy has, so α would run to 0 or
        grow without bound.
        """
        problems = []
        if not discrete:
            defaults = SACConfig()
            kind = f"this env has Box({action_dim},) actions"
            if self.hard:
                problems.append(f"agent.hard applies to Discrete actions only (straight-through "
                                f"Gumbel-softmax); {kind}")
            if self.temperature != defaults.temperature:
                problems.append(f"agent.temperature applies to Discrete actions only "
                                f"(Gumbel-softmax); {kind}")
            if self.target_entropy_scale != defaults.target_entropy_scale:
                problems.append(f"agent.target_entropy_scale applies to Discrete actions only; "
                                f"{kind} (set agent.target_entropy instead)")
        elif self.target_entropy is not None:
            top = max_entropy(action_dim, nvec)
            what = f"Σ_j log n_j = {top:.3g}], the entropies a policy over {list(nvec)} " \
                if nvec is not None else f"log {action_dim} = {top:.3g}], the entropies a " \
                                         f"Discrete({action_dim}) policy "
            if not 0.0 <= self.target_entropy <= top:
                problems.append(
                    f"agent.target_entropy={self.target_entropy} is outside [0, {what}can "
                    f"have; use agent.target_entropy_scale for discrete actions")
        return problems


def max_entropy(action_dim: int, nvec=None) -> float:
    """The largest entropy of a categorical policy: log n for Discrete(n), Σ_j log n_j for
    sub-actions of ``nvec`` values (each uniform)."""
    return sum(math.log(n) for n in nvec) if nvec is not None else math.log(action_dim)


# Estimators that need a categorical policy (they enumerate it, or take its one-hot samples).
DISCRETE_ESTIMATORS = ("exact", "straight_through", "gumbel_rao", "reinmax")


def joint_actions(action_dim: int, nvec=None) -> int:
    """Actions ``exact`` sums over per state: n for Discrete(n); Π n_j for sub-actions of
    ``nvec`` values (``policies.estimators.enumerate_actions``)."""
    return action_dim if nvec is None else math.prod(int(n) for n in nvec)


def check_estimator(estimator, discrete: bool, action_dim: int, nvec=None) -> None:
    """Refuse, in one line, an estimator that cannot train this action space: a discrete-only
    one on Box actions, or ``exact`` over more joint actions than its ``max_actions``."""
    name = estimator.name
    if name in DISCRETE_ESTIMATORS and not discrete:
        raise ValueError(f"estimator '{name}' needs discrete actions (Discrete, MultiDiscrete, "
                         f"MultiBinary, or a Box cut into action_bins=N); this env has "
                         f"Box({action_dim},) actions: use pathwise or score, or set action_bins")
    if name == "exact":
        count, limit = joint_actions(action_dim, nvec), estimator.max_actions
        if count > limit:
            k, plural = (0, "") if nvec is None else (len(nvec), "s" if len(nvec) > 1 else "")
            how = "" if nvec is None else (
                f" ({nvec[0]}^{k}: {k} sub-action{plural} of {nvec[0]} values)"
                if len(set(nvec)) == 1 else f" ({'·'.join(map(str, nvec))}: {k} sub-actions)")
            raise ValueError(f"estimator 'exact' would sum over {count:,} joint actions{how} "
                             f"per state, above estimator.max_actions={limit}: raise it or use "
                             f"a sampling estimator (pathwise, score, straight_through, "
                             f"gumbel_rao, reinmax)")


# compile_mode → the torch.compile mode that adds CUDA graphs to it (cudagraphs=true).
CUDAGRAPH_MODES = {"default": "reduce-overhead", "max-autotune-no-cudagraphs": "max-autotune"}


class SAC:
    """SAC agent: networks, optimisers, replay buffer, and the update.

    The update is split into named losses (``critic_loss``, ``actor_loss``, ``alpha_loss``),
    each callable alone; ``update(batch)`` applies one gradient step of each.
    """

    factorized_actions = True  # takes action_nvec: MultiDiscrete, MultiBinary, action_bins

    def __init__(self, obs_dim: int, action_dim: int, discrete: bool, config: SACConfig,
                 estimator, device: torch.device | str = "cpu", num_envs: int = 1,
                 action_low=None, action_high=None, action_start=0,
                 nan_policy: str = "stop", action_nvec=None, action_bins: int = 0):
        self.action_nvec = None if action_nvec is None else [int(n) for n in action_nvec]
        self.factorized = self.action_nvec is not None
        discrete = discrete or self.factorized
        check_estimator(estimator, discrete, action_dim, self.action_nvec)
        self.config, self.estimator = config, estimator
        self.device = torch.device(device)
        self.discrete, self.action_dim, self.num_envs = discrete, action_dim, num_envs
        self.policy = Policy(obs_dim, action_dim, discrete, config.hidden_sizes, action_low,
                             action_high, action_start=action_start,
                             action_nvec=self.action_nvec,
                             action_bins=action_bins).to(self.device)
        if self.factorized:  # Q(s, y) on the concatenated one-hots (module doc)
            self.critic = QEnsemble(obs_dim, sum(self.action_nvec), False, config.hidden_sizes)
            # Columns of the flattened (k, n_max) one-hots that are real values, not padding.
            real = ~self.policy.pad_mask.flatten()
            self._real_columns = real.nonzero().squeeze(-1).to(self.device) \
                if self.policy.padded else None
        else:
            self.critic = QEnsemble(obs_dim, action_dim, discrete, config.hidden_sizes)
        self.critic = self.critic.to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(config.alpha), device=self.device,
                                      requires_grad=config.autotune)
        self.actor_optimizer = make_adam(self.policy.parameters(), config.lr)
        self.critic_optimizer = make_adam(self.critic.parameters(), config.lr)
        self.alpha_optimizer = make_adam([self.log_alpha], config.alpha_lr) \
            if config.autotune else None
        if config.target_entropy is not None:
            self.target_entropy = float(config.target_entropy)
        elif discrete:  # per sub-action for factorized actions (module doc)
            self.target_entropy = config.target_entropy_scale * max_entropy(action_dim,
                                                                            self.action_nvec)
        else:
            self.target_entropy = -float(action_dim)
        self.buffer = ReplayBuffer(config.buffer_size, obs_dim, action_dim, discrete, self.device,
                                   factorized=self.factorized)
        # Parameter lists, made once: a module's .parameters() walks its submodules each call.
        self._critic_params = list(self.critic.parameters())
        self._target_params = list(self.critic_target.parameters())
        self._policy_params = list(self.policy.parameters())
        self.temperature = config.temperature(0)
        # The same temperature as a device tensor, which the losses read: a compiled loss then
        # takes it as an input instead of specialising (recompiling) on each new value.
        self._temperature = torch.tensor(self.temperature, device=self.device)
        self.compiled = False  # see compile()
        self._cudagraphs = False
        self._update_credit = 0.0  # fractional updates owed (updates_per_step may be < 1)
        # nan_policy=skip: optimizer steps skipped for a non-finite loss or gradient, counted
        # on the device (agents.guards).
        self.skip_nonfinite = nan_policy == "skip"
        self.nan_skips = torch.zeros((), dtype=torch.long, device=self.device)

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.detach().exp()

    def _dist(self, obs):
        if self.discrete:
            return self.policy.distribution(obs, self._temperature, self.config.hard)
        return self.policy.distribution(obs)

    def _set_temperature(self, value: float) -> None:
        if value != self.temperature:
            self.temperature = value
            self._temperature.fill_(value)

    def critic_input(self, y: torch.Tensor) -> torch.Tensor:
        """Factorized actions: one-hot or relaxed sub-actions (..., k, n_max) → the critic's
        action input (..., Σ_j n_j), the concatenated one-hots without the padding."""
        flat = y.flatten(-2)
        return flat if self._real_columns is None else flat[..., self._real_columns]

    def _one_hot(self, action: torch.Tensor) -> torch.Tensor:
        """Stored sub-action indices (B, k) → one-hots (B, k, n_max)."""
        return F.one_hot(action, self.policy.max_categories).to(torch.float32)

    # -- losses -----------------------------------------------------------------------------
    def critic_loss(self, batch: Batch) -> torch.Tensor:
        """Soft Bellman residual (Haarnoja et al. 2018, eq. 5) of each critic, with the clipped
        double-Q target. ``(1 − terminated)`` cuts bootstrapping at terminal states only: a
        time-limit truncation still bootstraps from ``next_obs``."""
        gamma, alpha = self.config.gamma, self.alpha
        with torch.no_grad():
            next_dist = self._dist(batch.next_obs)
            if self.factorized:
                # One sampled a' for Q; the entropy exact (module doc).
                y_next = self.critic_input(next_dist.sample())
                q_next = self.critic_target(batch.next_obs, y_next).min(0).values
                v_next = q_next + alpha * next_dist.entropy()
            elif self.discrete:
                # Exact expectation over next actions (Christodoulou 2019, eq. 10).
                q_next = self.critic_target(batch.next_obs).min(0).values
                v_next = (next_dist.probs * (q_next - alpha * next_dist.logits)).sum(-1)
            else:
                next_action, next_log_prob = next_dist.sample_and_log_prob()
                q_next = self.critic_target(batch.next_obs, next_action).min(0).values
                v_next = q_next - alpha * next_log_prob
            target = batch.reward + gamma * (1.0 - batch.terminated) * v_next
        if self.factorized:
            q = self.critic(batch.obs, self.critic_input(self._one_hot(batch.action)))  # (n, B)
        elif self.discrete:
            q_all = self.critic(batch.obs)  # (n, B, |A|)
            index = batch.action.view(1, -1, 1).expand(q_all.shape[0], -1, 1)
            q = q_all.gather(-1, index).squeeze(-1)
        else:
            q = self.critic(batch.obs, batch.action)  # (n, B)
        return 0.5 * ((q - target) ** 2).mean(-1).sum()

    def actor_cost(self, obs: torch.Tensor):
        """``(π(·|s), cost)`` for the actor objective J(s) = E_a[α log π(a|s) − min_i Q_i(s, a)]:
        the cost is the −min_i Q_i part (the estimator adds α log π), per state.

        The critic enters with detached parameters (``frozen=True``): the actor's loss sends
        no gradient into the critic, and its backward pass computes no critic weight gradient.
        Shared by ``actor_loss`` and by ``agents.diagnostics``, so that the gradient statistics
        are measured on exactly the objective the actor is trained on.
        """
        dist = self._dist(obs)
        if self.factorized:
            def cost(y):  # y: (..., B, k, n_max) one-hot or relaxed sub-actions
                return -self.critic(obs, self.critic_input(y), frozen=True).min(0).values
        elif self.discrete:
            q = self.critic(obs, frozen=True).min(0).values  # (B, |A|)

            def cost(y):  # y: (..., B, |A|) one-hot or relaxed
                return -(y * q).sum(-1)
        else:
            def cost(a):  # a: (..., B, A)
                return -self.critic(obs, a, frozen=True).min(0).values
        return dist, cost

    def actor_loss(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """E_a[α log π(a|s) − min_i Q_i(s, a)] through the configured estimator.

        Returns the loss and the policy's entropy (estimate), for ``alpha_loss``.
        """
        dist, cost = self.actor_cost(obs)
        if self.discrete:
            entropy = dist.entropy().detach()
        else:
            with torch.no_grad():
                entropy = -dist.sample_and_log_prob()[1]
        loss = self.estimator(dist, cost, alpha=self.alpha).mean()
        return loss, entropy.mean()

    def alpha_loss(self, entropy: torch.Tensor) -> torch.Tensor:
        """Temperature loss log α · (H(π) − H̄) (Haarnoja et al. 2018, eq. 18, with α = exp of a
        free parameter): gradient descent lowers α when the entropy exceeds the target."""
        return self.log_alpha * (entropy.detach() - self.target_entropy)

    # -- one gradient step ------------------------------------------------------------------
    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        if self._cudagraphs:  # a new iteration: the graphs may reuse the last one's memory
            torch.compiler.cudagraph_mark_step_begin()
        critic_loss = self.critic_loss(batch)
        self._step(self.critic_optimizer, critic_loss, self._critic_params)

        actor_loss, entropy = self.actor_loss(batch.obs)
        self._step(self.actor_optimizer, actor_loss, self._policy_params)

        metrics = {"losses/critic": critic_loss.detach(), "losses/actor": actor_loss.detach(),
                   "charts/entropy": entropy}
        if self.alpha_optimizer is not None:
            alpha_loss = self.alpha_loss(entropy)
            self._step(self.alpha_optimizer, alpha_loss, [self.log_alpha])
            metrics["losses/alpha"] = alpha_loss.detach()
        if self._cudagraphs:  # outputs of a CUDA graph are overwritten by its next replay
            metrics = {k: v.clone() for k, v in metrics.items()}
        metrics["charts/alpha"] = self.alpha
        if self.skip_nonfinite:
            metrics["charts/nan_skips"] = self.nan_skips.clone()

        with torch.no_grad():  # Polyak averaging: θ' ← θ' + τ(θ − θ')
            torch._foreach_lerp_(self._target_params, self._critic_params, self.config.tau)
        return metrics

    def compile(self, mode: str = "default", cudagraphs: bool = False) -> None:
        """Wrap the losses (``critic_loss``, ``actor_loss``, ``alpha_loss``) in
        ``torch.compile``, forward and backward; the optimizer steps (fused Adam: one kernel
        each) and the Polyak update (one foreach kernel) stay eager.

        ``cudagraphs``: also capture the compiled graphs as CUDA graphs (inductor's CUDA graph
        trees, what ``mode="reduce-overhead"`` does): each loss and its backward replay as one
        launch. CUDA only. Before each update the step is marked as a new iteration, and the
        metrics are cloned out of the graphs' memory, which the next replay overwrites.

        Each agent compiles its own graphs (the first update takes tens of seconds); torch
        recompiles a function for at most 8 agents per process (``torch._dynamo`` config
        ``recompile_limit``) and runs later ones eagerly. Whether compiling pays depends on
        the device and sizes: README, Speed, has the measurements.
        """
        if cudagraphs:
            if self.device.type != "cuda":
                raise ValueError(f"cudagraphs needs a CUDA device; this agent is on "
                                 f"{self.device.type}")
            mode = CUDAGRAPH_MODES.get(mode, mode)
        self.critic_loss = torch.compile(self.critic_loss, mode=mode)
        self.actor_loss = torch.compile(self.actor_loss, mode=mode)
        self.alpha_loss = torch.compile(self.alpha_loss, mode=mode)
        self.compiled, self._cudagraphs = True, cudagraphs

    def _step(self, optimizer, loss: torch.Tensor, params) -> None:
        skipped = optimizer_step(optimizer, loss, params, self.skip_nonfinite)
        if skipped is not None:
            self.nan_skips += skipped

    # -- the runner's protocol --------------------------------------------------------------
    def act(self, obs: torch.Tensor, global_step: int) -> torch.Tensor:
        """Exploration action in the policy's space: uniform before ``learning_starts``."""
        if global_step < self.config.learning_starts:
            n = obs.shape[0]
            if self.factorized:  # each sub-action uniform: floor(U·n_j)
                nvec = torch.tensor(self.action_nvec, device=self.device)
                u = torch.rand(n, self.action_dim, device=self.device)
                return torch.minimum((u * nvec).long(), nvec - 1)
            if self.discrete:
                return torch.randint(0, self.action_dim, (n,), device=self.device)
            return torch.rand(n, self.action_dim, device=self.device) * 2.0 - 1.0
        return self.policy.act(obs)

    def observe(self, obs: torch.Tensor, action: torch.Tensor, step) -> None:
        """Store the transitions of one vector step (``step``: the env's StepResult)."""
        self.buffer.add(obs, action, step.reward, step.next_obs, step.terminated)

    def train_step(self, global_step: int) -> dict[str, torch.Tensor] | None:
        """Updates owed for the transitions just collected, once past ``learning_starts``."""
        self._set_temperature(self.config.temperature(global_step))
        if global_step < self.config.learning_starts:
            return None
        self._update_credit += self.config.updates_per_step * self.num_envs
        metrics = None
        while self._update_credit >= 1.0:
            self._update_credit -= 1.0
            metrics = self.update(self.buffer.sample(self.config.batch_size))
        if metrics is not None and self.discrete:
            metrics["charts/temperature"] = torch.tensor(self.temperature)
        return metrics

    def state_dict(self) -> dict:
        state = {
            "policy": self.policy.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "buffer": self.buffer.state_dict(),
            "temperature": self.temperature,
            "update_credit": self._update_credit,
            "nan_skips": self.nan_skips.clone(),
        }
        if self.alpha_optimizer is not None:
            state["alpha_optimizer"] = self.alpha_optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        if self.alpha_optimizer is not None:
            self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])
        self.buffer.load_state_dict(state["buffer"])
        self._set_temperature(float(state["temperature"]))
        self._update_credit = float(state["update_credit"])
        if "nan_skips" in state:
            self.nan_skips.copy_(state["nan_skips"])
