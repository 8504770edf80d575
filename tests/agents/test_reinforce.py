"""REINFORCE: episode storage (reward-to-go, stale episodes), losses alone, and short runs."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import pathwise.training.loop as runner
from pathwise.agents.buffers import EpisodeBatch, RolloutStorage
from pathwise.agents.reinforce import Reinforce, ReinforceConfig
from pathwise.envs.testbeds import CONTINUOUS_BANDIT_ID, DISCRETE_BANDIT_ID
from pathwise.training.config import ConfigError, EstimatorConfig

OBS_DIM = 3


# -- storage ---------------------------------------------------------------------------------

def add_step(storage: RolloutStorage, reward, done, truncated=None, tag=None):
    """One vector step with per-env rewards and done flags; obs[..., 0] carries ``tag``."""
    n = storage.num_envs
    reward = torch.as_tensor(reward, dtype=torch.float32)
    done = torch.as_tensor(done, dtype=torch.bool)
    truncated = torch.zeros(n, dtype=torch.bool) if truncated is None \
        else torch.as_tensor(truncated, dtype=torch.bool)
    obs = torch.zeros(n, storage.obs_dim)
    if tag is not None:
        obs[:, 0] = torch.as_tensor(tag, dtype=torch.float32)
    action = torch.zeros(n, dtype=torch.long) if storage.discrete \
        else torch.zeros(n, storage.action_dim)
    pre_tanh = None if storage.discrete else torch.zeros(n, storage.action_dim)
    storage.add(obs, action, reward, obs + 1.0, done & ~truncated, truncated, pre_tanh)


def test_reward_to_go_matches_closed_form():
    """G_t = Σ_{k≥t} γ^{k−t} r_k, restarting at each episode end, env by env."""
    g = 0.9
    storage = RolloutStorage(2, OBS_DIM, 1, discrete=True)
    # env 0: one episode r = 1, 2, 3, 4.  env 1: episodes (5, 6) and (7, 8).
    for r0, r1, d0, d1 in [(1, 5, 0, 0), (2, 6, 0, 1), (3, 7, 0, 0), (4, 8, 1, 1)]:
        add_step(storage, [r0, r1], [d0, d1])
    batch = storage.episodes(g)
    expected = [1 + g * 2 + g**2 * 3 + g**3 * 4, 2 + g * 3 + g**2 * 4, 3 + g * 4, 4,
                5 + g * 6, 6, 7 + g * 8, 8]
    torch.testing.assert_close(batch.returns, torch.tensor(expected))
    assert batch.reward.tolist() == [1, 2, 3, 4, 5, 6, 7, 8]  # env-major, in time order
    assert batch.done.tolist() == [False, False, False, True, False, True, False, True]


def test_running_episodes_are_left_out_of_the_batch():
    storage = RolloutStorage(2, OBS_DIM, 1, discrete=True)
    add_step(storage, [1, 10], [1, 0])
    add_step(storage, [2, 11], [0, 0])  # both running now; env 1 never ended
    assert len(storage) == 1
    batch = storage.episodes(0.5)
    assert batch.reward.tolist() == [1.0]
    assert batch.returns.tolist() == [1.0]


def test_truncated_episode_bootstraps_only_when_asked():
    """Time-limit cut: G_T = r_T + γ·V(s_{T+1}) with bootstrap; terminal steps never get it."""
    g = 0.5
    storage = RolloutStorage(2, OBS_DIM, 1, discrete=True)
    add_step(storage, [1, 1], [0, 0])
    add_step(storage, [2, 2], [1, 1], truncated=[1, 0])  # env 0 truncated, env 1 terminated

    def v(next_obs):
        return torch.full(next_obs.shape[:1], 10.0)

    torch.testing.assert_close(storage.episodes(g, v).returns,
                               torch.tensor([1 + g * (2 + g * 10), 2 + g * 10, 1 + g * 2, 2.0]))
    torch.testing.assert_close(storage.episodes(g).returns,
                               torch.tensor([1 + g * 2, 2.0, 1 + g * 2, 2.0]))


def test_episodes_running_at_an_update_are_stale_and_dropped():
    """After clear(), an env caught mid-episode records nothing until that episode ends; an env
    that ended an episode on the update step stays fresh. Steps are never mixed."""
    storage = RolloutStorage(2, OBS_DIM, 1, discrete=True)
    # Before the update: env 0 ends an episode on the last step; env 1 is mid-episode.
    add_step(storage, [1, 101], [0, 0])
    add_step(storage, [2, 102], [1, 0])
    assert len(storage) == 2
    storage.clear()
    assert len(storage) == 0 and storage.fresh == [True, False]
    # After it: env 1's old episode runs two more steps (stale), then a fresh one of 2 steps.
    add_step(storage, [3, 103], [0, 0])
    add_step(storage, [4, 104], [1, 1])  # env 0: fresh episode (3, 4); env 1: stale ends
    add_step(storage, [5, 205], [1, 0])  # env 0: episode (5)
    add_step(storage, [6, 206], [0, 1])  # env 1: fresh episode (205, 206); env 0 runs on
    assert len(storage) == 5
    batch = storage.episodes(1.0)
    assert batch.reward.tolist() == [3, 4, 5, 205, 206]
    assert batch.returns.tolist() == [7, 4, 5, 411, 206]
    assert batch.done.tolist() == [False, True, True, False, True]


def test_a_closed_batch_keeps_the_running_episodes_and_records_no_new_ones():
    storage = RolloutStorage(2, OBS_DIM, 1, discrete=True)
    add_step(storage, [1, 101], [1, 0])  # env 0: episode (1) ends; env 1 runs on
    assert not storage.batch_ready(1)  # 1 completed step: closes, but env 1 is mid-episode
    add_step(storage, [2, 102], [1, 0])  # env 0's episode (2) started after closing
    assert not storage.batch_ready(1)
    add_step(storage, [3, 103], [0, 1])  # env 1's episode (101..103) ends: ready
    assert storage.batch_ready(1)
    batch = storage.episodes(1.0)
    assert batch.reward.tolist() == [1, 101, 102, 103]
    storage.clear()
    # env 1 ended on the update step: fresh; env 0 is mid-episode under the old policy.
    assert storage.fresh == [False, True] and not storage.closing


def test_batches_of_several_envs_are_not_biased_towards_short_episodes():
    """Lengths 1 or 19 with probability 1/2 (mean 10), 8 envs, batches of >= 40 steps. By
    Wald's identity E[steps − 10·episodes] = 0 per batch; keeping only the episodes completed
    when 40 steps are in would put it far below (long episodes are the ones left running)."""
    rng = np.random.default_rng(0)
    n_envs, mean_length = 8, 10.0
    storage = RolloutStorage(n_envs, OBS_DIM, 1, discrete=True)
    left = rng.choice([1, 19], size=n_envs)  # steps left in each env's running episode
    gaps = []
    while len(gaps) < 400:
        left -= 1
        done = left == 0
        add_step(storage, [0.0] * n_envs, done.tolist())
        left[done] = rng.choice([1, 19], size=int(done.sum()))
        if storage.batch_ready(40):
            batch = storage.episodes(1.0)
            gaps.append(len(batch.done) - mean_length * int(batch.done.sum()))
            storage.clear()
    gaps = np.asarray(gaps)
    se = gaps.std(ddof=1) / np.sqrt(len(gaps))
    assert abs(gaps.mean()) < 4 * se, (gaps.mean(), se)


def test_storage_grows_past_its_initial_capacity():
    storage = RolloutStorage(1, OBS_DIM, 2, discrete=False, capacity=2)
    for t in range(9):
        add_step(storage, [t], [t == 8], tag=[t])
    assert storage.capacity >= 9
    batch = storage.episodes(1.0)
    assert batch.obs[:, 0].tolist() == list(range(9))
    assert batch.returns[0].item() == sum(range(9))
    assert batch.pre_tanh.shape == (9, 2)


def test_storage_state_keeps_running_episodes_for_an_exact_resume():
    storage = RolloutStorage(2, OBS_DIM, 1, discrete=True)
    add_step(storage, [1, 11], [0, 1])
    add_step(storage, [2, 12], [1, 0])
    add_step(storage, [3, 13], [0, 0])  # running in both envs
    restored = RolloutStorage(2, OBS_DIM, 1, discrete=True, capacity=1)
    restored.load_state_dict(storage.state_dict())
    assert len(restored) == 3
    # The resumed envs continue their episodes, exactly as the original storage would.
    for s in (storage, restored):
        add_step(s, [4, 14], [1, 1])
    assert restored.episodes(1.0).reward.tolist() == [1, 2, 3, 4, 11, 12, 13, 14]
    assert restored.episodes(1.0).reward.tolist() == storage.episodes(1.0).reward.tolist()


def test_storage_drops_running_episodes_when_the_envs_restart():
    storage = RolloutStorage(2, OBS_DIM, 1, discrete=True)
    add_step(storage, [1, 11], [0, 1])
    add_step(storage, [2, 12], [1, 0])
    add_step(storage, [3, 13], [0, 0])  # running in both envs: never completed
    storage.drop_running()
    assert len(storage) == 3
    # The restarted envs begin new episodes; they append after the kept rows.
    add_step(storage, [4, 14], [1, 1])
    assert storage.episodes(1.0).reward.tolist() == [1, 2, 4, 11, 14]


# -- losses ----------------------------------------------------------------------------------

def make_agent(discrete: bool, action_dim: int = 2, num_envs: int = 1, **overrides):
    cfg = ReinforceConfig(hidden_sizes=[16, 16], batch_steps=4, **overrides)
    return Reinforce(OBS_DIM, action_dim, discrete, cfg, EstimatorConfig(name="score").build(),
                     num_envs=num_envs)


def box_batch(agent: Reinforce, pre_tanh: torch.Tensor, returns: torch.Tensor) -> EpisodeBatch:
    n = pre_tanh.shape[0]
    done = torch.zeros(n, dtype=torch.bool)
    done[-1] = True
    return EpisodeBatch(torch.randn(n, OBS_DIM), torch.tanh(pre_tanh), pre_tanh,
                        returns, returns, done)


def test_actor_loss_scores_the_stored_pre_tanh_draw():
    """At a saturated u (tanh(u) == ±1 in float32) the stored u gives a finite log-prob equal to
    log_prob_pre_tanh(u); recovering u by atanh(a) would not."""
    torch.manual_seed(0)
    agent = make_agent(False, normalize_advantages=False, baseline="none")
    u = torch.tensor([[20.0, -15.0], [0.3, 12.0], [-0.5, 0.1]])
    assert torch.all(torch.tanh(u[0]).abs() == 1.0)
    batch = box_batch(agent, u, torch.tensor([1.0, -2.0, 0.5]))
    loss, entropy = agent.actor_loss(batch)
    dist = agent.policy.distribution(batch.obs)
    log_prob = dist.log_prob_pre_tanh(u)
    assert torch.isfinite(log_prob).all() and torch.isfinite(loss) and torch.isfinite(entropy)
    torch.testing.assert_close(loss, -(batch.returns * log_prob).mean())
    assert not torch.allclose(dist.log_prob(batch.action), log_prob)  # atanh is wrong here
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in agent.policy.parameters())


def test_act_remembers_u_and_observe_stores_it():
    torch.manual_seed(0)
    agent = make_agent(False, num_envs=2)
    obs = torch.randn(2, OBS_DIM)
    action = agent.act(obs, 0)
    assert action.shape == (2, 2) and action.abs().max() <= 1
    step = SimpleNamespace(reward=torch.ones(2), next_obs=obs, obs=obs,
                           terminated=torch.ones(2, dtype=torch.bool),
                           truncated=torch.zeros(2, dtype=torch.bool))
    agent.observe(obs, action, step)
    u = agent.storage.pre_tanh[0]
    torch.testing.assert_close(torch.tanh(u), action)
    with pytest.raises(RuntimeError, match="last act"):
        agent.observe(obs, action.clone(), step)


def test_discrete_act_gives_indices():
    agent = make_agent(True, action_dim=3, num_envs=4)
    action = agent.act(torch.randn(4, OBS_DIM), 0)
    assert action.dtype == torch.long and action.shape == (4,)
    assert action.min() >= 0 and action.max() < 3


@pytest.mark.parametrize("baseline", ["none", "mean", "value"])
def test_advantage_per_baseline(baseline):
    torch.manual_seed(0)
    agent = make_agent(True, baseline=baseline, normalize_advantages=False)
    obs, returns = torch.randn(5, OBS_DIM), torch.tensor([1.0, 2.0, 3.0, 4.0, 10.0])
    batch = EpisodeBatch(obs, torch.zeros(5, dtype=torch.long), None, returns, returns,
                         torch.ones(5, dtype=torch.bool))
    if baseline == "value":
        expected = returns - agent.value(obs).squeeze(-1).detach()
    else:
        expected = returns - 4.0 if baseline == "mean" else returns
    torch.testing.assert_close(agent.advantage(batch), expected)
    scaled = make_agent(True, baseline=baseline)
    scaled.load_state_dict(agent.state_dict())
    assert scaled.advantage(batch).std(correction=0).item() == pytest.approx(1.0, abs=1e-5)


def test_equal_advantages_are_not_blown_up_by_normalisation():
    """baseline=none on a policy that always earns the same return: no spread to scale by, so
    the advantages stay as they are instead of being divided by a std of ~0 (×1e8)."""
    agent = make_agent(True, baseline="none")
    returns = torch.full((6,), 3.0)
    batch = EpisodeBatch(torch.randn(6, OBS_DIM), torch.zeros(6, dtype=torch.long), None,
                         returns, returns, torch.ones(6, dtype=torch.bool))
    torch.testing.assert_close(agent.advantage(batch), returns)


def test_losses_touch_only_their_own_network():
    torch.manual_seed(0)
    agent = make_agent(True, action_dim=3)
    batch = EpisodeBatch(torch.randn(6, OBS_DIM), torch.tensor([0, 1, 2, 0, 1, 2]), None,
                         torch.randn(6), torch.randn(6), torch.ones(6, dtype=torch.bool))
    agent.actor_loss(batch)[0].backward()
    assert all(p.grad is None for p in agent.value.parameters())
    assert any(p.grad.abs().sum() > 0 for p in agent.policy.parameters())
    agent.policy.zero_grad(set_to_none=True)
    agent.value_loss(batch).backward()
    assert all(p.grad is None for p in agent.policy.parameters())


def test_discrete_entropy_bonus_raises_entropy():
    """With zero advantages, the loss is −c·H: one step must increase the exact entropy."""
    torch.manual_seed(0)
    agent = make_agent(True, action_dim=3, baseline="none", normalize_advantages=False,
                       entropy_coef=1.0, lr=1e-2)
    batch = EpisodeBatch(torch.randn(8, OBS_DIM), torch.zeros(8, dtype=torch.long), None,
                         torch.zeros(8), torch.zeros(8), torch.ones(8, dtype=torch.bool))
    before = agent.policy.distribution(batch.obs).entropy().mean()
    agent.update(batch)
    assert agent.policy.distribution(batch.obs).entropy().mean() > before


def test_train_step_waits_for_completed_episodes():
    agent = make_agent(True, action_dim=3, num_envs=2)
    obs = torch.zeros(2, OBS_DIM)

    def step(done):
        action = agent.act(obs, 0)
        agent.observe(obs, action, SimpleNamespace(
            reward=torch.ones(2), next_obs=obs, obs=obs,
            terminated=torch.tensor(done), truncated=torch.zeros(2, dtype=torch.bool)))
        return agent.train_step(0)

    assert step([False, False]) is None  # nothing completed
    assert step([True, False]) is None  # env 0: 2 steps completed; env 1's 2 still running
    # env 1 completes 3: 5 ≥ batch_steps = 4, but env 0's episode started before that
    # moment is running: the batch waits for it (RolloutStorage: no length bias).
    assert step([False, True]) is None
    metrics = step([True, False])  # env 0's second episode ends: 5 + 2 steps
    assert metrics is not None and len(agent.storage) == 0
    assert metrics["charts/batch_episodes"].item() == 3
    assert agent.storage.fresh == [True, False]  # env 1 was mid-episode at the update
    assert {"losses/actor", "losses/value", "charts/entropy", "charts/advantage_std"} <= set(
        metrics)
    assert all(isinstance(v, torch.Tensor) and torch.isfinite(v) for v in metrics.values())


def test_state_dict_round_trips_through_a_weights_only_file(tmp_path):
    torch.manual_seed(0)
    agent = make_agent(False, num_envs=2)
    obs = torch.randn(2, OBS_DIM)
    for done in ([True, False], [True, True]):
        agent.observe(obs, agent.act(obs, 0), SimpleNamespace(
            reward=torch.ones(2), next_obs=obs, obs=obs, terminated=torch.tensor(done),
            truncated=torch.zeros(2, dtype=torch.bool)))
    assert agent.train_step(0) is not None  # 4 steps, both envs at a boundary: optimizer states
    agent.observe(obs, agent.act(obs, 0), SimpleNamespace(
        reward=torch.ones(2), next_obs=obs, obs=obs, terminated=torch.tensor([False, True]),
        truncated=torch.zeros(2, dtype=torch.bool)))  # env 0 runs on: only env 1's step counts
    torch.save(agent.state_dict(), tmp_path / "agent.pt")
    other = make_agent(False, num_envs=2)
    other.load_state_dict(torch.load(tmp_path / "agent.pt", weights_only=True))
    for a, b in zip(agent.policy.parameters(), other.policy.parameters(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(agent.value.parameters(), other.value.parameters(), strict=True):
        assert torch.equal(a, b)
    assert len(other.storage) == len(agent.storage) == 1
    torch.testing.assert_close(other.storage.episodes(0.9).pre_tanh,
                               agent.storage.episodes(0.9).pre_tanh)


@pytest.mark.parametrize("device", [
    "cpu", pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(
        not torch.cuda.is_available(), reason="needs a CUDA device")])])
def test_storage_and_update_stay_on_the_device(device):
    torch.manual_seed(0)
    cfg = ReinforceConfig(hidden_sizes=[16], batch_steps=4, value_batch_size=2)
    agent = Reinforce(OBS_DIM, 2, False, cfg, EstimatorConfig(name="score").build(),
                      device=device, num_envs=2)
    obs = torch.randn(2, OBS_DIM, device=device)
    flags = [([False, False], [False, False]), ([True, False], [False, True]),
             ([False, True], [False, False])]
    metrics = None
    for terminated, truncated in flags:
        agent.observe(obs, agent.act(obs, 0), SimpleNamespace(
            reward=torch.ones(2, device=device), next_obs=obs, obs=obs,
            terminated=torch.tensor(terminated, device=device),
            truncated=torch.tensor(truncated, device=device)))
        metrics = agent.train_step(0) or metrics
    assert metrics is not None
    assert all(v.device.type == device and torch.isfinite(v) for v in metrics.values())


def test_pathwise_estimator_is_refused():
    cfg = ReinforceConfig()
    with pytest.raises(ValueError, match="use estimator=score"):
        Reinforce(OBS_DIM, 2, False, cfg, EstimatorConfig(name="pathwise").build())


def test_invalid_values_are_reported():
    problems = ReinforceConfig(baseline="median", gamma=1.5, batch_steps=0).validate()
    assert any("baseline" in p for p in problems)
    assert any("gamma" in p for p in problems)
    assert any("batch_steps" in p for p in problems)
    assert ReinforceConfig().validate() == []


# -- short training runs ---------------------------------------------------------------------

def run_config(tmp_path, env, total_steps, estimator="score", **agent):
    return {"env": env, "agent": {"name": "reinforce", "hidden_sizes": [32, 32], **agent},
            "estimator": {"name": estimator}, "total_steps": total_steps, "seed": 0,
            "eval_every": 0, "eval_episodes": 5, "log_every": 50, "checkpoint_every": 0,
            "torch_threads": 1, "device": "cpu", "wandb": {"mode": "disabled"},
            "run_dir": str(tmp_path / "run")}


@pytest.fixture
def spy(monkeypatch):
    """Capture the agent the runner builds, its initial policy, and count its updates."""
    seen = SimpleNamespace(agent=None, initial=None, updates=0)
    build = runner.build_agent

    def build_and_watch(*args, **kwargs):
        agent = build(*args, **kwargs)
        seen.agent = agent
        seen.initial = {k: v.clone() for k, v in agent.policy.state_dict().items()}
        update = agent.update

        def counted(batch):
            seen.updates += 1
            return update(batch)

        agent.update = counted
        return agent

    monkeypatch.setattr(runner, "build_agent", build_and_watch)
    return seen


def read_metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("env,action", [(CONTINUOUS_BANDIT_ID, "box"),
                                        (DISCRETE_BANDIT_ID, "discrete")])
def test_short_run_updates_the_policy(tmp_path, spy, env, action):
    result = runner.train(run_config(tmp_path, env, total_steps=200, batch_steps=32))
    assert spy.updates >= 2
    final = spy.agent.policy.state_dict()
    assert any(not torch.equal(final[k], v) for k, v in spy.initial.items())
    losses = [r for r in read_metrics(result.run_dir) if "losses/actor" in r]
    assert losses and all(math.isfinite(r["losses/actor"]) and math.isfinite(r["losses/value"])
                          for r in losses)


def test_discrete_bandit_learns_the_best_arm(tmp_path):
    """rewards (0, 0.5, 1): the deterministic policy must pick the arm that pays 1."""
    result = runner.train(run_config(tmp_path, DISCRETE_BANDIT_ID, total_steps=800,
                                     batch_steps=50, lr=1e-2))
    assert result.final_eval.return_mean == 1.0


def test_continuous_bandit_action_reaches_target(tmp_path, spy):
    """reward −(a − 0.5)²: the deterministic action must end within 0.1 of 0.5."""
    runner.train(run_config(tmp_path, CONTINUOUS_BANDIT_ID, total_steps=1500, batch_steps=50,
                            lr=1e-2))
    action, _ = spy.agent.policy.predict(np.zeros(1, dtype=np.float32))
    assert abs(float(action[0]) - 0.5) < 0.1


def test_pathwise_estimator_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="REINFORCE is a score-function method"):
        runner.train(run_config(tmp_path, DISCRETE_BANDIT_ID, 10, estimator="pathwise",
                                batch_steps=5))
