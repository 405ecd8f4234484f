"""``mfsusie`` and ``fsusie``: input checks, warm starts, greedy growth of L, and the result.

The driver mirrors susie's: a warm start (``init``) restores a previous fit's
state (padding fewer effects with cold ones), ``L_greedy`` grows the number of
effects in rounds until an effect's log Bayes factor falls below
``greedy_lbf_cutoff``, and the fit ends with susie's PIPs and credible sets.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch

from ...errors import InputError
from ..ser import log_prior_weights
from ..sets import credible_sets
from ..sets import pip as compute_pip
from .curves import synthesis_matrix
from .data import SCOPES, FunctionalData, column_groups
from .fit import MfsusieFit
from .model import FunctionalModel, FunctionalState, LoopSettings, warn_not_converged
from .prior import PRIOR_FAMILIES, CoefficientPrior, PriorSettings

__all__ = ["mfsusie", "fsusie"]


@dataclass
class _Options:
    L: int
    L_greedy: int | None
    prior_scope: str
    residual_scope: str
    estimate_residual_variance: bool
    max_iter: int
    tol: float
    convergence: str
    coverage: float
    min_abs_corr: float
    n_purity: int
    prior_tol: float
    greedy_lbf_cutoff: float
    track_fit: bool
    verbose: bool
    seed: int


class _Problem:
    """Everything a fit needs besides the options: data, prior, model, names."""

    def __init__(self, data: FunctionalData, prior: CoefficientPrior, model: FunctionalModel,
                 pi: torch.Tensor, sigma2: torch.Tensor, sigma2_lower: torch.Tensor, names,
                 residual_fixed: bool):
        self.data, self.prior, self.model, self.pi = data, prior, model, pi
        self.sigma2, self.sigma2_lower, self.names = sigma2, sigma2_lower, names
        self.residual_fixed = residual_fixed


def _positive_int(value, name: str, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _as_tensor(x, name: str, dtype, device) -> torch.Tensor:
    if hasattr(x, "to_numpy") and not torch.is_tensor(x):  # pandas
        x = x.to_numpy(copy=True)
    try:
        return torch.as_tensor(x, dtype=dtype, device=device)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be numeric: {exc}") from None


def _outcomes(Y, outcome_names):
    """Outcomes as a list and their names."""
    if isinstance(Y, dict):
        names, values = [str(k) for k in Y], list(Y.values())
    elif isinstance(Y, (list, tuple)):
        names, values = None, list(Y)
    elif torch.is_tensor(Y) or hasattr(Y, "shape"):
        names, values = None, [Y]
    else:
        raise InputError(f"Y must be a list of (n, T) outcomes, got {type(Y).__name__}")
    if not values:
        raise InputError("Y holds no outcome")
    if outcome_names is not None:
        names = [str(v) for v in outcome_names]
        if len(names) != len(values):
            raise InputError(f"outcome_names has {len(names)} entries for {len(values)} outcomes")
    if names is None:
        names = [f"Y{m + 1}" for m in range(len(values))]
    if len(set(names)) != len(names):
        raise InputError(f"outcome names must be unique, got {names}")
    return values, names


def _positions(pos, M: int) -> list:
    """One entry (None or positions) per outcome."""
    if pos is None:
        return [None] * M
    if torch.is_tensor(pos) or (hasattr(pos, "ndim") and not isinstance(pos, (list, tuple))):
        if M != 1:
            raise InputError(f"pos must be a list of {M} position vectors (one per outcome)")
        return [pos]
    pos = list(pos)
    if M == 1 and pos and all(isinstance(v, numbers.Number) for v in pos):
        return [pos]
    if len(pos) != M:
        raise InputError(f"pos has {len(pos)} entries but there are {M} outcomes; give one position "
                         "vector (or None) per outcome")
    return pos


def _prior_weights(prior_weights, p: int, dtype, device) -> torch.Tensor:
    if prior_weights is None:
        return torch.full((p,), 1.0 / p, dtype=dtype, device=device)
    pw = _as_tensor(prior_weights, "prior_weights", dtype, device).reshape(-1)
    if pw.shape[0] != p:
        raise InputError(f"prior_weights has length {pw.shape[0]}, expected p = {p}")
    if not bool(torch.isfinite(pw).all()) or bool((pw < 0).any()) or not float(pw.sum()) > 0:
        raise InputError("prior_weights must be finite, non-negative and not all zero")
    return pw / pw.sum()


def _check(o: _Options, p: int, prior: str, null_penalty: float, null_prior_init: float) -> None:
    o.L = _positive_int(o.L, "L")
    o.L_greedy = _positive_int(o.L_greedy, "L_greedy", allow_none=True)
    o.max_iter = _positive_int(o.max_iter, "max_iter")
    o.n_purity = _positive_int(o.n_purity, "n_purity")
    if o.L > p:
        raise InputError(f"L = {o.L} exceeds the number of variables p = {p}; use L <= {p}")
    if prior not in PRIOR_FAMILIES:
        raise InputError(f"prior must be one of {PRIOR_FAMILIES}, got {prior!r}")
    for name, value in (("prior_variance_scope", o.prior_scope), ("residual_variance_scope", o.residual_scope)):
        if value not in SCOPES:
            raise InputError(f"{name} must be one of {SCOPES}, got {value!r}")
    if o.convergence not in ("pip", "elbo"):
        raise InputError(f"convergence must be 'pip' or 'elbo', got {o.convergence!r}")
    if not o.tol >= 0:
        raise InputError(f"tol must be non-negative, got {o.tol}")
    if not 0 < o.coverage <= 1:
        raise InputError(f"coverage must be in (0, 1], got {o.coverage}")
    if not 0 <= o.min_abs_corr <= 1:
        raise InputError(f"min_abs_corr must be in [0, 1], got {o.min_abs_corr}")
    if not null_penalty >= 0 or not math.isfinite(null_penalty):
        raise InputError(f"null_penalty must be a non-negative number, got {null_penalty}")
    if not 0 <= null_prior_init < 1:
        raise InputError(f"null_prior_init must be in [0, 1), got {null_prior_init}")
    if not math.isfinite(o.greedy_lbf_cutoff):
        raise InputError("greedy_lbf_cutoff must be a finite number")


def _prepare(X, Y, pos, o: _Options, *, prior, prior_variance_grid, null_component, null_prior_init,
             estimate_prior, null_penalty, check_null_threshold, prior_weights, residual_variance,
             standardize, intercept, wavelet, max_log2, variable_names, outcome_names, device, dtype):
    """Checked inputs as a :class:`_Problem`."""
    if device is None:
        device = X.device if torch.is_tensor(X) else torch.device("cpu")
    if variable_names is None and hasattr(X, "columns"):
        variable_names = [str(c) for c in X.columns]
    X = _as_tensor(X, "X", dtype, device)
    if X.dim() != 2:
        raise InputError(f"X must be a 2-D (n, p) matrix, got shape {tuple(X.shape)}")
    if not bool(torch.isfinite(X).all()):
        bad = torch.nonzero(~torch.isfinite(X))[0].tolist()
        raise InputError(f"X contains NaN or infinite values (first at row {bad[0]}, column {bad[1]}); "
                         "impute or drop them before fine-mapping")
    n, p = X.shape
    if n < 2:
        raise InputError(f"X has {n} sample(s); at least 2 are needed")
    _check(o, p, prior, null_penalty, null_prior_init)
    if variable_names is not None:
        variable_names = [str(v) for v in variable_names]
        if len(variable_names) != p:
            raise InputError(f"variable_names has {len(variable_names)} entries, expected p = {p}")
    values, names = _outcomes(Y, outcome_names)
    data = FunctionalData(X, values, _positions(pos, len(values)), names, wavelet=wavelet,
                          max_log2=max_log2, standardize=standardize, intercept=intercept)
    group, group_outcome, _ = column_groups(data.col_outcome, data.col_scale, o.prior_scope)
    settings = PriorSettings(family=prior, estimate=bool(estimate_prior), null_component=bool(null_component),
                             null_penalty=float(null_penalty), null_prior_init=float(null_prior_init),
                             check_null_threshold=float(check_null_threshold))
    coef_prior = CoefficientPrior.build(settings, data, group, group_outcome, prior_variance_grid)
    sigma_group, sigma_outcome, _ = column_groups(data.col_outcome, data.col_scale, o.residual_scope)
    S = sigma_outcome.numel()
    counts = torch.bincount(sigma_group, minlength=S).to(dtype)
    col_var = data.col_var
    mean_var = torch.zeros(S, dtype=dtype, device=col_var.device).index_add_(0, sigma_group, col_var) / counts
    if not bool((mean_var > 0).all()):
        raise InputError("a wavelet scale of an outcome has no variation; use residual_variance_scope="
                         "'per_outcome' or check the outcomes for constant curves")
    sigma2 = mean_var.clone()
    if residual_variance is not None:
        rv = _as_tensor(residual_variance, "residual_variance", dtype, device).reshape(-1)
        if rv.numel() != data.M or not bool((rv > 0).all()):
            raise InputError(f"residual_variance must hold one positive value per outcome ({data.M})")
        sigma2 = (rv / data.scale.to(rv) ** 2)[sigma_outcome]
    pi = _prior_weights(prior_weights, p, dtype, device)
    model = FunctionalModel(data, coef_prior, sigma_group, sigma_outcome, log_prior_weights(pi))
    return _Problem(data, coef_prior, model, pi, sigma2, mean_var / 1e4, variable_names,
                    residual_fixed=residual_variance is not None)


def _get(init, name):
    return init.get(name) if isinstance(init, dict) else getattr(init, name, None)


def _n_effects(init) -> int:
    return int(torch.as_tensor(_get(init, "alpha")).shape[0])


def _start(prob: _Problem, L: int, init) -> tuple[FunctionalState, float | None]:
    """Cold state, or the state of ``init`` padded to L effects, and the ELBO being resumed."""
    data, prior = prob.data, prob.prior
    dtype, device = data.D.dtype, data.D.device
    p, T, n = data.p, data.T, data.n
    alpha = torch.full((L, p), 1.0 / p, dtype=dtype, device=device)
    mu = torch.zeros((L, p, T), dtype=dtype, device=device)
    mu2 = torch.zeros_like(mu)
    pi, scale = prior.initial(L)
    sigma2 = prob.sigma2.clone()
    previous = None
    if init is not None:
        L0 = _restore(prob, init, L, alpha, mu, mu2, pi, scale)
        s0 = _get(init, "sigma2")
        if s0 is not None and not prob.residual_fixed:
            sigma2 = _restore_sigma2(prob, s0)
        elbo = _get(init, "elbo")
        if L0 == L and elbo is not None and len(elbo):
            previous = float(torch.as_tensor(elbo).reshape(-1)[-1])
    nan = torch.full((L,), math.nan, dtype=dtype, device=device)
    fits = torch.stack([data.fitted(alpha[k][:, None] * mu[k]) for k in range(L)]) if L else \
        torch.zeros((0, n, T), dtype=dtype, device=device)
    state = FunctionalState(alpha=alpha, mu=mu, mu2=mu2, prior_pi=pi, prior_scale=scale,
                            V=prior.variance(pi, scale), sigma2=sigma2, lbf=nan.clone(), KL=nan.clone(),
                            lbf_variable=torch.full((L, p), math.nan, dtype=dtype, device=device),
                            effect_fits=fits, fitted=fits.sum(dim=0))
    return state, previous


def _restore(prob: _Problem, init, L: int, alpha, mu, mu2, pi, scale) -> int:
    """Copy the effects of ``init`` into the leading rows; return their number."""
    data = prob.data
    dtype, device = alpha.dtype, alpha.device
    a0 = torch.as_tensor(_get(init, "alpha"), dtype=dtype, device=device)
    if a0.dim() != 2 or a0.shape[1] != data.p:
        raise InputError(f"init.alpha has shape {tuple(a0.shape)} but this fit has p = {data.p} variables")
    L0 = a0.shape[0]
    if L0 > L:
        raise InputError(f"init has {L0} effects but L = {L}: a warm start keeps every effect of the "
                         f"previous fit, so pass L >= {L0}")
    if bool((a0 < 0).any()) or bool((a0 > 1).any()):
        raise InputError("init.alpha has values outside [0, 1]")
    m0 = torch.as_tensor(_get(init, "mu"), dtype=dtype, device=device)
    m20 = torch.as_tensor(_get(init, "mu2"), dtype=dtype, device=device)
    if m0.shape != (L0, data.p, data.T) or m20.shape != m0.shape:
        raise InputError(f"init.mu has shape {tuple(m0.shape)} but this fit has (L, p, T) = "
                         f"({L0}, {data.p}, {data.T}) wavelet coefficients: was init fitted to these outcomes "
                         "with the same max_log2?")
    alpha[:L0], mu[:L0], mu2[:L0] = a0, m0, m20
    family = _get(init, "prior_family")
    if family is not None and family != prob.prior.settings.family:
        raise InputError(f"init has a {family!r} prior but this fit uses {prob.prior.settings.family!r}")
    pi0, sc0 = _get(init, "prior_pi"), _get(init, "prior_scale")
    if prob.prior.settings.estimate and pi0 is not None and sc0 is not None:
        pi0 = torch.as_tensor(pi0, dtype=dtype, device=device)
        sc0 = torch.as_tensor(sc0, dtype=dtype, device=device)
        if pi0.shape != (L0,) + tuple(pi.shape[1:]) or sc0.shape != pi0.shape:
            raise InputError(f"init.prior_pi has shape {tuple(pi0.shape)}, expected "
                             f"{(L0,) + tuple(pi.shape[1:])} (same prior, scope and outcomes)")
        pi[:L0], scale[:L0] = pi0, sc0
    return L0


def _restore_sigma2(prob: _Problem, s0) -> torch.Tensor:
    model = prob.model
    parts = [torch.as_tensor(s, dtype=prob.sigma2.dtype).reshape(-1) for s in s0]
    expected = [int((model.sigma_group_outcome == m).sum()) for m in range(prob.data.M)]
    if [t.numel() for t in parts] != expected:
        raise InputError(f"init.sigma2 has {[t.numel() for t in parts]} residual variances per outcome, "
                         f"expected {expected} (same outcomes and residual_variance_scope)")
    out = prob.sigma2.clone()
    for m, values in enumerate(parts):
        out[model.sigma_group_outcome == m] = values.to(out)
    return out


def _fit_once(prob: _Problem, o: _Options, L: int, init) -> MfsusieFit:
    state, previous = _start(prob, L, init)
    settings = LoopSettings(sigma2_lower=prob.sigma2_lower,
                            estimate_residual_variance=o.estimate_residual_variance and not prob.residual_fixed,
                            max_iter=o.max_iter, tol=o.tol, convergence=o.convergence,
                            track_fit=o.track_fit, verbose=o.verbose)
    out = prob.model.run(state, settings, previous)
    warn_not_converged(out, settings, stacklevel=4)
    return _finish(prob, o, state, out)


def _finish(prob: _Problem, o: _Options, state: FunctionalState, out) -> MfsusieFit:
    """PIPs, credible sets and the data-domain pieces of the fit."""
    data = prob.data
    gen = torch.Generator().manual_seed(o.seed)
    sets = credible_sets(state.alpha, state.V, data.x.correlations, coverage=o.coverage,
                         min_abs_corr=o.min_abs_corr, n_purity=o.n_purity, prior_tol=o.prior_tol,
                         generator=gen)
    fitted = []
    for m in range(data.M):
        W = synthesis_matrix(data.n_coef[m], data.wavelet, dtype=data.D.dtype, device=data.D.device)
        fitted.append(data.center[m] + float(data.scale[m]) * (state.fitted[:, data.coef_slice(m)] @ W))
    return MfsusieFit(
        alpha=state.alpha, mu=state.mu, mu2=state.mu2, lbf=state.lbf, lbf_variable=state.lbf_variable,
        KL=state.KL, V=state.V, sigma2=prob.model.split_sigma2(state.sigma2),
        prior_family=prob.prior.settings.family, prior_scope=o.prior_scope, prior_pi=state.prior_pi,
        prior_scale=state.prior_scale, prior_group=prob.prior.group,
        elbo=torch.tensor(out.elbo, dtype=torch.float64), n_iter=out.n_iter, converged=out.converged,
        pip=compute_pip(state.alpha, state.V, o.prior_tol), sets=sets, pi=prob.pi,
        grid_pos=list(data.grid_pos), n_coef=list(data.n_coef), col_scale=data.col_scale,
        outcome_center=list(data.center), outcome_scale=data.scale, outcome_names=list(data.names),
        wavelet=data.wavelet, residual_scope=o.residual_scope, X_column_scale_factors=data.x.csd_data,
        X_center=data.x.cm, fitted=fitted, trace=out.trace if o.track_fit else None, seed=o.seed,
        variable_names=prob.names,
    )


def _run(prob: _Problem, o: _Options, init) -> MfsusieFit:
    """Greedy rounds (susie's ``L_greedy`` rule) or one fit with L effects."""
    if o.L_greedy is None:
        return _fit_once(prob, o, o.L, init)
    L_init = 0 if init is None else _n_effects(init)
    L = min(max(min(o.L_greedy, o.L), L_init), o.L)
    fit = _fit_once(prob, o, L, init)
    history, trace = [], []
    while True:
        min_lbf = float(torch.nan_to_num(fit.lbf, nan=math.inf).min())
        action = ("L reached" if L >= o.L
                  else "saturated" if min_lbf < o.greedy_lbf_cutoff else "grow")
        history.append({"L": L, "min_lbf": min_lbf, "action": action, "n_iter": fit.n_iter,
                        "converged": fit.converged})
        trace += fit.trace or []
        if action != "grow":
            break
        L = min(L + o.L_greedy, o.L)
        fit = _fit_once(prob, o, L, fit)
    fit.greedy_history = history
    if o.track_fit:
        fit.trace = trace  # every round's iterations, in order
    return fit


def mfsusie(X, Y, pos=None, L: int = 20, L_greedy: int | None = 5, *, prior: str = "mixture_normal",
            prior_variance_scope: str = "per_outcome", prior_variance_grid=None, null_component: bool = True,
            null_prior_init: float = 0.5, estimate_prior: bool = True, null_penalty: float = 0.7,
            check_null_threshold: float = 0.0, prior_weights=None, residual_variance=None,
            residual_variance_scope: str = "per_outcome", estimate_residual_variance: bool = True,
            standardize: bool = True, intercept: bool = True, wavelet: str = "la10", max_log2: int = 10,
            max_iter: int = 100, tol: float = 1e-4, convergence: str = "pip", coverage: float = 0.95,
            min_abs_corr: float = 0.5, n_purity: int = 100, prior_tol: float = 1e-9,
            greedy_lbf_cutoff: float = 0.1, init=None, track_fit: bool = False, verbose: bool = False,
            seed: int = 0, variable_names=None, outcome_names=None, device=None,
            dtype=torch.float64) -> MfsusieFit:
    """Multi-outcome functional SuSiE: L single effects shared by M functional or scalar outcomes.

    Each outcome ``Y_m`` (n x T_m) is put on an evenly spaced power-of-two grid
    (interpolated when positions are uneven), centred, scaled and transformed by a
    DWT; scalar outcomes (T_m = 1) skip the transform. Effect l picks one variable
    for all outcomes, ``alpha_l = softmax(log pi + sum_m lbf_lm)``, and every
    wavelet coefficient of its effect curve has a prior fitted by empirical Bayes
    (a scale mixture of normals per outcome or per (outcome, scale), or a
    point-normal / point-Laplace prior). Residual variances are per outcome or
    per (outcome, scale). PIPs and credible sets are computed as by ``susie``;
    effect curves return to the data domain (:meth:`MfsusieFit.effect_curve`).

    Parameters
    ----------
    X : array-like, torch.Tensor or pandas.DataFrame
        (n, p) covariates (e.g. genotype dosages), finite.
    Y : list or dict of array-like
        M outcomes, each (n, T_m) (one column per position) or (n,) (scalar).
    pos : list, optional
        Per outcome None or its T_m strictly increasing positions (a single vector
        when there is one outcome).
    L : int
        Maximum number of effects.
    L_greedy : int or None
        Start with this many effects and add as many while every effect is used
        (min lbf >= ``greedy_lbf_cutoff``); None fits L effects at once.
    prior : {"mixture_normal", "point_normal", "point_laplace"}
        Prior family of the wavelet coefficients.
    prior_variance_scope : {"per_outcome", "per_scale"}
        One prior per outcome or per (outcome, wavelet scale), for each effect.
    prior_variance_grid : sequence of float, optional
        Mixture component variances (scaled-outcome units; the null component is
        added when ``null_component``), or the one slab variance of a point prior.
        Default: ash's grid from the marginal regressions of each outcome.
    null_component : bool
        Whether the prior has a point mass at zero (without it no effect is set to
        the null, so every effect counts in PIPs and sets).
    null_prior_init : float
        Initial weight of the point mass.
    estimate_prior : bool
        Fit each effect's prior by empirical Bayes, one EM step on its SER marginal
        likelihood per iteration (False: keep the initial prior; with a one-component
        grid and no null this is susie with a fixed prior variance).
    null_penalty : float
        Pseudo-observations per coefficient on the null component in the prior update.
    check_null_threshold : float
        An effect's prior is set to the null unless its SER log likelihood beats
        the null's by more than this (as susie's V = 0 check).
    prior_weights : array-like, optional
        (p,) prior inclusion weights (uniform by default).
    residual_variance : sequence of float, optional
        Fixed residual variance of each outcome (outcome units); default estimated
        starting from the column variances.
    residual_variance_scope : {"per_outcome", "per_scale"}
        One residual variance per outcome or per (outcome, wavelet scale).
    estimate_residual_variance : bool
        Update the residual variances after each iteration.
    standardize, intercept : bool
        Scale X columns to unit variance; centre X and the outcomes.
    wavelet : str
        DWT filter ("haar", "la10", ...; see :func:`~torchgenetics.susie.functional.wavelets.wavelet_filter`).
    max_log2 : int
        Outcomes have at most ``2^max_log2`` grid positions.
    max_iter : int
        Iteration budget of each (greedy) round.
    tol : float
        Convergence tolerance on the largest change of alpha ("pip") or of the ELBO ("elbo").
    convergence : {"pip", "elbo"}
        Convergence criterion (the prior update makes the ELBO only nearly monotone).
    coverage, min_abs_corr, n_purity, prior_tol : float, float, int, float
        Credible sets and PIPs as in ``susie``.
    greedy_lbf_cutoff : float
        Saturation threshold of the greedy rounds.
    init : MfsusieFit or dict, optional
        Warm start: alpha, mu, mu2, the priors (mixture weights and scales), V and
        sigma2 of a previous fit of the same data (fewer effects are padded with
        cold ones); the fitted values are recomputed from them. A partial fit
        continued this way ends where the uninterrupted fit ends.
    track_fit : bool
        Keep alpha, sigma2, the mixture weights and the ELBO of every iteration in ``fit.trace``.
    verbose : bool
        Show a progress bar.
    seed : int
        Seed of the purity subsample of large credible sets.
    variable_names, outcome_names : sequence of str, optional
        Names of the variables and outcomes.
    device, dtype
        Where and in what precision to fit (default: X's device, float64).

    Returns
    -------
    MfsusieFit

    Raises
    ------
    InputError
        Outcomes with a different number of rows than X, NaN rows (the outcome and
        row are named), positions not increasing or of the wrong length, bad options.

    Notes
    -----
    Each iteration costs two (n x p) by (p x T) products per effect plus the
    prior update; memory holds the (L, p, T) posterior moments and the (L, n, T)
    fitted values of the effects (T: all outcomes' grid points).

    Examples
    --------
    >>> g = torch.Generator().manual_seed(1)
    >>> X = torch.randn(150, 20, generator=g, dtype=torch.float64)
    >>> shape = torch.exp(-((torch.arange(32.0, dtype=torch.float64) - 12) / 4) ** 2)
    >>> Y1 = X[:, [4]] * shape + 0.5 * torch.randn(150, 32, generator=g, dtype=torch.float64)
    >>> Y2 = -0.5 * X[:, [4]] * shape + 0.5 * torch.randn(150, 32, generator=g, dtype=torch.float64)
    >>> fit = mfsusie(X, [Y1, Y2], L=5)
    >>> fit.sets["cs"][0].tolist()
    [4]
    >>> curve = fit.effect_curve(0, outcome=0)
    >>> bool(curve["mean"].corr(curve["pos"].map(lambda s: float(shape[int(s)]))) > 0.9)
    True
    """
    o = _Options(L=L, L_greedy=L_greedy, prior_scope=prior_variance_scope,
                 residual_scope=residual_variance_scope, estimate_residual_variance=estimate_residual_variance,
                 max_iter=max_iter, tol=tol, convergence=convergence, coverage=coverage,
                 min_abs_corr=min_abs_corr, n_purity=n_purity, prior_tol=prior_tol,
                 greedy_lbf_cutoff=greedy_lbf_cutoff, track_fit=track_fit, verbose=verbose, seed=seed)
    prob = _prepare(X, Y, pos, o, prior=prior, prior_variance_grid=prior_variance_grid,
                    null_component=null_component, null_prior_init=null_prior_init,
                    estimate_prior=estimate_prior, null_penalty=null_penalty,
                    check_null_threshold=check_null_threshold, prior_weights=prior_weights,
                    residual_variance=residual_variance, standardize=standardize, intercept=intercept,
                    wavelet=wavelet, max_log2=max_log2, variable_names=variable_names,
                    outcome_names=outcome_names, device=device, dtype=dtype)
    return _run(prob, o, init)


def fsusie(X, Y, pos=None, L: int = 20, L_greedy: int | None = 5, **options) -> MfsusieFit:
    """Functional SuSiE for one outcome: :func:`mfsusie` with M = 1.

    Parameters
    ----------
    X : array-like
        (n, p) covariates.
    Y : array-like
        (n, T) functional outcome.
    pos : array-like, optional
        Its T strictly increasing positions.
    L, L_greedy : int
        As in :func:`mfsusie`.
    **options
        Further options of :func:`mfsusie`.

    Returns
    -------
    MfsusieFit

    Examples
    --------
    >>> g = torch.Generator().manual_seed(2)
    >>> X = torch.randn(100, 15, generator=g, dtype=torch.float64)
    >>> Y = X[:, [9]] * torch.linspace(-1, 1, 16, dtype=torch.float64) + 0.3 * torch.randn(100, 16, generator=g,
    ...                                                                                     dtype=torch.float64)
    >>> fsusie(X, Y, L=3).sets["cs"][0].tolist()
    [9]
    """
    if isinstance(Y, (list, tuple, dict)):
        raise InputError("fsusie takes one (n, T) outcome; use mfsusie for several")
    return mfsusie(X, [Y], pos=None if pos is None else [pos], L=L, L_greedy=L_greedy, **options)
