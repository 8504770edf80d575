"""compile=true and cudagraphs=true, and the GPU path's promise of no host sync per step.

The compile tests build with inductor (tens of seconds on a small CPU): they carry the slow
marker. With ``fallback_random`` inductor draws its random numbers exactly as eager does, so a
compiled run can be compared with an eager one step for step; only floating-point rounding
(fused kernels) separates them. CUDA-only tests skip cleanly without a GPU.
"""

from __future__ import annotations

import pytest
import torch

import pathwise.training.loop as runner
from pathwise.agents.buffers import Batch
from pathwise.agents.sac import SAC, SACConfig
from pathwise.cli import main
from pathwise.training.config import ConfigError, EstimatorConfig, TrainConfig, WandbConfig
from pathwise.training.tracking import read_metrics

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def pendulum(run_dir, steps: int = 2000, **extra) -> TrainConfig:
    agent = SACConfig(hidden_sizes=[64, 64], batch_size=64, learning_starts=500, lr=1e-3,
                      alpha_lr=1e-3)
    fields = dict(env="Pendulum-v1", agent=agent, total_steps=steps, device="cpu",
                  run_dir=str(run_dir), eval_every=0, eval_episodes=3, checkpoint_every=0,
                  log_every=250, torch_threads=1, wandb=WandbConfig(mode="disabled"))
    return TrainConfig(**{**fields, **extra})


@pytest.fixture
def eager_random():
    """Inductor draws random numbers with eager's generator, in eager's order."""
    with torch._inductor.config.patch(fallback_random=True):
        yield


def losses(run_dir) -> list[tuple[int, float, float]]:
    return [(r["global_step"], r["losses/critic"], r["losses/actor"])
            for r in read_metrics(run_dir / "metrics.jsonl") if "losses/critic" in r]


# -- configuration: fast -------------------------------------------------------------------
@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_cudagraphs_on_the_cpu_is_a_one_line_config_error(tmp_path, device):
    if device == "auto" and torch.cuda.is_available():
        pytest.skip("device=auto picks CUDA on this machine")
    with pytest.raises(ConfigError) as err:
        runner.train(pendulum(tmp_path / "run", cudagraphs=True, device=device))
    message = str(err.value)
    assert "\n" not in message and "cudagraphs=true needs device=cuda" in message
    assert not (tmp_path / "run").exists()


