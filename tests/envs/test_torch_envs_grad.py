"""Gradients through the torch envs' step: exact in each task's smooth region (central finite
differences in float64, `torch.autograd.gradcheck`), what each docstring says at the non-smooth
points, none across an autoreset, and how a state's sensitivity to an earlier state grows over
a long horizon: bounded for PointMass, exponentially for DoublePendulum."""

import math

import numpy as np
import pytest
import torch

from pathwise.envs import (
    Acrobot,
    CartPole,
    DoublePendulum,
    MountainCarContinuous,
    Pendulum,
    PointMass,
)
from pathwise.envs.classic import angle_normalize

torch.set_num_threads(1)
f64 = torch.float64
NO_LIMIT = 10**9  # gradcheck steps an env many times; no time limit may cut in


def uniform(low, high, shape, seed):
    generator = torch.Generator().manual_seed(seed)
    low, high = torch.as_tensor(low, dtype=f64), torch.as_tensor(high, dtype=f64)
    return low + (high - low) * torch.rand(*shape, generator=generator, dtype=f64)


def relaxed_one_hot(n_envs, n_actions, seed):
    """Gumbel-softmax-like weights: a float action that carries a gradient."""
    return torch.softmax(uniform(-2, 2, (n_envs, n_actions), seed), -1)


# Per task: states and actions inside its smooth region (no clip, wrap, wall or termination
# within reach of one step), so finite differences see the same smooth function as autograd.
N = 3
SMOOTH = {
    Pendulum: (uniform([-2.5, -3.0], [2.5, 3.0], (N, 2), 0) + torch.tensor([2 * math.pi, 0]),
               uniform(-1.5, 1.5, (N, 1), 1)),
    CartPole: (uniform(-0.05, 0.05, (N, 4), 0), relaxed_one_hot(N, 2, 1)),
    Acrobot: (uniform(-1.0, 1.0, (N, 4), 0), relaxed_one_hot(N, 3, 1)),
    MountainCarContinuous: (uniform([-0.9, -0.03], [0.2, 0.03], (N, 2), 0),
                            uniform(-0.8, 0.8, (N, 1), 1)),
    PointMass: (uniform(-1.0, 1.0, (N, 4), 0), uniform(-0.9, 0.9, (N, 2), 1)),
    DoublePendulum: (uniform([-3, -3, -2, -2], [3, 3, 2, 2], (N, 4), 0),
                     uniform(-1.8, 1.8, (N, 2), 1)),
}


def stepper(env):
    """step as a function of (state, action) -> (obs, reward, final_obs, final_state)."""

    def step(state, action):
        env.state = state
        obs, reward, terminated, truncated, info = env.step(action)
        assert not (terminated | truncated).any()  # still inside the smooth region
        return obs, reward, info["final_obs"], info["final_state"]

    return step


@pytest.mark.parametrize("cls", list(SMOOTH), ids=lambda cls: cls.__name__)
def test_step_gradients_match_finite_differences_in_the_smooth_region(cls):
    env = cls(N, dtype=f64, max_episode_steps=NO_LIMIT)
    env.reset(seed=0)
    state, action = (x.clone().requires_grad_(True) for x in SMOOTH[cls])
    assert torch.autograd.gradcheck(stepper(env), (state, action), eps=1e-6, atol=1e-6)


def grad(output, inputs):
    """d(sum output)/d inputs, with zeros where an input does not reach the output (also when
    nothing does: CartPole's and Acrobot's rewards are constants without a graph)."""
    inputs = list(inputs)
    if not output.requires_grad:
        return [torch.zeros_like(x) for x in inputs]
    grads = torch.autograd.grad(output.sum(), inputs, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for x, g in zip(inputs, grads)]


# ---- the non-smooth points, as documented ---------------------------------------------------


