"""The VAE experiment (pathwise/analysis/vae.py, ``pathwise lab vae``).

Oracles from outside the module: torch's own distributions and KL divergences for the closed
forms; exact enumeration of a small categorical latent (itertools) and quadrature
over a one-dimensional Gaussian latent for the ELBO, the evidence log p(x)
and the ELBO's gradient. Statistical checks use fixed seeds and tolerances in standard errors.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import math
import sys

import numpy as np
import pytest
import torch
from _cli import run_cli
from torch.distributions import Bernoulli, Categorical, Normal, kl_divergence

from pathwise.analysis import vae, vae_data
from pathwise.analysis.diagnostics import gradient_stats
from pathwise.cli import main
from pathwise.training.runtime import seed_everything

Z = 5.0  # statistical checks pass within Z standard errors


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small tensors: one thread is many times faster than several on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def binary_images(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    return torch.bernoulli(torch.full((n, dim), 0.4), generator=torch.Generator().manual_seed(
        seed))


def tiny_model(latent, dim: int = 6, seed: int = 0) -> vae.VAE:
    torch.manual_seed(seed)
    model = vae.VAE(dim, latent, hidden=8)
    with torch.no_grad():  # larger weights than the default init: a posterior worth learning
        for p in model.parameters():
            p.mul_(3.0)
    return model


def flat_grad(loss, params) -> torch.Tensor:
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                      for g, p in zip(grads, params)])


# -- closed forms --------------------------------------------------------------------------------
def test_gaussian_kl_is_torchs_kl_to_the_standard_normal():
    torch.manual_seed(0)
    latent = vae.GaussianLatent(5)
    out = torch.randn(7, 10) * 2
    q = latent.posterior(out)
    expected = kl_divergence(Normal(q.base_dist.loc, q.base_dist.scale),
                             Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(latent.kl(q), expected, rtol=1e-5, atol=1e-5)
    # KL(p ‖ p) = 0: the −1 and the log σ² terms are there.
    zero = latent.posterior(torch.cat([torch.zeros(3, 5), torch.full((3, 5), 0.5413)], -1))
    assert float(latent.kl(zero).abs().max()) < 1e-3  # softplus(0.5413) + 1e-4 ≈ 1


def test_categorical_kl_to_the_uniform_prior_is_torchs():
    torch.manual_seed(0)
    latent = vae.CategoricalLatent(4, 6)
    out = torch.randn(5, 24) * 3
    q = latent.posterior(out, tau=0.3)
    logits = out.reshape(5, 4, 6)
    uniform = Categorical(logits=torch.zeros(6))
    expected = kl_divergence(Categorical(logits=logits), uniform).sum(-1)
    torch.testing.assert_close(latent.kl(q), expected, rtol=1e-5, atol=1e-5)
    # The temperature is the relaxation's, not the posterior's: it leaves the KL alone.
    torch.testing.assert_close(latent.kl(latent.posterior(out, tau=2.0)), expected,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("latent", [vae.GaussianLatent(3), vae.CategoricalLatent(2, 3)])
def test_log_likelihood_is_a_product_of_bernoullis_with_the_decoders_logits(latent):
    model = tiny_model(latent, dim=6)
    x = binary_images(4, 6)
    q = model.posterior(x)
    z = q.sample((5,))  # (5, 4, *event): sample dimensions in front of the batch
    logits = model.decoder(latent.flatten(z))
    expected = Bernoulli(logits=logits).log_prob(x.expand_as(logits)).sum(-1)
    got = model.log_likelihood(x, z)
    assert got.shape == (5, 4)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_the_temperature_follows_jangs_schedule():
    cfg = vae.VAEConfig(tau=1.0, tau_min=0.5, tau_rate=1e-3)
    assert vae.temperature(cfg, 0) == 1.0
    assert math.isclose(vae.temperature(cfg, 300), math.exp(-0.3))
    # The floor from t = ln 2 / r = 693.1 on.
    assert math.isclose(vae.temperature(cfg, 693), math.exp(-0.693)) and math.exp(-0.693) > 0.5
    assert vae.temperature(cfg, 694) == 0.5 and vae.temperature(cfg, 10**6) == 0.5


# -- exact enumeration of a small categorical latent ----------------------------------------------
def enumerated(model: vae.VAE, x: torch.Tensor):
    """Every joint latent of a CategoricalLatent (itertools), with log q(z|x) and log p(x|z)
    from log_softmax and torch's Bernoulli: (log_q, log_lik), each (A, N)."""
    latent = model.latent
    k, n = latent.variables, latent.classes
    combos = torch.tensor(list(itertools.product(range(n), repeat=k)))  # (A, k)
    z = torch.nn.functional.one_hot(combos, n).float()  # (A, k, n)
    log_probs = torch.log_softmax(model.encoder(x).reshape(-1, k, n), -1)  # (N, k, n)
    log_q = torch.stack([log_probs[:, range(k), c].sum(-1) for c in combos])  # (A, N)
    logits = model.decoder(z.flatten(-2))  # (A, D)
    log_lik = Bernoulli(logits=logits[:, None]).log_prob(x).sum(-1)  # (A, N)
    return log_q, log_lik


