"""make_env / make_vec_env / TorchVecEnv: id and space checks, action rescaling, dtypes and
devices, terminated vs truncated, episode statistics, seeding."""

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from pathwise.envs import EnvError, TorchVecEnv, check_spaces, make_env, make_vec_env, scale_action
from pathwise.envs.testbeds import CONTINUOUS_BANDIT_ID, DISCRETE_BANDIT_ID


class SpacesEnv(gym.Env):
    """A tiny env with whatever spaces a test asks for; it remembers the last action."""

    metadata = {"render_modes": []}

    def __init__(self, observation_space, action_space, render_mode=None):
        # Copies: gym.make hands every sub-env the same space objects, which would then share
        # one random stream.
        self.observation_space = copy.deepcopy(observation_space)
        self.action_space = copy.deepcopy(action_space)
        self.render_mode = render_mode
        self.last_action = None

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.observation_space.seed(seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        self.last_action = action
        return self.observation_space.sample(), 0.0, False, False, {}


SPACES_ID = "pathwise-test/Spaces-v0"
if SPACES_ID not in gym.registry:
    gym.register(SPACES_ID, entry_point=SpacesEnv)

FLAT_OBS = spaces.Box(-1.0, 1.0, (3,), np.float32)
UNIT_BOX = spaces.Box(-1.0, 1.0, (2,), np.float32)

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, cuda])]


def _unwrapped_sub_envs(vec):
    return [env.unwrapped for env in vec.vec_env.unwrapped.envs]


# ---- ids ------------------------------------------------------------------------------------


@pytest.mark.parametrize("factory", [make_env, make_vec_env])
def test_unknown_id_suggests_close_matches(factory):
    with pytest.raises(EnvError) as info:
        factory("Pendulm-v1")
    message = str(info.value)
    assert message.startswith("unknown env id 'Pendulm-v1'; did you mean: Pendulum-v1")
    assert message.endswith("?") and "\n" not in message
    assert isinstance(info.value, ValueError)


def test_unknown_id_without_close_match_says_how_to_list_ids():
    with pytest.raises(EnvError, match="unknown env id 'Zzzqx-v9'; list the registered ids"):
        make_env("Zzzqx-v9")


def test_testbed_ids_get_suggestions_too():
    with pytest.raises(EnvError, match="did you mean: pathwise/ContinuousBandit-v0"):
        make_env("pathwise/ContinousBandit-v0")


def test_bad_env_kwarg_is_a_one_line_env_error():
    with pytest.raises(EnvError, match="cannot make 'Pendulum-v1'.*'no_such_kwarg'") as info:
        make_vec_env("Pendulum-v1", no_such_kwarg=1)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("num_envs", [0, -2, 1.5, True])
def test_bad_num_envs(num_envs):
    with pytest.raises(EnvError, match="num_envs must be a positive integer"):
        make_vec_env("Pendulum-v1", num_envs=num_envs)


# ---- spaces ---------------------------------------------------------------------------------

UNSUPPORTED = {
    "dict obs": (spaces.Dict({"x": FLAT_OBS}), UNIT_BOX, "observation space Dict"),
    "tuple obs": (spaces.Tuple((FLAT_OBS, FLAT_OBS)), UNIT_BOX, "observation space Tuple"),
    "discrete obs": (spaces.Discrete(16), UNIT_BOX, "observation space Discrete(16)"),
    "multibinary obs": (spaces.MultiBinary(4), UNIT_BOX, "observation space MultiBinary"),
    "image obs": (
        spaces.Box(0, 255, (84, 84, 3), np.uint8),
        spaces.Discrete(4),
        "observation space Box(shape=(84, 84, 3), dtype=uint8)",
    ),
    "matrix obs": (spaces.Box(-1, 1, (4, 2), np.float32), UNIT_BOX, "not one with 2 dims"),
    # 1-D MultiDiscrete and MultiBinary actions are supported (SAC); 2-D ones are not.
    "matrix multidiscrete act": (FLAT_OBS, spaces.MultiDiscrete([[3, 3], [3, 3]]),
                                 "action space MultiDiscrete"),
    "matrix multibinary act": (FLAT_OBS, spaces.MultiBinary([2, 3]), "action space MultiBinary"),
    "tuple act": (FLAT_OBS, spaces.Tuple((UNIT_BOX, spaces.Discrete(2))), "action space Tuple"),
    "dict act": (FLAT_OBS, spaces.Dict({"a": UNIT_BOX}), "action space Dict"),
    "infinite act": (FLAT_OBS, spaces.Box(-np.inf, np.inf, (2,), np.float32), "infinite bounds"),
    "half-bounded act": (
        FLAT_OBS,
        spaces.Box(np.float32([-1.0, 0.0]), np.float32([1.0, np.inf])),
        "infinite bounds",
    ),
    "matrix act": (FLAT_OBS, spaces.Box(-1, 1, (2, 2), np.float32), "not a Box with 2 dims"),
    "integer box act": (FLAT_OBS, spaces.Box(0, 10, (2,), np.int64), "integer-valued Box"),
}


