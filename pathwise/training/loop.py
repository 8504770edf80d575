"""The loop every agent shares: collect → store → update → evaluate → log → checkpoint.

An agent plugs in through five methods:
    act(obs, global_step) -> action        exploration action, in the policy's space
    observe(obs, action, step_result)      store what the env returned
    train_step(global_step) -> dict|None   gradient updates owed now (tensors, not floats)
    state_dict() / load_state_dict(state)  everything needed to resume
and a ``policy`` attribute (``policies.policy.Policy``) for evaluation and saving; optionally
``envs_restarted()``, called when a resume has to start the envs on new episodes.

Reliability (docs/reliability.md): a checkpoint holds the agent, every RNG state and the envs'
state, so a resumed run continues bit for bit; ``nan_policy`` stops a run on a non-finite
loss or parameter before it reaches a checkpoint, or skips such updates.
"""

from __future__ import annotations

import ast
import ctypes
import dataclasses
import json
import math
import os
import random
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from pathwise.agents.optim import NAN_POLICIES
from pathwise.agents.sac import SAC, SACConfig
from pathwise.envs.make import EnvStateError, make_vec_env
from pathwise.training.checkpoint import (
    CHECKPOINT_FORMAT,
    FORMAT_VERSION,
    CheckpointError,
    atomic_save,
    safe_load,
    save_policy,
)
from pathwise.training.config import COMPILE_MODES, ConfigError, TrainConfig
from pathwise.training.evaluation import EvalResult, eval_seed, evaluate
from pathwise.training.tracking import (
    JsonlWriter,
    WandbRun,
    read_metrics,
    wandb_credentials_missing,
)


class TrainingError(RuntimeError):
    """Training stopped (a non-finite loss or parameter, …); the message is one line."""


@dataclass
class TrainResult:
    run_dir: Path
    global_step: int
    final_eval: EvalResult | None
    interrupted: bool = False  # stopped by Ctrl-C; checkpoints/last.pt holds where it stopped
    wandb_dir: Path | None = None  # the wandb run's files, when wandb was on


def agent_classes() -> dict:
    """Agent name → (agent class, config dataclass)."""
    from pathwise.agents.reinforce import Reinforce, ReinforceConfig

    return {"sac": (SAC, SACConfig), "reinforce": (Reinforce, ReinforceConfig)}


def as_train_config(config) -> TrainConfig:
    """A ``TrainConfig`` from a dataclass, a DictConfig or a plain dict (with validation)."""
    if isinstance(config, TrainConfig):
        cfg = config
    else:
        from omegaconf.errors import OmegaConfBaseException

        data = OmegaConf.to_container(config, resolve=True) \
            if OmegaConf.is_config(config) else dict(config)
        agent = dict(data.pop("agent", {}) or {})
        name = agent.get("name", "sac")
        if name not in agent_classes():
            raise ConfigError(f"unknown agent {name!r}; valid: {', '.join(agent_classes())}")
        agent_cls = agent_classes()[name][1]
        schema = OmegaConf.structured(TrainConfig(agent=agent_cls()))
        try:
            cfg = OmegaConf.to_object(OmegaConf.merge(schema, {**data, "agent": agent}))
        except OmegaConfBaseException as err:
            key = getattr(err, "full_key", None)
            reason = str(err).splitlines()[0]
            if type(err).__name__ in ("ConfigKeyError", "ConfigAttributeError") and key:
                raise ConfigError(f"unknown key {key!r}") from None
            raise ConfigError(f"invalid config{f' at {key}' if key else ''}: {reason}") from None
    problems = validate(cfg)
    if problems:
        raise ConfigError(problems[0])
    return cfg


