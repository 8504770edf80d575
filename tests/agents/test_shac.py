"""SHAC (agents/shac.py): TD(λ) targets against the paper's k-step form, the actor's
γ^h·V(s_h) bootstrap with the done handling, gradients that reach the critic input but never
its parameters, the target critic's Polyak step, and short runs through the runner."""

from __future__ import annotations

import json
import math

import gymnasium as gym
import pytest
import torch
from _cli import run_cli
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from test_apg import make, one_thread, train  # noqa: F401 (one_thread: autouse fixture)

from pathwise import load_policy
from pathwise.agents.apg import APGConfig
from pathwise.agents.rollout import rollout, td_lambda_targets, terminal_values
from pathwise.agents.shac import SHAC, SHACConfig
from pathwise.training.tracking import read_metrics


def shac(num_envs=3, **env_kwargs):
    return make(num_envs=num_envs, agent_cls=SHAC,
                config=SHACConfig(hidden_sizes=[16], critic_hidden_sizes=[16]), **env_kwargs)


# -- TD(λ) -----------------------------------------------------------------------------------
def paper_td_lambda(reward, next_value, ends, gamma, lam):
    """Xu et al. 2022, eq. 7, literally: for each t, with h the end of t's segment (the step
    after the episode end or the window end that closes it),

        V̂_t = (1 − λ) Σ_{k=1}^{h−t−1} λ^{k−1} G_t^k + λ^{h−t−1} G_t^{h−t},
        G_t^k = Σ_{l<k} γ^l r_{t+l} + γ^k v_{t+k−1}

    where v_{t+k−1} is the value of the state k steps after t (``next_value`` of step
    t + k − 1)."""
    horizon, n = reward.shape
    out = torch.zeros(horizon, n, dtype=torch.float64)
    for i in range(n):
        for t in range(horizon):
            h = next(s for s in range(t, horizon) if ends[s, i]) + 1

            def g(k, t=t, i=i):
                return (sum(gamma**l * reward[t + l, i] for l in range(k))
                        + gamma**k * next_value[t + k - 1, i])

            out[t, i] = ((1 - lam) * sum(lam ** (k - 1) * g(k) for k in range(1, h - t))
                         + lam ** (h - t - 1) * g(h - t))
    return out


@pytest.mark.parametrize("lam", [0.0, 0.5, 0.95, 1.0])
def test_td_lambda_targets_match_the_papers_k_step_average(lam):
    torch.manual_seed(0)
    horizon, n = 7, 4
    reward = torch.randn(horizon, n, dtype=torch.float64)
    next_value = torch.randn(horizon, n, dtype=torch.float64)
    ends = torch.zeros(horizon, n, dtype=torch.bool)
    ends[2, 1] = ends[0, 2] = ends[4, 2] = ends[5, 3] = True
    ends[-1] = True
    expected = paper_td_lambda(reward, next_value, ends, 0.9, lam)
    torch.testing.assert_close(td_lambda_targets(reward, next_value, ends, 0.9, lam), expected)


def test_td_lambda_extremes_in_closed_form():
    """λ = 0: one-step targets r_t + γ v_t. λ = 1: the discounted rest of the segment plus γ^k
    times the value where it closes; an episode end cuts it."""
    reward = torch.tensor([[1.0], [2.0], [3.0]])
    value = torch.tensor([[10.0], [20.0], [30.0]])
    ends = torch.tensor([[False], [True], [True]])
    torch.testing.assert_close(td_lambda_targets(reward, value, ends, 0.5, 0.0),
                               torch.tensor([[6.0], [12.0], [18.0]]))
    # t = 0: 1 + ½·2 + ¼·20 = 7; t = 1: 2 + ½·20 = 12; t = 2 (new episode): 3 + ½·30 = 18.
    torch.testing.assert_close(td_lambda_targets(reward, value, ends, 0.5, 1.0),
                               torch.tensor([[7.0], [12.0], [18.0]]))


def test_terminal_values_are_zero_after_a_termination_and_the_value_otherwise():
    final_obs = torch.arange(6.0).reshape(3, 2, 1)
    terminated = torch.tensor([[False, True], [False, False], [True, False]])
    values = terminal_values(lambda x: 10 * x[:, 0], final_obs, terminated)
    assert values.tolist() == [[0.0, 0.0], [20.0, 30.0], [0.0, 50.0]]


