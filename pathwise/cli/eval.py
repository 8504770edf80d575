"""``pathwise eval``: run a saved policy for N episodes and record what it measured."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pathwise.cli.common import PROG, Parser, console, positive_int
from pathwise.errors import DependencyError, UsageError


def eval_parser() -> Parser:
    p = Parser(prog=f"{PROG} eval", description=(
        "Run a saved policy for N episodes (deterministic actions unless --stochastic) and "
        "report the mean return. Each evaluation is appended to evals.jsonl in the run "
        "directory (beside the policy file outside one), with what was evaluated: policy "
        "file and its training step, env, mode, seed, episodes and returns."))
    p.add_argument("target", metavar="RUN_DIR|POLICY_FILE",
                   help="a run directory (its policy.pt) or a policy file, e.g. "
                        "RUN_DIR/checkpoints/best.pt (the policy at its best evaluation)")
    p.add_argument("--episodes", type=positive_int, default=10, metavar="N",
                   help="episodes to run (default 10)")
    p.add_argument("--stochastic", action="store_true",
                   help="sample actions instead of taking the policy's mode")
    p.add_argument("--seed", type=int, default=None, metavar="S",
                   help="seed the episodes' starts derive from (default: the training run's "
                        "seed, which reproduces its own evaluations; 0 outside a run dir)")
    p.add_argument("--env", metavar="ID", help="another env id with the same spaces "
                                                "(default: the one the run evaluated on)")
    p.add_argument("--video", metavar="DIR", help="record every episode as mp4 into DIR "
                                                   "(Gymnasium RecordVideo; needs moviepy)")
    p.add_argument("--json", action="store_true", help="print the evaluation's record alone")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    p.add_argument("--wandb", choices=("offline", "online"), metavar="MODE",
                   help="also log a job_type=eval wandb run (offline | online) in the run's "
                        "project and env group; default: no wandb run")
    return p


def resolve_target(target: str) -> tuple[Path, Path | None]:
    """``(policy file, run dir or None)`` of an eval target."""
    from pathwise.training.run_dir import lock_holder

    path = Path(target)
    if path.is_dir():
        policy = path / "policy.pt"
        holder = lock_holder(path)
        training = f"{path} is still training (pid {holder})" if holder else None
        if not policy.is_file():
            if training:
                raise UsageError(f"{training}: its policy.pt is written when it ends; "
                                 f"evaluate {path / 'checkpoints' / 'best.pt'} meanwhile")
            hint = (f"; the run was not finished: {PROG} train resume={path}"
                    if (path / "checkpoints" / "last.pt").is_file() else "")
            raise UsageError(f"{path}: no policy.pt in this directory{hint}")
        if training:
            print(f"{PROG} eval: note: {training}; evaluating the policy.pt it saved earlier",
                  file=sys.stderr)
        return policy, path
    if path.is_file():
        # policy.pt sits in its run dir; checkpoints/best.pt one level down.
        for run_dir in (path.parent, path.parent.parent):
            if (run_dir / "config.yaml").is_file():
                return path, run_dir
        return path, None
    raise UsageError(f"{path}: no such run directory or policy file")


def make_eval_env(env_id: str, video: str | None, name: str):
    """The env to evaluate in: None (``evaluate`` makes its own) unless recording video."""
    if not video:
        return None
    import importlib.util

    import gymnasium as gym
    from gymnasium.wrappers import RecordVideo

    from pathwise.envs.make import make_env

    needs = "--video needs moviepy, which Gymnasium's RecordVideo encodes mp4 with: " \
            'pip install -e ".[video]" (the README\'s install, with the video extra)'
    if importlib.util.find_spec("moviepy") is None:  # before making an env that warns
        raise DependencyError(needs)
    env = make_env(env_id, render_mode="rgb_array")
    try:
        return RecordVideo(env, video_folder=video, episode_trigger=lambda _: True,
                           name_prefix=name, disable_logger=True)
    except gym.error.DependencyNotInstalled as err:  # moviepy found but not importable
        env.close()
        raise DependencyError(f"{needs} ({err})") from None
    except BaseException:
        env.close()
        raise


def main(args: list[str]) -> int:
    opts = eval_parser().parse_args(args)
    policy_file, run_dir = resolve_target(opts.target)
    from pathwise.envs.make import make_env
    from pathwise.training.checkpoint import load_policy
    from pathwise.training.evaluation import append_record, eval_record, evaluate, log_to_wandb
    from pathwise.training.runtime import resolve_device

    device = resolve_device(opts.device, option="--device ")
    policy = load_policy(policy_file, device=device)
    meta = policy.metadata
    env_id = opts.env or meta.get("eval_env_id") or meta.get("env_id")
    if not env_id:
        raise UsageError(f"{policy_file} does not say which env it was trained on; pass --env ID")
    train_cfg = None
    if run_dir is not None:
        from omegaconf import OmegaConf

        train_cfg = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"))
    if opts.seed is None:  # reproduce the run's own evaluation episodes
        opts.seed = int(train_cfg["seed"]) if train_cfg is not None else 0
    name = f"eval-{(run_dir or policy_file.parent).name}"
    env = make_eval_env(env_id, opts.video, name)
    try:
        probe = env if env is not None else make_env(env_id)
        try:
            problem = policy.mismatch(probe.observation_space, probe.action_space)
        finally:
            if probe is not env:
                probe.close()
        if problem is not None:
            raise UsageError(f"{policy_file} does not fit {env_id}: {problem}")
        result = evaluate(policy, env_id, opts.episodes, seed=opts.seed,
                          deterministic=not opts.stochastic, env=env)
    finally:
        if env is not None:
            env.close()
    record = eval_record(result, policy_file=policy_file, policy_step=meta.get("global_step"),
                         env=env_id, deterministic=not opts.stochastic, seed=opts.seed,
                         device=str(device))
    written = append_record(run_dir or policy_file.parent, record)
    wandb_dir = None
    if opts.wandb:
        videos = sorted(Path(opts.video).glob(f"{name}*.mp4")) if opts.video else []
        wandb_dir = log_to_wandb(record, mode=opts.wandb,
                                 wandb_cfg=(train_cfg or {}).get("wandb", {}),
                                 run_dir=run_dir or policy_file.parent, name=name,
                                 agent=meta.get("agent", "?"),
                                 estimator=meta.get("estimator", "?"),
                                 train_config=train_cfg, videos=videos)
    if opts.json:
        print(json.dumps(record))
        return 0
    print_eval(record, opts, written, wandb_dir)
    return 0


def print_eval(record: dict, opts, written: Path, wandb_dir) -> None:
    from rich import box
    from rich.table import Table

    out = console()
    step = record["policy_step"]
    out.print(f"[bold]{record['policy']}[/bold]" + (f" (step {step:,})" if step else "")
              + f" on {record['env']}", highlight=False)
    table = Table(box=box.SIMPLE)
    table.add_column("episode", justify="right")
    table.add_column("return", justify="right")
    table.add_column("length", justify="right")
    for i, (ret, length) in enumerate(zip(record["returns"], record["lengths"])):
        table.add_row(str(i), f"{ret:.2f}", str(length))
    out.print(table)
    mode = "deterministic" if record["deterministic"] else "stochastic"
    out.print(f"return {record['return_mean']:.2f} ± {record['return_std']:.2f} (mean ± std "
              f"over {record['episodes']} {mode} episodes, seed {record['seed']}); mean length "
              f"{record['length_mean']:.1f}", highlight=False)
    out.print(f"recorded in {written}", highlight=False)
    if opts.video:
        out.print(f"videos in {opts.video}", highlight=False)
    if wandb_dir is not None:
        out.print(f"wandb: {wandb_dir}", highlight=False)
