"""Tests for policies.distributions: TanhNormal, GumbelSoftmax, bound_log_std, log1m_tanh_sq.

Expected numbers come from docs/estimator-facts.md (§2, §3, §9) or from closed forms derived in
the comments; statistical checks use tolerances in standard errors (see _pstats).
"""

import math

import pytest
import torch
import torch.nn.functional as F
from _pstats import Z, assert_close_se, log1m_tanh_sq_reference, mean_se, normal_pdf
from torch.distributions import (
    AffineTransform,
    Categorical,
    Independent,
    Normal,
    OneHotCategorical,
    TanhTransform,
    TransformedDistribution,
)

from pathwise.policies.distributions import GumbelSoftmax, TanhNormal, bound_log_std, log1m_tanh_sq

F64 = torch.float64


# ---------------------------------------------------------------------------------------
# log1m_tanh_sq and the §2 saturation facts
# ---------------------------------------------------------------------------------------
def test_log1m_tanh_sq_matches_naive_form_where_naive_is_accurate():
    # For |u| <= 5 in float64, 1 − tanh²u >= 1.8e-4, so the naive form loses < 1e-12 relative.
    u = torch.linspace(-5, 5, 2001, dtype=F64)
    naive = torch.log(1 - torch.tanh(u) ** 2)
    torch.testing.assert_close(log1m_tanh_sq(u), naive, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dt", [torch.float32, torch.float64])
def test_log1m_tanh_sq_is_finite_and_exact_everywhere(dt):
    # Far beyond saturation (tanh(u) == ±1) the stable identity is still exact: compare with
    # the independent |u|-form, and with its asymptote log 4 − 2|u| for large |u|.
    u = torch.cat([torch.linspace(-200, 200, 4001), torch.tensor([0.0, 9.02, -9.02, 50.0])])
    got = log1m_tanh_sq(u.to(dt))
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), log1m_tanh_sq_reference(u.double()),
                               rtol=1e-5 if dt == torch.float32 else 1e-12, atol=1e-5)
    big = torch.tensor([30.0, -30.0, 150.0], dtype=F64)
    torch.testing.assert_close(log1m_tanh_sq(big), math.log(4.0) - 2 * big.abs())


def test_float32_tanh_rounds_to_one_at_saturation_threshold():
    # §2: in float32 tanh(u) rounds to exactly 1.0 for |u| >= 9.01084.
    f32 = torch.float32
    assert torch.tanh(torch.tensor(9.01084, dtype=f32)) == 1.0
    assert torch.tanh(torch.tensor(-9.02, dtype=f32)) == -1.0
    assert torch.tanh(torch.tensor(9.01, dtype=f32)) < 1.0


def test_tanh_normal_stable_log_prob_at_u10_float32():
    # §2: μ = 10, σ = 1, ε = 0 (u = 10), float32, pathwise through u = μ + σε.
    # Closed form: log π = log N(u; μ, σ) − log(1 − tanh² u)
    #   log N = −ε²/2 − log σ − ½ log 2π = −0.9189385
    #   −log(1 − tanh² 10) = 2(10 − log 2 + softplus(−20)) = 18.6137056
    #   ⇒ log π = 17.6947671 (facts: 17.6948).
    # Gradients: ∂/∂u[−log(1 − tanh² u)] = 2 tanh u ≈ 2; ∂u/∂μ = 1, ∂u/∂σ = ε = 0;
    #   log N does not depend on μ at fixed ε, and ∂/∂σ(−log σ) = −1  ⇒ (∂μ, ∂σ) = (2, −1).
    f32 = torch.float32
    loc = torch.tensor(10.0, dtype=f32, requires_grad=True)
    scale = torch.tensor(1.0, dtype=f32, requires_grad=True)
    eps = torch.zeros((), dtype=f32)
    u = loc + scale * eps
    dist = TanhNormal(loc, scale, event_dims=0)
    log_pi = dist.log_prob_pre_tanh(u)
    assert log_pi.dtype == f32
    assert torch.isfinite(log_pi)
    assert abs(log_pi.item() - 17.6948) < 1e-4
    g_mu, g_sigma = torch.autograd.grad(log_pi, [loc, scale])
    assert torch.isfinite(g_mu) and torch.isfinite(g_sigma)
    assert abs(g_mu.item() - 2.0) < 1e-5
    assert abs(g_sigma.item() + 1.0) < 1e-5


