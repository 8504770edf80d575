"""The Python API in Stable-Baselines3's shape, on the CLI's code path.

    from pathwise import SAC

    model = SAC("Pendulum-v1", estimator="pathwise", seed=0, learning_starts=300)
    model.learn(20_000, progress_bar=True)
    model.save("sac-pendulum.pt")
    model = SAC.load("sac-pendulum.pt")
    action, _ = model.predict(obs, deterministic=True)

A model is a config composed exactly as ``pathwise train`` composes one (the preset for the
(agent, env) applies, then the keyword arguments, by their config names: ``learning_starts``
is ``agent.learning_starts``, ``num_envs`` the top-level field, ``wandb="disabled"`` is
``wandb.mode``), and a run directory that ``learn`` trains in through ``pathwise.train``; a
second ``learn`` continues the same run. ``SAC("MlpPolicy", "Pendulum-v1")`` works too: the
policy argument of SB3 is accepted, and MLPs are what pathwise builds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from pathwise.errors import ConfigError, UsageError, one_line

POLICY_NAMES = ("MlpPolicy",)


class Model:
    """An agent to train, save, load and query; subclasses set ``agent``."""

    agent = ""

    def __init__(self, *args, estimator: str | None = None, seed: int = 0,
                 run_dir: str | None = None, preset: bool = True, **hyperparameters):
        env = _env_argument(type(self).__name__, args)
        from pathwise.training.compose import compose_train

        overrides = [f"agent={self.agent}", f"env={env}", f"seed={int(seed)}"]
        if estimator is not None:
            overrides.append(f"estimator={estimator}")
        if not preset:
            overrides.append("~preset")
        cfg, self.preset = compose_train(overrides)
        for name, value in hyperparameters.items():
            _set(cfg, name, value)
        if run_dir is not None:
            cfg.run_dir = str(run_dir)
        self._cfg = cfg
        self.run_dir: Path | None = None
        self.num_timesteps = 0
        self._policy = None
        self._checkpoint = None  # loaded by load(): learn() continues from it

    # -- the config ---------------------------------------------------------------------------
    @property
    def config(self):
        """The run's ``TrainConfig`` (validated)."""
        from pathwise.training.config import as_train_config

        return as_train_config(self._cfg)

    @property
    def env(self) -> str:
        return str(self._cfg.env)

    # -- training -------------------------------------------------------------------------------
    def learn(self, total_steps: int, progress_bar: bool = False, callback=None) -> Model:
        """Train for ``total_steps`` more env steps. ``callback(step, info)`` hears every
        step, log interval and evaluation (``pathwise.train``'s progress events); returning
        False stops training (saved, resumable). The first call starts the run directory;
        later calls continue it."""
        from pathwise.cli.progress import Progress
        from pathwise.training.loop import train
        from pathwise.training.run_dir import default_run_dir

        if total_steps <= 0:
            raise ConfigError(f"total_steps must be > 0, got {total_steps}")
        cfg = OmegaConf.create(OmegaConf.to_container(self._cfg))
        cfg.total_steps = self.num_timesteps + int(total_steps)
        if self.run_dir is None:
            tc = self.config
            tc.total_steps = cfg.total_steps
            self.run_dir = Path(cfg.run_dir or default_run_dir(tc))
            cfg.run_dir = str(self.run_dir)
            if self._checkpoint is not None:
                self._continue_from(self._checkpoint, self.run_dir)
                self._checkpoint = None
                cfg.resume = cfg.run_dir
        else:
            cfg.resume = cfg.run_dir = str(self.run_dir)
        what = f"{self.agent}-{cfg.estimator.name} on {cfg.env}"
        with Progress(int(cfg.total_steps), what, enabled=progress_bar) as report:
            def hook(step: int, info: dict):
                report(step, info)
                return callback(step, info) if callback is not None else None
            result = train(cfg, progress=hook)
        self._cfg.run_dir = str(self.run_dir)
        self.num_timesteps = result.global_step
        self.result = result
        self._policy = None  # the trained one is read from the run dir
        return self

    # -- acting ---------------------------------------------------------------------------------
    @property
    def policy(self):
        """The policy (``pathwise.policies.policy.Policy``): the trained one after ``learn``
        or ``load``, a freshly initialised one before."""
        if self._policy is None:
            if self.run_dir is not None and (self.run_dir / "policy.pt").is_file():
                from pathwise.training.checkpoint import load_policy

                self._policy = load_policy(self.run_dir)
            else:
                self._policy = self._build_agent().policy
        return self._policy

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        """Stable-Baselines3's ``predict``: ``(actions, state)`` in the env's own units."""
        return self.policy.predict(observation, state, episode_start, deterministic)

    # -- files ------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """A training checkpoint of the model (config, networks, optimizers, replay buffer,
        RNG states): ``load`` gives back a model that predicts and can go on learning."""
        from pathwise.training.checkpoint import atomic_save, safe_load, save_checkpoint

        path = Path(path)
        last = None if self.run_dir is None else self.run_dir / "checkpoints" / "last.pt"
        if last is not None and last.is_file():
            atomic_save(safe_load(last, "pathwise-checkpoint"), path)
        else:  # never trained: its initial state
            save_checkpoint(path, self.config, self._build_agent(), 0)
        return path

    @classmethod
    def load(cls, path: str | Path, run_dir: str | Path | None = None) -> Model:
        """A model from ``save``'s file, or from a run directory (its checkpoints/last.pt).
        ``learn`` goes on from it in ``run_dir`` (default: a new run directory, made by the
        first ``learn``; never the source's)."""
        from pathwise.training.checkpoint import load_checkpoint, restore_agent
        from pathwise.training.config import as_train_config

        source = Path(path)
        file = source / "checkpoints" / "last.pt" if source.is_dir() else source
        checkpoint = load_checkpoint(file)
        tc = as_train_config(checkpoint["config"])
        if tc.agent.name != cls.agent and cls is not Model:
            raise UsageError(f"{file} holds a {tc.agent.name} agent; load it with "
                             f"{_API_NAMES.get(tc.agent.name, 'Model')}.load")
        model = object.__new__(_API_CLASSES.get(tc.agent.name, cls))
        model.preset = None
        tc.resume = None
        tc.run_dir = None if run_dir is None else str(run_dir)
        model._cfg = OmegaConf.structured(tc)
        model.num_timesteps = int(checkpoint["global_step"])
        model.run_dir = None
        agent = model._build_agent()
        restore_agent(agent, checkpoint, file)
        model._policy = agent.policy
        model._checkpoint = checkpoint if model.num_timesteps > 0 else None
        return model

    def _continue_from(self, checkpoint: dict, run_dir: Path) -> None:
        """Make ``run_dir`` a run that resumes from a loaded checkpoint (a run of its own:
        not the source run's wandb run)."""
        from pathwise.training.checkpoint import atomic_save
        from pathwise.training.run_dir import atomic_write_text

        if run_dir.exists() and any(run_dir.iterdir()):
            raise ConfigError(f"run_dir {run_dir} already exists and is not empty; "
                              f"choose another (it is never overwritten)")
        atomic_save({**checkpoint, "wandb_id": None}, run_dir / "checkpoints" / "last.pt")
        config = OmegaConf.create(OmegaConf.to_container(self._cfg))
        config.run_dir = str(run_dir)
        atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(config))

    def _build_agent(self):
        from pathwise.envs.make import make_vec_env
        from pathwise.training.registry import build_agent

        tc = self.config
        envs = make_vec_env(tc.env, tc.num_envs, tc.seed, "cpu", action_bins=tc.action_bins)
        try:
            return build_agent(tc, envs, "cpu")
        finally:
            envs.close()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.env!r}, estimator={self._cfg.estimator.name!r}, "
                f"seed={self._cfg.seed}, steps={self.num_timesteps}, run_dir={self.run_dir})")