def exact_categorical(model: vae.VAE, x: torch.Tensor):
    """(ELBO, Var_q[log p(x|z)], log p(x)) per image, by enumeration; uniform prior."""
    log_q, log_lik = enumerated(model, x)
    q = log_q.exp()
    log_prior = -model.latent.variables * math.log(model.latent.classes)
    elbo = (q * (log_lik + log_prior - log_q)).sum(0)
    var = (q * log_lik**2).sum(0) - (q * log_lik).sum(0) ** 2
    evidence = torch.logsumexp(log_lik + log_prior, 0)
    return elbo, var, evidence


def test_monte_carlo_elbo_and_its_standard_error_against_exact_enumeration():
    model = tiny_model(vae.CategoricalLatent(2, 3))
    x = binary_images(5, 6)
    with torch.no_grad():
        exact, var, _ = exact_categorical(model, x)
    samples = 400
    torch.manual_seed(1)
    mean, se = vae.elbo(model, x, samples)
    exact_se = math.sqrt(float(var.sum()) / samples) / len(x)
    assert abs(se / exact_se - 1) < 0.15, (se, exact_se)
    assert abs(mean - float(exact.mean())) < Z * exact_se, (mean, float(exact.mean()), se)


def test_importance_weighted_bound_is_the_evidence_when_q_is_the_exact_posterior():
    """One categorical variable: q can be the true posterior, p(z|x) ∝ p(x|z). Then every
    importance weight p(x, z)/q(z|x) equals p(x), and L_K = log p(x) for every K and draw,
    which fails if the prior, the −log K or a log q were dropped."""
    model = tiny_model(vae.CategoricalLatent(1, 4))
    x = binary_images(6, 6)
    with torch.no_grad():
        _, log_lik = enumerated(model, x)  # (4, N)
        evidence = torch.logsumexp(log_lik - math.log(4), 0)

    class ExactPosterior(torch.nn.Module):
        def forward(self, images):
            logits = model.decoder(torch.eye(4))  # (4, D)
            return Bernoulli(logits=logits[:, None]).log_prob(images).sum(-1).T  # (N, 4)

    model.encoder = ExactPosterior()
    for k in (1, 3, 50):
        bound, se = vae.iw_bound(model, x, k)
        assert abs(bound - float(evidence.mean())) < 1e-4, (k, bound)
        assert se < 1e-4


def test_importance_weighted_bound_climbs_from_the_elbo_to_the_evidence():
    model = tiny_model(vae.CategoricalLatent(2, 3))
    x = binary_images(5, 6)
    with torch.no_grad():
        exact, _, evidence = exact_categorical(model, x)
    elbo, evidence = float(exact.mean()), float(evidence.mean())
    assert evidence - elbo > 0.5  # a gap to climb
    torch.manual_seed(2)
    l1, l1_se = vae.iw_bound(model, x, 1, repeats=400)  # L_1 is the ELBO
    assert abs(l1 - elbo) < Z * l1_se, (l1, elbo, l1_se)
    l5, l5_se = vae.iw_bound(model, x, 5, repeats=200)
    assert elbo + Z * l1_se < l5 < evidence  # strictly between (Burda et al., theorem 1)
    big, big_se = vae.iw_bound(model, x, 5000)
    assert abs(big - evidence) < 0.02 * (evidence - elbo) + Z * big_se


