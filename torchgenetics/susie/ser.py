"""Bayesian single-effect regression (SER) and its prior-variance estimation.

One SER fits ``r = X b + e`` where exactly one entry of ``b`` is non-zero, with a
``N(0, V)`` prior on that entry. Everything it needs from the data is ``X^T r``
and ``d = diag(X^T X)``, so the same code serves individual data, sufficient
statistics and RSS. Formulas follow susieR (``single_effect_regression`` and
``optimize_prior_variance``).

The prior variance ("optim") maximises the SER log-likelihood over ``u = log V``
on ``[-30, 15]``, as susieR does. Two optimisers:

* ``"brent"`` (default): Brent's bounded minimiser with ``xatol = 1e-8``, step for
  step the algorithm of R's ``optim(method = "Brent")`` and of pysusie, so it lands
  in the mode susieR lands in when the likelihood has two (a weak effect: a mode at
  V -> 0 and a small bump). On one-scale rows (standardised X, uniform prior) a
  likelihood value costs one exponential per variable and a row sum, and on float64
  CPU rows the whole search runs in the compiled module ``_brent`` (the same steps;
  ~0.5 us per evaluation instead of ~3 us in Python).
* ``"newton"``: safeguarded Newton steps on ``u`` from the previous V with the exact
  first and second derivatives (one pass gives both), kept in a bracket of the
  maximiser with a trust region and bisection as fallbacks; 3-5 evaluations where
  Brent needs ~25, and the same optimum when the likelihood has one mode (to
  ~1e-7 in log V, Brent's own tolerance). With two modes it keeps the one it
  starts near, which can differ from Brent's.

Both end with susieR's checks: the current V is kept when the optimum is no
better, and V is set to 0 unless it beats the null by ``check_null_threshold``.

Everything is written for a batch: ``xtr``, ``d`` and ``log_prior`` of shape
(B, p) fit B single effects at once (one per locus of
:func:`~torchgenetics.susie.susie_batch`). Row i of a batch is computed by the
very operations a batch of one would apply to it (row reductions over a
contiguous last axis, per-row searches driven in lock step), so a locus gets the
same bits alone as in any batch of the same width. On CPU the arithmetic runs in
numpy on views of the tensors (a fraction of torch's per-call overhead on these
small arrays); on other devices in torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..errors import InputError

try:  # Brent's search compiled (setup.py builds it with the package)
    from . import _brent as _compiled
except ImportError:  # a source tree that was never built: the same search in Python
    _compiled = None

__all__ = [
    "PRIOR_METHODS",
    "PRIOR_OPTIMIZERS",
    "SERResult",
    "log_prior_weights",
    "single_effect_regression",
    "single_effect_regression_batch",
    "optimize_prior_variance",
    "brent_minimize",
    "brent_minimize_batch",
    "newton_maximize_batch",
]

#: Ways to update the prior variance V of one effect ("none" keeps it fixed).
PRIOR_METHODS = ("optim", "EM", "simple", "none")
#: One-dimensional optimisers of the "optim" method.
PRIOR_OPTIMIZERS = ("brent", "newton")
# R adds sqrt(.Machine$double.eps) to the prior weights before taking logs.
_SQRT_EPS = math.sqrt(2.220446049250313e-16)
_LOG_V_BOUNDS = (-30.0, 15.0)
# Batched searches: once fewer than this fraction of rows still search, evaluate only those.
_SUBSET_EVAL = 0.6
# Newton: stop when a step is shorter than this (in log V); evaluation budget per search.
_NEWTON_TOL = 1e-7
_NEWTON_MAX_EVAL = 80
_NEWTON_MAX_STEP = 2.0
# Brent searches of a batch of numpy rows (measured per row, p = 200 and 1,000): below
# _DRIVEN_MIN_ROWS rows one at a time (a scalar step with its own evaluation, ~3 us);
# from there the scalar searches share one batched evaluation per step (2-3x cheaper per
# row at 32-128 rows); from _LOCK_STEP_MIN_ROWS rows the step logic itself runs as ~45
# array operations per step for all rows.
_LOCK_STEP_MIN_ROWS = 256
_DRIVEN_MIN_ROWS = 16
# Rows whose 1/shat^2 agree to this relative tolerance use the one-s fast evaluation.
_CONST_S_RTOL = 1e-12
# Use numpy for the arithmetic of CPU tensors (tests switch it off to exercise torch).
USE_NUMPY_ON_CPU = True
# Run the Brent search of one-scale float64 numpy rows in the compiled module (when built).
USE_COMPILED = True


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


# ---- array helpers: the same code on numpy arrays (CPU) and torch tensors ----------------

def engine_array(t: torch.Tensor):
    """The array the SER arithmetic works on: a numpy view of a CPU tensor, else the tensor.

    Examples
    --------
    >>> type(engine_array(torch.zeros(2))).__name__
    'ndarray'
    """
    if USE_NUMPY_ON_CPU and t.device.type == "cpu" and not t.requires_grad:
        return t.detach().numpy()
    return t


def as_tensor(a) -> torch.Tensor:
    """A tensor sharing memory with an engine array (inverse of :func:`engine_array`).

    Examples
    --------
    >>> as_tensor(np.ones(2)).tolist()
    [1.0, 1.0]
    """
    return torch.from_numpy(a) if isinstance(a, np.ndarray) else a


def _np(x) -> bool:
    return isinstance(x, np.ndarray)


def _exp(x):
    return np.exp(x) if _np(x) else torch.exp(x)


def _log(x):
    return np.log(x) if _np(x) else torch.log(x)


def _log1p(x):
    return np.log1p(x) if _np(x) else torch.log1p(x)


def _where(cond, a, b):
    return np.where(cond, a, b) if _np(cond) else torch.where(cond, a, b)


def _rowmax(x):
    return np.maximum.reduce(x, axis=-1) if _np(x) else x.amax(dim=-1)


def _rowsum(x):
    """Sums over the last axis (numpy's ufunc reduction called directly: the bits of
    ``x.sum(-1)`` without its Python-level wrapper)."""
    return np.add.reduce(x, axis=-1) if _np(x) else x.sum(-1)


def _rowmin(x):
    return np.minimum.reduce(x, axis=-1) if _np(x) else x.amin(dim=-1)


def _vector(values, like):
    """A 1-D array of Python floats, in the dtype and place of ``like``."""
    if _np(like):
        return np.asarray(values, dtype=like.dtype)
    return torch.tensor(values, dtype=like.dtype, device=like.device)


def _take(x, rows):
    """Rows ``rows`` (an int array or list) of x, as a new contiguous array."""
    if _np(x):
        return x[rows]
    return x.index_select(0, torch.as_tensor(rows, device=x.device))


def _matvec_rows(Z, e):
    """Row-wise products ``Z[i] @ e[i]`` (stacked matmul: row i gets the bits of a batch of one)."""
    return (Z @ e[..., None])[..., 0]


def _cast(mask, like):
    """A boolean mask as 0/1 values of ``like``'s dtype."""
    return mask.astype(like.dtype) if _np(mask) else mask.to(like.dtype)


