"""Bayesian single-effect regression (SER) and its prior-variance estimation.

One SER fits ``r = X b + e`` where exactly one entry of ``b`` is non-zero, with a
``N(0, V)`` prior on that entry. Everything it needs from the data is ``X^T r``
and ``d = diag(X^T X)``, so the same code serves individual data, sufficient
statistics and RSS. Formulas follow susieR (``single_effect_regression`` and
``optimize_prior_variance``); the one-dimensional optimiser is Brent's bounded
minimiser on ``log V`` over ``[-30, 15]``, as R's ``optim(method = "Brent")``.

The formulas are batch-aware: with ``xtr``, ``d`` and ``log_prior`` of shape
(B, p) and ``V``, ``sigma2`` of shape (B,), :func:`single_effect_regression_batch`
fits B single effects at once (one per locus of :func:`~torchgenetics.susie.susie_batch`)
through the same code, and :func:`brent_minimize_batch` runs B Brent searches in
lock step, each taking exactly the steps the scalar :func:`brent_minimize` takes
(both drive one search generator).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..errors import InputError

__all__ = [
    "PRIOR_METHODS",
    "SERResult",
    "log_prior_weights",
    "single_effect_regression",
    "single_effect_regression_batch",
    "optimize_prior_variance",
    "brent_minimize",
    "brent_minimize_batch",
]

#: Ways to update the prior variance V of one effect ("none" keeps it fixed).
PRIOR_METHODS = ("optim", "EM", "simple", "none")
# R adds sqrt(.Machine$double.eps) to the prior weights before taking logs.
_SQRT_EPS = math.sqrt(2.220446049250313e-16)
_LOG_V_BOUNDS = (-30.0, 15.0)
# Batched Brent: once fewer than this fraction of rows still search, evaluate only those.
_SUBSET_EVAL = 0.6


@dataclass
class SERResult:
    """Posterior of one single effect.

    Attributes
    ----------
    alpha : torch.Tensor
        (p,) posterior probability that variable j carries the effect.
    mu, mu2 : torch.Tensor
        (p,) posterior mean and second moment of the effect given variable j.
    lbf : torch.Tensor
        (p,) log Bayes factor of each variable.
    lbf_model : float
        Log Bayes factor of the whole SER against the null.
    V : float
        Prior variance after its update.
    KL : float
        KL divergence of the posterior from the prior, by the SER identity.

    From :func:`single_effect_regression_batch` every field has a leading batch
    dimension: (B, p) tensors and (B,) tensors for ``lbf_model``, ``V`` and ``KL``.

    Examples
    --------
    >>> r = single_effect_regression(torch.tensor([5.0, 0.0]), torch.tensor([4.0, 4.0]),
    ...                              V=1.0, sigma2=1.0, log_prior=log_prior_weights(torch.ones(2) / 2))
    >>> round(float(r.alpha.sum()), 6)
    1.0
    """

    alpha: torch.Tensor
    mu: torch.Tensor
    mu2: torch.Tensor
    lbf: torch.Tensor
    lbf_model: float
    V: float
    KL: float


def log_prior_weights(prior_weights: torch.Tensor) -> torch.Tensor:
    """``log(pi + sqrt(eps))``, the prior log-odds term susieR adds to each lbf.

    Parameters
    ----------
    prior_weights : torch.Tensor
        (p,) prior inclusion probabilities (summing to one).

    Returns
    -------
    torch.Tensor
        (p,) log weights.

    Examples
    --------
    >>> log_prior_weights(torch.tensor([0.5, 0.5])).exp()
    tensor([0.5000, 0.5000])
    """
    return torch.log(prior_weights + _SQRT_EPS)


def _rowsum(x: torch.Tensor, keepdim: bool = False) -> torch.Tensor:
    """Sum over the last dimension in index order (a running sum).

    Trailing zeros (padding) leave the result bit for bit unchanged, so a locus
    gives the same sums alone as inside a padded batch.
    """
    out = torch.cumsum(x, dim=-1)[..., -1:]
    return out if keepdim else out.squeeze(-1)


def _logsumexp(x: torch.Tensor, keepdim: bool = False) -> torch.Tensor:
    """``log sum exp`` over the last dimension, with :func:`_rowsum` (padding with -inf is exact)."""
    m = x.max(dim=-1, keepdim=True).values  # finite: every row has a variable with finite prior
    out = torch.log(_rowsum(torch.exp(x - m), keepdim=True)) + m
    return out if keepdim else out.squeeze(-1)


def _col(v):
    """A per-row value (B,) as a (B, 1) column; Python floats and 0-d tensors pass through."""
    return v.unsqueeze(-1) if torch.is_tensor(v) and v.dim() > 0 else v


class _SERStats:
    """Per-variable z^2 and 1/shat^2 of one SER (or a batch of them), reused by every
    likelihood evaluation. ``sigma2`` and ``V`` are floats, or (B,) tensors for (B, p) inputs."""

    def __init__(self, xtr: torch.Tensor, d: torch.Tensor, sigma2, log_prior: torch.Tensor):
        # d == 0 (constant, null or padding column): shat2 is infinite and the variable
        # carries no data, so 1/shat2 = 0 gives lbf = 0 for every V.
        s2 = _col(sigma2)
        informative = d > 0
        self.inv_shat2 = torch.where(informative, d / s2, torch.zeros_like(d))
        safe_d = torch.where(informative, d, torch.ones_like(d))
        self.z2 = torch.where(informative, xtr * xtr / (safe_d * s2), torch.zeros_like(d))
        self.log_prior = log_prior

    def lbf(self, V) -> torch.Tensor:
        """log N(bhat; 0, V + s2) - log N(bhat; 0, s2) for every variable."""
        t = _col(V) * self.inv_shat2
        return 0.5 * (self.z2 * (t / (1.0 + t)) - torch.log1p(t))

    def loglik(self, V):
        """log sum_j pi_j BF_j(V): the SER log marginal likelihood up to a constant
        (a float, or a (B,) tensor for a batch)."""
        out = _logsumexp(self.lbf(V) + self.log_prior)
        return float(out) if out.dim() == 0 else out


class _LoglikSearch:
    """SER log-likelihoods of a batch at trial prior variances, for the Brent search.

    Each evaluation is a handful of elementwise operations on a (B, p) array: on
    CPU numpy does them (a fraction of torch's per-call overhead, and bit for bit
    the same values for a row whether it is evaluated alone or within a batch);
    on other devices torch does.
    """

    def __init__(self, stats: _SERStats):
        self.stats = stats
        self.numpy = stats.z2.device.type == "cpu"
        if self.numpy:
            self.inv_shat2 = stats.inv_shat2.numpy()
            self.z2 = stats.z2.numpy()
            self.log_prior = stats.log_prior.numpy()

    def __call__(self, V: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """``loglik`` at V (one value per row of ``rows``, default all rows)."""
        if not self.numpy:
            t = torch.as_tensor(V, dtype=self.stats.z2.dtype, device=self.stats.z2.device)
            stats = self.stats
            if rows is not None:
                idx = torch.as_tensor(rows, device=t.device)
                stats = object.__new__(_SERStats)
                stats.inv_shat2 = self.stats.inv_shat2.index_select(0, idx)
                stats.z2 = self.stats.z2.index_select(0, idx)
                stats.log_prior = self.stats.log_prior.index_select(0, idx)
            return stats.loglik(t).cpu().numpy()
        inv, z2, lp = self.inv_shat2, self.z2, self.log_prior
        if rows is not None:
            inv, z2, lp = inv[rows], z2[rows], lp[rows]
        t = V[:, None] * inv
        x = 0.5 * (z2 * (t / (1.0 + t)) - np.log1p(t)) + lp
        m = x.max(axis=-1, keepdims=True)
        return (np.log(np.cumsum(np.exp(x - m), axis=-1)[:, -1:]) + m)[:, 0]


def _brent_steps(lower: float, upper: float, xatol: float, max_eval: int):
    """Brent's bounded minimisation as a generator: yields each trial point, receives
    its function value (``send``), and returns the minimiser (``StopIteration.value``).

    Driving it one point at a time is :func:`brent_minimize`; driving many in lock
    step, one batched evaluation per step, is :func:`brent_minimize_batch`. Both take
    exactly the same steps for the same function values.
    """
    golden = 0.5 * (3.0 - math.sqrt(5.0))
    sqrt_eps = math.sqrt(2.2e-16)
    a, b = lower, upper
    x = w = v = a + golden * (b - a)
    fx = fw = fv = yield x
    step = prev_step = 0.0
    n_eval = 1
    mid = 0.5 * (a + b)
    tol1 = sqrt_eps * abs(x) + xatol / 3.0
    tol2 = 2.0 * tol1
    while abs(x - mid) > tol2 - 0.5 * (b - a):
        use_golden = True
        if abs(prev_step) > tol1:
            # Try a parabola through (x, fx), (w, fw), (v, fv).
            r = (x - w) * (fx - fv)
            q = (x - v) * (fx - fw)
            p = (x - v) * q - (x - w) * r
            q = 2.0 * (q - r)
            if q > 0.0:
                p = -p
            q = abs(q)
            r, prev_step = prev_step, step
            if abs(p) < abs(0.5 * q * r) and q * (a - x) < p < q * (b - x):
                use_golden = False
                step = p / q
                u = x + step
                if (u - a) < tol2 or (b - u) < tol2:
                    step = tol1 * (1.0 if mid >= x else -1.0)
        if use_golden:
            prev_step = (a - x) if x >= mid else (b - x)
            step = golden * prev_step
        sign = 1.0 if step >= 0 else -1.0
        u = x + sign * max(abs(step), tol1)
        fu = yield u
        n_eval += 1
        if fu <= fx:
            if u >= x:
                a = x
            else:
                b = x
            v, fv, w, fw, x, fx = w, fw, x, fx, u, fu
        else:
            if u < x:
                a = u
            else:
                b = u
            if fu <= fw or w == x:
                v, fv, w, fw = w, fw, u, fu
            elif fu <= fv or v == x or v == w:
                v, fv = u, fu
        mid = 0.5 * (a + b)
        tol1 = sqrt_eps * abs(x) + xatol / 3.0
        tol2 = 2.0 * tol1
        if n_eval >= max_eval:
            break
    return x


def brent_minimize(f: Callable[[float], float], lower: float, upper: float,
                   xatol: float = 1e-8, max_eval: int = 500) -> float:
    """Minimise a scalar function on ``[lower, upper]`` by Brent's method.

    Golden-section steps with parabolic interpolation (Brent 1973, the algorithm of
    R's ``optimize`` and SciPy's bounded ``minimize_scalar``).

    Parameters
    ----------
    f : callable
        Function of one float returning a float.
    lower, upper : float
        Search interval.
    xatol : float
        Absolute tolerance on the minimiser.
    max_eval : int
        Maximum number of function evaluations.

    Returns
    -------
    float
        The approximate minimiser.

    Examples
    --------
    >>> round(brent_minimize(lambda x: (x - 1.5) ** 2, -10.0, 10.0), 6)
    1.5
    """
    search = _brent_steps(lower, upper, xatol, max_eval)
    x = next(search)
    try:
        while True:
            x = search.send(f(x))
    except StopIteration as done:
        return done.value


def brent_minimize_batch(f: Callable[[np.ndarray, np.ndarray], np.ndarray], lower: float,
                         upper: float, size: int, xatol: float = 1e-8,
                         max_eval: int = 500) -> np.ndarray:
    """Run ``size`` Brent minimisations on ``[lower, upper]`` in lock step.

    Row i takes exactly the steps :func:`brent_minimize` takes on ``f_i`` (the same
    search code, fed row i's values); rows whose search has ended drop out while
    the others continue, so every row ends where its scalar search would.

    Parameters
    ----------
    f : callable
        ``f(x, rows)`` maps the trial points ``x`` (float64 array) of the rows
        ``rows`` (int array) to their values ``f_i(x_i)``.
    lower, upper : float
        Search interval (shared by all rows).
    size : int
        Number of rows.
    xatol : float
        Absolute tolerance on each minimiser.
    max_eval : int
        Maximum number of evaluations per row.

    Returns
    -------
    numpy.ndarray
        (size,) approximate minimisers.

    Examples
    --------
    >>> centres = np.array([-3.0, 0.5, 7.0])
    >>> brent_minimize_batch(lambda x, rows: (x - centres[rows]) ** 2, -10.0, 10.0, 3).round(6).tolist()
    [-3.0, 0.5, 7.0]
    """
    searches = [_brent_steps(lower, upper, xatol, max_eval) for _ in range(size)]
    trial = {i: next(s) for i, s in enumerate(searches)}
    result = np.empty(size)
    while trial:
        rows = np.fromiter(trial, dtype=np.int64, count=len(trial))
        values = f(np.array([trial[i] for i in rows.tolist()]), rows).tolist()
        for i, value in zip(rows.tolist(), values, strict=True):
            try:
                trial[i] = searches[i].send(value)
            except StopIteration as done:
                result[i] = done.value
                del trial[i]
    return result


def optimize_prior_variance(xtr: torch.Tensor, d: torch.Tensor, sigma2: float,
                            log_prior: torch.Tensor, V: float, method: str = "optim",
                            check_null_threshold: float = 0.0,
                            alpha: torch.Tensor | None = None,
                            mu2: torch.Tensor | None = None) -> float:
    """Update the prior variance of one single effect.

    Parameters
    ----------
    xtr : torch.Tensor
        (p,) ``X^T r`` for the residual r of this effect.
    d : torch.Tensor
        (p,) ``diag(X^T X)``.
    sigma2 : float
        Residual variance.
    log_prior : torch.Tensor
        (p,) output of :func:`log_prior_weights`.
    V : float
        Current prior variance (the starting value; kept by "optim" when the
        optimum is no better).
    method : {"optim", "EM", "simple", "none"}
        "optim" maximises the SER likelihood over ``log V``; "EM" returns
        ``sum(alpha * mu2)`` (needs ``alpha`` and ``mu2``); "simple" keeps V;
        "none" keeps V and skips the null check.
    check_null_threshold : float
        V is set to 0 unless its log-likelihood beats V = 0 by more than this.
    alpha, mu2 : torch.Tensor, optional
        Current posterior of the effect (for "EM").

    Returns
    -------
    float
        The new prior variance.

    Examples
    --------
    >>> lp = log_prior_weights(torch.ones(3, dtype=torch.float64) / 3)
    >>> xtr = torch.tensor([40.0, 1.0, -2.0], dtype=torch.float64)
    >>> d = torch.full((3,), 99.0, dtype=torch.float64)
    >>> optimize_prior_variance(xtr, d, 1.0, lp, V=0.2) > 0.1
    True
    """
    _check_method(method)
    return _update_v(_SERStats(xtr, d, sigma2, log_prior), V, method, check_null_threshold,
                     alpha, mu2)


def _update_v(stats: _SERStats, V: float, method: str, check_null_threshold: float,
              alpha: torch.Tensor | None = None, mu2: torch.Tensor | None = None) -> float:
    if method == "none":
        return float(V)
    if method == "optim":
        def neg_loglik(log_v: float) -> float:
            return -stats.loglik(math.exp(log_v))

        log_v = brent_minimize(neg_loglik, *_LOG_V_BOUNDS)
        new_v = math.exp(log_v)
        # Keep the current value when the optimum is no better (susieR does the same).
        if neg_loglik(log_v) > -stats.loglik(float(V)):
            new_v = float(V)
        V = new_v
    elif method == "EM":
        if alpha is None or mu2 is None:
            raise InputError("the EM update of the prior variance needs alpha and mu2")
        V = float(_rowsum(alpha * mu2))
    if stats.loglik(0.0) + check_null_threshold >= stats.loglik(V):
        V = 0.0
    return float(V)


def _exp_each(log_v: np.ndarray) -> np.ndarray:
    """``exp`` of each entry with Python's ``math.exp``, as the scalar search takes it."""
    return np.array([math.exp(t) for t in log_v.tolist()], dtype=np.float64)


def _update_v_batch(stats: _SERStats, V: torch.Tensor, method: str, check_null_threshold: float,
                    alpha: torch.Tensor | None = None, mu2: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`_update_v` for a batch: V (B,) -> (B,), row by row the same decisions."""
    if method == "none":
        return V.clone()
    search = _LoglikSearch(stats)
    if method == "optim":
        size = V.shape[0]

        def neg_loglik(log_v: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
            if rows is None or rows.shape[0] == size:
                return -search(_exp_each(log_v))
            if rows.shape[0] > _SUBSET_EVAL * size:  # cheaper than gathering the rows
                V_all = np.ones(size)
                V_all[rows] = _exp_each(log_v)
                return -search(V_all)[rows]
            return -search(_exp_each(log_v), rows)

        if size == 1:  # the same search, without the batch bookkeeping
            log_v = np.array([brent_minimize(lambda t: float(neg_loglik(np.array([t]))[0]),
                                             *_LOG_V_BOUNDS)])
        else:
            log_v = brent_minimize_batch(neg_loglik, *_LOG_V_BOUNDS, size=size)
        current = V.cpu().numpy().astype(np.float64)
        # Keep the current value when the optimum is no better (susieR does the same).
        new = np.where(neg_loglik(log_v) > -search(current), current, _exp_each(log_v))
    elif method == "EM":
        new = _rowsum(alpha * mu2).cpu().numpy()
    else:
        new = V.cpu().numpy().astype(np.float64)
    null = search(np.zeros_like(new)) + check_null_threshold >= search(new)
    return torch.as_tensor(np.where(null, 0.0, new), dtype=V.dtype, device=V.device)


def _posterior(stats: _SERStats, xtr: torch.Tensor, d: torch.Tensor, V, sigma2,
               log_prior: torch.Tensor):
    """alpha, mu, mu2, lbf, lbf_model and KL of the SER(s) with prior variance V."""
    lbf = stats.lbf(V)
    lpo = lbf + log_prior
    lbf_model = _logsumexp(lpo, keepdim=True)
    alpha = torch.exp(lpo - lbf_model)
    lbf_model = lbf_model.squeeze(-1)
    Vc, s2 = _col(V), _col(sigma2)
    if torch.is_tensor(Vc):
        post_var = torch.where(Vc > 0, 1.0 / (1.0 / Vc + d / s2), torch.zeros_like(d))
    elif Vc > 0:
        post_var = 1.0 / (1.0 / Vc + d / s2)
    else:
        post_var = torch.zeros_like(d)
    mu = post_var * xtr / s2
    mu2 = post_var + mu * mu
    eb, eb2 = alpha * mu, alpha * mu2
    kl = -lbf_model + _rowsum(eb * xtr) / sigma2 - _rowsum(d * eb2) / (2.0 * sigma2)
    return alpha, mu, mu2, lbf, lbf_model, kl


def _check_method(method: str) -> None:
    if method not in PRIOR_METHODS:
        raise InputError(f"estimate_prior_method must be one of {PRIOR_METHODS[:3]}, got {method!r}")


def single_effect_regression(xtr: torch.Tensor, d: torch.Tensor, V: float, sigma2: float,
                             log_prior: torch.Tensor, method: str = "none",
                             check_null_threshold: float = 0.0) -> SERResult:
    """Fit one single effect from ``X^T r`` and ``diag(X^T X)``.

    With ``method`` "optim" or "simple" V is updated before the posterior is
    computed, with "EM" after it (from the new posterior), as in susieR.

    Parameters
    ----------
    xtr : torch.Tensor
        (p,) ``X^T r``.
    d : torch.Tensor
        (p,) ``diag(X^T X)``; zeros mark variables without variation.
    V : float
        Prior variance of the non-zero effect.
    sigma2 : float
        Residual variance.
    log_prior : torch.Tensor
        (p,) output of :func:`log_prior_weights`.
    method : {"optim", "EM", "simple", "none"}
        Prior-variance update (see :func:`optimize_prior_variance`).
    check_null_threshold : float
        Threshold of the V = 0 check.

    Returns
    -------
    SERResult
        Posterior, Bayes factors, updated V and the KL divergence
        ``KL = -lbf_model + E[b]^T X^T r / sigma2 - d^T E[b^2] / (2 sigma2)``.

    Examples
    --------
    >>> lp = log_prior_weights(torch.ones(2, dtype=torch.float64) / 2)
    >>> res = single_effect_regression(torch.tensor([30.0, 3.0], dtype=torch.float64),
    ...                                torch.tensor([10.0, 10.0], dtype=torch.float64), 1.0, 1.0, lp)
    >>> bool(res.alpha[0] > 0.99)
    True
    """
    _check_method(method)
    stats = _SERStats(xtr, d, sigma2, log_prior)
    if method in ("optim", "simple"):
        V = _update_v(stats, V, method, check_null_threshold)
    alpha, mu, mu2, lbf, lbf_model, kl = _posterior(stats, xtr, d, V, sigma2, log_prior)
    if method == "EM":
        V = _update_v(stats, V, "EM", check_null_threshold, alpha=alpha, mu2=mu2)
    return SERResult(alpha=alpha, mu=mu, mu2=mu2, lbf=lbf, lbf_model=float(lbf_model), V=float(V),
                     KL=float(kl))


def single_effect_regression_batch(xtr: torch.Tensor, d: torch.Tensor, V: torch.Tensor,
                                   sigma2: torch.Tensor, log_prior: torch.Tensor,
                                   method: str = "none",
                                   check_null_threshold: float = 0.0) -> SERResult:
    """Fit B single effects at once, row i exactly as :func:`single_effect_regression` would.

    Rows may be padded: a padding variable has ``d = 0``, ``xtr = 0`` and
    ``log_prior = -inf``, which gives it ``alpha = 0`` and leaves every other
    quantity of its row unchanged.

    Parameters
    ----------
    xtr, d, log_prior : torch.Tensor
        (B, p) ``X^T r``, ``diag(X^T X)`` and log prior weights of each row.
    V, sigma2 : torch.Tensor
        (B,) prior and residual variances.
    method : {"optim", "EM", "simple", "none"}
        Prior-variance update.
    check_null_threshold : float
        Threshold of the V = 0 check.

    Returns
    -------
    SERResult
        Fields with a leading batch dimension.

    Examples
    --------
    >>> lp = log_prior_weights(torch.ones(2, 2, dtype=torch.float64) / 2)
    >>> xtr = torch.tensor([[30.0, 3.0], [1.0, 25.0]], dtype=torch.float64)
    >>> d = torch.full((2, 2), 10.0, dtype=torch.float64)
    >>> one = torch.ones(2, dtype=torch.float64)
    >>> single_effect_regression_batch(xtr, d, one, one, lp).alpha.argmax(dim=1).tolist()
    [0, 1]
    """
    _check_method(method)
    stats = _SERStats(xtr, d, sigma2, log_prior)
    if method in ("optim", "simple"):
        V = _update_v_batch(stats, V, method, check_null_threshold)
    alpha, mu, mu2, lbf, lbf_model, kl = _posterior(stats, xtr, d, V, sigma2, log_prior)
    if method == "EM":
        V = _update_v_batch(stats, V, "EM", check_null_threshold, alpha=alpha, mu2=mu2)
    return SERResult(alpha=alpha, mu=mu, mu2=mu2, lbf=lbf, lbf_model=lbf_model, V=V, KL=kl)
