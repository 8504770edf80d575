"""From command-line overrides to a validated training config, through Hydra.

The YAML tree lives in ``configs/`` (see its ``__init__``); the schema is the dataclasses of
``agents.config``, registered here with Hydra's ConfigStore, so that a misspelt key, a wrong type
or an unknown group option fails while composing. ``compose_train`` adds what Hydra's defaults
list cannot express:

* the preset of the chosen (agent, env), ``configs/preset/<agent>/<env>.yaml``, which depends on
  a plain value (``env``) rather than on a config group;
* REINFORCE's own default estimator (``score``) when the user names no estimator;
* ``resume=<run dir>``: the config is that run's ``config.yaml``, plus the given overrides.

Every failure becomes a ``UsageError`` whose message is one line.
"""

from __future__ import annotations

import difflib
import re
from importlib import resources
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from pathwise.errors import UsageError, one_line
from pathwise.training import registry

CONFIG_MODULE = "pathwise.configs"
CONFIG_NAME = "train"
PRESET_GROUP = "preset"
# Agents whose natural estimator is not the schema's default (pathwise).
DEFAULT_ESTIMATOR = {"reinforce": "score"}
# On resume, the groups stay as the run was started (and so do the values of
# run_dir.RESUME_KEYS, which shape the networks or say what the run is).
FIXED_GROUPS_ON_RESUME = ("agent", "estimator", "preset", "run_dir")


# -- the schema -----------------------------------------------------------------------------
def register_schemas() -> None:
    """Store the dataclass schema under ``schema/`` in Hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    from pathwise.training.config import EstimatorConfig, TrainConfig

    store = ConfigStore.instance()
    # ``agent`` is untyped at the top: the agent group's own schema types it.
    store.store(group="schema", name="train", node=TrainConfig(agent=None))
    store.store(group="schema", name="estimator", node=EstimatorConfig)
    for name in registry.agent_names():
        store.store(group="schema/agent", name=name, node=registry.agent_config(name))


# -- presets --------------------------------------------------------------------------------
def env_file_key(env_id: str) -> str:
    """The file-name form of an env id: '/' becomes '-' (``pathwise/DiscreteBandit-v0`` →
    ``pathwise-DiscreteBandit-v0``), and a ``module:`` prefix, which only imports the module
    that registers the id, is dropped."""
    return env_id.rpartition(":")[2].replace("/", "-")


def _config_root():
    return resources.files(CONFIG_MODULE)


def presets() -> dict[str, list[str]]:
    """``{agent: [env file key, ...]}`` of the presets shipped in ``configs/preset``."""
    root = _config_root() / PRESET_GROUP
    found = {}
    for agent_dir in sorted(root.iterdir(), key=lambda p: p.name):
        if agent_dir.is_dir():
            found[agent_dir.name] = sorted(p.name[:-5] for p in agent_dir.iterdir()
                                           if p.name.endswith(".yaml"))
    return found


def preset_for(agent: str, env_id: str) -> str | None:
    """``"<agent>/<env key>"`` when a preset exists for (agent, env), else None."""
    key = env_file_key(env_id)
    return f"{agent}/{key}" if key in presets().get(agent, []) else None


def group_options(group: str) -> list[str]:
    return sorted(p.name[:-5] for p in (_config_root() / group).iterdir()
                  if p.name.endswith(".yaml"))


# -- composing ------------------------------------------------------------------------------
def parse_overrides(overrides: list[str]):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for text in overrides:
        if "=" not in text and not text.startswith("~"):
            raise UsageError(f"unexpected argument {text!r}: overrides are key=value "
                             f"(e.g. env={text})" if not text.startswith("-") else
                             f"unknown option {text!r} (see pathwise train --help)")
    try:
        return OverridesParser.create().parse_overrides(overrides)
    except Exception as err:  # hydra.errors.OverrideParseException
        raise UsageError(explain(err)) from None


def _compose(overrides: list[str]) -> DictConfig:
    from hydra import compose

    try:
        return compose(config_name=CONFIG_NAME, overrides=overrides)
    except Exception as err:
        raise UsageError(explain(err)) from None


class _Hydra:
    """Hydra initialised on ``configs/`` for the duration of a ``with`` block, unless it
    already is (inside a multirun job)."""

    def __enter__(self):
        from hydra import initialize_config_module
        from hydra.core.global_hydra import GlobalHydra

        register_schemas()
        self._context = None
        if not GlobalHydra.instance().is_initialized():
            self._context = initialize_config_module(CONFIG_MODULE, job_name="train",
                                                     version_base=None)
            self._context.__enter__()
        return self

    def __exit__(self, *exc):
        if self._context is not None:
            self._context.__exit__(*exc)


def compose_train(overrides: list[str]) -> tuple[DictConfig, str | None]:
    """The config that ``pathwise train OVERRIDES`` runs, and the preset it applied (or None).

    Raises ``UsageError`` (one line) for anything Hydra or the schema rejects.
    """
    parsed = parse_overrides(list(overrides))
    chosen = {o.key_or_group for o in parsed}
    with _Hydra():
        cfg = _compose(list(overrides))
        if cfg.get("resume"):
            return _resume_config(cfg.resume, parsed), None
        extra = []
        agent = cfg.agent.name
        if "estimator" not in chosen and agent in DEFAULT_ESTIMATOR:
            extra.append(f"estimator={DEFAULT_ESTIMATOR[agent]}")
        preset = None
        if PRESET_GROUP not in chosen:
            preset = preset_for(agent, cfg.env)
            if preset is not None:
                extra.append(f"{PRESET_GROUP}={preset}")
        else:  # preset=<agent>/<env> chosen by hand, or ~preset: none at all
            override = next(o for o in parsed if o.key_or_group == PRESET_GROUP)
            preset = None if override.is_delete() else str(override.value())
        if extra:
            cfg = _compose(extra + list(overrides))
    return cfg, preset


def _resume_config(run_dir: str, parsed) -> DictConfig:
    """``<run_dir>/config.yaml`` with the user's other overrides applied on top."""
    path = Path(run_dir) / "config.yaml"
    if not Path(run_dir).is_dir():
        raise UsageError(f"resume={run_dir}: no such run directory")
    if not path.is_file():
        raise UsageError(f"resume={run_dir}: not a run directory (no config.yaml)")
    from pathwise.training.run_dir import RESUME_KEYS, recorded

    saved = OmegaConf.load(path)
    for override in parsed:
        key = override.key_or_group
        if key == "resume":
            continue
        if key in FIXED_GROUPS_ON_RESUME + RESUME_KEYS:
            current = recorded(saved, key)
            if OmegaConf.is_config(current) or override.value() != current:
                shown = OmegaConf.select(saved, f"{key}.name") \
                    if OmegaConf.is_config(current) else current
                raise UsageError(f"cannot change {key} when resuming (the run has {key}="
                                 f"{shown}); start a new run instead")
            continue
        try:
            OmegaConf.update(saved, key, override.value(), merge=True)
        except Exception as err:
            raise UsageError(explain(err)) from None
    saved.resume = str(run_dir)
    saved.run_dir = str(run_dir)
    return saved