def test_pendulum_reward_gradient_is_right_across_the_angle_normalisation():
    """r = −(norm(θ)² + …) with norm(θ) ∈ [-π, π): ∂r/∂θ = −2 norm(θ) for any unwrapped θ,
    which central differences of the reward confirm away from the kink at θ = ±π (mod 2π)."""
    theta = torch.linspace(-10.0, 10.0, 401, dtype=f64)
    theta = theta[(angle_normalize(theta).abs() - math.pi).abs() > 1e-3]
    state = torch.stack((theta, torch.full_like(theta, 0.5)), -1).requires_grad_(True)
    env = Pendulum(len(theta), dtype=f64, max_episode_steps=NO_LIMIT)
    env.reset(seed=0)
    action = torch.full((len(theta), 1), 0.3, dtype=f64)
    _, reward, *_ = stepper(env)(state, action)
    (d_reward,) = grad(reward, [state])
    assert torch.allclose(d_reward[:, 0], -2 * angle_normalize(theta), atol=1e-12)
    h = 1e-6
    shifted = [stepper(env)(state.detach() + torch.tensor([s * h, 0.0], dtype=f64), action)[1]
               for s in (1, -1)]
    assert torch.allclose(d_reward[:, 0], (shifted[0] - shifted[1]) / (2 * h), atol=1e-6)
    assert (angle_normalize(theta) != theta).float().mean() > 0.5  # most of θ is wrapped


def test_pendulum_clips_cut_the_gradient():
    env = Pendulum(2, dtype=f64, max_episode_steps=NO_LIMIT)
    env.reset(seed=0)
    # Row 0: torque beyond the 2 N·m clip. Row 1: a speed that the 8 rad/s clip cuts.
    state = torch.tensor([[0.3, 1.0], [1.0, 7.9]], dtype=f64, requires_grad=True)
    action = torch.tensor([[3.0], [1.0]], dtype=f64, requires_grad=True)
    _, reward, _, final_state = stepper(env)(state, action)
    assert final_state[1, 1].item() == 8.0
    d_state, d_action = grad(final_state[:, 1], [state, action])
    assert d_action[0, 0] == 0 and d_state[0, 1] == 1  # clipped torque: no gradient
    assert d_action[1, 0] == 0 and (d_state[1] == 0).all()  # clipped speed: none either
    d_state, _ = grad(final_state[1, 0], [state, action])
    assert d_state[1].tolist() == [1.0, 0.0]  # θ' = θ + θ̇' dt still moves with θ
    _, d_action = grad(reward, [state, action])
    assert d_action[0, 0] == 0  # the cost uses the clipped torque too


def test_mountain_car_gradients_at_its_clips_and_wall():
    env = MountainCarContinuous(2, dtype=f64, max_episode_steps=NO_LIMIT)
    env.reset(seed=0)
    # Row 0: force beyond the clip. Row 1: the car runs into the left wall.
    state = torch.tensor([[-0.5, 0.01], [-1.19, -0.05]], dtype=f64, requires_grad=True)
    action = torch.tensor([[1.5], [-0.5]], dtype=f64, requires_grad=True)
    _, reward, _, final_state = stepper(env)(state, action)
    assert final_state[1].tolist() == [-1.2, 0.0]
    _, d_action = grad(final_state[0], [state, action])
    assert d_action[0, 0] == 0  # the dynamics see the clipped force
    _, d_action = grad(reward[0], [state, action])
    assert d_action[0, 0].item() == pytest.approx(-0.2 * 1.5)  # the cost sees the raw action
    d_state, d_action = grad(final_state[1], [state, action])
    assert (d_state[1] == 0).all() and d_action[1, 0] == 0  # the wall stops the car


