"""The lab's discrete-estimator experiment (pathwise/analysis/lab.py, part 4): every discrete
estimator on a multi-hot action, at a sample count small enough for the test suite."""

import math

import torch

from pathwise.analysis import lab

Z = 5.0


def test_discrete_experiment_rows_and_what_they_must_show(tmp_path):
    torch.manual_seed(0)
    result = lab.discrete_experiment(2000)
    taus = [float(t) for t in lab.DISCRETE_TEMPERATURES]
    names = ("gumbel_softmax", "straight_through_gumbel", "straight_through", "gumbel_rao",
             "reinmax")
    rows = {(r["estimator"], r["tau"]): r for r in result["relaxed"]}
    assert set(rows) == {(n, t) for n in names for t in taus}
    assert len(result["exact_gradient"]) == lab.MULTI_FACTORS * lab.MULTI_CATEGORIES
    flat = result["flat"]
    # exact is the reference; the score function is unbiased: its bias is its noise floor.
    assert flat["exact"]["bias"] < 1e-12 and flat["exact"]["variance"] < 1e-20
    for name in ("score", "score_loo"):
        assert flat[name]["bias"] < Z * flat[name]["bias_se"], (name, flat[name])
    for r in result["relaxed"]:
        assert r["bias_corrected"] <= r["bias"]
        assert math.isclose(r["bias_corrected"]**2, max(0.0, r["bias"]**2 - r["bias_se"]**2),
                            rel_tol=1e-9, abs_tol=1e-15)
    for tau in taus:
        st, gr = rows["straight_through_gumbel", tau], rows["gumbel_rao", tau]
        # Gumbel-Rao: the mean of straight-through Gumbel (biases alike within their noise)
        # and a variance no larger (Rao-Blackwell).
        assert abs(st["bias"] - gr["bias"]) < Z * math.hypot(st["bias_se"], gr["bias_se"])
        assert gr["variance"] < st["variance"] + Z * math.hypot(st["variance_se"],
                                                                 gr["variance_se"])
    # The relaxation's bias grows with τ: clearly larger at the hottest than the coldest.
    cold, hot = rows["gumbel_softmax", taus[0]], rows["gumbel_softmax", taus[-1]]
    assert hot["bias_corrected"] - cold["bias_corrected"] > Z * math.hypot(
        hot["bias_se"], cold["bias_se"])
    path = tmp_path / "discrete_estimators.png"
    lab.plot_discrete(result, path)
    assert path.read_bytes()[:4] == b"\x89PNG"