# -- the actor's objective -------------------------------------------------------------------
def constant_value(agent, c: float) -> None:
    """Make the target critic output ``c`` everywhere."""
    last = agent.critic_target[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(c)


def test_actor_loss_adds_gamma_h_times_the_terminal_value_where_each_sum_closes():
    """Target value ≡ c, 2-step episodes (time limit), 4-step windows: each env's objective is
    (r0 + γ r1 + γ² c) + (r2 + γ r3 + γ² c), averaged per step over N·H."""
    envs, agent, obs = shac(max_episode_steps=2)
    constant_value(agent, 7.0)
    window = rollout(envs, agent.actor, obs, 4, agent.normalizer)
    assert window.done[1].all() and window.done[3].all()
    loss = agent.actor_loss(window, agent.terminal_values(window))
    g, r = agent.config.gamma, window.reward
    per_env = (r[0] + g * r[1] + g**2 * 7.0) + (r[2] + g * r[3] + g**2 * 7.0)
    torch.testing.assert_close(loss, -per_env.sum() / (3 * 4))


def test_without_episode_ends_the_window_bootstraps_once_with_gamma_to_the_h():
    envs, agent, obs = shac()
    constant_value(agent, -3.0)
    window = rollout(envs, agent.actor, obs, 5, agent.normalizer)
    assert not window.done.any()
    loss = agent.actor_loss(window, agent.terminal_values(window))
    g = agent.config.gamma
    per_env = (g ** torch.arange(5.0)[:, None] * window.reward).sum(0) + g**5 * -3.0
    torch.testing.assert_close(loss, -per_env.sum() / (3 * 5))


def test_actor_gradient_goes_through_the_value_input_and_never_into_a_critic():
    envs, agent, obs = shac()
    state, rng = envs.state_dict(), torch.get_rng_state()
    window = rollout(envs, agent.actor, obs, 4, agent.normalizer)
    loss = agent.actor_loss(window, agent.terminal_values(window))
    loss.backward()
    with_value = [p.grad.clone() for p in agent.actor.parameters()]
    assert all(p.grad is None for p in agent.critic.parameters())
    assert all(not p.requires_grad for p in agent.critic_target.parameters())
    # The same window without the terminal values: a different actor gradient.
    agent.actor.zero_grad()
    envs.load_state_dict(state)
    torch.set_rng_state(rng)
    window = rollout(envs, agent.actor, obs, 4, agent.normalizer)
    agent.actor_loss(window).backward()
    without = [p.grad for p in agent.actor.parameters()]
    assert any(not torch.allclose(a, b) for a, b in zip(with_value, without))


# -- the critic ------------------------------------------------------------------------------
def test_critic_update_fits_td_lambda_targets_and_moves_the_target_by_polyak():
    envs, agent, obs = shac(num_envs=8)
    window = rollout(envs, agent.actor, obs, 8, agent.normalizer)
    end_value = agent.terminal_values(window)
    targets = td_lambda_targets(window.reward, end_value, window.ends, 0.99, 0.95)
    x = window.obs.reshape(-1, envs.obs_dim)
    before = agent.critic_loss(x, targets.reshape(-1)).item()
    target_before = [p.clone() for p in agent.critic_target.parameters()]
    metrics = agent.critic_update(window, end_value.detach())
    after = agent.critic_loss(x, targets.reshape(-1)).item()
    assert after < before
    assert metrics["losses/critic"].item() == pytest.approx(after, rel=0.5)
    tau = agent.config.tau
    for old, new, online in zip(target_before, agent.critic_target.parameters(),
                                agent.critic.parameters()):
        torch.testing.assert_close(new, old + tau * (online - old))
        assert new.grad is None


def test_a_shac_update_changes_actor_and_critic_and_is_finite():
    envs, agent, obs = shac(num_envs=4)
    actor0 = [p.clone() for p in agent.actor.parameters()]
    critic0 = [p.clone() for p in agent.critic.parameters()]
    obs, taken, metrics = agent.rollout(envs, obs, 0)
    assert taken == 32 * 4
    assert {"losses/actor", "losses/critic", "charts/lr"} <= set(metrics)
    assert all(torch.isfinite(v).all() for v in metrics.values())
    assert any(not torch.equal(a, b) for a, b in zip(actor0, agent.actor.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(critic0, agent.critic.parameters()))


def test_learning_rates_decay_linearly():
    envs, agent, obs = make(num_envs=2, agent_cls=SHAC, config=SHACConfig(
        hidden_sizes=[8], critic_hidden_sizes=[8], horizon=2, critic_iterations=1,
        lr_decay_steps=100, lr=1e-2, critic_lr=4e-3))
    agent.rollout(envs, obs, 75)
    assert agent.actor_optimizer.param_groups[0]["lr"] == pytest.approx(2.5e-3)
    assert agent.critic_optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)


# -- through the runner, evaluated on Gymnasium's Pendulum-v1 --------------------------------
@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory):
    config = SHACConfig(hidden_sizes=[16], critic_hidden_sizes=[16], horizon=8,
                        critic_iterations=2)
    return train(tmp_path_factory.mktemp("shac"), config, env="pathwise/Pendulum-v1",
                 total_steps=320, num_envs=8, eval_every=160)


