"""The loop every agent shares: collect → store → update → log → measure → evaluate → checkpoint.

An agent plugs in through five methods:
    act(obs, global_step) -> action        exploration action, in the policy's space
    observe(obs, action, step_result)      store what the env returned
    train_step(global_step) -> dict|None   gradient updates owed now (tensors, not floats)
    state_dict() / load_state_dict(state)  everything needed to resume
and a ``policy`` attribute (``pathwise.policies.policy.Policy``) for evaluation and saving;
optionally ``envs_restarted()``, called when a resume has to start the envs on new episodes.

Reliability (docs/reliability.md): a checkpoint holds the agent, every RNG state and the envs'
state, so a resumed run continues bit for bit; ``nan_policy`` stops a run on a non-finite loss
or parameter before it reaches a checkpoint, or skips such updates; a failure after training
started still leaves ``checkpoints/last.pt`` and ``policy.pt`` of what was trained.
"""

from __future__ import annotations

import dataclasses
import math
import signal
import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf

from pathwise.envs.make import make_vec_env
from pathwise.envs.seeding import RESUME, derive_seeds
from pathwise.errors import (
    ConfigError,
    EnvStateError,
    PathwiseError,
    TrainingError,
    one_line,
)
from pathwise.training import checkpoint as ckpt
from pathwise.training.config import (
    CUDAGRAPHS_ON_CPU,
    TrainConfig,
    as_train_config,
    evaluation_env,
)
from pathwise.training.evaluation import EvalResult, evaluate
from pathwise.training.registry import build_agent
from pathwise.training.run_dir import (
    RunLock,
    atomic_write_text,
    find_run_dir,
    make_run_dir,
    truncate_metrics,
)
from pathwise.training.runtime import (
    auto_threads,
    keep_freed_memory,
    resolve_device,
    seed_everything,
)
from pathwise.training.tracking import JsonlWriter, check_wandb_mode, open_wandb_run

RECENT_EPISODES = 10  # episodes the progress display's return averages over


@dataclass
class TrainResult:
    run_dir: Path
    global_step: int
    final_eval: EvalResult | None
    interrupted: bool = False  # stopped by Ctrl-C; checkpoints/last.pt holds where it stopped
    wandb_dir: Path | None = None  # the wandb run's files, when wandb was on
    eval_step: int | None = None  # the step final_eval was made at


def train(config, progress=None) -> TrainResult:
    """Train one agent as ``config`` says; return where the run went and its final evaluation.

    ``config``: a ``TrainConfig``, a DictConfig or a plain dict. ``config.resume = <run dir>``
    continues that run from its ``checkpoints/last.pt``.

    ``progress(global_step, info)``, when given, hears of the run as it goes: ``info["event"]``
    is ``"step"`` after every vector step, ``"log"`` at each log interval (with ``sps``) and
    ``"eval"`` after each evaluation (``return_mean``, ``return_std``, ``episodes``, ``best``);
    every event carries ``recent_return``, the mean return of the last 10 episodes (with torch
    envs: of the last 10 log intervals' episodes). Returning False from a ``"step"`` event
    stops the run as Ctrl-C does (a checkpoint is saved, the run can be resumed).
    """
    cfg = as_train_config(config)
    device = resolve_device(cfg.device)
    if cfg.cudagraphs and device.type != "cuda":
        raise ConfigError(CUDAGRAPHS_ON_CPU)
    check_wandb_mode(cfg.wandb.mode)
    run_dir, checkpoint = find_run_dir(cfg)
    torch.set_num_threads(cfg.torch_threads or auto_threads())
    keep_freed_memory()
    seed_everything(cfg.seed)
    envs = make_vec_env(cfg.env, cfg.num_envs, cfg.seed, device, action_bins=cfg.action_bins)
    try:
        agent = build_agent(cfg, envs, device)
        make_run_dir(run_dir)
        with RunLock(run_dir):  # one writer per run dir
            run = Run(cfg, agent, envs, run_dir, progress)
            obs = run.resume(checkpoint) if checkpoint is not None else None
            atomic_write_text(run_dir / "config.yaml",
                              OmegaConf.to_yaml(OmegaConf.structured(cfg)))
            return run.train(obs)
    finally:
        envs.close()