def test_acrobot_observation_gradient_is_exact_across_the_angle_wrap():
    """θ2 runs past π within the step and is wrapped to near −π; the observation's cos/sin
    are smooth there, and the wrapped angle's gradient is 1 (a shift by 2π)."""
    env = Acrobot(1, dtype=f64, max_episode_steps=NO_LIMIT)
    env.reset(seed=0)
    state = torch.tensor([[0.1, 3.0, -0.3, 2.0]], dtype=f64, requires_grad=True)
    action = torch.tensor([[0.2, 0.3, 0.5]], dtype=f64, requires_grad=True)
    final_state = stepper(env)(state, action)[3]
    assert final_state[0, 1] < -2.5  # it did wrap
    # The same step from θ2 − 2π needs no wrap (the dynamics are 2π-periodic in θ2): same
    # next state, same gradient.
    shifted = (state.detach() - torch.tensor([0.0, 2 * math.pi, 0.0, 0.0])).requires_grad_(True)
    final_shifted = stepper(env)(shifted, action)[3]
    assert torch.allclose(final_shifted, final_state, atol=1e-12)
    for k in range(4):
        (d_wrapped,), (d_unwrapped,) = grad(final_state[0, k], [state]), grad(
            final_shifted[0, k], [shifted])
        assert torch.allclose(d_wrapped, d_unwrapped, atol=1e-10)

    def obs(state, action):
        return stepper(env)(state, action)[0]

    assert torch.autograd.gradcheck(obs, (state, action), eps=1e-6, atol=1e-6)


def test_acrobot_velocity_clip_cuts_the_gradient():
    env = Acrobot(1, dtype=f64, max_episode_steps=NO_LIMIT)
    env.reset(seed=0)
    state = torch.tensor([[0.0, 0.0, 0.0, 9 * math.pi]], dtype=f64, requires_grad=True)
    action = torch.tensor([[0.0, 0.0, 1.0]], dtype=f64, requires_grad=True)
    final_state = stepper(env)(state, action)[3]
    assert final_state[0, 3].item() == pytest.approx(9 * math.pi)
    d_state, d_action = grad(final_state[0, 3], [state, action])
    assert (d_state == 0).all() and (d_action == 0).all()


def test_cartpole_reward_has_no_gradient():
    env = CartPole(N, dtype=f64, max_episode_steps=NO_LIMIT)
    env.reset(seed=0)
    state, action = (x.clone().requires_grad_(True) for x in SMOOTH[CartPole])
    obs, reward, *_ = stepper(env)(state, action)
    assert all((g == 0).all() for g in grad(reward, [state, action]))
    assert all((g != 0).any() for g in grad(obs, [state, action]))


# ---- no gradient crosses an autoreset ---------------------------------------------------------


@pytest.mark.parametrize("cls", list(SMOOTH), ids=lambda cls: cls.__name__)
def test_no_gradient_crosses_an_autoreset(cls):
    """Two steps of a 2-step time limit: every row resets at the second. The reset rows
    (obs, state, and all that follows from them) do not depend on the earlier state or
    actions; the ended episode's final obs does."""
    env = cls(N, dtype=f64, max_episode_steps=2)
    env.reset(seed=0)
    start, action = SMOOTH[cls]
    start = start.clone().requires_grad_(True)
    actions = [action.clone().requires_grad_(True) for _ in range(3)]
    env.state = start
    env.step(actions[0])
    obs, _, _, truncated, info = env.step(actions[1])
    assert truncated.all()
    inputs = [start, actions[0], actions[1]]
    assert all((g != 0).any() for g in grad(info["final_obs"], inputs))
    for reset_part in (obs, env.state):
        assert all((g == 0).all() for g in grad(reset_part, inputs))
    next_obs, reward, *_ = env.step(actions[2])
    for later in (next_obs, reward):
        assert all((g == 0).all() for g in grad(later, inputs))
    assert (grad(next_obs, [actions[2]])[0] != 0).any()  # gradients flow again from here


