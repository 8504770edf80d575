"""The torch ports against Gymnasium's own envs, the oracle: one step from thousands of states,
whole episodes, reset distributions, time limits.

Tolerances. Gymnasium steps in float64 numpy with a few float32 pieces (float32 actions; the
observation is cast to float32; MountainCarContinuous stores its state in float32), so a
float64 port agrees with it on one step to about float32 rounding of those pieces (ATOL_64), and
a float32 port to float32 rounding of everything, scaled by the value (RTOL_32; one 0.2 s RK4
step of Acrobot at velocities near its 9π clip amplifies rounding a thousandfold). Over a
whole episode those differences grow with the dynamics' sensitivity (EPISODE_RTOL).
Terminations are compared exactly in float64; in float32 only away from the threshold, where
float32 rounding cannot flip them.
"""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from pathwise.envs import Acrobot, CartPole, MountainCarContinuous, Pendulum

torch.set_num_threads(1)

PORTS = {
    "Pendulum-v1": Pendulum,
    "CartPole-v1": CartPole,
    "Acrobot-v1": Acrobot,
    "MountainCarContinuous-v0": MountainCarContinuous,
}
# States to step from: wider than the reset boxes, so clips, walls and wraps are exercised.
STATE_BOXES = {
    "Pendulum-v1": ([-10.0, -9.0], [10.0, 9.0]),
    "CartPole-v1": ([-2.4, -3.0, -0.21, -3.0], [2.4, 3.0, 0.21, 3.0]),
    "Acrobot-v1": ([-math.pi, -math.pi, -4 * math.pi, -9 * math.pi],
                   [math.pi, math.pi, 4 * math.pi, 9 * math.pi]),
    "MountainCarContinuous-v0": ([-1.2, -0.07], [0.6, 0.07]),
}
ATOL_64 = 1e-6
RTOL_32 = {"Acrobot-v1": 1e-3}  # others: 1e-5
EPISODE_RTOL = {torch.float64: 1e-4, torch.float32: 1e-3}
DTYPES = [torch.float64, torch.float32]


def close(ours, theirs, gym_id: str, dtype: torch.dtype, episode: bool = False) -> np.ndarray:
    """Elementwise agreement at the module docstring's tolerances."""
    ours = ours.detach().double().numpy() if isinstance(ours, torch.Tensor) else ours
    theirs = np.asarray(theirs, dtype=np.float64)
    if episode:
        return np.abs(ours - theirs) <= EPISODE_RTOL[dtype] * (1.0 + np.abs(theirs))
    if dtype == torch.float64:
        return np.abs(ours - theirs) <= ATOL_64
    rtol = RTOL_32.get(gym_id, 1e-5)
    return np.abs(ours - theirs) <= rtol * (1.0 + np.abs(theirs))


def reset_state(oracle: gym.Env, seed: int, options=None) -> np.ndarray:
    """Gymnasium's reset state for `seed`, as float64."""
    oracle.reset(seed=seed, options=options)
    return np.asarray(oracle.unwrapped.state, dtype=np.float64)


def random_actions(env, rng: np.random.Generator, n: int) -> np.ndarray:
    space = env.single_action_space
    if isinstance(space, gym.spaces.Discrete):
        return rng.integers(0, space.n, n)
    # Past the bounds too: both envs clip (Gymnasium's reward may use the unclipped action).
    return rng.uniform(1.5 * space.low, 1.5 * space.high, (n, *space.shape)).astype(np.float32)


def threshold_margin(gym_id: str, state: np.ndarray) -> np.ndarray:
    """How far each (next) state is from flipping its termination; inf where none applies."""
    if gym_id == "CartPole-v1":
        x, theta = state[:, 0], state[:, 2]
        return np.minimum(np.abs(np.abs(x) - 2.4), np.abs(np.abs(theta) - 12 * 2 * math.pi / 360))
    if gym_id == "Acrobot-v1":
        return np.abs(-np.cos(state[:, 0]) - np.cos(state[:, 0] + state[:, 1]) - 1.0)
    if gym_id == "MountainCarContinuous-v0":
        return np.minimum(np.abs(state[:, 0] - 0.45), np.abs(state[:, 1]))
    return np.full(len(state), np.inf)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("gym_id", list(PORTS))