def crossed(step: int, n: int, every: int) -> bool:
    """Did the last ``n`` steps, ending at ``step``, pass a multiple of ``every``?"""
    return every > 0 and step // every > (step - n) // every


class Run:
    """One training run in progress: its state, and the named steps the loop takes."""

    def __init__(self, cfg: TrainConfig, agent, envs, run_dir: Path, progress=None):
        self.cfg, self.agent, self.envs, self.run_dir = cfg, agent, envs, run_dir
        self.progress = progress
        self.eval_env = evaluation_env(cfg)
        # Gymnasium envs hand over each ended episode with the step; torch envs keep the
        # statistics on the device until a log interval (no host sync per step).
        self.episodes_on_host = getattr(envs, "episodes_on_host", True)
        self.global_step = 0
        self.taken = envs.num_envs  # env steps of the last iteration (a rollout agent's: H·N)
        self.started = time.perf_counter()  # minus the time of earlier sessions, on resume
        self.wandb_id: str | None = None
        self.wandb = None
        self.last_metrics: dict | None = None  # the latest update's, until the next one
        self.recent_returns: deque[float] = deque(maxlen=RECENT_EPISODES)
        self.best: dict | None = None  # {"return", "step", "policy"} of checkpoints/best.pt
        self.clean_step = 0  # nan_policy: the last step at which every value checked finite
        self.saved_step: int | None = None  # of checkpoints/last.pt
        self.sps_mark = (0, time.perf_counter())
        self.final_eval: EvalResult | None = None  # the latest evaluation...
        self.eval_step: int | None = None  # ...and the step it was made at
        self.probe = None
        if cfg.diagnostics.every > 0:
            from pathwise.analysis.diagnostics import Diagnostics

            self.probe = Diagnostics(cfg, agent.device)

    # -- resume -----------------------------------------------------------------------------
    def resume(self, checkpoint: dict) -> torch.Tensor:
        """Put agent, envs, clocks and RNGs where ``checkpoint`` left them; returns the
        observations to act from next."""
        path = self.run_dir / "checkpoints" / "last.pt"
        ckpt.restore_agent(self.agent, checkpoint, path)
        step = int(checkpoint["global_step"])
        self.global_step = self.clean_step = self.saved_step = step
        self.sps_mark = (step, time.perf_counter())
        self.started -= float(checkpoint.get("time", 0.0))  # "time" continues across resumes
        self.wandb_id = checkpoint.get("wandb_id")
        self.last_metrics = checkpoint.get("last_metrics")
        self.best = checkpoint.get("best")
        if self.best is not None:
            # best.pt may be from after this checkpoint (a timeline the resume discards):
            # the checkpoint's own copy of the best policy replaces it.
            self.write_best_policy()
        elif checkpoint.get("best_return") is not None:  # older checkpoints: the return only
            self.best = {"return": checkpoint["best_return"]}
        obs = self.restore_envs(checkpoint)
        ckpt.set_rng_state(checkpoint["rng"], path)  # last: nothing after it draws
        truncate_metrics(self.run_dir / "metrics.jsonl", step)
        for stale in path.parent.glob("*.tmp"):  # left by a crash in the middle of a save
            stale.unlink(missing_ok=True)
        return obs

    def restore_envs(self, checkpoint: dict) -> torch.Tensor:
        """The envs exactly as the checkpoint left them (see ``TorchVecEnv.load_state_dict``);
        failing that, new episodes from a seed of their own, with a warning that the resumed
        run will not match an uninterrupted one."""
        try:
            if checkpoint.get("envs") is None:
                raise EnvStateError("the checkpoint holds no env state")
            return self.envs.load_state_dict(checkpoint["envs"])
        except (EnvStateError, KeyError, TypeError, AttributeError) as err:
            warnings.warn(f"resume is not exact: {one_line(err)}; every env starts a new "
                          f"episode", RuntimeWarning, stacklevel=4)
            if hasattr(self.agent, "envs_restarted"):
                self.agent.envs_restarted()
            step = int(checkpoint["global_step"])
            return self.envs.reset(seed=derive_seeds(self.cfg.seed, 1, RESUME, step)[0])

    # -- the loop ---------------------------------------------------------------------------
    def train(self, obs: torch.Tensor | None) -> TrainResult:
        cfg, agent, envs = self.cfg, self.agent, self.envs
        writer = self.writer = JsonlWriter(self.run_dir / "metrics.jsonl")
        exit_code, interrupted = 1, False
        try:
            self.wandb = self.open_wandb()
            if obs is None:
                obs = envs.reset(seed=cfg.seed)
            with _StopOnSigint() as stop:
                rollout = getattr(agent, "rollout", None)  # agents that step the envs (APG)
                while self.global_step < cfg.total_steps and not stop.requested:
                    if rollout is not None:  # collect and update in one: a window of steps
                        obs, self.taken, metrics = rollout(envs, obs, self.global_step)
                        self.global_step += self.taken
                    else:  # collect → store → update
                        action = agent.act(obs, self.global_step)
                        result = envs.step(action)
                        agent.observe(obs, action, result)
                        obs = result.obs
                        self.global_step += envs.num_envs
                        metrics = agent.train_step(self.global_step)
                        self.log_episodes(result)
                    if metrics is not None:
                        self.last_metrics = metrics
                    # log → measure → evaluate → checkpoint
                    if self.due(cfg.log_every):
                        self.log_training()
                    if self.probe is not None and self.due(cfg.diagnostics.every):
                        self.measure_gradients()
                    if self.due(cfg.eval_every):
                        self.evaluate_and_keep_best()
                    if self.due(cfg.checkpoint_every):
                        self.save_checkpoint()
                    if self.report("step") is False:
                        stop.requested = True
                interrupted = stop.requested and self.global_step < cfg.total_steps
            self.finish(interrupted)
            exit_code = 0
        except (TrainingError, KeyboardInterrupt):
            raise
        except Exception as err:
            self.check_finite()  # an error caused by a non-finite value is named as such
            raise self.failed(err) from err
        finally:
            writer.close()
            if self.wandb is not None:
                self.wandb.finish(exit_code)
        return TrainResult(self.run_dir, self.global_step, self.final_eval, interrupted,
                           self.wandb.dir if self.wandb is not None else None, self.eval_step)

    def due(self, every: int) -> bool:
        """Did the last iteration's env steps pass a multiple of ``every``?"""
        return crossed(self.global_step, self.taken, every)

    def finish(self, interrupted: bool) -> None:
        """Save what was trained, then evaluate it (unless interrupted or just evaluated): an
        evaluation that fails leaves last.pt and policy.pt in place."""
        self.check_finite()
        self.save_checkpoint()
        if interrupted:
            final_return = None
            latest = {} if self.final_eval is None else {  # the latest evaluation, and when
                "last_eval_return": self.final_eval.return_mean, "last_eval_step": self.eval_step}
            self.save_policy(**latest)
        else:
            self.save_policy()  # before the final evaluation, which may fail
            if not (self.final_eval is not None and self.due(self.cfg.eval_every)):
                best_before = self.best
                try:
                    self.evaluate_and_keep_best()
                except Exception as err:
                    raise TrainingError(
                        f"trained to step {self.global_step}, then the final evaluation failed "
                        f"({type(err).__name__}: {one_line(err, 200)}); the run is saved: "
                        f"evaluate it with `pathwise eval {self.run_dir}`") from err
                if self.best is not best_before:  # the final evaluation is the new best
                    self.save_checkpoint()
            final_return = self.final_eval.return_mean
            self.save_policy(final_return=final_return)
        if self.wandb is not None:
            self.wandb.summary({"interrupted": interrupted, "final_return": final_return})
            if not interrupted:
                cfg = self.cfg
                self.wandb.log_model(self.run_dir / "policy.pt", env=cfg.env,
                                     agent=cfg.agent.name, estimator=cfg.estimator.name,
                                     seed=cfg.seed, global_step=self.global_step,
                                     final_return=final_return)

    def failed(self, err: Exception) -> TrainingError:
        """An error after training started: save what was trained (when finite) and say in
        one line what failed and how to go on."""
        what = one_line(err, 200) if isinstance(err, PathwiseError) \
            else f"{type(err).__name__}: {one_line(err, 200)}"
        if self.global_step == (self.saved_step or 0):  # nothing new to save
            kept = ("nothing was trained yet" if not self.global_step else
                    f"checkpoints/last.pt of step {self.global_step} is kept")
            return TrainingError(f"training stopped at step {self.global_step}: {what}; {kept}")
        try:
            self.save_checkpoint(envs="if-possible")  # the envs may be what failed
            self.save_policy()
            kept = (f"what was trained is saved ({self.run_dir}/checkpoints/last.pt and "
                    f"policy.pt, step {self.global_step}): continue with `pathwise train "
                    f"resume={self.run_dir}` or evaluate with `pathwise eval {self.run_dir}`")
        except Exception as save_err:
            kept = (f"saving the run failed too ({one_line(save_err, 120)}); "
                    + (f"checkpoints/last.pt of step {self.saved_step} is kept"
                       if self.saved_step is not None else "no checkpoint was written"))
        return TrainingError(f"training stopped at step {self.global_step}: {what}; {kept}")

    # -- the named steps ----------------------------------------------------------------------
    def report(self, event: str, **data):
        """Tell ``progress`` (the CLI's progress display, a Python callback) what happened."""
        if self.progress is None:
            return None
        recent = (sum(self.recent_returns) / len(self.recent_returns)
                  if self.recent_returns else math.nan)
        return self.progress(self.global_step, {"event": event, "recent_return": recent,
                                                **data})

    def open_wandb(self):
        """The run's wandb run: project ``wandb.project``, group the env, job_type
        ``<agent>-<estimator>``; a resumed run continues its own (id kept in last.pt)."""
        cfg = self.cfg
        agent, estimator = cfg.agent.name, cfg.estimator.name
        return open_wandb_run(cfg.wandb.mode, project=cfg.wandb.project,
                              entity=cfg.wandb.entity, option="wandb.mode=", group=cfg.env,
                              job_type=f"{agent}-{estimator}", tags=[agent, estimator, cfg.env],
                              config=dataclasses.asdict(cfg), run_dir=self.run_dir,
                              name=f"{agent}-{estimator}-{self.run_dir.name}",
                              run_id=self.wandb_id)

    def log(self, record: dict) -> None:
        record = {"global_step": self.global_step,
                  "time": time.perf_counter() - self.started, **record}
        self.writer.log(record)
        if self.wandb is not None:
            self.wandb.log(record)

    def log_episodes(self, result) -> None:
        for ret, length in zip(result.episode_returns, result.episode_lengths):
            self.recent_returns.append(ret)
            self.log({"charts/episodic_return": ret, "charts/episodic_length": length})

    def log_training(self) -> None:
        """Steps per second, the latest losses and (torch envs) the episodes ended since the
        last interval: the loop's one host sync per interval."""
        if not self.episodes_on_host:
            count, mean_return, mean_length = self.envs.pop_episodes()
            if count:
                self.recent_returns.append(mean_return)
                self.log({"charts/episodic_return": mean_return,
                          "charts/episodic_length": mean_length, "charts/episodes": count})
        now = time.perf_counter()
        step, then = self.sps_mark
        record = {"charts/sps": (self.global_step - step) / max(now - then, 1e-9)}
        self.sps_mark = (self.global_step, now)
        values = {k: float(v) for k, v in (self.last_metrics or {}).items()}
        record.update(values)
        self.log(record)
        self.check_finite(values)
        self.report("log", sps=record["charts/sps"])

    def measure_gradients(self) -> None:
        """Every estimator's gradient on the same states (a random stream of its own:
        training draws the same numbers with diagnostics on or off)."""
        self.log(self.probe.measure(self.agent, self.global_step).metrics())

    def evaluate_and_keep_best(self) -> EvalResult:
        """A deterministic evaluation; the policy at the best one so far goes to best.pt
        (every evaluation uses the same episodes, so returns compare; ties keep the first)."""
        self.check_finite()
        cfg = self.cfg
        result = evaluate(self.agent.policy, self.eval_env, cfg.eval_episodes, seed=cfg.seed)
        self.final_eval, self.eval_step = result, self.global_step
        self.log({"eval/return_mean": result.return_mean, "eval/return_std": result.return_std})
        improved = self.best is None or result.return_mean > self.best["return"]
        if improved:
            policy = {k: v.detach().cpu().clone()
                      for k, v in self.agent.policy.state_dict().items()}
            self.best = {"return": result.return_mean, "step": self.global_step,
                         "policy": policy}
            self.write_best_policy()
        self.report("eval", return_mean=result.return_mean, return_std=result.return_std,
                    episodes=result.episodes, best=improved, env=self.eval_env)
        return result

    def write_best_policy(self) -> None:
        best = self.best
        ckpt.save_policy(self.agent.policy, self.run_dir / "checkpoints" / "best.pt",
                         state_dict=best["policy"], **self.metadata(),
                         global_step=best["step"], eval_return=best["return"])

    def check_finite(self, losses: dict[str, float] | None = None) -> None:
        """Stop before a non-finite value reaches an evaluation or a checkpoint: losses
        (nan_policy=stop) and learned tensors (both policies). One host sync, at log,
        evaluation and checkpoint intervals only."""
        if losses is None:
            losses = {k: float(v) for k, v in (self.last_metrics or {}).items()}
        problem = first_nonfinite(self.agent, losses,
                                  check_losses=self.cfg.nan_policy == "stop")
        if problem is not None:
            kept = (f"checkpoints/last.pt of step {self.saved_step} is kept"
                    if self.saved_step is not None else "no checkpoint was written")
            hint = "; nan_policy=skip skips such updates" if self.cfg.nan_policy == "stop" else ""
            raise TrainingError(f"non-finite {problem} at step {self.global_step} (all finite "
                                f"at step {self.clean_step}); training stopped, {kept}{hint}")
        self.clean_step = self.global_step

    def save_checkpoint(self, envs: bool | str = True) -> None:
        """checkpoints/last.pt. ``envs="if-possible"``: without the envs' state when it
        cannot be read (a resume then starts new episodes, with a warning; a state read from
        envs that failed mid-step is caught by the replay check on resume)."""
        self.check_finite()  # never replace a good last.pt with a poisoned state
        try:
            env_state = self.envs.state_dict()
        except Exception:
            if envs != "if-possible":
                raise
            env_state = None
        last = self.last_metrics
        ckpt.save_checkpoint(
            self.run_dir / "checkpoints" / "last.pt", self.cfg, self.agent, self.global_step,
            time=time.perf_counter() - self.started,
            wandb_id=self.wandb.id if self.wandb is not None else None,
            best=self.best, envs=env_state,
            last_metrics=None if last is None else {k: v.detach().cpu() for k, v in last.items()})
        self.saved_step = self.global_step

    def save_policy(self, **extra) -> None:
        ckpt.save_policy(self.agent.policy, self.run_dir / "policy.pt", **self.metadata(),
                         global_step=self.global_step, **extra)

    def metadata(self) -> dict:
        cfg = self.cfg
        return {"env_id": cfg.env, "eval_env_id": self.eval_env, "agent": cfg.agent.name,
                "estimator": cfg.estimator.name}


