"""The bandit testbeds: registration, Gymnasium's env checker, and their closed forms checked
against Monte-Carlo estimates through the envs' own rewards and against autograd."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import pathwise.envs  # noqa: F401  (registers the testbeds)
from pathwise.envs import make_env
from pathwise.envs.testbeds import (
    CONTINUOUS_BANDIT_ID,
    DISCRETE_BANDIT_ID,
    MULTI_DISCRETE_BANDIT_ID,
    ContinuousBandit,
    DiscreteBandit,
    factorized_expected_reward,
    factorized_policy_gradient,
    gaussian_expected_reward,
    gaussian_policy_gradient,
    optimal_action,
    soft_optimal_policy,
    softmax_expected_reward,
    softmax_policy_gradient,
)

# Monte-Carlo checks accept |estimate − exact| < Z_TOL standard errors (fixed seeds, so a pass
# is reproducible; a correct formula fails with probability ~6e-7 per component).
Z_TOL = 5.0


def _assert_within_standard_errors(samples: np.ndarray, exact: np.ndarray) -> None:
    """samples: (N, ...) per-sample estimates of `exact`; also require that the test can fail,
    i.e. the tolerance is well below the size of what is being estimated."""
    mean = samples.mean(axis=0)
    se = samples.std(axis=0, ddof=1) / np.sqrt(len(samples))
    assert np.all(np.abs(mean - exact) < Z_TOL * se), (mean, exact, se)
    assert np.all(Z_TOL * se < 0.5 * np.abs(exact) + 1e-12), ("too noisy to discriminate", se)


@pytest.mark.parametrize("env_id", [CONTINUOUS_BANDIT_ID, DISCRETE_BANDIT_ID,
                                    MULTI_DISCRETE_BANDIT_ID])
def test_testbeds_are_registered_on_import(env_id):
    assert env_id in gym.registry
    env = make_env(env_id)
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (1,) and np.all(obs == 0)
    _, _, terminated, truncated, _ = env.step(env.action_space.sample())
    assert terminated and not truncated  # one step, ended by the env rather than a time limit


@pytest.mark.parametrize(
    "env_id, kwargs",
    [
        (CONTINUOUS_BANDIT_ID, {}),
        (CONTINUOUS_BANDIT_ID, {"dim": 3, "target": [0.5, -0.2, 1.0]}),
        (DISCRETE_BANDIT_ID, {}),
        (DISCRETE_BANDIT_ID, {"rewards": [1.0, -2.0]}),
        (MULTI_DISCRETE_BANDIT_ID, {}),
        (MULTI_DISCRETE_BANDIT_ID, {"nvec": [2, 4, 3], "targets": [1, 5, 2], "start": [0, 2, 1]}),
        (MULTI_DISCRETE_BANDIT_ID, {"binary": True, "targets": [1, 0, 1]}),
    ],
)
def test_testbeds_pass_gymnasium_env_checker(env_id, kwargs):
    env = gym.make(env_id, **kwargs).unwrapped  # the checker wants the env without wrappers
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker reports most problems as warnings
        check_env(env)


def test_continuous_bandit_reward_and_optimum():
    env = ContinuousBandit(dim=2, target=[0.5, -0.25])
    env.reset(seed=0)
    _, best, *_ = env.step(np.array([0.5, -0.25], dtype=np.float32))
    _, worse, *_ = env.step(np.array([-1.0, 1.0], dtype=np.float32))
    assert best == 0.0
    assert worse == pytest.approx(-(1.5**2 + 1.25**2))
    # Not clipped: an unsquashed Gaussian's draws outside the box keep the same formula.
    _, outside, *_ = env.step(np.array([2.5, -0.25], dtype=np.float32))
    assert outside == pytest.approx(-4.0)


@pytest.mark.parametrize(
    "kwargs", [{"dim": 0}, {"dim": 2, "target": [0.1, 0.2, 0.3]}, {"target": 1.5}]
)
def test_continuous_bandit_rejects_bad_kwargs(kwargs):
    with pytest.raises(ValueError):
        ContinuousBandit(**kwargs)


@pytest.mark.parametrize("rewards", [[], [[1.0, 2.0]], [0.0, float("nan")]])
def test_discrete_bandit_rejects_bad_rewards(rewards):
    with pytest.raises(ValueError):
        DiscreteBandit(rewards=rewards)


def test_gaussian_gradient_matches_autograd_of_exact_expectation():
    mu = torch.tensor([0.1, -0.3, 0.9], dtype=torch.float64, requires_grad=True)
    sigma = torch.tensor([0.3, 0.5, 0.05], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0.5, 0.5, -0.2], dtype=torch.float64)
    gaussian_expected_reward(mu, sigma, target).backward()
    grad_mu, grad_sigma = gaussian_policy_gradient(mu.detach(), sigma.detach(), target)
    torch.testing.assert_close(mu.grad, grad_mu)
    torch.testing.assert_close(sigma.grad, grad_sigma)
    # The numpy path gives the same numbers.
    np_mu, np_sigma = gaussian_policy_gradient(
        mu.detach().numpy(), sigma.detach().numpy(), target.numpy()
    )
    np.testing.assert_allclose(np_mu, grad_mu.numpy())
    np.testing.assert_allclose(np_sigma, grad_sigma.numpy())


def test_gaussian_closed_form_matches_monte_carlo_through_env_rewards():
    # Close enough to the target that the rewards, hence the score-function noise, stay small.
    mu = np.array([0.3, 0.6])
    sigma = np.array([0.3, 0.5])
    target = 0.5
    n = 20_000
    rng = np.random.default_rng(0)
    actions = mu + sigma * rng.standard_normal((n, 2))

    env = make_env(CONTINUOUS_BANDIT_ID, dim=2, target=target)
    rewards = np.empty(n)
    env.reset(seed=0)
    for i, action in enumerate(actions):
        _, rewards[i], *_ = env.step(action.astype(np.float32))
        env.reset()
    # The env casts to float32 on the way in; recompute the draws as the env saw them.
    actions = actions.astype(np.float32).astype(np.float64)

    exact_reward = gaussian_expected_reward(mu, sigma, target)
    _assert_within_standard_errors(rewards, exact_reward)

    # Score-function (likelihood-ratio) estimates, unbiased for any reward:
    # ∇μ log N(a; μ, σ²) = (a − μ)/σ², ∇σ log N = ((a − μ)² − σ²)/σ³.
    score_mu = (actions - mu) / sigma**2
    score_sigma = ((actions - mu) ** 2 - sigma**2) / sigma**3
    grad_mu, grad_sigma = gaussian_policy_gradient(mu, sigma, target)
    _assert_within_standard_errors(rewards[:, None] * score_mu, grad_mu)
    _assert_within_standard_errors(rewards[:, None] * score_sigma, grad_sigma)


def test_softmax_gradient_matches_autograd_of_exact_expectation():
    rewards = torch.tensor([0.0, 0.5, 1.0, -0.7], dtype=torch.float64)
    logits = torch.tensor([[0.2, -0.5, 0.3, 1.1], [3.0, 0.0, -2.0, 0.5]], dtype=torch.float64)
    logits.requires_grad_(True)
    softmax_expected_reward(logits, rewards).sum().backward()
    torch.testing.assert_close(logits.grad, softmax_policy_gradient(logits.detach(), rewards))
    np.testing.assert_allclose(
        softmax_policy_gradient(logits.detach().numpy(), rewards.numpy()), logits.grad.numpy()
    )


def test_softmax_gradient_matches_monte_carlo_through_env_rewards():
    rewards = np.array([0.0, 0.5, 1.0])
    logits = np.array([1.0, 0.0, -1.0])  # every gradient component well away from 0
    pi = np.exp(logits) / np.exp(logits).sum()
    n = 20_000
    actions = np.random.default_rng(1).choice(3, size=n, p=pi)

    env = make_env(DISCRETE_BANDIT_ID, rewards=tuple(rewards))
    observed = np.empty(n)
    env.reset(seed=0)
    for i, action in enumerate(actions):
        _, observed[i], *_ = env.step(int(action))
        env.reset()

    _assert_within_standard_errors(observed, softmax_expected_reward(logits, rewards))
    # Score function of a softmax: ∇_logits log π(a) = onehot(a) − π.
    score = np.eye(3)[actions] - pi
    _assert_within_standard_errors(
        observed[:, None] * score, softmax_policy_gradient(logits, rewards)
    )


@pytest.mark.parametrize("alpha", [0.1, 0.5, 2.0])
def test_soft_optimal_policy_maximises_entropy_regularised_reward(alpha):
    rewards = torch.tensor([0.0, 0.5, 1.0, 0.2], dtype=torch.float64)

    def objective(logits):
        pi = torch.softmax(logits, -1)
        return (pi * rewards).sum(-1) - alpha * (pi * torch.log(pi)).sum(-1)

    pi_star = soft_optimal_policy(rewards, alpha)
    torch.testing.assert_close(pi_star.sum(), torch.tensor(1.0, dtype=torch.float64))
    logits = torch.log(pi_star).requires_grad_(True)
    best = objective(logits)
    best.backward()
    # Stationary point...
    torch.testing.assert_close(logits.grad, torch.zeros_like(logits.grad), atol=1e-10, rtol=0)
    # ...and a maximum: random other policies score lower.
    others = torch.randn(256, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.all(objective(logits.detach() + others) < best.detach())
    np.testing.assert_allclose(soft_optimal_policy(rewards.numpy(), alpha), pi_star.numpy())


def test_soft_optimum_tends_to_the_plain_optimum():
    rewards = [0.0, 0.5, 1.0]
    assert optimal_action(rewards) == 2
    assert optimal_action(torch.tensor(rewards)) == 2
    assert soft_optimal_policy(rewards, alpha=1e-3)[2] > 1 - 1e-9
    np.testing.assert_allclose(
        soft_optimal_policy(rewards, alpha=1e6), np.full(3, 1 / 3), atol=1e-6
    )
    with pytest.raises(ValueError):
        soft_optimal_policy(rewards, alpha=0.0)


NVEC, TARGETS = (3, 5, 2), (2, 0, 1)


def _joint_logits() -> torch.Tensor:
    # Padded to 5 values per factor (probability 0 past n_j), as the factorized policy is.
    logits = torch.tensor([[0.3, -0.4, 0.9, 0.0, 0.0], [0.6, 0.4, -0.2, 0.1, -0.3],
                           [-0.3, 0.6, 0.0, 0.0, 0.0]], dtype=torch.float64)
    pad = torch.arange(5) >= torch.tensor(NVEC)[:, None]
    return logits.masked_fill(pad, -1e4)


def test_factorized_gradient_matches_autograd_of_the_sum_over_the_joint_set():
    import itertools

    logits = _joint_logits().requires_grad_(True)
    log_pi = logits.log_softmax(-1)
    # E[r] by brute force: every one of the 3·5·2 joint actions, its probability Π_j π_j(a_j)
    # times the reward Σ_j 1[a_j = k_j].
    total = sum(torch.exp(sum(log_pi[j, a] for j, a in enumerate(joint)))
                * sum(float(a == k) for a, k in zip(joint, TARGETS))
                for joint in itertools.product(*[range(n) for n in NVEC]))
    (grad,) = torch.autograd.grad(total, logits)
    torch.testing.assert_close(factorized_expected_reward(logits.detach(), TARGETS), total.detach())
    torch.testing.assert_close(factorized_policy_gradient(logits.detach(), TARGETS), grad)
    np.testing.assert_allclose(factorized_policy_gradient(logits.detach().numpy(), TARGETS),
                               grad.numpy(), atol=1e-12)


def test_factorized_closed_form_matches_monte_carlo_through_env_rewards():
    logits = _joint_logits().numpy()
    pi = np.exp(logits - logits.max(-1, keepdims=True))
    pi /= pi.sum(-1, keepdims=True)
    n = 20_000
    rng = np.random.default_rng(2)
    actions = np.stack([rng.choice(5, size=n, p=pi[j]) for j in range(3)], -1)  # (n, 3)
    env = make_env(MULTI_DISCRETE_BANDIT_ID, nvec=NVEC, targets=TARGETS)
    observed = np.empty(n)
    env.reset(seed=0)
    for i, action in enumerate(actions):
        _, observed[i], *_ = env.step(action)
        env.reset()
    _assert_within_standard_errors(observed, factorized_expected_reward(logits, TARGETS))
    # Score function of a factorized softmax: ∇_{l_j} log π(a) = onehot(a_j) − π_j, with a
    # constant baseline (E[score] = 0: unbiased, less noise); the padded values (gradient
    # exactly 0) are left out of the comparison.
    score = np.eye(5)[actions] - pi  # (n, 3, 5)
    real = np.arange(5) < np.array(NVEC)[:, None]
    _assert_within_standard_errors(((observed - 1.0)[:, None, None] * score)[:, real],
                                   factorized_policy_gradient(logits, TARGETS)[real])


def test_multidiscrete_bandit_refuses_actions_and_targets_outside_its_space():
    env = make_env(MULTI_DISCRETE_BANDIT_ID)
    env.reset(seed=0)
    for action in ([3, 0], [2.7, 0]):
        with pytest.raises(ValueError, match="outside"):
            env.step(np.array(action))
    for kwargs, words in (({"targets": (3, 0)}, "not an action"),
                          ({"binary": True, "targets": (2, 0)}, "not an action"),
                          ({"targets": (1,)}, "one entry per sub-action")):
        with pytest.raises(ValueError, match=words):
            make_env(MULTI_DISCRETE_BANDIT_ID, **kwargs)
    with pytest.raises(ValueError, match="one index"):
        factorized_policy_gradient(np.zeros((3, 5)), (0, 1))
