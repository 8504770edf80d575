"""``action_bins`` and factorized action spaces in the envs: the bin map against its formula,
the wrapper and both vector adapters against Gymnasium's own envs, MultiDiscrete starts and
MultiBinary, and one-line refusals."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from pathwise.envs import EnvError, check_spaces, make_env, make_vec_env
from pathwise.envs.discretize import DiscretizeActions, action_layout, binned_space
from pathwise.spaces import bin_action
from tests._multidiscrete import MULTI_BANDIT_ID

OBS = spaces.Box(-1.0, 1.0, (3,), np.float32)


def test_bin_i_of_n_is_low_plus_i_steps_of_the_range_over_n_minus_one():
    low, high = np.array([-2.0, 0.0, -1.0]), np.array([2.0, 1.0, 3.0])
    index = np.array([[0, 0, 0], [10, 10, 10], [5, 3, 7], [1, 9, 2]])
    got = bin_action(index, low, high, 11)
    expected = np.array([[-2.0, 0.0, -1.0], [2.0, 1.0, 3.0], [0.0, 0.3, 1.8],
                         [-1.6, 0.9, -0.2]])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert got[0].tolist() == low.tolist() and got[1].tolist() == high.tolist()  # exact ends
    # Odd N on a symmetric box: the middle bin is exactly 0 (Pendulum's no-torque action).
    assert bin_action(np.array([5]), [-2.0], [2.0], 11).item() == 0.0
    # The torch form (on the tensor's device) gives the same values.
    t = bin_action(torch.as_tensor(index), low, high, 11)
    assert t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="at least 2 bins"):
        bin_action(index, low, high, 1)


def test_wrapper_steps_the_inner_env_with_the_bin_values():
    env = DiscretizeActions(gym.make("Pendulum-v1"), 11)
    reference = gym.make("Pendulum-v1")
    assert env.action_space == spaces.MultiDiscrete([11])
    env.reset(seed=3)
    reference.reset(seed=3)
    for i in (0, 10, 7, 5):  # torques −2, 2, 0.8, 0: Gymnasium's own Pendulum is the oracle
        obs, reward, *_ = env.step(np.array([i]))
        ref_obs, ref_reward, *_ = reference.step(np.array([-2.0 + 0.4 * i], np.float32))
        np.testing.assert_array_equal(obs, ref_obs)
        assert reward == ref_reward


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "pathwise/Pendulum-v1"])
def test_adapters_map_bin_indices_onto_the_box_as_gymnasium_steps_them(env_id):
    """Gymnasium's Pendulum-v1 stepped with the Box value of each bin is the oracle for the
    Gymnasium adapter and for the torch env's adapter."""
    envs = make_vec_env(env_id, num_envs=3, seed=0, action_bins=11)
    assert (envs.is_discrete, envs.action_dim, envs.action_nvec, envs.action_bins) == \
        (True, 1, (11,), 11)
    assert list(envs.action_low) == [-2.0] and list(envs.action_high) == [2.0]
    envs.reset(seed=1)
    reference = [gym.make("Pendulum-v1") for _ in range(3)]
    # Start the oracle envs from the adapter's states.
    if env_id.startswith("pathwise/"):
        states = envs.env.state.double().numpy()
    else:
        states = np.stack([e.unwrapped.state for e in envs.vec_env.unwrapped.envs])
    for ref, state in zip(reference, states):
        ref.reset(seed=0)
        ref.unwrapped.state = np.array(state, dtype=np.float64)
    for bins in ([0, 10, 5], [3, 8, 1]):
        result = envs.step(torch.tensor(bins).view(3, 1))
        for i, (ref, b) in enumerate(zip(reference, bins)):
            ref_obs, ref_reward, *_ = ref.step(np.array([-2.0 + 0.4 * b], np.float32))
            np.testing.assert_allclose(result.obs[i].numpy(), ref_obs, rtol=1e-5, atol=1e-5)
            assert result.reward[i].item() == pytest.approx(ref_reward, rel=1e-5, abs=1e-5)
    random = envs.random_actions()
    assert random.dtype == torch.long and random.shape == (3, 1)
    assert 0 <= random.min() and random.max() <= 10
    envs.close()


def test_adapter_refuses_bin_indices_out_of_range_and_of_the_wrong_shape():
    envs = make_vec_env("Pendulum-v1", num_envs=2, seed=0, action_bins=5)
    envs.reset()
    with pytest.raises(ValueError, match=r"\[0, nvec\)"):
        envs.step(torch.tensor([[5], [0]]))
    with pytest.raises(ValueError, match="shape"):
        envs.step(torch.tensor([0, 1]))
    envs.close()


