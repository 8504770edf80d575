"""Compare runs: group by (env, agent, estimator), aggregate seeds, plot learning curves.

Aggregates follow Agarwal et al. (2021), "Deep RL at the Edge of the Statistical Precipice"
(rliable): the mean and the interquartile mean (IQM: the mean of the middle 50 % of runs) of
each run's final score, with 95 % percentile confidence intervals from a stratified bootstrap
(runs resampled with replacement within each task). Everything is read from run directories
(``config.yaml`` + ``metrics.jsonl``); no account is needed.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pathwise.errors import CompareError
from pathwise.training.tracking import read_metrics

DEFAULT_METRIC = "eval/return_mean"
BOOTSTRAP_REPS = 2000
FINAL_FRACTION = 0.1  # a run's score: mean of the metric over its last 10 % of steps


@dataclass
class Run:
    path: Path
    env: str  # the env id; "<id>[bins=N]" for a run with action_bins=N
    agent: str
    estimator: str
    seed: int
    records: list[dict] = field(repr=False)
    config: object = field(repr=False, default=None)  # the run's config.yaml, as loaded

    @property
    def key(self) -> tuple[str, str, str]:
        return self.env, self.agent, self.estimator

    @property
    def setting(self) -> dict:
        """The run's config, flattened, less its seed and what says only where and how it
        was logged or computed (``NOT_THE_EXPERIMENT``): runs with equal settings are seeds
        of one experiment."""
        from omegaconf import OmegaConf

        if self.config is None:
            return {}
        flat = _flatten(OmegaConf.to_container(self.config, resolve=True))
        return {k: v for k, v in flat.items()
                if not any(k == p or k.startswith(p + ".") for p in NOT_THE_EXPERIMENT)}

    def series(self, metric: str, x: str = "global_step") -> tuple[np.ndarray, np.ndarray]:
        """``(x, value)`` of every finite record of ``metric``, in logging order."""
        pairs = [(r[x], r[metric]) for r in self.records
                 if isinstance(r.get(metric), (int, float)) and x in r
                 and math.isfinite(r[metric])]
        if not pairs:
            return np.zeros(0), np.zeros(0)
        xs, ys = zip(*pairs)
        return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)

    def score(self, metric: str) -> float | None:
        """Mean of ``metric`` over the last ``FINAL_FRACTION`` of the run's logged steps (the
        final evaluation, for ``eval/return_mean``); None when the metric was never logged."""
        steps, values = self.series(metric)
        if len(values) == 0:
            return None
        return float(values[steps >= steps.max() * (1.0 - FINAL_FRACTION)].mean())


# -- finding and loading runs ---------------------------------------------------------------
def is_run_dir(path: Path) -> bool:
    return (path / "config.yaml").is_file() and (path / "metrics.jsonl").is_file()


def find_runs(paths: list[str | Path]) -> list[Path]:
    """Run directories among ``paths`` and below them (a sweep dir, ``runs/``…)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise CompareError(f"{path}: no such directory")
        if is_run_dir(path):
            found.append(path)
            continue
        below = sorted(p.parent for p in path.rglob("config.yaml")
                       if "wandb" not in p.parts and is_run_dir(p.parent))
        if not below:
            raise CompareError(f"{path}: no run directories (config.yaml + metrics.jsonl) in it")
        found += below
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return unique


def load_run(path: Path) -> Run:
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(path / "config.yaml")
    env = str(cfg.env)
    bins = int(cfg.get("action_bins", 0) or 0)
    if bins:  # a discretized task is another task: never pooled with the Box runs
        env = f"{env}[bins={bins}]"
    return Run(path=path, env=env, agent=str(cfg.agent.name),
               estimator=str(cfg.estimator.name), seed=int(cfg.seed),
               records=read_metrics(path / "metrics.jsonl"), config=cfg)


