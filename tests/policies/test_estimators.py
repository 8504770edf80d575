"""Tests for policies.estimators through the public API ``get_estimator(name, **options)``.

Expected numbers come from docs/estimator-facts.md (§1, §4) or closed forms derived in the
comments; the discrete estimator family has its own file, test_discrete_estimators.py.
Per-sample gradients: a batch of N independent elements, one draw each, and
``autograd.grad(surrogate.sum(), params)`` with params of shape (N, ...) gives N i.i.d.
single-sample gradient estimates.
"""

import math

import pytest
import torch
from _pstats import Z, assert_close_se, mean_se, normal_pdf, var_se
from torch.distributions import (
    Categorical,
    Independent,
    Normal,
    OneHotCategorical,
    kl_divergence,
)

from pathwise.policies.distributions import GumbelSoftmax, TanhNormal
from pathwise.policies.estimators import get_estimator

F64 = torch.float64


def gaussian_grads(name, mu, sigma, cost, n, seed, **options):
    """Surrogate values and per-element gradients (∂μ, ∂σ), shape (n, 2), for Normal(μ, σ)."""
    torch.manual_seed(seed)
    loc = torch.full((n,), float(mu), dtype=F64, requires_grad=True)
    scale = torch.full((n,), float(sigma), dtype=F64, requires_grad=True)
    surrogate = get_estimator(name, **options)(Normal(loc, scale), cost)
    assert surrogate.shape == (n,)
    g_mu, g_sigma = torch.autograd.grad(surrogate.sum(), [loc, scale])
    return surrogate.detach(), torch.stack([g_mu, g_sigma], -1)


def square(z):
    return z**2


# ---------------------------------------------------------------------------------------
# §1 Gaussian, quadratic cost: z ~ N(1, 2²), f = z²
# ---------------------------------------------------------------------------------------
N_BIG = 400_000


@pytest.mark.parametrize(
    "name, variance",
    [
        # pathwise: ∂μ = 2z, Var = 4σ² = 16; ∂σ = 2zε = 2(με + σε²), Var = 4(μ² + 2σ²) = 36.
        ("pathwise", (16.0, 36.0)),
        # score function, no baseline (facts §1).
        ("score", (74.25, 356.5)),
    ],
)
def test_gaussian_quadratic_unbiased_with_known_variance(name, variance):
    mu, sigma = 1.0, 2.0
    values, g = gaussian_grads(name, mu, sigma, square, N_BIG, seed=100)
    # ∂/∂μ (μ² + σ²) = 2μ = 2, ∂/∂σ = 2σ = 4.
    m, se = mean_se(g)
    assert_close_se(m, se, [2.0, 4.0], what=f"{name} mean gradient")
    v, v_se = var_se(g)
    assert_close_se(v, v_se, variance, what=f"{name} per-sample variance")
    # The surrogate's value estimates the objective E[z²] = μ² + σ² = 5 for both estimators.
    mv, sev = mean_se(values)
    assert_close_se(mv, sev, 5.0, what=f"{name} surrogate value")


def test_score_with_optimal_constant_baseline_matches_facts():
    # A constant shift of the cost, f − b, is exactly the score function with baseline b
    # (E[∇ log π] = 0), so the optimal per-parameter baseline is reachable through the API.
    # With s_μ = ε/σ, s_σ = (ε² − 1)/σ and f = μ² + 2μσε + σ²ε²:
    #   b*_μ = E[f s_μ²]/E[s_μ²] = E[f ε²] = μ² + 3σ² = 13,
    #   b*_σ = E[f (ε²−1)²]/E[(ε²−1)²] = (2μ² + σ²·E[ε²(ε²−1)²]) / 2 = (2μ² + 10σ²)/2 = 21.
    # Facts §1: per-sample variances 32 (μ) and 136 (σ) with these baselines.
    mu, sigma = 1.0, 2.0
    b_mu, b_sigma = mu**2 + 3 * sigma**2, mu**2 + 5 * sigma**2
    _, g_mu = gaussian_grads("score", mu, sigma, lambda z: z**2 - b_mu, N_BIG, seed=101)
    _, g_sigma = gaussian_grads("score", mu, sigma, lambda z: z**2 - b_sigma, N_BIG, seed=102)
    g = torch.stack([g_mu[:, 0], g_sigma[:, 1]], -1)
    m, se = mean_se(g)
    assert_close_se(m, se, [2.0, 4.0], what="score with optimal baseline, mean")
    v, v_se = var_se(g)
    assert_close_se(v, v_se, [32.0, 136.0], what="score with optimal baseline, variance")