def _stack(parts):
    return np.stack(parts, axis=1) if _np(parts[0]) else torch.stack(parts, dim=1)


def _logsumexp_rows(x):
    m = _rowmax(x)
    return _log(_rowsum(_exp(x - m[:, None]))) + m


# ---- per-row constants of a batch of SERs ------------------------------------------------

class _PriorRows:
    """The parts of :class:`_Rows` that do not depend on sigma2: computed once per batch of
    loci (``d`` and ``log_prior`` are fixed during IBSS) and reused by every sweep."""

    def __init__(self, d, log_prior):
        informative = d > 0
        self.informative = informative
        self.safe_d = _where(informative, d, 1.0)
        self.ll0 = _logsumexp_rows(log_prior)             # log-likelihood at V = 0
        real = log_prior > -math.inf
        self.real = real
        # 0 on real variables, -inf on padding (added to z^2 - max z^2 by the objective)
        self.pad = None if bool(real.all()) else _where(real, 0.0, -math.inf)
        self.lp_max = _rowmax(log_prior)
        self.uniform = _rowmin(_where(real, log_prior, math.inf)) == self.lp_max


class _Rows:
    """Constants of B single-effect regressions, one per row, fixed during an IBSS sweep.

    ``d`` and ``log_prior`` are (B, W) engine arrays (padding: ``d = 0`` and
    ``log_prior = -inf``), ``sigma2`` is (B,). A row is "fast" when every real
    variable is informative (``d > 0``), their ``1/shat^2`` agree to 1e-12 (the
    standardised case) and the prior is uniform: its likelihood derivatives then
    need one exponential per variable and one stacked product. ``prior``: the
    :class:`_PriorRows` of ``d`` and ``log_prior`` when already computed.
    """

    def __init__(self, d, log_prior, sigma2, prior: _PriorRows | None = None):
        prior = _PriorRows(d, log_prior) if prior is None else prior
        self.d, self.lp, self.sigma2 = d, log_prior, sigma2
        s2 = sigma2[:, None]
        self.s = _where(prior.informative, d / s2, 0.0)          # 1 / shat^2
        self.c = _where(prior.informative, 1.0 / (prior.safe_d * s2), 0.0)  # z^2 = xtr^2 * c
        self.inv_s2 = 1.0 / sigma2
        self.ll0, self.real, self.pad, self.lp_max = prior.ll0, prior.real, prior.pad, prior.lp_max
        s_max = _rowmax(self.s)
        s_min = _rowmin(_where(prior.real, self.s, math.inf))
        self.s_bar = s_max
        fast = (s_min > 0) & (s_min >= s_max * (1.0 - _CONST_S_RTOL)) & prior.uniform
        self.fast = fast.tolist()
        self.B = d.shape[0]

    def take(self, rows) -> "_Rows":
        """The rows ``rows`` as their own :class:`_Rows`."""
        out = object.__new__(_Rows)
        for name in ("d", "lp", "sigma2", "s", "c", "inv_s2", "ll0", "real", "s_bar", "lp_max"):
            setattr(out, name, _take(getattr(self, name), rows))
        out.pad = None if self.pad is None else _take(self.pad, rows)
        out.fast = [self.fast[i] for i in (rows.tolist() if hasattr(rows, "tolist") else rows)]
        out.B = len(out.fast)
        return out


# ---- likelihood of the SER as a function of V ---------------------------------------------

def _lbf_stage(rows: _Rows, z2, V):
    """lbf, the softmax numerators and the log-likelihood at V (B,).

    Returns ``(lbf, w, S, loglik, opt)`` where ``w / S`` is alpha and
    ``opt = 1 + V / shat^2``.
    """
    t = V[:, None] * rows.s
    opt = 1.0 + t
    lbf = 0.5 * (z2 * (t / opt) - _log1p(t))
    lpo = lbf + rows.lp
    m = _rowmax(lpo)
    w = _exp(lpo - m[:, None])
    S = _rowsum(w)
    return lbf, w, S, _log(S) + m, opt


def _loglik(rows: _Rows, z2, V):
    """``log sum_j pi_j BF_j(V)`` for each row (the SER log-likelihood up to a constant)."""
    return _lbf_stage(rows, z2, V)[3]


def _exp_each(log_v) -> list:
    """``exp`` of each entry with Python's ``math.exp`` (the same bits alone or in a batch)."""
    return [math.exp(t) for t in log_v]


