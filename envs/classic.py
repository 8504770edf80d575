"""Gymnasium's classic-control tasks as batched torch envs (see `vector.py` for the contract).

Each class reproduces its Gymnasium env's physics, constants, reset distribution, reward,
termination and time limit, in the state coordinates of Gymnasium's `env.unwrapped.state`; the
physics and constants follow Gymnasium's `envs/classic_control/*.py` (1.4), which the tests use
as the oracle. Each docstring says where the step is not differentiable and what its gradient
is there.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from pathwise.envs.physics import TwoLink, rk4, two_link_derivatives, two_link_observation
from pathwise.envs.vector import TorchEnv

__all__ = ["Acrobot", "CartPole", "MountainCarContinuous", "Pendulum", "angle_normalize"]


def _bounds(options: dict[str, Any], low_key: str, high_key: str, low: float, high: float):
    """Gymnasium's `maybe_parse_reset_bounds`: optional numeric overrides of a reset range."""
    options = dict(options)
    low, high = float(options.pop(low_key, low)), float(options.pop(high_key, high))
    if options:
        raise ValueError(f"unknown reset options {sorted(options)}")
    if low > high:
        raise ValueError(f"reset bound {low_key}={low} is above {high_key}={high}")
    return low, high


def angle_normalize(theta: torch.Tensor) -> torch.Tensor:
    """θ wrapped into [-π, π). Its gradient is 1 (torch.remainder's, exact away from the wrap)."""
    return torch.remainder(theta + math.pi, 2 * math.pi) - math.pi


# --------------------------------------------------------------------------------------------
# Pendulum-v1
# --------------------------------------------------------------------------------------------


class Pendulum(TorchEnv):
    """Gymnasium's `Pendulum-v1` (classic_control/pendulum.py): swing a pendulum up and hold it.

    State [θ, θ̇], θ = 0 upright and not wrapped (as Gymnasium keeps it); observation
    [cos θ, sin θ, θ̇]; action: torque (num_envs, 1), clipped to [-2, 2]. Semi-implicit Euler,
    dt = 0.05: θ̇' = clip(θ̇ + (3g/2l · sin θ + 3/(ml²) · u) dt, ±8), θ' = θ + θ̇' dt. Reward
    −(norm(θ)² + 0.1 θ̇² + 0.001 u²) of the state before the step, with norm(θ) ∈ [-π, π) and
    u the clipped torque. Never terminates; truncated at 200 steps. Reset: θ ~ U(-π, π),
    θ̇ ~ U(-1, 1) (options `x_init`, `y_init` set those bounds, as in Gymnasium).

    Gradients are exact except:
    - torque clip: zero gradient to an action outside [-2, 2];
    - speed clip: where θ̇' is clipped to ±8, ∂θ̇'/∂(θ, θ̇, u) = 0 (θ' still moves with θ);
    - the angle normalisation in the reward has gradient 1, which is exact: norm(θ)² is
      continuous across the wrap at θ = ±π (hanging down), where it only has a kink (the
      one-sided derivatives ±2π); there the gradient is the one of the side θ lies on.
    """

    gymnasium_id = "Pendulum-v1"  # the Gymnasium env this one reproduces
    state_dim = 2
    default_max_episode_steps = 200
    max_speed, max_torque, dt, m, l = 8.0, 2.0, 0.05, 1.0, 1.0

    def __init__(self, num_envs: int = 1, *, g: float = 10.0, **kwargs: Any):
        super().__init__(num_envs, **kwargs)
        self.g = float(g)
        dtype = self.np_dtype
        high = np.array([1.0, 1.0, self.max_speed], dtype=dtype)
        self._finish_init(
            spaces.Box(-high, high, dtype=dtype),
            spaces.Box(-self.max_torque, self.max_torque, (1,), dtype=dtype),
        )

    def _reset_box(self, options):
        x, y = math.pi, 1.0
        if options:
            options = dict(options)
            x, y = float(options.pop("x_init", x)), float(options.pop("y_init", y))
            if options:
                raise ValueError(f"unknown reset options {sorted(options)}")
        return (-x, -y), (x, y)

    def transition(self, state, action):
        theta, theta_dot = state.unbind(-1)
        u = action[..., 0].clamp(-self.max_torque, self.max_torque)
        cost = angle_normalize(theta) ** 2 + 0.1 * theta_dot**2 + 0.001 * u**2

        g, m, l, dt = self.g, self.m, self.l, self.dt
        acc = 3 * g / (2 * l) * torch.sin(theta) + 3.0 / (m * l**2) * u
        new_theta_dot = (theta_dot + acc * dt).clamp(-self.max_speed, self.max_speed)
        new_theta = theta + new_theta_dot * dt
        terminated = torch.zeros_like(theta, dtype=torch.bool)
        return torch.stack((new_theta, new_theta_dot), -1), -cost, terminated

    def observe(self, state):
        theta, theta_dot = state.unbind(-1)
        return torch.stack((torch.cos(theta), torch.sin(theta), theta_dot), -1)


# --------------------------------------------------------------------------------------------
# CartPole-v1
# --------------------------------------------------------------------------------------------