@pytest.mark.parametrize("k", [2, 4])
def test_leave_one_out_baseline_is_unbiased_and_less_noisy(k):
    mu, sigma = 1.0, 2.0
    n = 600_000 // k
    # Same seed: both estimators see the very same draws (a paired comparison).
    _, g_none = gaussian_grads("score", mu, sigma, square, n, seed=103, num_samples=k)
    _, g_loo = gaussian_grads(
        "score", mu, sigma, square, n, seed=103, num_samples=k, baseline="mean"
    )
    for g, what in ((g_none, "none"), (g_loo, "leave-one-out")):
        m, se = mean_se(g)
        assert_close_se(m, se, [2.0, 4.0], what=f"score k={k} baseline={what}, mean")
    # Without a baseline, averaging k i.i.d. single-sample estimates divides the variance by k.
    v_none, se_none = var_se(g_none)
    assert_close_se(v_none, se_none, [74.25 / k, 356.5 / k], what=f"score k={k} variance")
    # Var_none − Var_loo = E[(g_none − ḡ)² − (g_loo − ḡ)²]: the per-element differences of
    # squared deviations are i.i.d., so their mean has an ordinary SE. Require > 5 SE.
    d = (g_none - g_none.mean(0)) ** 2 - (g_loo - g_loo.mean(0)) ** 2
    m, se = mean_se(d)
    assert torch.all(m > Z * se), (m.tolist(), se.tolist())


def test_pathwise_num_samples_averages_draws():
    # k draws per element averaged: still unbiased, per-element variance (16, 36)/k, and the
    # surrogate value still estimates E[z²] = 5.
    k, n = 4, 100_000
    values, g = gaussian_grads("pathwise", 1.0, 2.0, square, n, seed=106, num_samples=k)
    m, se = mean_se(g)
    assert_close_se(m, se, [2.0, 4.0], what="pathwise k=4 mean")
    v, v_se = var_se(g)
    assert_close_se(v, v_se, [16.0 / k, 36.0 / k], what="pathwise k=4 variance")
    mv, sev = mean_se(values)
    assert_close_se(mv, sev, 5.0, what="pathwise k=4 surrogate value")


@pytest.mark.parametrize("mu, sigma, k", [(1.0, 1.0, 3.0), (0.5, 1.5, -1.0)])
def test_general_quadratic_variances(mu, sigma, k):
    # f = (x − k)², a = μ − k (facts §1): pathwise Var[∂μ] = 4σ² for every k;
    # score Var[∂μ] = (a⁴ + 18a²σ² + 15σ⁴)/σ² − 4a²; mean ∂μ = 2a.
    a = mu - k
    var_path = 4 * sigma**2
    var_score = (a**4 + 18 * a**2 * sigma**2 + 15 * sigma**4) / sigma**2 - 4 * a**2

    def cost(x):
        return (x - k) ** 2

    n = 200_000
    for name, var in (("pathwise", var_path), ("score", var_score)):
        _, g = gaussian_grads(name, mu, sigma, cost, n, seed=105)
        m, se = mean_se(g[:, 0])
        assert_close_se(m, se, 2 * a, what=f"{name} mean dmu")
        v, v_se = var_se(g[:, 0])
        assert_close_se(v, v_se, var, what=f"{name} Var dmu")


