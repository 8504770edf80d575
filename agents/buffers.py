"""Storage that lives on the run's device: a replay buffer (SAC) and episode storage
(REINFORCE). Data crosses host↔device once, at the env boundary; everything after is
tensor indexing on the device."""

from __future__ import annotations

from typing import NamedTuple

import torch


class Batch(NamedTuple):
    obs: torch.Tensor  # (B, obs_dim)
    action: torch.Tensor  # (B, action_dim) float (Box), (B,) long (Discrete), (B, k) long
    #                       (factorized: MultiDiscrete, MultiBinary, action_bins)
    reward: torch.Tensor  # (B,)
    next_obs: torch.Tensor  # (B, obs_dim): the true successor, never a reset observation
    terminated: torch.Tensor  # (B,) float: 1 where the episode ended in a terminal state


class ReplayBuffer:
    """A preallocated ring buffer of transitions.

    Only ``terminated`` is stored, not ``truncated``: a transition cut by a time limit is an
    ordinary transition whose target bootstraps from ``next_obs`` (Pardo et al. 2018, "Time
    Limits in Reinforcement Learning").
    """

    def __init__(self, capacity: int, obs_dim: int, action_dim: int, discrete: bool,
                 device: torch.device | str = "cpu", factorized: bool = False):
        self.capacity = int(capacity)
        self.device = torch.device(device)
        # torch.empty, not zeros: rows are read only once written (indices < size), and on the
        # CPU untouched pages of a large allocation cost no memory, so a 1M-transition buffer
        # grows in resident memory as it fills instead of all at once.
        f32 = dict(dtype=torch.float32, device=self.device)
        self.obs = torch.empty(self.capacity, obs_dim, **f32)
        self.next_obs = torch.empty(self.capacity, obs_dim, **f32)
        if factorized:  # k sub-action indices per transition
            self.action = torch.empty(self.capacity, action_dim, dtype=torch.long,
                                      device=self.device)
        elif discrete:
            self.action = torch.empty(self.capacity, dtype=torch.long, device=self.device)
        else:
            self.action = torch.empty(self.capacity, action_dim, **f32)
        self.reward = torch.empty(self.capacity, **f32)
        self.terminated = torch.empty(self.capacity, **f32)
        self.pos = 0  # next row to write
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs, action, reward, next_obs, terminated) -> None:
        """Store a batch of transitions (one per env), wrapping around when full."""
        n = obs.shape[0]
        if self.pos + n <= self.capacity:  # the usual case: one contiguous block of rows
            idx = slice(self.pos, self.pos + n)
        else:
            idx = (self.pos + torch.arange(n, device=self.device)) % self.capacity
        self.obs[idx] = obs
        self.action[idx] = action
        self.reward[idx] = reward
        self.next_obs[idx] = next_obs
        self.terminated[idx] = terminated.to(torch.float32)
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        idx = torch.randint(0, self.size, (batch_size,), device=self.device, generator=generator)
        return Batch(self.obs[idx], self.action[idx], self.reward[idx], self.next_obs[idx],
                     self.terminated[idx])

    _FIELDS = ("obs", "action", "reward", "next_obs", "terminated")

    def state_dict(self) -> dict:
        """The filled part of the buffer and its position (for exact resume)."""
        state = {name: getattr(self, name)[: self.size].clone() for name in self._FIELDS}
        state.update(pos=self.pos, size=self.size, capacity=self.capacity)
        return state

    def load_state_dict(self, state: dict) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(
                f"replay buffer capacity {state['capacity']} in the checkpoint differs from "
                f"the configured {self.capacity}"
            )
        self.size, self.pos = int(state["size"]), int(state["pos"])
        for name in self._FIELDS:
            getattr(self, name)[: self.size] = state[name].to(self.device)