def validate(cfg: TrainConfig) -> list[str]:
    problems = []
    for name in ("total_steps", "num_envs", "eval_episodes", "log_every"):
        if getattr(cfg, name) <= 0:
            problems.append(f"{name} must be > 0, got {getattr(cfg, name)}")
    for name in ("eval_every", "checkpoint_every", "torch_threads"):
        if getattr(cfg, name) < 0:
            problems.append(f"{name} must be >= 0, got {getattr(cfg, name)}")
    if cfg.wandb.mode not in ("offline", "online", "disabled"):
        problems.append(f"wandb.mode must be offline, online or disabled, got {cfg.wandb.mode!r}")
    if not (cfg.device in ("cpu", "cuda", "auto") or cfg.device.startswith("cuda:")):
        problems.append(f"device must be cpu, cuda, cuda:N or auto, got {cfg.device!r}")
    if cfg.estimator.name not in ("pathwise", "score", "exact"):
        problems.append(f"unknown estimator {cfg.estimator.name!r}; valid: pathwise, score, exact")
    if cfg.estimator.num_samples < 0:
        problems.append(f"estimator.num_samples must be >= 0, got {cfg.estimator.num_samples}")
    if cfg.estimator.baseline not in ("none", "mean"):
        problems.append(f"estimator.baseline must be none or mean, got {cfg.estimator.baseline!r}")
    if cfg.nan_policy not in NAN_POLICIES:
        problems.append(f"nan_policy must be stop or skip, got {cfg.nan_policy!r}")
    if cfg.compile_mode not in COMPILE_MODES:
        problems.append(f"compile_mode must be one of {', '.join(COMPILE_MODES)}, "
                        f"got {cfg.compile_mode!r}")
    if cfg.cudagraphs and cfg.device == "cpu":
        problems.append(_CUDAGRAPHS_ON_CPU)
    return problems + cfg.diagnostics.validate() + cfg.agent.validate()


_CUDAGRAPHS_ON_CPU = "cudagraphs=true needs device=cuda (CUDA graphs capture GPU kernels); " \
                     "this run is on the CPU: drop cudagraphs, or use compile=true"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name} requested but CUDA is not available; use device=cpu")
    return torch.device(name)


def keep_freed_memory() -> None:
    """glibc: keep freed heap memory for reuse instead of handing it back to the kernel.

    torch's CPU allocator does not cache: each SAC update allocates and frees a few MB of
    activations and gradients, and with glibc's default (dynamic) thresholds the top of the
    heap is trimmed after most updates, so its pages are faulted in again at the next one:
    about 300 page faults and 1 ms of kernel time per 256×256 update measured on a 2-core VM,
    5% of the update. Fixed thresholds (mmap for blocks from 32 MiB, the replay buffer's
    arrays; trim beyond 64 MiB free) keep that churn in the heap. Resident memory grows by
    the update's working set at most, which it reaches anyway. No-op elsewhere (not Linux, not
    glibc). PyTorch's CPU tuning guide suggests jemalloc or tcmalloc for the same reason.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    mallopt(m_mmap_threshold, 32 << 20)
    mallopt(m_trim_threshold, 64 << 20)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def default_run_dir(cfg: TrainConfig) -> Path:
    """``runs/<env>/<agent>-<estimator>/s<seed>-<timestamp>``, with a ``-2``, ``-3``… suffix
    when a run of the same second already has that name."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    env = cfg.env.replace("/", "-")
    base = Path("runs") / env / f"{cfg.agent.name}-{cfg.estimator.name}" / f"s{cfg.seed}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def build_agent(cfg: TrainConfig, envs, device: torch.device):
    agent_cls = agent_classes()[cfg.agent.name][0]
    space = envs.single_action_space
    low = None if envs.is_discrete else space.low.tolist()
    high = None if envs.is_discrete else space.high.tolist()
    if hasattr(cfg.agent, "space_problems"):
        problems = cfg.agent.space_problems(envs.is_discrete, envs.action_dim)
        if problems:
            raise ConfigError(f"{cfg.env}: {problems[0]}")
    try:
        estimator = cfg.estimator.build()
        agent = agent_cls(envs.obs_dim, envs.action_dim, envs.is_discrete, cfg.agent, estimator,
                          device=device, num_envs=envs.num_envs, action_low=low,
                          action_high=high, action_start=envs.action_start,
                          nan_policy=cfg.nan_policy)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if cfg.compile or cfg.cudagraphs:
        if not hasattr(agent, "compile"):
            raise ConfigError(f"compile=true and cudagraphs=true apply to agent=sac; "
                              f"agent={cfg.agent.name} runs eagerly")
        agent.compile(cfg.compile_mode, cudagraphs=cfg.cudagraphs)
    return agent