# ---------------------------------------------------------------------------------------
# §4 Exact (all-action) gradient, discrete SAC: J = Σ_a π(a)(α log π(a) − Q(a))
# ---------------------------------------------------------------------------------------
Q = torch.tensor([1.0, 2.0, 0.5], dtype=F64)
ALPHA = 0.5


def discrete(family, logits):
    """A categorical policy of the given family and the cost −Q(a) in its action encoding."""
    if family == "gumbel":
        return GumbelSoftmax(logits, temperature=0.5), lambda y: -(y * Q.to(y)).sum(-1)
    if family == "onehot":
        return OneHotCategorical(logits=logits), lambda y: -(y * Q.to(y)).sum(-1)
    if family == "categorical":
        return Categorical(logits=logits), lambda i: -Q.to(logits.device)[i]
    raise AssertionError(family)


FAMILIES = ["gumbel", "categorical", "onehot"]


@pytest.mark.parametrize("family", FAMILIES)
def test_exact_discrete_sac_gradient_at_zero_logits(family):
    logits = torch.zeros(3, dtype=F64, requires_grad=True)
    dist, cost = discrete(family, logits)
    surrogate = get_estimator("exact")(dist, cost, alpha=ALPHA)
    assert surrogate.shape == ()
    (g,) = torch.autograd.grad(surrogate, logits)
    # Facts §4, quoted to 5 decimals.
    torch.testing.assert_close(g, torch.tensor([0.05556, -0.27778, 0.22222], dtype=F64),
                               rtol=0, atol=5e-6)
    # Closed form: ∂J/∂l_j = π_j (h_j − Σ_a π_a h_a) with h = α log π − Q; at l = 0,
    # π = 1/3 and α log π is constant, so ∇J = −(Q − mean Q)/3.
    torch.testing.assert_close(g, -(Q - Q.mean()) / 3, rtol=1e-12, atol=1e-12)
    # Value: Σ π (α log π − Q) = α log(1/3) − mean Q.
    assert abs(surrogate.item() - (ALPHA * math.log(1 / 3) - Q.mean().item())) < 1e-12


@pytest.mark.parametrize("family", FAMILIES)
def test_exact_discrete_sac_minimum_at_q_over_alpha(family):
    # π* ∝ exp(Q/α) ⇒ α log π* − Q = −α·logsumexp(Q/α), a constant ⇒ ∇J = 0 and
    # J* = −α·logsumexp(Q/α) = −2.084923 (facts §4). Logits are shift-invariant: test +3 too.
    logits = torch.stack([Q / ALPHA, Q / ALPHA + 3.0]).requires_grad_(True)
    dist, cost = discrete(family, logits)
    surrogate = get_estimator("exact")(dist, cost, alpha=ALPHA)
    assert surrogate.shape == (2,)
    (g,) = torch.autograd.grad(surrogate.sum(), logits)
    torch.testing.assert_close(g, torch.zeros_like(g), rtol=0, atol=1e-12)
    j_star = -ALPHA * torch.logsumexp(Q / ALPHA, 0).item()
    assert abs(j_star - (-2.084923)) < 1e-6
    torch.testing.assert_close(surrogate.detach(), torch.full((2,), j_star, dtype=F64))


@pytest.mark.parametrize("family", FAMILIES)
def test_exact_discrete_sac_value_is_alpha_kl_above_minimum(family):
    # J(l) = α Σ π log(π/π*) − α logsumexp(Q/α)  ⇒  J(l) − J* = α KL(π ‖ π*) >= 0.
    torch.manual_seed(200)
    logits = torch.randn(8, 3, dtype=F64) * 2
    dist, cost = discrete(family, logits)
    surrogate = get_estimator("exact")(dist, cost, alpha=ALPHA)
    j_star = -ALPHA * torch.logsumexp(Q / ALPHA, 0)
    kl = kl_divergence(Categorical(logits=logits), Categorical(logits=(Q / ALPHA).expand(8, 3)))
    torch.testing.assert_close(surrogate - j_star, ALPHA * kl, rtol=1e-10, atol=1e-12)


