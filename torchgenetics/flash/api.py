"""``flash()``: empirical Bayes matrix factorization in one call (init, greedy, backfit, nullcheck)."""

from __future__ import annotations

import torch

from ..errors import InputError
from . import steps
from .fit import FlashFit

__all__ = ["flash"]


def flash(
    Y,
    S=None,
    prior="point_normal",
    var_type: int | None = 0,
    greedy_max: int = 50,
    backfit: bool | str = False,
    nullcheck: bool = True,
    intercept: str | None = None,
    init: FlashFit | None = None,
    tol: float | None = None,
    maxiter: int = 500,
    collinear_threshold: float = 0.95,
    verbose: bool = False,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device=None,
) -> FlashFit:
    """Fit ``Y ~ L F^T + E`` by empirical Bayes matrix factorization (flashier's ``flash``).

    Each factor's loadings ``l_k`` and values ``f_k`` get priors from an EBNM
    family (fitted to the data); factors are added greedily until one no
    longer raises the ELBO, optionally backfitted together, then checked for
    removal.

    Parameters
    ----------
    Y : array-like or pandas.DataFrame
        ``(n, p)`` data; NaN marks missing values.
    S : float or array-like, optional
        Standard errors of the entries of ``Y``.
    prior : str, Family, dict or pair
        EBNM family of loadings and factors (``"point_normal"`` by default), or
        a ``(loadings, factors)`` pair such as ``("point_laplace", "point_exponential")``.
    var_type : {0, 1, 2, None}
        Residual variance: constant, by row, by column, or only ``S``.
    greedy_max : int
        Maximum number of factors added greedily.
    backfit : False, True, "sequential" or "parallel"
        Backfit after the greedy phase (``True`` means ``"sequential"``).
    nullcheck : bool
        Remove factors that do not raise the ELBO.
    intercept : {None, "row", "column"}
        Add an intercept factor first (one intercept per row or per column).
    init : FlashFit, optional
        Warm start from a previous fit (in memory or loaded with ``FlashFit.load``).
    tol : float, optional
        Convergence tolerance (default ``n p sqrt(eps)``).
    maxiter : int
        Iterations per greedy factor and per backfit at most.
    collinear_threshold : float
        Parallel backfit guard (see :func:`~torchgenetics.flash.backfit`).
    verbose : bool
        Show progress bars.
    seed : int
        Seed of the greedy initialisations.
    dtype, device : optional
        Precision and device (float64 on CPU by default).

    Returns
    -------
    FlashFit

    Raises
    ------
    InputError
        Rows or columns with no observed value, non-finite values, bad ``S``,
        unknown options.

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> L = torch.randn(60, 3, generator=g, dtype=torch.float64)
    >>> F = torch.randn(40, 3, generator=g, dtype=torch.float64)
    >>> fit = flash(L @ F.T + 0.1 * torch.randn(60, 40, generator=g, dtype=torch.float64), backfit=True)
    >>> fit.n_factors
    3
    """
    if backfit is True:
        backfit = "sequential"
    if backfit not in (False, None, "sequential", "parallel"):
        raise InputError(f"backfit must be False, True, 'sequential' or 'parallel', got {backfit!r}")
    if intercept not in (None, "row", "column"):
        raise InputError(f"intercept must be None, 'row' or 'column', got {intercept!r}")
    fit = steps.init(Y, S=S, var_type=var_type, fit=init, tol=tol, seed=seed, dtype=dtype, device=device)
    if intercept is not None:
        prior_one = prior[0] if intercept == "row" and isinstance(prior, (tuple, list)) else (
            prior[1] if isinstance(prior, (tuple, list)) else prior
        )
        fit = steps.add_intercept(fit, rowwise=intercept == "row", prior=prior_one, maxiter=maxiter)
    if greedy_max:
        fit = steps.greedy(fit, K_max=greedy_max, prior=prior, maxiter=maxiter, verbose=verbose)
    if backfit:
        fit = steps.backfit(fit, method=backfit, maxiter=maxiter, collinear_threshold=collinear_threshold, verbose=verbose)
    if nullcheck:
        fit = steps.nullcheck(fit)
    return fit