def test_training_objective_gradient_against_exact_enumeration():
    """The surrogate the VAE trains on: its gradient in every parameter (encoder and decoder)
    is, in expectation, that of the exact −ELBO. ``exact`` matches it to rounding; the score
    function within its standard errors."""
    model = tiny_model(vae.CategoricalLatent(2, 3))
    x = binary_images(4, 6)
    params = list(model.parameters())
    exact, _, _ = exact_categorical(model, x)
    truth = flat_grad(-exact.mean(), params)

    exact_estimator = vae.build_estimator(vae.VAEConfig(latent="categorical", estimator="exact",
                                                        latent_dim=2, classes=3))
    surrogate, _ = vae.negative_elbo(model, exact_estimator, x)
    torch.testing.assert_close(surrogate, -exact, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(flat_grad(surrogate.mean(), params), truth, rtol=1e-4,
                               atol=1e-5)

    assert_unbiased(model, x, "score", truth, latent="categorical")


def assert_unbiased(model, x, name: str, truth: torch.Tensor, **cfg):
    """Every coordinate of the mean of 200 estimates (50 draws each) within Z standard errors
    of the truth (coordinates without noise to rounding)."""
    estimator = vae.build_estimator(vae.VAEConfig(estimator=name, num_samples=50, **cfg))
    params = list(model.parameters())
    torch.manual_seed(3)
    grads = torch.stack([flat_grad(vae.negative_elbo(model, estimator, x)[0].mean(), params)
                         for _ in range(200)])
    mean, se = grads.mean(0), grads.std(0) / math.sqrt(len(grads))
    noisy = se > 1e-7
    z = ((mean - truth).abs() / se)[noisy]
    assert float(z.max()) < Z, float(z.max())
    torch.testing.assert_close(mean[~noisy], truth[~noisy], rtol=1e-4, atol=1e-5)


# -- quadrature over a one-dimensional Gaussian latent -------------------------------------------
# The trapezoid rule on a fine grid, not Gauss-Hermite: the ReLU decoder makes log p(x|z) kinked
# in z, where a high-order rule loses its accuracy and the trapezoid's stays O(h²).
GRID = torch.linspace(-10.0, 10.0, 4001)


def trapezoid(values: torch.Tensor) -> torch.Tensor:
    """∫ over GRID of ``values`` (last dimension on the grid)."""
    return torch.trapezoid(values, GRID)


def quadrature(model: vae.VAE, x: torch.Tensor):
    """(ELBO, log p(x)) per image for a 1-d Gaussian latent, by quadrature; the KL as
    E_q[log q − log p] with torch's Normal (not the closed form under test)."""
    out = model.encoder(x)
    loc, scale = out[:, :1], torch.nn.functional.softplus(out[:, 1:]) + 1e-4  # (N, 1)
    z = loc + scale * GRID  # z = μ + σε: the posterior's grid per image
    logits = model.decoder(z.unsqueeze(-1))  # (N, grid, D)
    log_lik = Bernoulli(logits=logits).log_prob(x[:, None]).sum(-1)
    integrand = log_lik + Normal(0.0, 1.0).log_prob(z) - Normal(loc, scale).log_prob(z)
    elbo = trapezoid(Normal(0.0, 1.0).log_prob(GRID).exp() * integrand)
    prior_logits = model.decoder(GRID.unsqueeze(-1))  # the prior's grid, shared
    prior_lik = Bernoulli(logits=prior_logits[None]).log_prob(x[:, None]).sum(-1)
    evidence = trapezoid((prior_lik + Normal(0.0, 1.0).log_prob(GRID)).exp()).log()
    return elbo, evidence


def test_gaussian_elbo_and_bound_against_quadrature():
    model = tiny_model(vae.GaussianLatent(1), seed=1)
    x = binary_images(5, 6, seed=1)
    with torch.no_grad():
        elbo, evidence = (float(v.mean()) for v in quadrature(model, x))
    assert evidence - elbo > 0.1
    torch.manual_seed(4)
    mean, se = vae.elbo(model, x, 2000)
    assert abs(mean - elbo) < Z * se, (mean, elbo, se)
    bound, bound_se = vae.iw_bound(model, x, 4000)
    assert elbo < bound < evidence + Z * bound_se
    assert abs(bound - evidence) < 0.05 * (evidence - elbo) + Z * bound_se


@pytest.mark.parametrize("name", ["pathwise", "score"])
def test_gaussian_training_gradient_is_unbiased_against_quadrature(name):
    model = tiny_model(vae.GaussianLatent(1), seed=1)
    x = binary_images(4, 6, seed=1)
    params = list(model.parameters())
    truth = flat_grad(-quadrature(model, x)[0].mean(), params)
    assert_unbiased(model, x, name, truth)


# -- the estimators as the VAE uses them -----------------------------------------------------------
@pytest.mark.parametrize("name, one_hot", [("pathwise", False), ("straight_through_gumbel", True),
                                           ("straight_through", True), ("reinmax", True)])
def test_what_the_decoder_sees_while_training(name, one_hot):
    """Gumbel-softmax feeds the decoder relaxed latents; straight-through Gumbel (pathwise on
    a hard GumbelSoftmax) and the straight-through family feed exact one-hot ones."""
    cfg = vae.VAEConfig(latent="categorical", estimator=name, latent_dim=3, classes=4)
    model = vae.build_model(cfg, 6)
    seen = []
    model.decoder.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0].detach()))
    vae.negative_elbo(model, vae.build_estimator(cfg), binary_images(5, 6), tau=0.7,
                      hard=cfg.hard)
    z = seen[0].unflatten(-1, (3, 4))
    is_one_hot = bool(((z == 0) | (z == 1)).all() and (z.sum(-1) == 1).all())
    assert is_one_hot == one_hot
    assert torch.allclose(z.sum(-1), torch.ones(())), "a point of the simplex either way"


