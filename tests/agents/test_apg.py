"""APG and the differentiable rollout it shares with SHAC (agents/rollout.py): the window's
return across episode ends, the gradient against finite differences, no gradient across an
autoreset, observation normalisation folded into the saved policy, the loop's rollout hook,
and the one-line errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from _cli import run_cli

import pathwise.training.loop as runner
from pathwise.agents.apg import APG, APGConfig
from pathwise.agents.rollout import ObsNormalizer, rollout, window_return
from pathwise.envs import TORCH_ENV_IDS
from pathwise.envs.native import make_native_vec_env
from pathwise.training.config import TrainConfig, WandbConfig
from pathwise.training.tracking import read_metrics


@pytest.fixture(autouse=True)
def one_thread():
    """Small networks on shared cores: one torch thread, as training runs use
    (torch_threads=1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(env_id="pathwise/PointMass-v0", num_envs=4, seed=0, agent_cls=APG, config=None,
         **env_kwargs):
    """(envs, agent, obs) on CPU, the envs reset."""
    envs = make_native_vec_env(env_id, num_envs, seed, "cpu", **env_kwargs)
    space = envs.single_action_space
    agent = agent_cls(envs.obs_dim, envs.action_dim, False, config or APGConfig(hidden_sizes=[16]),
                      None, "cpu", num_envs, space.low.tolist(), space.high.tolist())
    return envs, agent, envs.reset(seed=seed)


# -- the window's return ---------------------------------------------------------------------
REWARD = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0]])  # (H=4, N=2)
DONE = torch.tensor([[False, False], [False, True], [False, False], [False, False]])


def test_window_return_restarts_the_discount_after_an_episode_end():
    """γ = 0.5. Env 0 runs through: 1 + ½·2 + ¼·3 + ⅛·4 = 3.25. Env 1's episode ends at t = 1:
    (1 + ½·2) + (3 + ½·4) = 7, where a sum chained across the end would give 3.25 again."""
    returns = window_return(REWARD, DONE, 0.5)
    assert returns.tolist() == [3.25, 7.0]


def test_window_return_bootstraps_each_closed_sum_with_its_end_value():
    """End values v_t = 10(t + 1). Env 0: 3.25 + ½⁴·40 = 5.75. Env 1 (truncated at t = 1):
    (1 + ½·2 + ¼·20) + (3 + ½·4 + ¼·40) = 22; terminated there instead (v = 0): 17."""
    values = torch.tensor([[10.0, 10.0], [20.0, 20.0], [30.0, 30.0], [40.0, 40.0]])
    assert window_return(REWARD, DONE, 0.5, values).tolist() == [5.75, 22.0]
    terminated = values.clone()
    terminated[1, 1] = 0.0  # what rollout.terminal_values gives a terminal step
    assert window_return(REWARD, DONE, 0.5, terminated).tolist() == [5.75, 17.0]


def test_apg_loss_is_minus_the_mean_window_return_per_step():
    envs, agent, obs = make(num_envs=3)
    window = rollout(envs, agent.actor, obs, 5, agent.normalizer)
    discount = 0.99 ** torch.arange(5.0)[:, None]
    expected = -(discount * window.reward).sum() / (3 * 5)
    torch.testing.assert_close(agent.actor_loss(window), expected)


# -- gradients -------------------------------------------------------------------------------
def _loss_at(agent, envs, obs, env_state, rng, horizon):
    envs.load_state_dict(env_state)
    torch.set_rng_state(rng)
    return agent.actor_loss(rollout(envs, agent.actor, obs, horizon, agent.normalizer))


