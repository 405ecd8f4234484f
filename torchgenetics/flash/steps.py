"""Pipeable flash steps: each takes a :class:`FlashFit` and returns a new one.

``init`` -> ``greedy`` -> ``backfit`` -> ``nullcheck`` is what :func:`flash` runs;
``add_intercept``, ``init_factors``, ``fix_factors`` and ``remove`` edit the set
of factors. Every step appends its iterations to ``fit.history``; the input
fit is never modified.

Examples
--------
>>> import torch
>>> from torchgenetics.flash import steps
>>> g = torch.Generator().manual_seed(0)
>>> Y = torch.randn(30, 2, generator=g).double() @ torch.randn(2, 20, generator=g).double()
>>> fit = steps.init(Y + 0.1 * torch.randn(30, 20, generator=g).double())
>>> fit = steps.backfit(steps.greedy(fit, K_max=5))
>>> fit.n_factors, fit.converged
(2, True)
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import pandas as pd
import torch
from tqdm.auto import tqdm

from ..ebnm import get_family
from ..errors import InputError
from .backfit import backfit_parallel, backfit_sequential
from .data import FlashData
from .fit import FlashFit, _empty_history
from .greedy import add_greedy, optimize_factor
from .workspace import Workspace, family_pair

__all__ = ["init", "greedy", "backfit", "nullcheck", "fix_factors", "remove", "add_intercept", "init_factors"]

BACKFIT_METHODS = ("sequential", "parallel")


class _History:
    """Collects history rows with times measured from the fit's first step."""

    def __init__(self, fit: FlashFit):
        self.base = float(fit.history["time"].max()) if len(fit.history) else 0.0
        self.start = time.perf_counter()
        self.rows: list[dict] = []

    def add(self, step: str, iteration: int, factor: int, elbo: float, method: str = "") -> None:
        self.rows.append(
            {"step": step, "iteration": int(iteration), "factor": int(factor), "elbo": float(elbo),
             "time": self.base + time.perf_counter() - self.start, "method": method}
        )

    def merged(self, fit: FlashFit) -> pd.DataFrame:
        if not self.rows:
            return fit.history
        new = pd.DataFrame(self.rows, columns=fit.history.columns)
        return new if not len(fit.history) else pd.concat([fit.history, new], ignore_index=True)


def _workspace(fit: FlashFit) -> Workspace:
    if fit.data is None:
        raise InputError("this fit carries no data (it was loaded from a file); resume it with flash(Y, init=fit)")
    families = [(get_family(a), get_family(b)) for a, b in fit.priors]
    return Workspace(
        fit.data, [fit.L_pm, fit.F_pm], [fit.L_pm2, fit.F_pm2], fit.kl, [list(fit.L_ghat), list(fit.F_ghat)],
        [fit.L_lfsr, fit.F_lfsr], families, fit.fixed, fit.tau, fit.sigma2,
    )


def _to_fit(ws: Workspace, fit: FlashFit, history: _History | None = None, **changes) -> FlashFit:
    return replace(
        fit,
        L_pm=ws.M[0].clone(), F_pm=ws.M[1].clone(), L_pm2=ws.M2[0].clone(), F_pm2=ws.M2[1].clone(),
        L_lfsr=ws.lfsr[0].clone(), F_lfsr=ws.lfsr[1].clone(),
        L_ghat=list(ws.g[0]), F_ghat=list(ws.g[1]), kl=ws.kl.clone(),
        priors=[(a.spec(), b.spec()) for a, b in ws.families], fixed=ws.fixed.clone(),
        tau=ws.tau.clone(), sigma2=None if ws.sigma2 is None else ws.sigma2.clone(),
        elbo=ws.elbo(), history=fit.history if history is None else history.merged(fit), **changes,
    )


def _kset(fit: FlashFit, kset) -> list[int]:
    if kset is None:
        return list(range(fit.n_factors))
    ks = [int(k) for k in ([kset] if isinstance(kset, int) else kset)]
    bad = [k for k in ks if not 0 <= k < fit.n_factors]
    if bad:
        raise InputError(f"factor indices {bad} are out of range: the fit has {fit.n_factors} factors (0-based)")
    return ks