def _exact_grad(logits_row, family="gumbel", alpha=ALPHA, cost=None):
    logits = logits_row.clone().requires_grad_(True)
    dist, default_cost = discrete(family, logits)
    surrogate = get_estimator("exact")(dist, cost or default_cost, alpha=alpha)
    return torch.autograd.grad(surrogate, logits)[0]


@pytest.mark.parametrize(
    "family, options",
    [
        ("gumbel", {}),
        ("categorical", {}),
        ("onehot", {}),
        ("gumbel", {"num_samples": 4, "baseline": "mean"}),
    ],
)
def test_score_is_unbiased_for_exact_discrete_gradient(family, options):
    base = torch.tensor([0.3, -0.2, 0.5], dtype=F64)
    exact = _exact_grad(base, family)
    n = 80_000 // options.get("num_samples", 1)
    torch.manual_seed(201)
    logits = base.expand(n, 3).clone().requires_grad_(True)
    dist, cost = discrete(family, logits)
    surrogate = get_estimator("score", **options)(dist, cost, alpha=ALPHA)
    (g,) = torch.autograd.grad(surrogate.sum(), logits)
    m, se = mean_se(g)
    assert_close_se(m, se, exact, what=f"score ({family}, {options}) vs exact")


# ---------------------------------------------------------------------------------------
# alpha term
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [0.3, torch.tensor(0.3, dtype=F64)], ids=["float", "tensor"])
def test_entropy_only_objective_all_estimators_agree_on_gumbel_softmax(alpha):
    # Constant cost c: ∇E[c + α log π] = −α∇H. With H = −Σ π log π,
    #   ∂H/∂l_j = −Σ_a π_a(δ_aj − π_j)(log π_a + 1) = −π_j (log π_j + H)
    # ⇒ ∇(−αH)_j = α π_j (log π_j + H).
    base = torch.tensor([0.3, -0.2, 0.5], dtype=F64)
    pi = base.softmax(-1)
    h = -(pi * pi.log()).sum()
    expected = 0.3 * pi * (pi.log() + h)
    c = 2.0  # non-zero, so the score function's per-sample terms c·∇log π are noisy

    def cost(y):
        return torch.full(y.shape[:-1], c, dtype=y.dtype)

    n = 40_000
    grads = {}
    for name, options, hard in [
        ("exact", {}, False),
        ("pathwise", {}, False),
        ("pathwise", {}, True),
        ("score", {}, False),
        ("score", {"num_samples": 2, "baseline": "mean"}, False),
        ("straight_through", {}, False),
        ("gumbel_rao", {"mc_samples": 3}, False),
        ("reinmax", {"num_samples": 2}, False),
    ]:
        torch.manual_seed(202)
        logits = base.expand(n, 3).clone().requires_grad_(True)
        dist = GumbelSoftmax(logits, temperature=0.5, hard=hard)
        surrogate = get_estimator(name, **options)(dist, cost, alpha=alpha)
        assert surrogate.shape == (n,)
        (grads[(name, hard, len(options))],) = torch.autograd.grad(surrogate.sum(), logits)
    # A constant cost has no gradient through the action: every estimator but the score
    # function is exact here, every row equal to the closed form.
    for key in [("exact", False, 0), ("pathwise", False, 0), ("pathwise", True, 0),
                ("straight_through", False, 0), ("gumbel_rao", False, 1),
                ("reinmax", False, 1)]:
        torch.testing.assert_close(grads[key], expected.expand(n, 3), rtol=1e-10, atol=1e-12)
    # score: unbiased (within 5 SE) but genuinely noisy without a baseline.
    m, se = mean_se(grads[("score", False, 0)])
    assert (se > 1e-4).all()
    assert_close_se(m, se, expected, what="score, entropy-only objective")
    # With the leave-one-out baseline a constant cost cancels exactly: no noise left.
    torch.testing.assert_close(grads[("score", False, 2)], expected.expand(n, 3),
                               rtol=1e-10, atol=1e-12)