def test_the_bptt_gradient_matches_finite_differences_across_an_autoreset():
    """PointMass (smooth) with a 3-step time limit and a 7-step window: episodes end inside
    the window. The autograd gradient of the loss along a random direction d matches the
    central difference (L(θ + εd) − L(θ − εd)) / 2ε with the same noise and the same resets."""
    torch.manual_seed(0)
    envs, agent, obs = make(num_envs=4, max_episode_steps=3)
    env_state, rng = envs.state_dict(), torch.get_rng_state()
    params = agent._actor_params
    loss = _loss_at(agent, envs, obs, env_state, rng, 7)
    grads = torch.autograd.grad(loss, params)
    direction = [torch.randn_like(p) for p in params]
    norm = math.sqrt(sum(float((d * d).sum()) for d in direction))
    direction = [d / norm for d in direction]
    analytic = sum(float((g * d).sum()) for g, d in zip(grads, direction))
    eps = 1e-2
    with torch.no_grad():
        for p, d in zip(params, direction):
            p.add_(eps * d)
        plus = float(_loss_at(agent, envs, obs, env_state, rng, 7))
        for p, d in zip(params, direction):
            p.sub_(2 * eps * d)
        minus = float(_loss_at(agent, envs, obs, env_state, rng, 7))
    assert abs(analytic) > 1e-4  # a real gradient, not zero against zero
    assert (plus - minus) / (2 * eps) == pytest.approx(analytic, rel=1e-2)


def test_no_gradient_crosses_an_autoreset():
    """The rewards of a window depend on the state it started from until the episode ends
    (t = 2, a 3-step limit) and not at all after it: the next episode starts from the reset
    observation, never from the old episode's final one."""
    envs, agent, obs = make(num_envs=2, max_episode_steps=3)
    start = envs.env.state.clone().requires_grad_(True)
    envs.env.state = start
    window = rollout(envs, agent.actor, obs, 6, agent.normalizer)
    assert window.done[2].all() and not window.done[:2].any()
    for t in range(6):
        (grad,) = torch.autograd.grad(window.reward[t].sum(), start, retain_graph=True,
                                      allow_unused=True)
        crossed = grad is not None and bool(grad.abs().sum() > 0)
        assert crossed == (t <= 2), t
    assert not envs.env.state.requires_grad  # the graph is cut at the window's end
    assert not window.next_obs.requires_grad and not window.obs.requires_grad


@pytest.mark.parametrize("carry, elapsed", [(True, 10), (False, 5)])
def test_windows_carry_the_episodes_or_start_new_ones(carry, elapsed):
    envs, agent, obs = make(num_envs=2, config=APGConfig(hidden_sizes=[8], horizon=5,
                                                         carry_state=carry))
    obs, taken, _ = agent.rollout(envs, obs, 0)
    obs, taken, _ = agent.rollout(envs, obs, taken)
    assert taken == 10
    assert envs.env.elapsed_steps.tolist() == [elapsed, elapsed]


def test_grad_clipping_bounds_the_update():
    envs, agent, obs = make(config=APGConfig(hidden_sizes=[8], horizon=4, max_grad_norm=1e-3))
    agent.rollout(envs, obs, 0)
    total = math.sqrt(sum(float(p.grad.square().sum()) for p in agent._actor_params))
    assert total <= 1e-3 * (1 + 1e-4)


# -- observation normalisation ---------------------------------------------------------------
def test_running_statistics_match_the_whole_sample():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 3)) for n in (5, 17, 1, 40)]
    normalizer = ObsNormalizer(3, torch.device("cpu"))
    for b in batches:
        normalizer.update(torch.as_tensor(b, dtype=torch.float32))
    whole = np.concatenate(batches).astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(normalizer.mean.numpy(), whole.mean(0), rtol=1e-12)
    np.testing.assert_allclose(normalizer.var.numpy(), whole.var(0), rtol=1e-10)
    assert float(normalizer.count) == len(whole)