def _names(Y, row_names, col_names):
    if isinstance(Y, pd.DataFrame):
        row_names = list(map(str, Y.index)) if row_names is None else row_names
        col_names = list(map(str, Y.columns)) if col_names is None else col_names
        Y = Y.to_numpy(dtype="float64", na_value=float("nan"))
    return Y, row_names, col_names


def init(
    Y,
    S=None,
    var_type: int | None = 0,
    fit: FlashFit | None = None,
    tol: float | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device=None,
    row_names=None,
    col_names=None,
) -> FlashFit:
    """Start a flash fit on ``Y`` (no factors), or attach ``Y`` to a previous fit to resume it.

    Parameters
    ----------
    Y : array-like or pandas.DataFrame
        ``(n, p)`` data; NaN marks missing values. A DataFrame gives row/column names.
    S : float or array-like, optional
        Standard errors of ``Y`` (see :meth:`FlashData.build`).
    var_type : {0, 1, 2, None}
        Residual variance: constant, by row, by column, or none beyond ``S``.
    fit : FlashFit, optional
        Warm start: a fit (in memory or loaded from HDF5) on data of this shape.
    tol : float, optional
        Convergence tolerance (default ``n p sqrt(eps)``).
    seed : int
        Seed of the greedy initialisations.
    dtype, device : optional
        Precision and device of the fit.
    row_names, col_names : sequence of str, optional
        Labels of rows and columns.

    Returns
    -------
    FlashFit

    Examples
    --------
    >>> fit = init(torch.ones(4, 3, dtype=torch.float64) + torch.eye(4, 3, dtype=torch.float64))
    >>> fit.n_factors, round(fit.tol, 10)
    (0, 1.788e-07)
    """
    Y, row_names, col_names = _names(Y, row_names, col_names)
    data = FlashData.build(Y, S=S, var_type=var_type, dtype=dtype, device=device, row_names=row_names, col_names=col_names)
    default_tol = data.n * data.p * math.sqrt(torch.finfo(dtype).eps)
    if fit is None:
        ws = Workspace.empty(data)
        empty = FlashFit(
            L_pm=ws.M[0], F_pm=ws.M[1], L_pm2=ws.M2[0], F_pm2=ws.M2[1], L_lfsr=ws.lfsr[0], F_lfsr=ws.lfsr[1],
            L_ghat=[], F_ghat=[], kl=ws.kl, priors=[], fixed=ws.fixed, tau=ws.tau, sigma2=ws.sigma2,
            var_type=var_type, elbo=ws.elbo(), history=_empty_history(), tol=default_tol if tol is None else float(tol),
            seed=int(seed), row_names=data.row_names, col_names=data.col_names, data=data,
        )
        return empty
    if fit.shape != (data.n, data.p):
        raise InputError(f"the warm-start fit is {fit.shape[0]} x {fit.shape[1]} but Y is {data.n} x {data.p}")
    cast = lambda t: None if t is None else t.to(dtype=dtype, device=data.Y.device)  # noqa: E731
    resumed = replace(
        fit,
        L_pm=cast(fit.L_pm), F_pm=cast(fit.F_pm), L_pm2=cast(fit.L_pm2), F_pm2=cast(fit.F_pm2),
        L_lfsr=cast(fit.L_lfsr), F_lfsr=cast(fit.F_lfsr), kl=cast(fit.kl), fixed=fit.fixed.to(data.Y.device),
        L_ghat=[None if g is None else g.to(device=data.Y.device, dtype=dtype) for g in fit.L_ghat],
        F_ghat=[None if g is None else g.to(device=data.Y.device, dtype=dtype) for g in fit.F_ghat],
        tau=cast(fit.tau), sigma2=cast(fit.sigma2), var_type=var_type,
        tol=fit.tol if tol is None and math.isfinite(fit.tol) else (default_tol if tol is None else float(tol)),
        row_names=data.row_names or fit.row_names, col_names=data.col_names or fit.col_names, data=data,
    )
    ws = _workspace(resumed)
    if var_type != fit.var_type or tuple(fit.tau.shape) not in _tau_shapes(data):
        ws.update_tau()
    return _to_fit(ws, resumed)