class CartPole(TorchEnv):
    """Gymnasium's `CartPole-v1` (classic_control/cartpole.py; Barto, Sutton & Anderson 1983,
    with the equations of Florian 2007, "Correct equations for the dynamics of the cart-pole
    system"): keep a pole upright by pushing its cart left or right.

    State = observation [x, ẋ, θ, θ̇]; action Discrete(2): 0 pushes left, 1 right, with force
    10 N; explicit Euler, dt = 0.02. Reward 1 per step, including the step that terminates
    (`sutton_barto_reward=True`: 0, and −1 on that step). Terminates when |x| > 2.4 or
    |θ| > 12°; truncated at 500 steps. Reset: each coordinate ~ U(-0.05, 0.05) (options
    `low`, `high`).

    Gradients: the observation is smooth in the state and in the force, so it is exact, also
    through a float (num_envs, 2) one-hot action (force = a · [−10, 10], a straight-through
    Gumbel-softmax gradient). The reward is constant and termination is a step function of
    the state, so both have zero gradient: a return's gradient through the dynamics carries no
    information about when the pole falls.
    """

    gymnasium_id = "CartPole-v1"  # the Gymnasium env this one reproduces
    state_dim = 4
    default_max_episode_steps = 500
    gravity, masscart, masspole, length = 9.8, 1.0, 0.1, 0.5  # length: half the pole's
    force_mag, tau = 10.0, 0.02
    theta_threshold_radians = 12 * 2 * math.pi / 360
    x_threshold = 2.4

    def __init__(self, num_envs: int = 1, *, sutton_barto_reward: bool = False, **kwargs: Any):
        super().__init__(num_envs, **kwargs)
        self.sutton_barto_reward = bool(sutton_barto_reward)
        self.total_mass = self.masspole + self.masscart
        self.polemass_length = self.masspole * self.length
        self._forces = self._tensor([-self.force_mag, self.force_mag])
        dtype = self.np_dtype
        high = np.array(
            [self.x_threshold * 2, np.inf, self.theta_threshold_radians * 2, np.inf], dtype=dtype
        )
        self._finish_init(spaces.Box(-high, high, dtype=dtype), spaces.Discrete(2))

    def _reset_box(self, options):
        low, high = _bounds(options or {}, "low", "high", -0.05, 0.05)
        return (low,) * 4, (high,) * 4

    def transition(self, state, action):
        x, x_dot, theta, theta_dot = state.unbind(-1)
        force = action @ self._forces
        costheta, sintheta = torch.cos(theta), torch.sin(theta)

        temp = (force + self.polemass_length * theta_dot**2 * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * costheta**2 / self.total_mass)
        )
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass

        # Explicit Euler (Gymnasium's default "euler" integrator): positions use old velocities.
        x, x_dot = x + self.tau * x_dot, x_dot + self.tau * xacc
        theta, theta_dot = theta + self.tau * theta_dot, theta_dot + self.tau * thetaacc
        next_state = torch.stack((x, x_dot, theta, theta_dot), -1)

        terminated = (x.abs() > self.x_threshold) | (theta.abs() > self.theta_threshold_radians)
        if self.sutton_barto_reward:
            reward = -terminated.to(state.dtype)
        else:
            reward = torch.ones_like(x)
        return next_state, reward, terminated

    def observe(self, state):
        return state


# --------------------------------------------------------------------------------------------
# Acrobot-v1
# --------------------------------------------------------------------------------------------


