"""Bayesian single-effect regression (SER) and its prior-variance estimation.

One SER fits ``r = X b + e`` where exactly one entry of ``b`` is non-zero, with a
``N(0, V)`` prior on that entry. Everything it needs from the data is ``X^T r``
and ``d = diag(X^T X)``, so the same code serves individual data, sufficient
statistics and RSS. Formulas follow susieR (``single_effect_regression`` and
``optimize_prior_variance``); the one-dimensional optimiser is Brent's bounded
minimiser on ``log V`` over ``[-30, 15]``, as R's ``optim(method = "Brent")``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import InputError

__all__ = [
    "PRIOR_METHODS",
    "SERResult",
    "log_prior_weights",
    "single_effect_regression",
    "optimize_prior_variance",
    "brent_minimize",
]

#: Ways to update the prior variance V of one effect ("none" keeps it fixed).
PRIOR_METHODS = ("optim", "EM", "simple", "none")
# R adds sqrt(.Machine$double.eps) to the prior weights before taking logs.
_SQRT_EPS = math.sqrt(2.220446049250313e-16)
_LOG_V_BOUNDS = (-30.0, 15.0)


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


class _SERStats:
    """Per-variable z^2 and 1/shat^2 of one SER, reused by every likelihood evaluation."""

    def __init__(self, xtr: torch.Tensor, d: torch.Tensor, sigma2: float, log_prior: torch.Tensor):
        # d == 0 (constant or null column): shat2 is infinite and the variable carries no
        # data, so 1/shat2 = 0 gives lbf = 0 for every V.
        informative = d > 0
        self.inv_shat2 = torch.where(informative, d / sigma2, torch.zeros_like(d))
        safe_d = torch.where(informative, d, torch.ones_like(d))
        self.z2 = torch.where(informative, xtr * xtr / (safe_d * sigma2), torch.zeros_like(d))
        self.log_prior = log_prior

    def lbf(self, V: float) -> torch.Tensor:
        """log N(bhat; 0, V + s2) - log N(bhat; 0, s2) for every variable."""
        t = V * self.inv_shat2
        return 0.5 * (self.z2 * (t / (1.0 + t)) - torch.log1p(t))

    def loglik(self, V: float) -> float:
        """log sum_j pi_j BF_j(V): the SER log marginal likelihood up to a constant."""
        return float(torch.logsumexp(self.lbf(V) + self.log_prior, dim=0))


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
    golden = 0.5 * (3.0 - math.sqrt(5.0))
    sqrt_eps = math.sqrt(2.2e-16)
    a, b = lower, upper
    x = w = v = a + golden * (b - a)
    fx = fw = fv = f(x)
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
        fu = f(u)
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
    if method not in PRIOR_METHODS:
        raise InputError(f"estimate_prior_method must be one of {PRIOR_METHODS[:3]}, got {method!r}")
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
        V = float((alpha * mu2).sum())
    if stats.loglik(0.0) + check_null_threshold >= stats.loglik(V):
        V = 0.0
    return float(V)


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
    if method not in PRIOR_METHODS:
        raise InputError(f"estimate_prior_method must be one of {PRIOR_METHODS[:3]}, got {method!r}")
    stats = _SERStats(xtr, d, sigma2, log_prior)
    if method in ("optim", "simple"):
        V = _update_v(stats, V, method, check_null_threshold)
    lbf = stats.lbf(V)
    lpo = lbf + log_prior
    lbf_model = torch.logsumexp(lpo, dim=0)
    alpha = torch.exp(lpo - lbf_model)
    if V > 0:
        post_var = 1.0 / (1.0 / V + d / sigma2)
    else:
        post_var = torch.zeros_like(d)
    mu = post_var * xtr / sigma2
    mu2 = post_var + mu * mu
    lbf_model = float(lbf_model)
    eb, eb2 = alpha * mu, alpha * mu2
    kl = -lbf_model + float(eb @ xtr) / sigma2 - float(d @ eb2) / (2.0 * sigma2)
    if method == "EM":
        V = _update_v(stats, V, "EM", check_null_threshold, alpha=alpha, mu2=mu2)
    return SERResult(alpha=alpha, mu=mu, mu2=mu2, lbf=lbf, lbf_model=lbf_model, V=float(V), KL=kl)
