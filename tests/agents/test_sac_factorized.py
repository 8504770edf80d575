"""SAC on factorized discrete actions (MultiDiscrete, MultiBinary, action_bins), its losses
called alone: the critic on concatenated one-hots, the soft target in closed form, the exact
actor objective by hand enumeration, per-sub-action entropy targets, every estimator, and the
one-line refusals."""

import itertools
import math

import pytest
import torch

from pathwise.agents.buffers import Batch
from pathwise.agents.sac import SAC, SACConfig
from pathwise.training.config import EstimatorConfig

OBS_DIM = 3
NVEC = [2, 4, 3]  # unequal: padded to 4
ESTIMATORS = ["pathwise", "score", "exact", "straight_through", "gumbel_rao", "reinmax"]


def make_sac(estimator="pathwise", nvec=NVEC, bins=0, max_actions=4096, **overrides):
    cfg = SACConfig(hidden_sizes=[16, 16], buffer_size=1000, batch_size=32, learning_starts=32,
                    **overrides)
    box = dict(action_low=[-1.0] * len(nvec), action_high=[1.0] * len(nvec)) if bins else {}
    options = {"max_actions": max_actions} if estimator == "exact" else {}
    return SAC(OBS_DIM, len(nvec), True, cfg, EstimatorConfig(name=estimator, **options).build(),
               action_nvec=nvec, action_bins=bins, action_start=[0] * len(nvec), **box)


def random_batch(sac: SAC, n: int = 32, terminated: float = 0.0) -> Batch:
    g = torch.Generator().manual_seed(1)
    action = torch.stack([torch.randint(0, k, (n,), generator=g) for k in sac.action_nvec], -1)
    return Batch(torch.randn(n, OBS_DIM, generator=g), action, torch.randn(n, generator=g),
                 torch.randn(n, OBS_DIM, generator=g), torch.full((n,), terminated))


def test_the_critic_reads_the_concatenated_one_hots_of_the_sub_actions():
    sac = make_sac()
    assert sac.critic.net.layers[0].weight.shape[1] == OBS_DIM + sum(NVEC)  # 3 + 9, no padding
    one_hot = sac._one_hot(torch.tensor([[1, 3, 0], [0, 0, 2]]))
    expected = torch.tensor([[0, 1, 0, 0, 0, 1, 1, 0, 0],
                             [1, 0, 1, 0, 0, 0, 0, 0, 1]], dtype=torch.float32)
    torch.testing.assert_close(sac.critic_input(one_hot), expected)


def test_critic_loss_matches_the_soft_bellman_target_in_closed_form():
    """Uniform policy (zero last layer): H(π) = Σ_j log n_j exactly. Target critics blind to
    the action (zero action weights): min_i Q'_i(s', a') is the same for every sampled a'. So
    target = r + γ(1 − d)(min_i Q'_i(s') + α Σ_j log n_j), and Q(s, a) reads the one-hots."""
    torch.manual_seed(0)
    sac = make_sac(alpha=0.7, autotune=False)
    with torch.no_grad():
        sac.policy.net[-1].weight.zero_()
        sac.policy.net[-1].bias.zero_()
        sac.critic_target.net.layers[0].weight[:, OBS_DIM:, :] = 0.0
    entropy = sum(math.log(n) for n in NVEC)
    for terminated in (0.0, 1.0):
        batch = random_batch(sac, terminated=terminated)
        with torch.no_grad():
            blank = torch.zeros(32, sum(NVEC))
            q_next = sac.critic_target(batch.next_obs, blank).min(0).values
            target = batch.reward + sac.config.gamma * (1 - terminated) * (q_next + 0.7 * entropy)
            columns = torch.tensor([0, 2, 6])  # where each sub-action's one-hot starts
            y = torch.zeros(32, sum(NVEC))
            y[torch.arange(32)[:, None], columns + batch.action] = 1.0
            q = sac.critic(batch.obs, y)
            expected = 0.5 * ((q - target) ** 2).mean(-1).sum()
        torch.testing.assert_close(sac.critic_loss(batch), expected)