@pytest.mark.parametrize("binary", [False, True])
def test_multidiscrete_and_multibinary_actions_reach_the_env_with_their_start(binary):
    kwargs = {"binary": binary, "targets": (1, 0, 1)} if binary else {}
    envs = make_vec_env(MULTI_BANDIT_ID, num_envs=2, seed=0, **kwargs)
    nvec = (2, 2, 2) if binary else (3, 5)
    assert (envs.is_discrete, envs.action_nvec, envs.action_dim, envs.action_bins) == \
        (True, nvec, len(nvec), 0)
    assert envs.action_low is None
    envs.reset()
    actions = torch.tensor([[1, 0, 1], [0, 0, 0]]) if binary else torch.tensor([[2, 1], [0, 4]])
    result = envs.step(actions)
    subs = envs.vec_env.unwrapped.envs
    sent = [np.asarray(e.unwrapped.last_action) for e in subs]
    # MultiDiscrete(nvec, start=(1, 0)): index j ↦ start_j + index_j.
    offset = np.zeros(3) if binary else np.array([1, 0])
    for row, got in zip(actions.numpy(), sent):
        np.testing.assert_array_equal(got, row + offset)
    # The bandit pays one per sub-action at its target: (3, 1) resp. (1, 0, 1).
    assert result.reward.tolist() == ([3.0, 1.0] if binary else [2.0, 0.0])
    random = envs.random_actions()
    assert random.shape == (2, len(nvec)) and random.dtype == torch.long
    assert torch.all(random < torch.tensor(nvec)) and torch.all(random >= 0)
    envs.close()


def test_action_layouts():
    box = spaces.Box(np.float32([-1, 0]), np.float32([1, 2]))
    assert action_layout(box).discrete is False and action_layout(box).nvec is None
    binned = action_layout(box, 7)
    assert (binned.discrete, binned.dim, binned.nvec, binned.bins) == (True, 2, (7, 7), 7)
    assert binned_space(box, 7) == spaces.MultiDiscrete([7, 7])
    assert action_layout(spaces.MultiBinary(4)).nvec == (2, 2, 2, 2)
    md = action_layout(spaces.MultiDiscrete([3, 4], start=[2, -1]))
    assert (md.dim, md.nvec, md.start) == (2, (3, 4), (2, -1))
    assert action_layout(spaces.Discrete(5, start=1)).start == 1
    for space in (spaces.MultiDiscrete([3, 4]), spaces.MultiBinary(3)):
        check_spaces(OBS, space)  # supported


@pytest.mark.parametrize("env_id,bins,message", [
    ("CartPole-v1", 5, "action_bins=5 discretizes a Box action space; CartPole-v1 has Discrete"),
    ("pathwise/CartPole-v1", 5, "pathwise/CartPole-v1 has Discrete actions"),
    ("Pendulum-v1", 1, "action_bins must be an integer >= 2"),
    (MULTI_BANDIT_ID, 3, "has MultiDiscrete actions"),
])
def test_bins_on_a_space_they_cannot_cut_raise_one_line(env_id, bins, message):
    with pytest.raises(EnvError) as info:
        make_vec_env(env_id, num_envs=1, action_bins=bins)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_bins_of_an_unbounded_box_are_refused():
    with pytest.raises(EnvError, match="finite bounds"):
        action_layout(spaces.Box(-np.inf, np.inf, (2,), np.float32), 5)
    env = make_env("Pendulum-v1")
    with pytest.raises(EnvError, match="integer >= 2"):
        DiscretizeActions(env, 0)
    env.close()


def test_the_torch_env_trains_on_the_torques_evaluation_sends_gymnasium():
    # Training on pathwise/Pendulum-v1 and evaluating on Gymnasium's Pendulum-v1 must apply
    # the same float32 torque for each bin: −2 + i·4/10 in float64, then cast (a float32
    # formula on the device is 1 ulp off for five of the eleven bins).
    import pathwise.envs  # noqa: F401  (registers the torch envs)
    from pathwise.policies.policy import Policy

    envs = make_vec_env("pathwise/Pendulum-v1", num_envs=11, seed=0, action_bins=11)
    envs.reset()
    sent = []
    step = envs.env.step
    envs.env.step = lambda actions: (sent.append(actions.clone()), step(actions))[1]
    bins = torch.arange(11)[:, None]
    envs.step(bins)
    expected = np.float32([[-2.0 + i * 4.0 / 10] for i in range(11)])
    np.testing.assert_array_equal(sent[0].cpu().numpy(), expected)
    box = gym.make("Pendulum-v1").action_space
    policy = Policy(3, 1, True, [4], action_low=box.low, action_high=box.high,
                    action_nvec=[11], action_bins=11)
    np.testing.assert_array_equal(policy.to_env_action(bins), expected)
