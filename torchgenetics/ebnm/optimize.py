"""Batched box-constrained Newton ascent for small parameter vectors.

Used to fit the parametric EBNM priors: ``B`` independent problems, each with a
handful of parameters, maximised together. Gradients and Hessians come from
autograd; the Newton direction uses the absolute eigenvalues of the Hessian
(so it ascends even where the objective is not concave), and a per-problem
backtracking line search only accepts steps that raise the objective, so the
result is never worse than the start.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["newton_maximize"]


def _grad_hess(objective, theta):
    th = theta.detach().requires_grad_(True)
    with torch.enable_grad():
        f = objective(th)
        (g,) = torch.autograd.grad(f.sum(), th, create_graph=True)
        rows = []
        for j in range(th.shape[1]):
            (h,) = torch.autograd.grad(g[:, j].sum(), th, retain_graph=j + 1 < th.shape[1])
            rows.append(h)
    return f.detach(), g.detach(), torch.stack(rows, dim=1).detach()


def newton_maximize(
    objective: Callable[[torch.Tensor], torch.Tensor],
    theta0: torch.Tensor,
    lower: torch.Tensor,
    upper: torch.Tensor,
    max_iter: int = 100,
    rtol: float = 1e-12,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Maximise ``B`` independent objectives of ``d`` box-constrained parameters.

    Parameters
    ----------
    objective : callable
        Maps parameters ``(B, d)`` to values ``(B,)``; must be differentiable.
    theta0 : torch.Tensor
        Start ``(B, d)`` (clipped into the box).
    lower, upper : torch.Tensor
        Bounds broadcastable to ``(B, d)``.
    max_iter : int
        Newton iterations at most.
    rtol : float
        Stop a problem when the predicted gain ``g^T delta`` falls below
        ``rtol * (1 + |f|)`` or no step along the direction raises ``f``.

    Returns
    -------
    (torch.Tensor, torch.Tensor, int)
        Parameters, objective values and the number of iterations run.

    Examples
    --------
    >>> f = lambda t: -((t - 3.0) ** 2).sum(-1)
    >>> th, val, _ = newton_maximize(f, torch.zeros(2, 1, dtype=torch.float64), torch.tensor(-10.0), torch.tensor(10.0))
    >>> th.squeeze(-1).tolist()
    [3.0, 3.0]
    """
    lower = torch.as_tensor(lower, dtype=theta0.dtype, device=theta0.device).expand_as(theta0)
    upper = torch.as_tensor(upper, dtype=theta0.dtype, device=theta0.device).expand_as(theta0)
    theta = torch.minimum(torch.maximum(theta0.detach().clone(), lower), upper)
    active = torch.ones(theta.shape[0], dtype=torch.bool, device=theta.device)
    f = None
    n_iter = 0
    for it in range(1, max_iter + 1):
        n_iter = it
        f, g, hess = _grad_hess(objective, theta)
        bad = ~torch.isfinite(g).all(-1) | ~torch.isfinite(hess).flatten(1).all(-1)
        g = torch.where(bad.unsqueeze(-1), torch.zeros_like(g), g)
        hess = torch.where(bad.view(-1, 1, 1), -torch.eye(g.shape[1], dtype=g.dtype, device=g.device), hess)
        # Free coordinates: not pinned at a bound with the gradient pushing outwards.
        pinned = ((theta <= lower) & (g < 0)) | ((theta >= upper) & (g > 0))
        g = torch.where(pinned, torch.zeros_like(g), g)
        neg = -0.5 * (hess + hess.transpose(1, 2))
        free = (~pinned).to(g.dtype)
        neg = neg * free.unsqueeze(1) * free.unsqueeze(2) + torch.diag_embed(1.0 - free)
        evals, evecs = torch.linalg.eigh(neg)
        floor = 1e-10 * torch.clamp(evals.abs().amax(-1, keepdim=True), min=1.0)
        evals = torch.maximum(evals.abs(), floor)
        delta = evecs @ ((evecs.transpose(1, 2) @ g.unsqueeze(-1)) / evals.unsqueeze(-1))
        delta = delta.squeeze(-1) * free
        gain = (g * delta).sum(-1)
        active = active & (gain > rtol * (1.0 + f.abs()))
        if not bool(active.any()):
            break
        step = torch.ones_like(f)
        accepted = ~active
        new_theta = theta.clone()
        new_f = f.clone()
        with torch.no_grad():
            for _ in range(40):
                trial = torch.minimum(torch.maximum(theta + step.unsqueeze(-1) * delta, lower), upper)
                ft = objective(trial)
                gain_t = (g * (trial - theta)).sum(-1)
                ok = ~accepted & torch.isfinite(ft) & (ft >= f + 1e-4 * torch.clamp(gain_t, min=0.0)) & (ft > f)
                new_theta = torch.where(ok.unsqueeze(-1), trial, new_theta)
                new_f = torch.where(ok, ft, new_f)
                accepted = accepted | ok
                if bool(accepted.all()):
                    break
                step = torch.where(accepted, step, 0.5 * step)
        # A full step that gained more than the quadratic model predicted (an
        # asymptote or a bound ahead): try a four times longer one as well.
        with torch.no_grad():
            full = accepted & active & (step == 1.0)
            if bool(full.any()):
                base = new_f
                far = torch.minimum(torch.maximum(theta + 4.0 * delta, lower), upper)
                f_far = objective(far)
                better = full & (base - f >= gain) & torch.isfinite(f_far) & (f_far > base)
                new_theta = torch.where(better.unsqueeze(-1), far, new_theta)
        stalled = active & ~accepted
        active = active & ~stalled
        theta = new_theta
        if not bool(active.any()):
            break
    with torch.no_grad():
        f = objective(theta)
    return theta, f, n_iter