def test_exact_actor_loss_is_the_sum_over_every_joint_action_by_hand():
    torch.manual_seed(0)
    sac = make_sac("exact", alpha=0.3, autotune=False)
    obs = torch.randn(5, OBS_DIM)
    loss, entropy = sac.actor_loss(obs)
    with torch.no_grad():
        logits = sac.policy.net(obs).view(5, 3, 4)
        log_p = [logits[:, j, :n].log_softmax(-1) for j, n in enumerate(NVEC)]
        total = torch.zeros(5)
        h = -sum((lp.exp() * lp).sum(-1) for lp in log_p)
        for joint in itertools.product(*[range(n) for n in NVEC]):  # 24 real joint actions
            y = torch.zeros(5, sum(NVEC))
            for j, a in enumerate(joint):
                y[:, sum(NVEC[:j]) + a] = 1.0
            prob = torch.exp(sum(lp[:, a] for lp, a in zip(log_p, joint)))
            total += prob * -sac.critic(obs, y).min(0).values
        expected = (total - 0.3 * h).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(entropy, h.mean())


def test_exact_enumerates_only_the_real_joint_actions_of_unequal_sub_actions():
    from pathwise.policies.estimators import enumerate_actions

    sac = make_sac("exact")
    dist = sac.policy.distribution(torch.randn(5, OBS_DIM))
    support = enumerate_actions(dist)  # (A, 5, 3, 4): one-hots padded to 4 values
    assert support.shape == (2 * 4 * 3, 5, 3, 4)
    index = support[:, 0].argmax(-1)  # (A, 3): the value each sub-action takes
    assert {tuple(row) for row in index.tolist()} == set(itertools.product(
        *[range(n) for n in NVEC]))  # each real joint action once, no padded value
    torch.testing.assert_close(dist.log_prob(support).exp().sum(0), torch.ones(5))


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_every_estimator_trains_the_actor_and_never_the_critics(estimator):
    torch.manual_seed(0)
    sac = make_sac(estimator)
    loss, _ = sac.actor_loss(random_batch(sac).obs)
    loss.backward()
    for p in sac.critic.parameters():
        assert p.grad is None or torch.all(p.grad == 0)
    grads = [p.grad for p in sac.policy.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(torch.any(g != 0) for g in grads)
    # One full update: finite metrics, every network moves, targets by Polyak only.
    sac.policy.zero_grad()
    before = [p.clone() for p in sac.critic_target.parameters()]
    policy_before = [p.clone() for p in sac.policy.parameters()]
    metrics = sac.update(random_batch(sac))
    assert all(torch.isfinite(v) for v in metrics.values())
    assert any(not torch.equal(a, b) for a, b in zip(policy_before, sac.policy.parameters()))
    for p_t, p0, p in zip(sac.critic_target.parameters(), before, sac.critic.parameters()):
        assert not p_t.requires_grad
        torch.testing.assert_close(p_t, torch.lerp(p0, p.detach(), sac.config.tau))


def test_entropy_targets_are_per_sub_action():
    assert make_sac(target_entropy_scale=0.5).target_entropy == \
        pytest.approx(0.5 * (math.log(2) + math.log(4) + math.log(3)))
    assert make_sac(nvec=[2] * 5).target_entropy == pytest.approx(0.3 * 5 * math.log(2))
    # Pendulum in 11 bins: one sub-action of 11, the same target as Discrete(11).
    assert make_sac(nvec=[11], bins=11).target_entropy == pytest.approx(0.3 * math.log(11))
    assert make_sac(target_entropy=1.5).target_entropy == 1.5
    cfg = SACConfig(target_entropy=-2.0)
    (problem,) = cfg.space_problems(True, 3, nvec=NVEC)
    assert "outside [0, Σ_j log n_j = 3.18]" in problem and "[2, 4, 3]" in problem
    assert SACConfig(target_entropy=3.0).space_problems(True, 3, nvec=NVEC) == []
    # hard and the temperature schedule apply to factorized actions as to Discrete ones.
    assert SACConfig(hard=True).space_problems(True, 3, nvec=NVEC) == []


def test_random_warmup_actions_are_uniform_per_sub_action():
    torch.manual_seed(0)
    sac = make_sac()
    actions = sac.act(torch.zeros(60_000, OBS_DIM), global_step=0)
    assert actions.shape == (60_000, 3) and actions.dtype == torch.long
    for j, n in enumerate(NVEC):
        freq = torch.bincount(actions[:, j], minlength=n).float() / 60_000
        assert freq.shape == (n,)
        se = math.sqrt((1 / n) * (1 - 1 / n) / 60_000)
        assert torch.all((freq - 1 / n).abs() < 5 * se), (j, freq)


def test_exact_is_refused_above_max_actions_naming_the_size():
    with pytest.raises(ValueError) as info:
        make_sac("exact", nvec=[11] * 6, bins=11)
    message = str(info.value)
    assert "1,771,561 joint actions (11^6: 6 sub-actions of 11 values)" in message
    assert "estimator.max_actions=4096" in message and "\n" not in message
    # Unequal sizes count the real joint set, 2·4·3 = 24, not the padded 4^3 = 64.
    cfg = SACConfig(hidden_sizes=[8], batch_size=8, learning_starts=8)
    with pytest.raises(ValueError, match=r"24 joint actions \(2·4·3: 3 sub-actions\)"):
        SAC(OBS_DIM, 3, True, cfg, EstimatorConfig(name="exact", max_actions=23).build(),
            action_nvec=NVEC)
    SAC(OBS_DIM, 3, True, cfg, EstimatorConfig(name="exact", max_actions=24).build(),
        action_nvec=NVEC)
    # LunarLanderContinuous in 11 bins: 121 joint actions, feasible.
    assert make_sac("exact", nvec=[11, 11], bins=11).estimator.max_actions == 4096


@pytest.mark.parametrize("estimator", ["exact", "straight_through", "gumbel_rao", "reinmax"])
def test_discrete_only_estimators_are_refused_on_box_actions_in_one_line(estimator):
    cfg = SACConfig(hidden_sizes=[8], batch_size=8, learning_starts=8)
    with pytest.raises(ValueError) as info:
        SAC(OBS_DIM, 2, False, cfg, EstimatorConfig(name=estimator).build())
    message = str(info.value)
    assert f"estimator '{estimator}' needs discrete actions" in message
    assert "action_bins" in message and "\n" not in message


@pytest.mark.parametrize("estimator", ["straight_through", "gumbel_rao", "reinmax"])
def test_new_estimators_train_discrete_sac_with_its_q_head(estimator):
    torch.manual_seed(0)
    cfg = SACConfig(hidden_sizes=[16], buffer_size=100, batch_size=16, learning_starts=16)
    sac = SAC(OBS_DIM, 3, True, cfg, EstimatorConfig(name=estimator).build())
    assert not sac.factorized and sac.critic.discrete  # today's Discrete path: q-head
    g = torch.Generator().manual_seed(0)
    batch = Batch(torch.randn(16, OBS_DIM, generator=g), torch.randint(0, 3, (16,), generator=g),
                  torch.randn(16, generator=g), torch.randn(16, OBS_DIM, generator=g),
                  torch.zeros(16))
    before = [p.clone() for p in sac.policy.parameters()]
    metrics = sac.update(batch)
    assert all(torch.isfinite(v) for v in metrics.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, sac.policy.parameters()))