def test_score_uses_the_leave_one_out_baseline_from_two_draws():
    assert vae.build_estimator(vae.VAEConfig(estimator="score", num_samples=4)).baseline == "mean"
    assert vae.build_estimator(vae.VAEConfig(estimator="score", num_samples=1)).baseline == "none"
    rao = vae.build_estimator(vae.VAEConfig(latent="categorical", estimator="gumbel_rao",
                                            mc_samples=7))
    assert (rao.name, rao.mc_samples, rao.num_samples) == ("gumbel_rao", 7, 4)


@pytest.fixture(scope="module")
def digits():
    return vae_data.load("digits")


def encoder_variance(latent: str, name: str, x: torch.Tensor) -> tuple[float, float]:
    cfg = vae.VAEConfig(latent=latent, estimator=name, hidden=32)
    seed_everything(0)  # the same network for every estimator
    model = vae.build_model(cfg, x.shape[1])
    grads = vae.encoder_gradients(model, vae.build_estimator(cfg), x, 24, tau=1.0,
                                  hard=cfg.hard)
    stats = gradient_stats(name, grads)
    return stats.variance, stats.variance_se


def test_encoder_gradient_variance_orders_as_the_papers_say(digits):
    """At the same network, draws and images: the score function's encoder gradient is far
    noisier than the pathwise one, on both latents, and Gumbel-Rao is no noisier than the
    straight-through Gumbel it Rao-Blackwellizes (Paulus et al. 2021)."""
    x = digits.train[:40]
    torch.manual_seed(0)
    for latent in ("gaussian", "categorical"):
        (path, path_se), (score, score_se) = (encoder_variance(latent, n, x)
                                              for n in ("pathwise", "score"))
        assert score - 5 * path > Z * math.hypot(score_se, 5 * path_se), (latent, path, score)
    (st, st_se), (rao, rao_se) = (encoder_variance("categorical", n, x)
                                  for n in ("straight_through_gumbel", "gumbel_rao"))
    assert rao < st + Z * math.hypot(st_se, rao_se), (st, rao)


