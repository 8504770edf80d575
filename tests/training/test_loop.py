"""Short end-to-end SAC runs through the shared loop: every (action space × estimator) goes
past learning_starts, changes its parameters, keeps its losses finite; on the testbeds it finds
the known optimum."""

import math

import pytest
import torch
from _training import run, small_sac

import pathwise.training.loop as runner
from pathwise.training.checkpoint import load_policy
from pathwise.training.tracking import read_metrics

SMOKE = [("Pendulum-v1", "pathwise"), ("Pendulum-v1", "score"),
         ("CartPole-v1", "pathwise"), ("CartPole-v1", "score"), ("CartPole-v1", "exact")]


@pytest.mark.parametrize("env,estimator", SMOKE)
def test_sac_smoke_updates_parameters_with_finite_losses(tmp_path, monkeypatch, env, estimator):
    result, agent, init = run(tmp_path, monkeypatch, env, estimator, total_steps=300, num_envs=2)
    assert result.global_step >= 300
    changed = [n for n, p in agent.policy.named_parameters() if not torch.equal(p, init[n])]
    assert changed, "no policy parameter changed"
    losses = [r for r in read_metrics(result.run_dir / "metrics.jsonl") if "losses/critic" in r]
    assert losses, "no update was logged"
    for record in losses:
        for key in ("losses/critic", "losses/actor", "losses/alpha", "charts/alpha"):
            assert record[key] is not None and math.isfinite(record[key]), (key, record)
    # The saved policy is the trained one.
    saved = load_policy(result.run_dir)
    for name, p in agent.policy.named_parameters():
        torch.testing.assert_close(saved.state_dict()[name], p.detach())


@pytest.mark.parametrize("estimator", ["pathwise", "score", "exact", "straight_through",
                                       "gumbel_rao", "reinmax"])
def test_sac_finds_the_best_arm_of_the_discrete_bandit(tmp_path, monkeypatch, estimator):
    result, agent, _ = run(tmp_path, monkeypatch, "pathwise/DiscreteBandit-v0", estimator,
                           total_steps=600)
    assert result.final_eval.return_mean == 1.0  # rewards (0, 0.5, 1): the last arm
    # The max-entropy optimum is π ∝ exp(Q/α): the best arm has the largest probability.
    probs = agent.policy.distribution(torch.zeros(1, 1)).probs[0]
    assert probs.argmax().item() == 2


@pytest.mark.parametrize("estimator", ["pathwise", "score"])
def test_sac_reaches_the_continuous_bandit_target(tmp_path, monkeypatch, estimator):
    result, agent, _ = run(tmp_path, monkeypatch, "pathwise/ContinuousBandit-v0", estimator,
                           total_steps=1500)
    action = agent.policy.act(torch.zeros(1, 1), deterministic=True).item()
    assert abs(action - 0.5) < 0.1, action
    assert result.final_eval.return_mean > -0.01  # −(a − 0.5)² at the deterministic action


