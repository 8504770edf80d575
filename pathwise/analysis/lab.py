"""The estimator lab: textbook results reproduced by this library's estimators and checked
against closed forms (``pathwise lab``).

1. Gaussian measure x ~ N(μ, σ²), μ = σ = 1, costs (x − k)², exp(−k x²), cos(k x): per-sample
   variance of the estimates of ∂μ E[f] and ∂σ E[f] as k varies, for the pathwise estimator,
   the score function without a baseline and with the leave-one-out baseline. This is
   Mohamed, Rosca, Figurnov, Mnih (2020), "Monte Carlo Gradient Estimation in Machine
   Learning", JMLR, §3 (figure 2), with every curve also in closed form (below).
2. Dimension: f(x) = Σ_d (x_d − k)² over D independent coordinates; the variance of the
   estimate of ∂μ_1 against D. Pathwise stays flat, the score function grows like D² (like
   D with the baseline): the other coordinates' costs multiply coordinate 1's score.
3. Categorical: a 3-way softmax policy and a cost that is *not* linear in the one-hot action;
   bias and variance of the Gumbel-softmax (Jang et al. 2017; Maddison et al. 2017) and
   straight-through Gumbel gradients against the temperature τ, with the score function
   (REINFORCE) and the exact gradient alongside.
4. Discrete estimators: a multi-hot action (3 independent 4-way factors) scored jointly by a
   fixed random tanh critic; floor-corrected bias and variance against τ of every discrete
   estimator (Gumbel-softmax, straight-through Gumbel, straight-through, Gumbel-Rao,
   ReinMax), with the score function and the exact gradient (64 joint actions) alongside.

Closed forms. Every expectation needed is E[p(ε) exp(a ε² + b ε)] for a polynomial p, ε ~
N(0, 1), a ≤ 0 and a complex b, which completing the square gives as

    E[p(ε) e^{aε² + bε}] = sqrt(v) · exp(b² v / 2) · E_{z ~ N(b v, v)}[p(z)],   v = 1/(1 − 2a),

with the polynomial moments of the (complex-mean) Gaussian in closed form. x = μ + σε turns
(x − k)², exp(−k x²) = e^{−kμ²} e^{−kσ²ε² − 2kμσε} and cos(kx) = Re e^{ik(μ + σε)} and their
derivatives into sums of such terms. With the scores s_μ = ε/σ and s_σ = (ε² − 1)/σ
(∂ log N(x; μ, σ²)), per single draw:

    pathwise:  Var[f'(x)] (μ) and Var[f'(x) ε] (σ)          (Mohamed et al. 2020, eq. 35)
    score:     E[f² s²] − g²                                  (eq. 13)
    score, leave-one-out baseline over M draws (Kool et al. 2019), times M:
               Var[(f − E f) s] + (Var[f] E[s²] + g²)/(M − 1)

(the last one derived here: the M terms (f_i − f̄_{−i}) s_i have variance Var[(f − Ef)s] +
Var[f]E[s²]/(M−1) each and pairwise covariance g²/(M−1)²). docs/estimator-facts.md §1 quotes the
quadratic case at μ = 1, σ = 2: pathwise (16, 36), score (74.25, 356.5); the tests check these.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.distributions import Independent, Normal

from pathwise.policies.distributions import GumbelSoftmax
from pathwise.policies.estimators import Exact, GumbelRao, Pathwise, ReinMax, Score, StraightThrough

SAMPLES = 20_000  # Monte Carlo draws per point
LOO_SAMPLES = 4  # draws per estimate of the leave-one-out score estimator (as estimator=score)
Z = 5.0  # a check passes when |empirical − closed form| < Z standard errors
MU, SIGMA = 1.0, 1.0

KS = {"quadratic": np.linspace(-3.0, 3.0, 13),
      "exp": np.linspace(0.1, 3.0, 11),
      "cos": np.linspace(0.25, 3.0, 12)}
COST_LABELS = {"quadratic": "(x − k)²", "exp": "exp(−k x²)", "cos": "cos(k x)"}
DIMENSIONS = (1, 2, 4, 8, 16, 32, 64)
DIMENSION_K = 3.0
TEMPERATURES = np.geomspace(0.05, 10.0, 12)
ESTIMATOR_LABELS = {"pathwise": "pathwise", "score": "score function",
                    "score_loo": f"score + leave-one-out baseline (M={LOO_SAMPLES})"}


# == closed forms: Gaussian expectations of p(ε)·exp(aε² + bε) ==============================
@dataclass(frozen=True)
class Term:
    """coef · p(ε) · exp(a ε² + b ε), p given by its coefficients in ascending powers."""

    coef: complex
    poly: tuple
    a: float = 0.0
    b: complex = 0.0

    def __mul__(self, other: Term) -> Term:
        return Term(self.coef * other.coef,
                    tuple(np.convolve(np.asarray(self.poly, complex),
                                      np.asarray(other.poly, complex))),
                    self.a + other.a, self.b + other.b)


Expr = list  # a sum of Terms


def times(x: Expr, y: Expr) -> Expr:
    return [s * t for s in x for t in y]


def poly(*coefs) -> Expr:
    return [Term(1.0, tuple(complex(c) for c in coefs))]


def _gaussian_moment(n: int, mean: complex, var: float) -> complex:
    """E[z^n] for z ~ N(mean, var): Σ_{j even} C(n, j) mean^{n−j} var^{j/2} (j − 1)!!."""
    total = 0.0 + 0.0j
    for j in range(0, n + 1, 2):
        double_factorial = math.prod(range(j - 1, 0, -2)) if j > 0 else 1
        total += math.comb(n, j) * mean ** (n - j) * var ** (j // 2) * double_factorial
    return total


def expect(expr: Expr) -> float:
    """E over ε ~ N(0, 1) of a sum of terms (module doc); real by construction here."""
    total = 0.0 + 0.0j
    for t in expr:
        v = 1.0 / (1.0 - 2.0 * t.a)
        scale = math.sqrt(v) * np.exp(t.b**2 * v / 2.0)
        total += t.coef * scale * sum(c * _gaussian_moment(n, t.b * v, v)
                                      for n, c in enumerate(t.poly))
    return float(total.real)


def cost_terms(name: str, k: float, mu: float = MU, sigma: float = SIGMA) -> tuple[Expr, Expr]:
    """(f, f') at x = μ + σε as sums of terms."""
    if name == "quadratic":  # (x − k)², 2(x − k)
        return poly((mu - k) ** 2, 2 * (mu - k) * sigma, sigma**2), poly(2 * (mu - k), 2 * sigma)
    if name == "exp":  # exp(−k x²) = e^{−kμ²} e^{−kσ²ε² − 2kμσε}; f' = −2k x f
        f = [Term(math.exp(-k * mu**2), (1.0,), -k * sigma**2, -2 * k * mu * sigma)]
        return f, times(poly(-2 * k * mu, -2 * k * sigma), f)
    if name == "cos":  # cos kx = (e^{ikx} + e^{−ikx})/2; −k sin kx = −k (e^{ikx} − e^{−ikx})/2i
        plus, minus = np.exp(1j * k * mu), np.exp(-1j * k * mu)
        f = [Term(plus / 2, (1.0,), 0.0, 1j * k * sigma), Term(minus / 2, (1.0,), 0.0,
                                                              -1j * k * sigma)]
        df = [Term(-k * plus / 2j, (1.0,), 0.0, 1j * k * sigma),
              Term(k * minus / 2j, (1.0,), 0.0, -1j * k * sigma)]
        return f, df
    raise ValueError(f"unknown cost {name!r}")


def closed_form_variances(name: str, k: float, mu: float = MU, sigma: float = SIGMA,
                          m: int = LOO_SAMPLES) -> dict[str, tuple[float, float]]:
    """Per-sample variance of each estimator's (∂μ, ∂σ) estimate (module doc)."""
    f, df = cost_terms(name, k, mu, sigma)
    eps = poly(0.0, 1.0)
    scores = {"mu": (poly(0.0, 1.0 / sigma), 1.0 / sigma**2),  # s, E[s²]
              "sigma": (poly(-1.0 / sigma, 0.0, 1.0 / sigma), 2.0 / sigma**2)}
    mean_f = expect(f)
    var_f = expect(times(f, f)) - mean_f**2
    out: dict[str, list[float]] = {"pathwise": [], "score": [], "score_loo": []}
    for param, (s, es2) in scores.items():
        g = expect(times(f, s))
        path = df if param == "mu" else times(df, eps)
        out["pathwise"].append(expect(times(path, path)) - expect(path) ** 2)
        out["score"].append(expect(times(times(f, f), times(s, s))) - g**2)
        centred = f + [Term(-mean_f, (1.0,))]
        var_y = expect(times(times(centred, centred), times(s, s))) - g**2
        out["score_loo"].append(var_y + (var_f * es2 + g**2) / (m - 1))
    return {name: (v[0], v[1]) for name, v in out.items()}


def closed_form_fourth_moments(name: str, k: float, mu: float = MU, sigma: float = SIGMA
                               ) -> dict[str, tuple[float, float]]:
    """E[(ĝ − E ĝ)⁴] of one draw's (∂μ, ∂σ) estimate, pathwise and score function: with the
    variance it gives the exact standard error of a sample variance, sqrt((m4 − var²)/n).
    (The sample fourth moment of a heavy-tailed estimator, the score function's on a
    quadratic cost say, underestimates it, and with it the SE.)"""
    f, df = cost_terms(name, k, mu, sigma)
    eps = poly(0.0, 1.0)
    scores = {"mu": poly(0.0, 1.0 / sigma), "sigma": poly(-1.0 / sigma, 0.0, 1.0 / sigma)}
    out: dict[str, list[float]] = {"pathwise": [], "score": []}
    for param, s in scores.items():
        for est, y in (("pathwise", df if param == "mu" else times(df, eps)),
                       ("score", times(f, s))):
            centred = y + [Term(-expect(y), (1.0,))]
            square = times(centred, centred)
            out[est].append(expect(times(square, square)))
    return {name: (v[0], v[1]) for name, v in out.items()}


def closed_form_gradient(name: str, k: float, mu: float = MU, sigma: float = SIGMA):
    """(∂μ E[f], ∂σ E[f]) = (E[f'], E[f' ε])."""
    _, df = cost_terms(name, k, mu, sigma)
    return expect(df), expect(times(df, poly(0.0, 1.0)))


def dimension_variances(d: int, k: float = DIMENSION_K, mu: float = MU, sigma: float = SIGMA,
                        m: int = LOO_SAMPLES) -> dict[str, float]:
    """Per-sample variance of the ∂μ_1 estimate for f(x) = Σ_d (x_d − k)², x_d i.i.d.

    With F = f_1 + R, R = Σ_{d≥2} f_d independent of x_1 (mean (D−1)E f, variance
    (D−1)Var f): E[F² s²] = E[f_1² s²] + 2E[R]E[f_1 s²] + E[R²]E[s²]; with the baseline,
    Var[(F − E F)s] = Var[(f_1 − E f)s] + (D−1)Var[f]E[s²] and Var[F] = D Var[f].
    """
    f, df = cost_terms("quadratic", k, mu, sigma)
    s, es2 = poly(0.0, 1.0 / sigma), 1.0 / sigma**2
    mean_f = expect(f)
    var_f = expect(times(f, f)) - mean_f**2
    g = expect(times(f, s))
    r_mean, r_sq = (d - 1) * mean_f, (d - 1) * var_f + ((d - 1) * mean_f) ** 2
    score = (expect(times(times(f, f), times(s, s))) + 2 * r_mean * expect(times(f, times(s, s)))
             + r_sq * es2 - g**2)
    centred = f + [Term(-mean_f, (1.0,))]
    var_y = expect(times(times(centred, centred), times(s, s))) - g**2 + (d - 1) * var_f * es2
    loo = var_y + (d * var_f * es2 + g**2) / (m - 1)
    return {"pathwise": expect(times(df, df)) - expect(df) ** 2, "score": score, "score_loo": loo}


# == Monte Carlo with the library's estimators ===============================================
def _estimators() -> dict[str, object]:
    return {"pathwise": Pathwise(), "score": Score(),
            "score_loo": Score(num_samples=LOO_SAMPLES, baseline="mean")}


def per_sample_gradients(estimator, cost, n: int, d: int = 1, mu: float = MU,
                         sigma: float = SIGMA) -> tuple[torch.Tensor, torch.Tensor]:
    """n independent estimates of (∂μ, ∂σ) E[cost(x)], x ~ N(μ, σ²)^d, by ``estimator``:
    element i of a batch of n identical Gaussians gets its own leaf μ_i, σ_i, so the gradient
    of the summed surrogate holds every element's estimate. Returns two (n, d) tensors."""
    loc = torch.full((n, d), mu, dtype=torch.float64, requires_grad=True)
    scale = torch.full((n, d), sigma, dtype=torch.float64, requires_grad=True)
    dist = Independent(Normal(loc, scale, validate_args=False), 1)
    surrogate = estimator(dist, cost)  # (n,)
    g_loc, g_scale = torch.autograd.grad(surrogate.sum(), (loc, scale))
    return g_loc, g_scale


def _cost_fn(name: str, k: float):
    if name == "quadratic":
        return lambda x: ((x - k) ** 2).sum(-1)
    if name == "exp":
        return lambda x: torch.exp(-k * x**2).sum(-1)
    return lambda x: torch.cos(k * x).sum(-1)


def variance_and_se(x: torch.Tensor, per: int = 1) -> tuple[float, float]:
    """Sample variance of i.i.d. draws and its standard error sqrt((m4 − m2²)/n), both
    multiplied by ``per`` (an estimate from ``per`` draws → per-sample variance)."""
    x = x.double()
    n = x.shape[0]
    c = x - x.mean()
    m2, m4 = float((c**2).mean()), float((c**4).mean())
    return per * m2 * n / (n - 1), per * math.sqrt(max(m4 - m2**2, 0.0) / n)


def gaussian_experiment(samples: int) -> list[dict]:
    rows = []
    for name, ks in KS.items():
        for k in ks:
            k = float(k)
            exact = closed_form_variances(name, k)
            fourth = closed_form_fourth_moments(name, k)
            for est_name, estimator in _estimators().items():
                per = getattr(estimator, "num_samples", 1)
                n = max(samples // per, 2)
                g_mu, g_sigma = per_sample_gradients(estimator, _cost_fn(name, k), n)
                for i, (param, g) in enumerate((("mu", g_mu), ("sigma", g_sigma))):
                    var, se = variance_and_se(g[:, 0], per)
                    if est_name in fourth:  # the exact SE where the fourth moment is known
                        se = math.sqrt(max(fourth[est_name][i] - exact[est_name][i] ** 2, 0.0)
                                       / n)
                    rows.append(_check_row(cost=name, k=k, parameter=param, estimator=est_name,
                                           empirical=var, se=se, closed_form=exact[est_name][i]))
    return rows


def dimension_experiment(samples: int) -> list[dict]:
    rows = []
    for d in DIMENSIONS:
        exact = dimension_variances(d)
        for est_name, estimator in _estimators().items():
            per = getattr(estimator, "num_samples", 1)
            n = max(samples // per, 2)
            g_mu, _ = per_sample_gradients(estimator, _cost_fn("quadratic", DIMENSION_K), n, d)
            var, se = variance_and_se(g_mu[:, 0], per)
            rows.append(_check_row(dimension=d, parameter="mu_1", estimator=est_name,
                                   empirical=var, se=se, closed_form=exact[est_name]))
    return rows


def _check_row(empirical: float, se: float, closed_form: float, **keys) -> dict:
    z = abs(empirical - closed_form) / se if se > 0 else (0.0 if empirical == closed_form
                                                         else math.inf)
    return {**keys, "empirical": empirical, "se": se, "closed_form": closed_form, "z": z,
            "ok": z < Z}


# -- categorical ------------------------------------------------------------------------------
CATEGORICAL_PROBS = (0.1, 0.3, 0.6)  # docs/estimator-facts.md §3
CATEGORICAL_TARGET = (0.9, 0.4, 0.1)


def categorical_cost(y: torch.Tensor) -> torch.Tensor:
    """‖y − t‖², t = (0.9, 0.4, 0.1): not linear in y, so relaxed (interior) points are valued
    differently from any mixture of the vertices, and straight-through Gumbel ≠ Gumbel-softmax."""
    target = torch.tensor(CATEGORICAL_TARGET, dtype=y.dtype)
    return ((y - target) ** 2).sum(-1)


def bias_variance(g: torch.Tensor, exact: torch.Tensor, per: int = 1) -> dict:
    """Bias of the n estimates ``g`` (n, D) against ``exact`` and their per-sample variance.

    ``bias`` ‖mean − exact‖ carries the noise floor ``bias_se`` = sqrt(Σ_j Var_j / n) in
    quadrature; ``bias_corrected`` takes it out (docs/estimator-facts.md §6). ``per``: draws
    per estimate (an estimate from ``per`` draws → per-sample variance).
    """
    n = g.shape[0]
    mean = g.mean(0)
    spread = (g - mean).pow(2).sum(1) * (n / (n - 1))  # E[spread] = Σ_j Var_j
    total = float(spread.mean())
    sq_bias = float((mean - exact).pow(2).sum())
    return {"bias": math.sqrt(sq_bias), "bias_se": math.sqrt(total / n),
            "bias_corrected": math.sqrt(max(0.0, sq_bias - total / n)),
            "variance": per * total,
            "variance_se": per * float(spread.std()) / math.sqrt(n)}


def categorical_experiment(samples: int) -> dict:
    """Bias ‖E ĝ − ∇‖ (with its SE) and per-sample total variance Σ_j Var ĝ_j of ∇_logits
    E_{a~π}[cost(one_hot(a))], π = softmax(logits), per estimator and temperature."""
    logits0 = torch.tensor(CATEGORICAL_PROBS, dtype=torch.float64).log()

    def estimates(estimator, tau: float, hard: bool, n: int) -> torch.Tensor:
        logits = logits0.expand(n, -1).clone().requires_grad_(True)
        dist = GumbelSoftmax(logits, tau, hard=hard, validate_args=False)
        (g,) = torch.autograd.grad(estimator(dist, categorical_cost).sum(), logits)
        return g  # (n, 3): one estimate per element

    exact = estimates(Exact(), 1.0, False, 1)[0]

    def summary(g: torch.Tensor, per: int = 1) -> dict:
        return bias_variance(g, exact, per)

    rows = []
    for tau in TEMPERATURES:
        for name, hard in (("gumbel_softmax", False), ("straight_through_gumbel", True)):
            rows.append({"estimator": name, "tau": float(tau),
                         **summary(estimates(Pathwise(), float(tau), hard, samples))})
    flat = {"score": summary(estimates(Score(), 1.0, False, samples)),
            "score_loo": summary(estimates(Score(num_samples=LOO_SAMPLES, baseline="mean"),
                                           1.0, False, max(samples // LOO_SAMPLES, 2)),
                                 LOO_SAMPLES),
            "exact": summary(estimates(Exact(), 1.0, False, 2))}
    # The score function's closed form: Var[f(a)(e_a − π)] summed over the logits.
    probs = logits0.exp()
    eye = torch.eye(3, dtype=torch.float64)
    values = categorical_cost(eye)
    grads = values[:, None] * (eye - probs)  # f(a) ∇ log π(a), one row per action a
    score_var = float((probs[:, None] * grads**2).sum() - ((probs[:, None] * grads).sum(0)
                                                           ** 2).sum())
    check = _check_row(estimator="score", empirical=flat["score"]["variance"],
                       se=flat["score"]["variance_se"], closed_form=score_var)
    return {"probs": list(CATEGORICAL_PROBS), "target": list(CATEGORICAL_TARGET),
            "exact_gradient": exact.tolist(), "exact_norm": float(exact.norm()),
            "relaxed": rows, "flat": flat, "score_check": check}


# -- every discrete estimator on a multi-hot action ------------------------------------------
MULTI_FACTORS, MULTI_CATEGORIES = 3, 4  # 4³ = 64 joint actions: exact enumerates them
MULTI_HIDDEN = 8
DISCRETE_TEMPERATURES = np.geomspace(0.1, 10.0, 9)
GUMBEL_RAO_MC = 10
DISCRETE_LABELS = {"gumbel_softmax": "Gumbel-softmax (pathwise)",
                   "straight_through_gumbel": "straight-through Gumbel (pathwise, hard)",
                   "straight_through": "straight-through",
                   "gumbel_rao": f"Gumbel-Rao ({GUMBEL_RAO_MC} conditional draws)",
                   "reinmax": "ReinMax", "score": "score function (REINFORCE)",
                   "score_loo": f"score + leave-one-out (M={LOO_SAMPLES})", "exact": "exact"}


def multi_hot_problem():
    """(logits (3, 4), cost): a fixed policy over 3 independent 4-way factors and a fixed
    random critic of their joint one-hot x (12,), f(x) = vᵀ tanh(W x + b) with 8 hidden units:
    smooth, not quadratic in any factor, and coupling the factors, like a Q-network of a
    MultiDiscrete action."""
    gen = torch.Generator().manual_seed(7)
    d = MULTI_FACTORS * MULTI_CATEGORIES
    logits = torch.randn(MULTI_FACTORS, MULTI_CATEGORIES, dtype=torch.float64, generator=gen)
    w = torch.randn(MULTI_HIDDEN, d, dtype=torch.float64, generator=gen)
    b = torch.randn(MULTI_HIDDEN, dtype=torch.float64, generator=gen)
    v = torch.randn(MULTI_HIDDEN, dtype=torch.float64, generator=gen)

    def cost(y: torch.Tensor) -> torch.Tensor:  # (..., 3, 4) → (...)
        return torch.tanh(y.flatten(-2) @ w.T + b) @ v

    return logits, cost


def discrete_experiment(samples: int) -> dict:
    """Floor-corrected bias and per-sample variance of ∇_logits E[f(a)], a a multi-hot action
    (``multi_hot_problem``), for every discrete estimator against τ; score function and exact
    (which do not depend on τ) once."""
    logits0, cost = multi_hot_problem()
    relaxed = {"gumbel_softmax": (Pathwise(), False),
               "straight_through_gumbel": (Pathwise(), True),
               "straight_through": (StraightThrough(), False),
               "gumbel_rao": (GumbelRao(mc_samples=GUMBEL_RAO_MC), False),
               "reinmax": (ReinMax(), False)}

    def estimates(estimator, tau: float, hard: bool, n: int) -> torch.Tensor:
        logits = logits0.expand((n,) + logits0.shape).clone().requires_grad_(True)
        dist = Independent(GumbelSoftmax(logits, tau, hard=hard, validate_args=False), 1,
                           validate_args=False)
        (g,) = torch.autograd.grad(estimator(dist, cost).sum(), logits)
        return g.flatten(1)  # (n, 12): one estimate per element

    exact = estimates(Exact(), 1.0, False, 1)[0]
    rows = []
    for tau in DISCRETE_TEMPERATURES:
        for name, (estimator, hard) in relaxed.items():
            rows.append({"estimator": name, "tau": float(tau),
                         **bias_variance(estimates(estimator, float(tau), hard, samples),
                                         exact)})
    loo = Score(num_samples=LOO_SAMPLES, baseline="mean")
    flat = {"score": bias_variance(estimates(Score(), 1.0, False, samples), exact),
            "score_loo": bias_variance(estimates(loo, 1.0, False,
                                                 max(samples // LOO_SAMPLES, 2)),
                                       exact, LOO_SAMPLES),
            "exact": bias_variance(estimates(Exact(), 1.0, False, 2), exact)}
    return {"factors": MULTI_FACTORS, "categories": MULTI_CATEGORIES,
            "probs": torch.softmax(logits0, -1).tolist(), "exact_gradient": exact.tolist(),
            "exact_norm": float(exact.norm()), "relaxed": rows, "flat": flat}


# == figures and report =======================================================================
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


COLORS = {"pathwise": "C0", "score": "C3", "score_loo": "C2", "gumbel_softmax": "C0",
          "straight_through_gumbel": "C1", "straight_through": "C4", "gumbel_rao": "C5",
          "reinmax": "C6", "exact": "k"}


def plot_gaussian(rows: list[dict], path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.4), dpi=110, sharex="col")
    for col, name in enumerate(KS):
        fine = np.linspace(KS[name].min(), KS[name].max(), 120)
        closed = [closed_form_variances(name, float(k)) for k in fine]
        for row, param in enumerate(("mu", "sigma")):
            ax = axes[row, col]
            for est in ESTIMATOR_LABELS:
                pts = [r for r in rows if r["cost"] == name and r["parameter"] == param
                       and r["estimator"] == est]
                ks = np.asarray([r["k"] for r in pts])
                curve = [c[est][row] for c in closed]
                ax.plot(fine, curve, color=COLORS[est], lw=1.5,
                        label=ESTIMATOR_LABELS[est] if (row, col) == (0, 0) else None)
                ax.errorbar(ks, [r["empirical"] for r in pts], yerr=[2 * r["se"] for r in pts],
                            fmt="o", ms=3.5, color=COLORS[est], capsize=2)
            ax.set_yscale("log")
            ax.grid(alpha=0.3, which="both")
            if row == 0:
                ax.set_title(f"f(x) = {COST_LABELS[name]}")
            if row == 1:
                ax.set_xlabel("k")
            if col == 0:
                ax.set_ylabel(f"variance of ∂{'μ' if param == 'mu' else 'σ'} estimate")
    fig.suptitle("Per-sample gradient variance, x ~ N(1, 1): closed form (lines) vs this "
                 "library's estimators (points ± 2 SE)", fontsize=10)
    fig.legend(loc="lower center", ncol=3, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    fig.savefig(path)
    plt.close(fig)


def plot_dimension(rows: list[dict], path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 4.0), dpi=110)
    fine = np.geomspace(min(DIMENSIONS), max(DIMENSIONS), 100)
    for est, label in ESTIMATOR_LABELS.items():
        pts = [r for r in rows if r["estimator"] == est]
        curve = [dimension_variances(float(d))[est] for d in fine]
        ax.plot(fine, curve, color=COLORS[est], lw=1.5, label=label)
        ax.errorbar([r["dimension"] for r in pts], [r["empirical"] for r in pts],
                    yerr=[2 * r["se"] for r in pts], fmt="o", ms=3.5, color=COLORS[est],
                    capsize=2)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("dimension D")
    ax.set_ylabel("variance of ∂μ₁ estimate")
    ax.set_title(f"f(x) = Σ_d (x_d − {DIMENSION_K:g})², x_d ~ N(1, 1)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_categorical(result: dict, path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.0), dpi=110)
    labels = {"gumbel_softmax": "Gumbel-softmax",
              "straight_through_gumbel": "straight-through Gumbel",
              "score": "score function (REINFORCE)",
              "score_loo": f"score + leave-one-out (M={LOO_SAMPLES})", "exact": "exact"}
    for est in ("gumbel_softmax", "straight_through_gumbel"):
        pts = [r for r in result["relaxed"] if r["estimator"] == est]
        taus = [r["tau"] for r in pts]
        axes[0].errorbar(taus, [r["bias"] for r in pts], yerr=[2 * r["bias_se"] for r in pts],
                         fmt="o-", ms=3.5, color=COLORS[est], label=labels[est], capsize=2)
        axes[1].plot(taus, [r["variance"] for r in pts], "o-", ms=3.5, color=COLORS[est],
                     label=labels[est])
    for est in ("score", "score_loo"):
        flat = result["flat"][est]
        axes[0].axhline(flat["bias_se"], color=COLORS[est], ls=":", lw=1.2,
                        label=f"{labels[est]}: noise SE of its bias")
        axes[1].axhline(flat["variance"], color=COLORS[est], ls="--", lw=1.2, label=labels[est])
    axes[0].axhline(0.0, color="k", lw=1.0, label="exact (bias 0, variance 0)")
    axes[0].axhline(result["exact_norm"], color="k", ls="--", lw=1.0,
                    label="‖∇‖ (norm of the exact gradient)")
    axes[0].set_ylabel("bias ‖E ĝ − ∇‖")
    axes[1].set_ylabel("per-sample variance Σ_j Var ĝ_j")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("temperature τ")
        ax.grid(alpha=0.3, which="both")
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    p = ", ".join(f"{x:g}" for x in result["probs"])
    t = ", ".join(f"{x:g}" for x in result["target"])
    fig.suptitle(f"Categorical π = ({p}), cost ‖y − ({t})‖²: relaxation bias vs variance",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    fig.savefig(path)
    plt.close(fig)


def plot_discrete(result: dict, path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    for est in ("gumbel_softmax", "straight_through_gumbel", "straight_through", "gumbel_rao",
                "reinmax"):
        pts = [r for r in result["relaxed"] if r["estimator"] == est]
        taus = [r["tau"] for r in pts]
        # Gumbel-Rao has straight-through Gumbel's mean: dashed squares keep both visible.
        style = "s--" if est == "gumbel_rao" else "o-"
        axes[0].errorbar(taus, [r["bias_corrected"] for r in pts],
                         yerr=[2 * r["bias_se"] for r in pts], fmt=style, ms=3.5,
                         color=COLORS[est], label=DISCRETE_LABELS[est], capsize=2)
        axes[1].plot(taus, [r["variance"] for r in pts], style, ms=3.5, color=COLORS[est],
                     label=DISCRETE_LABELS[est])
    for est in ("score", "score_loo"):
        flat = result["flat"][est]
        axes[0].axhline(flat["bias_se"], color=COLORS[est], ls=":", lw=1.2,
                        label=f"{DISCRETE_LABELS[est]}: unbiased; its noise floor")
        axes[1].axhline(flat["variance"], color=COLORS[est], ls="--", lw=1.2,
                        label=DISCRETE_LABELS[est])
    axes[0].axhline(result["exact_norm"], color="k", ls="--", lw=1.0,
                    label="‖∇‖ (norm of the exact gradient)")
    axes[0].set_ylabel("bias ‖E ĝ − ∇‖, noise floor removed (± 2 floors)")
    axes[1].set_ylabel("per-sample variance Σ_j Var ĝ_j")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("temperature τ")
        ax.grid(alpha=0.3, which="both")
    # Logarithmic, but linear near 0: a bias indistinguishable from its floor is drawn at 0.
    axes[0].set_yscale("symlog", linthresh=0.01)
    axes[0].set_ylim(bottom=0.0)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    fig.suptitle(f"Multi-hot action ({result['factors']} factors × {result['categories']} "
                 f"categories), cost vᵀtanh(Wx + b): every discrete estimator against τ",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    fig.savefig(path)
    plt.close(fig)


def _g(x: float) -> str:
    return f"{x:.4g}"


def markdown(results: dict, figures: list[Path], out: Path) -> str:
    checks = results["checks"]
    lines = ["# pathwise lab", "",
             "Textbook results reproduced by this library's estimators "
             "(`policies/estimators.py`) and checked against closed forms derived in "
             "`pathwise/analysis/lab.py` (Mohamed et al. 2020, §3). Per-sample variances from "
             f"{results['samples']:,} draws per point; a check passes when the empirical value "
             f"lies within {Z:g} standard errors of the closed form.", "",
             f"**{checks['passed']} of {checks['total']} checks pass** (largest |z| = "
             f"{checks['max_abs_z']:.2f}).", ""]
    lines += [f"![{p.stem}]({p.relative_to(out)})" for p in figures]
    lines += ["", "## Gaussian N(1, 1): per-sample variance", "",
              "| cost | k | parameter | estimator | empirical ± SE | closed form | z |",
              "|---|---|---|---|---|---|---|"]
    for r in results["gaussian"]:
        param = "∂μ" if r["parameter"] == "mu" else "∂σ"
        lines.append(f"| {COST_LABELS[r['cost']]} | {r['k']:.3g} | {param} "
                     f"| {r['estimator']} | {_g(r['empirical'])} ± {_g(r['se'])} | "
                     f"{_g(r['closed_form'])} | {r['z']:.2f} |")
    lines += ["", f"## Dimension: f(x) = Σ_d (x_d − {DIMENSION_K:g})², variance of ∂μ₁", "",
              "| D | estimator | empirical ± SE | closed form | z |", "|---|---|---|---|---|"]
    for r in results["dimension"]:
        lines.append(f"| {r['dimension']} | {r['estimator']} | {_g(r['empirical'])} ± "
                     f"{_g(r['se'])} | {_g(r['closed_form'])} | {r['z']:.2f} |")
    cat = results["categorical"]
    lines += ["", "## Categorical: relaxed gradients against the temperature", "",
              f"π = softmax(logits) = {cat['probs']}, cost ‖y − {cat['target']}‖², exact "
              f"gradient ∇_logits = {[round(x, 5) for x in cat['exact_gradient']]}.", "",
              "| estimator | τ | bias ‖E ĝ − ∇‖ (noise SE) | per-sample variance |",
              "|---|---|---|---|"]
    for r in cat["relaxed"]:
        lines.append(f"| {r['estimator']} | {r['tau']:.3g} | {_g(r['bias'])} "
                     f"({_g(r['bias_se'])}) | {_g(r['variance'])} |")
    for name, r in cat["flat"].items():
        lines.append(f"| {name} | any | {_g(r['bias'])} ({_g(r['bias_se'])}) | "
                     f"{_g(r['variance'])} |")
    c = cat["score_check"]
    lines += ["", f"Score function per-sample variance: {_g(c['empirical'])} ± {_g(c['se'])} "
                  f"against the closed form Σ_a π_a ‖f(a)(e_a − π)‖² − ‖∇‖² = "
                  f"{_g(c['closed_form'])} (z = {c['z']:.2f})."]
    disc = results["discrete"]
    lines += ["", "## Discrete estimators on a multi-hot action", "",
              f"{disc['factors']} independent {disc['categories']}-way factors scored jointly "
              "by a fixed random critic vᵀ tanh(W x + b); the exact gradient enumerates the "
              f"{disc['categories'] ** disc['factors']} joint actions (‖∇‖ = "
              f"{_g(disc['exact_norm'])}). Bias with the noise floor removed in quadrature, "
              "√max(0, ‖ḡ − ∇‖² − floor²) (docs/estimator-facts.md §6).", "",
              "| estimator | τ | bias, floor removed | noise floor | raw bias | "
              "per-sample variance |", "|---|---|---|---|---|---|"]
    for r in disc["relaxed"] + [{"estimator": k, "tau": None, **v}
                                for k, v in disc["flat"].items()]:
        tau = "any" if r["tau"] is None else f"{r['tau']:.3g}"
        lines.append(f"| {r['estimator']} | {tau} | {_g(r['bias_corrected'])} | "
                     f"{_g(r['bias_se'])} | {_g(r['bias'])} | {_g(r['variance'])} |")
    lines.append("")
    return "\n".join(lines)


def run(out: Path, samples: int = SAMPLES, seed: int = 0) -> dict:
    """Run every experiment, write the figures, ``lab.md`` and ``lab.json`` into ``out``;
    return the results (plain types)."""
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gaussian = gaussian_experiment(samples)
        dimension = dimension_experiment(samples)
        categorical = categorical_experiment(samples)
        discrete = discrete_experiment(samples)
    checked = gaussian + dimension + [categorical["score_check"]]
    results = {"samples": samples, "seed": seed, "gaussian": gaussian, "dimension": dimension,
               "categorical": categorical, "discrete": discrete,
               "checks": {"total": len(checked), "passed": sum(r["ok"] for r in checked),
                          "z": Z, "max_abs_z": max(r["z"] for r in checked)}}
    figures = [out / "gaussian_variance.png", out / "dimension.png", out / "categorical.png",
               out / "discrete_estimators.png"]
    plot_gaussian(gaussian, figures[0])
    plot_dimension(dimension, figures[1])
    plot_categorical(categorical, figures[2])
    plot_discrete(discrete, figures[3])
    report = out / "lab.md"
    results["figures"] = [str(p) for p in figures]
    results["report"] = str(report)
    results["seconds"] = time.perf_counter() - started
    report.write_text(markdown(results, figures, out), encoding="utf-8")
    (out / "lab.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return results