# -- data ------------------------------------------------------------------------------------------
def test_digits_are_binarized_at_half_scale_and_split_once(digits):
    from sklearn.datasets import load_digits

    assert digits.train.shape == (1437, 64) and digits.test.shape == (360, 64)
    assert digits.dim == 64 and digits.shape == (8, 8)
    assert set(torch.cat([digits.train, digits.test]).unique().tolist()) == {0.0, 1.0}
    expected = torch.from_numpy((load_digits().data >= 8).astype(np.float32))

    def rows(t):
        return sorted(map(tuple, t.tolist()))

    assert rows(torch.cat([digits.train, digits.test])) == rows(expected)  # a partition
    again = vae_data.load("digits")
    assert torch.equal(again.train, digits.train) and torch.equal(again.test, digits.test)


def test_missing_scikit_learn_is_one_line_naming_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # `import` now raises
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "lab", "vae", "--out", out, "--wandb", "disabled")
    line = one_error_line(err)
    assert code == 1
    assert 'pip install -e ".[vae]"' in line and 'pip install "pathwise-rl[vae]"' in line
    assert "scikit-learn" in line and not out.exists()


def test_mnist_without_torchvision_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    code, _, err = run_cli(capsys, "lab", "vae", "--data", "mnist", "--out", tmp_path / "r",
                           "--wandb", "disabled")
    assert code == 1 and "torchvision, which is not installed" in one_error_line(err)


def test_mnist_is_read_through_torchvision_and_binarized_at_one_half(tmp_path, monkeypatch):
    """torchvision is not installed here: a stand-in module with MNIST's interface (uint8
    images in ``.data``) checks what load_mnist does with it."""
    import types

    calls = []

    class MNIST:
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            n = 5 if train else 3
            self.data = torch.arange(n * 28 * 28).reshape(n, 28, 28).remainder(256).to(
                torch.uint8)

    fake = types.ModuleType("torchvision")
    fake.datasets = types.SimpleNamespace(MNIST=MNIST)
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    data = vae_data.load("mnist", tmp_path)
    assert calls == [(str(tmp_path), True, True), (str(tmp_path), False, True)]
    assert data.train.shape == (5, 784) and data.test.shape == (3, 784)
    assert data.shape == (28, 28) and data.dim == 784
    pixels = torch.arange(5 * 784).remainder(256).reshape(5, 784)
    assert torch.equal(data.train, (pixels >= 128).float())  # 128/255 ≥ 0.5 > 127/255


# -- training --------------------------------------------------------------------------------------
SMALL = dict(steps=20, batch_size=20, hidden=16, log_every=5, eval_every=10, eval_samples=2,
             final_samples=4, iw_samples=8, grad_samples=4, grad_batch=10)
RUNS = [("gaussian", n) for n in vae.ESTIMATORS["gaussian"]] + \
       [("categorical", n) for n in vae.ESTIMATORS["categorical"]]


@pytest.mark.parametrize("latent, name", RUNS)
def test_every_estimator_trains(latent, name, digits):
    small = {"latent_dim": 2, "classes": 3} if name == "exact" else {}
    cfg = vae.VAEConfig(latent=latent, estimator=name, **SMALL, **small)
    seed_everything(cfg.seed)  # train() seeds, then builds: this is its initial network
    initial = vae.build_model(cfg, digits.dim).state_dict()
    records = []
    model, result = vae.train(cfg, records.append, digits)
    for key, value in model.state_dict().items():
        assert not torch.equal(value, initial[key]), f"{key} never changed"
        assert torch.isfinite(value).all()
    losses = [r["losses/neg_elbo"] for r in records if "losses/neg_elbo" in r]
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses)
    assert all("global_step" in r and "time" in r for r in records)
    evals = [r for r in records if "eval/test_elbo" in r]
    assert [r["global_step"] for r in evals] == [10, 20]
    assert all(f"grad/{name}/variance" in r for r in evals)
    assert ("charts/temperature" in records[0]) == cfg.relaxed
    for value in (result.train_elbo, result.test_elbo, result.test_iw_bound):
        assert -64 * math.log(2) - 20 < value < 0  # nats per 8×8 binary image
    assert result.grad_variance >= 0 and result.steps == 20
    if name == "exact":
        assert result.grad_variance == 0.0  # nothing drawn, nothing to vary