# -- NaN guard ------------------------------------------------------------------------------
def named_tensors(agent) -> list[tuple[str, torch.Tensor]]:
    """What an agent learns: the parameters of its modules and its own trainable tensors
    (SAC's log α), by attribute name."""
    named = []
    for attr, value in vars(agent).items():
        if isinstance(value, torch.nn.Module):
            named += [(f"{attr}.{name}", p) for name, p in value.named_parameters()]
        elif isinstance(value, torch.Tensor) and value.requires_grad:
            named.append((attr, value))
    return named


def first_nonfinite(agent, losses: dict[str, float], check_losses: bool) -> str | None:
    """``"losses/critic=nan"`` or ``"parameter critic.net.0.weight"``: the first non-finite
    loss (when ``check_losses``) or learned tensor; None when all are finite. One host sync."""
    if check_losses:
        for key, value in losses.items():
            if not math.isfinite(value):
                return f"{key}={value}"
    named = named_tensors(agent)
    if named:
        finite = torch.stack([torch.isfinite(p.detach()).all() for _, p in named]).tolist()
        for (name, _), ok in zip(named, finite):
            if not ok:
                return f"parameter {name}"
    return None


class _StopOnSigint:
    """First Ctrl-C: ask the loop to stop at the end of the current step (it then saves a
    checkpoint); a second one interrupts at once. Only in the main thread, where Python
    delivers signals."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

