"""Two continuous-control tasks for policy gradients through the dynamics (APG, SHAC).

They bracket what backpropagation through a rollout meets (Parmas et al. 2018, "PIPPS"):

- `PointMass`: linear, damped dynamics. The state's sensitivity to an earlier state,
  ‖∂s_T/∂s_0‖, stays bounded however long the horizon, so the model-pathwise gradient is
  well behaved.
- `DoublePendulum`: a frictionless double pendulum, chaotic at the energies its reset
  distribution starts from: nearby trajectories separate exponentially (a positive Lyapunov
  exponent; Shinbrot et al. 1992, "Chaos in a double pendulum"), so ‖∂s_T/∂s_0‖ grows like
  e^{λT} and the gradient of a long rollout explodes even though every step is smooth.

Both are smooth everywhere apart from the action clip: no termination, no state clipping or
wrapping, so the gradients `step` hands back are exact (zero only for an action outside its
box, whose clip cuts it). The tests measure both growth rates.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from pathwise.envs.physics import TwoLink, rk4, two_link_derivatives, two_link_observation
from pathwise.envs.vector import TorchEnv

__all__ = ["DoublePendulum", "PointMass"]


class PointMass(TorchEnv):
    """A unit point mass on a plane, pushed by a force toward the goal at the origin.

    State = observation [x, y, vx, vy]; action: force (num_envs, 2), clipped to [-1, 1]².
    Semi-implicit Euler with linear damping, dt = 0.05:

        v' = v + dt (f − c v),   p' = p + dt v'          (c = 1)

    Reward −(‖p'‖² + 0.1 ‖v'‖² + 0.01 ‖f‖²) (a quadratic cost, as in LQR), of the state the
    step reaches. Never terminates; truncated at 200 steps. Reset: p ~ U([-1, 1]²),
    v ~ U([-0.1, 0.1]²).

    Per axis, ∂(p', v')/∂(p, v) = [[1, dt(1 − c dt)], [0, 1 − c dt]], whose powers stay
    bounded (eigenvalues 1 and 1 − c dt): ‖∂s_T/∂s_0‖ ≤ 1 + (1 − c dt)/c for every T.
    """

    state_dim = 4
    default_max_episode_steps = 200
    dt, damping, max_force = 0.05, 1.0, 1.0
    reset_low = (-1.0, -1.0, -0.1, -0.1)
    reset_high = (1.0, 1.0, 0.1, 0.1)

    def __init__(self, num_envs: int = 1, **kwargs: Any):
        super().__init__(num_envs, **kwargs)
        dtype = self.np_dtype
        self._finish_init(
            spaces.Box(-np.inf, np.inf, (4,), dtype=dtype),
            spaces.Box(-self.max_force, self.max_force, (2,), dtype=dtype),
        )

    def transition(self, state, action):
        position, velocity = state[..., :2], state[..., 2:]
        force = action.clamp(-self.max_force, self.max_force)
        velocity = velocity + self.dt * (force - self.damping * velocity)
        position = position + self.dt * velocity
        cost = (position**2).sum(-1) + 0.1 * (velocity**2).sum(-1) + 0.01 * (force**2).sum(-1)
        terminated = torch.zeros(state.shape[:-1], dtype=torch.bool, device=state.device)
        return torch.cat((position, velocity), -1), -cost, terminated

    def observe(self, state):
        return state


class DoublePendulum(TorchEnv):
    """A frictionless double pendulum (two point masses on massless rods) with a torque at each
    joint: swing the tip up.

    State [θ1, θ2, θ̇1, θ̇2] in Acrobot's coordinates (θ1 from hanging down, θ2 relative to
    the first link; not wrapped); observation [cos θ1, sin θ1, cos θ2, sin θ2, θ̇1, θ̇2];
    action: torques (num_envs, 2), clipped to [-2, 2]². m1 = m2 = 1, l1 = l2 = 1, g = 9.8;
    a step of dt = 0.05 is 4 RK4 steps of 0.0125 (`physics.two_link_derivatives` with the
    masses at the rod ends): a single RK4 step of 0.05 lets the energy of a tumbling
    pendulum drift by tens of percent over an episode, four keep it within about 0.1%.
    Reward: the tip's height over the pivot as a fraction of the reach, in [-1, 1], minus
    0.001 ‖τ‖². Never terminates; truncated at 200 steps. Reset: θ1, θ2 ~ U(-π, π),
    θ̇1, θ̇2 ~ U(-0.1, 0.1), so most episodes start with the energy to tumble chaotically.

    Every step is smooth (gradients exact except to a clipped torque), but the dynamics are
    chaotic: ∂s_T/∂s_0 grows exponentially with T.
    """

    state_dim = 4
    default_max_episode_steps = 200
    dt, substeps, max_torque = 0.05, 4, 2.0
    l1 = l2 = 1.0
    link = TwoLink(m1=1.0, m2=1.0, l1=1.0, lc1=1.0, lc2=1.0, i1=0.0, i2=0.0)
    reset_low = (-math.pi, -math.pi, -0.1, -0.1)
    reset_high = (math.pi, math.pi, 0.1, 0.1)

    def __init__(self, num_envs: int = 1, **kwargs: Any):
        super().__init__(num_envs, **kwargs)
        dtype = self.np_dtype
        high = np.array([1.0, 1.0, 1.0, 1.0, np.inf, np.inf], dtype=dtype)
        self._finish_init(
            spaces.Box(-high, high, dtype=dtype),
            spaces.Box(-self.max_torque, self.max_torque, (2,), dtype=dtype),
        )

    def transition(self, state, action):
        torque = action.clamp(-self.max_torque, self.max_torque)
        tau1, tau2 = torque.unbind(-1)
        next_state = state
        for _ in range(self.substeps):
            next_state = rk4(lambda s: two_link_derivatives(self.link, s, tau1, tau2),
                             next_state, self.dt / self.substeps)
        reward = self.tip_height(next_state) - 0.001 * (torque**2).sum(-1)
        terminated = torch.zeros(state.shape[:-1], dtype=torch.bool, device=state.device)
        return next_state, reward, terminated

    def observe(self, state):
        return two_link_observation(state)

    def tip_height(self, state: torch.Tensor) -> torch.Tensor:
        """Height of the second mass above the pivot, over the reach l1 + l2: −1 hanging down,
        1 straight up."""
        theta1, theta2 = state[..., 0], state[..., 1]
        height = -self.l1 * torch.cos(theta1) - self.l2 * torch.cos(theta1 + theta2)
        return height / (self.l1 + self.l2)

    def energy(self, state: torch.Tensor) -> torch.Tensor:
        """Total mechanical energy (kinetic + potential, zero at the pivot's height); conserved
        without torque, up to the integrator's error."""
        m1, m2, l1, l2, g = self.link.m1, self.link.m2, self.l1, self.l2, self.link.g
        theta1, theta2, dtheta1, dtheta2 = state.unbind(-1)
        # Velocities of the two masses: ṗ1 = l1 θ̇1, ṗ2 = ṗ1 + l2 (θ̇1 + θ̇2) (as vectors).
        w2 = dtheta1 + dtheta2
        v2_squared = (l1 * dtheta1) ** 2 + (l2 * w2) ** 2 + 2 * l1 * l2 * dtheta1 * w2 * torch.cos(
            theta2
        )
        kinetic = 0.5 * m1 * (l1 * dtheta1) ** 2 + 0.5 * m2 * v2_squared
        potential = -(m1 + m2) * g * l1 * torch.cos(theta1) - m2 * g * l2 * torch.cos(
            theta1 + theta2
        )
        return kinetic + potential