def test_measurements_leave_trainings_random_stream_alone(digits):
    """Evaluations and gradient statistics draw on their own seeds: how often they run does
    not change what is trained."""
    finals = []
    for every in (5, 1000):
        cfg = vae.VAEConfig(latent="categorical", estimator="straight_through_gumbel",
                            **{**SMALL, "eval_every": every})
        model, _ = vae.train(cfg, None, digits)
        finals.append(torch.cat([p.reshape(-1) for p in model.parameters()]))
    assert torch.equal(*finals)


# -- the command line ------------------------------------------------------------------------------
FAST = ["--wandb", "disabled", "--iw-samples", "50", "--grad-samples", "4", "--hidden", "32"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two seeds of pathwise and one of score on the Gaussian latent, through the CLI."""
    root = tmp_path_factory.mktemp("vae")
    results = {}
    for name, seed, steps in (("pathwise", 0, 300), ("pathwise", 1, 300), ("score", 0, 100)):
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):  # a module fixture has no capsys
            code = main(["lab", "vae", "--estimator", name, "--seed", str(seed), "--steps",
                         str(steps), "--eval-every", "50", "--out", str(root / f"{name}{seed}"),
                         "--json", *FAST])
        assert code == 0
        results[f"{name}{seed}"] = json.loads(stdout.getvalue())
    return root, results


def test_json_result_and_the_run_directory(two_runs):
    from omegaconf import OmegaConf

    root, results = two_runs
    r = results["pathwise0"]
    for key in ("train_elbo", "test_elbo", "test_elbo_se", "test_iw_bound",
                "test_iw_bound_se", "steps", "seconds", "grad_variance", "grad_variance_se",
                "grad_snr", "run_dir"):
        assert key in r
    assert r["steps"] == 300 and r["seconds"] > 0 and r["run_dir"] == str(root / "pathwise0")
    # 300 steps take the test ELBO from about 64·log(1/2) = −44.4 (an untrained decoder) to
    # −24.7 (32 hidden units).
    assert r["test_elbo"] > -27.0 and 0 < r["test_elbo_se"] < 0.1
    assert r["test_iw_bound"] > r["test_elbo"]  # L_50 above L_1
    run = root / "pathwise0"
    assert {p.name for p in run.iterdir()} == {"config.yaml", "metrics.jsonl", "results.json"}
    cfg = OmegaConf.load(run / "config.yaml")
    assert (cfg.env, cfg.agent.name, cfg.estimator.name, cfg.seed) == \
        ("vae-gaussian-digits", "vae", "pathwise", 0)
    assert cfg.estimator.num_samples == 4 and cfg.steps == 300 and cfg.wandb.mode == "disabled"
    assert cfg.torch_threads == 1 and "classes" not in cfg
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all({"global_step", "time"} <= set(r) for r in records)
    curve = [(r["global_step"], r["eval/test_elbo"]) for r in records if "eval/test_elbo" in r]
    assert [s for s, _ in curve] == [50, 100, 150, 200, 250, 300]
    assert curve[-1][1] > curve[0][1]
    assert json.loads((run / "results.json").read_text())["test_elbo"] == r["test_elbo"]


def test_compare_groups_vae_runs_by_estimator(two_runs, tmp_path, capsys):
    root, _ = two_runs
    code, out, _ = run_cli(capsys, "compare", root, "--metric", "eval/test_elbo", "--json",
                           "--out", tmp_path / "cmp")
    assert code == 0
    rows = json.loads(out)
    assert sorted((r["env"], r["agent"], r["estimator"], r["seeds"]) for r in rows) == [
        ("vae-gaussian-digits", "vae", "pathwise", [0, 1]),  # two seeds of one setting
        ("vae-gaussian-digits", "vae", "score", [0])]
    assert all(r["variant"] == "" for r in rows)
    code, out, _ = run_cli(capsys, "compare", root, "--metric", "grad/*/variance", "--json",
                           "--out", tmp_path / "cmp2")
    assert code == 0
    assert sorted(r["metric"] for r in json.loads(out)) == ["grad/pathwise/variance",
                                                            "grad/score/variance"]
    assert (tmp_path / "cmp2" / "vae-gaussian-digits_grad-all-variance_steps.png").exists()


def test_default_run_dir_is_never_an_existing_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = vae.VAEConfig(latent="categorical", estimator="gumbel_rao", seed=3)
    first = vae.default_run_dir(cfg)
    assert first.parent == tmp_path.parent / tmp_path.name / "runs" / "vae-categorical" / \
        "gumbel_rao" or first.parts[:3] == ("runs", "vae-categorical", "gumbel_rao")
    assert first.name.startswith("s3-")
    first.mkdir(parents=True)
    second = vae.default_run_dir(cfg)
    assert second != first and second.parent == first.parent
    if second.name.startswith(first.name):  # the same second: a suffix
        assert second.name == first.name + "-2"


def test_default_run_dir_and_wandb_group(tmp_path, monkeypatch, capsys, digits):
    """Default run dir runs/vae-<latent>/<estimator>/s<seed>-<timestamp>, never reused; a
    wandb run (offline by default) in group vae-<latent> with the estimator as job_type."""
    import pathwise.training.tracking as tracking

    opened = []

    class FakeRun:
        def __init__(self, mode, **fields):
            opened.append({"mode": mode, **fields})
            self.logged, self.finished = [], None

        def log(self, record):
            self.logged.append(record)

        def summary(self, values):
            self.summary_values = values

        def finish(self, exit_code=0):
            self.finished = exit_code

    runs = []
    monkeypatch.setattr(tracking, "open_wandb_run",
                        lambda mode, **fields: runs.append(FakeRun(mode, **fields)) or runs[-1])
    monkeypatch.setattr(vae_data, "load", lambda name, root=None: digits)
    monkeypatch.chdir(tmp_path)
    args = ["lab", "vae", "--latent", "categorical", "--estimator", "reinmax", "--steps", "10",
            "--iw-samples", "4", "--grad-samples", "2", "--seed", "3"]
    code, out, _ = run_cli(capsys, *args)
    assert code == 0
    assert run_cli(capsys, *args)[0] == 0  # never the first one's directory
    dirs = sorted((tmp_path / "runs" / "vae-categorical" / "reinmax").iterdir())
    assert "test ELBO" in out and "encoder-gradient variance" in out
    assert f"{dirs[0]}".endswith(out.split("\n")[4].strip())  # the summary names the run dir
    assert "pathwise compare runs/vae-categorical --metric eval/test_elbo" in out
    assert len(dirs) == 2 and all(d.name.startswith("s3-") for d in dirs)
    assert opened[0]["mode"] == "offline"
    assert (opened[0]["group"], opened[0]["job_type"]) == ("vae-categorical", "reinmax")
    assert opened[0]["config"]["env"] == "vae-categorical-digits"
    assert runs[0].finished == 0 and runs[0].logged[-1]["global_step"] == 10
    assert "test_elbo" in runs[0].summary_values


BAD = [
    (["--latent", "gaussian", "--estimator", "reinmax"],
     "--estimator reinmax does not apply to a gaussian latent; choose from pathwise, score"),
    (["--latent", "categorical", "--estimator", "nope"], "does not apply to a categorical"),
    (["--latent", "poisson"], "argument --latent: invalid choice"),
    (["--steps", "0"], "argument --steps: must be > 0"),
    (["--latent", "categorical", "--estimator", "exact"], "enumerates 8^8 latents"),
    (["--tau", "0"], "tau and tau_min must be > 0"),
    (["--device", "cuda:7"], "--device cuda:7"),
    (["--wandb", "sometimes"], "argument --wandb: invalid choice"),
]


@pytest.mark.parametrize("args, words", BAD)
def test_bad_input_is_one_line_and_exit_2(args, words, tmp_path, capsys):
    if "cuda" in words and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "lab", "vae", *args, "--out", out, "--wandb", "disabled")
    assert code == 2 and words in one_error_line(err)
    assert not out.exists()


def test_an_existing_run_dir_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("mine\n")
    code, _, err = run_cli(capsys, "lab", "vae", "--out", out, "--wandb", "disabled")
    assert code == 2 and "already exists and is not empty" in one_error_line(err)
    assert (out / "config.yaml").read_text() == "mine\n"


def test_lab_vae_help_lists_the_estimators(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["lab", "vae", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "straight_through_gumbel" in text and "--tau-rate" in text
