"""Build the environments agents act in: id and space checks, seeding, autoreset, torch tensors.

Two entry points:

- `make_env` gives one plain Gymnasium env (evaluation, video). It acts in the env's own action
  units, so whoever drives it with a saved policy maps the policy's [-1, 1] output through
  `scale_action`, the same map `TorchVecEnv.step` uses.
- `make_vec_env` gives a `TorchVecEnv`: a synchronous Gymnasium vector env that speaks torch on
  the agent's device and hands back transitions that are safe to store (see `StepResult`).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv
from gymnasium.wrappers.vector import RecordEpisodeStatistics

from pathwise.envs.seeding import ACTIONS, ENVS, derive_seeds
from pathwise.envs.step import StepResult
from pathwise.errors import EnvError, EnvStateError, one_line
from pathwise.spaces import scale_action

if TYPE_CHECKING:
    from pathwise.envs.native import NativeVecEnv

__all__ = [
    "EnvError",
    "EnvStateError",
    "StepResult",
    "TorchVecEnv",
    "check_spaces",
    "make_env",
    "make_vec_env",
    "scale_action",
]


# --------------------------------------------------------------------------------------------
# Checks: the env id, then the spaces
# --------------------------------------------------------------------------------------------


def _describe(space: object) -> str:
    if isinstance(space, spaces.Box):
        # Box's own repr lists every bound when they differ per dim; shape and dtype say enough.
        return f"Box(shape={space.shape}, dtype={space.dtype})"
    return one_line(space)


def _check_env_id(env_id: object) -> None:
    if not isinstance(env_id, str):
        raise EnvError(f"env id must be a string, got {env_id!r}")
    module, sep, name = env_id.partition(":")
    if sep:
        # gym.make's "module:EnvId" form imports the module so that it can register its envs;
        # do that here too, or the id would look unknown.
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise EnvError(
                f"cannot import module {module!r} named in env id {env_id!r}: {one_line(err)}"
            ) from err
        env_id = name
    if env_id in gym.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
    if close:
        raise EnvError(f"unknown env id {env_id!r}; did you mean: {', '.join(close)}?")
    raise EnvError(
        f"unknown env id {env_id!r}; list the registered ids with "
        "`python -c 'import pathwise.envs, gymnasium; gymnasium.pprint_registry()'`"
    )


def check_spaces(observation_space: spaces.Space, action_space: spaces.Space) -> None:
    """Raise EnvError unless the spaces are ones pathwise's policies can act in.

    Supported: a 1-D `Box` observation (a flat vector, any dtype: it is cast to float32), and
    either a 1-D floating-point `Box` action with finite bounds (a tanh-squashed policy is
    rescaled onto [low, high], which needs both ends) or a `Discrete` action.
    """
    obs_hint = "pathwise supports a 1-D Box observation (a flat vector)"
    if not isinstance(observation_space, spaces.Box):
        flatten = (
            "; flatten it first (gymnasium.wrappers.FlattenObservation)"
            if isinstance(observation_space, (spaces.Dict, spaces.Tuple))
            else ""
        )
        raise EnvError(
            f"unsupported observation space {_describe(observation_space)}: {obs_hint}{flatten}"
        )
    if len(observation_space.shape) != 1:
        raise EnvError(
            f"unsupported observation space {_describe(observation_space)}: {obs_hint}, "
            f"not one with {len(observation_space.shape)} dims (images need an encoder)"
        )

    act_hint = "pathwise supports a 1-D Box action with finite bounds or a Discrete action"
    if isinstance(action_space, spaces.Discrete):
        return
    if not isinstance(action_space, spaces.Box):
        raise EnvError(f"unsupported action space {_describe(action_space)}: {act_hint}")
    if len(action_space.shape) != 1:
        raise EnvError(
            f"unsupported action space {_describe(action_space)}: {act_hint}, "
            f"not a Box with {len(action_space.shape)} dims"
        )
    if not np.issubdtype(action_space.dtype, np.floating):
        raise EnvError(
            f"unsupported action space {_describe(action_space)}: {act_hint}; an integer-valued "
            "Box cannot take a continuous policy's actions"
        )
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
        raise EnvError(
            f"unsupported action space {_describe(action_space)} with infinite bounds "
            f"(low={one_line(action_space.low)}, high={one_line(action_space.high)}): "
            f"{act_hint}, since a squashed policy is rescaled onto [low, high]"
        )


def _gym_make(env_id: str, **kwargs: Any) -> gym.Env:
    """gym.make, with the errors a user can cause (bad kwargs, missing extras) as EnvError."""
    try:
        return gym.make(env_id, **kwargs)
    except (gym.error.Error, TypeError) as err:
        # TypeError is how an env constructor rejects an unknown keyword (e.g. `env.foo=1`).
        raise EnvError(f"cannot make {env_id!r}: {one_line(err)}") from err


# --------------------------------------------------------------------------------------------
# A single env
# --------------------------------------------------------------------------------------------


class _SeedFirstReset(gym.Wrapper):
    """Seed the first reset that is given no seed, so `make_env(id, seed=s).reset()` starts
    exactly like `gym.make(id).reset(seed=s)`; later resets continue that random stream."""

    def __init__(self, env: gym.Env, seed: int):
        super().__init__(env)
        self._pending_seed: int | None = seed

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is None:
            seed = self._pending_seed
        self._pending_seed = None
        return super().reset(seed=seed, options=options)


def make_env(
    env_id: str, seed: int | None = None, render_mode: str | None = None, **kwargs: Any
) -> gym.Env:
    """One Gymnasium env (for evaluation), after checking that the id exists and its spaces are
    supported. `kwargs` go to `gymnasium.make` (e.g. `max_episode_steps`, env parameters).

    With `seed`, the first `reset()` without a seed uses it, and the action space is seeded
    too, so an evaluation run is reproducible. The env acts in its own action units: map a
    policy's [-1, 1] action with `scale_action(a, env.action_space.low, env.action_space.high)`.
    """
    _check_env_id(env_id)
    if render_mode is not None:  # only then: an env whose __init__ takes no render_mode is legal
        kwargs["render_mode"] = render_mode
    env = _gym_make(env_id, **kwargs)
    try:
        check_spaces(env.observation_space, env.action_space)
    except EnvError:
        env.close()
        raise
    if seed is not None:
        env.action_space.seed(seed)
        env = _SeedFirstReset(env, seed)
    return env


# --------------------------------------------------------------------------------------------
# Replaying an episode: how a checkpoint holds an env's state
# --------------------------------------------------------------------------------------------

# Longest episode prefix a sub-env keeps for replay; past it the env's state is not saved
# (an env without a time limit could otherwise grow the record without bound).
MAX_REPLAY_STEPS = 100_000


class _Replay(gym.Wrapper):
    """Remembers how one sub-env's current episode came about: the seed of its reset, or the
    state of its random generator just before the reset, and every action since.

    A Gymnasium env draws all of its randomness from ``self.np_random``, so resetting from
    that start and stepping the same actions rebuilds its state, whatever the state is made
    of (a physics engine's memory, wrapper counters, …), without pickling the env. The
    record is a few plain values and one small array per step of the running episode.
    """

    def __init__(self, env: gym.Env, limit: int = MAX_REPLAY_STEPS):
        super().__init__(env)
        self.limit = limit
        self.start: dict | None = None  # {"seed": s} or {"rng": bit-generator state}
        self.actions: list[np.ndarray] = []

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if options is not None:
            start = None  # reset options can be anything: not replayed
        elif seed is not None:
            start = {"seed": int(seed)}
        else:
            # Reading np_random creates the generator if the env has none yet, and the reset
            # then draws from that very generator, so the record holds either way.
            start = {"rng": self.env.unwrapped.np_random.bit_generator.state}
        self.start, self.actions = start, []
        return super().reset(seed=seed, options=options)

    def step(self, action):
        if self.start is not None:
            if len(self.actions) < self.limit:
                self.actions.append(np.array(action, copy=True))
            else:
                self.start, self.actions = None, []
        return super().step(action)

    def record(self) -> dict | None:
        """The episode so far as plain values and a tensor; None when it cannot be replayed."""
        if self.start is None:
            return None
        actions = torch.from_numpy(np.stack(self.actions)) if self.actions else None
        return {**self.start, "actions": actions}

    def replay(self, record: dict) -> np.ndarray:
        """Rebuild the episode of `record`; returns the observation it ends on."""
        if "seed" in record:
            obs, _ = self.reset(seed=int(record["seed"]))
        else:
            self.env.unwrapped.np_random.bit_generator.state = record["rng"]
            obs, _ = self.reset()
        actions = record.get("actions")
        for action in [] if actions is None else actions.numpy():
            obs, _, terminated, truncated, _ = self.step(action)
            if terminated or truncated:
                raise EnvStateError("the replayed episode ended early")
        return obs


# --------------------------------------------------------------------------------------------
# Vector env on torch
# --------------------------------------------------------------------------------------------


class TorchVecEnv:
    """A Gymnasium vector env in `AutoresetMode.SAME_STEP`, on torch tensors.

    Actions come in the policy's space: for a Box, points of [-1, 1]^action_dim (the range of a
    tanh-squashed policy), rescaled onto the env's bounds here; for Discrete, long indices
    0..n-1 of shape (num_envs,). Each array crosses between host and device once per step.
    """

    def __init__(
        self,
        vec_env: VectorEnv,
        env_id: str,
        seed: int | None = 0,
        device: str | torch.device = "cpu",
    ):
        check_spaces(vec_env.single_observation_space, vec_env.single_action_space)
        if vec_env.metadata.get("autoreset_mode") != AutoresetMode.SAME_STEP:
            # NEXT_STEP (Gymnasium's default) returns the reset observation one step late, as a
            # transition whose action was ignored; `step` relies on SAME_STEP's `final_obs`.
            raise ValueError("TorchVecEnv needs a vector env with autoreset_mode=SAME_STEP")
        self.vec_env = vec_env
        self.env_id = env_id
        self.num_envs: int = vec_env.num_envs
        self.device = torch.device(device)
        self.single_observation_space = vec_env.single_observation_space
        self.single_action_space = vec_env.single_action_space
        self.obs_dim: int = int(self.single_observation_space.shape[0])
        self.is_discrete: bool = isinstance(self.single_action_space, spaces.Discrete)

        space = self.single_action_space
        if self.is_discrete:
            self.action_dim: int = int(space.n)
            self.action_low = self.action_high = None
            self.action_start: int = int(space.start)  # Discrete(n, start): env action i + start
            self._policy_action_space: spaces.Space = spaces.MultiDiscrete(
                np.full(self.num_envs, self.action_dim)
            )
        else:
            self.action_dim = int(space.shape[0])
            self.action_start = 0
            # float64 for the affine map; the result is cast to the env's dtype.
            self.action_low = space.low.astype(np.float64)
            self.action_high = space.high.astype(np.float64)
            self._policy_action_space = spaces.Box(
                -1.0, 1.0, (self.num_envs, self.action_dim), np.float32
            )

        self._seed = seed
        self._has_reset = False
        self._obs: np.ndarray | None = None  # what the agent acts from next (for state_dict)

    def __repr__(self) -> str:
        return (
            f"TorchVecEnv({self.env_id!r}, num_envs={self.num_envs}, device={self.device}, "
            f"obs_dim={self.obs_dim}, action_dim={self.action_dim}, "
            f"is_discrete={self.is_discrete})"
        )

    def __enter__(self) -> TorchVecEnv:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- host ↔ device ------------------------------------------------------------------

    def _to_device(self, array: np.ndarray, dtype: np.dtype) -> torch.Tensor:
        # from_numpy shares memory (no copy on CPU); `.to` is then the one transfer, if any.
        return torch.from_numpy(np.ascontiguousarray(array, dtype=dtype)).to(self.device)

    def _env_actions(self, actions: torch.Tensor | np.ndarray) -> np.ndarray:
        if isinstance(actions, torch.Tensor):
            actions = actions.detach().cpu().numpy()
        actions = np.asarray(actions)
        if self.is_discrete:
            if actions.shape != (self.num_envs,):
                raise ValueError(
                    f"expected Discrete actions of shape ({self.num_envs},), got {actions.shape}"
                )
            if not np.issubdtype(actions.dtype, np.integer):
                raise ValueError(f"Discrete actions must be integer indices, got {actions.dtype}")
            if actions.min() < 0 or actions.max() >= self.action_dim:
                raise ValueError(
                    f"Discrete action indices must lie in [0, {self.action_dim}), "
                    f"got {actions.tolist()}"
                )
            # The policy indexes 0..n-1; a Discrete(n, start=s) env wants s..s+n-1.
            return actions.astype(np.int64) + self.action_start
        if actions.shape != (self.num_envs, self.action_dim):
            raise ValueError(
                f"expected Box actions of shape ({self.num_envs}, {self.action_dim}), "
                f"got {actions.shape}"
            )
        scaled = scale_action(actions.astype(np.float64), self.action_low, self.action_high)
        return scaled.astype(self.single_action_space.dtype)

    # ---- the env API --------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Reset every sub-env; returns float32 observations (num_envs, obs_dim) on device.

        The first reset uses the constructor's seed when given none. A seed reseeds every
        sub-env and the action spaces that `random_actions` draws from, each from a stream of
        its own (`seeding.derive_seeds`: not seed + i, which would make run s's env 1 replay
        run s+1's env 0); a reset without one continues the sub-envs' random streams.
        """
        if seed is None and not self._has_reset:
            seed = self._seed
        env_seeds = None
        if seed is not None:
            env_seeds = derive_seeds(seed, self.num_envs, ENVS)
            space_seeds = derive_seeds(seed, 2, ACTIONS)
            self._policy_action_space.seed(space_seeds[0])
            self.vec_env.action_space.seed(space_seeds[1])
        obs, _ = self.vec_env.reset(seed=env_seeds)
        self._has_reset = True
        self._obs = np.array(obs, dtype=np.float32)
        return self._to_device(obs, np.float32)

    def step(self, actions: torch.Tensor) -> StepResult:
        """Apply one action per sub-env (in the policy's action space); see `StepResult`."""
        if not self._has_reset:
            raise RuntimeError("call reset() before step()")
        obs, reward, terminated, truncated, info = self.vec_env.step(self._env_actions(actions))

        obs = np.asarray(obs, dtype=np.float32)
        self._obs = obs
        next_obs = obs.copy()
        done = np.logical_or(terminated, truncated)
        if done.any():
            # SAME_STEP has already reset the ended sub-envs: their row of `obs` starts the
            # next episode, and the observation the transition really led to is in final_obs
            # (an object array, None in the rows that did not end).
            final_obs = info["final_obs"]
            for i in np.flatnonzero(done):
                next_obs[i] = final_obs[i]

        episode_returns: list[float] = []
        episode_lengths: list[int] = []
        if "_episode" in info:  # added by RecordEpisodeStatistics on steps where episodes end
            ended = info["_episode"]
            episode_returns = [float(r) for r in info["episode"]["r"][ended]]
            episode_lengths = [int(n) for n in info["episode"]["l"][ended]]

        if self.device.type == "cpu":  # from_numpy: the tensors share the arrays' memory
            tensors = (self._to_device(obs, np.float32), self._to_device(next_obs, np.float32),
                       self._to_device(reward, np.float32),
                       self._to_device(terminated, np.bool_),
                       self._to_device(truncated, np.bool_))
        else:
            tensors = self._packed_to_device(obs, next_obs, reward, terminated, truncated)
        return StepResult(*tensors, episode_returns=episode_returns,
                          episode_lengths=episode_lengths, done=done.tolist())

    def _packed_to_device(self, obs, next_obs, reward, terminated, truncated):
        """The step's five arrays in one pinned host buffer and one asynchronous copy, instead
        of five copies that each wait for the device to drain its queue."""
        d = self.obs_dim
        packed = np.empty((self.num_envs, 2 * d + 3), dtype=np.float32)
        packed[:, :d], packed[:, d:2 * d] = obs, next_obs
        packed[:, 2 * d], packed[:, 2 * d + 1], packed[:, 2 * d + 2] = \
            reward, terminated, truncated
        # pin_memory draws from torch's caching host allocator, which keeps the block until the
        # copy has run, so the buffer is never reused under an in-flight transfer.
        device = torch.from_numpy(packed).pin_memory().to(self.device, non_blocking=True)
        obs_t, next_t, rest = device[:, :d], device[:, d:2 * d], device[:, 2 * d:]
        return obs_t, next_t, rest[:, 0], rest[:, 1].bool(), rest[:, 2].bool()

    # ---- saving and restoring ----------------------------------------------------------

    def state_dict(self) -> dict:
        """Where every sub-env is, as plain values and tensors (a checkpoint's ``envs``).

        Each sub-env's running episode is kept as its start (reset seed or random-generator
        state) and its actions (see `_Replay`); beside them, the episode statistics counters,
        the random state of the action spaces, and the observation the agent acts from next.
        ``replayable`` is False when some sub-env's episode cannot be replayed (it was reset
        with options, or ran past `MAX_REPLAY_STEPS`); `load_state_dict` then refuses it.
        """
        if not self._has_reset:
            raise RuntimeError("call reset() before state_dict()")
        subs = getattr(self.vec_env.unwrapped, "envs", [])
        records = [env.record() if isinstance(env, _Replay) else None for env in subs]
        state: dict[str, Any] = {
            "num_envs": self.num_envs,
            "replayable": len(records) == self.num_envs and None not in records,
            "episodes": records,
            "obs": torch.from_numpy(self._obs.copy()),
            "action_space_rng": [s.np_random.bit_generator.state for s in
                                 (self._policy_action_space, self.vec_env.action_space)],
        }
        if isinstance(self.vec_env, RecordEpisodeStatistics):
            stats = self.vec_env
            state["episode_stats"] = {
                "returns": torch.from_numpy(stats.episode_returns.copy()),
                "lengths": torch.from_numpy(stats.episode_lengths.astype(np.int64)),
                "count": int(stats.episode_count),
                "prev_dones": torch.from_numpy(stats.prev_dones.copy()),
            }
        return state

    def load_state_dict(self, state: dict) -> torch.Tensor:
        """Put every sub-env back where `state_dict` found it, by replaying its running
        episode; returns the observations to act from next.

        The replay is checked: each sub-env must end on the saved observation, bit for bit.
        Raises `EnvStateError` when the state cannot be rebuilt exactly (not replayable, or
        an env whose replay diverges: one with randomness outside its ``np_random``); the
        envs are then in no defined state and need a `reset`.
        """
        if int(state["num_envs"]) != self.num_envs:
            raise EnvStateError(f"saved for num_envs={state['num_envs']}, "
                                f"these envs have num_envs={self.num_envs}")
        if not state.get("replayable"):
            raise EnvStateError("a sub-env's running episode was not recorded (reset with "
                                f"options, or longer than {MAX_REPLAY_STEPS} steps)")
        subs = getattr(self.vec_env.unwrapped, "envs", [])
        if len(subs) != self.num_envs or not all(isinstance(e, _Replay) for e in subs):
            raise EnvStateError("these envs were not made by make_vec_env (no replay wrapper)")
        saved_obs = state["obs"].numpy()
        obs = np.empty_like(saved_obs)
        for i, (env, record) in enumerate(zip(subs, state["episodes"])):
            try:
                obs[i] = env.replay(record)
            except EnvStateError as err:
                raise EnvStateError(f"sub-env {i}: {err}") from None
            except (ValueError, TypeError) as err:  # a generator of another kind, bad action
                raise EnvStateError(f"sub-env {i}: cannot replay ({one_line(err)})") from None
        if not np.array_equal(obs, saved_obs, equal_nan=True):
            raise EnvStateError(f"{self.env_id} did not replay to the saved observation (its "
                                "randomness is not all in env.np_random)")
        for space, rng in zip((self._policy_action_space, self.vec_env.action_space),
                              state["action_space_rng"]):
            space.np_random.bit_generator.state = rng
        stats = state.get("episode_stats")
        if stats is not None and isinstance(self.vec_env, RecordEpisodeStatistics):
            self.vec_env.episode_returns = stats["returns"].numpy().copy()
            self.vec_env.episode_lengths = stats["lengths"].numpy().astype(int)
            self.vec_env.episode_count = int(stats["count"])
            self.vec_env.prev_dones = stats["prev_dones"].numpy().copy()
        self._has_reset = True
        self._obs = obs
        return self._to_device(obs, np.float32)

    def random_actions(self) -> torch.Tensor:
        """Uniform actions in the policy's action space, from the space seeded at reset:
        float32 (num_envs, action_dim) in [-1, 1] for a Box, long (num_envs,) for Discrete."""
        sample = self._policy_action_space.sample()
        return torch.from_numpy(np.asarray(sample)).to(self.device)

    def close(self) -> None:
        self.vec_env.close()