def _tau_shapes(data: FlashData) -> set[tuple]:
    if data.S2 is not None:
        return {tuple(torch.broadcast_shapes(data.S2.shape, (1, 1))), tuple(data.S2.shape)}
    return {(), (data.n, 1), (1, data.p)}


def greedy(
    fit: FlashFit,
    K_max: int = 1,
    prior="point_normal",
    tol: float | None = None,
    maxiter: int = 500,
    seed: int | None = None,
    verbose: bool = False,
) -> FlashFit:
    """Add up to ``K_max`` factors greedily, each from a seeded power-method start.

    Parameters
    ----------
    fit : FlashFit
        Fit to extend.
    K_max : int
        Maximum number of factors to add; adding stops at the first factor that
        does not raise the ELBO by more than ``tol``.
    prior : str, Family, dict or pair
        Prior family of loadings and factors, or a ``(loadings, factors)`` pair.
    tol : float, optional
        Tolerance (the fit's by default).
    maxiter : int
        Iterations per factor at most.
    seed : int, optional
        Seed of the initialisations (the fit's by default); factor ``k`` uses ``seed + k``.
    verbose : bool
        Show a progress bar.

    Returns
    -------
    FlashFit

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> Y = torch.randn(30, 1, generator=g).double() @ torch.randn(1, 20, generator=g).double()
    >>> greedy(init(Y + 0.1 * torch.randn(30, 20, generator=g).double()), K_max=4).n_factors
    1
    """
    if int(K_max) < 0:
        raise InputError(f"K_max must be a non-negative integer, got {K_max}")
    ws = _workspace(fit)
    families = family_pair(prior)
    tol = fit.tol if tol is None else float(tol)
    seed = fit.seed if seed is None else int(seed)
    history = _History(fit)
    with tqdm(total=int(K_max), desc="flash greedy", disable=not verbose, leave=False) as bar:
        add_greedy(ws, int(K_max), families, tol, int(maxiter), seed,
                   record=lambda k, it, e: history.add("greedy", it, k, e), progress=bar)
    return _to_fit(ws, fit, history)