def test_naive_tanh_log_prob_is_inf_at_u10_float32():
    # §2: the naive log(1 − tanh(u)²) gives log π = +inf and a NaN gradient at u = 10 (float32),
    # and the `+1e-6` patch caps −log(1 − tanh²) at −log(1e-6) = 13.8155, 4.8 nats short.
    f32 = torch.float32
    loc = torch.tensor(10.0, dtype=f32, requires_grad=True)
    u = loc + 1.0 * torch.zeros((), dtype=f32)
    log_normal = Normal(loc, torch.tensor(1.0, dtype=f32)).log_prob(u)
    naive = log_normal - torch.log(1 - torch.tanh(u) ** 2)
    assert naive.item() == math.inf
    (g,) = torch.autograd.grad(naive, loc)
    assert torch.isnan(g)

    patched = -torch.log(1 - torch.tanh(u) ** 2 + 1e-6)
    assert abs(patched.item() - (-math.log(1e-6))) < 1e-3  # 13.8155
    stable = -log1m_tanh_sq(u)
    assert 4.7 < (stable - patched).item() < 4.9


def test_torch_transformed_distribution_is_nan_at_saturation_but_tanh_normal_is_finite():
    # §2: TransformedDistribution(Normal(10, 1), [TanhTransform()]).log_prob(1.0) is NaN
    # (atanh(1) = inf); TanhNormal scores the pre-tanh draw and stays finite.
    ref = TransformedDistribution(Normal(10.0, 1.0), [TanhTransform()])
    assert torch.isnan(ref.log_prob(torch.tensor([1.0]))).all()

    torch.manual_seed(1)
    loc = torch.full((4096,), 10.0, requires_grad=True)
    scale = torch.ones(4096, requires_grad=True)
    dist = TanhNormal(loc, scale, event_dims=0)
    a, log_pi = dist.rsample_and_log_prob()
    assert (a == 1.0).float().mean() > 0.5  # most actions are saturated in float32
    assert torch.isfinite(log_pi).all()
    grads = torch.autograd.grad(log_pi.sum(), [loc, scale])
    assert all(torch.isfinite(g).all() for g in grads)


# ---------------------------------------------------------------------------------------
# TanhNormal log-density against torch's TransformedDistribution
# ---------------------------------------------------------------------------------------
def _actions_grid(dtype=F64):
    # Actions from deep inside to very close to the bounds (u up to ±18 in float64).
    u = torch.linspace(-18, 18, 721, dtype=dtype)
    return torch.tanh(u)


def test_tanh_normal_log_prob_equals_torch_scalar_event():
    loc = torch.tensor([[-1.5], [0.0], [0.3], [2.0]], dtype=F64)
    scale = torch.tensor([[0.2], [1.0], [0.7], [3.0]], dtype=F64)
    a = _actions_grid().unsqueeze(0).expand(4, -1)
    ours = TanhNormal(loc.expand_as(a), scale.expand_as(a), event_dims=0).log_prob(a)
    ref = TransformedDistribution(Normal(loc, scale), [TanhTransform()]).log_prob(a)
    finite = torch.isfinite(ref)
    assert finite.float().mean() > 0.9
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours[finite], ref[finite], rtol=1e-9, atol=1e-9)