def test_cudagraphs_on_the_cpu_from_the_cli_exits_2_with_one_line(tmp_path, capsys):
    code = main(["train", "--no-progress", "cudagraphs=true", "device=cpu",
                 "wandb.mode=disabled", f"run_dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "cudagraphs=true needs device=cuda" in err[0]


def test_an_unknown_compile_mode_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="compile_mode must be one of default, "):
        runner.train(pendulum(tmp_path / "run", compile=True, compile_mode="fastest"))


def test_compile_on_an_agent_without_it_is_refused(tmp_path):
    from pathwise.agents.reinforce import ReinforceConfig

    cfg = TrainConfig(env="CartPole-v1", agent=ReinforceConfig(batch_steps=50), total_steps=100,
                      estimator=EstimatorConfig(name="score"), device="cpu", compile=True,
                      run_dir=str(tmp_path / "run"), wandb=WandbConfig(mode="disabled"))
    with pytest.raises(ConfigError, match="apply to agent=sac"):
        runner.train(cfg)


def test_the_agent_refuses_cudagraphs_off_cuda():
    sac = SAC(3, 1, False, SACConfig(hidden_sizes=[8], batch_size=8, learning_starts=8),
              EstimatorConfig().build())
    with pytest.raises(ValueError, match="cudagraphs needs a CUDA device"):
        sac.compile(cudagraphs=True)


# -- compile on the CPU: slow --------------------------------------------------------------
def sac_pair(discrete: bool, estimator: str):
    """The same SAC twice (same initial weights), and a batch for both."""
    torch.manual_seed(0)
    cfg = SACConfig(hidden_sizes=[32, 32], batch_size=32, learning_starts=32)
    make = lambda: SAC(5, 3, discrete, cfg, EstimatorConfig(name=estimator).build())  # noqa: E731
    eager, compiled = make(), make()
    compiled.load_state_dict(eager.state_dict())
    g = torch.Generator().manual_seed(1)
    action = (torch.randint(0, 3, (32,), generator=g) if discrete
              else torch.rand(32, 3, generator=g) * 2 - 1)
    batch = Batch(torch.randn(32, 5, generator=g), action, torch.randn(32, generator=g),
                  torch.randn(32, 5, generator=g), (torch.rand(32, generator=g) < 0.1).float())
    return eager, compiled, batch


@pytest.mark.slow
@pytest.mark.parametrize("discrete,estimator", [(False, "pathwise"), (False, "score"),
                                                (True, "pathwise"), (True, "exact")])
def test_compiled_updates_match_eager_ones(eager_random, discrete, estimator):
    eager, compiled, batch = sac_pair(discrete, estimator)
    compiled.compile()
    for _ in range(3):
        torch.manual_seed(2)
        expected = eager.update(batch)
        torch.manual_seed(2)
        got = compiled.update(batch)
        for key in expected:
            torch.testing.assert_close(got[key], expected[key], rtol=1e-4, atol=1e-5)
    for name, value in eager.state_dict()["policy"].items():
        torch.testing.assert_close(compiled.state_dict()["policy"][name], value, rtol=1e-4,
                                   atol=1e-5)


@pytest.mark.slow
def test_compile_true_trains_like_eager_on_pendulum(tmp_path, eager_random):
    """Same seed, same random numbers: 1,500 updates later the losses and the final
    evaluation still agree to within rounding's slow drift."""
    eager = runner.train(pendulum(tmp_path / "eager"))
    compiled = runner.train(pendulum(tmp_path / "compiled", compile=True))
    got, expected = losses(tmp_path / "compiled"), losses(tmp_path / "eager")
    assert [s for s, _, _ in got] == [s for s, _, _ in expected] and len(got) >= 6
    for (_, critic, actor), (_, critic_e, actor_e) in zip(got, expected):
        assert critic == pytest.approx(critic_e, rel=0.1)
        assert actor == pytest.approx(actor_e, rel=0.05)
    assert compiled.final_eval.return_mean == pytest.approx(eager.final_eval.return_mean,
                                                            rel=0.05)


# -- CUDA ----------------------------------------------------------------------------------
def filled_sac(device: str, **config) -> SAC:
    cfg = SACConfig(hidden_sizes=[64, 64], batch_size=64, learning_starts=64, **config)
    sac = SAC(5, 3, False, cfg, EstimatorConfig().build(), device=device)
    n = 256
    sac.buffer.add(torch.randn(n, 5, device=device), torch.rand(n, 3, device=device) * 2 - 1,
                   torch.randn(n, device=device), torch.randn(n, 5, device=device),
                   torch.zeros(n, dtype=torch.bool, device=device))
    return sac


@pytest.mark.cuda
@needs_cuda
def test_act_observe_and_update_make_no_host_sync_on_cuda():
    from types import SimpleNamespace

    sac = filled_sac("cuda")
    obs = torch.randn(1, 5, device="cuda")
    sac.train_step(1000)  # warm up: lazy optimizer state, kernels
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for step in range(1001, 1011):
            action = sac.act(obs, step)
            result = SimpleNamespace(reward=torch.ones(1, device="cuda"), next_obs=obs,
                                     terminated=torch.zeros(1, dtype=torch.bool, device="cuda"))
            sac.observe(obs, action, result)
            metrics = sac.train_step(step)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert all(v.device.type == "cuda" for k, v in metrics.items()
               if k != "charts/temperature")


@pytest.mark.cuda
@needs_cuda
def test_the_packed_env_step_on_cuda_matches_the_cpu_one():
    from pathwise.envs.make import make_vec_env

    results = []
    for device in ("cpu", "cuda"):
        with make_vec_env("Pendulum-v1", 2, seed=3, device=device) as envs:
            envs.reset()
            steps = [envs.step(torch.full((2, 1), 0.5, device=device)) for _ in range(201)]
            results.append(steps)
    for cpu, gpu in zip(*results):
        for name in ("obs", "next_obs", "reward", "terminated", "truncated"):
            a, b = getattr(cpu, name), getattr(gpu, name)
            assert b.device.type == "cuda" and a.dtype == b.dtype, name
            assert torch.equal(a, b.cpu()), name
        assert cpu.done == gpu.done


@pytest.mark.cuda
@pytest.mark.slow
@needs_cuda
def test_cudagraphs_trains_and_keeps_its_metrics(tmp_path):
    result = runner.train(pendulum(tmp_path / "run", steps=1000, device="cuda",
                                   cudagraphs=True))
    records = losses(tmp_path / "run")
    assert result.global_step == 1000 and len(records) >= 2
    assert all(torch.isfinite(torch.tensor([c, a])).all() for _, c, a in records)
    # Metrics logged at different steps are different numbers, not one replay's memory.
    assert len({c for _, c, _ in records}) == len(records)


@pytest.mark.cuda
@pytest.mark.slow
@needs_cuda
def test_compiled_update_on_cuda_matches_eager(eager_random):
    eager, compiled = filled_sac("cuda"), filled_sac("cuda")
    compiled.load_state_dict(eager.state_dict())
    compiled.compile()
    batch = eager.buffer.sample(64)
    torch.manual_seed(0)
    expected = eager.update(batch)
    torch.manual_seed(0)
    got = compiled.update(batch)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-3, atol=1e-4)