def backfit(
    fit: FlashFit,
    method: str = "sequential",
    kset=None,
    extrapolate: bool = True,
    maxiter: int = 500,
    tol: float | None = None,
    collinear_threshold: float = 0.95,
    verbose: bool = False,
) -> FlashFit:
    """Refit existing factors together until the ELBO stops rising.

    Parameters
    ----------
    fit : FlashFit
        Fit to backfit.
    method : {"sequential", "parallel"}
        Cyclic single-factor updates (with extrapolation), or all factors at
        once per mode (one matrix product, batched EBNM). A parallel backfit
        that meets nearly collinear loadings or factors, or lowers the ELBO,
        stops and finishes sequentially; ``fit.backfit_info["fallback"]`` says why.
    kset : sequence of int, optional
        Factors to update (all by default).
    extrapolate : bool
        flashier's extrapolation (momentum) between iterations; applied to
        parallel iterations too (flashier's parallel backfit has none).
    maxiter : int
        Iterations (sweeps) at most.
    tol : float, optional
        Stop when an iteration changes the ELBO by at most this (the fit's by default).
    collinear_threshold : float
        Largest |cosine| between two loadings (or factors) a parallel update accepts.
    verbose : bool
        Show a progress bar.

    Returns
    -------
    FlashFit
        With ``converged`` and ``backfit_info`` set.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> Y = torch.randn(30, 2, generator=g).double() @ torch.randn(2, 20, generator=g).double()
    >>> fit = greedy(init(Y + 0.1 * torch.randn(30, 20, generator=g).double()), K_max=3)
    >>> backfit(fit, method="parallel").backfit_info["method"]
    'parallel'
    """
    if method not in BACKFIT_METHODS:
        raise InputError(f"backfit method must be one of {BACKFIT_METHODS}, got {method!r}")
    ks = _kset(fit, kset)
    tol = fit.tol if tol is None else float(tol)
    ws = _workspace(fit)
    history = _History(fit)
    info = {"method": method, "iterations": 0, "fallback": "", "sequential_iterations": 0}
    with tqdm(total=int(maxiter), desc=f"flash backfit ({method})", disable=not verbose, leave=False) as bar:

        def record(kind):
            def inner(it, e):
                history.add("backfit", it, -1, e, kind)
                bar.update(1)
                bar.set_postfix(elbo=f"{e:.6g}")

            return inner

        if not ks:
            converged, used = True, 0
        elif method == "parallel":
            ws, converged, used, reason = backfit_parallel(
                ws, ks, tol, int(maxiter), collinear_threshold, extrapolate, record("parallel")
            )
            info["iterations"] = used
            if reason is not None:
                info["fallback"] = reason
                ws, converged, more = backfit_sequential(ws, ks, tol, max(int(maxiter) - used, 1), extrapolate,
                                                         record("sequential"))
                info["sequential_iterations"] = more
        else:
            ws, converged, used = backfit_sequential(ws, ks, tol, int(maxiter), extrapolate, record("sequential"))
            info["iterations"] = used
    return _to_fit(ws, fit, history, converged=bool(converged), backfit_info=info)


def nullcheck(fit: FlashFit, kset=None, tol: float | None = None) -> FlashFit:
    """Remove factors whose removal does not lower the ELBO by more than ``tol``.

    Each factor is set to zero (precisions re-estimated); if the ELBO without
    it is at least ``elbo - tol`` it is removed, otherwise restored.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> Y = torch.randn(30, 1, generator=g).double() @ torch.randn(1, 20, generator=g).double()
    >>> nullcheck(greedy(init(Y + 0.1 * torch.randn(30, 20, generator=g).double()))).n_factors
    1
    """
    ks = _kset(fit, kset)
    tol = fit.tol if tol is None else float(tol)
    ws = _workspace(fit)
    history = _History(fit)
    removed = []
    for k in ks:
        if bool(ws.fixed[k].all()):
            continue
        if ws.is_zero(k):
            removed.append(k)
            continue
        before = ws.elbo()
        state = ws.state()
        ws.zero_factor(k)
        ws.update_tau()
        after = ws.elbo()
        if after - before >= -tol:
            removed.append(k)
            history.add("nullcheck", 1, k, after, "removed")
        else:
            ws = Workspace(ws.data, *state)
    if removed:
        ws.drop(removed)
        ws.update_tau()
    return _to_fit(ws, fit, history)


def fix_factors(fit: FlashFit, kset, mode: int, is_fixed: bool = True) -> FlashFit:
    """Hold loadings (``mode=0``) or factors (``mode=1``) of factors ``kset`` fixed, or release them.

    Fixed values are the current posterior means, treated as known: their
    posterior variance and KL become zero and later updates skip them.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> Y = torch.randn(30, 1, generator=g).double() @ torch.randn(1, 20, generator=g).double()
    >>> fit = greedy(init(Y + 0.1 * torch.randn(30, 20, generator=g).double()))
    >>> fix_factors(fit, [0], mode=1).fixed.tolist()
    [[False, True]]
    """
    if mode not in (0, 1):
        raise InputError(f"mode must be 0 (loadings) or 1 (factors), got {mode!r}")
    ks = _kset(fit, kset)
    ws = _workspace(fit)
    for k in ks:
        ws.fixed[k, mode] = bool(is_fixed)
        if is_fixed:
            values = [ws.M[0][:, k].clone(), ws.M[1][:, k].clone()]
            squares = [ws.M2[0][:, k].clone(), ws.M2[1][:, k].clone()]
            squares[mode] = values[mode] ** 2
            ws.set_factor(k, values, squares)
            ws.kl[k, mode] = 0.0
            ws.g[mode][k] = None
            ws.lfsr[mode][:, k] = float("nan")
    ws.update_tau()
    return _to_fit(ws, fit)