def _tanh_entropy_gradient(mu, sigma, alpha):
    # E[log π] = −½ log(2πe) − log σ − E[ℓ(μ + σε)] − Σ log((high − low)/2), ℓ = log(1 − tanh²),
    # and ℓ'(u) = −2 tanh u, so
    #   ∂μ E[α log π] = 2α E[tanh u],   ∂σ E[α log π] = α(−1/σ + 2 E[ε tanh u]).
    # The expectations over ε ~ N(0, 1) by the trapezoid rule on [−12, 12].
    eps = torch.linspace(-12, 12, 100001, dtype=F64)
    w = normal_pdf(eps, 0.0, 1.0)
    t = torch.tanh(mu + sigma * eps)
    e_t = torch.trapezoid(w * t, eps)
    e_et = torch.trapezoid(w * eps * t, eps)
    return torch.stack([2 * alpha * e_t, alpha * (-1 / sigma + 2 * e_et)])


@pytest.mark.parametrize("low, high", [(-1.0, 1.0), (-2.0, 3.0)], ids=["unit", "wide"])
def test_tanh_normal_pathwise_and_score_agree_on_alpha_log_prob(low, high):
    mu, sigma, alpha = 0.4, 0.8, 0.5
    expected = _tanh_entropy_gradient(mu, sigma, alpha)
    n = 100_000

    def zero_cost(a):
        return torch.zeros(a.shape, dtype=a.dtype)

    stats = {}
    for name in ("pathwise", "score"):
        torch.manual_seed(203)
        loc = torch.full((n,), mu, dtype=F64, requires_grad=True)
        scale = torch.full((n,), sigma, dtype=F64, requires_grad=True)
        dist = TanhNormal(loc, scale, low=low, high=high, event_dims=0)
        surrogate = get_estimator(name)(dist, zero_cost, alpha=alpha)
        g = torch.stack(torch.autograd.grad(surrogate.sum(), [loc, scale]), -1)
        stats[name] = mean_se(g)
        assert_close_se(*stats[name], expected, what=f"{name} grad of E[alpha log pi]")
    (m_p, se_p), (m_s, se_s) = stats["pathwise"], stats["score"]
    assert_close_se(m_p - m_s, (se_p**2 + se_s**2).sqrt(), 0.0, what="pathwise − score")


@pytest.mark.parametrize("options", [{}, {"num_samples": 4, "baseline": "mean"}])
def test_tanh_normal_pathwise_and_score_agree_with_cost_and_alpha(options):
    # No closed form needed: both estimators are unbiased for the same gradient.
    low = torch.tensor([-2.0, 0.0], dtype=F64)
    high = torch.tensor([3.0, 1.0], dtype=F64)
    target = torch.tensor([0.3, 0.8], dtype=F64)

    def cost(a):
        return ((a - target) ** 2).sum(-1)

    n = 100_000
    stats = {}
    for name in ("pathwise", "score"):
        opts = options if name == "score" else {}
        m_elems = n // opts.get("num_samples", 1)
        torch.manual_seed(204)
        loc = torch.tensor([0.2, -0.5], dtype=F64).expand(m_elems, 2).clone().requires_grad_()
        scale = torch.tensor([0.6, 1.1], dtype=F64).expand(m_elems, 2).clone().requires_grad_()
        dist = TanhNormal(loc, scale, low=low, high=high)
        surrogate = get_estimator(name, **opts)(dist, cost, alpha=0.2)
        assert surrogate.shape == (m_elems,)
        g = torch.cat(torch.autograd.grad(surrogate.sum(), [loc, scale]), -1)
        stats[name] = mean_se(g)
    (m_p, se_p), (m_s, se_s) = stats["pathwise"], stats["score"]
    assert_close_se(m_p - m_s, (se_p**2 + se_s**2).sqrt(), 0.0, what="pathwise − score")