def _wrap(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Shift x by whole periods into [low, high], as Gymnasium's `acrobot.wrap` loop does.
    The shift is piecewise constant, so the gradient is 1."""
    period = high - low
    above = torch.ceil((x - high) / period).clamp(min=0)
    below = torch.ceil((low - x) / period).clamp(min=0)
    return x - (above - below) * period


class Acrobot(TorchEnv):
    """Gymnasium's `Acrobot-v1` (classic_control/acrobot.py; Sutton 1996; Sutton & Barto
    1998, §11.3): swing the tip of a two-link chain above a line by torquing the elbow.

    State [θ1, θ2, θ̇1, θ̇2] (θ1 from hanging down, θ2 relative to link 1); observation
    [cos θ1, sin θ1, cos θ2, sin θ2, θ̇1, θ̇2]; action Discrete(3): elbow torque −1, 0, +1. One
    RK4 step of dt = 0.2 (`physics.two_link_derivatives`, Gymnasium's "book" dynamics), then
    the angles are wrapped into [-π, π] and the velocities clipped to ±4π and ±9π. Reward −1
    per step, 0 on the step that terminates, which is when −cos θ1 − cos(θ1 + θ2) > 1;
    truncated at 500 steps. Reset: each coordinate ~ U(-0.1, 0.1) (options `low`, `high`).

    Gradients: exact through the RK4 step, also through a float (num_envs, 3) one-hot action
    (torque = a · [−1, 0, 1]), except:
    - angle wrap: gradient 1 (a shift by 2π), exact; the observation's cos/sin are smooth
      across the wrap anyway;
    - velocity clip: where a velocity is clipped, its gradient is 0;
    - the reward is piecewise constant (gradient 0) and termination a step function.
    """

    gymnasium_id = "Acrobot-v1"  # the Gymnasium env this one reproduces
    state_dim = 4
    default_max_episode_steps = 500
    dt = 0.2
    max_vel_1, max_vel_2 = 4 * math.pi, 9 * math.pi
    link = TwoLink(m1=1.0, m2=1.0, l1=1.0, lc1=0.5, lc2=0.5, i1=1.0, i2=1.0)

    def __init__(self, num_envs: int = 1, **kwargs: Any):
        super().__init__(num_envs, **kwargs)
        self._torques = self._tensor([-1.0, 0.0, 1.0])
        dtype = self.np_dtype
        high = np.array([1.0, 1.0, 1.0, 1.0, self.max_vel_1, self.max_vel_2], dtype=dtype)
        self._finish_init(spaces.Box(-high, high, dtype=dtype), spaces.Discrete(3))

    def _reset_box(self, options):
        low, high = _bounds(options or {}, "low", "high", -0.1, 0.1)
        return (low,) * 4, (high,) * 4

    def transition(self, state, action):
        torque = action @ self._torques
        ns = rk4(lambda s: two_link_derivatives(self.link, s, 0.0, torque), state, self.dt)
        theta1, theta2, dtheta1, dtheta2 = ns.unbind(-1)
        theta1 = _wrap(theta1, -math.pi, math.pi)
        theta2 = _wrap(theta2, -math.pi, math.pi)
        dtheta1 = dtheta1.clamp(-self.max_vel_1, self.max_vel_1)
        dtheta2 = dtheta2.clamp(-self.max_vel_2, self.max_vel_2)
        next_state = torch.stack((theta1, theta2, dtheta1, dtheta2), -1)

        terminated = -torch.cos(theta1) - torch.cos(theta2 + theta1) > 1.0
        reward = terminated.to(state.dtype) - 1.0
        return next_state, reward, terminated

    def observe(self, state):
        return two_link_observation(state)


# --------------------------------------------------------------------------------------------
# MountainCarContinuous-v0
# --------------------------------------------------------------------------------------------


class MountainCarContinuous(TorchEnv):
    """Gymnasium's `MountainCarContinuous-v0` (classic_control/continuous_mountain_car.py;
    Moore 1990): drive an underpowered car up the right hill by rocking it.

    State = observation [position, velocity]; action: force (num_envs, 1), clipped to [-1, 1].
    v' = clip(v + 0.0015 f − 0.0025 cos(3p), ±0.07), p' = clip(p + v', [-1.2, 0.6]), and v' = 0
    where the car hits the left wall moving left. Terminates when p' ≥ 0.45 and
    v' ≥ goal_velocity (0); reward 100 on that step, minus 0.1 a² every step, where a is the
    action *before* clipping (as in Gymnasium). Truncated at 999 steps. Reset: p ~ U(-0.6,
    -0.4) (options `low`, `high`), v = 0.

    Gradients: exact except
    - force clip: the force's gradient is 0 outside [-1, 1] (the reward's −0.2a is not);
    - speed clip: where v' is clipped, ∂v'/∂· = 0;
    - the walls: where p' is clipped its gradient is 0, and at the left wall v' is set to 0
      (gradient 0);
    - the goal bonus is a step function of the state (gradient 0).
    """

    gymnasium_id = "MountainCarContinuous-v0"  # the Gymnasium env this one reproduces
    state_dim = 2
    default_max_episode_steps = 999
    min_action, max_action = -1.0, 1.0
    min_position, max_position, max_speed = -1.2, 0.6, 0.07
    goal_position, power = 0.45, 0.0015

    def __init__(self, num_envs: int = 1, *, goal_velocity: float = 0.0, **kwargs: Any):
        super().__init__(num_envs, **kwargs)
        self.goal_velocity = float(goal_velocity)
        dtype = self.np_dtype
        self._finish_init(
            spaces.Box(
                np.array([self.min_position, -self.max_speed], dtype=dtype),
                np.array([self.max_position, self.max_speed], dtype=dtype),
                dtype=dtype,
            ),
            spaces.Box(self.min_action, self.max_action, (1,), dtype=dtype),
        )

    def _reset_box(self, options):
        low, high = _bounds(options or {}, "low", "high", -0.6, -0.4)
        return (low, 0.0), (high, 0.0)

    def transition(self, state, action):
        position, velocity = state.unbind(-1)
        a = action[..., 0]
        force = a.clamp(self.min_action, self.max_action)
        velocity = velocity + force * self.power - 0.0025 * torch.cos(3 * position)
        velocity = velocity.clamp(-self.max_speed, self.max_speed)
        unclipped = position + velocity
        position = unclipped.clamp(self.min_position, self.max_position)
        # Gymnasium tests position == min_position after the clip, i.e. unclipped <= min.
        velocity = torch.where((unclipped <= self.min_position) & (velocity < 0), 0.0, velocity)

        terminated = (position >= self.goal_position) & (velocity >= self.goal_velocity)
        reward = 100.0 * terminated.to(state.dtype) - 0.1 * a**2
        return torch.stack((position, velocity), -1), reward, terminated

    def observe(self, state):
        return state