def remove(fit: FlashFit, kset) -> FlashFit:
    """Drop factors ``kset`` and re-estimate the residual precisions.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> Y = torch.randn(30, 1, generator=g).double() @ torch.randn(1, 20, generator=g).double()
    >>> remove(greedy(init(Y + 0.1 * torch.randn(30, 20, generator=g).double())), [0]).n_factors
    0
    """
    ks = _kset(fit, kset)
    ws = _workspace(fit)
    ws.drop(ks)
    ws.update_tau()
    return _to_fit(ws, fit)


def add_intercept(fit: FlashFit, rowwise: bool = True, prior="point_normal", maxiter: int = 500) -> FlashFit:
    """Add an intercept factor and fit it.

    With ``rowwise=True`` the factor's values are fixed at 1 and its loadings
    (one intercept per row) are estimated; with ``rowwise=False`` the loadings
    are fixed at 1 and each column gets an intercept.

    Parameters
    ----------
    fit : FlashFit
        Fit to extend.
    rowwise : bool
        Row intercepts (True) or column intercepts (False).
    prior : str, Family or dict
        Prior family of the estimated intercepts.
    maxiter : int
        Iterations at most.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> Y = torch.randn(30, 20, generator=g).double() + torch.linspace(0, 3, 30).double().unsqueeze(1)
    >>> fit = add_intercept(init(Y))
    >>> fit.fixed.tolist(), abs(float(fit.L_pm[-1, 0]) - 3.0) < 0.5
    ([[False, True]], True)
    """
    ws = _workspace(fit)
    data = ws.data
    free = 0 if rowwise else 1
    size = (data.n, data.p)
    ones = torch.ones(size[1 - free], dtype=data.Y.dtype, device=data.Y.device)
    start = ws.engine.residual_times(ones, free) / ws.engine.mask_times(ones, free)
    vals = [start, ones] if rowwise else [ones, start]
    fam = get_family(prior)
    fams = (fam, get_family(fam.spec()))
    k = ws.add_factor(vals[0], vals[1], fams, fixed=(not rowwise, rowwise))
    history = _History(fit)
    optimize_factor(ws, k, fit.tol, int(maxiter), record=lambda it, e: history.add("intercept", it, k, e))
    return _to_fit(ws, fit, history)


def init_factors(fit: FlashFit, L, F, prior="point_normal") -> FlashFit:
    """Add factors with given starting values ``L (n, k)`` and ``F (p, k)`` (flashier's ``flash_factors_init``).

    The new factors start as point masses at the given values (zero KL, no
    fitted prior) and are fitted by the next :func:`backfit`.

    Examples
    --------
    >>> fit = init(torch.randn(10, 8, generator=torch.Generator().manual_seed(0)).double())
    >>> init_factors(fit, torch.ones(10, 2), torch.ones(8, 2)).n_factors
    2
    """
    ws = _workspace(fit)
    L = torch.as_tensor(L, dtype=ws.data.Y.dtype, device=ws.data.Y.device)
    F = torch.as_tensor(F, dtype=ws.data.Y.dtype, device=ws.data.Y.device)
    L = L.unsqueeze(1) if L.ndim == 1 else L
    F = F.unsqueeze(1) if F.ndim == 1 else F
    if L.shape[0] != ws.data.n or F.shape[0] != ws.data.p or L.shape[1] != F.shape[1]:
        raise InputError(f"L must be (n={ws.data.n}, k) and F (p={ws.data.p}, k); got {tuple(L.shape)} and {tuple(F.shape)}")
    families = family_pair(prior)
    for j in range(L.shape[1]):
        ws.add_factor(L[:, j], F[:, j], families)
    ws.update_tau()
    return _to_fit(ws, fit)