# ---- Newton search on log V ----------------------------------------------------------------

def _newton_steps(u0: float, lo: float, hi: float, tol: float = _NEWTON_TOL,
                  max_eval: int = _NEWTON_MAX_EVAL):
    """Safeguarded Newton search for a maximiser of ``l(u)`` on ``[lo, hi]``, as a generator.

    Yields each trial point ``u`` and receives ``(l'(u), l''(u), tail)``, where
    ``tail`` is True when no stationary point can lie left of ``u`` if ``l'(u) < 0``
    (then ``lo`` is the maximiser of ``[lo, u]``). Returns the maximiser
    (``StopIteration.value``). Newton steps are taken inside a bracket of the
    maximiser (``l' > 0`` at its left end, ``< 0`` at its right end); a step that
    leaves it tries the unexplored bound, else bisects.
    """
    a, b = lo, hi
    a_seen = b_seen = False
    u = min(max(u0, lo), hi)
    for _ in range(max_eval):
        d1, d2, tail = yield u
        if not (math.isfinite(d1) and math.isfinite(d2)):
            return u
        if d1 > 0:
            if u >= hi:
                return hi
            a, a_seen = u, True
        elif d1 < 0:
            if u <= lo or tail:
                return lo
            b, b_seen = u, True
        else:
            return u
        cand = u - d1 / d2 if d2 < 0 else math.inf
        if abs(cand - u) > _NEWTON_MAX_STEP:  # a trust region: one basin at a time
            cand = u + math.copysign(_NEWTON_MAX_STEP, d1)
        if not (a < cand < b):
            if d1 < 0 and not a_seen:
                cand = lo
            elif d1 > 0 and not b_seen:
                cand = hi
            else:
                cand = 0.5 * (a + b)
        if abs(cand - u) <= tol or b - a <= tol:
            return cand
        u = cand
    return u


def _drive(searches: list, evaluate: Callable, size: int) -> list:
    """Run per-row generator searches in lock step, one batched evaluation per step.

    ``evaluate(points, rows)`` maps the trial points of rows ``rows`` (a list)
    to one value per row (sent to that row's search). Returns each search's result.
    """
    trial = {i: next(s) for i, s in enumerate(searches)}
    result = [None] * size
    while trial:
        rows = list(trial)
        values = evaluate([trial[i] for i in rows], rows)
        for i, value in zip(rows, values, strict=True):
            try:
                trial[i] = searches[i].send(value)
            except StopIteration as done:
                result[i] = done.value
                del trial[i]
    return result