def test_tanh_normal_log_prob_equals_torch_vector_event():
    torch.manual_seed(2)
    loc = torch.randn(6, 3, dtype=F64)
    scale = torch.rand(6, 3, dtype=F64) + 0.2
    dist = TanhNormal(loc, scale)  # event_dims=1 by default
    assert dist.batch_shape == (6,) and dist.event_shape == (3,)
    ref = Independent(TransformedDistribution(Normal(loc, scale), [TanhTransform()]), 1)
    a = torch.tanh(torch.randn(50, 6, 3, dtype=F64) * 2)
    torch.testing.assert_close(dist.log_prob(a), ref.log_prob(a), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    "low, high",
    [
        (-2.0, 5.0),
        (torch.tensor([-2.0, 0.0, 1.0]), torch.tensor([3.0, 0.5, 4.0])),
    ],
    ids=["scalar-bounds", "tensor-bounds"],
)
def test_tanh_normal_log_prob_with_bounds_equals_affine_transformed(low, high):
    torch.manual_seed(3)
    low = torch.as_tensor(low, dtype=F64)
    high = torch.as_tensor(high, dtype=F64)
    loc = torch.randn(5, 3, dtype=F64)
    scale = torch.rand(5, 3, dtype=F64) + 0.3
    dist = TanhNormal(loc, scale, low=low, high=high)
    # §2: a = low + (high − low)(tanh u + 1)/2 = center + half·tanh u.
    affine = AffineTransform(loc=(high + low) / 2, scale=(high - low) / 2)
    ref = Independent(
        TransformedDistribution(Normal(loc, scale), [TanhTransform(), affine]), 1
    )
    u = torch.randn(40, 5, 3, dtype=F64) * 2
    a = low + (high - low) * (torch.tanh(u) + 1) / 2
    torch.testing.assert_close(dist.log_prob(a), ref.log_prob(a), rtol=1e-9, atol=1e-9)
    # §2: the bounds add −Σ log((high − low)/2) to log π, at every pre-tanh value.
    unit = TanhNormal(loc, scale)
    shift = -torch.log((high - low) / 2).expand(3).sum()
    torch.testing.assert_close(
        dist.log_prob_pre_tanh(u) - unit.log_prob_pre_tanh(u), shift.expand(40, 5)
    )


@pytest.mark.parametrize("method", ["rsample_and_log_prob", "sample_and_log_prob"])
def test_joint_log_prob_equals_log_prob_of_returned_action(method, dtype):
    torch.manual_seed(4)
    loc = torch.tensor([0.2, -0.4, 0.0], dtype=dtype)
    scale = torch.tensor([0.7, 0.3, 1.2], dtype=dtype)
    low = torch.tensor([-1.0, -3.0, 0.0], dtype=dtype)
    high = torch.tensor([1.0, 2.0, 0.5], dtype=dtype)
    dist = TanhNormal(loc, scale, low=low, high=high, event_dims=0)
    a, log_pi = getattr(dist, method)((20000,))
    assert a.shape == (20000, 3) and log_pi.shape == (20000, 3)
    # Away from saturation: atanh's error is amplified by 1/(1 − y²); keep |y| small enough.
    y = (a - (high + low) / 2) / ((high - low) / 2)
    limit = 0.9 if dtype == torch.float32 else 0.999999
    keep = y.abs() < limit
    assert keep.float().mean() > 0.7
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(log_pi[keep], dist.log_prob(a)[keep], **tol)


# ---------------------------------------------------------------------------------------
# TanhNormal sampling: bounds, gradients, dtype/device
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "low, high",
    [
        (-1.0, 1.0),
        (0.1, 0.7),
        ([-0.3, 0.2, -5.0], [0.4, 0.9, -4.9]),
    ],
    ids=["default", "scalar", "tensor"],
)
def test_tanh_normal_samples_stay_inside_bounds(low, high, dtype, device):
    torch.manual_seed(5)
    low = torch.as_tensor(low, dtype=dtype, device=device)
    high = torch.as_tensor(high, dtype=dtype, device=device)
    # Wide scale and far-off means: many draws saturate (tanh(u) == ±1 exactly), the case where
    # half_range·tanh(u) + center can round one ulp past a bound.
    loc = (torch.randn(1000, 3, dtype=dtype) * 20).to(device)
    scale = torch.full((1000, 3), 7.4, dtype=dtype, device=device)
    dist = TanhNormal(loc, scale, low=low, high=high, validate_args=True)
    draws = {
        "sample": dist.sample((4,)),
        "rsample": dist.rsample((4,)),
        "rsample_and_log_prob": dist.rsample_and_log_prob((4,))[0],
        "sample_and_log_prob": dist.sample_and_log_prob((4,))[0],
        "mode": dist.mode,
    }
    for name, a in draws.items():
        assert a.dtype == dtype and a.device.type == device.type, name
        assert torch.all(a >= low) and torch.all(a <= high), (
            f"{name}: max overshoot {(a - high).max().item()}, {(low - a).max().item()}"
        )
    # Every draw is in the support, so validated log_prob accepts it (no ValueError).
    lp = dist.log_prob(draws["sample"])
    assert lp.shape == (4, 1000) and lp.dtype == dtype


