"""The IBSS loop (iterative Bayesian stepwise selection), shared by all data backends.

One iteration updates the L single effects in turn against the partial residual,
then evaluates the ELBO, checks convergence, and only then (if not converged)
updates the residual variance: susieR's order. Each effect's fitted values
(``X b_l`` or ``X^T X b_l``) are cached, so an effect update costs one product
with the data and the ELBO none.

The loop runs B loci at once (:func:`ibss_batch`); a one-locus fit
(:func:`ibss`) is the batch of one. Products with the data and the ELBO use each
locus' own backend; the single-effect regressions of all loci run as one batched
tensor program on a padded (B, p) layout whose reductions are running sums, so
padding changes no bit: a locus gets the same fit alone as in any batch. A locus
that converges, reaches ``max_iter`` or fails leaves the batch at once.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, fields

import torch
from tqdm.auto import tqdm

from ..errors import ConvergenceError, InputError
from .ser import single_effect_regression_batch

__all__ = ["IBSSState", "IBSSSettings", "IBSSOutcome", "initial_state", "ibss", "ibss_batch",
           "trim_null_effects"]

# Settings every locus of one batch shares (the others may differ per locus).
_SHARED = ("prior_method", "check_null_threshold", "estimate_residual_variance", "max_iter", "tol",
           "convergence", "track_fit", "verbose")
# The padded width of the batched SER is a multiple of this (whole SIMD vectors).
_WIDTH_STEP = 16


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


class _Batch:
    """B loci in the IBSS loop: per-locus backends and fitted values, the SER
    quantities stacked as (L, B, width) with zero padding (``-inf`` log prior)."""

    def __init__(self, backends, states: list[IBSSState], log_priors: list[torch.Tensor]):
        ref = states[0].alpha
        self.backends = list(backends)
        self.p = [b.p for b in self.backends]
        width = -(-max(self.p) // _WIDTH_STEP) * _WIDTH_STEP
        L, B = ref.shape[0], len(states)
        for name in ("alpha", "mu", "mu2", "lbf_variable"):
            out = ref.new_zeros((L, B, width))
            for j, st in enumerate(states):
                out[:, j, : self.p[j]] = getattr(st, name)
            setattr(self, name, out)
        for name in ("V", "lbf", "KL"):
            setattr(self, name, torch.stack([getattr(st, name) for st in states], dim=1))
        self.sigma2 = [float(st.sigma2) for st in states]
        self.effect_fits = [st.effect_fits.clone() for st in states]
        self.fitted = [st.fitted.clone() for st in states]
        self.d = ref.new_zeros((B, width))
        self.log_prior = torch.full((B, width), -math.inf, dtype=ref.dtype, device=ref.device)
        for j, (b, lp) in enumerate(zip(self.backends, log_priors, strict=True)):
            self.d[j, : self.p[j]] = b.d
            self.log_prior[j, : self.p[j]] = lp

    def take(self, keep: list[int]) -> None:
        """Keep only the loci ``keep`` (positions in the current batch)."""
        idx = torch.tensor(keep, device=self.alpha.device)
        for name in ("alpha", "mu", "mu2", "lbf_variable", "V", "lbf", "KL"):
            setattr(self, name, getattr(self, name).index_select(1, idx))
        self.d, self.log_prior = self.d.index_select(0, idx), self.log_prior.index_select(0, idx)
        for name in ("backends", "p", "sigma2", "effect_fits", "fitted"):
            values = getattr(self, name)
            setattr(self, name, [values[j] for j in keep])

    def moments(self, j: int):
        """alpha, mu, mu2 of locus j, unpadded and contiguous."""
        p = self.p[j]
        return (self.alpha[:, j, :p].contiguous(), self.mu[:, j, :p].contiguous(),
                self.mu2[:, j, :p].contiguous())

    def locus(self, j: int) -> IBSSState:
        """The state of locus j as a one-locus :class:`IBSSState`."""
        alpha, mu, mu2 = self.moments(j)
        return IBSSState(
            alpha=alpha, mu=mu, mu2=mu2, V=self.V[:, j].clone(), sigma2=self.sigma2[j],
            lbf=self.lbf[:, j].clone(), KL=self.KL[:, j].clone(),
            lbf_variable=self.lbf_variable[:, j, : self.p[j]].contiguous(),
            effect_fits=self.effect_fits[j], fitted=self.fitted[j],
        )

    def elbo(self, j: int) -> tuple[float, float]:
        """ELBO and expected residual sum of squares of locus j."""
        data = self.backends[j]
        alpha, mu, mu2 = self.moments(j)
        er2 = data.er2(self.fitted[j], alpha * mu, self.effect_fits[j], alpha * mu2)
        return data.eloglik(er2, self.sigma2[j]) - float(self.KL[:, j].contiguous().sum()), er2


def _sweep(batch: _Batch, settings: IBSSSettings) -> None:
    sigma2 = torch.tensor(batch.sigma2, dtype=batch.d.dtype, device=batch.d.device)
    L = batch.alpha.shape[0]
    without = [None] * len(batch.backends)
    xtr = torch.zeros_like(batch.d)
    for j, data in enumerate(batch.backends):
        without[j] = batch.fitted[j] - batch.effect_fits[j][0]
        xtr[j, : batch.p[j]] = data.xtr(without[j])
    for k in range(L):
        res = single_effect_regression_batch(xtr, batch.d, batch.V[k], sigma2, batch.log_prior,
                                             settings.prior_method, settings.check_null_threshold)
        batch.alpha[k], batch.mu[k], batch.mu2[k] = res.alpha, res.mu, res.mu2
        batch.V[k], batch.lbf[k], batch.KL[k] = res.V, res.lbf_model, res.KL
        batch.lbf_variable[k] = res.lbf
        b = res.alpha * res.mu
        xtr = torch.zeros_like(batch.d)
        for j, data in enumerate(batch.backends):
            # Both products of a locus together, while its data is in cache (or in one pass).
            if k + 1 < L:
                fit, xtr_next = data.fitted_and_xtr(b[j, : batch.p[j]], without[j],
                                                    batch.effect_fits[j][k + 1])
            else:
                fit = data.effect_fitted(b[j, : batch.p[j]])
            batch.effect_fits[j][k] = fit
            batch.fitted[j] = without[j] + fit
            if k + 1 < L:
                without[j] = batch.fitted[j] - batch.effect_fits[j][k + 1]
                xtr[j, : batch.p[j]] = xtr_next


def _shared_settings(settings: list[IBSSSettings]) -> IBSSSettings:
    first = settings[0]
    for other in settings[1:]:
        for name in _SHARED:
            if getattr(other, name) != getattr(first, name):
                raise InputError(f"loci fitted in one batch must share the IBSS setting {name!r}")
    return first


def _progress(results: list, rows: list, done: list, batch: _Batch) -> dict:
    """Progress-bar fields: ELBO and sigma2 for one locus, loci left for a batch."""
    if len(results) > 1:
        return {"loci": len(rows) - len(done)}
    out = results[0]
    if not isinstance(out, IBSSOutcome) or not out.elbo:
        return {}
    return {"elbo": f"{out.elbo[-1]:.4f}", "sigma2": f"{batch.sigma2[0]:.4g}"}


def _check_iteration(batch: _Batch, j: int, it: int, cap: float):
    """ELBO and er2 of locus j after a sweep, or the error a one-locus run raises."""
    v_max = float(batch.V[:, j].max())
    if v_max > cap:
        return InputError(
            f"the estimated prior variance is unreasonably large ({v_max:.4g} > {cap:.4g}); "
            "this usually means the summary statistics and the LD matrix do not match"
        )
    value, er2 = batch.elbo(j)
    if math.isinf(value):
        return ConvergenceError(f"the ELBO became infinite at IBSS iteration {it}")
    return value, er2


def ibss_batch(backends, states: list[IBSSState], log_priors: list[torch.Tensor],
               settings: list[IBSSSettings], previous_elbo: list | None = None) -> list:
    """Run IBSS on B loci at once, each ending exactly where it would end alone.

    Parameters
    ----------
    backends : list of IndividualData or SuffStatData
        One backend per locus (kinds may be mixed).
    states : list of IBSSState
        Starting state of each locus (all with the same L); not modified.
    log_priors : list of torch.Tensor
        (p_i,) log prior weights of each locus.
    settings : list of IBSSSettings
        One per locus; they may differ only in ``sigma2_bounds`` and
        ``max_prior_variance``.
    previous_elbo : list of (float or None), optional
        Last ELBO of the fit each locus continues (see :func:`ibss`).

    Returns
    -------
    list
        Per locus an :class:`IBSSOutcome` whose ``state`` is the final state, or
        the exception a one-locus run raises. No warnings are issued.

    Examples
    --------
    >>> from torchgenetics.susie.data import IndividualData
    >>> from torchgenetics.susie.ser import log_prior_weights
    >>> g = torch.Generator().manual_seed(1)
    >>> X = torch.randn(50, 5, generator=g, dtype=torch.float64)
    >>> data = [IndividualData(X, X[:, 0] + 0.1 * torch.randn(50, generator=g, dtype=X.dtype)),
    ...         IndividualData(X[:, :4], X[:, 3])]
    >>> states = [initial_state(d, 2, torch.full((2,), 0.2 * d.var_y, dtype=X.dtype), d.var_y)
    ...           for d in data]
    >>> lp = [log_prior_weights(torch.full((d.p,), 1 / d.p, dtype=X.dtype)) for d in data]
    >>> outs = ibss_batch(data, states, lp, [IBSSSettings()] * 2)
    >>> [int(o.state.alpha[0].argmax()) for o in outs]
    [0, 3]
    """
    s = _shared_settings(settings)
    n_loci = len(states)
    previous_elbo = previous_elbo or [None] * n_loci
    lower = [st.sigma2_bounds[0] for st in settings]
    upper = [st.sigma2_bounds[1] for st in settings]
    cap = [st.max_prior_variance for st in settings]
    resumed = [e is not None and math.isfinite(e) for e in previous_elbo]
    prev_elbo = [e if r else -math.inf for e, r in zip(previous_elbo, resumed, strict=True)]
    results: list = [IBSSOutcome(state=None) for _ in range(n_loci)]
    batch = _Batch(backends, states, log_priors)
    rows = list(range(n_loci))  # locus of each batch position
    prev_alpha = batch.alpha.clone()
    bar = tqdm(total=s.max_iter, desc="IBSS" if n_loci == 1 else f"IBSS x {n_loci}",
               disable=not s.verbose, leave=False)
    try:
        for it in range(1, s.max_iter + 1):
            _sweep(batch, s)
            done = []
            for j, i in enumerate(rows):
                checked = _check_iteration(batch, j, it, cap[i])
                if isinstance(checked, Exception):
                    results[i] = checked
                    done.append(j)
                    continue
                value, er2 = checked
                out = results[i]
                out.elbo.append(value)
                out.n_iter = it
                if s.track_fit:
                    out.trace.append({"alpha": batch.moments(j)[0], "V": batch.V[:, j].clone(),
                                      "sigma2": batch.sigma2[j], "elbo": value})
                if it > 1 or resumed[i]:
                    if s.convergence == "pip" or not math.isfinite(value):
                        delta = float((batch.alpha[:, j] - prev_alpha[:, j]).abs().max())
                    else:
                        delta = value - prev_elbo[i]
                        if it == 1 and delta < 0:  # a resumed fit must not stop on a drop
                            delta = math.inf
                    if delta < s.tol:
                        out.converged = True
                        done.append(j)
                        continue
                prev_elbo[i] = value
                if s.estimate_residual_variance:
                    est = er2 / batch.backends[j].n
                    if not est > 0:
                        results[i] = InputError(
                            f"the estimated residual variance is {est:.4g} (not positive) at "
                            f"iteration {it}: X'X, X'y and y'y are not consistent with one data set"
                        )
                        done.append(j)
                        continue
                    batch.sigma2[j] = min(max(est, lower[i]), upper[i])
            if it == s.max_iter:
                done = list(range(len(rows)))
            for j in done:
                if isinstance(results[rows[j]], IBSSOutcome):
                    results[rows[j]].state = batch.locus(j)
            bar.update(1)
            if s.verbose:
                bar.set_postfix(_progress(results, rows, done, batch))
            if len(done) == len(rows):
                break
            if done:
                gone = set(done)
                keep = [j for j in range(len(rows)) if j not in gone]
                batch.take(keep)
                rows = [rows[j] for j in keep]
            prev_alpha = batch.alpha.clone()
    finally:
        bar.close()
    return results


def ibss(data, state: IBSSState, log_prior: torch.Tensor, settings: IBSSSettings,
         previous_elbo: float | None = None) -> IBSSOutcome:
    """Run IBSS from ``state`` (updated in place) until convergence or ``max_iter``.

    The convergence check starts at the second iteration, or at the first when
    ``previous_elbo`` (the last ELBO of the fit being continued) is given: then the
    first iteration converges if its ELBO rose by less than ``tol`` (and did not
    fall), so a warm continuation stops exactly where the uninterrupted run would.
    This is :func:`ibss_batch` with one locus.

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

    Raises
    ------
    InputError, ConvergenceError
        Prior variance above ``max_prior_variance``, a non-positive residual
        variance estimate, or an infinite ELBO.

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
    out = ibss_batch([data], [state], [log_prior], [settings], [previous_elbo])[0]
    if isinstance(out, Exception):
        raise out
    for f in fields(IBSSState):
        setattr(state, f.name, getattr(out.state, f.name))
    out.state = state
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
