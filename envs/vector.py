"""The base of pathwise's torch envs: a `gymnasium.vector.VectorEnv` whose sub-envs are the rows
of one (num_envs, state_dim) tensor, stepped by one set of kernels on the env's device.

A task subclass supplies the physics as pure functions of tensors,

    transition(state, action) -> (next_state, reward, terminated)   one step, no autoreset
    observe(state) -> obs

plus its spaces and reset box, and `TorchEnv` adds what a Gymnasium vector env does
around them: time limits, SAME_STEP autoreset, seeding, and a checkpointable `state_dict`.
`transition` and `observe` are public so that a model-based trainer (APG, SHAC) can roll out
the true dynamics from any batch of states without touching the env's own state.

The step's contract, for every task:

- tensors in and out, on `env.device`, floats in `env.dtype` (float32 by default, float64 for
  gradient checks); `reward` (num_envs,), `terminated` and `truncated` (num_envs,) bool;
- `truncated` is set at the step that reaches `max_episode_steps` (Gymnasium's `TimeLimit`:
  it can be set together with `terminated`);
- SAME_STEP autoreset: where an episode ended, `obs` is already the next episode's first
  observation, and `info` carries the ended one's end:

      info["final_obs"]    (num_envs, obs_dim) the observation this step reached, every row
                           (equal to `obs` where the episode goes on): the true successor
      info["final_state"]  (num_envs, state_dim) the state this step reached, every row
      info["_final_obs"]   (num_envs,) bool: which rows ended (terminated | truncated)

  Gymnasium's own vector envs hand `final_obs` as an object array filled only where an episode
  ended; here it is a full tensor, so `info["final_obs"]` can be stored as next_obs as is;
- differentiable: `obs`, `reward`, `final_obs` and `final_state` carry gradients to the
  action and to the state (`env.state = s` with `s.requires_grad`) where the physics is smooth
  (each task's docstring says where it is not; a reward that is a constant, as CartPole's,
  has no graph at all). No gradient crosses an autoreset: the reset rows of `obs` and
  `env.state` are chosen by `torch.where`, whose gradient to the branch it did not pick is
  zero. The env keeps the graph of its state from step to step, for backpropagation through
  time; a trainer that feeds it actions that require grad cuts the graph at the end of each
  window with `env.state = env.state.detach()` (or it grows without end);
- no host sync and no Python loop over envs inside `step`: ends are handled by `torch.where`,
  and a fresh reset state is drawn for every row at every step (cheap next to the physics) so
  that which rows ended never has to be read on the host.

Randomness: one `torch.Generator` on the env's device draws for the whole batch;
`reset(seed=s)` seeds it through `numpy.random.SeedSequence(s)` (so seeds s and s+1 give
unrelated streams, unlike `seed + i` schemes). Draws are reproducible for a given (seed,
num_envs, device type); the CPU and CUDA generators are different algorithms, so the same
seed draws differently on each.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

__all__ = ["STATE_DICT_FORMAT", "TorchEnv", "as_dtype"]

# Version of the `state_dict` layout; bump it when the keys change.
STATE_DICT_FORMAT = 1

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def as_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """torch.float32 / torch.float64 from a dtype or its name (configs pass strings)."""
    if isinstance(dtype, str):
        name = dtype.removeprefix("torch.")
        if name not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        return _DTYPES[name]
    if dtype not in _DTYPES.values():
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    return dtype


def _seed_from(seed: int | None) -> int:
    # SeedSequence hashes the seed (or fresh OS entropy for None) into well-mixed bits, so
    # neighbouring seeds give unrelated generator states.
    return int(np.random.SeedSequence(seed).generate_state(1, np.uint64)[0] >> np.uint64(1))


class TorchEnv(VectorEnv):
    """A batch of `num_envs` copies of one task as rows of tensors on `device`.

    Subclasses set `state_dim`, `default_max_episode_steps` and `reset_low`/`reset_high` (the
    box the reset state is drawn from uniformly, as Gymnasium's envs draw it) as class
    attributes, end their `__init__` with `_finish_init(single observation space, single action
    space)`, implement `transition` and `observe`, and may override `_reset_box` to read reset
    options.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    state_dim: int
    default_max_episode_steps: int | None = None
    reset_low: tuple[float, ...]
    reset_high: tuple[float, ...]

    def __init__(
        self,
        num_envs: int = 1,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
    ):
        """`max_episode_steps=None` keeps the task's Gymnasium time limit
        (`default_max_episode_steps`); `gymnasium.make_vec` passes the registered one."""
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if render_mode is not None:
            raise ValueError(f"{type(self).__name__} does not render (render_mode={render_mode!r})")
        if max_episode_steps is None:
            max_episode_steps = self.default_max_episode_steps
        if max_episode_steps is not None and (
            isinstance(max_episode_steps, bool)
            or not isinstance(max_episode_steps, int)
            or max_episode_steps < 1
        ):
            raise ValueError(f"max_episode_steps must be a positive integer, got "
                             f"{max_episode_steps!r}")
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.dtype = as_dtype(dtype)
        self.np_dtype = np.float64 if self.dtype == torch.float64 else np.float32  # of spaces
        self._dtype_name = str(self.dtype).removeprefix("torch.")
        self.max_episode_steps = max_episode_steps
        self.render_mode = None
        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(_seed_from(None))
        self._state: torch.Tensor | None = None
        self._elapsed = torch.zeros(num_envs, dtype=torch.long, device=self.device)

    def _finish_init(self, observation_space: spaces.Box, action_space: spaces.Space) -> None:
        """Set the single and batched spaces (numpy spaces, as Gymnasium defines them; the
        tensors the env hands out lie in them)."""
        self.single_observation_space = observation_space
        self.single_action_space = action_space
        self.observation_space = batch_space(observation_space, self.num_envs)
        self.action_space = batch_space(action_space, self.num_envs)
        # The autoreset's box, as tensors once: building them from Python floats every step
        # would be a host-to-device copy per step on a GPU.
        self._default_box = tuple(self._tensor(bound) for bound in self._reset_box(None))
        self._discrete = isinstance(action_space, spaces.Discrete)
        if self._discrete:
            self._action_ids = torch.arange(int(action_space.n), device=self.device)

    def _tensor(self, values) -> torch.Tensor:
        return torch.as_tensor(values, dtype=self.dtype, device=self.device)

    # ---- the task: pure functions of tensors ------------------------------------------------

    def transition(
        self, state: torch.Tensor, action: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step of the dynamics from a batch of states: (next_state, reward, terminated).

        `action` is in the env's units, as `step` passes it on: (batch, action_dim) for a Box;
        for a Discrete, a (batch, n) float one-hot (or relaxed one-hot) weight per action.
        """
        raise NotImplementedError

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        """The observation of a batch of states."""
        raise NotImplementedError

    def _reset_box(self, options: dict[str, Any] | None) -> tuple[Any, Any]:
        """(low, high) of the uniform reset draw, per state dim; subclasses read `options`."""
        if options:
            raise ValueError(f"{type(self).__name__}.reset takes no options besides "
                             f"'reset_mask', got {sorted(options)}")
        return self.reset_low, self.reset_high

    # ---- state -----------------------------------------------------------------------------

    @property
    def state(self) -> torch.Tensor:
        """The (num_envs, state_dim) state, in the coordinates of Gymnasium's
        `env.unwrapped.state`. Assigning one (e.g. a tensor that requires grad) moves it to
        the env's device and dtype; it leaves the elapsed-step counters as they are. The env
        never writes into this tensor in place."""
        if self._state is None:
            raise RuntimeError(f"{type(self).__name__}: call reset() before reading the state")
        return self._state

    @state.setter
    def state(self, value) -> None:
        value = self._tensor(value)
        if value.shape != (self.num_envs, self.state_dim):
            raise ValueError(f"state must have shape ({self.num_envs}, {self.state_dim}), got "
                             f"{tuple(value.shape)}")
        self._state = value

    @property
    def elapsed_steps(self) -> torch.Tensor:
        """(num_envs,) long: steps taken in each env's running episode (Gymnasium's
        `TimeLimit._elapsed_steps`); 0 right after a reset."""
        return self._elapsed

    # ---- the Gymnasium API -----------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Draw fresh states; returns (obs, {}).

        `seed` reseeds the env's generator (see the module docstring); without it the draws
        continue its stream. `options["reset_mask"]` (a (num_envs,) bool tensor or array)
        resets only those rows, as Gymnasium's SyncVectorEnv does; the other option keys set
        the reset box as the task's Gymnasium env reads them (e.g. `low`/`high`).
        """
        if seed is not None:
            self._generator.manual_seed(_seed_from(seed))
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        fresh = self._draw_initial_state(options)
        if mask is None or self._state is None:
            self._state = fresh
            self._elapsed = torch.zeros_like(self._elapsed)
        else:
            mask = torch.as_tensor(mask, device=self.device)
            if mask.dtype != torch.bool or mask.shape != (self.num_envs,):
                raise ValueError(f"options['reset_mask'] must be a bool tensor of shape "
                                 f"({self.num_envs},), got {mask.dtype} {tuple(mask.shape)}")
            self._state = torch.where(mask[:, None], fresh, self._state)
            self._elapsed = torch.where(mask, 0, self._elapsed)
        return self.observe(self._state), {}

    def step(
        self, actions
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Step every env; returns (obs, reward, terminated, truncated, info). See the module
        docstring for the autoreset and the info keys."""
        if self._state is None:
            raise RuntimeError(f"{type(self).__name__}: call reset() before step()")
        action = self._action(actions)
        next_state, reward, terminated = self.transition(self._state, action)

        elapsed = self._elapsed + 1
        if self.max_episode_steps is None:
            truncated = torch.zeros_like(terminated)
        else:
            truncated = elapsed >= self.max_episode_steps
        done = terminated | truncated

        # Autoreset without reading `done` on the host: every row gets a fresh draw, and
        # torch.where keeps it only where the episode ended. The reset rows then have no
        # gradient path to this step's action or state.
        fresh = self._draw_initial_state(None)
        self._state = torch.where(done[:, None], fresh, next_state)
        self._elapsed = torch.where(done, 0, elapsed)

        final_obs = self.observe(next_state)
        obs = torch.where(done[:, None], self.observe(fresh), final_obs)
        info = {"final_obs": final_obs, "final_state": next_state, "_final_obs": done}
        return obs, reward, terminated, truncated, info

    def close_extras(self, **kwargs: Any) -> None:
        self._state = None

    # ---- checkpoints -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything an exact resume needs, as plain values and CPU tensors (loadable with
        `torch.load(..., weights_only=True)`):

            {"format": 1, "env": class name, "num_envs": n, "dtype": "float32" | "float64",
             "state": (n, state_dim) tensor, "elapsed_steps": (n,) long tensor,
             "generator": uint8 tensor, "generator_device": "cpu" | "cuda"}

        The state is saved detached, in the env's dtype.
        """
        if self._state is None:
            raise RuntimeError(f"{type(self).__name__}: call reset() before state_dict()")
        return {
            "format": STATE_DICT_FORMAT,
            "env": type(self).__name__,
            "num_envs": self.num_envs,
            "dtype": self._dtype_name,
            "state": self._state.detach().cpu().clone(),
            "elapsed_steps": self._elapsed.cpu().clone(),
            "generator": self._generator.get_state(),
            "generator_device": self.device.type,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> torch.Tensor:
        """Put the env back where `state_dict()` found it; returns the observation to act
        from next. Raises ValueError for a dict from another task, batch size, dtype or device
        type (a CPU generator state cannot drive a CUDA generator)."""
        expected = {
            "format": STATE_DICT_FORMAT,
            "env": type(self).__name__,
            "num_envs": self.num_envs,
            "dtype": self._dtype_name,
            "generator_device": self.device.type,
        }
        for key, value in expected.items():
            if state_dict.get(key) != value:
                raise ValueError(f"cannot load an env state_dict with {key}="
                                 f"{state_dict.get(key)!r} into one with {key}={value!r}")
        self.state = state_dict["state"]
        self._elapsed = state_dict["elapsed_steps"].to(self.device, torch.long).clone()
        self._generator.set_state(state_dict["generator"])
        return self.observe(self._state)

    # ---- helpers -----------------------------------------------------------------------------

    def _draw_initial_state(self, options: dict[str, Any] | None) -> torch.Tensor:
        if options:
            low, high = (self._tensor(bound) for bound in self._reset_box(options))
        else:
            low, high = self._default_box
        u = torch.rand(self.num_envs, self.state_dim, generator=self._generator,
                       device=self.device, dtype=self.dtype)
        return low + (high - low) * u

    def _action(self, actions) -> torch.Tensor:
        """The action as `transition` takes it; checks shapes only (values would need a sync).

        Discrete: integer indices (num_envs,) become one-hot float rows (an index outside
        0..n-1 becomes an all-zero row); a float (num_envs, n) tensor passes through, so a
        relaxed or straight-through one-hot action (Gumbel-softmax) carries its gradient into
        the dynamics. Box: (num_envs, action_dim), cast to the env's dtype.
        """
        if self._discrete:
            n = int(self.single_action_space.n)
            a = torch.as_tensor(actions, device=self.device)
            if a.is_floating_point():
                if a.shape != (self.num_envs, n):
                    raise ValueError(f"a float Discrete action must be one-hot weights of shape "
                                     f"({self.num_envs}, {n}), got {tuple(a.shape)}")
                return a.to(self.dtype)
            if a.shape != (self.num_envs,):
                raise ValueError(f"Discrete actions must have shape ({self.num_envs},), got "
                                 f"{tuple(a.shape)}")
            start = int(self.single_action_space.start)
            return ((a - start)[:, None] == self._action_ids).to(self.dtype)
        a = self._tensor(actions)
        shape = (self.num_envs, *self.single_action_space.shape)
        if a.shape != shape:
            raise ValueError(f"actions must have shape {shape}, got {tuple(a.shape)}")
        return a
