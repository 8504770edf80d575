"""The horizon lab (``pathwise lab horizon``): how the variance of a policy gradient estimated
through the dynamics grows with the horizon, on a smooth task and on a chaotic one.

For a fixed policy π_θ (``policy_for``: tanh-Gaussian, its mean linear in the observation) and
the H-step objective

    J_H(θ) = E_{s_0 ~ reset, a_t ~ π_θ(·|s_t)} [ Σ_{t<H} γ^t r_t ],

two unbiased estimators of ∇θ J_H are drawn K times each, every estimate averaging M
trajectories from fresh start states:

* ``pathwise`` (model-pathwise, reparameterized; what APG backpropagates): a_t = tanh(μ +
  σ ε_t) and ∇θ Σ_t γ^t r_t differentiated through the simulator's dynamics (SVG(∞), Heess et
  al. 2015);
* ``score`` (likelihood ratio; REINFORCE): Σ_t ∇θ log π(a_t|s_t) (G_t − b_t), with the
  reward-to-go G_t = Σ_{t'≥t} γ^{t'} r_{t'} and the leave-one-out baseline b_t, the mean G_t of
  the estimate's other M − 1 trajectories (Kool et al. 2019): no gradient through the dynamics.

``pathwise.analysis.diagnostics.gradient_stats`` turns each set of K estimates into the
total variance Σ_j Var_j and the floor-corrected signal and SNRs (docs/estimator-facts.md §6).

What it reproduces: Parmas, Rasmussen, Peters, Doya (2018), "PIPPS: Flexible Model-Based
Policy Search Robust to the Curse of Chaos", ICML, §3 and figure 1: through chaotic dynamics
the reparameterization gradient's variance explodes with the horizon (the state's sensitivity
‖∂s_T/∂s_0‖ grows like e^{λT}), while the likelihood-ratio gradient's, which never
differentiates the dynamics, grows only as the sums do. On ``pathwise/PointMass-v0`` (linear,
damped: ‖∂s_T/∂s_0‖ bounded) both level off; on ``pathwise/DoublePendulum-v0`` (chaotic) the
pathwise variance grows by orders of magnitude.

K estimates cost about one: each estimate gets its own copy of θ (``_Copies``: K parameter
sets applied by ``torch.func.vmap``), the K·M trajectories run as one batch of the env's pure
``transition``, and one backward pass gives every copy's gradient. Everything runs in float64
(the chaotic task's gradients span many orders of magnitude).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
from torch import nn

from pathwise.analysis.diagnostics import gradient_stats
from pathwise.envs import TORCH_ENVS
from pathwise.policies.policy import Policy
from pathwise.spaces import scale_action

HORIZONS = (1, 2, 5, 10, 20, 50, 100, 200)
TASKS = {"pathwise/PointMass-v0": "smooth", "pathwise/DoublePendulum-v0": "chaotic"}
ESTIMATORS = ("pathwise", "score")
SAMPLES = 32  # K: independent estimates per (task, horizon, estimator)
BATCH = 8  # M: trajectories averaged by each estimate (the baseline's leave-one-out needs 2)
GAMMA = 0.99
GOAL = 100.0  # chaotic task: pathwise variance growth, shortest to longest horizon
# Fields of ``GradientStats`` that each row carries beside env, horizon and estimator.
FIELDS = ("samples", "variance", "variance_se", "snr", "snr_median", "snr_floor",
          "snr_median_floor", "signal", "signal_floor", "signal_to_noise",
          "signal_to_noise_corrected", "mean_norm")


# The fixed policies: tanh-Gaussian with a mean linear in the observation and a constant
# pre-tanh σ. PointMass: a PD law toward the goal, −(p + v) per axis (observation [x, y, vx,
# vy]), which keeps the state bounded, so every sum converges as H grows. DoublePendulum: zero
# mean torque, so the pendulum tumbles as its energy dictates (chaotically).
GAINS = {"pathwise/PointMass-v0": [[-1.0, 0.0, -1.0, 0.0], [0.0, -1.0, 0.0, -1.0]]}
SIGMA = 0.5


def policy_for(env_id: str) -> Policy:
    """The lab's fixed policy for ``env_id``: a ``Policy`` without hidden layers (one linear
    map to the Gaussian's mean and raw log-std), float64; see ``GAINS`` and ``SIGMA``."""
    env = TORCH_ENVS[env_id](1)
    space = env.single_action_space
    obs_dim, action_dim = env.single_observation_space.shape[0], space.shape[0]
    policy = Policy(obs_dim, action_dim, False, (), space.low.tolist(), space.high.tolist())
    linear = policy.net[0]
    low, high = policy.log_std_bounds
    # bound_log_std(raw) = low + (high − low)(tanh(raw) + 1)/2 = log σ, solved for raw.
    raw = math.atanh(2 * (math.log(SIGMA) - low) / (high - low) - 1)
    gains = torch.tensor(GAINS.get(env_id, [[0.0] * obs_dim] * action_dim))
    with torch.no_grad():
        linear.weight.zero_()
        linear.weight[:action_dim] = gains
        linear.bias.zero_()
        linear.bias[action_dim:] = raw
    return policy.double()