@pytest.mark.parametrize("case", list(UNSUPPORTED))
def test_unsupported_spaces_raise_one_line_env_error(case):
    observation_space, action_space, found = UNSUPPORTED[case]
    # Through a real env, both ways of making one...
    for factory in (make_env, make_vec_env):
        with pytest.raises(EnvError) as info:
            factory(SPACES_ID, observation_space=observation_space, action_space=action_space)
        message = str(info.value)
        assert "\n" not in message
        assert found in message  # what was found
        assert "pathwise supports" in message  # and what would work
    # ...and directly.
    with pytest.raises(EnvError):
        check_spaces(observation_space, action_space)


@pytest.mark.parametrize(
    "observation_space, action_space",
    [
        (spaces.Box(-np.inf, np.inf, (5,), np.float64), spaces.Discrete(3)),  # CartPole-like
        (spaces.Box(0, 255, (128,), np.uint8), spaces.Discrete(18)),  # Atari RAM: cast to float
        (FLAT_OBS, spaces.Box(np.array([0.0, -3.0]), np.array([1.0, 5.0]), dtype=np.float64)),
    ],
)
def test_supported_spaces_pass(observation_space, action_space):
    check_spaces(observation_space, action_space)


# ---- action rescaling -----------------------------------------------------------------------


@pytest.mark.parametrize("as_tensor", [False, True])
def test_scale_action_maps_policy_box_onto_env_box(as_tensor):
    low, high = np.array([-2.0, 0.0, -0.1]), np.array([2.0, 1.0, 0.3])
    policy = np.array([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [3.0, -7.0, 1.0]])
    if as_tensor:
        policy = torch.as_tensor(policy)
    scaled = np.asarray(scale_action(policy, low, high))
    np.testing.assert_array_equal(scaled[0], low)
    np.testing.assert_array_equal(scaled[1], high)  # exact, not high ± rounding
    np.testing.assert_allclose(scaled[2], (low + high) / 2)
    np.testing.assert_array_equal(scaled[3], [2.0, 0.0, 0.3])  # out of range: clipped


def test_step_rescales_actions_to_pendulum_bounds():
    with make_vec_env("Pendulum-v1", num_envs=3) as vec:
        assert not vec.is_discrete and vec.action_dim == 1 and vec.obs_dim == 3
        vec.reset()
        vec.step(torch.tensor([[-1.0], [1.0], [0.5]]))
        applied = [env.last_u for env in _unwrapped_sub_envs(vec)]
    np.testing.assert_allclose(np.ravel(applied), [-2.0, 2.0, 1.0])


def test_step_rescales_actions_to_asymmetric_bounds_in_env_dtype():
    action_space = spaces.Box(np.array([0.0, -3.0]), np.array([1.0, 5.0]), dtype=np.float64)
    with make_vec_env(SPACES_ID, 2, observation_space=FLAT_OBS, action_space=action_space) as vec:
        np.testing.assert_array_equal(vec.action_low, [0.0, -3.0])
        vec.reset()
        vec.step(torch.tensor([[-1.0, 1.0], [0.0, -1.0]]))
        first, second = (env.last_action for env in _unwrapped_sub_envs(vec))
    assert first.dtype == np.float64
    np.testing.assert_allclose(first, [0.0, 5.0])
    np.testing.assert_allclose(second, [0.5, -3.0])


def test_discrete_indices_are_offset_by_the_space_start():
    action_space = spaces.Discrete(3, start=-1)
    with make_vec_env(SPACES_ID, 3, observation_space=FLAT_OBS, action_space=action_space) as vec:
        assert vec.is_discrete and vec.action_dim == 3
        vec.reset()
        vec.step(torch.tensor([0, 1, 2]))
        assert [int(env.last_action) for env in _unwrapped_sub_envs(vec)] == [-1, 0, 1]


