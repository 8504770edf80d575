"""The Hydra config tree of ``pathwise train`` (YAML files, shipped as package data).

    train.yaml              the primary config: defaults list and run-level settings
    agent/<name>.yaml       sac, reinforce
    estimator/<name>.yaml   pathwise, score, exact
    preset/<agent>/<env>.yaml
                            tuned hyperparameters for one (agent, env), applied automatically
                            when it exists; '/' in an env id becomes '-' in the file name

The schema (types, defaults and one-line help of every field) is the dataclasses of
``pathwise.training.config`` and of each agent; ``pathwise.training.compose`` registers them
with Hydra's ConfigStore. No YAML file repeats a default.
"""
