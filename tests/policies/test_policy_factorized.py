"""The factorized policy head (MultiDiscrete, MultiBinary, action_bins): padding of unequal
sub-actions, per-sub-action entropy against torch's Categorical, the spec and the saved file,
``predict`` in the env's units and ``mismatch``."""

import math

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch.distributions import Categorical, Independent

from pathwise.policies.distributions import GumbelSoftmax
from pathwise.policies.policy import PAD_LOGIT, Policy
from pathwise.training.checkpoint import load_policy, save_policy

OBS = spaces.Box(-1.0, 1.0, (3,), np.float32)


def padded_policy(seed: int = 0) -> Policy:
    torch.manual_seed(seed)
    return Policy(3, 3, True, [16], action_nvec=[2, 4, 3], action_start=[0, 1, -1])


def test_unequal_sub_actions_are_padded_with_zero_probability_values():
    policy = padded_policy()
    dist = policy.distribution(torch.randn(5, 3))
    assert isinstance(dist, Independent) and isinstance(dist.base_dist, GumbelSoftmax)
    assert dist.batch_shape == (5,) and dist.event_shape == (3, 4)
    probs = dist.base_dist.probs
    assert torch.all(probs[:, 0, 2:] == 0) and torch.all(probs[:, 2, 3:] == 0)
    torch.testing.assert_close(probs.sum(-1), torch.ones(5, 3))
    # 20,000 draws of each kind: none lands on a padded value.
    for draws in (dist.sample((4000,)), dist.rsample((4000,)),
                  dist.base_dist.relaxed_sample((4000,))):
        assert torch.all(draws[..., 0, 2:] == 0) and torch.all(draws[..., 2, 3:] == 0)
    actions = policy.act(torch.randn(4000, 3))
    assert actions.shape == (4000, 3)
    assert actions[:, 0].max() <= 1 and actions[:, 1].max() <= 3 and actions[:, 2].max() <= 2
    assert actions[:, 1].max() == 3  # the longest sub-action's last value is reachable


def test_entropy_is_the_sum_of_the_sub_actions_categorical_entropies():
    policy = padded_policy()
    obs = torch.randn(6, 3)
    dist = policy.distribution(obs)
    logits = policy.net(obs).view(6, 3, 4)
    expected = sum(Categorical(logits=logits[:, j, :n]).entropy() for j, n in enumerate([2, 4, 3]))
    torch.testing.assert_close(dist.entropy(), expected)
    # And the log-probability of a joint action is the sum over sub-actions.
    action = torch.tensor([[1, 3, 0]] * 6)
    one_hot = torch.nn.functional.one_hot(action, 4).float()
    by_hand = sum(Categorical(logits=logits[:, j, :n]).log_prob(action[:, j])
                  for j, n in enumerate([2, 4, 3]))
    torch.testing.assert_close(dist.log_prob(one_hot), by_hand)


def test_padding_gets_no_gradient_and_stays_finite():
    policy = padded_policy()
    dist = policy.distribution(torch.randn(4, 3))
    assert torch.isfinite(dist.entropy()).all()
    assert (dist.base_dist.logits[:, 0, 2:] < PAD_LOGIT / 2).all()
    dist.entropy().sum().backward()
    last = policy.net[-1]
    # Output rows 2, 3 (sub-action 0) and 11 (sub-action 2) are padding: no gradient.
    for row in (2, 3, 11):
        assert torch.all(last.weight.grad[row] == 0) and last.bias.grad[row] == 0
    assert torch.any(last.weight.grad[0] != 0)


def test_equal_sub_actions_need_no_padding_and_multibinary_is_k_factors_of_two():
    policy = Policy(3, 4, True, [8], action_nvec=[2] * 4, action_start=[0] * 4)
    assert not policy.padded
    dist = policy.distribution(torch.zeros(1, 3))
    assert dist.event_shape == (4, 2)
    assert dist.entropy().item() <= 4 * math.log(2) + 1e-6


def test_bins_policy_predicts_box_actions_with_the_bin_map():
    torch.manual_seed(0)
    policy = Policy(3, 2, True, [8], action_low=[-2.0, 0.0], action_high=[2.0, 1.0],
                    action_nvec=[5, 5], action_bins=5)
    obs = np.random.default_rng(0).standard_normal((64, 3)).astype(np.float32)
    actions, state = policy.predict(obs)
    assert state is None and actions.dtype == np.float32 and actions.shape == (64, 2)
    index = policy.act(torch.as_tensor(obs), deterministic=True).numpy()
    expected = np.stack([-2.0 + index[:, 0] * 1.0, 0.0 + index[:, 1] * 0.25], -1)
    np.testing.assert_allclose(actions, expected, rtol=0, atol=1e-6)
    single, _ = policy.predict(obs[0])
    np.testing.assert_array_equal(single, actions[0])
    assert policy.mismatch(OBS, spaces.Box(np.float32([-2, 0]), np.float32([2, 1]))) is None


