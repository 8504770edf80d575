"""The horizon lab (pathwise/analysis/horizon.py, `pathwise lab horizon`): K estimates in one
backward pass equal K separate ones, the estimators against hand-written ones, the PIPPS
finding on a tiny budget, and the command line."""

from __future__ import annotations

import json

import pytest
import torch
from _cli import run_cli

from pathwise.analysis import horizon
from pathwise.envs import TORCH_ENVS
from pathwise.spaces import scale_action

POINT, CHAOS = "pathwise/PointMass-v0", "pathwise/DoublePendulum-v0"


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_fixed_policies():
    """PointMass: mean −(p + v) per axis, σ = 0.5 before the tanh. DoublePendulum: zero mean."""
    obs = torch.tensor([[0.5, -1.0, 0.25, 0.5]], dtype=torch.float64)
    dist = horizon.policy_for(POINT).distribution(obs)
    torch.testing.assert_close(dist.loc, torch.tensor([[-0.75, 0.5]], dtype=torch.float64))
    torch.testing.assert_close(dist.scale, torch.full((1, 2), 0.5, dtype=torch.float64))
    dist = horizon.policy_for(CHAOS).distribution(torch.randn(3, 6, dtype=torch.float64))
    assert dist.loc.abs().max() == 0


def one_estimate(env_id, policy, h, estimator, samples, batch, gamma, seed, copy):
    """Estimate ``copy`` of ``gradient_samples``, written out plainly: the same start states
    and noise, the ordinary policy, the gradient of that estimate's objective alone."""
    k, m = samples, batch
    env = TORCH_ENVS[env_id](k * m, dtype=torch.float64)
    env.reset(seed=seed)
    state = env.state
    low = torch.as_tensor(env.single_action_space.low, dtype=torch.float64)
    high = torch.as_tensor(env.single_action_space.high, dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed)
    rewards, scores = [], []
    for _ in range(h):
        dist = policy.distribution(env.observe(state))
        noise = torch.randn((k, m) + dist.loc.shape[1:], generator=generator,
                            dtype=torch.float64).reshape(dist.loc.shape)
        u = dist.loc + dist.scale * noise
        if estimator == "score":
            u = u.detach()
            scores.append(dist.log_prob_pre_tanh(u).reshape(k, m)[copy])
        action = scale_action(dist.squash(u), low, high)
        state, reward, _ = env.transition(state if estimator == "pathwise" else state.detach(),
                                          action)
        rewards.append(reward.reshape(k, m)[copy])
    if estimator == "pathwise":
        objective = sum(gamma**t * r for t, r in enumerate(rewards)).mean()
    else:
        objective = 0.0
        for t in range(h):
            to_go = sum(gamma**s * rewards[s].detach() for s in range(t, h))  # (M,)
            baseline = torch.stack([(to_go.sum() - to_go[i]) / (m - 1) for i in range(m)])
            objective = objective + (scores[t] * (to_go - baseline)).mean()
    grads = torch.autograd.grad(objective, list(policy.parameters()))
    return torch.cat([g.reshape(-1) for g in grads])


@pytest.mark.parametrize("env_id", [POINT, CHAOS])
@pytest.mark.parametrize("estimator", ["pathwise", "score"])
def test_each_copy_gets_exactly_its_own_estimate(env_id, estimator):
    policy = horizon.policy_for(env_id)
    grads = horizon.gradient_samples(env_id, policy, 6, estimator, samples=3, batch=4,
                                     gamma=0.9, seed=5)
    assert grads.shape == (3, sum(p.numel() for p in policy.parameters()))
    for copy in range(3):
        expected = one_estimate(env_id, policy, 6, estimator, 3, 4, 0.9, 5, copy)
        torch.testing.assert_close(grads[copy], expected, rtol=1e-9, atol=1e-12)
    assert not torch.allclose(grads[0], grads[1])  # independent draws
    assert all(p.grad is None for p in policy.parameters())  # the policy itself untouched


def test_pathwise_variance_explodes_with_the_horizon_through_chaos_only():
    """PIPPS on a small budget: from H = 40 to 120, the pathwise variance grows by orders of
    magnitude on the double pendulum, by a small factor on the point mass, and the score
    function's does not explode on either."""
    rows = horizon.horizon_experiment((40, 120), samples=8, batch=2)
    growth = {(g["env"], g["estimator"]): g["ratio"] for g in horizon.growth(rows)}
    assert growth[(CHAOS, "pathwise")] > 1e3  # about 1e4 at seed 0 (3e3 to 2e4 at seeds 0-2)
    assert growth[(POINT, "pathwise")] < 20  # about 5
    assert growth[(CHAOS, "score")] < 100 and growth[(POINT, "score")] < 100  # 2 to 25


def test_lab_horizon_writes_figure_report_and_json(tmp_path, capsys):
    code, out, err = run_cli(capsys, "lab", "horizon", "--out", tmp_path, "--json",
                             "--horizons", "3,1", "--samples", "4", "--batch", "2")
    assert code == 0, err
    results = json.loads(out)
    rows = results["rows"]
    assert len(rows) == 2 * 2 * 2
    assert {(r["env"], r["horizon"], r["estimator"]) for r in rows} == {
        (e, h, s) for e in (POINT, CHAOS) for h in (1, 3) for s in ("pathwise", "score")}
    for r in rows:
        assert r["variance"] > 0 and r["snr"] is not None and r["signal_floor"] > 0
        assert {"snr_floor", "signal", "signal_to_noise_corrected"} <= set(r)
    assert results["goal"]["met"] is False  # H ≤ 3 is far too short to see the explosion
    for name in ("horizon.png", "horizon.md", "horizon.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert "| pathwise/DoublePendulum-v0 | 3 | pathwise |" in (tmp_path / "horizon.md").read_text()


def test_lab_horizon_prints_the_growth(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "lab", "horizon", "--out", tmp_path, "--horizons", "1,2",
                           "--samples", "2", "--batch", "2")
    assert code == 0
    assert "pathwise/DoublePendulum-v0" in out and "not reproduced" in out


@pytest.mark.parametrize("args, words", [
    (["--horizons", "0,5"], "must be integers >= 1"),
    (["--horizons", "a"], "must be comma-separated integers"),
    (["--samples", "1"], "must be >= 2"),
])
def test_lab_horizon_bad_arguments_are_one_line(tmp_path, capsys, args, words):
    code, _, err = run_cli(capsys, "lab", "horizon", "--out", tmp_path, *args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and words in err


def test_plain_lab_still_parses_and_names_the_sub_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        run_cli(capsys, "lab", "--help")
    assert exit_.value.code == 0
    assert "lab horizon --help" in " ".join(capsys.readouterr().out.split())
