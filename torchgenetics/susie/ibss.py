"""The IBSS loop (iterative Bayesian stepwise selection), shared by all data backends.

One iteration updates the L single effects in turn against the partial residual,
then evaluates the ELBO, checks convergence, and only then (if not converged)
updates the residual variance: susieR's order.

What an iteration costs is kept to what the model needs:

* Each locus keeps its effects' fitted values and ``X^T`` of them (an
  :class:`~torchgenetics.susie.data.IndividualEngine` or ``SuffStatEngine``), so an
  effect update costs one product with X and one with X^T (one with R for summary
  data) and the ELBO none.
* An effect whose prior variance is 0 has coefficients exactly 0: it needs no
  product, and the fitted values do not change. Consecutive such effects that meet
  the same residual with the same prior variance have identical inputs, so their
  single-effect regression is computed once and copied (bit for bit what
  recomputing it gives).
* The single-effect regressions (and their prior-variance searches) of all loci
  of a batch run as one tensor program on a padded (B, W) layout. Every row is
  computed by exactly the operations a batch of one applies to it, and loci are
  grouped by padded width W, so a locus gets the same bits alone as in any batch.

The loop runs B loci at once (:func:`ibss_batch`); a one-locus fit (:func:`ibss`)
is the batch of one. A locus that converges, reaches ``max_iter`` or fails leaves
the batch at once.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, fields

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import ConvergenceError, InputError
from .ser import _PriorRows, _Rows, _ser_rows, as_tensor, engine_array

__all__ = ["IBSSState", "IBSSSettings", "IBSSOutcome", "initial_state", "ibss", "ibss_batch",
           "trim_null_effects"]

# Settings every locus of one batch shares (the others may differ per locus).
_SHARED = ("prior_method", "prior_optimizer", "check_null_threshold",
           "estimate_residual_variance", "max_iter", "tol", "convergence", "track_fit", "verbose")
# Loci are padded to a multiple of this many variables; loci of one padded width run together.
_WIDTH_STEP = 64
# Per-effect fields of a batch: (B, W) arrays per effect, and (L, B) scalars.
_FIELDS = ("alpha", "mu", "mu2", "lbf_variable")
_SCALARS = ("V", "lbf", "KL", "q")


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
    prior_optimizer : {"brent", "newton"}
        Optimiser of the "optim" update (see :mod:`torchgenetics.susie.ser`).
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
    prior_optimizer: str = "brent"
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
    b = None if init is None else alpha * mu
    if b is not None and bool((b != 0).any()):
        effect_fits = data.effect_fitted(b.T).T.contiguous()
    else:  # a cold start (or an all-zero init): no product needed
        effect_fits = torch.zeros((L, data.m), dtype=dtype, device=device)
    return IBSSState(
        alpha=alpha, mu=mu, mu2=mu2, V=V, sigma2=float(sigma2), lbf=nan.clone(), KL=nan.clone(),
        lbf_variable=torch.full((L, p), math.nan, dtype=dtype, device=device),
        effect_fits=effect_fits, fitted=effect_fits.sum(dim=0),
    )


def _width(p: int) -> int:
    return -(-p // _WIDTH_STEP) * _WIDTH_STEP


class _Batch:
    """B loci of one padded width W in the IBSS loop: per-locus engines, and the SER
    quantities of the loci stacked per effect (padding: ``d = 0``, ``-inf`` log prior).

    ``alpha``, ``mu``, ``mu2`` and ``lbf_variable`` are lists of L (B, W) engine arrays:
    a sweep that updates every locus stores the new arrays in place of the old ones (no
    copy); one that updates some loci writes their rows in place, except in ``alpha``,
    whose stored arrays are never modified (a partial update writes a copy), so a shallow
    copy of ``alpha`` is a snapshot. ``V``, ``lbf``, ``KL`` and ``q`` are (L, B).
    """

    def __init__(self, backends, states: list[IBSSState], log_priors: list[torch.Tensor],
                 width: int):
        self.backends = list(backends)
        self.p = [b.p for b in self.backends]
        self.engines = [b.engine(st.alpha, st.mu) for b, st in zip(self.backends, states, strict=True)]
        like = engine_array(states[0].alpha)
        L, B = states[0].L, len(states)
        self.L, self.W = L, width
        for name in _FIELDS:
            out = _zeros((L, B, width), like)
            for j, st in enumerate(states):
                out[:, j, : self.p[j]] = engine_array(getattr(st, name).contiguous())
            setattr(self, name, list(out))
        for name in ("V", "lbf", "KL"):
            out = _zeros((L, B), like)
            for j, st in enumerate(states):
                out[:, j] = engine_array(getattr(st, name).contiguous())
            setattr(self, name, out)
        self.q = _zeros((L, B), like)
        self.sigma2 = [float(st.sigma2) for st in states]
        self.d = _zeros((B, width), like)
        self.log_prior = _zeros((B, width), like) - math.inf
        for j, (b, lp) in enumerate(zip(self.backends, log_priors, strict=True)):
            self.d[j, : self.p[j]] = engine_array(b.d.contiguous())
            self.log_prior[j, : self.p[j]] = engine_array(lp.to(b.d.dtype).contiguous())
        self.prior = _PriorRows(self.d, self.log_prior)

    @property
    def B(self) -> int:
        """Number of loci in the batch."""
        return len(self.engines)

    def take(self, keep: list[int]) -> None:
        """Keep only the loci ``keep`` (positions in the current batch)."""
        for name in _FIELDS:
            setattr(self, name, [_index(a, keep, 0) for a in getattr(self, name)])
        for name in _SCALARS:
            setattr(self, name, _index(getattr(self, name), keep, 1))
        self.d, self.log_prior = _index(self.d, keep, 0), _index(self.log_prior, keep, 0)
        self.prior = _PriorRows(self.d, self.log_prior)
        for name in ("backends", "p", "sigma2", "engines"):
            values = getattr(self, name)
            setattr(self, name, [values[j] for j in keep])

    def rows(self, name: str, j: int) -> torch.Tensor:
        """The (L, p) field ``name`` (alpha, mu, mu2 or lbf_variable) of locus j, unpadded (a
        new tensor)."""
        return as_tensor(_stack_rows(getattr(self, name), j, self.p[j]))

    def moments(self, j: int):
        """alpha, mu, mu2 of locus j as tensors, unpadded and contiguous (copies)."""
        return tuple(self.rows(n, j) for n in ("alpha", "mu", "mu2"))

    def locus(self, j: int) -> IBSSState:
        """The state of locus j as a one-locus :class:`IBSSState`."""
        alpha, mu, mu2 = self.moments(j)
        effect_fits, fitted = self.engines[j].state_tensors()
        return IBSSState(
            alpha=alpha, mu=mu, mu2=mu2, V=_tensor_copy(self.V[:, j]), sigma2=self.sigma2[j],
            lbf=_tensor_copy(self.lbf[:, j]), KL=_tensor_copy(self.KL[:, j]),
            lbf_variable=self.rows("lbf_variable", j),
            effect_fits=effect_fits, fitted=fitted,
        )

    def elbo(self, j: int) -> tuple[float, float]:
        """ELBO and expected residual sum of squares of locus j."""
        er2 = self.engines[j].er2(sum(self.q[:, j].tolist()))
        kl = sum(self.KL[:, j].tolist())
        return self.backends[j].eloglik(er2, self.sigma2[j]) - kl, er2


def _zeros(shape, like):
    if isinstance(like, np.ndarray):
        return np.zeros(shape, dtype=like.dtype)
    return like.new_zeros(shape)


def _stack_rows(arrays: list, j: int, p: int):
    """Row j (first p entries) of each array, stacked: an (L, p) array."""
    rows = [a[j, :p] for a in arrays]
    return np.stack(rows) if isinstance(rows[0], np.ndarray) else torch.stack(rows)


def _index(x, idx: list[int], axis: int):
    if isinstance(x, np.ndarray):
        return np.take(x, idx, axis=axis)
    return x.index_select(axis, torch.as_tensor(idx, device=x.device))


def _tensor_copy(a) -> torch.Tensor:
    return as_tensor(_copy(a))




def _sweep(batch: _Batch, settings: IBSSSettings) -> None:
    """One IBSS sweep over the L effects of every locus of the batch."""
    like = batch.d
    sigma2 = np.asarray(batch.sigma2, dtype=like.dtype) if isinstance(like, np.ndarray) else \
        torch.tensor(batch.sigma2, dtype=like.dtype, device=like.device)
    rows_all = _Rows(batch.d, batch.log_prior, sigma2, batch.prior)
    B, W = batch.B, batch.W
    xtr_all = _zeros((B, W), like)  # residual products; padding stays 0, nothing keeps a view
    memo = [None] * B  # per locus: (engine version, V, effect) of its last zero-to-zero update
    for k in range(batch.L):
        V_old = batch.V[k].tolist()
        todo, dst, src = [], [], []
        for j, eng in enumerate(batch.engines):
            m = memo[j]
            if (m is not None and not eng.nonzero[k] and m[0] == eng.version
                    and m[1] == V_old[j]):
                dst.append(j)
                src.append(m[2])
            else:
                todo.append(j)
        if dst:  # identical inputs: copy the earlier effect's regression
            for name in _FIELDS:
                arrays = getattr(batch, name)
                target = _writable(arrays, k, name)
                for j, earlier in zip(dst, src, strict=True):
                    target[j] = arrays[earlier][j]
            for name in _SCALARS:
                arr = getattr(batch, name)
                arr[k, dst] = arr[src, dst]
        if not todo:
            continue
        whole = len(todo) == B
        rows = rows_all if whole else rows_all.take(todo)
        xtr = xtr_all if whole else _zeros((len(todo), W), like)
        for r, j in enumerate(todo):
            batch.engines[j].xtr_into(k, xtr[r])
        V_in = batch.V[k] if whole else _index(batch.V[k], todo, 0)
        out = _ser_rows(rows, xtr, V_in, settings.prior_method, settings.check_null_threshold,
                        settings.prior_optimizer)
        sel = slice(None) if whole else todo
        for name, value in zip(_FIELDS, (out.alpha, out.mu, out.mu2, out.lbf), strict=True):
            arrays = getattr(batch, name)
            if whole:
                arrays[k] = value
            else:
                _writable(arrays, k, name)[sel] = value
        batch.V[k, sel], batch.lbf[k, sel], batch.KL[k, sel] = out.V, out.lbf_model, out.KL
        batch.q[k, sel] = out.q
        for r, (j, zero) in enumerate(zip(todo, out.zero, strict=True)):
            eng = batch.engines[j]
            if zero:
                if not eng.nonzero[k]:
                    memo[j] = (eng.version, V_old[j], k)
                    continue
                eng.set_effect(k, None, xtr[r])
            else:
                eng.set_effect(k, out.eb[r], xtr[r])


def _writable(arrays: list, k: int, name: str):
    """Effect k's array of the batch field ``name``, ready for a partial update in place
    (for ``alpha`` a copy put in its place: the previous iteration's snapshot keeps the old)."""
    if name == "alpha":
        arrays[k] = _copy(arrays[k])
    return arrays[k]


def _shared_settings(settings: list[IBSSSettings]) -> IBSSSettings:
    first = settings[0]
    for other in settings[1:]:
        for name in _SHARED:
            if getattr(other, name) != getattr(first, name):
                raise InputError(f"loci fitted in one batch must share the IBSS setting {name!r}")
    return first


def _progress(n_loci: int, rows: list, done: list, results: list, batch: _Batch) -> dict:
    """Progress-bar fields: ELBO and sigma2 for one locus, loci left for a batch."""
    if n_loci > 1:
        return {"loci": len(rows) - len(done)}
    out = results[rows[0]] if rows else None
    if not isinstance(out, IBSSOutcome) or not out.elbo or not batch.sigma2:
        return {}
    return {"elbo": f"{out.elbo[-1]:.4f}", "sigma2": f"{batch.sigma2[0]:.4g}"}


def _check_iteration(batch: _Batch, j: int, it: int, cap: float):
    """ELBO and er2 of locus j after a sweep, or the error a one-locus run raises."""
    v_max = max(batch.V[:, j].tolist())
    if v_max > cap:
        return InputError(
            f"the estimated prior variance is unreasonably large ({v_max:.4g} > {cap:.4g}); "
            "this usually means the summary statistics and the LD matrix do not match"
        )
    value, er2 = batch.elbo(j)
    if math.isinf(value):
        return ConvergenceError(f"the ELBO became infinite at IBSS iteration {it}")
    return value, er2


def _run(batch: _Batch, rows: list, s: IBSSSettings, settings: list[IBSSSettings],
         previous_elbo: list, results: list, bar) -> None:
    """The IBSS iterations of one batch (loci ``rows`` of the caller, in batch order)."""
    lower = [st.sigma2_bounds[0] for st in settings]
    upper = [st.sigma2_bounds[1] for st in settings]
    cap = [st.max_prior_variance for st in settings]
    resumed = [e is not None and math.isfinite(e) for e in previous_elbo]
    prev_elbo = [e if r else -math.inf for e, r in zip(previous_elbo, resumed, strict=True)]
    n_loci = len(results)
    prev_alpha = list(batch.alpha)  # a snapshot (stored arrays are never modified)
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
                out.trace.append({"alpha": batch.moments(j)[0], "V": _tensor_copy(batch.V[:, j]),
                                  "sigma2": batch.sigma2[j], "elbo": value})
            if it > 1 or resumed[i]:
                if s.convergence == "pip" or not math.isfinite(value):
                    delta = max(float(np.abs(_np(a[j]) - _np(b[j])).max())
                                for a, b in zip(batch.alpha, prev_alpha, strict=True))
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
        bar.update(1 if n_loci == 1 else 0)
        if s.verbose:
            bar.set_postfix(_progress(n_loci, rows, done, results, batch))
        if len(done) == len(rows):
            break
        if done:
            gone = set(done)
            keep = [j for j in range(len(rows)) if j not in gone]
            batch.take(keep)
            rows[:] = [rows[j] for j in keep]
        prev_alpha = list(batch.alpha)


def _copy(a):
    return a.copy() if isinstance(a, np.ndarray) else a.clone()


def _np(a):
    return a if isinstance(a, np.ndarray) else a.detach().cpu().numpy()


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
    results: list = [IBSSOutcome(state=None) for _ in range(n_loci)]
    groups: dict = {}
    for i, b in enumerate(backends):
        groups.setdefault(_width(b.p), []).append(i)
    bar = tqdm(total=s.max_iter if n_loci == 1 else None,
               desc="IBSS" if n_loci == 1 else f"IBSS x {n_loci}", disable=not s.verbose,
               leave=False)
    try:
        for width, idx in groups.items():
            batch = _Batch([backends[i] for i in idx], [states[i] for i in idx],
                           [log_priors[i] for i in idx], width)
            _run(batch, list(idx), s, settings, previous_elbo, results, bar)
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