class _Copies(nn.Module):
    """K independent copies of ``net``'s parameters (leaves that require grad, shapes (K,
    ...)); input (K, M, in) → output (K, M, out), slice k through copy k. A loss summed over k
    then has copy k's gradient equal to the gradient of slice k's terms alone."""

    def __init__(self, net: nn.Module, k: int):
        super().__init__()
        self._net = [net]  # a plain list: not a submodule, its own parameters stay untouched
        self.copies = {name: p.detach().unsqueeze(0).repeat(k, *([1] * p.dim()))
                       .requires_grad_(True) for name, p in net.named_parameters()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def one(params, xi):
            return torch.func.functional_call(self._net[0], params, (xi,))
        return torch.func.vmap(one)(self.copies, x)

    def flat_grads(self) -> torch.Tensor:
        """(K, P): each copy's gradient, flattened in ``named_parameters`` order."""
        return torch.cat([p.grad.reshape(p.shape[0], -1) for p in self.copies.values()], 1)


def _probe(policy: Policy, k: int) -> tuple[Policy, _Copies]:
    """A copy of ``policy`` whose network is K parameter copies (``_Copies``), so that its
    ``distribution`` takes (K, M, obs) observations."""
    import copy

    probe = copy.deepcopy(policy)
    copies = _Copies(policy.net, k)
    probe.net = copies
    return probe, copies


def gradient_samples(env_id: str, policy: Policy, horizon: int, estimator: str,
                     samples: int = SAMPLES, batch: int = BATCH, gamma: float = GAMMA,
                     seed: int = 0) -> torch.Tensor:
    """(K, P) independent estimates of ∇θ J_H (module doc), each the mean of ``batch``
    trajectories of ``horizon`` steps from fresh reset states, by ``estimator`` (pathwise |
    score)."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}")
    if estimator == "score" and batch < 2:
        raise ValueError("the score estimator's leave-one-out baseline needs batch >= 2")
    k, m = samples, batch
    env = TORCH_ENVS[env_id](k * m, dtype=torch.float64)
    env.reset(seed=seed)  # K·M start states from the task's reset distribution
    state = env.state
    low = torch.as_tensor(env.single_action_space.low, dtype=torch.float64)
    high = torch.as_tensor(env.single_action_space.high, dtype=torch.float64)
    probe, copies = _probe(policy, k)
    pathwise = estimator == "pathwise"
    generator = torch.Generator().manual_seed(seed)
    rewards, log_probs = [], []
    with torch.set_grad_enabled(True):
        for _ in range(horizon):
            obs = env.observe(state).reshape(k, m, -1)
            dist = probe.distribution(obs if pathwise else obs.detach())
            noise = torch.randn(dist.loc.shape, generator=generator, dtype=torch.float64)
            u = dist.loc + dist.scale * noise  # the pre-tanh draw, reparameterized
            if not pathwise:
                u = u.detach()
                log_probs.append(dist.log_prob_pre_tanh(u))  # (K, M), gradient to θ only
            action = scale_action(dist.squash(u), low, high).reshape(k * m, -1)
            state, reward, _ = env.transition(state if pathwise else state.detach(), action)
            rewards.append(reward.reshape(k, m))
    reward = torch.stack(rewards)  # (H, K, M)
    discount = gamma ** torch.arange(horizon, dtype=torch.float64)[:, None, None]
    if pathwise:
        objective = (discount * reward).sum(0).mean(1)  # (K,): each estimate's mean return
    else:
        to_go = (discount * reward.detach()).flip(0).cumsum(0).flip(0)  # G_t, (H, K, M)
        baseline = (to_go.sum(2, keepdim=True) - to_go) / (m - 1)  # leave-one-out mean
        objective = (torch.stack(log_probs) * (to_go - baseline)).sum(0).mean(1)
    objective.sum().backward()
    return copies.flat_grads()


def horizon_experiment(horizons=HORIZONS, tasks=tuple(TASKS), samples: int = SAMPLES,
                       batch: int = BATCH, gamma: float = GAMMA, seed: int = 0) -> list[dict]:
    """One row per (task, horizon, estimator): ``{env, kind, horizon, estimator, variance,
    snr, ...}`` (``FIELDS``; floor-corrected statistics of ``gradient_stats``)."""
    rows = []
    for env_id in tasks:
        policy = policy_for(env_id)
        for horizon in horizons:
            for estimator in ESTIMATORS:
                grads = gradient_samples(env_id, policy, horizon, estimator, samples, batch,
                                         gamma, seed=seed * 1_000_003 + horizon)
                stats = gradient_stats(estimator, grads)
                rows.append({"env": env_id, "kind": TASKS.get(env_id, ""), "horizon": horizon,
                             "estimator": estimator,
                             **{f: getattr(stats, f) for f in FIELDS}})
    return rows


def growth(rows: list[dict]) -> list[dict]:
    """Per (env, estimator): variance at the longest horizon over the shortest's, and over the
    one at a quarter of the longest (how much it still grows at the end: ≈ 1 when bounded)."""
    out = []
    for env_id in dict.fromkeys(r["env"] for r in rows):
        for estimator in ESTIMATORS:
            pts = sorted((r["horizon"], r["variance"]) for r in rows
                         if r["env"] == env_id and r["estimator"] == estimator)
            if len(pts) < 2:
                continue
            (h0, v0), (h1, v1) = pts[0], pts[-1]
            quarter = min(pts, key=lambda p: abs(p[0] - h1 / 4))
            out.append({"env": env_id, "estimator": estimator, "from": h0, "to": h1,
                        "ratio": v1 / v0 if v0 > 0 else math.inf,
                        "tail_from": quarter[0],
                        "tail_ratio": v1 / quarter[1] if quarter[1] > 0 else math.inf})
    return out


# == figure and report ============================================================================
def plot(rows: list[dict], path: Path) -> None:
    from pathwise.analysis.lab import _plt

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    colors = {"pathwise": "C0", "score": "C3"}
    styles = {"smooth": "o--", "chaotic": "s-"}
    for env_id in dict.fromkeys(r["env"] for r in rows):
        for estimator in ESTIMATORS:
            pts = sorted((r for r in rows if r["env"] == env_id and r["estimator"] == estimator),
                         key=lambda r: r["horizon"])
            if not pts:
                continue
            kind = pts[0]["kind"]
            label = f"{estimator}, {env_id.removeprefix('pathwise/')} ({kind})"
            h = [r["horizon"] for r in pts]
            style = styles.get(kind, "^-")
            axes[0].plot(h, [r["variance"] for r in pts], style, ms=4, color=colors[estimator],
                         label=label)
            axes[1].plot(h, [r["signal_to_noise"] for r in pts], style, ms=4,
                         color=colors[estimator], label=label)
    samples = rows[0]["samples"] if rows else None
    if samples:
        axes[1].axhline(1 / samples, color="k", ls=":", lw=1,
                        label=f"noise floor 1/K (a zero gradient), K = {samples}")
    axes[0].set_ylabel("variance of a gradient estimate, Σ_j Var ĝ_j")
    axes[0].set_yscale("log")
    axes[1].set_ylabel("signal to noise ‖ḡ‖² / Σ_j Var ĝ_j")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("horizon H (steps)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle("Gradient of the H-step return of a fixed policy: through the dynamics "
                 "(pathwise) vs the score function", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    fig.savefig(path)
    plt.close(fig)


def _g(x) -> str:
    return "—" if x is None else f"{x:.3g}"


def markdown(results: dict, figure: Path, out: Path) -> str:
    s = results["settings"]
    lines = ["# pathwise lab horizon", "",
             "Variance and signal-to-noise of two unbiased estimates of ∇θ of the H-step "
             f"discounted return (γ = {s['gamma']}) of a fixed linear tanh-Gaussian policy "
             f"(pre-tanh σ = {s['sigma']}; PointMass: a PD law to the goal, DoublePendulum: zero "
             f"mean torque), seed {s['seed']}: through the "
             "dynamics (pathwise, as APG) and by the score function with a leave-one-out "
             f"baseline (as REINFORCE). K = {s['samples']} estimates of M = {s['batch']} "
             "trajectories each; statistics from `gradient_stats` (floors: what pure noise "
             "shows). Parmas et al. 2018 (PIPPS): through chaos the pathwise variance explodes "
             "with H.", "", f"![horizon]({figure.relative_to(out)})", "",
             "## Growth of the variance", "",
             "From the shortest horizon the variance of every estimator grows, if only because "
             "the objective grows from one reward to a sum of many; the last column says whether "
             "it levels off (a small factor over the last three quarters of the range: "
             "bounded) or explodes.", "",
             "| env | estimator | Var(H_max) / Var(H_min) | Var(H_max) / Var(H_max/4) |",
             "|---|---|---|---|"]
    for g in results["growth"]:
        lines.append(f"| {g['env']} | {g['estimator']} | {_g(g['ratio'])} (H {g['from']} → "
                     f"{g['to']}) | {_g(g['tail_ratio'])} (H {g['tail_from']} → {g['to']}) |")
    goal = results["goal"]
    lines += ["", f"Goal: pathwise variance growth ≥ {goal['target']:g}× on the chaotic task: "
                  f"{_g(goal['ratio'])}× — {'met' if goal['met'] else 'not met'}.", "",
              "## Every point", "",
              "| env | H | estimator | variance ± SE | SNR mean (floor) | SNR median (floor) "
              "| signal (floor) | ‖ḡ‖ |", "|---|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        lines.append(f"| {r['env']} | {r['horizon']} | {r['estimator']} | {_g(r['variance'])} "
                     f"± {_g(r['variance_se'])} | {_g(r['snr'])} ({_g(r['snr_floor'])}) | "
                     f"{_g(r['snr_median'])} ({_g(r['snr_median_floor'])}) | "
                     f"{_g(r['signal'])} ({_g(r['signal_floor'])}) | {_g(r['mean_norm'])} |")
    lines.append("")
    return "\n".join(lines)


def run(out: Path, horizons=HORIZONS, samples: int = SAMPLES, batch: int = BATCH,
        seed: int = 0, tasks=tuple(TASKS)) -> dict:
    """Run the experiment, write ``horizon.png``, ``horizon.md`` and ``horizon.json`` into
    ``out``; return the results (plain types)."""
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    horizons = tuple(sorted(int(h) for h in horizons))
    with torch.random.fork_rng(devices=[]):
        rows = horizon_experiment(horizons, tasks, samples, batch, GAMMA, seed)
    grown = growth(rows)
    chaotic = next((g for g in grown if TASKS.get(g["env"]) == "chaotic"
                    and g["estimator"] == "pathwise"), None)
    ratio = chaotic["ratio"] if chaotic else None
    results = {"settings": {"horizons": list(horizons), "samples": samples, "batch": batch,
                            "gamma": GAMMA, "sigma": SIGMA, "seed": seed,
                            "tasks": {t: TASKS.get(t, "") for t in tasks}},
               "rows": rows, "growth": grown,
               "goal": {"target": GOAL, "ratio": ratio,
                        "met": ratio is not None and ratio >= GOAL}}
    figure, report = out / "horizon.png", out / "horizon.md"
    plot(rows, figure)
    results["figures"] = [str(figure)]
    results["report"] = str(report)
    results["seconds"] = time.perf_counter() - started
    report.write_text(markdown(results, figure, out), encoding="utf-8")
    (out / "horizon.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return results