# ---------------------------------------------------------------------------------------
# What the cost sees; shapes, dtypes, devices
# ---------------------------------------------------------------------------------------
def _dists(dtype, device):
    loc = torch.zeros(5, 2, dtype=dtype, device=device, requires_grad=True)
    scale = torch.ones(5, 2, dtype=dtype, device=device, requires_grad=True)
    logits = torch.zeros(5, 4, dtype=dtype, device=device, requires_grad=True)
    return {
        "tanh": TanhNormal(loc, scale, low=-2.0, high=3.0),
        "normal": Normal(loc, scale),
        "gumbel": GumbelSoftmax(logits, temperature=0.5),
        "gumbel-hard": GumbelSoftmax(logits, temperature=0.5, hard=True),
        "onehot": OneHotCategorical(logits=logits),
        "categorical": Categorical(logits=logits),
        # 3 independent factors of 4 categories scored jointly: batch (5,), event (3, 4).
        "multi": Independent(GumbelSoftmax(logits.unsqueeze(1).expand(5, 3, 4),
                                           temperature=0.5), 1),
    }


def _value_cost(dist, dtype=F64):
    """A smooth cost for any of the distributions above: reduces the event dimensions."""
    event_dims = tuple(range(-len(dist.event_shape), 0))

    def cost(actions):
        x = actions.to(dtype)
        x = x.sum(event_dims) if event_dims else x
        return (x - 0.3) ** 2

    return cost


@pytest.mark.parametrize("key", ["tanh", "normal", "gumbel", "gumbel-hard", "onehot",
                                 "categorical"])
def test_score_cost_receives_actions_without_gradient(key):
    dist = _dists(F64, torch.device("cpu"))[key]
    seen = []

    value_cost = _value_cost(dist)

    def cost(a):
        seen.append(a.requires_grad)
        return value_cost(a)

    surrogate = get_estimator("score", num_samples=3)(dist, cost, alpha=0.1)
    assert seen == [False]
    assert surrogate.requires_grad
    if dist.has_rsample:
        seen.clear()
        get_estimator("pathwise")(dist, cost)
        assert seen == [True]  # contrast: the pathwise estimator differentiates through a


@pytest.mark.parametrize(
    "key, name, options",
    [
        ("tanh", "pathwise", {"num_samples": 3}),
        ("tanh", "score", {"num_samples": 3, "baseline": "mean"}),
        ("normal", "pathwise", {}),
        ("gumbel", "pathwise", {"num_samples": 3}),
        ("gumbel-hard", "pathwise", {}),
        ("gumbel", "score", {"num_samples": 3, "baseline": "mean"}),
        ("gumbel", "exact", {}),
        ("onehot", "exact", {}),
        ("categorical", "score", {}),
        ("categorical", "exact", {}),
        ("gumbel", "straight_through", {"num_samples": 3}),
        ("gumbel", "gumbel_rao", {"num_samples": 2, "mc_samples": 3}),
        ("gumbel", "reinmax", {}),
        ("multi", "pathwise", {"num_samples": 2}),
        ("multi", "score", {"num_samples": 3, "baseline": "mean"}),
        ("multi", "exact", {}),
        ("multi", "straight_through", {}),
        ("multi", "gumbel_rao", {"num_samples": 2}),
        ("multi", "reinmax", {"num_samples": 2}),
    ],
)
@pytest.mark.parametrize("alpha", [0.0, 0.2])
def test_surrogate_shape_dtype_device(key, name, options, alpha, dtype, device):
    dist = _dists(dtype, device)[key]
    shapes = []
    value_cost = _value_cost(dist, dtype)

    def cost(a):
        shapes.append(tuple(a.shape))
        return value_cost(a)

    surrogate = get_estimator(name, **options)(dist, cost, alpha=alpha)
    assert surrogate.shape == dist.batch_shape
    assert surrogate.dtype == dtype and surrogate.device.type == device.type
    # exact stacks all actions (4, or 4³ joint ones) along the leading dimension; the others
    # their draws.
    lead = (64 if key == "multi" else 4) if name == "exact" else options.get("num_samples", 1)
    assert shapes == [(lead,) + tuple(dist.batch_shape) + tuple(dist.event_shape)]
    base = dist.base_dist if isinstance(dist, Independent) else dist
    params = [p for p in (getattr(base, n, None) for n in ("loc", "scale", "logits"))
              if isinstance(p, torch.Tensor) and p.requires_grad]
    grads = torch.autograd.grad(surrogate.sum(), params, allow_unused=True)
    assert all(g is None or torch.isfinite(g).all() for g in grads)