def test_one_step_from_random_states_matches_gymnasium(gym_id, dtype):
    n = 2000
    rng = np.random.default_rng(0)
    low, high = STATE_BOXES[gym_id]
    states = rng.uniform(low, high, (n, len(low)))
    env = PORTS[gym_id](n, dtype=dtype)
    env.reset(seed=0)
    env.state = torch.as_tensor(states)
    states = env.state.double().numpy()  # what the port holds: float32-rounded in float32
    actions = random_actions(env, rng, n)
    _, reward, terminated, truncated, info = env.step(torch.as_tensor(actions))

    oracle = gym.make(gym_id).unwrapped
    expected = {"state": [], "obs": [], "reward": [], "terminated": []}
    for state, action in zip(states, actions):
        oracle.reset(seed=0)  # clears CartPole's "stepped after termination" memory
        oracle.state = state.copy()
        obs, r, term, trunc, _ = oracle.step(action)
        assert not trunc
        for key, value in zip(expected, (oracle.state, obs, r, term)):
            expected[key].append(value)
    expected = {key: np.array(value) for key, value in expected.items()}

    assert close(info["final_state"], expected["state"], gym_id, dtype).all()
    assert close(info["final_obs"], expected["obs"], gym_id, dtype).all()
    assert close(reward, expected["reward"], gym_id, dtype).all()
    decided = threshold_margin(gym_id, expected["state"]) > (0 if dtype == torch.float64 else 1e-3)
    assert decided.mean() > 0.95
    assert np.array_equal(terminated.numpy()[decided], expected["terminated"][decided])
    assert not truncated.any()
    # The states do reach the non-smooth parts of the dynamics the docstrings list.
    if gym_id == "CartPole-v1" or gym_id == "MountainCarContinuous-v0":
        assert 0.02 < expected["terminated"].mean() < 0.98
    if gym_id == "Pendulum-v1":
        assert (np.abs(expected["state"][:, 1]) == 8.0).mean() > 0.05  # speed clip


def fixed_actions(gym_id: str, episode: int, steps: int) -> np.ndarray:
    """A deterministic open-loop action sequence per episode."""
    t = np.arange(steps)
    if gym_id in ("CartPole-v1", "Acrobot-v1"):
        n = 2 if gym_id == "CartPole-v1" else 3
        return np.random.default_rng(episode).integers(0, n, steps)
    if gym_id == "MountainCarContinuous-v0":
        # Rocking at the car's rhythm reaches the goal; episode 0 pushes too weakly to.
        strength = 0.3 if episode == 0 else 1.0
        return (strength * np.sign(np.sin(t / (12.0 + episode))))[:, None].astype(np.float32)
    return (2.5 * np.sin(t / (5.0 + 3 * episode)))[:, None].astype(np.float32)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("gym_id", list(PORTS))
def test_whole_episodes_match_gymnasium(gym_id, dtype):
    """Episodes from Gymnasium's reset states under fixed actions: every observation, reward
    and flag, until Gymnasium ends the episode (by termination or at its time limit)."""
    episodes = 4
    limit = gym.spec(gym_id).max_episode_steps
    env = PORTS[gym_id](episodes, dtype=dtype)
    env.reset(seed=0)
    oracles = [gym.make(gym_id) for _ in range(episodes)]
    starts = [reset_state(oracle, 100 + i) for i, oracle in enumerate(oracles)]
    env.state = torch.as_tensor(np.stack(starts))
    actions = np.stack([fixed_actions(gym_id, i, limit) for i in range(episodes)], 1)

    running = np.ones(episodes, dtype=bool)
    lengths = np.zeros(episodes, dtype=int)
    ends = set()
    for t in range(limit):
        _, reward, terminated, truncated, info = env.step(torch.as_tensor(actions[t]))
        for i in np.flatnonzero(running):
            obs, r, term, trunc, _ = oracles[i].step(actions[t, i])
            assert close(info["final_obs"][i], obs, gym_id, dtype, episode=True).all(), (i, t)
            assert close(reward[i], r, gym_id, dtype, episode=True), (i, t)
            assert (terminated[i].item(), truncated[i].item()) == (term, trunc), (i, t)
            if term or trunc:
                running[i] = False
                lengths[i] = t + 1
                ends.add("terminated" if term else "truncated")
    assert not running.any() and lengths.max() <= limit
    # Each task's episodes end the way its actions make them end.
    expected_ends = {
        "Pendulum-v1": {"truncated"},
        "CartPole-v1": {"terminated"},
        "Acrobot-v1": {"truncated"},
        "MountainCarContinuous-v0": {"terminated", "truncated"},
    }
    assert ends == expected_ends[gym_id]


@pytest.mark.parametrize("gym_id", list(PORTS))
def test_time_limits_are_gymnasiums(gym_id):
    """Episodes that never terminate are truncated at exactly Gymnasium's step, every time."""
    limit = gym.spec(gym_id).max_episode_steps
    env = gym.make_vec(f"pathwise/{gym_id}", num_envs=3)
    assert env.max_episode_steps == limit
    env.reset(seed=0)
    if gym_id == "CartPole-v1":
        # A linear state-feedback controller balances the pole indefinitely.
        gains = torch.tensor([0.05, 0.3, 5.0, 1.0])

        def policy(obs):
            return (obs @ gains > 0).long()
    else:
        # No torque or force: the pendulums swing, the acrobot and the car stay low.
        idle = torch.ones(3, dtype=torch.long) if gym_id == "Acrobot-v1" else torch.zeros(3, 1)

        def policy(obs):
            return idle
    obs = env.observe(env.state)
    truncated_at = []
    for t in range(1, 2 * limit + 1):
        obs, _, terminated, truncated, _ = env.step(policy(obs))
        assert not terminated.any()
        if truncated.any():
            assert truncated.all()
            truncated_at.append(t)
    assert truncated_at == [limit, 2 * limit]