class _Objective:
    """The SER log-likelihood ``l(u)``, ``u = log V``, and its derivatives, for rows of a batch.

    With ``t = V s_j`` and ``g = t / (1 + t)``, ``lbf_j = (z_j^2 g - log(1 + t)) / 2``,
    ``dlbf_j/du = g (z_j^2 (1 - g) - 1) / 2`` and
    ``d2lbf_j/du2 = g (1 - g) (z_j^2 (1 - 2 g) - 1) / 2``; ``l' = E_w[dlbf/du]`` and
    ``l'' = E_w[(dlbf/du)^2 + d2lbf/du2] - l'^2`` under the posterior weights ``w``.
    On fast rows (one s, uniform prior) ``l(u) = log pi + log sum_j exp(z_j^2 g / 2) -
    log(1 + t) / 2``: a value costs one exponential per variable and a row sum, the
    derivatives one stacked product for ``sum w``, ``sum w z^2`` and ``sum w z^4``.
    Other rows use the general formulas. A row's numbers never depend on the other
    rows: one row alone takes a 1-D path that gives the bits of its row in the 2-D one.
    """

    def __init__(self, rows: _Rows, z2):
        self.rows, self.z2 = rows, z2
        self.fast = rows.fast
        self.any_fast = any(self.fast)
        z2max = _rowmax(z2)
        lp0 = rows.lp_max
        self.z2max = z2max.tolist()
        self.s_bar = rows.s_bar.tolist()
        self.lp0 = lp0.tolist()
        self.all_fast = all(self.fast)
        if _np(z2):
            self.z2max_arr, self.s_bar_arr, self.lp0_arr = z2max, rows.s_bar, lp0
        self._Z = None
        self.compiled = False
        if self.any_fast:
            # z^2 - max z^2 on real variables, -inf on padding (exp gives 0 for any V > 0).
            self.dz = z2 - z2max[:, None]
            if rows.pad is not None:
                self.dz += rows.pad
            self.compiled = (USE_COMPILED and _compiled is not None and _np(self.dz)
                             and self.dz.dtype == np.float64)

    @property
    def Z(self):
        """(B, 3, W) stack of the real-variable mask, z^2 and z^4 of every row."""
        if self._Z is None:
            self._Z = _stack([_cast(self.rows.real, self.z2), self.z2, self.z2 * self.z2])
        return self._Z

    def start(self, V_old: list) -> list:
        """Newton's starting points: log V_old when positive, else near the strongest
        variable's own optimum ``V = (z^2 - 1) shat^2`` (the lower bound when no z^2 > 1)."""
        out = []
        for i, v in enumerate(V_old):
            if v > 0:
                out.append(math.log(v))
            elif self.z2max[i] > 1 and self.s_bar[i] > 0:
                out.append(math.log((self.z2max[i] - 1.0) / self.s_bar[i]))
            else:
                out.append(_LOG_V_BOUNDS[0])
        return out

    def _g(self, u: float, r: int) -> tuple[float, float]:
        t = math.exp(u) * self.s_bar[r]
        return t / (1.0 + t), t

    def _fast_value(self, r: int, g: float, t: float, S: float) -> float:
        return self.lp0[r] + 0.5 * g * self.z2max[r] + math.log(S) - 0.5 * math.log1p(t)

    @staticmethod
    def _fast_derivs(g: float, S: float, S1: float, S2: float) -> tuple:
        m1, m2 = S1 / S, S2 / S
        h = 1.0 - g
        d1 = 0.5 * g * (h * m1 - 1.0)
        ea2 = 0.25 * g * g * (h * h * m2 - 2.0 * h * m1 + 1.0)
        eb = 0.5 * g * h * ((1.0 - 2.0 * g) * m1 - 1.0)
        # E_w[z^2] grows with V on fast rows, so with E_w[z^2] <= 1 and l' < 0 the
        # likelihood falls all the way from the lower bound up to this point.
        return d1, ea2 + eb - d1 * d1, m1 <= 1.0

    def scalar(self, r: int, negate: bool = False) -> Callable[[float], float]:
        """``u -> l(u)`` (``-l(u)`` with ``negate``) of row r alone, with as little per-call
        work as possible (the bits of :meth:`values`)."""
        sign = -1.0 if negate else 1.0  # multiplying by +-1 is exact
        if not (self.fast[r] and _np(self.dz)):
            return lambda u: sign * self.value(u, r)
        dz, s, lp0, z2max = self.dz[r], self.s_bar[r], self.lp0[r], self.z2max[r]
        buf = np.empty_like(dz)
        multiply, exp, add = np.multiply, np.exp, np.add.reduce
        log, log1p, mexp = math.log, math.log1p, math.exp

        def f(u: float) -> float:
            t = mexp(u) * s
            g = t / (1.0 + t)
            multiply(dz, 0.5 * g, out=buf)
            exp(buf, out=buf)
            return sign * (lp0 + 0.5 * g * z2max + log(add(buf)) - 0.5 * log1p(t))

        return f

    def value(self, u: float, r: int) -> float:
        """``l(u)`` of row r alone."""
        if not self.fast[r]:
            return self._slow_values([u], [r])[0]
        if self.compiled:
            return _compiled.loglik(self.dz[r], self.s_bar[r], self.lp0[r], self.z2max[r], u)
        g, t = self._g(u, r)
        return self._fast_value(r, g, t, float(_rowsum(_exp(self.dz[r] * (0.5 * g)))))

    def values(self, points: list, rows: list) -> list:
        """``l(u)`` at ``points`` for the rows ``rows``."""
        if len(rows) == 1:
            return [self.value(points[0], rows[0])]
        if self.compiled:
            return self._split(points, rows, self._compiled_values, self._slow_values)
        return self._split(points, rows, self._fast_values, self._slow_values)

    def _compiled_values(self, points: list, rows: list) -> list:
        return [self.value(u, r) for u, r in zip(points, rows, strict=True)]

    def brent(self, r: int) -> tuple[float, float]:
        """susieR's Brent search on fast row r in the compiled module: ``(log V, l(log V))``
        (the steps of :func:`_brent_steps` on the values of :meth:`value`)."""
        return _compiled.brent(self.dz[r], self.s_bar[r], self.lp0[r], self.z2max[r],
                               *_LOG_V_BOUNDS, _BRENT_MAX_EVAL, _BRENT_XATOL)

    def values_array(self, points: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """:meth:`values` for numpy arrays of points and rows, with array arithmetic for the
        per-row scalars (the same IEEE operations, so the same bits)."""
        if not (self.all_fast and _np(self.dz)):
            return np.asarray(self.values(points.tolist(), rows.tolist()))
        t = np.array([math.exp(u) for u in points.tolist()]) * self.s_bar_arr[rows]
        g = t / (1.0 + t)
        c = 0.5 * g
        if rows.shape[0] > _SUBSET_EVAL * self.rows.B:
            c_all = np.ones(self.rows.B)
            c_all[rows] = c
            S = np.exp(c_all[:, None] * self.dz).sum(-1)[rows]
        else:
            S = np.exp(c[:, None] * self.dz[rows]).sum(-1)
        log_s = np.array([math.log(v) for v in S.tolist()])
        log1p_t = np.array([math.log1p(v) for v in t.tolist()])
        return self.lp0_arr[rows] + c * self.z2max_arr[rows] + log_s - 0.5 * log1p_t

    def derivatives(self, points: list, rows: list) -> list:
        """``(l'(u), l''(u), tail)`` at ``points`` for ``rows`` (see :func:`_newton_steps`)."""
        if len(rows) == 1 and self.fast[rows[0]]:
            r = rows[0]
            g, _ = self._g(points[0], r)
            e = _exp(self.dz[r] * (0.5 * g))
            return [self._fast_derivs(g, *(self.Z[r] @ e).tolist())]
        return self._split(points, rows, self._fast_derivatives, self._slow_derivatives)

    def _split(self, points: list, rows: list, fast_fn, slow_fn) -> list:
        if not self.any_fast:
            return slow_fn(points, rows)
        out = [None] * len(rows)
        fast = [k for k, r in enumerate(rows) if self.fast[r]]
        slow = [k for k, r in enumerate(rows) if not self.fast[r]]
        for part, fn in ((fast, fast_fn), (slow, slow_fn)):
            if part:
                vals = fn([points[k] for k in part], [rows[k] for k in part])
                for k, v in zip(part, vals, strict=True):
                    out[k] = v
        return out

    def _fast_args(self, points: list, rows: list):
        """Per-row (g, t), and c = g/2 for all rows (when most are asked) or just ``rows``."""
        gt = [self._g(u, r) for u, r in zip(points, rows, strict=True)]
        if len(rows) > _SUBSET_EVAL * self.rows.B:
            c = [1.0] * self.rows.B  # filler for rows not asked (their results unused)
            for (g, _), r in zip(gt, rows, strict=True):
                c[r] = 0.5 * g
            return gt, c, list(rows), None
        return gt, [0.5 * g for g, _ in gt], list(range(len(rows))), rows

    def _fast_values(self, points: list, rows: list) -> list:
        gt, c, at, sub = self._fast_args(points, rows)
        dz = self.dz if sub is None else _take(self.dz, sub)
        S = _exp(_vector(c, dz)[:, None] * dz).sum(-1).tolist()
        return [self._fast_value(r, g, t, S[k])
                for k, r, (g, t) in zip(at, rows, gt, strict=True)]

    def _fast_derivatives(self, points: list, rows: list) -> list:
        gt, c, at, sub = self._fast_args(points, rows)
        dz = self.dz if sub is None else _take(self.dz, sub)
        Z = self.Z if sub is None else _take(self.Z, sub)
        sums = _matvec_rows(Z, _exp(_vector(c, dz)[:, None] * dz)).tolist()
        return [self._fast_derivs(g, *sums[k]) for k, (g, _) in zip(at, gt, strict=True)]

    def _slow_parts(self, points: list, rows: list):
        sub = self.rows if len(rows) == self.rows.B else self.rows.take(rows)
        z2 = self.z2 if len(rows) == self.rows.B else _take(self.z2, rows)
        return sub, z2, _vector(_exp_each(points), z2)

    def _slow_values(self, points: list, rows: list) -> list:
        sub, z2, V = self._slow_parts(points, rows)
        return _loglik(sub, z2, V).tolist()

    def _slow_derivatives(self, points: list, rows: list) -> list:
        sub, z2, V = self._slow_parts(points, rows)
        t = V[:, None] * sub.s
        g = t / (1.0 + t)
        lpo = 0.5 * (z2 * g - _log1p(t)) + sub.lp
        w = _exp(lpo - _rowmax(lpo)[:, None])
        h = 1.0 - g
        a = 0.5 * g * (z2 * h - 1.0)
        b = 0.5 * g * h * (z2 * (1.0 - 2.0 * g) - 1.0)
        sums = _matvec_rows(_stack([w, w * a, w * (a * a + b), w * z2]), _cast(sub.real, z2))
        out = []
        for S, Sa, Sab, Sz in sums.tolist():
            d1 = Sa / S
            out.append((d1, Sab / S - d1 * d1, Sz / S <= 1.0))
        return out


def newton_maximize_batch(derivatives: Callable, starts, lower: float, upper: float,
                          tol: float = _NEWTON_TOL, max_eval: int = _NEWTON_MAX_EVAL) -> list:
    """Maximise ``size`` smooth functions of one variable on ``[lower, upper]`` in lock step.

    Row i runs the safeguarded Newton search of its own function, exactly as it
    would alone; rows that have converged drop out.

    Parameters
    ----------
    derivatives : callable
        ``derivatives(points, rows)`` returns, per row in ``rows``, the tuple
        ``(f'(x), f''(x), tail)`` at its trial point; ``tail`` True says that with
        ``f'(x) < 0`` no stationary point lies left of x.
    starts : sequence of float
        Starting points.
    lower, upper : float
        Bounds.
    tol : float
        Stop when a Newton step is shorter than this.
    max_eval : int
        Evaluation budget per row.

    Returns
    -------
    list of float
        The maximisers.

    Examples
    --------
    >>> c = [-3.0, 0.5, 7.0]
    >>> f = lambda xs, rows: [(-2 * (x - c[r]), -2.0, False) for x, r in zip(xs, rows)]
    >>> [round(x, 9) for x in newton_maximize_batch(f, [0.0, 0.0, 0.0], -10.0, 10.0)]
    [-3.0, 0.5, 7.0]
    """
    searches = [_newton_steps(float(u0), lower, upper, tol, max_eval) for u0 in starts]
    return _drive(searches, derivatives, len(searches))


# ---- Brent's method (susieR's optimiser) ------------------------------------------------

def brent_minimize(f: Callable[[float], float], lower: float, upper: float,
                   xatol: float = 1e-8, max_eval: int = 500) -> float:
    """Minimise a scalar function on ``[lower, upper]`` by Brent's method.

    Golden-section steps with parabolic interpolation (Brent 1973, the algorithm of
    R's ``optimize`` and SciPy's bounded ``minimize_scalar``, step for step).
    :func:`brent_minimize_batch` runs the same steps for many functions at once.

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
    return _brent(f, lower, upper, xatol, max_eval)[0]


_GOLDEN = 0.5 * (3.0 - math.sqrt(5.0))
_BRENT_SQRT_EPS = math.sqrt(2.2e-16)
_BRENT_XATOL = 1e-8
_BRENT_MAX_EVAL = 500


def _brent(f: Callable[[float], float], lower: float, upper: float, xatol: float = _BRENT_XATOL,
           max_eval: int = _BRENT_MAX_EVAL) -> tuple[float, float]:
    """:func:`brent_minimize` returning ``(x, f(x))``: the minimiser is the best point
    evaluated, so its value comes for free."""
    search = _brent_steps(lower, upper, xatol, max_eval)
    u = next(search)
    try:
        while True:
            u = search.send(f(u))
    except StopIteration as done:
        return done.value


def _brent_steps(lower: float, upper: float, xatol: float = _BRENT_XATOL,
                 max_eval: int = _BRENT_MAX_EVAL):
    """Brent's bounded minimiser as a generator: yields each trial point, receives its value,
    returns ``(x, f(x))`` (``StopIteration.value``). Plain Python floats and locals only: a
    step costs a fraction of a microsecond besides the evaluation, and whoever drives the
    search may evaluate many searches' points together (:func:`_brent_driven`)."""
    golden, sqrt_eps, third = _GOLDEN, _BRENT_SQRT_EPS, xatol / 3.0
    a, b = lower, upper
    x = w = v = a + golden * (b - a)
    fx = yield x
    fw = fv = fx
    step = prev_step = 0.0
    n_eval = 1
    mid = 0.5 * (a + b)
    tol1 = sqrt_eps * abs(x) + third
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
                    step = tol1 if mid >= x else -tol1
        if use_golden:
            prev_step = (a - x) if x >= mid else (b - x)
            step = golden * prev_step
        # x + sign(step) * max(|step|, tol1), with the sign applied exactly.
        size = -step if step < 0 else step
        if size < tol1:
            size = tol1
        u = x + size if step >= 0 else x - size
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
        tol1 = sqrt_eps * abs(x) + third
        tol2 = 2.0 * tol1
        if n_eval >= max_eval:
            break
    return x, fx


def brent_minimize_batch(f: Callable[[np.ndarray, np.ndarray], np.ndarray], lower: float,
                         upper: float, size: int, xatol: float = 1e-8,
                         max_eval: int = 500) -> np.ndarray:
    """Run ``size`` Brent minimisations on ``[lower, upper]`` in lock step.

    Row i takes exactly the steps :func:`brent_minimize` takes on ``f_i`` (its step
    logic as array operations, see :func:`_brent_lock_step`); rows whose search has
    ended drop out while the others continue, so every row ends where its scalar
    search would.

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
    return _brent_lock_step(f, lower, upper, size, xatol, max_eval)[0]


def _brent_lock_step(f: Callable, lower: float, upper: float, size: int, xatol: float = 1e-8,
                     max_eval: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Brent's method for ``size`` rows at once, on numpy arrays of per-row search state.

    Every row's state is updated by the operations :func:`brent_minimize` applies to
    it (IEEE ``+ - * /``, ``abs``, comparisons; branches become masks), so row i
    visits exactly the points of its scalar search, without per-row Python work.
    Only rows still searching are evaluated. Returns the minimisers and their values.
    """
    golden = 0.5 * (3.0 - math.sqrt(5.0))
    sqrt_eps = math.sqrt(2.2e-16)
    all_rows = np.arange(size)
    a = np.full(size, float(lower))
    b = np.full(size, float(upper))
    x = a + golden * (b - a)
    w, v = x.copy(), x.copy()
    fx = np.asarray(f(x.copy(), all_rows), dtype=np.float64)
    fw, fv = fx.copy(), fx.copy()
    step = np.zeros(size)
    prev = np.zeros(size)
    n_eval = np.ones(size, dtype=np.int64)
    active = np.ones(size, dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        while True:
            mid = 0.5 * (a + b)
            tol1 = sqrt_eps * np.abs(x) + xatol / 3.0
            tol2 = 2.0 * tol1
            active &= np.abs(x - mid) > tol2 - 0.5 * (b - a)
            if not active.any():
                break
            # Parabola through (x, fx), (w, fw), (v, fv) where the last-but-one step was long.
            para = active & (np.abs(prev) > tol1)
            r = (x - w) * (fx - fv)
            q = (x - v) * (fx - fw)
            p = (x - v) * q - (x - w) * r
            q = 2.0 * (q - r)
            p = np.where(q > 0.0, -p, p)
            q = np.abs(q)
            r = prev
            prev = np.where(para, step, prev)
            ok = para & (np.abs(p) < np.abs(0.5 * q * r)) & (q * (a - x) < p) & (p < q * (b - x))
            s_para = p / q
            u = x + s_para
            near = ((u - a) < tol2) | ((b - u) < tol2)
            s_para = np.where(near, tol1 * np.where(mid >= x, 1.0, -1.0), s_para)
            step = np.where(ok, s_para, step)
            gold = active & ~ok
            prev = np.where(gold, np.where(x >= mid, a - x, b - x), prev)
            step = np.where(gold, golden * prev, step)
            u = x + np.where(step >= 0, 1.0, -1.0) * np.maximum(np.abs(step), tol1)
            rows = np.flatnonzero(active)
            fu = fx.copy()
            fu[rows] = np.asarray(f(u[rows], rows), dtype=np.float64)
            n_eval += active
            better = active & (fu <= fx)
            worse = active & ~better
            # fu <= fx: the bracket end on the far side of u moves to x; u becomes x.
            a = np.where(better & (u >= x), x, a)
            b = np.where(better & (u < x), x, b)
            # fu > fx: u becomes the bracket end on its side.
            a = np.where(worse & (u < x), u, a)
            b = np.where(worse & (u >= x), u, b)
            to_w = worse & ((fu <= fw) | (w == x))
            to_v = worse & ~to_w & ((fu <= fv) | (v == x) | (v == w))
            v_new = np.where(better | to_w, w, np.where(to_v, u, v))
            fv_new = np.where(better | to_w, fw, np.where(to_v, fu, fv))
            w_new = np.where(better, x, np.where(to_w, u, w))
            fw_new = np.where(better, fx, np.where(to_w, fu, fw))
            x = np.where(better, u, x)
            fx = np.where(better, fu, fx)
            v, fv, w, fw = v_new, fv_new, w_new, fw_new
            active &= n_eval < max_eval
    return x, fx


def _brent_row(objective: _Objective, r: int) -> tuple[float, float]:
    """susieR's Brent search on row r alone: ``(log V, l(log V))``."""
    u, neg = _brent(objective.scalar(r, negate=True), *_LOG_V_BOUNDS)
    return u, -neg


def _brent_driven(objective: _Objective) -> list:
    """Every row's scalar Brent search (:func:`_brent_steps`), driven together: the trial
    points of all searching rows are evaluated in one batched call per step
    (:meth:`_Objective.values_array`, the bits of the row's scalar evaluation), the step
    logic stays per row in plain Python. ``(log V, l(log V))`` per row."""
    size = objective.rows.B
    searches = [_brent_steps(*_LOG_V_BOUNDS) for _ in range(size)]
    points = [next(search) for search in searches]
    rows = list(range(size))
    result = [None] * size
    while rows:
        values = objective.values_array(np.array(points), np.array(rows)).tolist()
        next_rows, next_points = [], []
        for r, value in zip(rows, values, strict=True):
            try:
                next_points.append(searches[r].send(-value))
                next_rows.append(r)
            except StopIteration as done:
                u, neg = done.value
                result[r] = (u, -neg)
        rows, points = next_rows, next_points
    return result


def _brent_log_v(objective: _Objective) -> list:
    """susieR's Brent search for the maximiser of the log-likelihood over log V, per row:
    ``(log V, l(log V))`` pairs.

    Fast float64 numpy rows search in the compiled module, one row after another; the
    other rows as :func:`_brent_search` runs them.
    """
    if not objective.compiled:
        return _brent_search(objective)
    size = objective.rows.B
    result = [objective.brent(r) if objective.fast[r] else None for r in range(size)]
    slow = [r for r in range(size) if not objective.fast[r]]
    if slow:
        rest = _Objective(objective.rows.take(slow), _take(objective.z2, slow))
        for r, found in zip(slow, _brent_search(rest), strict=True):
            result[r] = found
    return result


def _brent_search(objective: _Objective) -> list:
    """:func:`_brent_log_v` in Python.

    Every row takes the steps of its own scalar search, whichever way the searches run:
    below ``_DRIVEN_MIN_ROWS`` numpy rows one after another (scalar Python steps with a
    dedicated evaluation), up to ``_LOCK_STEP_MIN_ROWS`` driven together with one
    batched evaluation per step (:func:`_brent_driven`), and more rows, or torch rows, in
    lock step (:func:`_brent_lock_step`: the step logic itself as array operations).
    """
    size = objective.rows.B
    numpy_rows = _np(objective.z2)
    if size == 1 or (size < _DRIVEN_MIN_ROWS and numpy_rows):
        return [_brent_row(objective, r) for r in range(size)]
    if size < _LOCK_STEP_MIN_ROWS and numpy_rows:
        return _brent_driven(objective)

    def neg(points: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if numpy_rows:
            return -objective.values_array(points, rows)
        return -np.asarray(objective.values(points.tolist(), rows.tolist()))

    x, fx = _brent_lock_step(neg, *_LOG_V_BOUNDS, size)
    return list(zip(x.tolist(), (-fx).tolist(), strict=True))


# ---- the SER -------------------------------------------------------------------------------

@dataclass
class _Out:
    """Batched SER result on engine arrays (``eb = alpha * mu``, ``q = sum d alpha mu2``;
    ``zero[i]``: row i's posterior used V = 0, so its ``eb`` is exactly zero)."""

    alpha: object
    mu: object
    mu2: object
    lbf: object
    lbf_model: object
    V: object
    KL: object
    eb: object
    q: object
    zero: list


def _check_method(method: str, optimizer: str = "brent") -> None:
    if method not in PRIOR_METHODS:
        raise InputError(f"estimate_prior_method must be one of {PRIOR_METHODS[:3]}, got {method!r}")
    if optimizer not in PRIOR_OPTIMIZERS:
        raise InputError(f"prior_optimizer must be one of {PRIOR_OPTIMIZERS}, got {optimizer!r}")


def _optimum(rows: _Rows, z2, V_old: list, optimizer: str) -> list:
    """Maximiser of the SER log-likelihood over V with susieR's keep-current rule: the
    current V stays when the optimum's log-likelihood is lower."""
    objective = _Objective(rows, z2)
    if optimizer == "brent":
        found = _brent_log_v(objective)
    else:
        starts = objective.start(V_old)
        if _np(z2):  # one search at a time (see _brent_log_v)
            log_v = [newton_maximize_batch(lambda pts, rs, r=r: objective.derivatives(pts, [r]),
                                           [u0], *_LOG_V_BOUNDS)[0]
                     for r, u0 in enumerate(starts)]
        else:
            log_v = newton_maximize_batch(objective.derivatives, starts, *_LOG_V_BOUNDS)
        found = list(zip(log_v, objective.values(log_v, list(range(rows.B))), strict=True))
    old = [i for i, v in enumerate(V_old) if v > 0]
    ll_old = rows.ll0.tolist()
    if old:
        for i, v in zip(old, objective.values([math.log(V_old[i]) for i in old], old), strict=True):
            ll_old[i] = v
    return [V_old[i] if ll < ll_old[i] else math.exp(u) for i, (u, ll) in enumerate(found)]


def _redo(stage, rows: _Rows, z2, V, change: list):
    """Recompute the lbf stage for the rows ``change`` at their new V."""
    if not change:
        return stage
    sub = rows.take(change)
    new = _lbf_stage(sub, _take(z2, change), _take(V, change))
    out = list(stage)
    for k in range(5):
        part = out[k]
        if _np(part):
            part = part.copy()
            part[change] = new[k]
        else:
            part = part.clone()
            part[torch.as_tensor(change, device=part.device)] = new[k]
        out[k] = part
    return tuple(out)


def _ser_rows(rows: _Rows, xtr, V, method: str, check_null_threshold: float,
              optimizer: str = "brent") -> _Out:
    """Single-effect regressions of the rows of ``rows`` for residual products ``xtr`` (B, W)
    and current prior variances ``V`` (B,)."""
    z2 = xtr * xtr * rows.c
    V_old = V.tolist()
    if method == "optim":
        V = _vector(_optimum(rows, z2, V_old, optimizer), z2)
    else:
        V = _vector(V_old, z2)
    stage = _lbf_stage(rows, z2, V)
    if method in ("optim", "simple"):
        null = [i for i, (a, b) in enumerate(zip(rows.ll0.tolist(), stage[3].tolist(), strict=True))
                if a + check_null_threshold >= b]
        if null:
            V_list = V.tolist()
            for i in null:
                V_list[i] = 0.0
            V = _vector(V_list, z2)
            stage = _redo(stage, rows, z2, V, null)
    lbf, w, S, lbf_model, opt = stage
    zero = [v == 0.0 for v in V.tolist()]
    alpha = w / S[:, None]
    post_var = V[:, None] / opt
    mu = post_var * (xtr * rows.inv_s2[:, None])
    mu2 = post_var + mu * mu
    eb = alpha * mu
    eb2 = alpha * mu2
    q = _rowsum(rows.d * eb2)
    kl = -lbf_model + _rowsum(eb * xtr) * rows.inv_s2 - q * (0.5 * rows.inv_s2)
    if method == "EM":
        V_em = eb2.sum(-1)
        null = rows.ll0 + check_null_threshold >= _loglik(rows, z2, V_em)
        V = _where(null, 0.0, V_em)
    return _Out(alpha=alpha, mu=mu, mu2=mu2, lbf=lbf, lbf_model=lbf_model, V=V, KL=kl, eb=eb, q=q,
                zero=zero)


def _rows_from_tensors(d: torch.Tensor, log_prior: torch.Tensor, sigma2) -> _Rows:
    s2 = torch.as_tensor(sigma2, dtype=d.dtype).reshape(-1).to(d.device)
    if s2.numel() == 1 and d.shape[0] > 1:
        s2 = s2.expand(d.shape[0])
    return _Rows(engine_array(d), engine_array(log_prior.to(d.dtype).contiguous()),
                 engine_array(s2.contiguous()))


def _as_rows(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(1, -1) if x.dim() == 1 else x


def single_effect_regression(xtr: torch.Tensor, d: torch.Tensor, V: float, sigma2: float,
                             log_prior: torch.Tensor, method: str = "none",
                             check_null_threshold: float = 0.0,
                             optimizer: str = "brent") -> SERResult:
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
    optimizer : {"brent", "newton"}
        Optimiser of the "optim" method (see the module notes).

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
    res = single_effect_regression_batch(
        _as_rows(xtr), _as_rows(d), torch.tensor([float(V)], dtype=torch.float64),
        torch.tensor([float(sigma2)], dtype=torch.float64), _as_rows(log_prior), method,
        check_null_threshold, optimizer)
    return SERResult(alpha=res.alpha[0], mu=res.mu[0], mu2=res.mu2[0], lbf=res.lbf[0],
                     lbf_model=float(res.lbf_model[0]), V=float(res.V[0]), KL=float(res.KL[0]))


def single_effect_regression_batch(xtr: torch.Tensor, d: torch.Tensor, V: torch.Tensor,
                                   sigma2: torch.Tensor, log_prior: torch.Tensor,
                                   method: str = "none", check_null_threshold: float = 0.0,
                                   optimizer: str = "brent") -> SERResult:
    """Fit B single effects at once, row i exactly as :func:`single_effect_regression` would.

    Rows may be padded: a padding variable has ``d = 0``, ``xtr = 0`` and
    ``log_prior = -inf``, which gives it ``alpha = 0``. A row gets the same bits in
    any batch whose rows have its width.

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
    optimizer : {"brent", "newton"}
        Optimiser of the "optim" method.

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
    _check_method(method, optimizer)
    d = d.contiguous()
    rows = _rows_from_tensors(d, log_prior.contiguous(), sigma2)
    x = engine_array(xtr.to(d.dtype).contiguous())
    Vt = torch.as_tensor(V, dtype=d.dtype).reshape(-1).to(d.device)
    out = _ser_rows(rows, x, engine_array(Vt), method, check_null_threshold, optimizer)
    return SERResult(alpha=as_tensor(out.alpha), mu=as_tensor(out.mu), mu2=as_tensor(out.mu2),
                     lbf=as_tensor(out.lbf), lbf_model=as_tensor(out.lbf_model),
                     V=as_tensor(out.V), KL=as_tensor(out.KL))


def optimize_prior_variance(xtr: torch.Tensor, d: torch.Tensor, sigma2: float,
                            log_prior: torch.Tensor, V: float, method: str = "optim",
                            check_null_threshold: float = 0.0,
                            alpha: torch.Tensor | None = None,
                            mu2: torch.Tensor | None = None,
                            optimizer: str = "brent") -> float:
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
    optimizer : {"brent", "newton"}
        Optimiser of the "optim" method.

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
    _check_method(method, optimizer)
    if method == "none":
        return float(V)
    d = _as_rows(d.contiguous())
    rows = _rows_from_tensors(d, _as_rows(log_prior.contiguous()), sigma2)
    x = engine_array(_as_rows(xtr).to(d.dtype).contiguous())
    z2 = x * x * rows.c
    if method == "EM":
        if alpha is None or mu2 is None:
            raise InputError("the EM update of the prior variance needs alpha and mu2")
        V = float((alpha * mu2).sum())
    elif method == "optim":
        V = _optimum(rows, z2, [float(V)], optimizer)[0]
    if float(rows.ll0[0]) + check_null_threshold >= _loglik1(rows, z2, float(V)):
        V = 0.0
    return float(V)


def _loglik1(rows: _Rows, z2, V: float) -> float:
    return float(_loglik(rows, z2, _vector([V], z2))[0])
