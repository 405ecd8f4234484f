"""Backfitting: sequential sweeps with flashier's extrapolation, and parallel updates.

* :func:`backfit_sequential` updates factors one after another. With
  ``extrapolate=True`` each iteration first tries a sweep from the extrapolated
  point ``new + beta (new - old)`` (flashier's momentum: ``beta`` starts at 0.5,
  is multiplied by 1.2 after a success and by 0.5 after a failure, and never
  exceeds 2); a proposal is accepted only if it raises the ELBO by at least
  ``tol``, otherwise a plain sweep is made, so the ELBO never decreases.
* :func:`backfit_parallel` updates all factors of a mode at once from one matrix
  product and batched EBNM solves (flashier's parallel note), then the residual
  precisions. Parallel updates are not guaranteed to raise the ELBO and can
  spiral when loadings are nearly collinear, so before each iteration the
  largest cosine between loadings (and between factors) is checked, and an
  iteration that lowers the ELBO by more than ``tol`` is undone; either event
  stops the parallel phase and reports why, and the caller finishes sequentially.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .workspace import Workspace

__all__ = ["backfit_sequential", "backfit_parallel", "EXTRAPOLATION"]

#: flashier's extrapolation parameters.
EXTRAPOLATION = {"beta_init": 0.5, "beta_increase": 1.2, "beta_decrease": 0.5, "beta_max": 2.0}


def _sweep(ws: Workspace, ks: list[int]) -> None:
    per_factor = ws.data.S2 is None or ws.data.var_type is None
    for k in ks:
        if not ws.is_zero(k):
            ws.update_factor(k, warmstart=True, tau=per_factor)
    if not per_factor:
        ws.update_tau()


def _iterate(ws, ks, tol, maxiter, extrapolate, update, record, check=None, guard=False):
    """Shared loop: optional extrapolation, optional pre-iteration check and ELBO-decrease guard."""
    par = EXTRAPOLATION
    beta = par["beta_init"] / par["beta_increase"]  # the first proposal always succeeds: start slower
    old = ws.moments()
    elbo = ws.elbo()
    for it in range(1, maxiter + 1):
        if check is not None:
            reason = check(ws)
            if reason is not None:
                return ws, False, it - 1, reason
        saved = ws.state() if guard else None
        if extrapolate:
            proposal = ws.extrapolated(old, beta, ks)
            update(proposal)
            old = ws.moments()
            if proposal.elbo() - elbo < tol:
                update(ws)
                beta *= par["beta_decrease"]
            else:
                ws = proposal
                beta = min(beta * par["beta_increase"], par["beta_max"])
        else:
            update(ws)
        new = ws.elbo()
        if guard and (not math.isfinite(new) or new < elbo - tol):
            reason = (
                f"parallel iteration {it} lowered the ELBO by {elbo - new:.6g} (> tol {tol:.3g}); "
                "undone and finished sequentially"
            )
            return Workspace(ws.data, *saved), False, it - 1, reason
        if record is not None:
            record(it, new)
        if abs(new - elbo) <= tol:
            return ws, True, it, None
        elbo = new
    return ws, False, maxiter, None


def backfit_sequential(
    ws: Workspace,
    ks: list[int],
    tol: float,
    maxiter: int,
    extrapolate: bool = True,
    record: Callable[[int, float], None] | None = None,
) -> tuple[Workspace, bool, int]:
    """Cyclic updates of factors ``ks`` until an iteration raises the ELBO by at most ``tol``.

    Returns
    -------
    (Workspace, bool, int)
        Final state (a new object when an extrapolated proposal was accepted),
        whether it converged and the number of iterations.

    Examples
    --------
    >>> import torch
    >>> from torchgenetics.flash import flash
    >>> from torchgenetics.flash.steps import _workspace
    >>> g = torch.Generator().manual_seed(0)
    >>> Y = torch.randn(30, 2, generator=g).double() @ torch.randn(2, 20, generator=g).double()
    >>> ws = _workspace(flash(Y + 0.1 * torch.randn(30, 20, generator=g).double(), nullcheck=False))
    >>> backfit_sequential(ws, list(range(ws.K)), tol=1e-6, maxiter=300)[1]
    True
    """
    ws, converged, it, _ = _iterate(ws, ks, tol, maxiter, extrapolate, lambda w: _sweep(w, ks), record)
    return ws, converged, it


def backfit_parallel(
    ws: Workspace,
    ks: list[int],
    tol: float,
    maxiter: int,
    collinear_threshold: float = 0.95,
    extrapolate: bool = True,
    record: Callable[[int, float], None] | None = None,
) -> tuple[Workspace, bool, int, str | None]:
    """Parallel updates of factors ``ks`` with collinearity and ELBO-decrease guards.

    With ``extrapolate=True`` the same momentum scheme as the sequential
    backfit is applied to whole parallel iterations.

    Returns
    -------
    (Workspace, bool, int, str or None)
        Final state, whether it converged, iterations run, and the reason the
        parallel phase stopped early (``None`` if it did not).

    Examples
    --------
    >>> import torch
    >>> from torchgenetics.flash import flash
    >>> from torchgenetics.flash.steps import _workspace
    >>> g = torch.Generator().manual_seed(0)
    >>> Y = torch.randn(30, 2, generator=g).double() @ torch.randn(2, 20, generator=g).double()
    >>> ws = _workspace(flash(Y + 0.1 * torch.randn(30, 20, generator=g).double(), nullcheck=False))
    >>> backfit_parallel(ws, list(range(ws.K)), tol=1e-4, maxiter=300)[3] is None
    True
    """

    def active(w):
        return [k for k in ks if not w.is_zero(k)]

    def check(w):
        free = [k for k in active(w) if not bool(w.fixed[k].all())]
        cos, pair, mode = w.loadings_cosines(free)
        if cos > collinear_threshold:
            what = "loadings" if mode == 0 else "factors"
            return (
                f"{what} of factors {pair[0]} and {pair[1]} are nearly collinear (|cosine| {cos:.4f} > "
                f"{collinear_threshold}); finished sequentially"
            )
        return None

    return _iterate(ws, ks, tol, maxiter, extrapolate, lambda w: w.update_parallel(active(w)), record, check, guard=True)
