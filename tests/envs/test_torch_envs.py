"""The torch envs' contract: registration and make_vec kwargs, the one-env gym.make, tensors in
and out, SAME_STEP autoreset, seeding, state access, state_dict, and the physics of the two
tasks that have no Gymnasium twin."""

import importlib.util
import io
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from pathwise.envs import (
    TORCH_ENV_IDS,
    TORCH_ENVS,
    CartPole,
    DoublePendulum,
    Pendulum,
    PointMass,
    SingleEnv,
    TorchEnv,
    make_vec_env,
)
from pathwise.envs.physics import rk4, two_link_derivatives

torch.set_num_threads(1)

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, cuda])]


def sample_actions(env: TorchEnv, seed: int = 0) -> torch.Tensor:
    env.action_space.seed(seed)
    return torch.as_tensor(env.action_space.sample(), device=env.device)


def through_a_file(state: dict) -> dict:
    """The state as a checkpoint gives it back: saved, then loaded with weights_only."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


# ---- registration and construction ---------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("env_id", TORCH_ENV_IDS)
def test_make_vec_builds_a_torch_vector_env(env_id, device):
    env = gym.make_vec(env_id, num_envs=5, device=device)
    assert isinstance(env, TORCH_ENVS[env_id]) and env.num_envs == 5
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert env.max_episode_steps == gym.spec(env_id).max_episode_steps
    obs_dim = env.single_observation_space.shape[0]
    assert env.observation_space.shape == (5, obs_dim)
    assert env.action_space.shape == (5, *env.single_action_space.shape)

    obs, info = env.reset(seed=0)
    assert info == {}
    assert obs.shape == (5, obs_dim) and obs.dtype == torch.float32
    assert obs.device.type == device
    assert env.observation_space.contains(obs.cpu().numpy())
    assert env.state.shape == (5, env.state_dim) and env.elapsed_steps.tolist() == [0] * 5

    for _ in range(3):  # actions straight from the (numpy) action space are accepted
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert obs.shape == (5, obs_dim) and obs.device.type == device
    assert reward.shape == (5,) and reward.dtype == torch.float32
    assert terminated.dtype == truncated.dtype == torch.bool
    assert terminated.shape == truncated.shape == (5,)
    assert set(info) == {"final_obs", "final_state", "_final_obs"}
    assert info["final_obs"].shape == obs.shape
    assert info["final_state"].shape == env.state.shape
    assert env.observation_space.contains(info["final_obs"].cpu().numpy())
    env.close()


def test_make_vec_passes_dtype_time_limit_and_task_kwargs():
    env = gym.make_vec("pathwise/Pendulum-v1", num_envs=2, dtype="float64",
                       max_episode_steps=7, g=9.81)
    assert env.dtype == torch.float64 and env.max_episode_steps == 7 and env.g == 9.81
    assert env.single_observation_space.dtype == np.float64
    obs, _ = env.reset(seed=0)
    assert obs.dtype == torch.float64
    with pytest.raises(TypeError, match="no_such_kwarg"):
        gym.make_vec("pathwise/Pendulum-v1", num_envs=2, no_such_kwarg=1)
    with pytest.raises(ValueError, match="dtype must be one of"):
        gym.make_vec("pathwise/Pendulum-v1", num_envs=2, dtype="float16")
    with pytest.raises(ValueError, match="num_envs must be a positive integer"):
        Pendulum(0)


def test_make_vec_sync_mode_vectorizes_the_single_env():
    env = gym.make_vec("pathwise/CartPole-v1", num_envs=3, vectorization_mode="sync")
    assert isinstance(env, SyncVectorEnv)
    obs, _ = env.reset(seed=0)
    assert isinstance(obs, np.ndarray) and obs.shape == (3, 4) and obs.dtype == np.float32
    obs, reward, *_ = env.step(np.array([0, 1, 1]))
    assert reward.tolist() == [1.0, 1.0, 1.0]


# ---- gym.make: one env on numpy ------------------------------------------------------------------


# The checker's advice (a [-1, 1] action box, finite observation bounds) is Gymnasium's own
# tasks' design, kept on purpose.
@pytest.mark.filterwarnings("ignore:.*(symmetric and normalized|infinity):UserWarning")
@pytest.mark.parametrize("env_id", TORCH_ENV_IDS)
def test_gym_make_gives_one_numpy_env_that_starts_like_the_batch(env_id):
    env = gym.make(env_id)
    assert isinstance(env.unwrapped, SingleEnv)
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=3)
    batch = gym.make_vec(env_id, num_envs=1)
    batch_obs, _ = batch.reset(seed=3)
    assert obs.dtype == np.float32 and np.array_equal(obs, batch_obs[0].numpy())
    state = env.unwrapped.state
    assert state.dtype == np.float64 and state.shape == (batch.state_dim,)

    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert isinstance(obs, np.ndarray) and env.observation_space.contains(obs)
    assert type(reward) is float and type(terminated) is bool and truncated is False


def test_gym_make_single_env_is_truncated_by_gymnasiums_time_limit():
    env = gym.make("pathwise/Pendulum-v1")
    env.reset(seed=0)
    truncated_at = [t for t in range(1, 201) if env.step(np.zeros(1, np.float32))[3]]
    assert truncated_at == [200]
    env.unwrapped.state = np.array([0.5, -1.0])
    assert np.array_equal(env.unwrapped.state, [0.5, -1.0])


@pytest.mark.parametrize("env_id", [i for i in TORCH_ENV_IDS if TORCH_ENVS[i].__module__
                                    == "pathwise.envs.classic"])
def test_single_env_renders_through_its_gymnasium_twin(env_id):
    """The frame is the one Gymnasium's env draws from the same state."""
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    env.step(env.action_space.sample())
    twin = gym.make(TORCH_ENVS[env_id].gymnasium_id, render_mode="rgb_array")
    twin.reset(seed=0)
    twin.unwrapped.state = env.unwrapped.state
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.std() > 0
    assert np.array_equal(frame, twin.render())
    env.close()
    twin.close()


