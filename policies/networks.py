"""Networks: a plain MLP and an ensemble of MLPs evaluated as one batched matmul."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def _activation(activation) -> nn.Module:
    """ReLU in place: it overwrites the layer's fresh output instead of writing another
    tensor as large. Autograd allows it (a linear layer's backward needs its input, not its
    output), and on a CPU it is measurably faster: a new B×256 tensor per activation is
    written to cold memory, while the one just computed is still in cache."""
    return nn.ReLU(inplace=True) if activation is nn.ReLU else activation()


def mlp(
    in_dim: int, out_dim: int, hidden_sizes: Sequence[int], activation=nn.ReLU
) -> nn.Sequential:
    """``Linear → act → … → Linear`` with PyTorch's default initialisation."""
    layers: list[nn.Module] = []
    last = in_dim
    for width in hidden_sizes:
        layers += [nn.Linear(last, width), _activation(activation)]
        last = width
    layers.append(nn.Linear(last, out_dim))
    return nn.Sequential(*layers)


class EnsembleLinear(nn.Module):
    """``n`` independent linear layers applied as one ``baddbmm``: (n, B, in) → (n, B, out).

    Initialised like ``nn.Linear`` (uniform in ±1/sqrt(in) for weight and bias), each member
    independently.
    """

    def __init__(self, n: int, in_dim: int, out_dim: int):
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        if frozen:  # gradients flow to the input only, never to the parameters
            return torch.baddbmm(self.bias.detach(), x, self.weight.detach())
        return torch.baddbmm(self.bias, x, self.weight)


class MLPEnsemble(nn.Module):
    """``n`` MLPs of the same shape, fused: one kernel per layer instead of ``n``.

    Input (B, in) is shared by every member (or (n, B, in), one slice each); output is
    (n, B, out). Used for SAC's twin critics (Fujimoto et al. 2018's clipped double Q).
    """

    def __init__(self, n: int, in_dim: int, out_dim: int, hidden_sizes: Sequence[int],
                 activation=nn.ReLU):
        super().__init__()
        self.n = n
        layers: list[nn.Module] = []
        last = in_dim
        for width in hidden_sizes:
            layers += [EnsembleLinear(n, last, width), _activation(activation)]
            last = width
        layers.append(EnsembleLinear(n, last, out_dim))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        """``frozen``: the parameters enter detached, so a loss sends gradients to the input
        (an actor's action) and leaves every parameter's ``.grad`` untouched."""
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.n, -1, -1)
        for layer in self.layers:
            x = layer(x, frozen) if isinstance(layer, EnsembleLinear) else layer(x)
        return x


class QEnsemble(nn.Module):
    """Twin (or ``n``-fold) action-value critics.

    * Box actions: ``Q_i(s, a)`` from ``concat(s, a)``; ``forward(obs, action)`` → (n, B).
    * Discrete actions: one output per action, ``q_i(s) ∈ R^|A|``; ``forward(obs)`` →
      (n, B, |A|). A (possibly relaxed) one-hot action y is valued ``⟨y, q_i(s)⟩``.
    """

    def __init__(self, obs_dim: int, action_dim: int, discrete: bool,
                 hidden_sizes: Sequence[int], n: int = 2):
        super().__init__()
        self.discrete = discrete
        in_dim = obs_dim if discrete else obs_dim + action_dim
        out_dim = action_dim if discrete else 1
        self.net = MLPEnsemble(n, in_dim, out_dim, hidden_sizes)

    def forward(self, obs: torch.Tensor, action: torch.Tensor | None = None,
                frozen: bool = False) -> torch.Tensor:
        """``frozen``: value with the parameters held fixed (see ``MLPEnsemble.forward``)."""
        if self.discrete:
            return self.net(obs, frozen)
        # Actions may carry leading sample dimensions (S, B, A): flatten them into the batch.
        lead = action.shape[:-1]
        obs = obs.expand(lead + obs.shape[-1:]).reshape(-1, obs.shape[-1])
        q = self.net(torch.cat([obs, action.reshape(-1, action.shape[-1])], -1), frozen)
        return q.squeeze(-1).reshape((q.shape[0],) + lead)