def test_continuous_bandit_through_the_vector_env():
    with make_vec_env(CONTINUOUS_BANDIT_ID, 2, dim=2, target=0.5) as vec:
        assert vec.obs_dim == 1 and vec.action_dim == 2
        vec.reset()
        result = vec.step(torch.tensor([[0.5, 0.5], [-1.0, 1.0]]))
    torch.testing.assert_close(result.reward, torch.tensor([0.0, -(1.5**2 + 0.5**2)]))
    assert result.terminated.all() and result.episode_lengths == [1, 1]


def test_discrete_bandit_pays_the_reward_of_each_index():
    with make_vec_env(DISCRETE_BANDIT_ID, 3, rewards=(0.0, 0.5, 1.0)) as vec:
        vec.reset()
        result = vec.step(torch.tensor([2, 0, 1]))
    torch.testing.assert_close(result.reward, torch.tensor([1.0, 0.0, 0.5]))
    assert result.terminated.all() and not result.truncated.any()
    assert result.episode_returns == [1.0, 0.0, 0.5] and result.episode_lengths == [1, 1, 1]


@pytest.mark.parametrize(
    "env_id, actions, match",
    [
        ("Pendulum-v1", torch.zeros(2), r"shape \(2, 1\)"),
        ("CartPole-v1", torch.zeros(2, 2), r"shape \(2,\)"),
        ("CartPole-v1", torch.zeros(2), "integer indices"),
        ("CartPole-v1", torch.tensor([0, 2]), r"\[0, 2\)"),
    ],
)
def test_malformed_actions_are_rejected(env_id, actions, match):
    with make_vec_env(env_id, num_envs=2) as vec:
        vec.reset()
        with pytest.raises(ValueError, match=match):
            vec.step(actions)


def test_step_before_reset_is_an_error():
    with make_vec_env("CartPole-v1") as vec, pytest.raises(RuntimeError, match="reset"):
        vec.step(torch.tensor([0]))


def test_vector_env_must_autoreset_in_the_same_step():
    next_step = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")])
    with pytest.raises(ValueError, match="SAME_STEP"):
        TorchVecEnv(next_step, env_id="CartPole-v1")
    next_step.close()


# ---- tensors and devices --------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_tensors_are_float32_on_the_requested_device(device):
    float64_obs = spaces.Box(-np.inf, np.inf, (4,), np.float64)
    with make_vec_env(
        SPACES_ID, 2, device=device, observation_space=float64_obs, action_space=UNIT_BOX
    ) as vec:
        obs = vec.reset()
        result = vec.step(vec.random_actions())
    expected_device = torch.device(device)
    for name, tensor, dtype, shape in [
        ("reset obs", obs, torch.float32, (2, 4)),
        ("obs", result.obs, torch.float32, (2, 4)),
        ("next_obs", result.next_obs, torch.float32, (2, 4)),
        ("reward", result.reward, torch.float32, (2,)),
        ("terminated", result.terminated, torch.bool, (2,)),
        ("truncated", result.truncated, torch.bool, (2,)),
    ]:
        assert tensor.dtype == dtype, name
        assert tensor.device.type == expected_device.type, name
        assert tuple(tensor.shape) == shape, name


@pytest.mark.parametrize("device", DEVICES)
def test_random_actions_live_in_the_policy_space(device):
    with make_vec_env("Pendulum-v1", 64, device=device) as vec:
        vec.reset()
        actions = vec.random_actions()
    assert actions.shape == (64, 1) and actions.dtype == torch.float32
    assert actions.device.type == torch.device(device).type
    assert actions.min() >= -1 and actions.max() <= 1
    assert actions.min() < -0.5 and actions.max() > 0.5  # spread over [-1, 1], not [-2, 2]

    with make_vec_env("CartPole-v1", 64, device=device) as vec:
        vec.reset()
        actions = vec.random_actions()
    assert actions.shape == (64,) and actions.dtype == torch.long
    assert set(actions.tolist()) == {0, 1}


# ---- episode ends ---------------------------------------------------------------------------


def test_time_limit_is_truncation_not_termination():
    with make_vec_env("Pendulum-v1", num_envs=2, max_episode_steps=5) as vec:
        vec.reset()
        returns = torch.zeros(2, dtype=torch.float64)
        for step in range(1, 6):
            result = vec.step(vec.random_actions())
            returns += result.reward.double()
            assert not result.terminated.any()  # Pendulum never terminates
            assert bool(result.truncated.all()) == (step == 5)
            if step < 5:
                assert result.episode_returns == [] and result.episode_lengths == []
                torch.testing.assert_close(result.next_obs, result.obs)
        # After the time limit: a fresh episode to act from, the final state to store.
        assert not torch.equal(result.next_obs, result.obs)
    assert result.episode_lengths == [5, 5]
    np.testing.assert_allclose(result.episode_returns, returns.numpy(), rtol=1e-5)


