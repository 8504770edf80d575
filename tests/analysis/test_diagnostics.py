"""Estimator diagnostics (pathwise/analysis/diagnostics.py): the batched K-estimate machinery
against plain autograd, the statistics against docs/estimator-facts.md §1 and §4, the noise
floors of §6 on simulated gradients, and the promise that measuring changes nothing that
training does."""

import dataclasses
import json
import math

import pytest
import torch
from torch.distributions import Normal

from pathwise.agents.reinforce import Reinforce, ReinforceConfig
from pathwise.agents.sac import SAC, SACConfig
from pathwise.analysis import lab
from pathwise.analysis.diagnostics import (
    _OwnRandomness,
    gradient_stats,
    mean_gradient,
    measure_reinforce,
    measure_sac,
    sample_gradients,
    snr_floors,
)
from pathwise.policies.estimators import Exact, Pathwise, Score
from pathwise.training.config import (
    ConfigError,
    DiagnosticsConfig,
    EstimatorConfig,
    TrainConfig,
    WandbConfig,
    as_train_config,
)
from pathwise.training.loop import train
from pathwise.training.tracking import read_metrics

Z = 5.0  # tolerance in standard errors


def small_sac(discrete: bool, action_dim: int = 3, estimator: str = "pathwise", **overrides):
    cfg = SACConfig(hidden_sizes=[16, 16], buffer_size=100, batch_size=32, learning_starts=32,
                    **overrides)
    return SAC(3, action_dim, discrete, cfg, EstimatorConfig(name=estimator).build())


def fixed_critic_sac() -> SAC:
    """Discrete SAC whose actor outputs logits 0 and whose critic says Q = (1, 2, 0.5) in every
    state, α = 0.5: per state, the objective of docs/estimator-facts.md §4, ∇J(0) = (0.0556,
    −0.2778, 0.2222).
    """
    sac = small_sac(True, alpha=0.5, autotune=False)
    with torch.no_grad():
        sac.policy.net[-1].weight.zero_()
        sac.policy.net[-1].bias.zero_()
        last = sac.critic.net.layers[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([1.0, 2.0, 0.5]))
    return sac


# -- the machinery --------------------------------------------------------------------------
@pytest.mark.parametrize("discrete,estimator", [(False, Pathwise(num_samples=3)),
                                                (False, Score(num_samples=3, baseline="mean")),
                                                (True, Pathwise(num_samples=2)),
                                                (True, Score(num_samples=2))])
def test_one_batched_copy_is_the_plain_gradient_for_the_same_draws(discrete, estimator):
    """K = 1 draws the same random numbers as a plain call (sample shape (M, 1, N) vs (M, N)),
    so the leaf-copy + batched-VJP route must give autograd's own gradient."""
    torch.manual_seed(0)
    sac = small_sac(discrete)
    obs = torch.randn(8, 3)
    params = list(sac.policy.parameters())
    dist, cost = sac.actor_cost(obs)
    torch.manual_seed(1)
    batched = sample_gradients(dist, cost, estimator, params, 1, sac.alpha)
    torch.manual_seed(1)
    plain = mean_gradient(dist, cost, estimator, params, sac.alpha)
    assert batched.shape == (1, sum(p.numel() for p in params))
    torch.testing.assert_close(batched[0], plain, rtol=1e-5, atol=1e-7)


def test_reference_gradient_is_estimator_facts_section_4():
    sac = fixed_critic_sac()
    dist, cost = sac.actor_cost(torch.randn(16, 3))
    reference = mean_gradient(dist, cost, Exact(), list(sac.policy.parameters()), sac.alpha)
    # The last 3 parameters are the logits' bias: ∂J/∂logits at logits 0, averaged over states.
    torch.testing.assert_close(reference[-3:], torch.tensor([0.05556, -0.27778, 0.22222]),
                               atol=1e-5, rtol=0)


# -- statistics -----------------------------------------------------------------------------
@pytest.mark.parametrize("name,estimator", [("pathwise", Pathwise()), ("score", Score())])
def test_variances_match_estimator_facts_section_1(name, estimator):
    """z ~ N(1, 2²), f = z²: per-sample variances (16, 36) pathwise, (74.25, 356.5) score.
    The SE of a sample variance is sqrt((m4 − var²)/K) with the exact fourth moment."""
    torch.manual_seed(0)
    mu = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    sigma = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    k = 40_000
    grads = sample_gradients(Normal(mu, sigma), lambda z: z**2, estimator, [mu, sigma], k)
    exact = {"pathwise": (16.0, 36.0), "score": (74.25, 356.5)}[name]
    fourth = lab.closed_form_fourth_moments("quadratic", 0.0, 1.0, 2.0)[name]
    assert lab.closed_form_variances("quadratic", 0.0, 1.0, 2.0)[name] == pytest.approx(exact)
    var = grads.var(0)
    for j in range(2):
        se = math.sqrt((fourth[j] - exact[j] ** 2) / k)
        assert abs(float(var[j]) - exact[j]) < Z * se, (name, j, float(var[j]), exact[j], se)
    stats = gradient_stats(name, grads, torch.tensor([2.0, 4.0], dtype=torch.float64),
                           reference_exact=True)
    assert stats.variance == pytest.approx(float(var.sum()))
    assert abs(stats.variance - sum(exact)) < Z * stats.variance_se
    assert stats.bias < Z * stats.bias_se  # unbiased: ‖ḡ − ∇‖ is noise alone
    assert stats.cosine > 0.99


