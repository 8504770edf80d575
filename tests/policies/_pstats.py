"""Small statistics helpers for Monte Carlo tests (tolerances stated in standard errors).

Every helper takes i.i.d. draws along dimension 0 and returns float64 numbers.
"""

import math

import torch

Z = 5.0  # tolerance in standard errors: a two-sided 5-SE miss has probability ~6e-7


def mean_se(x: torch.Tensor):
    """Sample mean and its standard error sqrt(s² / N), per trailing coordinate."""
    x = x.detach().double()
    n = x.shape[0]
    return x.mean(0), (x.var(0) / n).sqrt()


def var_se(x: torch.Tensor):
    """Sample variance and its standard error sqrt((m4 − var²) / N), per trailing coordinate.

    For i.i.d. X with central moments m2, m4 the sample variance has asymptotic variance
    (m4 − m2²)/N; both moments are estimated from the same draws.
    """
    x = x.detach().double()
    n = x.shape[0]
    c = x - x.mean(0)
    m2 = (c**2).mean(0)
    m4 = (c**4).mean(0)
    return m2 * n / (n - 1), ((m4 - m2**2) / n).sqrt()


def assert_close_se(estimate, se, exact, z: float = Z, slack=0.0, what: str = ""):
    """|estimate − exact| < z·SE + slack, elementwise (slack covers rounding of a quoted fact)."""
    estimate = torch.as_tensor(estimate, dtype=torch.float64)
    se = torch.as_tensor(se, dtype=torch.float64)
    exact = torch.as_tensor(exact, dtype=torch.float64)
    err = (estimate - exact).abs()
    bound = z * se + slack
    assert torch.all(err < bound), (
        f"{what}: estimate {estimate.tolist()} vs exact {exact.tolist()}: "
        f"|err| {err.tolist()} >= {z}·SE + {slack} = {bound.tolist()}"
    )


def normal_pdf(u: torch.Tensor, mu: float, sigma: float) -> torch.Tensor:
    return torch.exp(-0.5 * ((u - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))


def log1m_tanh_sq_reference(u: torch.Tensor) -> torch.Tensor:
    """log(1 − tanh²u) = log sech²u = log 4 − 2|u| − 2·log1p(exp(−2|u|)).

    Derivation: sech u = 2 / (e^u + e^−u) = 2 e^−|u| / (1 + e^−2|u|); square and take logs.
    Independent of the library's softplus form; exact and stable for every real u.
    """
    a = u.abs()
    return math.log(4.0) - 2 * a - 2 * torch.log1p(torch.exp(-2 * a))


def squared_bias_se(g: torch.Tensor, exact):
    """‖E ĝ − exact‖² estimated without its noise floor, and the estimate's standard error.

    With ḡ the mean of N draws, E‖ḡ − exact‖² = ‖b‖² + tr Σ / N (docs/estimator-facts.md
    §6): subtracting the trace of the sample covariance over N leaves an unbiased estimate of
    ‖b‖². Its variance (ḡ ≈ Gaussian) is 4 bᵀΣb / N + 2 tr(Σ²) / N².
    """
    g = g.detach().double().flatten(1)
    n = g.shape[0]
    exact = torch.as_tensor(exact, dtype=torch.float64).flatten()
    bias = g.mean(0) - exact
    cov = torch.cov(g.T).reshape(g.shape[1], g.shape[1])
    value = float(bias @ bias - cov.trace() / n)
    var = 4 * float(bias @ cov @ bias) / n + 2 * float((cov @ cov).trace()) / n**2
    return value, math.sqrt(var)
