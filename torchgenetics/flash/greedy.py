"""Greedy addition of factors: a seeded power-method start, then single-factor optimisation.

Each new factor starts from a rank-one fit of the current residuals (alternating
least squares over the observed entries from a seeded random vector, with sign
constraints for non-negative prior families, as flashier's default init), and
is then optimised alone until its ELBO gain per iteration drops below ``tol``.
It is kept only if it is non-zero and raises the ELBO by more than ``tol``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .workspace import Workspace

__all__ = ["power_init", "optimize_factor", "add_greedy"]


def power_init(
    ws: Workspace,
    signs: tuple[int, int],
    generator: torch.Generator,
    maxiter: int = 100,
    tol: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Rank-one start ``(l, f)`` for a new factor from the current residuals.

    Parameters
    ----------
    ws : Workspace
        Current state (its residuals are approximated).
    signs : (int, int)
        Sign constraints of loadings and factors (+1 non-negative, 0 free).
    generator : torch.Generator
        Source of the random start (CPU generator).
    maxiter : int
        Alternating least-squares iterations at most.
    tol : float, optional
        Stop when no entry changes by more than this (default ``1 / max(n, p)``).

    Returns
    -------
    (torch.Tensor, torch.Tensor) or None
        Loadings and factor scaled to equal norms, or ``None`` if the residuals
        leave nothing to fit.

    Examples
    --------
    >>> from torchgenetics.flash.data import FlashData
    >>> Y = torch.outer(torch.arange(1.0, 5.0), torch.ones(3)).to(torch.float64)
    >>> l, f = power_init(Workspace.empty(FlashData.build(Y)), (0, 0), torch.Generator().manual_seed(0))
    >>> torch.allclose(torch.outer(l, f), Y)
    True
    """
    data = ws.data
    tol = 1.0 / max(data.n, data.p) if tol is None else tol
    like = data.Y
    vals = []
    for size, sign in ((data.n, signs[0]), (data.p, signs[1])):
        v = torch.randn(size, generator=generator, dtype=torch.float64).to(dtype=like.dtype, device=like.device)
        vals.append(v.abs() if sign > 0 else v)
    order = sorted((0, 1), key=lambda m: signs[m] != 0)
    for _ in range(maxiter):
        old = [v.clone() for v in vals]
        for mode in order:
            other = vals[1 - mode]
            num = ws.engine.residual_times(other, mode)
            den = ws.engine.mask_times(other * other, mode)
            new = torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(num))
            if signs[mode] > 0:
                new = torch.clamp(new, min=0.0)
            elif signs[mode] < 0:
                new = torch.clamp(new, max=0.0)
            vals[mode] = new
        change = max(float((v - o).abs().max()) for v, o in zip(vals, old, strict=True))
        if change <= tol:
            break
    norms = [float(torch.linalg.vector_norm(v)) for v in vals]
    if min(norms) == 0 or not all(math.isfinite(n) for n in norms):
        return None
    scale = math.sqrt(norms[0] * norms[1])
    return vals[0] / norms[0] * scale, vals[1] / norms[1] * scale


def optimize_factor(
    ws: Workspace,
    k: int,
    tol: float,
    maxiter: int,
    record: Callable[[int, float], None] | None = None,
) -> float:
    """Update factor ``k`` alone until the ELBO gain per iteration is at most ``tol``.

    Grid families re-choose their grid on the first two updates and are warm
    started after that; an update that lowers the ELBO is undone and stops the loop.

    Returns
    -------
    float
        The ELBO at the end.

    Examples
    --------
    >>> from torchgenetics.flash.data import FlashData
    >>> from torchgenetics.flash.workspace import family_pair
    >>> g = torch.Generator().manual_seed(0)
    >>> Y = torch.outer(torch.randn(8, generator=g), torch.randn(6, generator=g)).double()
    >>> ws = Workspace.empty(FlashData.build(Y + 0.01))
    >>> k = ws.add_factor(*power_init(ws, (0, 0), g), family_pair("point_normal"))
    >>> optimize_factor(ws, k, tol=1e-6, maxiter=50) > 0
    True
    """
    grid = any(f.grid for f in ws.families[k])
    per_factor = ws.data.S2 is None or ws.data.var_type is None
    previous = -math.inf
    for it in range(1, maxiter + 1):
        saved = _save_factor(ws, k)
        ws.update_factor(k, warmstart=not grid or it > 2, tau=per_factor)
        if not per_factor:
            ws.update_tau()
        current = ws.elbo()
        if current < previous - 1e-12 * abs(previous):
            _restore_factor(ws, k, saved)
            break
        if record is not None:
            record(it, current)
        if ws.is_zero(k) or current - previous <= tol:
            previous = current
            break
        previous = current
    return ws.elbo()


def _save_factor(ws: Workspace, k: int) -> dict:
    return {
        "M": [ws.M[m][:, k].clone() for m in (0, 1)],
        "M2": [ws.M2[m][:, k].clone() for m in (0, 1)],
        "kl": ws.kl[k].clone(),
        "g": [ws.g[m][k] for m in (0, 1)],
        "lfsr": [ws.lfsr[m][:, k].clone() for m in (0, 1)],
        "tau": ws.tau.clone(),
        "sigma2": None if ws.sigma2 is None else ws.sigma2.clone(),
    }


def _restore_factor(ws: Workspace, k: int, saved: dict) -> None:
    ws.set_factor(k, saved["M"], saved["M2"])
    ws.kl[k] = saved["kl"]
    for m in (0, 1):
        ws.g[m][k] = saved["g"][m]
        ws.lfsr[m][:, k] = saved["lfsr"][m]
    ws.tau, ws.sigma2 = saved["tau"], saved["sigma2"]
    ws._tau_changed()


def add_greedy(
    ws: Workspace,
    K_max: int,
    families,
    tol: float,
    maxiter: int,
    seed: int,
    record: Callable[[int, int, float], None] | None = None,
    progress=None,
) -> int:
    """Add up to ``K_max`` factors one at a time; stop at the first that does not raise the ELBO.

    Returns
    -------
    int
        Number of factors added.

    Examples
    --------
    >>> from torchgenetics.flash.data import FlashData
    >>> from torchgenetics.flash.workspace import family_pair
    >>> g = torch.Generator().manual_seed(0)
    >>> Y = torch.outer(torch.randn(30, generator=g), torch.randn(20, generator=g)).double()
    >>> ws = Workspace.empty(FlashData.build(Y + 0.1 * torch.randn(30, 20, generator=g).double()))
    >>> add_greedy(ws, 5, family_pair("point_normal"), tol=1e-6, maxiter=100, seed=0)
    1
    """
    signs = (families[0].sign, families[1].sign)
    added = 0
    for _ in range(K_max):
        k_new = ws.K
        start = power_init(ws, signs, torch.Generator().manual_seed(int(seed) + k_new))
        if start is None:
            break
        before = ws.elbo()
        tau, sigma2 = ws.tau.clone(), None if ws.sigma2 is None else ws.sigma2.clone()
        k = ws.add_factor(start[0], start[1], families)
        after = optimize_factor(ws, k, tol, maxiter, None if record is None else (lambda it, e, k=k: record(k, it, e)))
        if ws.is_zero(k) or not after > before + tol:
            ws.drop([k])
            ws.tau, ws.sigma2 = tau, sigma2
            ws._tau_changed()
            break
        added += 1
        if progress is not None:
            progress.update(1)
            progress.set_postfix(elbo=f"{after:.6g}")
    return added
