"""Shared physics for the torch envs: a classical Runge-Kutta step and the two-link pendulum.

Both `Acrobot` (Gymnasium's, torque at the elbow only) and `DoublePendulum` (torque at both
joints) are the same two-link chain, so its equations of motion live here once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["TwoLink", "rk4", "two_link_derivatives"]


def rk4(f: Callable[[torch.Tensor], torch.Tensor], y: torch.Tensor, dt: float) -> torch.Tensor:
    """One classical fourth-order Runge-Kutta step of dy/dt = f(y) (autonomous f; the action
    is held fixed over the step, as Gymnasium's Acrobot does)."""
    k1 = f(y)
    k2 = f(y + dt / 2 * k1)
    k3 = f(y + dt / 2 * k2)
    k4 = f(y + dt * k3)
    return y + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)


@dataclass(frozen=True)
class TwoLink:
    """A planar two-link chain hanging from a fixed pivot: link masses m, lengths l, centres of
    mass lc from each link's pivot, moments of inertia I about those centres, gravity g."""

    m1: float
    m2: float
    l1: float
    lc1: float
    lc2: float
    i1: float
    i2: float
    g: float = 9.8


def two_link_derivatives(
    link: TwoLink, state: torch.Tensor, tau1: torch.Tensor | float, tau2: torch.Tensor
) -> torch.Tensor:
    """d/dt [θ1, θ2, θ̇1, θ̇2] for torques tau1 (shoulder) and tau2 (elbow).

    θ1 is the first link's angle from hanging straight down, θ2 the second link's angle
    relative to the first (Gymnasium's Acrobot coordinates). These are the acrobot's equations
    (Sutton & Barto 1998, §11.3; Spong 1995): the manipulator equation M(θ)θ̈ + C(θ, θ̇) +
    G(θ) = τ, solved for θ̈ by eliminating θ̈1, in the order Gymnasium's `AcrobotEnv._dsdt`
    ("book" variant) computes them, with a shoulder torque tau1 added (tau1 = 0 gives that
    function's values exactly).
    """
    m1, m2, l1, lc1, lc2, i1, i2, g = (
        link.m1, link.m2, link.l1, link.lc1, link.lc2, link.i1, link.i2, link.g
    )
    theta1, theta2, dtheta1, dtheta2 = state.unbind(-1)
    sin2, cos2 = torch.sin(theta2), torch.cos(theta2)
    h = m2 * l1 * lc2 * sin2  # ∂M11/∂θ2 = −2h: the Coriolis and centrifugal terms' factor
    # Inertia terms: d1 = M11, d2 = M12.
    d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * cos2) + i1 + i2
    d2 = m2 * (lc2**2 + l1 * lc2 * cos2) + i2
    # Gravity, Coriolis and centrifugal terms; cos(x − π/2) is sin(x), in Gymnasium's form.
    phi2 = m2 * lc2 * g * torch.cos(theta1 + theta2 - math.pi / 2.0)
    phi1 = (
        -h * dtheta2**2
        - 2 * h * dtheta2 * dtheta1
        + (m1 * lc1 + m2 * l1) * g * torch.cos(theta1 - math.pi / 2)
        + phi2
    ) - tau1
    ddtheta2 = (tau2 + d2 / d1 * phi1 - h * dtheta1**2 - phi2) / (m2 * lc2**2 + i2 - d2**2 / d1)
    ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
    return torch.stack((dtheta1, dtheta2, ddtheta1, ddtheta2), dim=-1)


def two_link_observation(state: torch.Tensor) -> torch.Tensor:
    """Acrobot's observation of a [θ1, θ2, θ̇1, θ̇2] state (Gymnasium's acrobot.py):
    [cos θ1, sin θ1, cos θ2, sin θ2, θ̇1, θ̇2]; smooth in the angles, so no wrap reaches it."""
    theta1, theta2, dtheta1, dtheta2 = state.unbind(-1)
    return torch.stack((torch.cos(theta1), torch.sin(theta1), torch.cos(theta2),
                        torch.sin(theta2), dtheta1, dtheta2), -1)
