"""The agents ``pathwise train agent=NAME`` knows, and building one for a set of envs.

One registry: the CLI's help, Hydra's schema, config validation, checkpoints and the Python API
all read it. Agent modules are imported on first use (they import torch).
"""

from __future__ import annotations

import importlib

from pathwise.errors import ConfigError

# name -> (module, agent class, config dataclass)
AGENTS = {
    "sac": ("pathwise.agents.sac", "SAC", "SACConfig"),
    "reinforce": ("pathwise.agents.reinforce", "Reinforce", "ReinforceConfig"),
    "apg": ("pathwise.agents.apg", "APG", "APGConfig"),
    "shac": ("pathwise.agents.shac", "SHAC", "SHACConfig"),
}


def agent_names() -> list[str]:
    return list(AGENTS)


def _lookup(name: str, index: int):
    if name not in AGENTS:
        raise ConfigError(f"unknown agent {name!r}; valid: {', '.join(AGENTS)}")
    module = importlib.import_module(AGENTS[name][0])
    return getattr(module, AGENTS[name][index])


def agent_class(name: str) -> type:
    return _lookup(name, 1)


def agent_config(name: str) -> type:
    """The config dataclass of agent ``name`` (its fields are ``agent.*``)."""
    return _lookup(name, 2)


def build_agent(cfg, envs, device):
    """The agent ``cfg`` describes, for ``envs`` (a vector env of ``pathwise.envs``), on
    ``device``; compiled when ``cfg.compile`` or ``cfg.cudagraphs`` asks. Settings that do not
    fit the env's action space raise ``ConfigError``."""
    nvec = getattr(envs, "action_nvec", None)
    # Box bounds: of a Box action space, also when action_bins cuts it (the saved policy acts
    # in the Box); None for Discrete and MultiDiscrete.
    low = None if envs.action_low is None else [float(x) for x in envs.action_low]
    high = None if envs.action_high is None else [float(x) for x in envs.action_high]
    factorized = {}
    if nvec is not None:  # MultiDiscrete, MultiBinary, action_bins
        if not getattr(agent_class(cfg.agent.name), "factorized_actions", False):
            what = f"action_bins={envs.action_bins}" if envs.action_bins else \
                f"{type(envs.single_action_space).__name__} actions"
            raise ConfigError(f"{cfg.env}: agent={cfg.agent.name} does not support {what} "
                              f"(k sub-actions); use agent=sac")
        factorized = {"action_nvec": list(nvec), "action_bins": envs.action_bins}
    if hasattr(cfg.agent, "space_problems"):
        problems = cfg.agent.space_problems(envs.is_discrete, envs.action_dim,
                                            **({"nvec": list(nvec)} if nvec else {}))
        if problems:
            raise ConfigError(f"{cfg.env}: {problems[0]}")
    if hasattr(cfg.agent, "run_problems"):  # envs or settings this agent cannot train with
        problems = cfg.agent.run_problems(cfg, envs)
        if problems:
            raise ConfigError(problems[0])
    try:
        estimator = cfg.estimator.build()
        agent = agent_class(cfg.agent.name)(
            envs.obs_dim, envs.action_dim, envs.is_discrete, cfg.agent, estimator,
            device=device, num_envs=envs.num_envs, action_low=low, action_high=high,
            action_start=envs.action_start, nan_policy=cfg.nan_policy, **factorized)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if cfg.compile or cfg.cudagraphs:
        if not hasattr(agent, "compile"):
            raise ConfigError(f"compile=true and cudagraphs=true apply to agent=sac; "
                              f"agent={cfg.agent.name} runs eagerly")
        agent.compile(cfg.compile_mode, cudagraphs=cfg.cudagraphs)
    return agent