def test_eval_reproduces_the_runs_logged_evaluation_and_stochastic_eval_is_seeded(
        tmp_path, monkeypatch, capsys):
    import json

    from pathwise.cli import main
    from pathwise.envs.make import make_env
    from pathwise.envs.seeding import ENVS, EVALUATION, derive_seeds
    from pathwise.training.evaluation import evaluate

    result, agent, _ = run(tmp_path, monkeypatch, "Pendulum-v1", "pathwise", total_steps=200,
                           seed=3)
    # `pathwise eval RUN` defaults to the run's own evaluation seeds: same mean as logged.
    assert main(["eval", str(result.run_dir), "--episodes", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["return_mean"] == result.final_eval.return_mean
    # Evaluation episodes start from a stream no training env and no other seed draws from.
    starts = derive_seeds(3, 100, EVALUATION)
    assert not set(starts) & set(derive_seeds(3, 100, ENVS) + derive_seeds(4, 100, EVALUATION))
    # Episodes side by side give what one after another in a single env gives.
    env = make_env("Pendulum-v1")
    one_by_one = evaluate(agent.policy, "Pendulum-v1", 3, seed=3, env=env)
    env.close()
    assert report["returns"] == pytest.approx(one_by_one.returns, rel=1e-5)
    # Stochastic evaluation is reproducible for a seed, and leaves the global RNG alone.
    state = torch.get_rng_state()
    first = evaluate(agent.policy, "Pendulum-v1", 2, seed=5, deterministic=False)
    assert torch.equal(torch.get_rng_state(), state)
    again = evaluate(agent.policy, "Pendulum-v1", 2, seed=5, deterministic=False)
    other = evaluate(agent.policy, "Pendulum-v1", 2, seed=6, deterministic=False)
    assert first.returns == again.returns and first.returns != other.returns


OFFSET_BANDIT_ID = "pathwise-test/OffsetDiscreteBandit-v0"


@pytest.mark.parametrize("agent_name", ["sac", "reinforce"])
def test_saved_policy_acts_in_a_discrete_space_that_does_not_start_at_zero(
        tmp_path, monkeypatch, agent_name):
    # Discrete(3, start=-1): the env's actions are -1, 0, 1 and the best one is 1 (index 2).
    import gymnasium as gym

    from pathwise.agents.reinforce import ReinforceConfig
    from pathwise.envs.testbeds import DiscreteBandit

    if OFFSET_BANDIT_ID not in gym.registry:
        gym.register(OFFSET_BANDIT_ID, entry_point=DiscreteBandit,
                     kwargs={"rewards": (0.0, 0.5, 1.0), "start": -1})
    agent = (small_sac() if agent_name == "sac" else
             ReinforceConfig(hidden_sizes=[32, 32], batch_steps=64, lr=0.05))
    estimator = "exact" if agent_name == "sac" else "score"
    result, trained, _ = run(tmp_path, monkeypatch, OFFSET_BANDIT_ID, estimator,
                             total_steps=600, agent=agent)
    assert result.final_eval.return_mean == 1.0  # the agent's own evaluation offsets too
    policy = load_policy(result.run_dir)
    action, _ = policy.predict([0.0])
    assert int(action) == 1
    actions, _ = policy.predict([[0.0]] * 64, deterministic=False)
    assert set(actions.tolist()) <= {-1, 0, 1}
    env = gym.make(OFFSET_BANDIT_ID)
    env.reset(seed=0)
    assert env.step(action)[1] == 1.0


def test_best_pt_holds_the_policy_of_the_best_evaluation(tmp_path, monkeypatch):
    """Scripted evaluation returns 1, 3, 2, 3 at steps 50, 100, 150, 200: best.pt is written
    at step 100 (a later tie does not replace it), with the weights the policy had then."""
    from pathwise.training.evaluation import EvalResult

    scripted = iter([1.0, 3.0, 2.0, 3.0])
    weights_at = {}

    def fake_evaluate(policy, env_id, episodes, seed, **kwargs):
        ret = next(scripted)
        weights_at[ret, len(weights_at)] = {k: v.clone() for k, v in policy.state_dict().items()}
        return EvalResult(episodes, ret, 0.0, 1.0, [ret] * episodes, [1] * episodes)

    monkeypatch.setattr(runner, "evaluate", fake_evaluate)
    result, agent, _ = run(tmp_path, monkeypatch, "pathwise/DiscreteBandit-v0", "exact",
                           total_steps=200, eval_every=50)
    best = torch.load(result.run_dir / "checkpoints" / "best.pt", weights_only=True)
    assert best["metadata"]["global_step"] == 100 and best["metadata"]["eval_return"] == 3.0
    for name, value in weights_at[3.0, 1].items():
        torch.testing.assert_close(best["state_dict"][name], value)
    # The final policy moved on since step 100: best.pt is not a copy of it.
    assert any(not torch.equal(best["state_dict"][n], p.detach())
               for n, p in agent.policy.named_parameters())
    assert load_policy(result.run_dir / "checkpoints" / "best.pt").metadata["eval_return"] == 3.0
