"""nan_policy=skip inside the agents: a step whose loss or gradient is non-finite leaves the
parameters and the optimizer's state exactly as they were, and is counted."""

from __future__ import annotations

import copy

import pytest
import torch

from pathwise.agents.buffers import Batch, EpisodeBatch
from pathwise.agents.optim import optimizer_step
from pathwise.agents.reinforce import Reinforce, ReinforceConfig
from pathwise.agents.sac import SAC, SACConfig
from pathwise.training.config import EstimatorConfig


def snapshot(module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    return copy.deepcopy({"params": module.state_dict(), "optim": optimizer.state_dict()})


def assert_same(a: dict, b: dict) -> None:
    assert a["params"].keys() == b["params"].keys()
    for key in a["params"]:
        assert torch.equal(a["params"][key], b["params"][key]), key
    for i, state in a["optim"]["state"].items():
        for key, value in state.items():
            assert torch.equal(value, b["optim"]["state"][i][key]), (i, key)


@pytest.mark.parametrize("fused", [True, False], ids=["fused-on-device", "plain-host-check"])
@pytest.mark.parametrize("poison", ["loss", "gradient"])
def test_a_nonfinite_step_is_skipped_and_a_finite_one_is_unchanged(fused, poison):
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.1, fused=fused)
    x = torch.randn(8, 3)
    optimizer_step(optimizer, net(x).pow(2).mean(), net.parameters())  # Adam has state now
    before = snapshot(net, optimizer)

    if poison == "loss":
        loss = net(x).pow(2).mean() * float("nan")
    else:  # a finite loss whose gradient is not: d/dw sqrt(w·0) at 0
        loss = (net.weight * 0.0).abs().sqrt().sum()
    assert bool(optimizer_step(optimizer, loss, net.parameters(), skip_nonfinite=True))
    assert_same(snapshot(net, optimizer), before)

    reference_net = copy.deepcopy(net)
    reference_opt = torch.optim.Adam(reference_net.parameters(), lr=0.1, fused=fused)
    reference_opt.load_state_dict(copy.deepcopy(optimizer.state_dict()))  # no shared moments
    skipped = optimizer_step(optimizer, net(x).pow(2).mean(), net.parameters(),
                             skip_nonfinite=True)
    optimizer_step(reference_opt, reference_net(x).pow(2).mean(), reference_net.parameters())
    assert not bool(skipped)
    assert_same(snapshot(net, optimizer), snapshot(reference_net, reference_opt))


def test_sac_skips_the_critic_step_of_a_nan_reward_and_counts_it():
    torch.manual_seed(0)
    cfg = SACConfig(hidden_sizes=[16], buffer_size=100, batch_size=8, learning_starts=8)
    sac = SAC(3, 2, True, cfg, EstimatorConfig(name="exact").build(), nan_policy="skip")
    batch = Batch(torch.randn(8, 3), torch.randint(0, 2, (8,)), torch.full((8,), float("nan")),
                  torch.randn(8, 3), torch.zeros(8))
    critic = copy.deepcopy(sac.critic.state_dict())
    actor = copy.deepcopy(sac.policy.state_dict())
    metrics = sac.update(batch)
    assert metrics["charts/nan_skips"].item() == 1 and not torch.isfinite(
        metrics["losses/critic"])
    assert all(torch.equal(v, sac.critic.state_dict()[k]) for k, v in critic.items())
    # The actor's loss was finite (the critic is untouched): its step went ahead.
    assert any(not torch.equal(v, sac.policy.state_dict()[k]) for k, v in actor.items())
    assert sac.state_dict()["nan_skips"].item() == 1


def test_sac_without_skip_lets_the_nan_through():
    """The default (nan_policy=stop) adds nothing to the update: the runner stops the run."""
    torch.manual_seed(0)
    cfg = SACConfig(hidden_sizes=[16], buffer_size=100, batch_size=8, learning_starts=8)
    sac = SAC(3, 2, True, cfg, EstimatorConfig(name="exact").build())
    batch = Batch(torch.randn(8, 3), torch.randint(0, 2, (8,)), torch.full((8,), float("nan")),
                  torch.randn(8, 3), torch.zeros(8))
    metrics = sac.update(batch)
    assert "charts/nan_skips" not in metrics
    assert not all(torch.isfinite(p).all() for p in sac.critic.parameters())


def test_reinforce_skips_the_steps_of_nan_returns():
    torch.manual_seed(0)
    cfg = ReinforceConfig(hidden_sizes=[16], batch_steps=4, value_updates=2)
    agent = Reinforce(3, 2, True, cfg, EstimatorConfig(name="score").build(), nan_policy="skip")
    n = 6
    returns = torch.full((n,), float("nan"))
    done = torch.zeros(n, dtype=torch.bool)
    done[-1] = True
    batch = EpisodeBatch(torch.randn(n, 3), torch.randint(0, 2, (n,)), None, returns, returns,
                         done)
    policy = copy.deepcopy(agent.policy.state_dict())
    value = copy.deepcopy(agent.value.state_dict())
    metrics = agent.update(batch)
    assert metrics["charts/nan_skips"].item() == 3  # the actor step and both value steps
    assert all(torch.equal(v, agent.policy.state_dict()[k]) for k, v in policy.items())
    assert all(torch.equal(v, agent.value.state_dict()[k]) for k, v in value.items())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_skip_costs_no_host_sync_on_cuda():
    """nan_policy=skip on a GPU: the fused optimizer takes the flag on the device."""
    from pathwise.agents.optim import make_adam

    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2).cuda()
    optimizer = make_adam(net.parameters(), 0.1)
    assert optimizer.defaults.get("fused")
    x = torch.randn(8, 3, device="cuda")
    optimizer_step(optimizer, net(x).pow(2).mean(), net.parameters())  # Adam has state now
    before = snapshot(net, optimizer)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any device→host sync raises
    try:
        skipped = optimizer_step(optimizer, net(x).pow(2).mean() * float("nan"),
                                 net.parameters(), skip_nonfinite=True)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert bool(skipped)
    assert_same(snapshot(net, optimizer), before)