def _crossed(step: int, n: int, every: int) -> bool:
    """Did the last ``n`` steps, ending at ``step``, pass a multiple of ``every``?"""
    return every > 0 and step // every > (step - n) // every


def _rng_state() -> dict:
    """The global random states of torch (and CUDA), numpy and Python, complete, as tensors
    and plain values (what ``weights_only`` loading accepts)."""
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    version, words, gauss_next = random.getstate()
    return {"torch": torch.get_rng_state(),
            "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
            "python": {"version": version, "state": list(words), "gauss_next": gauss_next},
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state, python_state = state["numpy"], state["python"]
    if isinstance(numpy_state, dict):
        np.random.set_state(("MT19937", numpy_state["keys"].numpy().astype(np.uint32),
                             numpy_state["pos"], numpy_state["has_gauss"],
                             numpy_state["cached_gaussian"]))
        random.setstate((python_state["version"], tuple(python_state["state"]),
                         python_state["gauss_next"]))
    else:  # the first checkpoint layout: numpy keys as a list, Python's state as its repr
        np.random.set_state(("MT19937", np.asarray(numpy_state, dtype=np.uint32),
                             int(state["numpy_pos"]), 0, 0.0))
        random.setstate(ast.literal_eval(python_state))  # literals only: never runs code
    if state.get("cuda") and torch.cuda.is_available():
        # Saved on a machine with more GPUs than this one: restore the ones present.
        for index, cuda_state in enumerate(state["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)


def _named_tensors(agent) -> list[tuple[str, torch.Tensor]]:
    """What an agent learns: the parameters of its modules and its own trainable tensors
    (SAC's log α), by attribute name."""
    named = []
    for attr, value in vars(agent).items():
        if isinstance(value, torch.nn.Module):
            named += [(f"{attr}.{name}", p) for name, p in value.named_parameters()]
        elif isinstance(value, torch.Tensor) and value.requires_grad:
            named.append((attr, value))
    return named


def _first_nonfinite(agent, losses: dict[str, float], check_losses: bool) -> str | None:
    """``"losses/critic=nan"`` or ``"parameter critic.net.0.weight"``: the first non-finite
    loss (when ``check_losses``) or learned tensor; None when all are finite. One host sync."""
    if check_losses:
        for key, value in losses.items():
            if not math.isfinite(value):
                return f"{key}={value}"
    named = _named_tensors(agent)
    if named:
        finite = torch.stack([torch.isfinite(p.detach()).all() for _, p in named]).tolist()
        for (name, _), ok in zip(named, finite):
            if not ok:
                return f"parameter {name}"
    return None


# -- the run directory ----------------------------------------------------------------------
# Keys that must match between a checkpoint's config and the config that resumes it.
RESUME_KEYS = ("env", "seed", "num_envs", "agent.name", "agent.hidden_sizes", "estimator.name")


def _find_run_dir(cfg: TrainConfig) -> tuple[Path, dict | None]:
    """The run directory and, on resume, the checkpoint to continue from. Nothing is created
    yet; a new run never reuses a non-empty directory."""
    if cfg.resume:
        run_dir = Path(cfg.resume)
        if cfg.run_dir and Path(cfg.run_dir).resolve() != run_dir.resolve():
            raise ConfigError(f"resume={cfg.resume} continues in its own directory; "
                              f"drop run_dir={cfg.run_dir}")
        checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.pt")
        saved = OmegaConf.create(checkpoint["config"])
        ours = OmegaConf.structured(cfg)
        for key in RESUME_KEYS:
            if OmegaConf.select(saved, key) != OmegaConf.select(ours, key):
                raise ConfigError(f"cannot resume {run_dir}: it was trained with {key}="
                                  f"{OmegaConf.select(saved, key)}, this config has "
                                  f"{OmegaConf.select(ours, key)}")
        if checkpoint["global_step"] >= cfg.total_steps:
            raise ConfigError(f"{run_dir} already reached step {checkpoint['global_step']} of "
                              f"total_steps={cfg.total_steps}; raise total_steps to continue")
        return run_dir, checkpoint
    run_dir = Path(cfg.run_dir) if cfg.run_dir else default_run_dir(cfg)
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise ConfigError(f"run_dir {run_dir} already exists and is not empty; "
                          f"choose another (it is never overwritten)")
    return run_dir, None


def _make_run_dir(run_dir: Path) -> None:
    """Create the run directory; an unwritable one fails here, before training starts."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"cannot write to run_dir {run_dir}: {err.strerror or err}") from None


def _truncate_metrics(path: Path, global_step: int) -> None:
    """Drop metric records past ``global_step`` (logged after the checkpoint we resume from),
    so the resumed run's curve has no duplicate steps."""
    if not path.exists():
        return
    kept = [r for r in read_metrics(path) if r.get("global_step", 0) <= global_step]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


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


# -- training -------------------------------------------------------------------------------
def train(config, progress=None) -> TrainResult:
    """Train one agent as ``config`` says; return where the run went and its final evaluation.

    ``progress(global_step, info)`` is called after every vector step when given.
    ``config.resume = <run dir>`` continues that run from its ``checkpoints/last.pt``.
    """
    cfg = as_train_config(config)
    device = resolve_device(cfg.device)
    if cfg.cudagraphs and device.type != "cuda":
        raise ConfigError(_CUDAGRAPHS_ON_CPU)
    if cfg.wandb.mode == "online" and wandb_credentials_missing():
        raise ConfigError("wandb.mode=online needs W&B credentials: run `wandb login` (or set "
                          "WANDB_API_KEY), or train with wandb.mode=offline")
    run_dir, checkpoint = _find_run_dir(cfg)
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    keep_freed_memory()
    seed_everything(cfg.seed)
    envs = make_vec_env(cfg.env, cfg.num_envs, cfg.seed, device)
    try:
        agent = build_agent(cfg, envs, device)
        _make_run_dir(run_dir)
        start = {"global_step": 0, "time": 0.0, "wandb_id": None, "last_metrics": None,
                 "best_return": None}
        if checkpoint is not None:
            path = run_dir / "checkpoints" / "last.pt"
            try:
                agent.load_state_dict(checkpoint["agent"])
            except (KeyError, TypeError, ValueError, RuntimeError) as err:
                reason = " ".join(str(err).split())[:200]
                raise CheckpointError(f"{path}: does not fit this run ({reason})") from None
            start.update({k: checkpoint[k] for k in start if k in checkpoint})
            start["obs"] = _restore_envs(cfg, envs, agent, checkpoint)
            try:  # last: nothing after it draws before the loop
                _set_rng_state(checkpoint["rng"])
            except (KeyError, TypeError, ValueError, RuntimeError) as err:
                reason = " ".join(str(err).split())[:200]
                raise CheckpointError(f"{path}: its random-number state is unreadable "
                                      f"({reason})") from None
            _truncate_metrics(run_dir / "metrics.jsonl", start["global_step"])
            for stale in path.parent.glob("*.tmp"):  # left by a crash in the middle of a save
                stale.unlink(missing_ok=True)
        atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.structured(cfg)))
        return _loop(cfg, agent, envs, run_dir, progress, start)
    finally:
        envs.close()


def _restore_envs(cfg: TrainConfig, envs, agent, checkpoint: dict) -> torch.Tensor:
    """The envs exactly as the checkpoint left them (see ``TorchVecEnv.load_state_dict``);
    failing that, new episodes from a seed of their own, with a warning that the resumed run
    will not match an uninterrupted one. Returns the observations to act from."""
    try:
        if checkpoint.get("envs") is None:
            raise EnvStateError("the checkpoint holds no env state")
        return envs.load_state_dict(checkpoint["envs"])
    except (EnvStateError, KeyError, TypeError, AttributeError) as err:
        warnings.warn(f"resume is not exact: {' '.join(str(err).split())}; every env starts "
                      f"a new episode", RuntimeWarning, stacklevel=3)
        if hasattr(agent, "envs_restarted"):
            agent.envs_restarted()
        return envs.reset(seed=cfg.seed + checkpoint["global_step"])


def _open_wandb(cfg: TrainConfig, run_dir: Path, run_id: str | None) -> WandbRun | None:
    """The wandb run of a training run; None when disabled (then no wandb code runs at all)."""
    if cfg.wandb.mode == "disabled":
        return None
    agent, estimator = cfg.agent.name, cfg.estimator.name
    return WandbRun(mode=cfg.wandb.mode, project=cfg.wandb.project, entity=cfg.wandb.entity,
                    group=cfg.env, job_type=f"{agent}-{estimator}",
                    tags=[agent, estimator, cfg.env], config=dataclasses.asdict(cfg),
                    run_dir=run_dir,
                    name=f"{agent}-{estimator}-{run_dir.name}", run_id=run_id)


def _loop(cfg: TrainConfig, agent, envs, run_dir: Path, progress, start: dict) -> TrainResult:
    writer = JsonlWriter(run_dir / "metrics.jsonl")
    wandb_run = None
    clock = time.perf_counter() - start["time"]  # "time" continues across resumes
    global_step, final_eval = start["global_step"], None
    last_metrics = start.get("last_metrics")  # the latest update's, until the next one
    last_return = math.nan
    best_return = start.get("best_return")  # of checkpoints/best.pt
    # nan_policy: the last step at which every value checked finite, and of last.pt.
    clean_step = global_step
    saved_step = global_step or None  # a resumed run starts at its checkpoint's step
    sps_mark = (global_step, time.perf_counter())
    exit_code = 1
    probe = None
    if cfg.diagnostics.every > 0:
        from pathwise.analysis.diagnostics import Diagnostics

        probe = Diagnostics(cfg, agent.device)

    def log(record: dict) -> None:
        record = {"global_step": global_step, "time": time.perf_counter() - clock, **record}
        writer.log(record)
        if wandb_run is not None:
            wandb_run.log(record)

    def ensure_finite(losses: dict[str, float] | None = None) -> None:
        """Stop before a non-finite value reaches an evaluation or a checkpoint: losses
        (nan_policy=stop) and learned tensors (both policies). One host sync, at log,
        evaluation and checkpoint intervals only."""
        nonlocal clean_step
        if losses is None:
            losses = {k: float(v) for k, v in (last_metrics or {}).items()}
        problem = _first_nonfinite(agent, losses, check_losses=cfg.nan_policy == "stop")
        if problem is not None:
            kept = (f"checkpoints/last.pt of step {saved_step} is kept" if saved_step is not None
                    else "no checkpoint was written")
            hint = "; nan_policy=skip skips such updates" if cfg.nan_policy == "stop" else ""
            raise TrainingError(f"non-finite {problem} at step {global_step} (all finite at "
                                f"step {clean_step}); training stopped, {kept}{hint}")
        clean_step = global_step

    def checkpoint() -> None:
        nonlocal saved_step
        ensure_finite()  # never replace a good last.pt with a poisoned state
        save_checkpoint(run_dir, cfg, agent, global_step, time=time.perf_counter() - clock,
                        wandb_id=wandb_run.id if wandb_run is not None else None,
                        best_return=best_return,
                        envs=envs.state_dict(),
                        last_metrics=None if last_metrics is None else
                        {k: v.detach().cpu() for k, v in last_metrics.items()})
        saved_step = global_step

    def run_evaluation() -> EvalResult:
        nonlocal best_return
        result = evaluate(agent.policy, cfg.env, cfg.eval_episodes, seed=eval_seed(cfg.seed))
        log({"eval/return_mean": result.return_mean, "eval/return_std": result.return_std})
        # The policy at its best evaluation so far (every evaluation uses the same episodes,
        # so the returns compare); the first of equal ones is kept.
        if best_return is None or result.return_mean > best_return:
            best_return = result.return_mean
            save_policy(agent.policy, run_dir / "checkpoints" / "best.pt", env_id=cfg.env,
                        agent=cfg.agent.name, estimator=cfg.estimator.name,
                        global_step=global_step, eval_return=result.return_mean)
        return result

    try:
        wandb_run = _open_wandb(cfg, run_dir, start["wandb_id"])
        obs = start.get("obs")  # a resumed run's envs are where its checkpoint left them
        if obs is None:
            obs = envs.reset(seed=cfg.seed + global_step)
        with _StopOnSigint() as stop:
            while global_step < cfg.total_steps and not stop.requested:
                # collect → store → update
                action = agent.act(obs, global_step)
                result = envs.step(action)
                agent.observe(obs, action, result)
                obs = result.obs
                global_step += envs.num_envs
                metrics = agent.train_step(global_step)
                if metrics is not None:
                    last_metrics = metrics
                # log
                for ret, length in zip(result.episode_returns, result.episode_lengths):
                    last_return = ret
                    log({"charts/episodic_return": ret, "charts/episodic_length": length})
                if _crossed(global_step, envs.num_envs, cfg.log_every):
                    now = time.perf_counter()
                    record = {"charts/sps": (global_step - sps_mark[0])
                              / max(now - sps_mark[1], 1e-9)}
                    sps_mark = (global_step, now)
                    # The loop's host syncs: once per log interval (and the same check before
                    # an evaluation or a checkpoint).
                    values = {k: float(v) for k, v in (last_metrics or {}).items()}
                    record.update(values)
                    log(record)
                    ensure_finite(values)
                # measure every estimator's gradient (a random stream of its own: training
                # draws the same numbers with diagnostics on or off)
                if probe is not None and _crossed(global_step, envs.num_envs,
                                                  cfg.diagnostics.every):
                    log(probe.measure(agent, global_step).metrics())
                # evaluate → checkpoint
                if _crossed(global_step, envs.num_envs, cfg.eval_every):
                    ensure_finite()
                    final_eval = run_evaluation()
                if _crossed(global_step, envs.num_envs, cfg.checkpoint_every):
                    checkpoint()
                if progress is not None:
                    progress(global_step, {"episodic_return": last_return})
            interrupted = stop.requested and global_step < cfg.total_steps
        ensure_finite()
        if not interrupted and (final_eval is None
                                or not _crossed(global_step, envs.num_envs, cfg.eval_every)):
            final_eval = run_evaluation()
        checkpoint()
        final_return = final_eval.return_mean if final_eval is not None else None
        save_policy(agent.policy, run_dir / "policy.pt", env_id=cfg.env, agent=cfg.agent.name,
                    estimator=cfg.estimator.name, global_step=global_step,
                    final_return=final_return)
        if wandb_run is not None:
            wandb_run.summary({"interrupted": interrupted, "final_return": final_return})
            if not interrupted:
                wandb_run.log_model(run_dir / "policy.pt", env=cfg.env, agent=cfg.agent.name,
                                    estimator=cfg.estimator.name, seed=cfg.seed,
                                    global_step=global_step, final_return=final_return)
        exit_code = 0
    except TrainingError:
        raise
    except Exception:
        ensure_finite()  # an error caused by a non-finite value (NaN actions…) is named as such
        raise
    finally:
        writer.close()
        if wandb_run is not None:
            wandb_run.finish(exit_code)
    return TrainResult(run_dir, global_step, final_eval, interrupted,
                       wandb_run.dir if wandb_run is not None else None)


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def save_checkpoint(run_dir: Path, cfg: TrainConfig, agent, global_step: int,
                    **extra) -> None:
    """``checkpoints/last.pt``; ``extra`` (plain values: elapsed ``time``, ``wandb_id``) is
    stored beside the state so that a resumed run continues its clock and its wandb run."""
    atomic_save({"format": CHECKPOINT_FORMAT, "version": FORMAT_VERSION,
                 "config": dataclasses.asdict(cfg), "global_step": global_step,
                 "agent": agent.state_dict(), "rng": _rng_state(), **extra},
                run_dir / "checkpoints" / "last.pt")


# What resuming a run reads from its training checkpoint.
CHECKPOINT_KEYS = ("config", "global_step", "agent", "rng")


def load_checkpoint(path) -> dict:
    checkpoint = safe_load(path, CHECKPOINT_FORMAT)
    missing = [key for key in CHECKPOINT_KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint (no {', '.join(missing)})")
    return checkpoint