def test_tanh_normal_samples_strictly_inside_bounds_without_saturation():
    torch.manual_seed(6)
    low = torch.tensor([-2.0, 0.0], dtype=F64)
    high = torch.tensor([3.0, 0.5], dtype=F64)
    dist = TanhNormal(torch.zeros(2, dtype=F64), torch.full((2,), 2.0, dtype=F64), low, high)
    a = dist.sample((100000,))
    assert torch.all(a > low) and torch.all(a < high)


def test_rsample_carries_gradient_and_sample_does_not(dtype, device):
    loc = torch.zeros(16, 2, dtype=dtype, device=device, requires_grad=True)
    scale = torch.ones(16, 2, dtype=dtype, device=device, requires_grad=True)
    dist = TanhNormal(loc, scale, low=-2.0, high=3.0)

    a = dist.rsample()
    assert a.requires_grad
    g_loc, g_scale = torch.autograd.grad(a.sum(), [loc, scale])
    assert (g_loc != 0).all() and (g_scale != 0).any()

    assert not dist.sample().requires_grad

    a, lp = dist.rsample_and_log_prob()
    assert a.requires_grad and lp.requires_grad

    a, lp = dist.sample_and_log_prob()
    assert not a.requires_grad and lp.requires_grad
    g_loc, g_scale = torch.autograd.grad(lp.sum(), [loc, scale])
    assert g_loc.abs().sum() > 0 and g_scale.abs().sum() > 0


def test_tanh_normal_shapes_and_expand(dtype, device):
    loc = torch.zeros(4, 3, dtype=dtype, device=device)
    scale = torch.ones(4, 3, dtype=dtype, device=device)
    vec = TanhNormal(loc, scale)
    assert vec.batch_shape == (4,) and vec.event_shape == (3,)
    assert vec.rsample((5,)).shape == (5, 4, 3)
    assert vec.log_prob(vec.sample((5,))).shape == (5, 4)
    scal = TanhNormal(loc, scale, event_dims=0)
    assert scal.batch_shape == (4, 3) and scal.event_shape == ()
    assert scal.log_prob(scal.sample((5,))).shape == (5, 4, 3)

    one = TanhNormal(torch.zeros(3, dtype=dtype, device=device), torch.ones(3, dtype=dtype,
                     device=device), low=-2.0, high=3.0)
    big = one.expand((7,))
    assert big.batch_shape == (7,) and big.event_shape == (3,)
    a = big.sample()
    torch.testing.assert_close(big.log_prob(a), one.log_prob(a))
    # mode = squash(loc); at loc = 0 that is the interval's center.
    torch.testing.assert_close(one.mode, torch.full((3,), 0.5, dtype=dtype, device=device))


def test_tanh_normal_has_no_closed_form_entropy():
    with pytest.raises(NotImplementedError):
        TanhNormal(torch.zeros(2), torch.ones(2)).entropy()