# -- --help ---------------------------------------------------------------------------------
def field_rows() -> list[tuple[str, list[tuple[str, str, str]]]]:
    """Sections of ``(dotted name, default, help)`` for ``pathwise train --help``."""
    from pathwise.agents.fields import describe
    from pathwise.training.config import (
        DiagnosticsConfig,
        EstimatorConfig,
        TrainConfig,
        WandbConfig,
    )

    top = [row for row in describe(TrainConfig)
           if not row[0].startswith(("agent.", "estimator.", "wandb.", "diagnostics."))]
    sections = [("run", top)]
    for name in registry.agent_names():
        sections.append((f"agent={name}", describe(registry.agent_config(name), "agent.")))
    sections.append(("estimator", describe(EstimatorConfig, "estimator.")))
    sections.append(("wandb", describe(WandbConfig, "wandb.")))
    sections.append(("diagnostics", describe(DiagnosticsConfig, "diagnostics.")))
    return sections


def known_keys() -> list[str]:
    return [name for _, rows in field_rows() for name, _, _ in rows]


def suggest(name: str) -> str | None:
    """The valid key a misspelt or unqualified one most likely means: ``lr`` → ``agent.lr``
    (a field's own name, the habit from SB3 and CleanRL), ``agent.lrr`` → ``agent.lr``."""
    keys = known_keys()
    leaves = {}
    for key in sorted(keys, key=len):  # the shortest key of each leaf name: agent.* first
        leaves.setdefault(key.rpartition(".")[2], key)
    if name in leaves:
        return leaves[name]
    close = difflib.get_close_matches(name, keys, n=1, cutoff=0.6) or [
        leaves[leaf] for leaf in difflib.get_close_matches(name, list(leaves), n=1, cutoff=0.6)]
    return close[0] if close else None