def test_tasks_without_a_gymnasium_twin_do_not_render():
    with pytest.raises(ValueError, match="cannot render"):
        gym.make("pathwise/PointMass-v0", render_mode="rgb_array")


def test_the_numpy_adapter_drives_and_restores_the_single_envs():
    """`make_vec_env` (Gymnasium's SyncVectorEnv under `TorchVecEnv`) runs a pathwise id and
    restores it by replay: the single env draws all its randomness from its np_random."""
    with make_vec_env("pathwise/CartPole-v1", num_envs=2, seed=3, native=False) as original, \
            make_vec_env("pathwise/CartPole-v1", num_envs=2, seed=9, native=False) as restored:
        original.reset()
        ended = 0
        for _ in range(40):  # past an episode end: later episodes start from unseeded resets
            last = original.step(original.random_actions())
            ended += len(last.episode_returns)
        assert ended > 0
        obs = restored.load_state_dict(through_a_file(original.state_dict()))
        assert torch.equal(obs, last.obs)
        for _ in range(20):
            a, b = original.step(original.random_actions()), restored.step(
                restored.random_actions())
            assert torch.equal(a.obs, b.obs) and torch.equal(a.terminated, b.terminated)


# ---- actions and state ---------------------------------------------------------------------------


def test_actions_are_checked_for_shape():
    env = Pendulum(4)
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(torch.zeros(4, 1))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"actions must have shape \(4, 1\)"):
        env.step(torch.zeros(4))
    discrete = CartPole(3)
    discrete.reset(seed=0)
    with pytest.raises(ValueError, match=r"Discrete actions must have shape \(3,\)"):
        discrete.step(torch.zeros(3, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"one-hot weights of shape \(3, 2\)"):
        discrete.step(torch.zeros(3, 3))


def test_discrete_index_and_one_hot_actions_step_alike():
    a, b = CartPole(4, dtype=torch.float64), CartPole(4, dtype=torch.float64)
    a.reset(seed=0)
    b.reset(seed=0)
    index = torch.tensor([0, 1, 1, 0])
    one_hot = torch.nn.functional.one_hot(index, 2).double()
    assert torch.equal(a.step(index)[0], b.step(one_hot)[0])
    assert torch.equal(a.step(index.numpy())[0], b.step(one_hot)[0])  # numpy ints too


def test_state_reads_and_assigns_in_the_envs_dtype_and_shape():
    env = Pendulum(2, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="call reset"):
        _ = env.state
    env.reset(seed=0)
    env.state = [[0.1, 0.2], [0.3, 0.4]]
    assert env.state.dtype == torch.float64 and env.state.tolist() == [[0.1, 0.2], [0.3, 0.4]]
    with pytest.raises(ValueError, match=r"state must have shape \(2, 2\)"):
        env.state = torch.zeros(3, 2)
    env.step(torch.zeros(2, 1))
    env.state = torch.zeros(2, 2)  # assigning a state leaves the step counters alone
    assert env.elapsed_steps.tolist() == [1, 1]


# ---- SAME_STEP autoreset -------------------------------------------------------------------------


def test_terminated_rows_reset_in_the_same_step_and_keep_their_final_obs():
    env = CartPole(4, dtype=torch.float64)
    env.reset(seed=0)
    env.step(torch.zeros(4, dtype=torch.long))
    # Rows 0 and 1 are about to cross x = ±2.4; rows 2 and 3 are near upright.
    start = torch.tensor([[2.399, 1.0, 0.0, 0.0], [-2.399, -1.0, 0.0, 0.0],
                          [0.0, 0.0, 0.01, 0.0], [0.1, 0.0, -0.01, 0.0]], dtype=torch.float64)
    env.state = start
    obs, reward, terminated, truncated, info = env.step(torch.tensor([1, 0, 1, 0]))
    done = torch.tensor([True, True, False, False])
    assert torch.equal(terminated, done) and not truncated.any()
    assert torch.equal(info["_final_obs"], done)
    assert reward.tolist() == [1.0, 1.0, 1.0, 1.0]  # Gymnasium rewards the falling step too
    # The ended episodes' true ends: past the threshold, one Euler step from `start`.
    assert torch.allclose(info["final_obs"][:2, 0], start[:2, 0] + 0.02 * start[:2, 1])
    assert torch.equal(info["final_obs"], info["final_state"])  # CartPole observes its state
    # Their rows are fresh episodes: a reset draw in the obs, the state and the counters.
    assert obs[:2].abs().max() <= 0.05 and torch.equal(env.state[:2], obs[:2])
    assert env.elapsed_steps.tolist() == [0, 0, 2, 2]
    # The other rows go on: obs is the final obs.
    assert torch.equal(obs[2:], info["final_obs"][2:])


def test_time_limit_truncates_and_resets_every_row():
    env = Pendulum(3, max_episode_steps=2)
    env.reset(seed=0)
    _, _, _, truncated, _ = env.step(torch.zeros(3, 1))
    assert not truncated.any() and env.elapsed_steps.tolist() == [1, 1, 1]
    obs, _, terminated, truncated, info = env.step(torch.zeros(3, 1))
    assert truncated.all() and not terminated.any() and info["_final_obs"].all()
    assert env.elapsed_steps.tolist() == [0, 0, 0]
    assert not torch.isclose(obs, info["final_obs"]).all(dim=1).any()
    assert torch.allclose(obs, env.observe(env.state))


def test_reset_mask_resets_only_its_rows():
    env = Pendulum(4)
    env.reset(seed=0)
    env.step(torch.zeros(4, 1))
    before = env.state.clone()
    env.reset(options={"reset_mask": torch.tensor([True, False, True, False])})
    assert torch.equal(env.state[[1, 3]], before[[1, 3]])
    assert not torch.isclose(env.state[[0, 2]], before[[0, 2]]).any()
    assert env.elapsed_steps.tolist() == [0, 1, 0, 1]
    with pytest.raises(ValueError, match="reset_mask"):
        env.reset(options={"reset_mask": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"x_int": 1.0})


# ---- seeding -------------------------------------------------------------------------------------


def rollout(env: TorchEnv, seed: int | None, steps: int = 12) -> torch.Tensor:
    """Reset states and every autoreset draw of a short-limit rollout, stacked."""
    obs, _ = env.reset(seed=seed)
    seen = [obs]
    for t in range(steps):
        obs, *_ = env.step(sample_actions(env, seed=t))
        seen.append(obs)
    return torch.stack(seen)


@pytest.mark.parametrize("env_id", TORCH_ENV_IDS)
def test_a_seed_reproduces_resets_and_autoresets(env_id):
    make = lambda: gym.make_vec(env_id, num_envs=8, max_episode_steps=4)  # noqa: E731
    first, again, other = rollout(make(), 7), rollout(make(), 7), rollout(make(), 8)
    assert torch.equal(first, again)
    assert not torch.isclose(first[0], other[0]).all(dim=1).any()
    unseeded = rollout(make(), None)
    assert not torch.isclose(first[0], unseeded[0]).all(dim=1).any()


def test_neighbouring_seeds_draw_unrelated_streams():
    """Seeds s and s+1 must not share rows (the `seed + i` pitfall: run s's env 1 replaying run
    s+1's env 0) nor be correlated."""
    n = 4096
    a, b = DoublePendulum(n), DoublePendulum(n)
    a.reset(seed=10)
    b.reset(seed=11)
    x, y = a.state[:, 0], b.state[:, 0]
    for shift in range(3):
        assert not torch.isclose(x[shift:], y[: n - shift]).any()
        assert not torch.isclose(y[shift:], x[: n - shift]).any()
    correlation = torch.corrcoef(torch.stack((x, y)))[0, 1]
    assert abs(correlation) < 5 / math.sqrt(n)  # 5 standard errors of an independent pair


def test_an_unseeded_reset_continues_the_stream():
    env = Pendulum(16)
    env.reset(seed=0)
    first = env.state.clone()
    env.reset()
    assert not torch.isclose(env.state, first).all(dim=1).any()
    env.reset(seed=0)
    assert torch.equal(env.state, first)


# ---- state_dict ----------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", TORCH_ENV_IDS)
def test_state_dict_resumes_exactly(env_id):
    original = gym.make_vec(env_id, num_envs=6, max_episode_steps=5)
    original.reset(seed=1)
    for t in range(7):  # past an autoreset: the generator has moved on
        original.step(sample_actions(original, seed=t))
    saved = through_a_file(original.state_dict())
    assert saved["elapsed_steps"].tolist() == [2] * 6

    restored = gym.make_vec(env_id, num_envs=6, max_episode_steps=5)
    restored.reset(seed=99)
    obs = restored.load_state_dict(saved)
    assert torch.equal(obs, original.observe(original.state))
    for t in range(8):
        actions = sample_actions(original, seed=100 + t)
        a, b = original.step(actions), restored.step(actions)
        for x, y in zip(a[:4], b[:4]):
            assert torch.equal(x, y)
        assert torch.equal(a[4]["final_obs"], b[4]["final_obs"])


def test_state_dict_refuses_another_task_or_batch():
    env = Pendulum(3)
    with pytest.raises(RuntimeError, match="call reset"):
        env.state_dict()
    env.reset(seed=0)
    saved = env.state_dict()
    with pytest.raises(ValueError, match="env='Pendulum'.*env='PointMass'"):
        PointMass(3).load_state_dict(saved)
    with pytest.raises(ValueError, match="num_envs=3.*num_envs=4"):
        Pendulum(4).load_state_dict(saved)
    with pytest.raises(ValueError, match="dtype='float32'.*dtype='float64'"):
        Pendulum(3, dtype=torch.float64).load_state_dict(saved)


# ---- the tasks without a Gymnasium twin ----------------------------------------------------------


def ks_uniform(sample: np.ndarray, low: float, high: float) -> float:
    """One-sample Kolmogorov-Smirnov statistic against U(low, high)."""
    x = np.sort((sample - low) / (high - low))
    n = len(x)
    return float(max((np.arange(1, n + 1) / n - x).max(), (x - np.arange(n) / n).max()))


@pytest.mark.parametrize("cls", [PointMass, DoublePendulum])
def test_reset_draws_are_uniform_on_the_documented_box(cls):
    n = 4000
    env = cls(n, dtype=torch.float64)
    env.reset(seed=0)
    critical = math.sqrt(-math.log(1e-3 / 2) / 2) / math.sqrt(n)  # α = 0.001 per coordinate
    for k, (low, high) in enumerate(zip(cls.reset_low, cls.reset_high)):
        column = env.state[:, k].numpy()
        assert ks_uniform(column, low, high) < critical
        assert ks_uniform(column, low, low + 0.8 * (high - low)) > critical  # can fail


def test_point_mass_step_is_damped_semi_implicit_euler():
    env = PointMass(1, dtype=torch.float64)
    env.reset(seed=0)
    env.state = [[0.5, -0.2, 0.1, 0.3]]
    # The second force is clipped to 1.
    _, reward, *_ = env.step(torch.tensor([[0.4, 3.0]], dtype=torch.float64))
    force = np.array([0.4, 1.0])
    v = np.array([0.1, 0.3]) + 0.05 * (force - 1.0 * np.array([0.1, 0.3]))
    p = np.array([0.5, -0.2]) + 0.05 * v
    assert np.allclose(env.state[0].numpy(), np.concatenate([p, v]), atol=1e-15)
    cost = p @ p + 0.1 * v @ v + 0.01 * force @ force
    assert reward.item() == pytest.approx(-cost, abs=1e-15)


def test_double_pendulum_conserves_energy_without_torque():
    env = DoublePendulum(256, dtype=torch.float64, max_episode_steps=1000)
    env.reset(seed=0)
    start = env.energy(env.state)
    for _ in range(200):
        env.step(torch.zeros(256, 2))
    drift = (env.energy(env.state) - start).abs()
    # Energies span about ±30 J; RK4 with 4 substeps keeps the worst drift well under 0.1 J.
    assert start.abs().max() > 20 and drift.max() < 0.1


def test_double_pendulum_torques_do_the_work_the_energy_gains():
    """dE/dt = τ1 θ̇1 + τ2 θ̇2 (power balance), checked with a fine RK4 step of the shared
    two-link equations: this fixes the sign and place of both joint torques."""
    env = DoublePendulum(64, dtype=torch.float64)
    env.reset(seed=1)
    state = env.state
    generator = torch.Generator().manual_seed(0)
    tau = torch.empty(64, 2, dtype=torch.float64).uniform_(-2, 2, generator=generator)
    dt = 1e-4
    f = lambda s: two_link_derivatives(env.link, s, tau[:, 0], tau[:, 1])  # noqa: E731
    after = rk4(f, state, dt)
    mid = (state + after) / 2
    power = (tau * mid[:, 2:]).sum(-1)
    gained = env.energy(after) - env.energy(state)
    assert torch.allclose(gained, power * dt, atol=1e-9)
    assert (power * dt).abs().max() > 1e-5  # the check is not vacuous


# ---- the benchmark ---------------------------------------------------------------------------


def test_env_benchmark_prints_its_table(capsys):
    path = Path(__file__).parents[2] / "benchmarks" / "envs.py"
    spec = importlib.util.spec_from_file_location("envs_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--envs", "Pendulum-v1", "PointMass-v0", "--max-envs", "16", "--seconds",
                "0.01", "--no-async"])
    out = capsys.readouterr().out
    assert "| Pendulum-v1 | Gymnasium Pendulum-v1 (sync) | 16 |" in out
    assert "| Pendulum-v1 | pathwise (cpu) | 16 |" in out
    assert "| PointMass-v0 | pathwise (cpu) | 1 |" in out
    assert "torch " + torch.__version__ in out


# ---- CUDA ----------------------------------------------------------------------------------------


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("env_id", TORCH_ENV_IDS)
def test_cuda_steps_like_the_cpu(env_id):
    cpu = gym.make_vec(env_id, num_envs=256, dtype=torch.float64)
    gpu = gym.make_vec(env_id, num_envs=256, dtype=torch.float64, device="cuda")
    cpu.reset(seed=0)
    gpu.reset(seed=0)
    gpu.state = cpu.state  # the generators differ across devices; the physics must not
    for t in range(5):
        actions = sample_actions(cpu, seed=t)
        a, b = cpu.step(actions), gpu.step(actions.cuda())
        assert torch.allclose(a[4]["final_obs"], b[4]["final_obs"].cpu(), atol=1e-9)
        assert torch.allclose(a[1], b[1].cpu(), atol=1e-9)
        assert torch.equal(a[2], b[2].cpu()) and torch.equal(a[3], b[3].cpu())
        gpu.state = torch.where(b[4]["_final_obs"][:, None], cpu.state.cuda(), gpu.state)