class EpisodeBatch(NamedTuple):
    """Every step of a set of completed episodes, episode after episode.

    Steps are ordered env by env, and in time within an env, so each episode's steps are
    contiguous and in order; ``done`` marks the last step of each episode.
    """

    obs: torch.Tensor  # (B, obs_dim)
    action: torch.Tensor  # (B, action_dim) float in [-1, 1] (Box) or (B,) long (Discrete)
    pre_tanh: torch.Tensor | None  # (B, action_dim): the Gaussian draw u, a = tanh(u) (Box)
    reward: torch.Tensor  # (B,) as the env gave it
    returns: torch.Tensor  # (B,) reward-to-go G_t (with any truncation bootstrap folded in)
    done: torch.Tensor  # (B,) bool: the episode's last step (terminated or truncated)


class RolloutStorage:
    """On-policy storage of whole episodes from ``num_envs`` vector envs (REINFORCE).

    Tensors are time-major, ``(rows, num_envs, ...)``, one row per vector step, preallocated on
    the device; ``episodes()`` returns only the steps of *completed* episodes and ``clear()``
    empties the storage after each policy update.

    Staleness. REINFORCE's gradient E[G_t ∇ log π_θ(a_t|s_t)] is unbiased only for episodes
    drawn from π_θ. The envs are not reset at an update, so an episode that is running when
    the policy changes has its first part from the old policy: ``clear()`` marks such an env
    *stale*, its steps are recorded but masked out (``valid`` is False), and the env becomes
    fresh again at its next episode boundary. An env that ended an episode on the very step
    of the update starts its next episode under the new policy and is not stale.

    Which episodes make a batch. Taking the episodes *completed* when enough steps are in
    would favour short ones with several envs: the episode an env is running at that moment
    is more likely a long one (the inspection paradox of renewal processes), and it would be
    left out. So ``close()`` (called once ``batch_steps`` completed steps are in) makes each
    env's batch the episodes it *started* before that moment: the running ones are finished
    and kept, the ones started after it are not recorded, and ``ready`` says when the last
    running one has ended. Whether an env's k-th episode starts before a given time depends
    only on its earlier episodes (a stopping time), so by Wald's identity the batch's sum over
    episodes is unbiased for E[#episodes]·E[per-episode term], whatever the lengths. With one
    env the two rules coincide.

    Truncation. An episode cut by a time limit is complete here, but its return is missing
    the tail beyond the cut. ``episodes(gamma, bootstrap)`` can add γ·V(s_T) at such steps
    (Pardo et al. 2018, "Time Limits in Reinforcement Learning"); without it the tail is
    taken as zero.

    Capacity grows by doubling when a batch needs more rows than are allocated (an episode
    longer than expected); it never shrinks, so this happens a few times at most.
    """

    def __init__(self, num_envs: int, obs_dim: int, action_dim: int, discrete: bool,
                 device: torch.device | str = "cpu", capacity: int = 1024,
                 factorized: bool = False):
        self.num_envs, self.obs_dim, self.action_dim = int(num_envs), int(obs_dim), int(action_dim)
        self.discrete, self.factorized = discrete, factorized
        self.device = torch.device(device)
        self._allocate(max(int(capacity), 1))
        self.pos = 0  # next row to write
        # Host-side bookkeeping, so that deciding when to update costs no device sync.
        self.fresh = [True] * self.num_envs  # is the env's running episode being recorded?
        self.running = [0] * self.num_envs  # recorded steps of each env's running episode
        self.last_done = [-1] * self.num_envs  # row of each env's last recorded episode end
        self.completed_steps = 0  # steps of completed, fresh episodes: what a batch holds
        self.closing = False  # after close(): episodes that start now are not recorded
        self.just_done = [True] * self.num_envs  # did the env's last step end an episode?

    _FIELDS = ("obs", "action", "pre_tanh", "reward", "next_obs", "terminated", "truncated",
               "valid")

    def _allocate(self, rows: int) -> None:
        f32 = dict(dtype=torch.float32, device=self.device)
        shape = (rows, self.num_envs)
        self.obs = torch.zeros(*shape, self.obs_dim, **f32)
        # next_obs is what a truncated episode's return is bootstrapped from.
        self.next_obs = torch.zeros(*shape, self.obs_dim, **f32)
        if self.discrete:  # an index, or k sub-action indices (factorized)
            action_shape = (*shape, self.action_dim) if self.factorized else shape
            self.action = torch.zeros(action_shape, dtype=torch.long, device=self.device)
            self.pre_tanh = None
        else:
            self.action = torch.zeros(*shape, self.action_dim, **f32)
            self.pre_tanh = torch.zeros(*shape, self.action_dim, **f32)
        self.reward = torch.zeros(shape, **f32)
        self.terminated = torch.zeros(shape, dtype=torch.bool, device=self.device)
        self.truncated = torch.zeros(shape, dtype=torch.bool, device=self.device)
        self.valid = torch.zeros(shape, dtype=torch.bool, device=self.device)
        self.capacity = rows

    def _grow(self) -> None:
        old = {name: getattr(self, name) for name in self._FIELDS}
        self._allocate(2 * self.capacity)
        for name, tensor in old.items():
            if tensor is not None:
                getattr(self, name)[: tensor.shape[0]] = tensor

    def __len__(self) -> int:
        """Steps of completed fresh episodes: the size of the next batch."""
        return self.completed_steps

    def add(self, obs, action, reward, next_obs, terminated, truncated, pre_tanh=None,
            done: list[bool] | None = None) -> None:
        """Store one vector step (one transition per env). ``done``: terminated | truncated
        per env as host booleans, when the caller has them (else read from the tensors)."""
        if self.pos == self.capacity:
            self._grow()
        t = self.pos
        self.obs[t] = obs
        self.action[t] = action
        if self.pre_tanh is not None:
            if pre_tanh is None:
                raise ValueError("RolloutStorage: Box actions need their pre-tanh draw u")
            self.pre_tanh[t] = pre_tanh
        self.reward[t] = reward
        self.next_obs[t] = next_obs
        self.terminated[t] = terminated
        self.truncated[t] = truncated
        # Host → device without waiting for the device (pageable memory, non_blocking).
        self.valid[t] = torch.tensor(self.fresh).to(self.device, non_blocking=True)
        if done is None:  # a device→host read: which envs ended an episode
            done = (terminated | truncated).tolist()
        for e in range(self.num_envs):
            if self.fresh[e]:
                self.running[e] += 1
                if done[e]:
                    self.completed_steps += self.running[e]
                    self.last_done[e] = t
            if done[e]:
                # Whatever this episode was, the env's next one starts under the current
                # policy: recorded, unless the batch is closing (class doc).
                self.running[e] = 0
                self.fresh[e] = not self.closing
            self.just_done[e] = bool(done[e])
        self.pos += 1

    def close(self) -> None:
        """Stop recording new episodes: the batch is the completed episodes plus the running
        fresh ones, once those end (``ready``). See the class doc for why."""
        self.closing = True
        for e in range(self.num_envs):
            if self.running[e] == 0:  # nothing recorded yet: this episode starts after closing
                self.fresh[e] = False

    @property
    def ready(self) -> bool:
        """Closed, and every episode started before closing has ended."""
        return self.closing and not any(self.fresh)

    def batch_ready(self, min_steps: int) -> bool:
        """Whether a batch can be taken: closes the storage once ``min_steps`` steps of
        completed episodes are in, then waits until it is ``ready``."""
        if not self.closing and self.completed_steps >= min_steps:
            self.close()
        return self.ready

    def completed_mask(self) -> torch.Tensor:
        """(rows, num_envs) bool: steps of completed fresh episodes, for rows [0, pos)."""
        rows = torch.arange(self.pos, device=self.device).unsqueeze(1)
        last = torch.tensor(self.last_done, device=self.device)
        return self.valid[: self.pos] & (rows <= last)

    def reward_to_go(self, gamma: float, bootstrap=None) -> torch.Tensor:
        """G_t = Σ_{k≥t} γ^{k−t} r_k within each episode, for every stored row: (pos, num_envs).

        Computed backwards, G_t = r_t + γ·(1 − done_t)·G_{t+1} (Sutton & Barto 2018, eq. 3.9),
        one vectorised step per stored row. A done row starts a new sum, so a completed
        episode's returns never see the rows after it (the running episode, or the next).
        With ``bootstrap`` (a function of next_obs), a truncated, non-terminal last step gets
        r_T + γ·V(s_{T+1}): the estimated tail the time limit cut off.
        """
        n = self.pos
        reward = self.reward[:n]
        done = (self.terminated[:n] | self.truncated[:n]).to(reward.dtype)
        if bootstrap is not None:
            cut = self.truncated[:n] & ~self.terminated[:n] & self.completed_mask()
            if bool(cut.any()):
                reward = reward.clone()
                with torch.no_grad():
                    reward[cut] += gamma * bootstrap(self.next_obs[:n][cut]).to(reward.dtype)
        returns = torch.empty_like(reward)
        running = torch.zeros(self.num_envs, dtype=reward.dtype, device=self.device)
        for t in range(n - 1, -1, -1):
            running = reward[t] + gamma * (1.0 - done[t]) * running
            returns[t] = running
        return returns

    def episodes(self, gamma: float, bootstrap=None) -> EpisodeBatch:
        """All steps of the completed fresh episodes with their reward-to-go (see class doc)."""
        returns = self.reward_to_go(gamma, bootstrap)
        # Env-major order: transposing (rows, envs) → (envs, rows) makes each episode contiguous.
        mask = self.completed_mask().T

        def select(x: torch.Tensor) -> torch.Tensor:
            return x[: self.pos].transpose(0, 1)[mask]

        done = self.terminated | self.truncated
        return EpisodeBatch(select(self.obs), select(self.action),
                            None if self.pre_tanh is None else select(self.pre_tanh),
                            select(self.reward), returns.T[mask], select(done))

    def clear(self) -> None:
        """Forget every stored step; call after each policy update. An env whose last step
        was not an episode end is mid-episode under the old policy: stale until it ends."""
        self.fresh = list(self.just_done)
        self.running = [0] * self.num_envs
        self.last_done = [-1] * self.num_envs
        self.pos = 0
        self.completed_steps = 0
        self.closing = False

    def drop_running(self) -> None:
        """Forget the steps of running episodes: the envs were reset (a resume whose env state
        could not be rebuilt), so those episodes will never complete. Completed episodes stay;
        every env starts fresh (or, if the batch is closing, records nothing more: it is
        ready)."""
        self.valid[: self.pos] &= self.completed_mask()
        self.pos = max(self.last_done) + 1
        self.fresh = [not self.closing] * self.num_envs
        self.running = [0] * self.num_envs
        self.just_done = [True] * self.num_envs

    def state_dict(self) -> dict:
        """Every stored row, running episodes included, with the host-side bookkeeping (for
        an exact resume; `drop_running` after loading when the envs restart instead)."""
        state = {name: getattr(self, name)[: self.pos].clone() for name in self._FIELDS
                 if getattr(self, name) is not None}
        state.update(pos=self.pos, fresh=list(self.fresh), running=list(self.running),
                     last_done=list(self.last_done), completed_steps=self.completed_steps,
                     closing=self.closing, just_done=list(self.just_done),
                     num_envs=self.num_envs)
        return state

    def load_state_dict(self, state: dict) -> None:
        if state["num_envs"] != self.num_envs:
            raise ValueError(f"rollout storage for {state['num_envs']} envs in the checkpoint; "
                             f"this run has num_envs={self.num_envs}")
        rows = state["obs"].shape[0]
        while self.capacity < rows:
            self._grow()
        for name in self._FIELDS:
            if getattr(self, name) is not None:
                getattr(self, name)[:rows] = state[name].to(self.device)
        self.pos = rows
        self.last_done = [int(t) for t in state["last_done"]]
        self.completed_steps = int(state["completed_steps"])
        # A checkpoint from before running episodes were saved holds completed ones only.
        self.fresh = [bool(f) for f in state.get("fresh", [True] * self.num_envs)]
        self.running = [int(n) for n in state.get("running", [0] * self.num_envs)]
        self.closing = bool(state.get("closing", False))
        self.just_done = [bool(d) for d in state.get("just_done",
                                                      [n == 0 for n in self.running])]