@pytest.mark.parametrize(
    "mu, sigma, low, high",
    [(0.5, 1.3, -1.0, 1.0), (-1.0, 3.0, -2.0, 3.0)],
    ids=["unit-bounds", "wide-bounds"],
)
def test_tanh_normal_entropy_monte_carlo_matches_numerical_integral(mu, sigma, low, high):
    # H = ∫ −p(a) log p(a) da; substituting a = squash(u) (p(a) da = N(u) du):
    #   H = ∫ N(u; μ, σ) · [−log N(u) + log(1 − tanh² u) + log((high − low)/2)] du,
    # integrated by the trapezoid rule on u ∈ μ ± 12σ (the tails beyond carry < 1e-30).
    u = torch.linspace(mu - 12 * sigma, mu + 12 * sigma, 100001, dtype=F64)
    pdf = normal_pdf(u, mu, sigma)
    log_n = -0.5 * ((u - mu) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi)
    neg_log_p = -log_n + log1m_tanh_sq_reference(u) + math.log((high - low) / 2)
    exact = torch.trapezoid(pdf * neg_log_p, u).item()

    torch.manual_seed(7)
    dist = TanhNormal(torch.tensor(mu, dtype=F64), torch.tensor(sigma, dtype=F64), low, high,
                      event_dims=0)
    _, log_pi = dist.rsample_and_log_prob((100_000,))
    m, se = mean_se(-log_pi)
    assert_close_se(m, se, exact, what="E[-log pi]")


# ---------------------------------------------------------------------------------------
# TanhNormal / bound_log_std argument errors and helpers
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_tanh_normal_rejects_non_positive_scale(bad):
    scale = torch.tensor([1.0, bad])
    with pytest.raises(ValueError, match="scale must be positive"):
        TanhNormal(torch.zeros(2), scale, validate_args=True)


def test_tanh_normal_rejects_bad_bounds_and_event_dims():
    with pytest.raises(ValueError, match="high bound must exceed"):
        TanhNormal(torch.zeros(2), torch.ones(2), low=1.0, high=1.0, validate_args=True)
    with pytest.raises(ValueError, match="high bound must exceed"):
        TanhNormal(torch.zeros(2), torch.ones(2), low=torch.tensor([0.0, 2.0]),
                   high=torch.tensor([1.0, 1.0]), validate_args=True)
    with pytest.raises(ValueError, match="event_dims must be 0 or 1"):
        TanhNormal(torch.zeros(2), torch.ones(2), event_dims=2)
    with pytest.raises(ValueError, match="event_dims=1"):
        TanhNormal(torch.tensor(0.0), torch.tensor(1.0), event_dims=1)


def test_bound_log_std_range_midpoint_and_gradient(dtype):
    raw = torch.tensor([-1e4, -10.0, -1.0, 0.0, 1.0, 10.0, 1e4], dtype=dtype, requires_grad=True)
    out = bound_log_std(raw, -5.0, 2.0)
    assert torch.all(out >= -5.0) and torch.all(out <= 2.0)
    assert torch.all(out[1:] >= out[:-1])  # monotone
    assert abs(out[3].item() - (-1.5)) < 1e-6  # raw = 0 ↦ midpoint (−5 + 2)/2
    torch.testing.assert_close(out[[0, -1]].detach(), torch.tensor([-5.0, 2.0], dtype=dtype))
    # d/draw = ½(max − min)(1 − tanh² raw): positive even at raw = ±10, where a clamp is flat.
    (g,) = torch.autograd.grad(out.sum(), raw)
    expected = 3.5 * (1 - torch.tanh(raw.detach()) ** 2)
    torch.testing.assert_close(g, expected)
    if dtype == F64:
        assert g[1] > 0 and g[5] > 0


# ---------------------------------------------------------------------------------------
# GumbelSoftmax: §3 facts
# ---------------------------------------------------------------------------------------
P = [0.1, 0.3, 0.6]


def _freq_check(one_hot: torch.Tensor, p: torch.Tensor, what: str):
    freq = one_hot.double().mean(0)
    se = (p * (1 - p) / one_hot.shape[0]).sqrt()  # binomial SE of a frequency
    assert_close_se(freq, se, p, what=what)


