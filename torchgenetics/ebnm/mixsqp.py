"""Mixture-weight maximum likelihood by sequential quadratic programming (mix-SQP), batched in torch.

Solves, for each of ``B`` problems,

    maximise  sum_i w_i log(sum_k L_ik x_k)   over the simplex x >= 0, sum x = 1,

the convex problem behind every grid-based EBNM prior. Following Kim, Carbonetto,
Stephens & Anitescu (2020, *J. Comput. Graph. Stat.*), it minimises the relaxed
objective ``-sum_i w_i log(L x)_i + sum_k x_k`` over ``x >= 0`` (whose minimiser
lies on the simplex): each outer step builds the gradient and Hessian, solves
the non-negative quadratic subproblem with an active-set method, and takes a
backtracking line search step. Masked components stay at zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["mixsqp", "MixSQPResult", "mixture_objective"]

_TINY = 1e-300


@dataclass
class MixSQPResult:
    """Output of :func:`mixsqp`.

    Attributes
    ----------
    x : torch.Tensor
        ``(B, K)`` mixture weights on the simplex.
    objective : torch.Tensor
        ``(B,)`` weighted mean log likelihood ``sum_i w_i log (L x)_i`` (with the
        row-normalised ``L``; add back the row maxima for log-likelihood input).
    n_iter : int
        Outer SQP iterations run.
    converged : torch.Tensor
        ``(B,)`` whether the KKT conditions held to ``tol``.
    """

    x: torch.Tensor
    objective: torch.Tensor
    n_iter: int
    converged: torch.Tensor


def mixture_objective(L: torch.Tensor, x: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """``sum_i w_i log(sum_k L_ik x_k)`` for ``L`` of shape ``(B, n, K)`` (``w_i = 1/n`` by default).

    Examples
    --------
    >>> L = torch.ones(1, 3, 2, dtype=torch.float64)
    >>> float(mixture_objective(L, torch.tensor([[0.5, 0.5]], dtype=torch.float64)))
    0.0
    """
    u = torch.clamp((L @ x.unsqueeze(-1)).squeeze(-1), min=_TINY)
    if weights is None:
        return torch.log(u).mean(-1)
    return (weights * torch.log(u)).sum(-1)


def _relaxed(L, x, w):
    u = torch.clamp((L @ x.unsqueeze(-1)).squeeze(-1), min=_TINY)
    return -(w * torch.log(u)).sum(-1) + x.sum(-1)


def _active_set_qp(H, c, y0, allowed, max_iter: int, tol: float):
    """Minimise ``0.5 y'Hy + c'y`` over ``y >= 0`` (``y_k = 0`` where not allowed), from feasible ``y0``."""
    B, K = c.shape
    eye = torch.eye(K, dtype=H.dtype, device=H.device)
    y = y0.clone()
    free = (y > 0) & allowed
    done = torch.zeros(B, dtype=torch.bool, device=H.device)
    for _ in range(max_iter):
        fm = free.to(H.dtype)
        system = H * fm.unsqueeze(-1) * fm.unsqueeze(-2) + torch.diag_embed(1.0 - fm)
        z = torch.linalg.solve(system + 1e-14 * eye, (-c * fm).unsqueeze(-1)).squeeze(-1)
        z = z * fm
        blocked = free & (z < 0)
        feasible = ~blocked.any(-1)
        grad = (H @ z.unsqueeze(-1)).squeeze(-1) + c
        mult = torch.where(allowed & ~free, grad, torch.full_like(grad, float("inf")))
        m_min, k_min = mult.min(-1)
        optimal = feasible & (m_min >= -tol)
        # Feasible but not optimal: move to z and free the most negative multiplier.
        step_in = ~done & feasible & ~optimal
        # Infeasible: move towards z until the first blocking variable hits zero.
        ratio = torch.where(blocked, y / torch.clamp(y - z, min=_TINY), torch.full_like(y, float("inf")))
        alpha = torch.clamp(ratio.min(-1).values, max=1.0)
        partial = y + alpha.unsqueeze(-1) * (z - y)
        step_out = ~done & ~feasible
        newly = ~done & optimal
        y = torch.where((newly | step_in).unsqueeze(-1), z, y)
        y = torch.where(step_out.unsqueeze(-1), torch.clamp(partial, min=0.0), y)
        add = torch.zeros_like(free).scatter_(1, k_min.unsqueeze(-1), True) & step_in.unsqueeze(-1)
        drop = step_out.unsqueeze(-1) & free & (y <= 1e-15 * torch.clamp(y.amax(-1, keepdim=True), min=1.0))
        free = (free | add) & ~drop
        y = torch.where(drop, torch.zeros_like(y), y)
        done = done | newly
        if bool(done.all()):
            break
    return torch.clamp(y, min=0.0)


def mixsqp(
    L: torch.Tensor,
    x0: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    log: bool = False,
    max_iter: int = 200,
    max_qp_iter: int | None = None,
    tol: float = 1e-8,
) -> MixSQPResult:
    """Maximum-likelihood mixture weights, batched over a leading axis.

    Parameters
    ----------
    L : torch.Tensor
        ``(n, K)`` or ``(B, n, K)`` component likelihoods ``L_ik >= 0``, or their
        logarithms with ``log=True`` (rows are rescaled by their maximum, which
        does not change the solution).
    x0 : torch.Tensor, optional
        ``(K,)`` or ``(B, K)`` starting weights (uniform by default). The result
        never has a lower objective than the normalised start.
    weights : torch.Tensor, optional
        ``(n,)`` or ``(B, n)`` non-negative row weights (normalised to sum to one).
    mask : torch.Tensor, optional
        ``(K,)`` or ``(B, K)`` booleans: components allowed to be non-zero.
    log : bool
        Whether ``L`` holds log-likelihoods.
    max_iter : int
        Outer SQP iterations at most.
    max_qp_iter : int, optional
        Active-set iterations per subproblem (default ``4 K + 10``).
    tol : float
        KKT tolerance: stop when every allowed component has relaxed-objective
        gradient ``>= -tol``.

    Returns
    -------
    MixSQPResult
        Weights, objective, iterations and convergence flags (batch axis kept
        only if ``L`` had one).

    Examples
    --------
    >>> L = torch.tensor([[1.0, 0.5], [1.0, 0.5], [0.1, 1.0]], dtype=torch.float64)
    >>> [round(v, 4) for v in mixsqp(L).x.tolist()]
    [0.4074, 0.5926]
    """
    batched = L.ndim == 3
    if not batched:
        L = L.unsqueeze(0)
    B, n, K = L.shape
    if log:
        L = torch.exp(L - L.amax(-1, keepdim=True))
    allowed = torch.ones(B, K, dtype=torch.bool, device=L.device) if mask is None else mask.expand(B, K).clone()
    if weights is None:
        w = torch.full((B, n), 1.0 / n, dtype=L.dtype, device=L.device)
    else:
        w = weights.to(L).expand(B, n)
        w = w / w.sum(-1, keepdim=True)
    if x0 is None:
        x = allowed.to(L.dtype)
    else:
        x = torch.clamp(x0.to(L).expand(B, K).clone(), min=0.0) * allowed
    x = x / torch.clamp(x.sum(-1, keepdim=True), min=_TINY)
    # A start that gives some row zero likelihood is blended with the uniform weights.
    empty = ((L @ x.unsqueeze(-1)).squeeze(-1) <= 0).any(-1) | (x.sum(-1) <= 0)
    uniform = allowed.to(L.dtype) / allowed.sum(-1, keepdim=True).clamp(min=1)
    x = torch.where(empty.unsqueeze(-1), 0.999 * x + 0.001 * uniform, x)
    qp_iter = 4 * K + 10 if max_qp_iter is None else max_qp_iter
    converged = torch.zeros(B, dtype=torch.bool, device=L.device)
    n_iter = 0
    for it in range(1, max_iter + 1):
        n_iter = it
        u = (L @ x.unsqueeze(-1)).squeeze(-1) + 1e-14
        d = w / u
        grad = 1.0 - (L * d.unsqueeze(-1)).sum(1)
        kkt = torch.where(allowed, grad, torch.zeros_like(grad)).amin(-1) >= -tol
        converged = kkt
        if bool(converged.all()):
            break
        G = L * torch.sqrt(w / (u * u)).unsqueeze(-1)
        H = G.transpose(1, 2) @ G
        H = H + 1e-10 * torch.diagonal(H, dim1=1, dim2=2).amax(-1).clamp(min=1.0).view(-1, 1, 1) * torch.eye(
            K, dtype=L.dtype, device=L.device
        )
        c = grad - (H @ x.unsqueeze(-1)).squeeze(-1)
        y = _active_set_qp(H, c, x, allowed, qp_iter, tol)
        p = y - x
        f0 = _relaxed(L, x, w)
        slope = (grad * p).sum(-1)
        step = torch.ones_like(f0)
        accepted = converged.clone()
        new_x = x.clone()
        for _ in range(30):
            trial = x + step.unsqueeze(-1) * p
            ft = _relaxed(L, trial, w)
            ok = ~accepted & (ft <= f0 + 0.01 * step * torch.clamp(slope, max=0.0)) & (ft <= f0)
            new_x = torch.where(ok.unsqueeze(-1), trial, new_x)
            accepted = accepted | ok
            if bool(accepted.all()):
                break
            step = torch.where(accepted, step, 0.5 * step)
        stuck = ~accepted
        x = torch.clamp(new_x, min=0.0)
        if bool((stuck | converged).all()):
            break
    x = x / torch.clamp(x.sum(-1, keepdim=True), min=_TINY)
    obj = mixture_objective(L, x, w)
    if not batched:
        return MixSQPResult(x[0], obj[0], n_iter, converged[0])
    return MixSQPResult(x, obj, n_iter, converged)