def test_no_gradient_crosses_a_termination_but_other_rows_keep_theirs():
    env = CartPole(2, dtype=f64, max_episode_steps=NO_LIMIT)
    env.reset(seed=0)
    start = torch.tensor([[2.399, 1.0, 0.0, 0.0], [0.0, 0.0, 0.01, 0.0]], dtype=f64,
                         requires_grad=True)
    action = relaxed_one_hot(2, 2, 0).requires_grad_(True)
    env.state = start
    obs, _, terminated, _, info = env.step(action)
    assert terminated.tolist() == [True, False]
    d_start, d_action = grad(obs[0], [start, action])
    assert (d_start == 0).all() and (d_action == 0).all()
    d_start, d_action = grad(info["final_obs"][0], [start, action])
    assert (d_start[0] != 0).any() and (d_action[0] != 0).any()
    d_start, d_action = grad(obs[1], [start, action])
    assert (d_start[1] != 0).any() and (d_action[1] != 0).any() and (d_start[0] == 0).all()


# ---- sensitivity over a long horizon ------------------------------------------------------------


def sensitivities(cls, horizons, batch=32, seed=0):
    """‖∂(u · s_T)/∂s_0‖ per env for each T in `horizons`, zero actions, float64, with a fixed
    random unit vector u per env: the growth of ‖J_Tᵀ u‖ is that of ‖J_T‖ (u almost surely
    has a component along the most expanding direction)."""
    env = cls(batch, dtype=f64, max_episode_steps=NO_LIMIT)
    env.reset(seed=seed)
    start = env.state.clone().requires_grad_(True)
    u = torch.nn.functional.normalize(uniform(-1, 1, (batch, env.state_dim), seed), dim=1)
    action = torch.zeros(batch, *env.single_action_space.shape, dtype=f64)
    state, norms = start, {}
    for t in range(1, max(horizons) + 1):
        state, _, _ = env.transition(state, action)
        if t in horizons:
            (g,) = torch.autograd.grad((u * state).sum(), start, retain_graph=True)
            norms[t] = g.norm(dim=1)
    return norms


def test_point_mass_sensitivity_stays_bounded_over_a_long_horizon():
    """Linear damped dynamics: ‖J_T‖ ≤ 1 + (1 − c dt)/c for every T (PointMass docstring);
    measured, it levels off instead of growing."""
    norms = sensitivities(PointMass, {10, 100, 1000}, batch=8)
    bound = 1 + (1 - PointMass.damping * PointMass.dt) / PointMass.damping
    assert all((n <= bound).all() for n in norms.values())
    assert (norms[1000] / norms[100]).max() < 1.1


def test_double_pendulum_sensitivity_grows_exponentially():
    """A positive finite-time Lyapunov exponent: over 6 s (40 → 160 steps) the median
    sensitivity grows by more than e³ (λ > 0.5 s⁻¹), while PointMass's does not grow."""
    early, late = 40, 160
    norms = sensitivities(DoublePendulum, {early, late})
    growth = (norms[late].log() - norms[early].log()).median().item()
    seconds = (late - early) * DoublePendulum.dt
    assert growth / seconds > 0.5, growth
    calm = sensitivities(PointMass, {early, late})
    assert (calm[late].log() - calm[early].log()).median().abs() < 0.2


def test_double_pendulum_gradient_matches_the_divergence_of_nearby_trajectories():
    """The autograd sensitivity is the dynamics' own: trajectories started δ apart along u
    separate by δ‖J_T u‖ (float64, δ small enough to stay linear over T)."""
    batch, horizon, delta = 8, 40, 1e-7
    env = DoublePendulum(batch, dtype=f64, max_episode_steps=NO_LIMIT)
    env.reset(seed=0)
    start = env.state.clone()
    u = torch.nn.functional.normalize(uniform(-1, 1, (batch, 4), 1), dim=1)
    action = torch.zeros(batch, 2, dtype=f64)

    def roll(s):
        for _ in range(horizon):
            s, _, _ = env.transition(s, action)
        return s

    jvp = torch.autograd.functional.jvp(roll, start, u)[1]
    separation = (roll(start + delta * u) - roll(start - delta * u)) / (2 * delta)
    assert torch.allclose(separation, jvp, rtol=1e-4, atol=1e-4)
    assert np.median(jvp.norm(dim=1).numpy()) > 10  # they did diverge