def test_failure_is_termination_not_truncation():
    with make_vec_env("CartPole-v1", num_envs=2, seed=3) as vec:
        vec.reset()
        steps = 0
        while steps < 100:
            # Always pushing left topples the pole within a few dozen steps.
            result = vec.step(torch.zeros(2, dtype=torch.long))
            steps += 1
            assert not result.truncated.any()
            if result.terminated.any():
                break
        assert result.terminated.any()
        assert result.episode_lengths == [steps] * int(result.terminated.sum())
        assert result.episode_returns == [float(steps)] * int(result.terminated.sum())


# ---- seeding --------------------------------------------------------------------------------


def _rollout(env_id, seed, steps=15, num_envs=2):
    with make_vec_env(env_id, num_envs=num_envs, seed=seed, max_episode_steps=6) as vec:
        trajectory = [vec.reset()]
        for _ in range(steps):
            actions = vec.random_actions()
            result = vec.step(actions)
            trajectory += [actions.double(), result.obs, result.next_obs, result.reward]
    return trajectory


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "CartPole-v1"])
def test_same_seed_same_trajectory_different_seed_different(env_id):
    first, again, other = _rollout(env_id, 7), _rollout(env_id, 7), _rollout(env_id, 8)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def reset_states(seed: int, num_envs: int = 2, steps: int = 800) -> list[bytes]:
    """Every start state the sub-envs of a run seeded ``seed`` reset to, in ``steps``
    random steps of CartPole (an episode lasts ~20 steps under random actions)."""
    starts = []
    with make_vec_env("CartPole-v1", num_envs=num_envs, seed=seed) as vec:
        obs = vec.reset()
        starts += [row.numpy().tobytes() for row in obs]
        for _ in range(steps):
            result = vec.step(vec.random_actions())
            starts += [result.obs[i].numpy().tobytes() for i, done in enumerate(result.done)
                       if done]
    return starts


def test_runs_of_different_seeds_share_no_reset_stream():
    """With sub-env i seeded seed + i, run 0's env 1 replayed run 1's env 0 episode for
    episode; every stream is now derived with SeedSequence (envs/seeding.py)."""
    runs = [reset_states(seed) for seed in range(3)]
    assert all(len(starts) > 40 for starts in runs)
    for starts in runs:
        assert len(set(starts)) == len(starts)  # no start repeats within a run either
    for a in range(3):
        for b in range(a + 1, 3):
            assert not set(runs[a]) & set(runs[b])
    assert reset_states(1) == runs[1]  # and a seed replays exactly


def test_derived_seeds_are_pure_and_distinct_per_stream_and_key():
    from pathwise.envs.seeding import ENVS, EVALUATION, RESUME, derive_seeds

    assert derive_seeds(3, 4, ENVS) == derive_seeds(3, 4, ENVS)
    drawn = derive_seeds(3, 4, ENVS) + derive_seeds(4, 4, ENVS) + derive_seeds(3, 4, EVALUATION) \
        + derive_seeds(3, 1, RESUME, 100) + derive_seeds(3, 1, RESUME, 200)
    assert len(set(drawn)) == len(drawn)
    assert derive_seeds(3, 2, ENVS) == derive_seeds(3, 4, ENVS)[:2]  # more envs add streams


def test_explicit_reset_seed_replays_the_start():
    with make_vec_env("Pendulum-v1", num_envs=2, seed=0) as vec:
        first, first_actions = vec.reset(), vec.random_actions()
        vec.step(first_actions)
        assert not torch.equal(vec.reset(), first)  # unseeded reset: the stream goes on
        torch.testing.assert_close(vec.reset(seed=0), first, rtol=0, atol=0)
        torch.testing.assert_close(vec.random_actions(), first_actions, rtol=0, atol=0)


def test_make_env_seed_applies_to_the_first_reset():
    seeded = make_env("Pendulum-v1", seed=5)
    reference = gym.make("Pendulum-v1")
    np.testing.assert_array_equal(seeded.reset()[0], reference.reset(seed=5)[0])
    np.testing.assert_array_equal(seeded.reset()[0], reference.reset()[0])  # then continues
    assert seeded.action_space.sample() == make_env("Pendulum-v1", seed=5).action_space.sample()
