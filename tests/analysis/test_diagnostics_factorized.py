"""Estimator diagnostics on factorized actions: against the exact gradient where the joint set
can be enumerated (the unbiased estimators within their noise, exact itself at zero), against
a many-draw score-function reference where it cannot (no bias reported)."""

import torch

from pathwise.agents.sac import SAC, SACConfig
from pathwise.analysis import diagnostics
from pathwise.analysis.diagnostics import _OwnRandomness, measure_sac
from pathwise.training.config import EstimatorConfig

DISCRETE_FAMILY = {"straight_through", "gumbel_rao", "reinmax"}


def factorized_sac(nvec, estimator="pathwise", **options):
    torch.manual_seed(0)
    cfg = SACConfig(hidden_sizes=[16, 16], buffer_size=100, batch_size=32, learning_starts=32)
    return SAC(3, len(nvec), True, cfg, EstimatorConfig(name=estimator, **options).build(),
               action_nvec=nvec, action_start=[0] * len(nvec))


def test_against_the_exact_gradient_of_a_padded_multidiscrete_policy():
    sac = factorized_sac([2, 4, 3])  # 2·4·3 = 24 enumerated joint actions
    with _OwnRandomness(0, "cpu"):
        report = measure_sac(sac, torch.randn(32, 3), samples=32, num_samples=4)
    assert report.action_space == "MultiDiscrete" and report.reference == "exact"
    stats = {s.estimator: s for s in report.estimators}
    assert set(stats) == {"pathwise", "score", "score_no_baseline", "exact"} | DISCRETE_FAMILY
    assert stats["exact"].variance == 0.0 and stats["exact"].bias < 1e-6
    for name in ("score", "score_no_baseline"):  # unbiased: a bias within 4 noise floors
        s = stats[name]
        assert s.variance > 0 and s.bias < 4.0 * s.bias_se, (name, s.bias, s.bias_se)
    for name in DISCRETE_FAMILY | {"pathwise"}:
        s = stats[name]
        assert s.bias is not None and s.variance >= 0 and -1 <= s.cosine <= 1
    # Leave-one-out lowers the score function's variance on this critic.
    assert stats["score"].variance < stats["score_no_baseline"].variance


def test_a_joint_set_too_large_to_enumerate_gets_a_score_reference_and_no_bias():
    sac = factorized_sac([11] * 4)  # 14,641 > 4096
    with _OwnRandomness(0, "cpu"):
        report = measure_sac(sac, torch.randn(8, 3), samples=4, num_samples=2,
                             reference_samples=32)
    assert report.reference.startswith("score (leave-one-out), 32 draws")
    stats = {s.estimator: s for s in report.estimators}
    assert "exact" not in stats and DISCRETE_FAMILY <= set(stats)
    for s in stats.values():
        assert s.bias is None and s.cosine is not None and s.variance > 0


def test_every_estimate_enumerates_only_the_real_joint_set():
    # 3·100 = 300 joint actions, 100² = 10,000 padded ones: the exact row (on rebuilt copies
    # of the distribution) must keep to the 300, or it exceeds max_actions=4096 and raises.
    sac = factorized_sac([3, 100])
    with _OwnRandomness(0, "cpu"):
        report = measure_sac(sac, torch.randn(2, 3), samples=2, num_samples=2)
    assert report.reference == "exact"
    assert {s.estimator: s for s in report.estimators}["exact"].bias < 1e-6


def test_a_run_is_measured_with_its_own_estimator_options(monkeypatch):
    # Trained with exact and max_actions raised to 9^4 = 6,561: exact is still the reference
    # (the default 4,096 would have swapped in a score-function one and dropped exact).
    sac = factorized_sac([9] * 4, "exact", max_actions=7000)
    with _OwnRandomness(0, "cpu"):
        report = measure_sac(sac, torch.randn(2, 3), samples=2, num_samples=2)
    assert report.reference == "exact"
    assert {s.estimator: s for s in report.estimators}["exact"].bias < 1e-6
    # Trained with gumbel_rao and mc_samples=3: measured with 3 conditional draws, not 10.
    seen = {}
    original = diagnostics.estimators_for
    monkeypatch.setattr(diagnostics, "estimators_for",
                        lambda *a, **k: seen.update(original(*a, **k)) or seen)
    with _OwnRandomness(0, "cpu"):
        measure_sac(factorized_sac([3, 3], "gumbel_rao", mc_samples=3), torch.randn(2, 3),
                    samples=2, num_samples=2)
    assert seen["gumbel_rao"].mc_samples == 3 and seen["exact"].max_actions == 4096