def test_estimators_unbiased_on_device(dtype, device):
    # Small statistical check that runs on each device/dtype (§1 means, 5 SE).
    n = 50_000
    torch.manual_seed(205)
    for name in ("pathwise", "score"):
        loc = torch.full((n,), 1.0, dtype=dtype, device=device, requires_grad=True)
        scale = torch.full((n,), 2.0, dtype=dtype, device=device, requires_grad=True)
        surrogate = get_estimator(name)(Normal(loc, scale), square)
        g = torch.stack(torch.autograd.grad(surrogate.sum(), [loc, scale]), -1)
        assert g.dtype == dtype and g.device.type == device.type
        m, se = mean_se(g.cpu())
        assert_close_se(m, se, [2.0, 4.0], what=f"{name} on {device}/{dtype}")


# ---------------------------------------------------------------------------------------
# Bad arguments
# ---------------------------------------------------------------------------------------
def test_exact_rejects_continuous_distributions():
    exact = get_estimator("exact")
    for dist in (TanhNormal(torch.zeros(2), torch.ones(2)), Normal(0.0, 1.0)):
        with pytest.raises(ValueError, match="finite support"):
            exact(dist, lambda a: a)


def test_pathwise_rejects_non_reparameterizable_distribution():
    with pytest.raises(ValueError, match="reparameterizable"):
        get_estimator("pathwise")(Categorical(logits=torch.zeros(3)), lambda i: i.double())


def test_unknown_estimator_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown estimator") as info:
        get_estimator("reinforce")
    for valid in ("pathwise", "score", "exact"):
        assert valid in str(info.value)


@pytest.mark.parametrize(
    "name, options, match",
    [
        ("score", {"baseline": "mean", "num_samples": 1}, "num_samples >= 2"),
        ("score", {"baseline": "mean"}, "num_samples >= 2"),
        ("score", {"baseline": "optimal", "num_samples": 4}, "unknown baseline"),
        ("score", {"num_samples": 0}, "positive integer"),
        ("pathwise", {"num_samples": 2.5}, "positive integer"),
        ("exact", {"num_samples": 3}, "bad options"),
        ("pathwise", {"baseline": "mean"}, "bad options"),
    ],
)
def test_bad_estimator_options_raise_value_error(name, options, match):
    with pytest.raises(ValueError, match=match):
        get_estimator(name, **options)


@pytest.mark.parametrize("name", ["pathwise", "score", "exact", "straight_through",
                                  "gumbel_rao", "reinmax"])
def test_alpha_requiring_grad_is_rejected(name):
    dist = GumbelSoftmax(torch.zeros(3))
    alpha = torch.tensor(0.2, requires_grad=True)
    with pytest.raises(ValueError, match="alpha must not require grad"):
        get_estimator(name)(dist, lambda y: y.sum(-1), alpha=alpha)
