"""The runner's adapter for torch envs (envs/native.py): policy-space actions, transitions
that never cross an autoreset, episode statistics kept on the device, an exact state_dict."""

from __future__ import annotations

import math

import pytest
import torch

from pathwise.envs import Pendulum, make_vec_env
from pathwise.envs.native import NativeVecEnv

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def test_a_torch_env_id_gets_the_native_adapter():
    with make_vec_env("pathwise/Pendulum-v1", num_envs=4, seed=0) as envs:
        assert isinstance(envs, NativeVecEnv)
        assert (envs.obs_dim, envs.action_dim, envs.is_discrete) == (3, 1, False)
        assert envs.reset().shape == (4, 3)


def test_policy_actions_are_rescaled_onto_the_env_bounds():
    """+1 in the policy's space is the env's maximum torque, 2."""
    with make_vec_env("pathwise/Pendulum-v1", num_envs=3, seed=1) as envs:
        envs.reset()
        state = envs.env.state.clone()
        envs.step(torch.ones(3, 1))
        twin = Pendulum(3)
        twin.reset()
        twin.state = state
        twin.step(torch.full((3, 1), 2.0))
        torch.testing.assert_close(envs.env.state, twin.state)


def test_transitions_never_cross_an_autoreset_and_statistics_match_the_rewards():
    """A 5-step time limit: the stored next_obs of the last step is the ended episode's,
    obs is a fresh start, and pop_episodes averages exactly the rewards that were paid."""
    with make_vec_env("pathwise/Pendulum-v1", num_envs=4, seed=2, max_episode_steps=5) as envs:
        obs = envs.reset()
        paid = torch.zeros(4)
        for t in range(5):
            state_before = envs.env.state.clone()
            result = envs.step(torch.zeros(4, 1))
            assert result.done is None and result.episode_returns == []
            paid += result.reward
            torch.testing.assert_close(result.next_obs, Pendulum(4).observe(
                Pendulum(4).transition(state_before, torch.zeros(4, 1))[0]))
            if t < 4:
                assert not result.truncated.any()
                assert torch.equal(result.obs, result.next_obs)
            obs = result.obs
        assert result.truncated.all()
        assert not torch.equal(obs, result.next_obs)  # acts next from new episodes
        count, mean_return, mean_length = envs.pop_episodes()
        assert (count, mean_length) == (4, 5.0)
        assert mean_return == pytest.approx(paid.mean().item(), rel=1e-6)
        assert math.isnan(envs.pop_episodes()[1])  # drained


def test_state_dict_resumes_exactly_including_the_statistics():
    with make_vec_env("pathwise/CartPole-v1", num_envs=5, seed=3) as a, \
            make_vec_env("pathwise/CartPole-v1", num_envs=5, seed=99) as b:
        a.reset()
        for _ in range(30):
            a.step(a.random_actions())
        b.reset()
        obs = b.load_state_dict(a.state_dict())
        assert torch.equal(obs, a._obs)
        for _ in range(30):
            ra, rb = a.step(a.random_actions()), b.step(b.random_actions())
            assert torch.equal(ra.obs, rb.obs) and torch.equal(ra.reward, rb.reward)
        assert a.pop_episodes() == b.pop_episodes()


def test_seeds_reproduce_and_differ():
    def first_obs(seed):
        with make_vec_env("pathwise/Acrobot-v1", num_envs=3, seed=seed) as envs:
            return envs.reset()
    assert torch.equal(first_obs(4), first_obs(4))
    assert not torch.equal(first_obs(4), first_obs(5))


@CUDA
def test_a_step_on_cuda_never_waits_for_the_device():
    with make_vec_env("pathwise/Pendulum-v1", num_envs=1024, seed=0, device="cuda") as envs:
        envs.reset()
        actions = envs.random_actions()
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(5):
                envs.step(actions)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        assert envs.pop_episodes()[0] == 0


def test_differentiable_steps_keep_gradients_and_the_same_statistics():
    """step_differentiable: the same transitions and episode statistics as step, with
    gradients from the rewards to the actions, and a detached observation for checkpoints."""
    plain = make_vec_env("pathwise/Pendulum-v1", num_envs=3, seed=4, max_episode_steps=2)
    graded = make_vec_env("pathwise/Pendulum-v1", num_envs=3, seed=4, max_episode_steps=2)
    plain.reset(), graded.reset()
    actions = torch.tensor([[0.5], [-0.25], [0.0]], requires_grad=True)
    for _ in range(3):
        result = plain.step(actions)
        obs, reward, terminated, truncated, info = graded.step_differentiable(actions)
        torch.testing.assert_close(obs.detach(), result.obs)
        torch.testing.assert_close(reward.detach(), result.reward)
        torch.testing.assert_close(info["final_obs"].detach(), result.next_obs)
        assert torch.equal(truncated, result.truncated)
    (grad,) = torch.autograd.grad(reward.sum(), actions)
    assert grad.abs().sum() > 0
    assert not graded.state_dict()["obs"].requires_grad
    assert plain.pop_episodes() == graded.pop_episodes()
    with make_vec_env("pathwise/CartPole-v1", num_envs=2, seed=0) as discrete:
        discrete.reset()
        with pytest.raises(ValueError, match="need Box actions"):
            discrete.step_differentiable(torch.zeros(2, 2))
