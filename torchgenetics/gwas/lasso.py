"""LASSO path of a whitened least-squares problem by coordinate descent, and EBIC.

The penalized GLS problem ``min_b 1/2 (y - Z b)' P (y - Z b) + lambda |b|_1`` (``P``
the REML projection that also profiles out the covariates) is the ordinary LASSO
on the whitened data ``L^-1 y``, ``L^-1 Z`` (``V = L L'``), whose only inputs are
the Gram matrix ``H = Z'PZ`` and ``g = Z'Py``. Coordinate descent works on them
directly ("covariance updates"): each coordinate step is
``b_j <- S(g_j - (H b)_j + H_jj b_j, lambda) / H_jj`` with ``S`` soft-thresholding,
over an active set (non-zero coefficients plus the sequential strong rule),
followed by a KKT check on every coordinate; violators join the active set and
the sweep repeats. Each lambda is warm-started from the previous one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from ..errors import InputError

__all__ = ["LassoPath", "lasso_path", "lambda_grid", "ebic", "refit_rss"]


@dataclass
class LassoPath:
    """Coefficients along a lambda path.

    Attributes
    ----------
    lambdas : numpy.ndarray
        (L,) decreasing penalties.
    coef : numpy.ndarray
        (L, s) coefficients.
    rss : numpy.ndarray
        (L,) whitened residual sum of squares ``(y - Zb)' P (y - Zb)``.
    df : numpy.ndarray of int64
        (L,) non-zero coefficients.
    sweeps : numpy.ndarray of int64
        (L,) coordinate-descent sweeps per lambda.
    kkt_rounds : numpy.ndarray of int64
        (L,) KKT checks per lambda (1 = no violation found after the first solve).

    Examples
    --------
    >>> H = np.array([[2.0, 0.5], [0.5, 1.0]]); g = np.array([2.0, 0.2])
    >>> path = lasso_path(H, g, lambda_grid(g, 3, 0.1), ypy=4.0)
    >>> path.df.tolist()
    [0, 1, 2]
    """

    lambdas: np.ndarray
    coef: np.ndarray
    rss: np.ndarray
    df: np.ndarray
    sweeps: np.ndarray
    kkt_rounds: np.ndarray


def lambda_grid(g: np.ndarray, n_lambda: int = 40, min_ratio: float = 0.01) -> np.ndarray:
    """Log-spaced penalties from ``lambda_max = max |g|`` (all coefficients 0) down to ``min_ratio`` of it.

    Parameters
    ----------
    g : numpy.ndarray
        ``Z'Py``.
    n_lambda : int, default 40
    min_ratio : float, default 0.01

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> lambda_grid(np.array([1.0, -4.0]), 3, 0.25).tolist()
    [4.0, 2.0, 1.0]
    """
    if int(n_lambda) < 1 or not 0 < min_ratio <= 1:
        raise InputError(f"need n_lambda >= 1 and 0 < min_ratio <= 1, got {n_lambda} and {min_ratio}")
    top = float(np.max(np.abs(g))) if g.size else 0.0
    return top * np.geomspace(1.0, min_ratio, int(n_lambda)) if n_lambda > 1 else np.array([top])


def _descend(H, diag, grad, b, active, lam, tol, max_sweeps):
    """Coordinate descent over ``active`` until the largest objective change is below tol."""
    sweeps = 0
    while sweeps < max_sweeps:
        sweeps += 1
        biggest = 0.0
        for j in active:
            z = grad[j] + diag[j] * b[j]
            new = np.sign(z) * max(abs(z) - lam, 0.0) / diag[j]
            delta = new - b[j]
            if delta != 0.0:
                grad -= H[:, j] * delta
                b[j] = new
                biggest = max(biggest, diag[j] * delta * delta)
        if biggest < tol:
            break
    return sweeps


def lasso_path(H, g, lambdas, *, ypy: float, tol: float = 1e-10, max_sweeps: int = 10000,
               max_df: int | None = None) -> LassoPath:
    """Solve the LASSO in covariance form for every penalty of a decreasing path.

    Parameters
    ----------
    H : array-like
        ``s x s`` Gram matrix ``Z'PZ`` (positive diagonal).
    g : array-like
        ``Z'Py``.
    lambdas : array-like
        Decreasing penalties (e.g. :func:`lambda_grid`).
    ypy : float
        ``y'Py`` (for the residual sums of squares and the relative tolerance).
    tol : float, default 1e-10
        Stop a sweep when no coordinate changes the objective by more than
        ``tol * ypy``.
    max_sweeps : int, default 10000
    max_df : int, optional
        Stop the path once more than this many coefficients are non-zero.

    Returns
    -------
    LassoPath
        Truncated at the first lambda exceeding ``max_df``.

    Examples
    --------
    >>> H = np.eye(2) * 2.0; g = np.array([3.0, 1.0])
    >>> lasso_path(H, g, [1.0], ypy=10.0).coef.tolist()   # soft(g, 1) / 2
    [[1.0, 0.0]]
    """
    H = np.asarray(H, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    lambdas = np.asarray(lambdas, dtype=np.float64)
    s = g.size
    diag = H.diagonal().copy()
    if H.shape != (s, s) or not np.all(diag > 0):
        raise InputError(f"H must be {s} x {s} with a positive diagonal")
    b = np.zeros(s)
    grad = g.copy()                      # g - H b
    prev = lambdas[0] if lambdas.size else 0.0
    coef, sweeps, rounds = [], [], []
    for lam in lambdas:
        strong = np.abs(grad) >= 2.0 * lam - prev
        active = sorted(set(np.flatnonzero(b).tolist()) | set(np.flatnonzero(strong).tolist()))
        n_sweeps = n_rounds = 0
        while True:
            n_rounds += 1
            n_sweeps += _descend(H, diag, grad, b, active, lam, tol * ypy, max_sweeps)
            grad = g - H @ b             # refresh (no drift), then check KKT everywhere
            inactive = np.ones(s, dtype=bool)
            inactive[active] = False
            violators = np.flatnonzero(inactive & (np.abs(grad) > lam * (1 + 1e-9)))
            if violators.size == 0:
                break
            active = sorted(set(active) | set(violators.tolist()))
        coef.append(b.copy())
        sweeps.append(n_sweeps)
        rounds.append(n_rounds)
        prev = lam
        if max_df is not None and np.count_nonzero(b) > max_df:
            break
    coef = np.array(coef).reshape(len(coef), s)
    rss = ypy - 2.0 * coef @ g + np.einsum("li,ij,lj->l", coef, H, coef)
    return LassoPath(lambdas=lambdas[:len(coef)], coef=coef, rss=rss,
                     df=np.count_nonzero(coef, axis=1).astype(np.int64),
                     sweeps=np.array(sweeps, dtype=np.int64), kkt_rounds=np.array(rounds, dtype=np.int64))


def refit_rss(H, g, coef, ypy: float) -> np.ndarray:
    """Whitened RSS of the unpenalized (GLS) refit on each support of a path.

    On support ``A`` the refit minimizes ``(y - Z_A b)' P (y - Z_A b)``, leaving
    ``y'Py - g_A' H_AA^-1 g_A``. EBIC is computed from these rather than from the
    shrunken LASSO fit, whose RSS barely drops when a strong variable enters.

    Parameters
    ----------
    H, g : numpy.ndarray
        ``Z'PZ`` and ``Z'Py``.
    coef : numpy.ndarray
        (L, s) path coefficients (their non-zero pattern is used).
    ypy : float
        ``y'Py``.

    Returns
    -------
    numpy.ndarray
        (L,) residual sums of squares.

    Examples
    --------
    >>> H = np.eye(2); g = np.array([3.0, 1.0])
    >>> refit_rss(H, g, np.array([[0.0, 0.0], [2.0, 0.0]]), ypy=20.0).tolist()
    [20.0, 11.0]
    """
    out = np.empty(coef.shape[0])
    cache: dict[bytes, float] = {}
    for i, row in enumerate(coef):
        support = np.flatnonzero(row)
        key = support.tobytes()
        if key not in cache:
            if support.size:
                gA = g[support]
                cache[key] = ypy - float(gA @ np.linalg.solve(H[np.ix_(support, support)], gA))
            else:
                cache[key] = ypy
        out[i] = cache[key]
    return out


def ebic(rss, df, n: int, n_candidates: int, gamma: float = 0.5) -> np.ndarray:
    """Extended BIC (Chen & Chen 2008) of Gaussian models with known covariance.

    ``EBIC = rss + df log(n) + 2 gamma log C(M, df)``, where ``rss`` is the whitened
    residual sum of squares (``-2`` log-likelihood up to a constant; see
    :func:`refit_rss`) and ``M`` the number of candidate variables (all variants
    tested, not only those screened).

    Parameters
    ----------
    rss, df : array-like
    n : int
        Samples.
    n_candidates : int
        ``M``.
    gamma : float, default 0.5
        0 gives BIC; 1 the most conservative EBIC.

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> ebic([100.0, 80.0], [0, 1], n=100, n_candidates=1000, gamma=0.0).round(3).tolist()
    [100.0, 84.605]
    """
    if gamma < 0:
        raise InputError(f"ebic gamma must be >= 0, got {gamma}")
    df = np.asarray(df, dtype=np.float64)
    log_choose = special.gammaln(n_candidates + 1) - special.gammaln(df + 1) - special.gammaln(n_candidates - df + 1)
    return np.asarray(rss, dtype=np.float64) + df * np.log(n) + 2.0 * gamma * log_choose