# -- errors ---------------------------------------------------------------------------------
_OPTIONS = re.compile(r"Available options in '[^']+':((?:\s+\S+)+?)\s*(?:Config search path|$)")
_CONVERTED = re.compile(r"Value '([^']*)' of type '\w+' could not be converted to (\w+)")
# Hydra launchers (and our configs built on them, configs/hydra/launcher/) → the extra that
# installs their plugin.
LAUNCHER_EXTRAS = {"submitit_slurm": "slurm", "submitit_local": "slurm", "slurm": "slurm",
                   "ray": "ray", "ray_aws": "ray", "ray_cluster": "ray"}
_PARSE_ERRORS = ("Error parsing override", "no viable alternative", "mismatched input",
                 "extraneous input", "token recognition error")


def _first_line(err: BaseException | None) -> str:
    text = str(err).strip() if err is not None else ""
    return text.splitlines()[0] if text else ""


def explain(err: BaseException) -> str:
    """One line for a Hydra or OmegaConf error raised while parsing or composing overrides."""
    text = str(err)
    cause = err.__cause__ or err.__context__
    key = getattr(cause, "full_key", None) or getattr(err, "full_key", None)
    reason = _first_line(cause) or _first_line(err)

    launcher = re.search(r"Could not (?:find|load) 'hydra/launcher/(\w+)'", text)
    if launcher and launcher.group(1) in LAUNCHER_EXTRAS:  # a launcher plugin not installed
        chosen = re.search(r"In 'hydra/launcher/(\w+)'", text) or launcher
        extra = LAUNCHER_EXTRAS[launcher.group(1)]
        return (f"hydra/launcher={chosen.group(1)} needs the [{extra}] extra: "
                f"pip install \"pathwise-rl[{extra}]\"")

    missing = re.search(r"Could not find '([^']+)'", text)
    if missing:  # an unknown group option: agent=ppo, estimator=magic, preset=sac/Nowhere
        group, _, option = missing.group(1).rpartition("/")
        if group.startswith("schema"):
            return f"agent {option!r} is not available in this installation"
        if group.startswith(PRESET_GROUP):
            known = [f"{a}/{e}" for a, envs in presets().items() for e in envs]
            name = f"{group.partition('/')[2]}/{option}"
            return f"no preset {name!r}; available: {', '.join(known) or 'none'}"
        options = _OPTIONS.search(text)
        valid = options.group(1).split() if options else group_options(group)
        return f"unknown {group} {option!r}; valid: {', '.join(valid)}"

    unknown = re.search(r"Could not override '([^']+)'", text)
    if unknown or re.search(r"Key '[^']+' (not in|is not in struct)", reason):
        name = key or (unknown.group(1) if unknown else "?")
        return f"unknown key {name!r}" + (f"; did you mean {hint}?" if (hint := suggest(name))
                                          else "; see pathwise train --help for the valid keys")

    if any(marker in text for marker in _PARSE_ERRORS):
        lines = [line for line in text.splitlines() if line.strip()]
        what = re.search(r"Error parsing override '([^']*)'", text)
        detail = lines[1] if what and len(lines) > 1 else lines[0]
        where = f"cannot parse override {what.group(1)!r}" if what else "cannot parse overrides"
        return (f"{where}: {detail} (Hydra's syntax: key=value, lists as key=[a,b], quote "
                f"values with spaces)")

    if key:  # a value of the wrong type for the schema
        if "is not a ListConfig" in reason:
            return f"invalid value for {key}: expected a list such as [256,256]"
        converted = _CONVERTED.search(reason)
        if converted:
            value, kind = converted.group(1), converted.group(2).lower()
            article = "an" if kind[0] in "aeiou" else "a"
            return f"invalid value for {key}: {value!r} is not {article} {kind}"
        return f"invalid value for {key}: {one_line(reason)}"
    return one_line(f"{_first_line(err) or type(err).__name__}"
                    + (f": {reason}" if cause is not None and reason not in text else ""))