def test_gumbel_max_sample_is_exactly_categorical():
    # §3: argmax(logits + g) ~ Categorical(softmax(logits)); N = 1e6, within 5 SE.
    torch.manual_seed(8)
    p = torch.tensor(P, dtype=F64)
    # Unnormalized logits (log p + 7) give the same law: softmax is shift-invariant.
    dist = GumbelSoftmax(logits=p.log() + 7.0)
    s = dist.sample((1_000_000,))
    assert not s.requires_grad
    assert torch.all((s == 0) | (s == 1)) and torch.all(s.sum(-1) == 1)
    _freq_check(s, p, "Gumbel-max frequencies")


@pytest.mark.parametrize("tau", [0.1, 1.0, 10.0])
def test_argmax_of_relaxed_sample_has_categorical_law_at_every_temperature(tau):
    # §3: argmax softmax((l + g)/τ) = argmax(l + g) for every τ > 0.
    torch.manual_seed(9)
    p = torch.tensor(P, dtype=F64)
    dist = GumbelSoftmax(probs=p, temperature=tau)
    y = dist.rsample((400_000,))
    _freq_check(F.one_hot(y.argmax(-1), 3), p, f"argmax of relaxed sample, tau={tau}")


def test_relaxation_bias_at_temperature_one():
    # §3: τ = 1 gives E[y] ≈ [0.150, 0.327, 0.523] ≠ p (quoted to 3 decimals: ±0.0005 slack).
    torch.manual_seed(10)
    p = torch.tensor(P, dtype=F64)
    y = GumbelSoftmax(probs=p, temperature=1.0).rsample((1_000_000,))
    m, se = mean_se(y)
    assert_close_se(m, se, [0.150, 0.327, 0.523], slack=5e-4, what="E[y] at tau=1")
    assert torch.all((m - p).abs() > Z * se)  # the bias is real, not noise


def test_relaxation_l1_gap_grows_with_temperature():
    # §3: L1 gap ‖E[y] − p‖₁ ≈ 0.001, 0.06, 0.16, 0.29, 0.48 at τ = 0.01, 0.5, 1, 2, 10.
    # The quoted values have 1–2 significant digits: slack of half their last digit. (At τ = 1
    # the facts' own E[y] ≈ [0.150, 0.327, 0.523] implies a gap of 0.154, just under the band
    # of "0.16"; the 5-SE term covers it, and test_relaxation_bias_at_temperature_one checks
    # the τ = 1 mean tightly.) At τ = 0.01 the gap (~0.001) is below the Monte Carlo noise.
    p = torch.tensor(P, dtype=F64)
    taus = [0.01, 0.5, 1.0, 2.0, 10.0]
    quoted = [0.001, 0.06, 0.16, 0.29, 0.48]
    slack = [0.0005, 0.005, 0.005, 0.005, 0.005]
    gaps, ses = [], []
    for i, tau in enumerate(taus):
        torch.manual_seed(11 + i)
        y = GumbelSoftmax(probs=p, temperature=tau).rsample((200_000,))
        m, se = mean_se(y)
        gaps.append((m - p).abs().sum().item())
        # | ‖a‖₁ − ‖b‖₁ | <= ‖a − b‖₁, so the L1 estimate's error is at most Σ_i |m_i − E y_i|:
        # a conservative SE is Σ_i SE_i.
        ses.append(se.sum().item())
    for gap, se, q, s, tau in zip(gaps, ses, quoted, slack, taus, strict=True):
        assert abs(gap - q) < Z * se + s, f"tau={tau}: gap {gap} vs quoted {q}"
    for k in range(len(taus) - 1):
        assert gaps[k + 1] - gaps[k] > Z * (ses[k] + ses[k + 1]), (taus[k], taus[k + 1], gaps)


def test_temperature_limits_one_hot_and_uniform():
    # §3: τ → 0 gives one-hot samples, τ → ∞ gives the uniform vector.
    p = torch.tensor(P, dtype=F64)
    torch.manual_seed(12)
    cold = GumbelSoftmax(probs=p, temperature=1e-3).rsample((10000,))
    # (l_i + g_i) − (l_j + g_j) has a bounded density, so a gap < 0.02 (where the max
    # component could fall below 1 − 2e-8) has probability of a few percent at most.
    assert (cold.max(-1).values > 1 - 1e-6).double().mean() > 0.95
    hot = GumbelSoftmax(probs=p, temperature=1e5).rsample((10000,))
    # |l + g| < 30 for all draws here, so every component is within ~30/1e5 of 1/3.
    assert (hot - 1 / 3).abs().max() < 1e-3