def test_the_saved_policy_is_the_actor_with_the_normalisation_folded_in():
    envs, agent, obs = make(num_envs=8)
    for step in range(3):
        obs, _, _ = agent.rollout(envs, obs, step)
    assert float(agent.normalizer.count) == 3 * 32 * 8
    assert agent.normalizer.scale.sub(1).abs().max() > 0.05  # the statistics moved
    raw = torch.randn(64, envs.obs_dim) * 2
    inner = agent.actor.distribution(agent.normalizer(raw))
    saved = agent.policy.distribution(raw)
    torch.testing.assert_close(saved.loc, inner.loc, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(saved.scale, inner.scale, rtol=1e-4, atol=1e-5)


# -- the runner ------------------------------------------------------------------------------
def train(tmp_path, agent, env="pathwise/PointMass-v0", **kwargs):
    built = {}
    build = runner.build_agent

    def spy(cfg, envs, device):
        built["agent"] = build(cfg, envs, device)
        built["init"] = [p.detach().clone() for p in built["agent"].actor.parameters()]
        return built["agent"]

    options = dict(total_steps=200, num_envs=4, eval_every=0, eval_episodes=2, log_every=30,
                   checkpoint_every=100, device="cpu", torch_threads=1) | kwargs
    cfg = TrainConfig(env=env, agent=agent, run_dir=str(tmp_path / "run"),
                      wandb=WandbConfig(mode="disabled"), **options)
    original, runner.build_agent = runner.build_agent, spy
    try:
        result = runner.train(cfg)
    finally:
        runner.build_agent = original
    return result, built


@pytest.fixture(scope="module")
def apg_run(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(tmp_path_factory.mktemp("apg"), APGConfig(hidden_sizes=[16], horizon=5),
                     total_steps=190)
    finally:
        torch.set_num_threads(threads)


def test_apg_trains_through_the_runner_and_logs_on_window_boundaries(apg_run):
    """5-step windows of 4 envs: 20 env steps per iteration. log_every=30 crosses at 40, 60,
    100, 120, 160, 180 (not 200); the run stops at the first window end past 190."""
    result, built = apg_run
    agent = built["agent"]
    assert result.global_step == 200
    assert any(not torch.equal(p, p0) for p, p0 in zip(agent.actor.parameters(), built["init"]))
    records = read_metrics(result.run_dir / "metrics.jsonl")
    logged = [r["global_step"] for r in records if "losses/actor" in r]
    assert logged == [40, 60, 100, 120, 160, 180]
    assert all(math.isfinite(r["losses/actor"]) for r in records if "losses/actor" in r)
    assert (result.run_dir / "policy.pt").is_file()
    assert result.final_eval is not None and math.isfinite(result.final_eval.return_mean)


def deterministic_return(policy, env_id: str, num_envs: int = 16, seed: int = 1) -> float:
    """Mean return of one episode per env of ``policy``'s deterministic actions, in the torch
    env itself (fast: one batched episode)."""
    envs = make_native_vec_env(env_id, num_envs, seed, "cpu")
    obs, total = envs.reset(seed=seed), torch.zeros(num_envs)
    with torch.no_grad():
        for _ in range(envs.env.max_episode_steps):
            result = envs.step(policy.act(obs, deterministic=True))
            obs, total = result.obs, total + result.reward
    return float(total.mean())


def test_apg_learns_pointmass_quickly():
    """20 updates of 32 envs × 16-step windows push the mass to the goal: the deterministic
    return of a 200-step episode goes from about −1000 (the random initial policy) to above
    −100."""
    torch.manual_seed(0)
    envs, agent, obs = make(num_envs=32, config=APGConfig(hidden_sizes=[32], horizon=16,
                                                          lr=2e-2))
    before = deterministic_return(agent.policy, "pathwise/PointMass-v0")
    for step in range(20):
        obs, _, _ = agent.rollout(envs, obs, step)
    after = deterministic_return(agent.policy, "pathwise/PointMass-v0")
    assert before < -500 and after > -100, (before, after)


# -- bad input -------------------------------------------------------------------------------
BOX_TORCH_ENVS = [i for i in TORCH_ENV_IDS if "CartPole" not in i and "Acrobot" not in i]


@pytest.mark.parametrize("agent, overrides, words", [
    ("apg", ["env=Pendulum-v1"], "Pendulum-v1 is not a differentiable torch env; use one of: "
                                 + ", ".join(BOX_TORCH_ENVS)),
    ("shac", ["env=pathwise/CartPole-v1"], "pathwise/CartPole-v1 has Discrete(2) actions"),
    ("shac", ["env=pathwise/Pendulum-v1", "estimator=score"], "use estimator=pathwise"),
    ("apg", ["env=pathwise/Pendulum-v1", "agent.horizon=0"], "agent.horizon must be >= 1"),
    ("shac", ["env=pathwise/Pendulum-v1", "agent.lam=2"], "agent.lam must be in [0, 1]"),
    ("apg", ["env=pathwise/Pendulum-v1", "diagnostics.every=100"], "pathwise lab horizon"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, agent, overrides, words):
    code, _, err = run_cli(capsys, "train", "--no-progress", f"agent={agent}", *overrides,
                           "wandb.mode=disabled", f"run_dir={tmp_path / 'run'}")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_diagnose_of_an_apg_run_is_one_line(apg_run, capsys):
    result, _ = apg_run
    code, _, err = run_cli(capsys, "diagnose", result.run_dir)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "pathwise lab horizon" in err


def test_pathwise_eval_of_an_apg_run(apg_run, capsys):
    """No Gymnasium original for PointMass: evaluated on the torch env's single-env form."""
    result, _ = apg_run
    code, out, err = run_cli(capsys, "eval", result.run_dir, "--episodes", "2", "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["env"] == "pathwise/PointMass-v0" and len(record["returns"]) == 2


@pytest.mark.parametrize("config", [APGConfig(betas=[0.9]), APGConfig(gamma=1.5),
                                    APGConfig(max_grad_norm=0.0), APGConfig(lr_decay_steps=-1),
                                    APGConfig(hidden_sizes=[0])])
def test_invalid_values_are_reported(config):
    assert len(config.validate()) == 1


def test_wandb_groups_by_env_and_names_the_job_after_agent_and_estimator(tmp_path, monkeypatch):
    """The loop opens the wandb run as for every agent: group = env id, job_type =
    <agent>-<estimator>, tags, config; the rollout metrics reach it with global_step."""
    opened, logged = {}, []

    class FakeRun:
        id, dir = "fake", None

        def log(self, record):
            logged.append(record)

        def summary(self, values):
            pass

        def log_model(self, path, **metadata):
            opened["model"] = metadata

        def finish(self, code):
            opened["exit"] = code

    def fake_open(mode, **fields):
        opened.update(fields)
        return FakeRun()

    monkeypatch.setattr(runner, "open_wandb_run", fake_open)
    cfg = TrainConfig(env="pathwise/PointMass-v0", agent=APGConfig(hidden_sizes=[8], horizon=4),
                      total_steps=32, num_envs=4, eval_every=0, eval_episodes=1, log_every=16,
                      run_dir=str(tmp_path / "run"), device="cpu",
                      wandb=WandbConfig(mode="offline"))
    runner.train(cfg)
    assert opened["group"] == "pathwise/PointMass-v0" and opened["job_type"] == "apg-pathwise"
    assert set(opened["tags"]) == {"apg", "pathwise", "pathwise/PointMass-v0"}
    assert opened["config"]["agent"]["horizon"] == 4 and opened["exit"] == 0
    assert opened["model"]["agent"] == "apg"
    assert [r["global_step"] for r in logged if "losses/actor" in r] == [16, 32]


def test_nan_policy_skip_leaves_the_policy_untouched_on_a_non_finite_loss(monkeypatch):
    envs = make_native_vec_env("pathwise/PointMass-v0", 2, 0, "cpu")
    space = envs.single_action_space
    agent = APG(envs.obs_dim, envs.action_dim, False, APGConfig(hidden_sizes=[8], horizon=3),
                None, "cpu", 2, space.low.tolist(), space.high.tolist(), nan_policy="skip")
    obs = envs.reset(seed=0)
    loss = agent.actor_loss
    monkeypatch.setattr(agent, "actor_loss", lambda *a: loss(*a) * float("nan"))
    before = [p.clone() for p in agent.actor.parameters()]
    _, _, metrics = agent.rollout(envs, obs, 0)
    assert all(torch.equal(a, b) for a, b in zip(before, agent.actor.parameters()))
    assert int(metrics["charts/nan_skips"]) == 1