def test_shac_trains_on_the_torch_pendulum_and_is_evaluated_on_gymnasiums(pendulum_run):
    result, built = pendulum_run
    agent = built["agent"]
    assert any(not torch.equal(p, p0) for p, p0 in zip(agent.actor.parameters(), built["init"]))
    records = read_metrics(result.run_dir / "metrics.jsonl")
    updates = [r for r in records if "losses/critic" in r]
    assert updates and all(math.isfinite(r["losses/critic"]) and math.isfinite(r["losses/actor"])
                           for r in updates)
    assert [r["global_step"] for r in records if "eval/return_mean" in r] == [192, 320]
    policy = load_policy(result.run_dir)
    assert policy.metadata["eval_env_id"] == "Pendulum-v1"
    assert policy.metadata["agent"] == "shac"


def test_pathwise_eval_and_sb3_evaluate_a_shac_policy(pendulum_run, capsys):
    result, _ = pendulum_run
    code, out, err = run_cli(capsys, "eval", result.run_dir, "--episodes", "2", "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["env"] == "Pendulum-v1"
    assert record["returns"] == result.final_eval.returns[:2]
    rewards, lengths = evaluate_policy(load_policy(result.run_dir),
                                       Monitor(gym.make("Pendulum-v1")), n_eval_episodes=2,
                                       return_episode_rewards=True)
    assert lengths == [200, 200] and all(-2000 < r < 0 for r in rewards)


def test_compare_reads_apg_and_shac_runs(pendulum_run, tmp_path, capsys):
    result, _ = pendulum_run
    apg, _ = train(tmp_path, APGConfig(hidden_sizes=[16], horizon=8), env="pathwise/Pendulum-v1",
                   total_steps=160, num_envs=8)
    code, out, err = run_cli(capsys, "compare", result.run_dir, apg.run_dir, "--json")
    assert code == 0, err
    groups = {(g["agent"], g["env"]) for g in json.loads(out)}
    assert groups == {("shac", "pathwise/Pendulum-v1"), ("apg", "pathwise/Pendulum-v1")}


@pytest.mark.slow
def test_shac_swings_up_the_pendulum():
    """The preset's recipe (configs/preset/shac/pathwise-Pendulum-v1.yaml): Gymnasium's
    Pendulum-v1 at -200 or better after 300k steps (random policy: about -1200)."""
    from pathwise.training.evaluation import evaluate

    torch.manual_seed(0)
    envs, agent, obs = make("pathwise/Pendulum-v1", num_envs=64, agent_cls=SHAC,
                            config=SHACConfig(lr=1e-2, critic_lr=1e-3, critic_iterations=8,
                                              lr_decay_steps=300_000))
    step = 0
    while step < 300_000:
        obs, taken, _ = agent.rollout(envs, obs, step)
        step += taken
    assert evaluate(agent.policy, "Pendulum-v1", 10, seed=0).return_mean > -200