class SAC(Model):
    """Soft Actor-Critic: ``SAC("Pendulum-v1", estimator="pathwise" | "score" | "exact")``."""

    agent = "sac"


class Reinforce(Model):
    """REINFORCE (the score-function baseline): ``Reinforce("CartPole-v1")``."""

    agent = "reinforce"


class APG(Model):
    """Analytic policy gradient through a torch env: ``APG("pathwise/Pendulum-v1")``."""

    agent = "apg"


class SHAC(Model):
    """Short-Horizon Actor-Critic through a torch env: ``SHAC("pathwise/Pendulum-v1")``."""

    agent = "shac"


_API_CLASSES = {"sac": SAC, "reinforce": Reinforce, "apg": APG, "shac": SHAC}
_API_NAMES = {name: cls.__name__ for name, cls in _API_CLASSES.items()}


def _env_argument(name: str, args: tuple) -> str:
    """The env id of ``SAC(env)`` or ``SAC("MlpPolicy", env)``; a Gymnasium env made with
    ``gymnasium.make`` gives its registered id."""
    if len(args) == 2 and args[0] in POLICY_NAMES:
        args = args[1:]
    if len(args) != 1:
        raise UsageError(f"{name}(env, ...) takes an env id or a Gymnasium env (optionally "
                         f"after SB3's policy name, 'MlpPolicy'); got {len(args)} arguments")
    env = args[0]
    if isinstance(env, str):
        return env
    spec = getattr(getattr(env, "unwrapped", env), "spec", None) or getattr(env, "spec", None)
    if spec is None or not getattr(spec, "id", None):
        raise UsageError(f"{name}: a Gymnasium env without a registered id cannot be rebuilt "
                         f"for training and evaluation; register it (gymnasium.register) and "
                         f"pass its id")
    if spec.kwargs and any(spec.kwargs.get(k) != v for k, v in _registered_kwargs(spec.id)):
        raise UsageError(f"{name}: {spec.id} was made with other arguments than its "
                         f"registration ({spec.kwargs}); register that variant under an id")
    return spec.id


def _registered_kwargs(env_id: str):
    import gymnasium as gym

    return gym.spec(env_id).kwargs.items()


def _set(cfg, name: str, value: Any) -> None:
    """Set a hyperparameter by its config name (``lr`` → ``agent.lr`` where unqualified)."""
    from pathwise.training.compose import known_keys, suggest

    keys = set(known_keys())
    key = name.replace("__", ".")
    if key == "wandb":
        key = "wandb.mode"
    if key not in keys and f"agent.{key}" in keys:
        key = f"agent.{key}"
    if key not in keys:
        hint = suggest(key)
        raise ConfigError(f"unknown hyperparameter {name!r}"
                          + (f"; did you mean {hint}?" if hint else ""))
    try:
        OmegaConf.update(cfg, key, value, merge=False)
    except Exception as err:  # omegaconf's validation: a value of the wrong type
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"invalid value for {key}: {one_line(reason)}") from None