def test_terminated_and_truncated_on_the_same_step_as_gymnasium():
    """Gymnasium's TimeLimit sets truncated at the limit even on the step that terminates."""
    start = np.array([0.449, 0.01])  # one step from MountainCar's goal
    oracle = gym.make("MountainCarContinuous-v0", max_episode_steps=1)
    oracle.reset(seed=0)
    oracle.unwrapped.state = start.copy()
    _, _, term, trunc, _ = oracle.step(np.zeros(1, np.float32))
    env = gym.make_vec("pathwise/MountainCarContinuous-v0", num_envs=1, max_episode_steps=1,
                       dtype=torch.float64)
    env.reset(seed=0)
    env.state = torch.as_tensor(start)[None]
    _, _, terminated, truncated, _ = env.step(torch.zeros(1, 1))
    assert (term, trunc) == (True, True) == (terminated.item(), truncated.item())


def ks_two_sample(a: np.ndarray, b: np.ndarray) -> float:
    """Kolmogorov-Smirnov statistic sup |F_a − F_b| of two samples."""
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return float(np.abs(cdf_a - cdf_b).max())


def ks_critical(n: int, m: int, alpha: float) -> float:
    """Asymptotic two-sample KS critical value: c(α)·sqrt((n + m)/(n m)),
    c(α) = sqrt(−ln(α/2)/2)."""
    return math.sqrt(-math.log(alpha / 2) / 2) * math.sqrt((n + m) / (n * m))


@pytest.mark.parametrize("gym_id", list(PORTS))
def test_reset_distribution_matches_gymnasium(gym_id):
    """Two-sample KS test per state coordinate: the port's reset states against Gymnasium's
    (fixed seeds; α = 0.001 per coordinate). Coordinates Gymnasium sets to a constant must be
    that constant. The same test rejects a reset box 20% too narrow, so it can fail."""
    n = 2000
    oracle = gym.make(gym_id).unwrapped
    theirs = np.stack([reset_state(oracle, s) for s in range(n)])
    env = PORTS[gym_id](n, dtype=torch.float64)
    env.reset(seed=0)
    ours = env.state.numpy()
    critical = ks_critical(n, n, alpha=1e-3)
    for k in range(ours.shape[1]):
        if np.ptp(theirs[:, k]) == 0:
            assert np.all(ours[:, k] == theirs[0, k])
            continue
        assert ks_two_sample(ours[:, k], theirs[:, k]) < critical, k
        assert ours[:, k].min() >= theirs[:, k].min() - 0.01 * np.ptp(theirs[:, k])
        assert ours[:, k].max() <= theirs[:, k].max() + 0.01 * np.ptp(theirs[:, k])
        narrow = ours[:, k].mean() + 0.8 * (ours[:, k] - ours[:, k].mean())
        assert ks_two_sample(narrow, theirs[:, k]) > critical, k


@pytest.mark.parametrize(
    "gym_id, options",
    [
        ("Pendulum-v1", {"x_init": 0.5, "y_init": 0.2}),
        ("CartPole-v1", {"low": -0.2, "high": 0.3}),
        ("Acrobot-v1", {"low": 0.0, "high": 0.05}),
        ("MountainCarContinuous-v0", {"low": -0.3, "high": -0.2}),
    ],
)
def test_reset_options_set_the_box_as_in_gymnasium(gym_id, options):
    oracle = gym.make(gym_id).unwrapped
    theirs = np.stack([reset_state(oracle, s, options) for s in range(300)])
    env = PORTS[gym_id](300, dtype=torch.float64)
    env.reset(seed=0, options=options)
    ours = env.state.numpy()
    span = np.ptp(theirs, axis=0)
    assert np.all(ours.min(0) >= theirs.min(0) - 0.05 * span - 1e-12)
    assert np.all(ours.max(0) <= theirs.max(0) + 0.05 * span + 1e-12)
    assert np.all(np.ptp(ours, axis=0) >= 0.9 * span)


def test_cartpole_sutton_barto_reward_matches_gymnasium():
    states = np.array([[2.399, 1.0, 0.0, 0.0], [0.0, 0.0, 0.01, 0.0]])  # falls / goes on
    env = CartPole(2, dtype=torch.float64, sutton_barto_reward=True)
    env.reset(seed=0)
    env.state = torch.as_tensor(states)
    _, reward, terminated, _, _ = env.step(torch.tensor([1, 0]))
    oracle = gym.make("CartPole-v1", sutton_barto_reward=True).unwrapped
    expected = []
    for state, action in zip(states, [1, 0]):
        oracle.reset(seed=0)
        oracle.state = state.copy()
        expected.append(oracle.step(action)[1])
    assert terminated.tolist() == [True, False]
    assert reward.tolist() == expected == [-1.0, 0.0]
