"""Guards against NaN and ±inf in training (``nan_policy``), and the optimizer they guard.

* ``stop`` (default): the runner checks the last losses and every parameter at each log
  interval and before each checkpoint (one host sync each time, never per step), and stops
  the run at the first non-finite value, before it can reach ``checkpoints/last.pt``.
* ``skip``: every optimizer step goes through ``optimizer_step(..., skip_nonfinite=True)``,
  which leaves the parameters and the optimizer's state untouched when the loss or a gradient
  is non-finite, and says so with a device-side flag that the agent adds up in
  ``charts/nan_skips``.
"""

from __future__ import annotations

import torch

NAN_POLICIES = ("stop", "skip")


def make_adam(params, lr: float) -> torch.optim.Adam:
    """Adam, fused into one kernel where this torch build supports it on the device (which
    also lets ``optimizer_step`` skip a non-finite step without a host sync)."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr)


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, params,
                   skip_nonfinite: bool = False,
                   max_grad_norm: float | None = None) -> torch.Tensor | None:
    """zero_grad → backward → clip (when ``max_grad_norm``) → step, on ``params``.

    With ``skip_nonfinite`` the step is skipped where the loss or the gradient norm is NaN or
    ±inf; returns that as a bool tensor on the device (None without ``skip_nonfinite``).

    The skip costs no host sync on a fused optimizer (what ``make_adam`` builds): the flag
    goes in as the optimizer's ``found_inf``, the hook ``torch.amp.GradScaler`` uses, and the
    fused kernel then leaves parameters, moments and step count as they were. Any other
    optimizer has to read the flag on the host first: one sync per step.
    """
    params = list(params)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = None
    if max_grad_norm is not None:
        norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    if not skip_nonfinite:
        optimizer.step()
        return None
    if norm is None:
        grads = [p.grad for p in params if p.grad is not None]
        # Only finiteness matters here; a norm of per-tensor norms is inf/nan exactly when
        # some gradient entry is (torch.nn.utils.get_total_norm is torch>=2.6 only).
        norm = (torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
                if grads else loss.new_zeros(()))
    bad = ~(torch.isfinite(loss.detach()) & torch.isfinite(norm))
    if optimizer.defaults.get("fused"):
        optimizer.found_inf = bad.to(torch.float32)
        try:
            optimizer.step()
        finally:
            del optimizer.found_inf
    elif not bad.item():
        optimizer.step()
    return bad