# -- noise floors (docs/estimator-facts.md §6) -----------------------------------------------
def _replicated_stats(mean, scales, k=16, replicates=300, seed=0):
    """``gradient_stats`` of ``replicates`` independent sets of K Gaussian estimates, each
    parameter j with the given mean and standard deviation scales_j; exact reference 0."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(replicates, k, mean.numel(), dtype=torch.float64, generator=gen)
    reference = torch.zeros_like(mean)
    return [gradient_stats("sim", mean + scales * noise[r], reference, reference_exact=True)
            for r in range(replicates)]


def _mean_se(stats, value):
    x = torch.tensor([value(s) for s in stats], dtype=torch.float64)
    return float(x.mean()), float(x.std() / math.sqrt(len(x)))


def _within(estimate_se, expected, what):
    m, se = estimate_se
    assert abs(m - expected) < Z * se, f"{what}: {m} ± {se} vs {expected}"


def test_snr_floors_are_those_of_the_folded_student_t():
    # Quoted values: t_15's 0.75 quantile 0.6912 (tables), so the median floor at K = 16 is
    # 0.6912/4; K = 2 is the Cauchy, whose |T| has median 1; large K tends to the Gaussian's
    # √(2/π)/√K (mean) and 0.67449/√K (median).
    assert snr_floors(16)[1] == pytest.approx(0.6912 / 4, abs=2e-5)
    assert snr_floors(2)[1] == pytest.approx(1 / math.sqrt(2), rel=1e-6)
    assert snr_floors(2)[0] == math.inf
    assert snr_floors(4)[0] == pytest.approx(2 * math.sqrt(3) / math.pi / 2, rel=1e-9)
    mean, median = snr_floors(10_000)
    assert mean * 100 == pytest.approx(math.sqrt(2 / math.pi), rel=1e-4)
    assert median * 100 == pytest.approx(0.6744898, rel=1e-4)
    # And by simulation: per-parameter SNRs of zero-mean Gaussian estimates.
    gen = torch.Generator().manual_seed(1)
    for k in (4, 16):
        g = torch.randn(200_000, k, dtype=torch.float64, generator=gen)
        snr = g.mean(1).abs() / g.std(1)
        mean, median = snr_floors(k)
        m, se = float(snr.mean()), float(snr.std() / math.sqrt(len(snr)))
        assert abs(m - mean) < Z * se, (k, m, se, mean)
        below = float((snr <= median).double().mean())  # P(SNR ≤ median) = ½
        assert abs(below - 0.5) < Z * math.sqrt(0.25 / len(snr)), (k, below)


def test_two_estimates_have_no_mean_snr_floor_and_write_standard_json():
    # At K = 2 the mean SNR's floor E|t₁|/√2 is infinite: reported as absent, so that
    # --json and metrics.jsonl stay standard JSON (no Infinity).
    grads = torch.randn(2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    stats = gradient_stats("score", grads, reference=torch.zeros(5, dtype=torch.float64))
    assert stats.snr is not None and stats.snr_floor is None
    assert stats.snr_median_floor == pytest.approx(1 / math.sqrt(2), rel=1e-6)
    json.dumps(dataclasses.asdict(stats), allow_nan=False)  # raises on an infinite value
    json.dumps(stats.metrics(), allow_nan=False)


def test_pure_noise_raw_statistics_sit_at_their_floors_and_corrected_ones_at_zero():
    d, k = 101, 16
    scales = torch.linspace(0.2, 3.0, d, dtype=torch.float64)
    stats = _replicated_stats(torch.zeros(d, dtype=torch.float64), scales, k)
    noise = float((scales**2).sum())
    # Raw: ‖ḡ‖² at Σ Var / K, the ratio at 1/K, the SNRs at their floors, the bias at bias_se.
    _within(_mean_se(stats, lambda s: s.mean_norm**2), noise / k, "‖ḡ‖²")
    _within(_mean_se(stats, lambda s: s.signal_floor), noise / k, "signal_floor")
    _within(_mean_se(stats, lambda s: s.signal_to_noise), 1 / k, "signal_to_noise")
    _within(_mean_se(stats, lambda s: s.snr), snr_floors(k)[0], "snr (mean)")
    _within(_mean_se(stats, lambda s: s.snr_median), snr_floors(k)[1], "snr_median")
    _within(_mean_se(stats, lambda s: s.bias**2), noise / k, "bias²")
    assert all(s.snr_floor == snr_floors(k)[0] and s.snr_median_floor == snr_floors(k)[1]
               for s in stats)
    # Corrected: zero within their standard errors (the squared bias before the clip at 0).
    _within(_mean_se(stats, lambda s: s.signal), 0.0, "signal")
    _within(_mean_se(stats, lambda s: s.signal_to_noise_corrected), 0.0, "corrected ratio")
    _within(_mean_se(stats, lambda s: s.bias**2 - s.bias_se**2), 0.0, "corrected bias²")
    for s in stats:
        assert s.bias_corrected == pytest.approx(math.sqrt(max(0.0, s.bias**2
                                                               - s.bias_se**2)))
    # The clipped root is small beside the raw bias: O((2/D)^¼) of the floor, not the floor.
    ratio = _mean_se(stats, lambda s: s.bias_corrected / s.bias_se)[0]
    assert ratio < 0.3 and _mean_se(stats, lambda s: s.bias / s.bias_se)[0] > 0.95


def test_known_bias_and_signal_are_recovered_by_the_corrected_statistics():
    # g = μ + noise with an exact reference 0: the bias is μ and the signal ‖μ‖². ‖μ‖ is set
    # to the size of the noise floor, where the raw bias overstates it by about √2.
    d, k = 101, 16
    scales = torch.linspace(0.2, 3.0, d, dtype=torch.float64)
    floor = float((scales**2).sum()) / k
    direction = torch.linspace(-1.0, 1.0, d, dtype=torch.float64)
    mu = direction / direction.norm() * math.sqrt(floor)
    stats = _replicated_stats(mu, scales, k, seed=2)
    size = float(mu.norm())
    _within(_mean_se(stats, lambda s: s.bias**2 - s.bias_se**2), size**2, "corrected bias²")
    _within(_mean_se(stats, lambda s: s.signal), size**2, "signal")
    corrected = _mean_se(stats, lambda s: s.bias_corrected)[0]
    raw = _mean_se(stats, lambda s: s.bias)[0]
    assert abs(corrected - size) < 0.05 * size, (corrected, size)
    assert raw == pytest.approx(math.sqrt(2) * size, rel=0.05)
    # The median SNR of a real gradient stands clear of its floor.
    assert _mean_se(stats, lambda s: s.snr_median)[0] > 1.5 * snr_floors(k)[1]


def test_metrics_carry_the_corrected_statistics_and_their_floors():
    stats = _replicated_stats(torch.ones(5, dtype=torch.float64),
                              torch.ones(5, dtype=torch.float64), replicates=1)[0]
    metrics = stats.metrics()
    for key in ("variance", "snr", "snr_median", "snr_floor", "snr_median_floor",
                "signal_to_noise", "signal_to_noise_corrected", "signal", "signal_floor",
                "bias", "bias_se", "bias_corrected"):  # (no cosine: the reference is 0)
        assert f"grad/sim/{key}" in metrics, key
    assert metrics["grad/sim/signal_to_noise_corrected"] == pytest.approx(
        metrics["grad/sim/signal_to_noise"] - 1 / 16)
    exact = gradient_stats("exact", torch.ones(1, 5), torch.ones(5), reference_exact=True,
                           noiseless=True)
    assert exact.bias_corrected == 0.0 and exact.signal == pytest.approx(5.0)
    assert not any(k.endswith(("floor", "snr", "snr_median")) for k in exact.metrics())


def test_exact_has_zero_bias_and_score_a_bias_within_its_noise():
    sac = fixed_critic_sac()
    with _OwnRandomness(0, "cpu"):
        report = measure_sac(sac, torch.randn(64, 3), samples=32, num_samples=4)
    stats = {s.estimator: s for s in report.estimators}
    assert set(stats) == {"pathwise", "score", "score_no_baseline", "straight_through",
                          "gumbel_rao", "reinmax", "exact"}
    assert report.reference == "exact"
    assert stats["exact"].variance == 0.0 and stats["exact"].bias < 1e-6
    assert stats["exact"].cosine == pytest.approx(1.0)
    for name in ("score", "score_no_baseline"):
        s = stats[name]
        assert s.variance > 0 and s.bias is not None
        assert s.bias < 3.0 * s.bias_se, (name, s.bias, s.bias_se)
        assert s.bias_corrected < s.bias
    # The Gumbel-softmax relaxation (τ = 1) is biased, far beyond its noise; with the floor
    # taken out in quadrature the bias hardly changes.
    p = stats["pathwise"]
    assert p.bias > 10.0 * p.bias_se
    assert p.bias_corrected == pytest.approx(math.sqrt(p.bias**2 - p.bias_se**2))
    assert p.bias_corrected > 0.99 * p.bias


def test_box_sac_reports_cosine_to_a_many_sample_reference_and_no_bias():
    torch.manual_seed(0)
    sac = small_sac(False, action_dim=2)
    with _OwnRandomness(0, "cpu"):
        report = measure_sac(sac, torch.randn(16, 3), samples=8, num_samples=2,
                             reference_samples=64)
    assert [s.estimator for s in report.estimators] == ["pathwise", "score",
                                                         "score_no_baseline"]
    for s in report.estimators:
        assert s.bias is None and -1.0 <= s.cosine <= 1.0 and s.variance > 0
        metrics = s.metrics()
        assert {f"grad/{s.estimator}/{k}" for k in ("variance", "snr", "signal_to_noise",
                                                    "cosine")} <= set(metrics)
        assert all(math.isfinite(v) for v in metrics.values())


def test_reinforce_per_episode_estimates_average_to_the_batch_gradient():
    from pathwise.analysis.diagnostics import collect_episodes

    torch.manual_seed(0)
    agent = Reinforce(1, 3, True, ReinforceConfig(baseline="value", hidden_sizes=[8]),
                      EstimatorConfig(name="score").build())
    batch = collect_episodes(agent.policy, "pathwise/DiscreteBandit-v0", 12, 0, 0.99, "cpu")
    report = measure_reinforce(agent, batch)
    episodes = int(batch.done.sum())  # 8 envs of one-step episodes: 16 ≥ 12
    names = [s.estimator for s in report.estimators]
    assert names == ["score", "score_no_baseline"] and report.estimators[0].samples == episodes
    # ḡ over episodes is (1/E)·∇ Σ_t −G_t log π(a_t|s_t).
    dist = agent.policy.distribution(batch.obs)
    one_hot = torch.nn.functional.one_hot(batch.action, 3).float()
    loss = -(batch.returns * dist.log_prob(one_hot)).sum() / episodes
    grads = torch.autograd.grad(loss, list(agent.policy.parameters()))
    norm = float(torch.cat([g.flatten() for g in grads]).norm())
    assert report.estimators[1].mean_norm == pytest.approx(norm, rel=1e-4)


# -- training -------------------------------------------------------------------------------
def _train(tmp_path, name, agent, env, every):
    cfg = TrainConfig(env=env, agent=agent, total_steps=120, run_dir=str(tmp_path / name),
                      estimator=EstimatorConfig(name="score" if agent.name == "reinforce"
                                                else "pathwise"),
                      eval_every=0, eval_episodes=2, log_every=40, checkpoint_every=0,
                      device="cpu", torch_threads=1, wandb=WandbConfig(mode="disabled"),
                      diagnostics=DiagnosticsConfig(every=every, samples=4, batch_size=16,
                                                    reference_samples=16, episodes=4))
    train(cfg)
    state = torch.load(tmp_path / name / "checkpoints" / "last.pt", weights_only=True)
    return state["agent"], read_metrics(tmp_path / name / "metrics.jsonl")


@pytest.mark.parametrize("agent,env", [
    (SACConfig(hidden_sizes=[16], batch_size=16, buffer_size=500, learning_starts=40),
     "pathwise/ContinuousBandit-v0"),
    (SACConfig(hidden_sizes=[16], batch_size=16, buffer_size=500, learning_starts=40),
     "pathwise/DiscreteBandit-v0"),
    (ReinforceConfig(hidden_sizes=[16], batch_steps=16, value_updates=2),
     "pathwise/DiscreteBandit-v0")], ids=["sac-box", "sac-discrete", "reinforce-discrete"])
def test_diagnostics_on_or_off_train_identical_parameters(tmp_path, agent, env):
    on, metrics = _train(tmp_path, "on", agent, env, every=40)
    off, quiet = _train(tmp_path, "off", agent, env, every=0)
    for key in ("policy", "critic", "value"):
        if key in on:
            for name, tensor in on[key].items():
                assert torch.equal(tensor, off[key][name]), (key, name)
    measured = [r for r in metrics if "grad/seconds" in r]
    assert [r["global_step"] for r in measured] == [40, 80, 120]
    assert all("grad/score_no_baseline/variance" in r for r in measured)
    assert not any(k.startswith("grad/") for r in quiet for k in r)


def test_invalid_diagnostics_config_is_one_line():
    with pytest.raises(ConfigError, match="diagnostics.samples must be >= 2"):
        as_train_config({"diagnostics": {"samples": 1}})
