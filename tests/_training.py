"""Short SAC runs through the shared loop, watched: the agent the loop built and its policy's
parameters before the first update (tests/training/test_loop.py, test_factorized_training.py)."""

import pathwise.training.loop as runner
from pathwise.agents.sac import SACConfig
from pathwise.training.config import EstimatorConfig, TrainConfig, WandbConfig


def small_sac(**overrides) -> SACConfig:
    values = dict(hidden_sizes=[32, 32], batch_size=32, learning_starts=64, buffer_size=10_000)
    values.update(overrides)
    return SACConfig(**values)


def run(tmp_path, monkeypatch, env, estimator, total_steps, agent=None, **kwargs):
    """Train; return (result, agent, its initial policy parameters)."""
    captured = {}
    build = runner.build_agent

    def spy(*args, **kw):
        built = build(*args, **kw)
        captured["agent"] = built
        captured["init"] = {n: p.detach().clone() for n, p in built.policy.named_parameters()}
        return built

    monkeypatch.setattr(runner, "build_agent", spy)
    options = dict(eval_every=0, eval_episodes=3, log_every=50, device="cpu") | kwargs
    cfg = TrainConfig(env=env, agent=agent or small_sac(), total_steps=total_steps,
                      estimator=EstimatorConfig(name=estimator), run_dir=str(tmp_path / "run"),
                      wandb=WandbConfig(mode="disabled"), **options)
    result = runner.train(cfg)
    return result, captured["agent"], captured["init"]