def test_straight_through_forward_is_one_hot_with_gradient(dtype, device):
    torch.manual_seed(13)
    logits = torch.randn(500, 4, dtype=dtype, device=device, requires_grad=True)
    dist = GumbelSoftmax(logits, temperature=0.7, hard=True)
    y = dist.rsample((3,))
    one_hot = F.one_hot(y.argmax(-1), 4).to(dtype)
    assert torch.equal(y, one_hot)  # exactly one-hot, bit for bit
    w = torch.randn(4, dtype=dtype, device=device)
    (g,) = torch.autograd.grad(((y * w).sum(-1) ** 2).sum(), logits)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    # The hard argmax is the argmax of the same relaxed draw.
    torch.manual_seed(14)
    y_hard = GumbelSoftmax(logits, temperature=0.7, hard=True).rsample()
    torch.manual_seed(14)
    y_soft = GumbelSoftmax(logits, temperature=0.7, hard=False).rsample()
    assert torch.equal(y_hard.argmax(-1), y_soft.argmax(-1))
    assert not torch.equal(y_soft, F.one_hot(y_soft.argmax(-1), 4).to(dtype))


def test_straight_through_and_soft_gradients_coincide_for_linear_cost():
    # §3: for cost c·y the backward pass of y_hard − sg(y) + y is the soft one: same gradient.
    logits = torch.randn(300, 3, dtype=F64, requires_grad=True)
    c = torch.tensor([0.5, -2.0, 1.5], dtype=F64)
    grads = {}
    for hard in (False, True):
        torch.manual_seed(15)  # same Gumbel noise for both
        y = GumbelSoftmax(logits, temperature=0.5, hard=hard).rsample((4,))
        (grads[hard],) = torch.autograd.grad((y @ c).sum(), logits)
    assert grads[True].abs().sum() > 0
    torch.testing.assert_close(grads[True], grads[False], rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------
# GumbelSoftmax: Gumbel noise conditioned on the argmax (Gumbel-Rao's sampler, facts §9)
# ---------------------------------------------------------------------------------------
def test_perturbed_logits_given_argmax_match_a_rejection_sampler():
    # Rejection sampler: z = logits + g with the textbook g = −log(−log U), kept where
    # argmax z = d. The top-down sampler must give the same law: compared through each
    # coordinate's CDF at the rejection sample's deciles (two-sample binomial SEs), and
    # through E[softmax(z/τ)], the quantity Gumbel-Rao averages.
    torch.manual_seed(18)
    dist = GumbelSoftmax(probs=torch.tensor(P, dtype=F64))
    u = torch.rand(400_000, 3, dtype=F64).clamp(1e-300, 1 - 1e-16)
    z = dist.logits - (-u.log()).log()
    levels = torch.linspace(0.1, 0.9, 9, dtype=F64)
    for d in range(3):
        kept = z[z.argmax(-1) == d]
        one_hot = F.one_hot(torch.tensor(d), 3).to(F64)
        drawn = dist.perturbed_logits_given(one_hot, (kept.shape[0],))
        assert drawn.shape == kept.shape and not drawn.requires_grad
        assert torch.equal(drawn.argmax(-1), torch.full((kept.shape[0],), d))
        for i in range(3):
            cuts = torch.quantile(kept[:, i], levels)
            (m_rej, se_rej), (m_top, se_top) = (mean_se((x[:, i, None] <= cuts).double())
                                                for x in (kept, drawn))
            assert_close_se(m_top - m_rej, (se_rej**2 + se_top**2).sqrt(), 0.0,
                            what=f"CDF of z_{i} given argmax {d}")
        (m_rej, se_rej), (m_top, se_top) = (mean_se(torch.softmax(x / 0.5, -1))
                                            for x in (kept, drawn))
        assert_close_se(m_top - m_rej, (se_rej**2 + se_top**2).sqrt(), 0.0,
                        what=f"E[softmax(z/0.5) | argmax {d}]")
        # The maximum is Gumbel(logsumexp logits) = Gumbel(0), whichever coordinate holds it.
        x = torch.linspace(-1.5, 3.0, 10, dtype=F64)
        m, se = mean_se((drawn[:, d, None] <= x).double())
        assert_close_se(m, se, torch.exp(-torch.exp(-x)), what=f"max given argmax {d}")


def test_perturbed_logits_given_broadcasts_over_samples_and_batch():
    torch.manual_seed(19)
    dist = GumbelSoftmax(torch.randn(5, 4, dtype=F64, requires_grad=True), temperature=0.3)
    one_hot = dist.sample((3,))  # (3, 5, 4)
    z = dist.perturbed_logits_given(one_hot, (7,))
    assert z.shape == (7, 3, 5, 4) and not z.requires_grad
    assert torch.equal(F.one_hot(z.argmax(-1), 4).to(F64), one_hot.expand(7, 3, 5, 4))


# ---------------------------------------------------------------------------------------
# GumbelSoftmax: categorical law API
# ---------------------------------------------------------------------------------------
def test_gumbel_softmax_entropy_equals_categorical(dtype):
    torch.manual_seed(16)
    logits = torch.randn(7, 5, dtype=dtype) * 3
    torch.testing.assert_close(GumbelSoftmax(logits).entropy(), Categorical(logits=logits)
                               .entropy())
    probs = torch.tensor([[0.2, 0.0, 0.8], [1 / 3, 1 / 3, 1 / 3]], dtype=dtype)
    torch.testing.assert_close(GumbelSoftmax(probs=probs).entropy(),
                               Categorical(probs=probs).entropy())


def test_gumbel_softmax_log_prob_probs_support_mode(dtype, device):
    torch.manual_seed(17)
    logits = (torch.randn(6, 4, dtype=dtype) * 2).to(device)
    dist = GumbelSoftmax(logits, temperature=0.5)
    ref = OneHotCategorical(logits=logits)
    assert dist.batch_shape == (6,) and dist.event_shape == (4,)
    torch.testing.assert_close(dist.probs, ref.probs)
    support = dist.enumerate_support()
    assert support.shape == (4, 6, 4)
    torch.testing.assert_close(support, ref.enumerate_support())
    torch.testing.assert_close(dist.log_prob(support), ref.log_prob(support))
    torch.testing.assert_close(dist.log_prob(support).exp().sum(0),
                               torch.ones(6, dtype=dtype, device=device))
    torch.testing.assert_close(dist.mode, F.one_hot(logits.argmax(-1), 4).to(dtype))
    y = dist.rsample((2,))
    assert y.shape == (2, 6, 4) and y.dtype == dtype and y.device.type == device.type
    torch.testing.assert_close(y.sum(-1), torch.ones(2, 6, dtype=dtype, device=device))
    big = GumbelSoftmax(logits[0], temperature=0.5).expand((9,))
    assert big.batch_shape == (9,) and big.sample().shape == (9, 4)


@pytest.mark.parametrize("tau", [0.0, -1.0])
def test_gumbel_softmax_rejects_non_positive_temperature(tau):
    with pytest.raises(ValueError, match="temperature must be > 0"):
        GumbelSoftmax(torch.zeros(3), temperature=tau)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        GumbelSoftmax(torch.zeros(3), temperature=torch.tensor(tau), validate_args=True)


def test_gumbel_softmax_rejects_bad_parameters():
    with pytest.raises(ValueError, match="exactly one of logits or probs"):
        GumbelSoftmax(torch.zeros(3), probs=torch.ones(3) / 3)
    with pytest.raises(ValueError, match="exactly one of logits or probs"):
        GumbelSoftmax()
    with pytest.raises(ValueError, match="last dimension"):
        GumbelSoftmax(torch.tensor(0.0))