def test_estimator_options_reach_the_estimators():
    assert EstimatorConfig(name="gumbel_rao", mc_samples=3).build().mc_samples == 3
    assert EstimatorConfig(name="exact", max_actions=200).build().max_actions == 200
    assert EstimatorConfig(name="reinmax").resolved().num_samples == 1
    problems = EstimatorConfig(name="pathwise", mc_samples=3).problems()
    assert problems == ["estimator.mc_samples applies to estimator=gumbel_rao only; this run "
                        "has estimator=pathwise"]
    assert "max_actions applies to estimator=exact" in \
        EstimatorConfig(name="score", max_actions=10).problems()[0]
    assert "must be >= 1" in EstimatorConfig(name="gumbel_rao", mc_samples=0).problems()[0]
    from pathwise.policies.estimators import ESTIMATORS
    from pathwise.training.config import ESTIMATOR_NAMES

    assert set(ESTIMATOR_NAMES) == set(ESTIMATORS)


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["exact", "gumbel_rao"])
def test_compiled_factorized_updates_match_eager_ones(estimator):
    """torch.compile of the losses through the padded one-hots and the critic's column
    index: the same update as eager, to rounding (inductor's random numbers drawn as eager's).
    exact at max_actions = 2·4·3: the compiled loss must enumerate the real joint set too."""
    torch.manual_seed(0)
    eager, compiled = make_sac(estimator, max_actions=24), make_sac(estimator, max_actions=24)
    compiled.load_state_dict(eager.state_dict())
    compiled.compile()
    batch = random_batch(eager)
    with torch._inductor.config.patch(fallback_random=True):
        for _ in range(3):
            torch.manual_seed(2)
            expected = eager.update(batch)
            torch.manual_seed(2)
            got = compiled.update(batch)
            for key in expected:
                torch.testing.assert_close(got[key], expected[key], rtol=1e-4, atol=1e-5)
