"""The IBSS loop of functional SuSiE: L single effects shared across outcomes and coefficients.

Effect l picks one variable for all outcomes: with ``X^T R`` of its partial residual
(p x T, one matrix product), the estimates ``bhat = X^T R / d`` and
``shat^2 = sigma2_t / d`` of every variable and coefficient give per-coefficient
log Bayes factors under the effect's prior (:mod:`.prior`), summed over all
coefficients of all outcomes, and ``alpha_l = softmax(log pi + lbf)``. With
``estimate`` the effect's prior first takes one EM step on the SER marginal
likelihood (alpha under the current prior, then the alpha-weighted update), and
is set to the null unless its penalised SER log likelihood beats the null's (as
susie's ``check_null_threshold``); a null effect restarts from the initial prior.

One iteration updates the L effects in turn, evaluates the ELBO
(``E log p(D | b) - sum_l KL_l``, each KL by the SER identity, exact for the
effect's own prior), checks convergence (PIP change or ELBO change) and, if not
converged, updates the residual variances (per outcome or per (outcome, scale)):
susie's order, so with one outcome, one coefficient and a fixed one-component
prior this is susie's loop. The fitted values are re-summed from the per-effect
fits at the start of every iteration, so the state after an iteration is a
function of the stored fit only: a warm start from a partial fit continues the
uninterrupted run exactly.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ...errors import ConvergenceError

__all__ = ["FunctionalState", "LoopSettings", "LoopOutcome", "FunctionalModel", "warn_not_converged"]


@dataclass
class FunctionalState:
    """Variational state of a functional SuSiE fit with L effects.

    Attributes
    ----------
    alpha : torch.Tensor
        (L, p) inclusion probabilities.
    mu, mu2 : torch.Tensor
        (L, p, T) posterior mean and second moment of each coefficient given each variable.
    prior_pi, prior_scale : torch.Tensor
        (L, G, K) prior of each effect (mixture weights and component scales).
    V : torch.Tensor
        (L,) mean prior variance of a coefficient (0: null effect).
    sigma2 : torch.Tensor
        (S,) residual variance of each residual-variance group.
    lbf, KL : torch.Tensor
        (L,) log Bayes factor and KL divergence of each effect.
    lbf_variable : torch.Tensor
        (L, p) log Bayes factor of each variable in each effect.
    effect_fits : torch.Tensor
        (L, n, T) fitted values ``X b_l`` of each effect.
    fitted : torch.Tensor
        (n, T) their sum.

    Examples
    --------
    >>> z = torch.zeros(1, 2, dtype=torch.float64)
    >>> st = FunctionalState(z, z[..., None], z[..., None], z[..., None], z[..., None], z[0, :1], z[0, :1],
    ...                      z[0, :1], z[0, :1], z, torch.zeros(1, 3, 1, dtype=torch.float64),
    ...                      torch.zeros(3, 1, dtype=torch.float64))
    >>> st.L
    1
    """

    alpha: torch.Tensor
    mu: torch.Tensor
    mu2: torch.Tensor
    prior_pi: torch.Tensor
    prior_scale: torch.Tensor
    V: torch.Tensor
    sigma2: torch.Tensor
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
class LoopSettings:
    """Options of the functional IBSS loop.

    Attributes
    ----------
    estimate_residual_variance : bool
        Update the residual variances after each non-converged iteration.
    sigma2_lower : torch.Tensor
        (S,) lower bound of each residual variance.
    sigma2_upper : float
        Upper bound.
    max_iter : int
        Iteration budget.
    tol : float
        Tolerance on the largest alpha change ("pip") or the ELBO change ("elbo").
    convergence : {"pip", "elbo"}
        Criterion.
    track_fit : bool
        Keep alpha, sigma2, the mixture weights and the ELBO of every iteration.
    verbose : bool
        Show a progress bar.

    Examples
    --------
    >>> LoopSettings(sigma2_lower=torch.zeros(1)).convergence
    'pip'
    """

    sigma2_lower: torch.Tensor
    estimate_residual_variance: bool = True
    sigma2_upper: float = math.inf
    max_iter: int = 100
    tol: float = 1e-4
    convergence: str = "pip"
    track_fit: bool = False
    verbose: bool = False


@dataclass
class LoopOutcome:
    """ELBO per iteration, iterations run, convergence and the trace.

    Examples
    --------
    >>> LoopOutcome().converged
    False
    """

    elbo: list = field(default_factory=list)
    n_iter: int = 0
    converged: bool = False
    trace: list = field(default_factory=list)


class FunctionalModel:
    """Data, coefficient prior and variable prior of a fit: the IBSS loop over a state.

    Parameters
    ----------
    data : FunctionalData
        X and the outcomes' wavelet coefficients.
    prior : CoefficientPrior
        Coefficient priors and their update.
    sigma_group : torch.LongTensor
        (T,) residual-variance group of each column.
    sigma_group_outcome : torch.LongTensor
        (S,) outcome of each residual-variance group.
    log_prior : torch.Tensor
        (p,) ``log(pi + sqrt(eps))`` of the variables.
    """

    def __init__(self, data, prior, sigma_group: torch.Tensor, sigma_group_outcome: torch.Tensor,
                 log_prior: torch.Tensor):
        self.data, self.prior, self.log_prior = data, prior, log_prior
        self.sigma_group, self.sigma_group_outcome = sigma_group, sigma_group_outcome
        self.n_sigma = int(sigma_group_outcome.numel())
        counts = torch.bincount(sigma_group, minlength=self.n_sigma)
        self.sigma_count = counts.to(data.D.dtype)
        d = data.d
        self.informative = d > 0
        self.safe_d = torch.where(self.informative, d, torch.ones_like(d))
        # With standardised X every informative column has the same d (n - 1): then the
        # standard errors depend on the coefficient only, and the prior's kernel is cheaper.
        ref = d[self.informative]
        self.d_shared = (ref.mean() if ref.numel() and bool(((ref - ref.mean()).abs() <= 1e-12 * ref.mean()).all())
                         else None)
        self.null_lbf_model = torch.logsumexp(log_prior, dim=0)
        self._restart = None  # (bhat, s2, result) of the last null effect's restart

    def split_sigma2(self, sigma2: torch.Tensor) -> list:
        """Residual variances as a list of per-outcome tensors."""
        return [sigma2[self.sigma_group_outcome == m].clone() for m in range(self.data.M)]

    # ---- one single effect -------------------------------------------------------------------
    def _alpha(self, lbf_coef: torch.Tensor):
        """Per-variable lbf, log posterior odds and the SER log likelihood ``log sum_j pi_j BF_j``."""
        lbf = torch.where(self.informative, lbf_coef.sum(dim=1), torch.zeros_like(lbf_coef[:, 0]))
        lpo = lbf + self.log_prior
        return lbf, lpo, torch.logsumexp(lpo, dim=0)

    def _fit_prior(self, bhat: torch.Tensor, s2: torch.Tensor, pi: torch.Tensor, scale: torch.Tensor):
        """One EM step of the effect's prior on the SER marginal likelihood, then the null check.

        E: alpha under the current prior (the initial prior if the effect is null,
        so that a dead effect can come back); M: the alpha-weighted prior update.
        The result is kept if its penalised SER log likelihood beats the null's by
        more than ``check_null_threshold``. Returns the prior and its posterior
        (or None for the null).
        """
        prior = self.prior
        start_pi, start_scale = (t[0] for t in prior.initial(1))
        restart = prior.is_null(pi) or (torch.equal(pi, start_pi) and torch.equal(scale, start_scale))
        if restart:
            # Null (or new) effects between two live ones see the same residual: fit them once.
            cached = self._restart
            if cached is not None and torch.equal(cached[0], bhat) and torch.equal(cached[1], s2):
                return cached[2]
            pi, scale = start_pi, start_scale
        result = self._em_step(bhat, s2, pi, scale)
        if restart:
            self._restart = (bhat, s2, result)
        return result

    def _em_step(self, bhat, s2, pi, scale):
        """E step from (pi, scale), M step, posterior under the new prior, null check."""
        prior = self.prior
        _, lpo, lbf_model = self._alpha(prior.log_bf(bhat, s2, pi, scale))
        weights = torch.where(self.informative, torch.exp(lpo - lbf_model), torch.zeros_like(lpo))
        pi, scale = prior.update(bhat, s2, weights, pi, scale)
        post = prior.posterior(bhat, s2, pi, scale)
        _, _, lbf_model = self._alpha(post[0])
        objective = float(lbf_model + prior.log_penalty(pi))
        if prior.has_null and float(self.null_lbf_model) + prior.settings.check_null_threshold >= objective:
            pi, scale = prior.null(pi, scale)
            post = None
        return pi, scale, post

    def single_effect(self, state: FunctionalState, k: int, xtr: torch.Tensor) -> None:
        """Update effect k (prior, alpha, moments, lbf, KL, V) from ``X^T R_k``."""
        prior, ok = self.prior, self.informative
        sigma2_col = state.sigma2[self.sigma_group]
        bhat = torch.where(ok[:, None], xtr / self.safe_d[:, None], torch.zeros_like(xtr))
        d = self.safe_d[:, None] if self.d_shared is None else self.d_shared
        s2 = sigma2_col[None, :] / d
        pi, scale = state.prior_pi[k], state.prior_scale[k]
        if prior.settings.estimate:
            pi, scale, post = self._fit_prior(bhat, s2, pi, scale)
        else:
            post = prior.posterior(bhat, s2, pi, scale)
        if post is None:  # null effect: every Bayes factor is 1
            lbf = torch.zeros_like(state.lbf_variable[k])
            mean = mean2 = torch.zeros_like(xtr)
            lpo, lbf_model = self.log_prior, self.null_lbf_model
        else:
            lbf, lpo, lbf_model = self._alpha(post[0])
            mean = torch.where(ok[:, None], post[1], torch.zeros_like(xtr))
            mean2 = torch.where(ok[:, None], post[2], torch.zeros_like(xtr))
        alpha = torch.exp(lpo - lbf_model)
        eb, eb2 = alpha[:, None] * mean, alpha[:, None] * mean2
        data_fit = ((eb * xtr).sum(dim=0) / sigma2_col).sum()
        penalty = ((self.data.d[:, None] * eb2).sum(dim=0) / (2.0 * sigma2_col)).sum()
        state.alpha[k], state.mu[k], state.mu2[k] = alpha, mean, mean2
        state.prior_pi[k], state.prior_scale[k] = pi, scale
        state.lbf[k], state.lbf_variable[k] = lbf_model, lbf
        state.KL[k] = -lbf_model + data_fit - penalty
        state.V[k] = prior.variance(pi, scale)

    def sweep(self, state: FunctionalState) -> None:
        """Update the L effects in turn against their partial residuals."""
        data = self.data
        state.fitted = state.effect_fits.sum(dim=0)
        self._restart = None
        for k in range(state.L):
            without = state.fitted - state.effect_fits[k]
            self.single_effect(state, k, data.xtr(data.D - without))
            fit = data.fitted(state.alpha[k][:, None] * state.mu[k])
            state.effect_fits[k] = fit
            state.fitted = without + fit

    # ---- objective and residual variance ---------------------------------------------------------
    def expected_rss(self, state: FunctionalState) -> torch.Tensor:
        """(T,) expected residual sum of squares of each column under the posterior."""
        resid = self.data.D - state.fitted
        postb2 = (state.alpha * self.data.d).unsqueeze(-1) * state.mu2
        return ((resid * resid).sum(dim=0) - (state.effect_fits * state.effect_fits).sum(dim=(0, 1))
                + postb2.sum(dim=(0, 1)))

    def elbo(self, state: FunctionalState) -> tuple[float, torch.Tensor]:
        """ELBO and the per-column expected residual sums of squares."""
        er2 = self.expected_rss(state)
        s2 = state.sigma2[self.sigma_group]
        n = self.data.n
        eloglik = (-0.5 * n * torch.log(2.0 * math.pi * s2) - er2 / (2.0 * s2)).sum()
        return float(eloglik - state.KL.sum()), er2

    def update_sigma2(self, state: FunctionalState, er2: torch.Tensor, settings: LoopSettings,
                      it: int) -> None:
        """Residual variance of each group: its expected RSS over n times its column count."""
        total = torch.zeros(self.n_sigma, dtype=er2.dtype, device=er2.device).index_add_(
            0, self.sigma_group, er2)
        est = total / (self.data.n * self.sigma_count)
        if not bool((est > 0).all()):
            raise ConvergenceError(f"a residual variance estimate is not positive at iteration {it}")
        lower = settings.sigma2_lower.to(est)
        state.sigma2 = torch.clamp(torch.maximum(est, lower), max=settings.sigma2_upper)

    # ---- the loop ------------------------------------------------------------------------------------
    def run(self, state: FunctionalState, settings: LoopSettings,
            previous_elbo: float | None = None) -> LoopOutcome:
        """Iterate from ``state`` (updated in place) until convergence or ``max_iter``.

        Parameters
        ----------
        state : FunctionalState
            Starting state (cold or warm).
        settings : LoopSettings
            Loop options.
        previous_elbo : float, optional
            Last ELBO of the fit ``state`` continues (a warm start with the same L):
            then the convergence check starts at the first iteration.

        Returns
        -------
        LoopOutcome
            ``converged=False`` after ``max_iter`` iterations comes with a RuntimeWarning.

        Raises
        ------
        ConvergenceError
            An infinite ELBO or a non-positive residual variance estimate.
        """
        resumed = previous_elbo is not None and math.isfinite(previous_elbo)
        prev_elbo = previous_elbo if resumed else -math.inf
        prev_alpha = state.alpha.clone()
        out = LoopOutcome()
        bar = tqdm(total=settings.max_iter, desc="mfsusie IBSS", disable=not settings.verbose, leave=False)
        try:
            for it in range(1, settings.max_iter + 1):
                self.sweep(state)
                value, er2 = self.elbo(state)
                if math.isinf(value) or math.isnan(value):
                    raise ConvergenceError(f"the ELBO is not finite at iteration {it} ({value})")
                out.elbo.append(value)
                out.n_iter = it
                if settings.track_fit:
                    out.trace.append({"alpha": state.alpha.clone(), "sigma2": self.split_sigma2(state.sigma2),
                                      "prior_pi": state.prior_pi.clone(), "V": state.V.clone(), "elbo": value})
                bar.update(1)
                if settings.verbose:
                    bar.set_postfix({"elbo": f"{value:.4f}"})
                if it > 1 or resumed:
                    if settings.convergence == "pip":
                        delta = float((state.alpha - prev_alpha).abs().max())
                    else:
                        delta = value - prev_elbo
                        if it == 1 and delta < 0:  # a resumed fit must not stop on a drop
                            delta = math.inf
                    if delta < settings.tol:
                        out.converged = True
                        break
                prev_elbo = value
                prev_alpha = state.alpha.clone()
                if settings.estimate_residual_variance:
                    self.update_sigma2(state, er2, settings, it)
        finally:
            bar.close()
        return out


def warn_not_converged(outcome: LoopOutcome, settings: LoopSettings, stacklevel: int = 3) -> None:
    """The RuntimeWarning of a fit that reached ``max_iter``."""
    if outcome.converged:
        return
    warnings.warn(
        f"mfsusie IBSS did not converge in {settings.max_iter} iterations (criterion "
        f"{settings.convergence!r}, tol {settings.tol:g}); continue with init=fit or raise max_iter",
        RuntimeWarning, stacklevel=stacklevel,
    )