# -- statistics -----------------------------------------------------------------------------
def iqm(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the scores left after cutting ⌊n/4⌋ from each end
    (``scipy.stats.trim_mean(x, 0.25)``, rliable's IQM)."""
    scores = np.sort(np.asarray(scores, dtype=float), axis=axis)
    n = scores.shape[axis]
    cut = int(0.25 * n)
    return np.take(scores, range(cut, n - cut), axis=axis).mean(axis=axis)


def mean(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.asarray(scores, dtype=float).mean(axis=axis)


def stratified_bootstrap_ci(strata: list[np.ndarray], statistic, reps: int = BOOTSTRAP_REPS,
                            confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile CI of ``statistic`` over the pooled scores, resampling each stratum (task)
    with replacement on its own, so every replicate keeps each task's number of runs."""
    rng = np.random.default_rng(seed)
    samples = []
    for scores in strata:
        scores = np.asarray(scores, dtype=float)
        index = rng.integers(0, len(scores), size=(reps, len(scores)))
        samples.append(scores[index])
    values = statistic(np.concatenate(samples, axis=1), axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return float(low), float(high)


@dataclass
class GroupSummary:
    env: str
    agent: str
    estimator: str
    metric: str
    runs: int
    seeds: list[int]
    scores: list[float]
    mean: float
    mean_ci: tuple[float, float]
    iqm: float
    iqm_ci: tuple[float, float]
    steps: int  # the fewest env steps any run of the group reached
    variant: str = ""  # what sets the group apart from others of its (env, agent, estimator)
    duplicate_seeds: list[int] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.agent}-{self.estimator}" + (f" [{self.variant}]" if self.variant else "")

    def to_dict(self) -> dict:
        return {"env": self.env, "agent": self.agent, "estimator": self.estimator,
                "variant": self.variant, "metric": self.metric, "runs": self.runs,
                "seeds": self.seeds, "duplicate_seeds": self.duplicate_seeds,
                "steps": self.steps, "mean": self.mean, "mean_ci": list(self.mean_ci),
                "iqm": self.iqm, "iqm_ci": list(self.iqm_ci), "scores": self.scores}


# Config keys that do not change what a run learns: they never split a group. Everything
# else does (total_steps, num_envs, a hyperparameter, eval_every...).
NOT_THE_EXPERIMENT = ("seed", "run_dir", "resume", "wandb", "device", "torch_threads",
                      "log_every", "checkpoint_every", "compile", "compile_mode", "cudagraphs",
                      "nan_policy", "diagnostics")


def _flatten(tree, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        flat = {}
        for key, value in tree.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: tuple(tree) if isinstance(tree, list) else tree}


@dataclass
class Group:
    """Runs of one experiment: equal settings but the seed. ``variant`` says what sets it
    apart from the other groups of the same (env, agent, estimator), e.g. ``total_steps=2000``
    (empty when it is the only one)."""

    env: str
    agent: str
    estimator: str
    variant: str
    runs: list[Run]

    @property
    def label(self) -> str:
        return f"{self.agent}-{self.estimator}" + (f" [{self.variant}]" if self.variant else "")

    @property
    def duplicate_seeds(self) -> list[int]:
        seeds = [r.seed for r in self.runs]
        return sorted({s for s in seeds if seeds.count(s) > 1})


def group_runs(runs: list[Run]) -> list[Group]:
    """Runs grouped by setting (``Run.setting``), never pooling runs that differ in anything
    but the seed; each group labelled by what differs from its neighbours."""
    by_setting: dict[tuple, list[Run]] = {}
    for run in sorted(runs, key=lambda r: (r.key, r.seed, str(r.path))):
        setting = tuple(sorted(run.setting.items(), key=lambda kv: kv[0]))
        by_setting.setdefault((run.key, setting), []).append(run)
    groups = []
    for (key, setting), members in by_setting.items():
        siblings = [dict(s) for (k, s) in by_setting if k == key]
        differing = sorted({name for sib in siblings for name in set(sib) | set(dict(setting))
                            if sib.get(name) != dict(setting).get(name)}) \
            if len(siblings) > 1 else []
        values = dict(setting)
        variant = ", ".join(f"{name}={_show(values.get(name))}" for name in differing)
        groups.append(Group(*key, variant, members))
    return groups


def _show(value) -> str:
    return "[" + ",".join(map(str, value)) + "]" if isinstance(value, tuple) else str(value)


def expand_metric(runs: list[Run], pattern: str) -> list[str]:
    """The metrics ``pattern`` names: itself, or, with shell wildcards (``grad/*/variance``:
    every estimator's gradient variance), every key the runs logged that matches, sorted."""
    if not any(c in pattern for c in "*?["):
        return [pattern]
    keys = sorted({key for run in runs for record in run.records for key in record
                   if fnmatch.fnmatchcase(key, pattern)})
    if not keys:
        raise CompareError(f"no run logged a metric matching {pattern!r}")
    return keys


def summarize(runs: list[Run], metric: str = DEFAULT_METRIC) -> list[GroupSummary]:
    """One row per (env, agent, estimator) and metric (a pattern may name several, see
    ``expand_metric``): mean and IQM of the final scores with 95 % CIs."""
    rows = []
    for name in expand_metric(runs, metric):
        rows += _summarize(runs, name)
    if not rows:
        raise CompareError(f"no run logged {metric!r}; pick another with --metric "
                           f"(e.g. charts/episodic_return)")
    return rows


def _summarize(runs: list[Run], metric: str) -> list[GroupSummary]:
    rows = []
    for group in group_runs(runs):
        scored = [(r, r.score(metric)) for r in group.runs]
        scored = [(r, s) for r, s in scored if s is not None]
        if not scored:
            continue
        scores = np.asarray([s for _, s in scored])
        rows.append(GroupSummary(
            env=group.env, agent=group.agent, estimator=group.estimator, metric=metric,
            runs=len(scored), seeds=[r.seed for r, _ in scored],
            scores=[float(s) for s in scores],
            mean=float(scores.mean()), mean_ci=stratified_bootstrap_ci([scores], mean),
            iqm=float(iqm(scores)), iqm_ci=stratified_bootstrap_ci([scores], iqm),
            steps=int(min(r.series(metric)[0].max() for r, _ in scored)),
            variant=group.variant, duplicate_seeds=group.duplicate_seeds))
    return rows


# -- learning curves ------------------------------------------------------------------------
def curve(runs: list[Run], metric: str, x: str = "global_step", points: int = 100):
    """``(grid, mean, ci_low, ci_high)`` of ``metric`` against ``x`` ("global_step" or "time"),
    each run linearly interpolated onto a common grid over the range all runs cover."""
    series = [r.series(metric, x) for r in runs]
    series = [(xs, ys) for xs, ys in series if len(xs) > 0]
    if not series:
        return None
    start = max(xs.min() for xs, _ in series)
    stop = min(xs.max() for xs, _ in series)
    grid = np.linspace(start, stop, points) if stop > start else np.asarray([stop])
    values = np.stack([np.interp(grid, xs, ys) for xs, ys in series])  # (runs, points)
    if len(series) == 1:
        return grid, values[0], values[0], values[0]
    rng = np.random.default_rng(0)
    index = rng.integers(0, len(series), size=(BOOTSTRAP_REPS // 4, len(series)))
    boot = values[index].mean(axis=1)  # (reps, points)
    low, high = np.quantile(boot, [0.025, 0.975], axis=0)
    return grid, values.mean(axis=0), low, high


LINE_STYLES = ("-", "--", ":", "-.")


def plot_curves(runs: list[Run], metric: str, out: Path) -> list[Path]:
    """One PNG per (env, x axis): a line per agent-estimator (and per metric, when ``metric``
    is a pattern naming several) with its 95 % CI band. The y axis is logarithmic when no
    value is negative and the positive ones span more than two decades (gradient variances)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = expand_metric(runs, metric)
    by_env: dict[str, dict[str, list[Run]]] = {}
    for group in group_runs(runs):
        by_env.setdefault(group.env, {})[group.label] = group.runs
    # One line style per group across every env's figure.
    labels = sorted({label for groups in by_env.values() for label in groups})
    written = []
    for env, groups in by_env.items():
        for x, xlabel, suffix in (("global_step", "env steps", "steps"),
                                  ("time", "wall-clock seconds", "time")):
            # Several metrics per run (grad/*/variance: one per estimator measured): the colour
            # names the metric and the line style the run's group, so a reader can follow
            # either across the plot; the legend then goes beside the axes, not over the data.
            several = len(metrics) > 1
            fig, ax = plt.subplots(figsize=(9.6 if several else 6.4, 4.0), dpi=120)
            drawn = []
            for label, members in groups.items():
                for m, name in enumerate(metrics):
                    result = curve(members, name, x)
                    if result is None:
                        continue
                    grid, mid, low, high = result
                    shown = f"{label}: {name}" if several else label
                    style = {}
                    if several:
                        style = {"color": f"C{m % 10}",
                                 "linestyle": LINE_STYLES[labels.index(label) % len(LINE_STYLES)]}
                    line, = ax.plot(grid, mid, label=f"{shown} (n={len(members)})",
                                    marker="o" if len(grid) < 3 else None, **style)
                    ax.fill_between(grid, low, high, color=line.get_color(), alpha=0.15, lw=0)
                    drawn.append(np.concatenate([low, high]))
            if not drawn:
                plt.close(fig)
                continue
            values = np.concatenate(drawn)
            positive = values[values > 0]
            if values.min() >= 0 and len(positive) and positive.max() > 100 * positive.min():
                # symlog, linear below the smallest positive value: a zero curve (the exact
                # estimator's variance) stays on the plot, at the bottom.
                ax.set_yscale("symlog", linthresh=float(positive.min()))
            ax.set_title(env)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(metric)
            ax.grid(alpha=0.3)
            if several:
                ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
            else:
                ax.legend()
            fig.tight_layout()
            key = metric.replace("/", "-").replace("*", "all").replace("?", "_")
            path = out / f"{env.replace('/', '-')}_{key}_{suffix}.png"
            fig.savefig(path)
            plt.close(fig)
            written.append(path)
    return written


# -- report ---------------------------------------------------------------------------------
def _fmt(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"


def _several_metrics(rows: list[GroupSummary]) -> bool:
    return len({r.metric for r in rows}) > 1


def table_rows(rows: list[GroupSummary]) -> list[list[str]]:
    """Cells of ``table_header(rows)``."""
    several = _several_metrics(rows)
    return [[r.env, r.agent, r.estimator + (f" [{r.variant}]" if r.variant else ""),
             *([r.metric] if several else []),
             str(r.runs) + (f" (seed {', '.join(map(str, r.duplicate_seeds))} repeated)"
                            if r.duplicate_seeds else ""),
             f"{r.steps:,}",
             f"{_fmt(r.mean)} [{_fmt(r.mean_ci[0])}, {_fmt(r.mean_ci[1])}]",
             f"{_fmt(r.iqm)} [{_fmt(r.iqm_ci[0])}, {_fmt(r.iqm_ci[1])}]"] for r in rows]


TABLE_HEADER = ["env", "agent", "estimator", "runs", "steps", "mean [95% CI]", "IQM [95% CI]"]


def table_header(rows: list[GroupSummary]) -> list[str]:
    """``TABLE_HEADER``, with a ``metric`` column when the rows hold several metrics."""
    if not _several_metrics(rows):
        return list(TABLE_HEADER)
    return TABLE_HEADER[:3] + ["metric"] + TABLE_HEADER[3:]


def markdown_report(rows: list[GroupSummary], runs: list[Run], figures: list[Path],
                    out: Path) -> str:
    metric = ", ".join(dict.fromkeys(r.metric for r in rows))
    header = table_header(rows)
    lines = [f"# pathwise compare: `{metric}`", "",
             f"{len(runs)} runs, grouped by setting: runs whose configs differ in anything "
             f"but the seed (and where and how they were logged) are never pooled; a group "
             f"that differs from another of the same estimator says how in brackets. Score "
             f"of a run: the mean "
             f"of `{metric}` over its last {FINAL_FRACTION:.0%} of env steps. Mean and "
             f"interquartile mean (IQM) over seeds, with 95% stratified-bootstrap confidence "
             f"intervals ({BOOTSTRAP_REPS} resamples; Agarwal et al. 2021).", "",
             "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(rows)]
    if figures:
        lines += ["", "## Learning curves", ""]
        lines += [f"![{p.stem}]({p.relative_to(out)})" for p in figures]
    lines += ["", "## Runs", ""]
    lines += [f"- `{r.path}`: {r.env} {r.agent}-{r.estimator} seed {r.seed}" for r in runs]
    return "\n".join(lines) + "\n"


def log_to_wandb(runs: list[Run], rows: list[GroupSummary], figures: list[Path],
                 out: Path) -> Path:
    """A ``job_type=compare`` wandb run with the table and figures, in the runs' project
    (offline unless the runs were logged online and credentials are present)."""
    from pathwise.training.tracking import open_wandb_run, wandb_credentials_missing

    wb = dict(runs[0].config.get("wandb") or {})
    mode = wb.get("mode") if wb.get("mode") in ("offline", "online") else "offline"
    if mode == "online" and wandb_credentials_missing():
        mode = "offline"
    envs = sorted({r.env for r in runs})
    run = open_wandb_run(mode, project=wb.get("project", "pathwise"), entity=wb.get("entity"),
                         group=envs[0] if len(envs) == 1 else "compare", job_type="compare",
                         tags=["compare", *envs],
                         config={"metric": rows[0].metric, "runs": [str(r.path) for r in runs]},
                         run_dir=out, name=f"compare-{out.name}")
    try:
        run.log_table("compare/table", table_header(rows), table_rows(rows))
        if figures:
            run.log_files("image", {f"compare/{p.stem}": p for p in figures})
    except BaseException:
        run.finish(1)
        raise
    run.finish(0)
    return run.dir
