"""The discrete estimator family on ``GumbelSoftmax`` policies, against closed forms.

Gumbel-softmax (``pathwise``), straight-through Gumbel (``pathwise`` with ``hard=True``),
``straight_through``, ``gumbel_rao``, ``reinmax``, ``score`` and ``exact``, on three costs
(docs/estimator-facts.md §7–§12):

* a linear cost ⟨y, c⟩, where straight-through and ReinMax have closed-form means;
* the Tucker toy (b − t)², b ~ Bernoulli(p), where every estimator's mean is a closed form
  or a one-dimensional integral, and several point the wrong way;
* a quadratic of a multi-hot action (3 independent factors), against the enumerated gradient.

Per-element gradients as in test_estimators.py: a batch of N identical elements, one leaf
row of logits each, so ``autograd.grad(surrogate.sum(), logits)`` holds N i.i.d. estimates.
"""

import itertools
import math

import pytest
import torch
from _pstats import Z, assert_close_se, mean_se, squared_bias_se, var_se
from torch.distributions import Categorical, Independent, OneHotCategorical

from pathwise.policies.distributions import GumbelSoftmax
from pathwise.policies.estimators import enumerate_actions, get_estimator

F64 = torch.float64

# label: (estimator name, distribution's ``hard`` flag, options)
ESTIMATORS = {
    "gumbel_softmax": ("pathwise", False, {}),
    "st_gumbel": ("pathwise", True, {}),
    "straight_through": ("straight_through", False, {}),
    "gumbel_rao": ("gumbel_rao", False, {"mc_samples": 10}),
    "reinmax": ("reinmax", False, {}),
    "score": ("score", False, {"num_samples": 4, "baseline": "mean"}),
    "exact": ("exact", False, {}),
}
RELAXED = ("gumbel_softmax", "st_gumbel", "gumbel_rao")  # Gumbel noise in the backward pass


def logit_grads(label, logits0, cost, tau, n, seed, **override):
    """Surrogate values (n,) and n i.i.d. gradient estimates w.r.t. the logits (n, *shape).

    ``logits0`` of shape (n_cat,) is one categorical; (k, n_cat) is k independent factors
    whose joint action the cost scores (``Independent(GumbelSoftmax, 1)``).
    """
    name, hard, options = ESTIMATORS[label]
    torch.manual_seed(seed)
    logits = logits0.expand((n,) + logits0.shape).clone().requires_grad_(True)
    dist = GumbelSoftmax(logits, temperature=tau, hard=hard)
    if logits0.dim() == 2:
        dist = Independent(dist, 1)
    surrogate = get_estimator(name, **{**options, **override})(dist, cost)
    assert surrogate.shape == (n,)
    (g,) = torch.autograd.grad(surrogate.sum(), logits)
    return surrogate.detach(), g


def softmax_jacobian(p):
    """∂softmax/∂logits at probabilities p: diag(p) − p pᵀ (symmetric)."""
    return torch.diag(p) - torch.outer(p, p)


# ---------------------------------------------------------------------------------------
# Linear cost ⟨y, c⟩ (facts §7, §10)
# ---------------------------------------------------------------------------------------
LIN_PROBS = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=F64)
LIN_C = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=F64)


def linear_cost(y):
    return y @ LIN_C.to(y)


