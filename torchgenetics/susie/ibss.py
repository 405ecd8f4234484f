"""The IBSS loop (iterative Bayesian stepwise selection), shared by all data backends.

One iteration updates the L single effects in turn against the partial residual,
then evaluates the ELBO, checks convergence, and only then (if not converged)
updates the residual variance: susieR's order. Each effect's fitted values
(``X b_l`` or ``X^T X b_l``) are cached, so an effect update costs one product
with the data and the ELBO none.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ..errors import ConvergenceError, InputError
from .ser import single_effect_regression

__all__ = ["IBSSState", "IBSSSettings", "IBSSOutcome", "initial_state", "ibss", "trim_null_effects"]


@dataclass
class IBSSState:
    """Variational state of a SuSiE fit with L effects over p variables.

    Attributes
    ----------
    alpha, mu, mu2 : torch.Tensor
        (L, p) inclusion probabilities and conditional posterior moments.
    V : torch.Tensor
        (L,) prior variances.
    sigma2 : float
        Residual variance.
    lbf, KL : torch.Tensor
        (L,) log Bayes factor and KL divergence of each effect (NaN before the first update).
    lbf_variable : torch.Tensor
        (L, p) per-variable log Bayes factors.
    effect_fits : torch.Tensor
        (L, m) fitted values of each effect (``X b_l`` or ``X^T X b_l``).
    fitted : torch.Tensor
        (m,) their sum.

    Examples
    --------
    >>> from torchgenetics.susie.data import IndividualData
    >>> X = torch.eye(3, dtype=torch.float64)
    >>> st = initial_state(IndividualData(X, X[:, 0]), L=2, V=torch.full((2,), 0.1, dtype=X.dtype), sigma2=1.0)
    >>> st.alpha.shape
    torch.Size([2, 3])
    """

    alpha: torch.Tensor
    mu: torch.Tensor
    mu2: torch.Tensor
    V: torch.Tensor
    sigma2: float
    lbf: torch.Tensor
    KL: torch.Tensor
    lbf_variable: torch.Tensor
    effect_fits: torch.Tensor
    fitted: torch.Tensor

    @property
    def L(self) -> int:
        """Number of single effects."""
        return self.alpha.shape[0]


@dataclass
class IBSSSettings:
    """Options of the IBSS loop.

    Attributes
    ----------
    prior_method : {"optim", "EM", "simple", "none"}
        Prior-variance update ("none" keeps V fixed).
    check_null_threshold : float
        Threshold of the V = 0 check.
    estimate_residual_variance : bool
        Update sigma2 after each non-converged iteration.
    sigma2_bounds : tuple of float
        (lower, upper) bounds on the estimated residual variance.
    max_iter : int
        Iteration budget.
    tol : float
        Convergence tolerance on the ELBO change (or on alpha for "pip").
    convergence : {"elbo", "pip"}
        Convergence criterion.
    track_fit : bool
        Keep a per-iteration snapshot of alpha, V, sigma2 and the ELBO.
    verbose : bool
        Show a tqdm bar.
    max_prior_variance : float
        Raise if an estimated V exceeds this (susieR's ``check_prior``); inf disables.

    Examples
    --------
    >>> IBSSSettings(prior_method="EM").tol
    0.0001
    """

    prior_method: str = "optim"
    check_null_threshold: float = 0.0
    estimate_residual_variance: bool = True
    sigma2_bounds: tuple = (0.0, math.inf)
    max_iter: int = 100
    tol: float = 1e-4
    convergence: str = "elbo"
    track_fit: bool = False
    verbose: bool = False
    max_prior_variance: float = math.inf


@dataclass
class IBSSOutcome:
    """Result of :func:`ibss`: final state, ELBO per iteration, iterations, convergence, trace.

    Examples
    --------
    >>> IBSSOutcome(state=None).converged
    False
    """

    state: IBSSState
    elbo: list = field(default_factory=list)
    n_iter: int = 0
    converged: bool = False
    trace: list = field(default_factory=list)


def _get(init, name):
    if isinstance(init, dict):
        return init.get(name)
    return getattr(init, name, None)


def initial_state(data, L: int, V: torch.Tensor, sigma2: float, init=None,
                  fixed_prior: bool = False) -> IBSSState:
    """Cold state (alpha = 1/p, zero means) or a warm start from a previous fit.

    Parameters
    ----------
    data : IndividualData or SuffStatData
        Backend.
    L : int
        Number of effects.
    V : torch.Tensor
        (L,) default prior variances (used for cold and padded effects).
    sigma2 : float
        Default residual variance.
    init : SusieFit or dict, optional
        Previous fit (or dict) with ``alpha, mu, mu2`` and optionally ``V, sigma2``.
        Fewer than L effects are padded with cold effects; more is an error.
    fixed_prior : bool
        Ignore ``init.V`` (the prior variance is fixed by the caller).

    Returns
    -------
    IBSSState

    Examples
    --------
    >>> from torchgenetics.susie.data import IndividualData
    >>> X = torch.eye(3, dtype=torch.float64)
    >>> data = IndividualData(X, X[:, 0])
    >>> st = initial_state(data, 2, torch.full((2,), 0.1, dtype=X.dtype), 1.0)
    >>> st.alpha[0].tolist()
    [0.3333333333333333, 0.3333333333333333, 0.3333333333333333]
    """
    p, dtype, device = data.p, data.d.dtype, data.d.device
    alpha = torch.full((L, p), 1.0 / p, dtype=dtype, device=device)
    mu = torch.zeros((L, p), dtype=dtype, device=device)
    mu2 = torch.zeros_like(mu)
    V = V.clone()
    if init is not None:
        a0 = torch.as_tensor(_get(init, "alpha"), dtype=dtype, device=device)
        if a0.dim() != 2 or a0.shape[1] != p:
            raise InputError(
                f"init.alpha has shape {tuple(a0.shape)} but this fit has p = {p} variables "
                f"(including the null column when null_weight > 0)"
            )
        L0 = a0.shape[0]
        if L0 > L:
            raise InputError(
                f"init has {L0} effects but L = {L}: a warm start keeps every effect of the "
                f"previous fit, so pass L >= {L0}"
            )
        if bool((a0 < 0).any()) or bool((a0 > 1).any()):
            raise InputError("init.alpha has values outside [0, 1]")
        alpha[:L0] = a0
        mu[:L0] = torch.as_tensor(_get(init, "mu"), dtype=dtype, device=device)
        mu2[:L0] = torch.as_tensor(_get(init, "mu2"), dtype=dtype, device=device)
        v0 = _get(init, "V")
        if v0 is not None and not fixed_prior:
            V[:L0] = torch.as_tensor(v0, dtype=dtype, device=device).reshape(-1)[:L0]
        s0 = _get(init, "sigma2")
        if s0 is not None:
            sigma2 = float(s0)
    nan = torch.full((L,), math.nan, dtype=dtype, device=device)
    effect_fits = data.effect_fitted((alpha * mu).T).T.contiguous()
    return IBSSState(
        alpha=alpha, mu=mu, mu2=mu2, V=V, sigma2=float(sigma2), lbf=nan.clone(), KL=nan.clone(),
        lbf_variable=torch.full((L, p), math.nan, dtype=dtype, device=device),
        effect_fits=effect_fits, fitted=effect_fits.sum(dim=0),
    )


def _elbo(data, state: IBSSState) -> tuple[float, float]:
    er2 = data.er2(state.fitted, state.alpha * state.mu, state.effect_fits, state.alpha * state.mu2)
    return data.eloglik(er2, state.sigma2) - float(state.KL.sum()), er2


def _sweep(data, state: IBSSState, log_prior: torch.Tensor, settings: IBSSSettings) -> None:
    for k in range(state.L):
        fitted_without = state.fitted - state.effect_fits[k]
        res = single_effect_regression(
            data.xtr(fitted_without), data.d, float(state.V[k]), state.sigma2, log_prior,
            settings.prior_method, settings.check_null_threshold,
        )
        state.alpha[k], state.mu[k], state.mu2[k] = res.alpha, res.mu, res.mu2
        state.V[k], state.lbf[k], state.KL[k] = res.V, res.lbf_model, res.KL
        state.lbf_variable[k] = res.lbf
        state.effect_fits[k] = data.effect_fitted(res.alpha * res.mu)
        state.fitted = fitted_without + state.effect_fits[k]


def ibss(data, state: IBSSState, log_prior: torch.Tensor, settings: IBSSSettings,
         previous_elbo: float | None = None) -> IBSSOutcome:
    """Run IBSS from ``state`` (updated in place) until convergence or ``max_iter``.

    The convergence check starts at the second iteration, or at the first when
    ``previous_elbo`` (the last ELBO of the fit being continued) is given: then the
    first iteration converges if its ELBO rose by less than ``tol`` (and did not
    fall), so a warm continuation stops exactly where the uninterrupted run would.

    Parameters
    ----------
    data : IndividualData or SuffStatData
        Backend.
    state : IBSSState
        Starting state (cold or warm).
    log_prior : torch.Tensor
        (p,) ``log(pi + sqrt(eps))``.
    settings : IBSSSettings
        Loop options.
    previous_elbo : float, optional
        Last ELBO of the fit ``state`` continues.

    Returns
    -------
    IBSSOutcome
        ``converged=False`` after ``max_iter`` iterations comes with a RuntimeWarning.

    Examples
    --------
    >>> from torchgenetics.susie.data import IndividualData
    >>> from torchgenetics.susie.ser import log_prior_weights
    >>> g = torch.Generator().manual_seed(1)
    >>> X = torch.randn(50, 5, generator=g, dtype=torch.float64)
    >>> data = IndividualData(X, X[:, 0] + 0.1 * torch.randn(50, generator=g, dtype=torch.float64))
    >>> st = initial_state(data, 2, torch.full((2,), 0.2 * data.var_y, dtype=X.dtype), data.var_y)
    >>> out = ibss(data, st, log_prior_weights(torch.full((5,), 0.2, dtype=X.dtype)), IBSSSettings())
    >>> out.converged, int(st.alpha[0].argmax())
    (True, 0)
    """
    out = IBSSOutcome(state=state)
    resumed = previous_elbo is not None and math.isfinite(previous_elbo)
    prev_elbo = previous_elbo if resumed else -math.inf
    prev_alpha = state.alpha.clone()
    lower, upper = settings.sigma2_bounds
    bar = tqdm(total=settings.max_iter, desc="IBSS", disable=not settings.verbose, leave=False)
    try:
        for it in range(1, settings.max_iter + 1):
            _sweep(data, state, log_prior, settings)
            if float(state.V.max()) > settings.max_prior_variance:
                raise InputError(
                    "the estimated prior variance is unreasonably large "
                    f"({float(state.V.max()):.4g} > {settings.max_prior_variance:.4g}); "
                    "this usually means the summary statistics and the LD matrix do not match"
                )
            value, er2 = _elbo(data, state)
            if math.isinf(value):
                raise ConvergenceError(f"the ELBO became infinite at IBSS iteration {it}")
            out.elbo.append(value)
            out.n_iter = it
            if settings.track_fit:
                out.trace.append({"alpha": state.alpha.clone(), "V": state.V.clone(),
                                  "sigma2": state.sigma2, "elbo": value})
            bar.update(1)
            bar.set_postfix(elbo=f"{value:.4f}", sigma2=f"{state.sigma2:.4g}")
            if it > 1 or resumed:
                if settings.convergence == "pip" or not math.isfinite(value):
                    delta = float((state.alpha - prev_alpha).abs().max())
                else:
                    delta = value - prev_elbo
                    if it == 1 and delta < 0:  # a resumed fit must not stop on a drop
                        delta = math.inf
                if delta < settings.tol:
                    out.converged = True
                    break
            prev_elbo, prev_alpha = value, state.alpha.clone()
            if settings.estimate_residual_variance:
                est = er2 / data.n
                if not est > 0:
                    raise InputError(
                        f"the estimated residual variance is {est:.4g} (not positive) at iteration "
                        f"{it}: X'X, X'y and y'y are not consistent with one data set"
                    )
                state.sigma2 = min(max(est, lower), upper)
    finally:
        bar.close()
    if not out.converged:
        warnings.warn(
            f"IBSS did not converge in {settings.max_iter} iterations (last ELBO change "
            f"{(out.elbo[-1] - out.elbo[-2]) if len(out.elbo) > 1 else math.nan:.3g}, tol "
            f"{settings.tol:g}); continue with init=fit or raise max_iter",
            RuntimeWarning, stacklevel=3,
        )
    return out


def trim_null_effects(state: IBSSState, prior_weights: torch.Tensor, prior_tol: float) -> None:
    """Reset effects with ``V < prior_tol`` to the prior (susieR 2.0 does this after IBSS).

    Their alpha becomes the prior weights, means and Bayes factors zero, and the
    fitted values drop their (negligible) contribution.

    Examples
    --------
    >>> from torchgenetics.susie.data import IndividualData
    >>> X = torch.eye(3, dtype=torch.float64)
    >>> st = initial_state(IndividualData(X, X[:, 0]), 1, torch.zeros(1, dtype=X.dtype), 1.0)
    >>> trim_null_effects(st, torch.tensor([0.5, 0.25, 0.25], dtype=X.dtype), 1e-9)
    >>> st.alpha
    tensor([[0.5000, 0.2500, 0.2500]], dtype=torch.float64)
    """
    null = state.V < prior_tol
    if not bool(null.any()):
        return
    state.V[null] = 0.0
    state.alpha[null] = prior_weights
    for t in (state.mu, state.mu2, state.lbf_variable):
        t[null] = 0.0
    state.lbf[null] = 0.0
    state.KL[null] = 0.0
    state.fitted = state.fitted - state.effect_fits[null].sum(dim=0)
    state.effect_fits[null] = 0.0