def test_multidiscrete_policy_predicts_indices_plus_start():
    policy = padded_policy()
    obs = np.zeros((2, 3), dtype=np.float32)
    actions, _ = policy.predict(obs)
    index = policy.act(torch.as_tensor(obs), deterministic=True).numpy()
    np.testing.assert_array_equal(actions, index + np.array([0, 1, -1]))
    space = spaces.MultiDiscrete([2, 4, 3], start=[0, 1, -1])
    assert all(space.contains(a) for a in actions)


@pytest.mark.parametrize("policy_kwargs,action_space,fits", [
    (dict(action_nvec=[2, 4, 3], action_start=[0, 1, -1]),
     spaces.MultiDiscrete([2, 4, 3], start=[0, 1, -1]), None),
    (dict(action_nvec=[2, 4, 3], action_start=[0, 1, -1]), spaces.MultiDiscrete([2, 4, 3]),
     "start at [0, 1, -1], the env's at [0, 0, 0]"),
    (dict(action_nvec=[2, 4, 3], action_start=[0, 1, -1]), spaces.MultiDiscrete([2, 4, 4]),
     "acts in MultiDiscrete([2, 4, 3]); the env has 3-dim observations and "
     "MultiDiscrete([2, 4, 4]) actions"),
    (dict(action_nvec=[2, 2, 2], action_start=[0, 0, 0]), spaces.MultiBinary(3), None),
    (dict(action_nvec=[2, 2, 2], action_start=[0, 0, 0]), spaces.Discrete(8), "Discrete(8)"),
    (dict(action_nvec=[5, 5, 5], action_bins=5, action_low=[-1] * 3, action_high=[1] * 3),
     spaces.MultiDiscrete([5, 5, 5]), "acts in Box(3,)"),
    (dict(action_nvec=[5, 5, 5], action_bins=5, action_low=[-1] * 3, action_high=[1] * 3),
     spaces.Box(-2, 2, (3,), np.float32), "the policy acts in [[-1.0, -1.0, -1.0]"),
])
def test_mismatch_names_what_does_not_fit(policy_kwargs, action_space, fits):
    policy = Policy(3, 3, True, [8], **policy_kwargs)
    problem = policy.mismatch(OBS, action_space)
    if fits is None:
        assert problem is None
    else:
        assert fits in problem and "\n" not in problem


def test_a_saved_bins_policy_loads_with_its_bins_and_acts_identically(tmp_path):
    torch.manual_seed(1)
    policy = Policy(3, 1, True, [8], action_low=[-2.0], action_high=[2.0], action_nvec=[11],
                    action_bins=11)
    save_policy(policy, tmp_path / "policy.pt", env_id="Pendulum-v1")
    loaded = load_policy(tmp_path / "policy.pt")
    assert loaded.spec() == policy.spec()
    assert loaded.spec()["action_bins"] == 11 and loaded.spec()["action_nvec"] == [11]
    assert loaded.spec()["action_low"] == [-2.0] and loaded.spec()["action_high"] == [2.0]
    obs = np.random.default_rng(0).standard_normal((32, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(obs)[0], policy.predict(obs)[0])
    # Bin values only: low + i·0.4.
    values = loaded.predict(obs)[0]
    np.testing.assert_allclose((values + 2.0) / 0.4, np.round((values + 2.0) / 0.4), atol=1e-5)
    padded = padded_policy()
    save_policy(padded, tmp_path / "md.pt")
    again = load_policy(tmp_path / "md.pt")
    assert again.padded and again.spec() == padded.spec()
    torch.testing.assert_close(again.distribution(torch.ones(2, 3)).base_dist.logits,
                               padded.distribution(torch.ones(2, 3)).base_dist.logits)


@pytest.mark.parametrize("kwargs,message", [
    (dict(discrete=False, action_nvec=[3]), "needs discrete=True"),
    (dict(discrete=True, action_nvec=[3, 3]), "action_dim = len(action_nvec)"),
    (dict(discrete=True, action_nvec=[4], action_bins=5), "action_bins=5 means"),
    (dict(discrete=True, action_bins=5), "action_bins needs action_nvec"),
])
def test_inconsistent_factorized_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Policy(3, 1, hidden_sizes=[8], **kwargs)