def test_exact_gradient_of_a_linear_cost_is_the_softmax_jacobian_times_c():
    _, g = logit_grads("exact", LIN_PROBS.log(), linear_cost, 1.0, 2, seed=300)
    torch.testing.assert_close(g, (softmax_jacobian(LIN_PROBS) @ LIN_C).expand(2, 4),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("tau", [0.5, 1.0, 2.0])
def test_straight_through_on_a_linear_cost_is_deterministic_and_exact_only_at_tau_one(tau):
    # Every draw gives J_τ c / τ, J_τ the softmax Jacobian at q = softmax(θ/τ): the one-hot D
    # enters only through ∇f(D) = c, which is constant (facts §7).
    q = torch.softmax(LIN_PROBS.log() / tau, -1)
    expected = softmax_jacobian(q) @ LIN_C / tau
    values, g = logit_grads("straight_through", LIN_PROBS.log(), linear_cost, tau, 1000,
                            seed=301)
    torch.testing.assert_close(g, expected.expand(1000, 4), rtol=1e-12, atol=1e-12)
    exact = softmax_jacobian(LIN_PROBS) @ LIN_C
    if tau == 1.0:
        torch.testing.assert_close(expected, exact, rtol=1e-12, atol=1e-12)
    else:
        assert (expected - exact).norm() > 0.1 * exact.norm()
    # The value is the cost of the one-hot sample: an unbiased estimate of E f = Σ π c.
    m, se = mean_se(values)
    assert_close_se(m, se, LIN_PROBS @ LIN_C, what=f"straight-through value, tau={tau}")


@pytest.mark.parametrize("tau", [0.5, 1.0, 2.0])
def test_reinmax_on_a_linear_cost_matches_its_closed_form_mean(tau):
    # Facts §10: with q = softmax(θ/τ), π = softmax(θ), the mean is
    #   q⊙c − ½π(qᵀc) − ½q(πᵀc) − ½q(qᵀc) + ½π(πᵀc),
    # which is J(π)c, the exact gradient, at τ = 1 (q = π).
    pi, c = LIN_PROBS, LIN_C
    q = torch.softmax(pi.log() / tau, -1)
    closed = q * c - 0.5 * pi * (q @ c) - 0.5 * q * (pi @ c) - 0.5 * q * (q @ c) \
        + 0.5 * pi * (pi @ c)
    _, g = logit_grads("reinmax", pi.log(), linear_cost, tau, 200_000, seed=302)
    m, se = mean_se(g)
    assert_close_se(m, se, closed, what=f"reinmax mean, linear cost, tau={tau}")
    exact = softmax_jacobian(pi) @ c
    if tau == 1.0:
        torch.testing.assert_close(closed, exact, rtol=1e-12, atol=1e-12)
    else:
        assert torch.any((m - exact).abs() > Z * se)  # biased away from τ = 1


def test_gumbel_family_on_a_linear_cost_shares_one_biased_mean():
    # Straight-through Gumbel and Gumbel-softmax give the same gradient draw for draw on a
    # linear cost (facts §3); Gumbel-Rao averages the same Jacobian given D, so all three have
    # the mean ∇θ⟨E softmax((θ + G)/τ), c⟩, which is not the exact gradient (E y ≠ π).
    tau, n = 1.0, 100_000
    exact = softmax_jacobian(LIN_PROBS) @ LIN_C
    stats = {label: mean_se(logit_grads(label, LIN_PROBS.log(), linear_cost, tau, n,
                                        seed=303)[1])
             for label in RELAXED}
    (m_st, se_st), (m_gr, se_gr) = stats["st_gumbel"], stats["gumbel_rao"]
    assert_close_se(m_gr - m_st, (se_st**2 + se_gr**2).sqrt(), 0.0,
                    what="gumbel_rao − st_gumbel mean")
    for label, (m, se) in stats.items():
        assert torch.any((m - exact).abs() > Z * se), f"{label} should be biased"
    # Same seed, same Gumbel noise: soft and hard are equal draw for draw.
    torch.testing.assert_close(stats["gumbel_softmax"][0], m_st, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("label", ["score", "exact"])
def test_unbiased_estimators_on_a_linear_cost(label):
    exact = softmax_jacobian(LIN_PROBS) @ LIN_C
    _, g = logit_grads(label, LIN_PROBS.log(), linear_cost, 0.5, 50_000, seed=304)
    m, se = mean_se(g)
    assert_close_se(m, se, exact, slack=1e-12, what=f"{label}, linear cost")


# ---------------------------------------------------------------------------------------
# The Tucker toy: minimise E[(b − t)²], b ~ Bernoulli(p) (facts §12)
# ---------------------------------------------------------------------------------------
P_TOY, T_TOY = 0.3, 0.45
ETA = math.log(P_TOY / (1 - P_TOY))  # θ₁ − θ₀


def toy_cost(y):
    return (y[..., 1] - T_TOY) ** 2


def _logistic_expectation(h, eta=ETA, points=200_001, width=40.0):
    """E[h(L, b)], L ~ Logistic(0, 1) (L = G₁ − G₀ of two Gumbels) and b = 1[η + L > 0], by
    the trapezoid rule on each side of the boundary l = −η, where b (and so a straight-through
    integrand) jumps. The density σ'(l) < e^{−|l|}: ±40 holds the mass to double precision."""
    total = 0.0
    # d = argmax indicator b on each side (not recomputed from l: at l = −η it is ambiguous).
    for d, lo, hi in ((0.0, -eta - width, -eta), (1.0, -eta, -eta + width)):
        l = torch.linspace(lo, hi, points, dtype=F64)
        density = torch.sigmoid(l) * torch.sigmoid(-l)
        total += float(torch.trapezoid(h(l, d) * density, l))
    return total


def toy_closed_forms(tau):
    """∂/∂θ₁ E[...] of every estimator on the toy (facts §12), f'(b) = 2(b − t)."""
    p, t, eta = P_TOY, T_TOY, ETA
    q = 1 / (1 + math.exp(-eta / tau))  # softmax(θ/τ)₁

    def d_sigmoid(x):
        return torch.sigmoid(x) * torch.sigmoid(-x)

    reinmax = 0.0
    for d, prob in ((1.0, p), (0.0, 1 - p)):
        pi1 = (d + q) / 2
        reinmax += prob * 2 * (d - t) * (2 * pi1 * (1 - pi1) - 0.5 * p * (1 - p))
    st_gumbel = _logistic_expectation(
        lambda l, d: 2 * (d - t) * d_sigmoid((eta + l) / tau) / tau)
    return {
        "exact": p * (1 - p) * (1 - 2 * t),
        "score": p * (1 - p) * (1 - 2 * t),
        "straight_through": 2 * (p - t) * q * (1 - q) / tau,
        "reinmax": reinmax,
        "st_gumbel": st_gumbel,
        "gumbel_rao": st_gumbel,
        "gumbel_softmax": _logistic_expectation(
            lambda l, _: 2 * (torch.sigmoid((eta + l) / tau) - t) * d_sigmoid((eta + l) / tau)
            / tau),
    }


# The signs of E ĝ at p = 0.3, t = 0.45 (the true gradient is +0.021: lower p).
TOY_SIGNS = {
    1.0: {"exact": 1, "score": 1, "reinmax": 1, "straight_through": -1, "st_gumbel": -1,
          "gumbel_rao": -1, "gumbel_softmax": -1},
    0.5: {"exact": 1, "score": 1, "reinmax": 1, "straight_through": -1, "st_gumbel": -1,
          "gumbel_rao": -1, "gumbel_softmax": -1},
}


@pytest.mark.parametrize("tau", [0.5, 1.0])
def test_tucker_toy_means_match_closed_forms_and_relaxations_get_the_sign_wrong(tau):
    closed = toy_closed_forms(tau)
    logits0 = torch.tensor([1 - P_TOY, P_TOY], dtype=F64).log()
    for label, sign in TOY_SIGNS[tau].items():
        n = 40_000 if label == "gumbel_rao" else 200_000
        _, g = logit_grads(label, logits0, toy_cost, tau, n, seed=310)
        m, se = mean_se(g[:, 1])
        assert_close_se(m, se, closed[label], slack=1e-9, what=f"{label}, toy, tau={tau}")
        assert sign * closed[label] > 0, (label, closed[label])
        if label != "exact":
            assert sign * m > Z * se, f"{label}: mean {float(m):.5f} ± {float(se):.5f}"
    # ReinMax is exact in expectation at τ = 1 (a quadratic: facts §10) and not elsewhere.
    assert (abs(closed["reinmax"] - closed["exact"]) < 1e-12) == (tau == 1.0)


def test_tucker_toy_straight_through_gumbel_bias_vanishes_as_tau_goes_to_zero():
    # For a cost quadratic in b the τ → 0 limit of straight-through Gumbel is the trapezoid
    # rule p(1 − p)·½(f'(0) + f'(1)) = p(1 − p)(f(1) − f(0)): exact (facts §8). Closed forms.
    exact = toy_closed_forms(1.0)["exact"]
    gaps = [abs(toy_closed_forms(tau)["st_gumbel"] - exact) for tau in (0.1, 0.03, 0.01)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 0.1 * exact, gaps


# ---------------------------------------------------------------------------------------
# Gumbel-Rao: the conditional sampler and the Rao-Blackwell variance reduction (facts §9)
# ---------------------------------------------------------------------------------------
def test_gumbel_rao_with_one_conditional_draw_has_the_law_of_straight_through_gumbel():
    # (D, Z | D) has the joint law of (argmax Z, Z): with mc_samples = 1 the estimator is
    # straight-through Gumbel in distribution, so means and variances agree.
    logits0 = torch.tensor([1 - P_TOY, P_TOY], dtype=F64).log()
    n = 200_000
    _, g_st = logit_grads("st_gumbel", logits0, toy_cost, 0.5, n, seed=320)
    _, g_gr = logit_grads("gumbel_rao", logits0, toy_cost, 0.5, n, seed=321, mc_samples=1)
    (m1, se1), (m2, se2) = mean_se(g_st[:, 1]), mean_se(g_gr[:, 1])
    assert_close_se(m2 - m1, (se1**2 + se2**2).sqrt(), 0.0, what="mean, mc_samples=1")
    (v1, vse1), (v2, vse2) = var_se(g_st[:, 1]), var_se(g_gr[:, 1])
    assert_close_se(v2 - v1, (vse1**2 + vse2**2).sqrt(), 0.0, what="variance, mc_samples=1")


def test_gumbel_rao_variance_falls_with_mc_samples_toward_the_rao_blackwell_limit():
    logits0 = torch.tensor([1 - P_TOY, P_TOY], dtype=F64).log()
    n = 40_000
    variances = []
    for mc in (1, 4, 32):
        _, g = logit_grads("gumbel_rao", logits0, toy_cost, 0.5, n, seed=322, mc_samples=mc)
        variances.append(var_se(g[:, 1]))
    for (v_a, se_a), (v_b, se_b) in zip(variances, variances[1:]):
        assert v_a - v_b > Z * math.sqrt(se_a**2 + se_b**2), variances


# ---------------------------------------------------------------------------------------
# A quadratic of a multi-hot action: 3 independent factors of 3 categories (facts §11)
# ---------------------------------------------------------------------------------------
K_FACTORS, N_CAT = 3, 3
QUAD_TAUS = (0.25, 0.5, 1.0, 2.0)


def _quadratic():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(K_FACTORS, N_CAT, dtype=F64, generator=gen)
    m = torch.randn(K_FACTORS * N_CAT, K_FACTORS * N_CAT, dtype=F64, generator=gen)
    b = torch.randn(K_FACTORS * N_CAT, dtype=F64, generator=gen)
    return logits, (m + m.T) / 2, b


QUAD_LOGITS, QUAD_A, QUAD_B = _quadratic()


def quadratic_cost(y):
    """f(x) = xᵀAx + bᵀx of the concatenated one-hots x (..., 9): couples the factors."""
    x = y.flatten(-2)
    return ((x @ QUAD_A.to(x)) * x).sum(-1) + x @ QUAD_B.to(x)


def enumerated_gradient(logits0=QUAD_LOGITS):
    """∇ Σ_{a₁,a₂,a₃} π₁(a₁)π₂(a₂)π₃(a₃) f(a), written out over the 27 joint actions."""
    logits = logits0.clone().requires_grad_(True)
    probs = logits.softmax(-1)
    eye = torch.eye(N_CAT, dtype=F64)
    total = 0.0
    for action in itertools.product(range(N_CAT), repeat=K_FACTORS):
        weight = math.prod(probs[j, a] for j, a in enumerate(action))
        total = total + weight * quadratic_cost(eye[list(action)])
    return total.detach(), torch.autograd.grad(total, logits)[0]


@pytest.fixture(scope="module")
def quadratic_runs():
    """Gradient draws of every sampling estimator at every temperature (computed once)."""
    runs = {}
    for tau in QUAD_TAUS:
        for label in ESTIMATORS:
            if label in ("exact", "score") and tau != 1.0:
                continue  # neither depends on τ
            n = {"exact": 2, "gumbel_rao": 20_000}.get(label, 40_000)
            runs[label, tau] = logit_grads(label, QUAD_LOGITS, quadratic_cost, tau, n,
                                           seed=330)
    return runs


def test_exact_enumerates_the_product_set_of_independent_factors(quadratic_runs):
    value, grad = enumerated_gradient()
    values, g = quadratic_runs["exact", 1.0]
    torch.testing.assert_close(values, value.expand_as(values), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g, grad.expand_as(g), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("label", ["score", "reinmax"])
def test_quadratic_multi_hot_unbiased_estimators(quadratic_runs, label):
    # score: always. reinmax at τ = 1: its backward pass is the trapezoid rule, exact for a
    # cost quadratic in each factor's one-hot (facts §10). Every logit within 5 SE.
    _, grad = enumerated_gradient()
    _, g = quadratic_runs[label, 1.0]
    m, se = mean_se(g)
    assert_close_se(m, se, grad, what=f"{label} on the multi-hot quadratic")


def test_quadratic_multi_hot_relaxation_bias_shrinks_as_tau_falls(quadratic_runs):
    _, grad = enumerated_gradient()
    for label in RELAXED:
        biases = [squared_bias_se(quadratic_runs[label, tau][1], grad) for tau in QUAD_TAUS]
        for (b_cold, se_cold), (b_hot, se_hot) in zip(biases, biases[1:]):
            assert b_cold > Z * se_cold, (label, biases)  # biased at every τ > 0
            assert b_hot - b_cold > Z * math.hypot(se_cold, se_hot), (label, biases)


def test_quadratic_multi_hot_straight_through_bias_does_not_shrink(quadratic_runs):
    # Straight-through's backward pass J_τ/τ → 0 as τ → 0 (softmax(θ/τ) saturates): its mean
    # tends to 0 and its bias to ‖∇‖, unlike the Gumbel relaxations (facts §7).
    _, grad = enumerated_gradient()
    bias = {tau: squared_bias_se(quadratic_runs["straight_through", tau][1], grad)
            for tau in QUAD_TAUS}
    for tau, (b, se) in bias.items():
        assert b > Z * se, (tau, b, se)
    assert bias[0.25][0] > bias[2.0][0] + Z * math.hypot(bias[0.25][1], bias[2.0][1])


def test_quadratic_multi_hot_gumbel_rao_variance_below_straight_through_gumbel(quadratic_runs):
    # Paulus et al. 2021: Rao-Blackwellization cannot raise the variance (facts §9).
    for tau in QUAD_TAUS:
        v_st, se_st = _total_variance(quadratic_runs["st_gumbel", tau][1])
        v_gr, se_gr = _total_variance(quadratic_runs["gumbel_rao", tau][1])
        assert v_st - v_gr > Z * math.hypot(se_st, se_gr), (tau, v_st, v_gr)


def test_quadratic_multi_hot_reinmax_bias_below_straight_through_for_tau_at_least_half(
        quadratic_runs):
    # Liu et al. 2023: second order (ReinMax) against first order (straight-through). Checked
    # here for τ ∈ {0.5, 1, 2}; at τ = 0.25 the ordering reverses on this cost (facts §10).
    _, grad = enumerated_gradient()
    for tau in QUAD_TAUS:
        b_rm, se_rm = squared_bias_se(quadratic_runs["reinmax", tau][1], grad)
        b_st, se_st = squared_bias_se(quadratic_runs["straight_through", tau][1], grad)
        gap = b_st - b_rm
        if tau >= 0.5:
            assert gap > Z * math.hypot(se_rm, se_st), (tau, b_rm, b_st)
        else:
            assert gap < -Z * math.hypot(se_rm, se_st), (tau, b_rm, b_st)


def _total_variance(g):
    """Σ_j Var ĝ_j and its SE, from the spread ‖ĝ − ḡ‖² of each draw."""
    g = g.detach().double().flatten(1)
    spread = (g - g.mean(0)).pow(2).sum(1) * (g.shape[0] / (g.shape[0] - 1))
    return float(spread.mean()), float(spread.std() / math.sqrt(g.shape[0]))


# ---------------------------------------------------------------------------------------
# The seam: what the cost sees, factorized distributions, options and errors
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("label", ["straight_through", "gumbel_rao", "reinmax"])
def test_straight_through_family_feeds_the_cost_exact_one_hot_samples(label):
    name, _, options = ESTIMATORS[label]
    logits = torch.randn(50, 3, 4, dtype=F64, requires_grad=True)
    seen = []

    def cost(y):
        seen.append(y.detach())
        return quadratic_cost(y[..., :3])

    dist = Independent(GumbelSoftmax(logits, temperature=0.7), 1)
    surrogate = get_estimator(name, num_samples=2, **options)(dist, cost)
    (y,) = seen
    assert y.shape == (2, 50, 3, 4) and surrogate.shape == (50,)
    assert torch.equal(y, torch.nn.functional.one_hot(y.argmax(-1), 4).to(F64))
    (g,) = torch.autograd.grad(surrogate.sum(), logits)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


@pytest.mark.parametrize("label", ["straight_through", "gumbel_rao", "reinmax"])
def test_straight_through_family_values_estimate_the_objective(label):
    value, _ = enumerated_gradient()
    values, _ = logit_grads(label, QUAD_LOGITS, quadratic_cost, 0.5, 20_000, seed=340)
    m, se = mean_se(values)
    assert_close_se(m, se, value, what=f"{label} surrogate value")


def test_factorized_exact_matches_per_factor_sums_for_a_separable_cost():
    # A cost that is a sum over factors has, for each factor, the single-factor gradient.
    torch.manual_seed(341)
    logits = torch.randn(6, 2, 3, dtype=F64, requires_grad=True)
    c = torch.randn(2, 3, dtype=F64)

    def separable(y):
        return ((y * c) ** 2 + y * c).sum((-1, -2))

    joint = get_estimator("exact")(Independent(GumbelSoftmax(logits), 1), separable)
    (g_joint,) = torch.autograd.grad(joint.sum(), logits)
    single = get_estimator("exact")(GumbelSoftmax(logits),
                                    lambda y: ((y * c) ** 2 + y * c).sum(-1))
    (g_single,) = torch.autograd.grad(single.sum(), logits)
    torch.testing.assert_close(joint, single.sum(-1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g_joint, g_single, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("base", ["categorical", "onehot", "gumbel"])
def test_enumerate_actions_of_an_independent_is_the_product_set(base):
    logits = torch.randn(5, 2, 3, dtype=F64)
    dist = {"categorical": Categorical(logits=logits),
            "onehot": OneHotCategorical(logits=logits),
            "gumbel": GumbelSoftmax(logits)}[base]
    joint = Independent(dist, 1)
    support = enumerate_actions(joint)
    assert support.shape == (9, 5) + joint.event_shape
    # Every one of the 3² joint actions once, the same in every batch element, and the
    # probabilities sum to one.
    rows = {tuple(a.flatten().tolist()) for a in support[:, 0]}
    assert len(rows) == 9
    assert torch.equal(support, support[:, :1].expand_as(support))
    torch.testing.assert_close(joint.log_prob(support).exp().sum(0),
                               torch.ones(5, dtype=F64))


def test_exact_refuses_a_product_set_above_max_actions_in_one_line():
    dist = Independent(GumbelSoftmax(torch.zeros(2, 10, 4)), 1)  # 4^10 = 1,048,576 actions
    with pytest.raises(ValueError, match=r"1048576 actions \(4\^10.*max_actions=4096") as info:
        get_estimator("exact")(dist, lambda y: y.sum((-1, -2)))
    assert "\n" not in str(info.value)
    small = Independent(GumbelSoftmax(torch.zeros(2, 3, 4)), 1)  # 64 actions
    with pytest.raises(ValueError, match="max_actions=10"):
        get_estimator("exact", max_actions=10)(small, lambda y: y.sum((-1, -2)))
    assert get_estimator("exact", max_actions=64)(small, lambda y: y.sum((-1, -2))).shape \
        == (2,)


@pytest.mark.parametrize("name", ["straight_through", "gumbel_rao", "reinmax"])
def test_straight_through_family_needs_a_gumbel_softmax(name):
    with pytest.raises(ValueError, match="needs a GumbelSoftmax"):
        get_estimator(name)(OneHotCategorical(logits=torch.zeros(3)), lambda y: y.sum(-1))


@pytest.mark.parametrize(
    "name, options, match",
    [
        ("gumbel_rao", {"mc_samples": 0}, "mc_samples must be a positive integer"),
        ("gumbel_rao", {"num_samples": 0}, "num_samples must be a positive integer"),
        ("reinmax", {"mc_samples": 4}, "bad options"),
        ("straight_through", {"num_samples": 1.5}, "positive integer"),
        ("exact", {"max_actions": 0}, "max_actions must be a positive integer"),
    ],
)
def test_bad_discrete_estimator_options(name, options, match):
    with pytest.raises(ValueError, match=match):
        get_estimator(name, **options)


def test_unknown_name_lists_the_discrete_estimators():
    with pytest.raises(ValueError, match="unknown estimator") as info:
        get_estimator("rebar")
    for valid in ("straight_through", "gumbel_rao", "reinmax", "exact"):
        assert valid in str(info.value)


# ---------------------------------------------------------------------------------------
# The MultiDiscrete bandit's closed form (envs/testbeds.py)
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("label", ["score", "exact", "straight_through", "reinmax"])
def test_unbiased_estimators_recover_the_multidiscrete_bandits_gradient(label):
    # The bandit pays Σ_j 1[a_j = k_j] = Σ_j ⟨y_j, e_{k_j}⟩, linear in each factor's one-hot:
    # score and exact are unbiased; straight-through and ReinMax too, at τ = 1 (facts §7,
    # §10). The reference is the testbed's closed form, π_j(k_j)(e_{k_j} − π_j) per factor.
    from pathwise.envs.testbeds import factorized_policy_gradient

    targets = (2, 0, 1)
    logits0 = torch.tensor([[0.3, -0.4, 0.9], [0.6, 0.4, -0.2], [-0.3, 0.6, 0.1]], dtype=F64)
    one_hot = torch.eye(3, dtype=F64)[list(targets)]  # (3 factors, 3 values)

    def cost(y):  # minimise −reward
        return -(y * one_hot).sum((-2, -1))

    _, g = logit_grads(label, logits0, cost, 1.0, 20_000, seed=41)
    expected = -factorized_policy_gradient(logits0, targets)
    if label in ("exact", "straight_through"):  # noiseless here: ∇f(D) is the same for any D
        torch.testing.assert_close(g, expected.expand_as(g), rtol=1e-12, atol=1e-12)
    else:
        mean, se = mean_se(g)
        assert_close_se(mean, se, expected, what=label)
        assert torch.all(Z * se < expected.abs()), "too noisy to tell a wrong gradient"