def make_vec_env(
    env_id: str,
    num_envs: int = 1,
    seed: int | None = 0,
    device: str | torch.device = "cpu",
    native: bool | None = None,
    **env_kwargs: Any,
) -> TorchVecEnv | NativeVecEnv:
    """`num_envs` copies of `env_id` on torch tensors on `device`: a `TorchVecEnv` stepping
    Gymnasium envs in sequence, or for a torch env (`pathwise/Pendulum-v1`, ...) a
    `native.NativeVecEnv` that steps all of them on the device (``native=False``: a torch env's
    single-env form through Gymnasium's SyncVectorEnv instead).

    `env_kwargs` go to `gymnasium.make` for every copy (e.g. `max_episode_steps`). The first
    reset seeds each sub-env from a stream of its own, derived from `seed` (`seeding`).
    Episode returns and lengths come from Gymnasium's vector `RecordEpisodeStatistics`. Each
    sub-env records its running episode, so that `TorchVecEnv.state_dict` can save where the
    envs are (for an exact resume).
    """
    _check_env_id(env_id)
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise EnvError(f"num_envs must be a positive integer, got {num_envs!r}")
    from pathwise.envs.native import make_native_vec_env, native_env_class

    if native is not False and native_env_class(env_id) is not None:  # on the device itself
        try:
            envs = make_native_vec_env(env_id, num_envs, seed, device, **env_kwargs)
        except (TypeError, ValueError) as err:
            raise EnvError(f"cannot make {env_id!r}: {one_line(err)}") from err
        try:
            check_spaces(envs.single_observation_space, envs.single_action_space)
        except EnvError:
            envs.close()
            raise
        return envs

    # Build one copy first so that an unsupported space is reported before vectorizing (the
    # batching code can choke on exotic spaces with a less helpful error).
    first = _gym_make(env_id, **env_kwargs)
    try:
        check_spaces(first.observation_space, first.action_space)
    except EnvError:
        first.close()
        raise
    # Each sub-env records its running episode, so that a checkpoint can hold its state.
    env_fns: list[Callable[[], gym.Env]] = [lambda: _Replay(first)]
    env_fns += [lambda: _Replay(_gym_make(env_id, **env_kwargs))] * (num_envs - 1)

    vec_env = SyncVectorEnv(env_fns, autoreset_mode=AutoresetMode.SAME_STEP)
    vec_env = RecordEpisodeStatistics(vec_env)
    return TorchVecEnv(vec_env, env_id=env_id, seed=seed, device=device)
