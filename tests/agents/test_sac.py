"""SAC's losses, called alone on hand-made batches."""

import math
from types import SimpleNamespace

import pytest
import torch

from pathwise.agents.buffers import Batch
from pathwise.agents.sac import SAC, SACConfig, TemperatureSchedule
from pathwise.training.config import EstimatorConfig

OBS_DIM = 3


def make_sac(discrete: bool, estimator: str = "pathwise", action_dim: int = 2, **overrides):
    cfg = SACConfig(hidden_sizes=[16, 16], buffer_size=1000, batch_size=32, learning_starts=32,
                    **overrides)
    return SAC(OBS_DIM, action_dim, discrete, cfg, EstimatorConfig(name=estimator).build())


def random_batch(sac: SAC, n: int = 32, terminated: float = 0.0) -> Batch:
    g = torch.Generator().manual_seed(1)
    if sac.discrete:
        action = torch.randint(0, sac.action_dim, (n,), generator=g)
    else:
        action = torch.rand(n, sac.action_dim, generator=g) * 2 - 1
    return Batch(torch.randn(n, OBS_DIM, generator=g), action, torch.randn(n, generator=g),
                 torch.randn(n, OBS_DIM, generator=g), torch.full((n,), terminated))


CASES = [(False, "pathwise"), (False, "score"), (True, "pathwise"), (True, "score"),
         (True, "exact")]


@pytest.mark.parametrize("discrete,estimator", CASES)
def test_actor_loss_sends_no_gradient_to_critics(discrete, estimator):
    torch.manual_seed(0)
    sac = make_sac(discrete, estimator)
    loss, _ = sac.actor_loss(random_batch(sac).obs)
    loss.backward()
    for p in sac.critic.parameters():
        assert p.grad is None or torch.all(p.grad == 0)
    actor_grads = [p.grad for p in sac.policy.parameters()]
    assert all(g is not None for g in actor_grads)
    assert any(torch.any(g != 0) for g in actor_grads)


@pytest.mark.parametrize("discrete,estimator", CASES)
def test_target_critics_never_receive_gradients(discrete, estimator):
    torch.manual_seed(0)
    sac = make_sac(discrete, estimator)
    before = [p.clone() for p in sac.critic_target.parameters()]
    sac.update(random_batch(sac))
    for p in sac.critic_target.parameters():
        assert not p.requires_grad and p.grad is None
    # Targets move only by Polyak averaging: θ' ← (1 − τ)θ' + τθ, with θ after its step.
    for p_t, p0, p in zip(sac.critic_target.parameters(), before, sac.critic.parameters()):
        torch.testing.assert_close(p_t, torch.lerp(p0, p.detach(), sac.config.tau))


def test_discrete_critic_target_closed_form():
    """target = r + γ(1 − d) Σ_a π(a|s')(min_i Q'_i(s', a) − α log π(a|s')) (Christodoulou 2019)."""
    torch.manual_seed(0)
    sac = make_sac(True, "exact", action_dim=3)
    for terminated in (0.0, 1.0):
        batch = random_batch(sac, terminated=terminated)
        with torch.no_grad():
            logits = sac.policy.net(batch.next_obs).log_softmax(-1)
            q_next = sac.critic_target(batch.next_obs).min(0).values
            v_next = (logits.exp() * (q_next - sac.alpha * logits)).sum(-1)
            target = batch.reward + sac.config.gamma * (1 - terminated) * v_next
            q = sac.critic(batch.obs)[:, torch.arange(32), batch.action]
            expected = 0.5 * ((q - target) ** 2).mean(-1).sum()
        torch.testing.assert_close(sac.critic_loss(batch), expected)


def test_box_terminal_transitions_do_not_bootstrap():
    """With r = 0 and a terminal flag, the target is exactly 0 whatever the next state."""
    torch.manual_seed(0)
    sac = make_sac(False)
    batch = random_batch(sac, terminated=1.0)._replace(reward=torch.zeros(32))
    with torch.no_grad():
        q = sac.critic(batch.obs, batch.action)
    torch.testing.assert_close(sac.critic_loss(batch), 0.5 * (q**2).mean(-1).sum())
    # Not terminal (e.g. truncated by a time limit): the target does bootstrap.
    alive = batch._replace(terminated=torch.zeros(32))
    assert not torch.allclose(sac.critic_loss(alive), sac.critic_loss(batch))


def test_observe_stores_truncated_transitions_as_bootstrappable():
    sac = make_sac(False)
    obs, final = torch.zeros(2, OBS_DIM), torch.ones(2, OBS_DIM)
    step = SimpleNamespace(reward=torch.tensor([1.0, 2.0]), next_obs=final,
                           terminated=torch.tensor([True, False]),
                           truncated=torch.tensor([False, True]))
    sac.observe(obs, torch.zeros(2, 2), step)
    assert sac.buffer.terminated[:2].tolist() == [1.0, 0.0]
    torch.testing.assert_close(sac.buffer.next_obs[:2], final)


def test_entropy_targets():
    assert make_sac(False, action_dim=4).target_entropy == -4.0
    sac = make_sac(True, action_dim=3, target_entropy_scale=0.5)
    assert sac.target_entropy == pytest.approx(0.5 * math.log(3))
    assert make_sac(True, target_entropy=0.1).target_entropy == 0.1


@pytest.mark.parametrize("entropy_offset,direction", [(1.0, -1), (-1.0, 1)])
def test_alpha_moves_toward_the_entropy_target(entropy_offset, direction):
    sac = make_sac(False, alpha_lr=0.1)
    alpha0 = sac.alpha.item()
    loss = sac.alpha_loss(torch.tensor(sac.target_entropy + entropy_offset))
    sac.alpha_optimizer.zero_grad()
    loss.backward()
    sac.alpha_optimizer.step()
    assert (sac.alpha.item() - alpha0) * direction > 0


def test_temperature_schedule():
    schedule = TemperatureSchedule(start=1.0, end=0.5, decay=3e-5, every=1000)
    assert schedule(0) == 1.0
    assert schedule(999) == 1.0  # piecewise constant within a block
    assert schedule(1000) == pytest.approx(math.exp(-0.03))
    assert schedule(1_000_000) == 0.5


def test_update_is_finite_and_changes_every_network():
    torch.manual_seed(0)
    sac = make_sac(False)
    before = {n: p.clone() for n, p in sac.policy.named_parameters()}
    critic_before = [p.clone() for p in sac.critic.parameters()]
    metrics = sac.update(random_batch(sac))
    assert all(torch.isfinite(v) for v in metrics.values())
    assert any(not torch.equal(before[n], p) for n, p in sac.policy.named_parameters())
    assert any(not torch.equal(a, b) for a, b in zip(critic_before, sac.critic.parameters()))
    assert sac.log_alpha.item() != pytest.approx(math.log(0.2), abs=0)


def test_exact_estimator_rejected_on_box():
    with pytest.raises(ValueError, match="Discrete"):
        make_sac(False, "exact")


@pytest.mark.parametrize("bad", [dict(lr=0.0), dict(gamma=1.5), dict(tau=0.0), dict(tau=1.5),
                                 dict(batch_size=0), dict(batch_size=64, learning_starts=10)])
def test_invalid_values_are_reported(bad):
    cfg = SACConfig(**bad)
    problems = cfg.validate()
    assert len(problems) >= 1 and all("\n" not in p for p in problems)
    assert next(iter(bad)) in problems[0]
