"""Data-driven priors of the technical, cis and trans models, with counted fallbacks.

Trans (Hill) priors follow the percentiles of per-guide means of each feature:
the floor ``A`` from the 5th percentile, the amplitude ``Vmax`` from the 95th minus
the 5th; ``K`` is log-normal with mean half the largest guide-mean ``x_true`` and
the coefficient of variation of ``x_true`` (mean-preserving: ``sigma**2 =
log(1 + CV**2)``, ``mu = log(mean) - sigma**2 / 2``). Proportions get Beta and
Dirichlet forms. When there are too few guides the percentiles are taken over
cells; when a feature has no usable observation its priors are the median of the
other features, and without any usable feature the family defaults
(``A=0.1, Vmax=0.5`` for proportions, ``A=1, Vmax=10`` otherwise). Every fallback
is counted in a :class:`PriorReport`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ..errors import InputError

__all__ = [
    "PriorReport",
    "lognormal_params",
    "normalized_values",
    "group_means",
    "hill_priors",
    "baseline_priors",
    "cis_priors",
    "FAMILY_DEFAULTS",
]

# Last-resort (A, Vmax) per family kind, as in the original system.
FAMILY_DEFAULTS = {"proportion": (0.1, 0.5), "other": (1.0, 10.0)}
_EPS = 1e-3


@dataclass
class PriorReport:
    """How the priors of each feature were obtained.

    Attributes
    ----------
    n_features : int
        Features with priors.
    guide_level : int
        Priors from per-guide means (the normal case).
    overall : int
        From cell statistics: percentiles over cells when too few guides have
        enough cells (trans), or the reference cells (technical baseline).
    median_fallback : int
        No usable observation: median of the other features.
    default_fallback : int
        No usable feature at all: family defaults.
    fallback_features : list of str
        Names of features on the median or default fallbacks.

    Examples
    --------
    >>> r = PriorReport(3, guide_level=2, median_fallback=1, fallback_features=["f3"])
    >>> print(r)
    priors of 3 features: 2 from guide means, 0 from cell statistics, 1 from the median of other features, 0 from family defaults (f3)
    """

    n_features: int
    guide_level: int = 0
    overall: int = 0
    median_fallback: int = 0
    default_fallback: int = 0
    fallback_features: list = field(default_factory=list)

    def __str__(self) -> str:
        text = (
            f"priors of {self.n_features} features: {self.guide_level} from guide means, "
            f"{self.overall} from cell statistics, {self.median_fallback} from the "
            f"median of other features, {self.default_fallback} from family defaults"
        )
        if self.fallback_features:
            shown = ", ".join(self.fallback_features[:10])
            more = f", ... {len(self.fallback_features) - 10} more" if len(self.fallback_features) > 10 else ""
            text += f" ({shown}{more})"
        return text

    def to_dict(self) -> dict:
        """Plain dict for saving.

        Examples
        --------
        >>> PriorReport(1, guide_level=1).to_dict()["guide_level"]
        1
        """
        return {
            "n_features": self.n_features,
            "guide_level": self.guide_level,
            "overall": self.overall,
            "median_fallback": self.median_fallback,
            "default_fallback": self.default_fallback,
            "fallback_features": [str(f) for f in self.fallback_features],
        }

    @classmethod
    def from_dict(cls, values: dict) -> "PriorReport":
        """Inverse of :meth:`to_dict`.

        Examples
        --------
        >>> PriorReport.from_dict(PriorReport(2, overall=2).to_dict()).overall
        2
        """
        return cls(**{k: (list(v) if k == "fallback_features" else int(v)) for k, v in values.items()})


def lognormal_params(mean, cv) -> tuple[np.ndarray, np.ndarray]:
    """Location and scale of the log-normal with the given mean and coefficient of variation.

    Parameters
    ----------
    mean : array-like
        Positive means.
    cv : array-like
        Coefficients of variation (sd / mean).

    Returns
    -------
    loc, scale : numpy.ndarray
        ``scale**2 = log(1 + cv**2)``, ``loc = log(mean) - scale**2 / 2``.

    Examples
    --------
    >>> loc, scale = lognormal_params(2.0, 0.5)
    >>> round(float(np.exp(loc + scale**2 / 2)), 6)
    2.0
    """
    mean = np.asarray(mean, dtype=np.float64)
    var = np.log1p(np.asarray(cv, dtype=np.float64) ** 2)
    return np.log(mean) - var / 2, np.sqrt(var)


def normalized_values(family: str, values: np.ndarray, *, size_factor=None, denominator=None,
                      tech=None, min_denominator: float = 3.0) -> np.ndarray:
    """Observations on the scale of the curve, NaN where unusable.

    Counts are divided by size factor and technical effect; continuous values have
    the technical shift removed; binomial counts become ratios (NaN when the
    denominator is below ``min_denominator``); multinomial counts become
    proportions (NaN when the total is below ``min_denominator``).

    Parameters
    ----------
    family : str
        Likelihood family.
    values : numpy.ndarray
        cells x features (x categories).
    size_factor : numpy.ndarray, optional
        Per-cell size factors (negbinom).
    denominator : numpy.ndarray, optional
        Binomial totals.
    tech : numpy.ndarray, optional
        Per-cell technical effects on the link scale, same leading shape as ``values``
        (multinomial: categories 1..K-1).
    min_denominator : float, default 3
        Smallest total that gives a usable proportion.

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> normalized_values("binomial", np.array([[1.0, 0.0]]), denominator=np.array([[4.0, 1.0]])).tolist()
    [[0.25, nan]]
    """
    values = np.asarray(values, dtype=np.float64)
    if family == "negbinom":
        out = values / np.asarray(size_factor, dtype=np.float64)[:, None]
        return out if tech is None else out / np.exp(tech)
    if family in ("normal", "studentt"):
        return values if tech is None else values - tech
    if family == "binomial":
        den = np.asarray(denominator, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den >= min_denominator, values / den, np.nan)
    if family == "multinomial":
        total = values.sum(-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total >= min_denominator, values / total, np.nan)
    raise InputError(f"unknown family {family!r}")


def group_means(values: np.ndarray, assignment, min_cells: int = 3) -> np.ndarray:
    """Mean of each feature over the cells of each guide, ignoring NaN.

    Parameters
    ----------
    values : numpy.ndarray
        cells x features (x categories), NaN = unusable.
    assignment : scipy.sparse matrix or numpy.ndarray
        cells x guides 0/1.
    min_cells : int, default 3
        Guides with fewer usable cells give NaN.

    Returns
    -------
    numpy.ndarray
        guides x features (x categories).

    Examples
    --------
    >>> a = np.array([[1, 0], [1, 0], [0, 1]])
    >>> group_means(np.array([[1.0], [3.0], [5.0]]), a, min_cells=1).ravel().tolist()
    [2.0, 5.0]
    """
    shape = values.shape
    flat = values.reshape(shape[0], -1)
    valid = np.isfinite(flat)
    a = sp.csr_matrix(assignment, dtype=np.float64)
    sums = np.asarray(a.T @ np.where(valid, flat, 0.0))
    counts = np.asarray(a.T @ valid.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts >= min_cells, sums / counts, np.nan)
    return means.reshape((a.shape[1],) + shape[1:])


def _feature_stats(values, assignment, min_cells, min_guides):
    """Per-feature 5th/50th/95th percentiles and sd of guide means (or of cells)."""
    gm = group_means(values, assignment, min_cells) if assignment is not None else None
    n_ok = np.zeros(values.shape[1:], dtype=np.int64) if gm is None else np.isfinite(gm).sum(0)
    use_guides = n_ok >= min_guides
    with warnings.catch_warnings():
        # all-NaN features give NaN here and are filled by the fallbacks
        warnings.simplefilter("ignore", RuntimeWarning)
        cell_q = np.nanpercentile(values, [5, 50, 95], axis=0)
        cell_sd = np.nanstd(values, axis=0)
        if gm is not None:
            guide_q = np.nanpercentile(gm, [5, 50, 95], axis=0)
            guide_sd = np.nanstd(gm, axis=0)
        else:
            guide_q, guide_sd = cell_q, cell_sd
    q = np.where(use_guides[None], guide_q, cell_q)
    sd = np.where(use_guides, guide_sd, cell_sd)
    return q, sd, use_guides, gm


def _fill(values: np.ndarray, default: float, report: PriorReport | None, names, count: bool) -> np.ndarray:
    """Replace NaN by the median of finite entries, else ``default``; count what was filled."""
    values = np.array(values, dtype=np.float64)
    bad = ~np.isfinite(values)
    if not bad.any():
        return values
    finite = values[~bad]
    if finite.size:
        values[bad] = np.median(finite)
        kind = "median_fallback"
    else:
        values[bad] = default
        kind = "default_fallback"
    if count and report is not None:
        rows = np.flatnonzero(bad.reshape(bad.shape[0], -1).any(1))
        setattr(report, kind, getattr(report, kind) + len(rows))
        report.fallback_features.extend(str(names[i]) for i in rows)
    return values


def hill_priors(values: np.ndarray, family: str, assignment, x_true: np.ndarray, *,
                features=None, min_cells: int = 3, min_guides: int = 3, cv: float = 1.0) -> tuple[dict, PriorReport]:
    """Priors of the trans dose-response parameters of every feature.

    Parameters
    ----------
    values : numpy.ndarray or iterable of numpy.ndarray
        Normalised observations (:func:`normalized_values`), cells x features
        (x categories), NaN = unusable; or consecutive column blocks of them, so
        that a large screen never needs one dense cells x features matrix.
    family : str
        Likelihood family.
    assignment : scipy.sparse matrix or None
        cells x guides 0/1 (None: no guides, use cell percentiles).
    x_true : numpy.ndarray
        Cis expression of each cell.
    features : sequence of str, optional
        Names used in the report.
    min_cells : int, default 3
        Usable cells a guide needs for its mean to count.
    min_guides : int, default 3
        Guides with a usable mean a feature needs for guide-level percentiles.
    cv : float, default 1
        Coefficient of variation of the log-normal A and Vmax priors.

    Returns
    -------
    priors : dict of numpy.ndarray
        ``A_mean``, ``V_mean``, ``scale`` (sd of guide means), ``cell_sd`` (sd over
        cells) per feature (``A_mean``/``V_mean`` per category for multinomial, plus
        ``conc``), the shared ``K_loc``, ``K_scale``,
        ``x_lo``, ``x_hi`` (smallest and largest guide-mean x_true), ``log_x_center``,
        ``log_x_scale`` and ``cv``.
    report : PriorReport

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.uniform(1, 10, 90)
    >>> a = sp.csr_matrix((np.ones(90), (np.arange(90), np.arange(90) % 9)))
    >>> y = (2 + x)[:, None] + rng.normal(0, 0.1, (90, 2))
    >>> pri, rep = hill_priors(y, "normal", a, x)
    >>> rep.guide_level, pri["A_mean"].shape
    (2, (2,))
    """
    x_true = np.asarray(x_true, dtype=np.float64)
    if not (np.all(np.isfinite(x_true)) and np.all(x_true > 0)):
        raise InputError("x_true must be positive and finite for every cell")
    blocks = [values] if isinstance(values, np.ndarray) else values
    parts = []
    for block in blocks:
        block = np.asarray(block, dtype=np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            cell_sd = np.nanstd(block.reshape(block.shape[0], block.shape[1], -1).mean(-1), axis=0)
        parts.append((*_feature_stats(block, assignment, min_cells, min_guides)[:3], cell_sd, block.shape[2:]))
    q = np.concatenate([p[0] for p in parts], axis=1)
    sd = np.concatenate([p[1] for p in parts])
    use_guides = np.concatenate([p[2] for p in parts])
    cell_sd = np.concatenate([p[3] for p in parts])
    n_feat = sd.shape[0]
    names = list(features) if features is not None else [f"feature{j}" for j in range(n_feat)]
    report = PriorReport(n_feat)
    feature_guides = use_guides if use_guides.ndim == 1 else use_guides.all(-1)
    usable = np.isfinite(q[0]).reshape(n_feat, -1).all(1)
    report.guide_level = int((feature_guides & usable).sum())
    report.overall = int((~feature_guides & usable).sum())
    proportion = family in ("binomial", "multinomial")
    a_def, v_def = FAMILY_DEFAULTS["proportion" if proportion else "other"]
    A = _fill(q[0], a_def, report, names, count=True)
    V = _fill(q[2] - q[0], v_def, None, names, count=False)
    scale = _fill(sd.reshape(n_feat, -1).mean(1), 1.0, None, names, count=False)
    if family == "multinomial":
        k = parts[0][4][0]
        comp = _fill(q[1], 1.0 / k, None, names, count=False)
        comp = np.clip(comp, _EPS, None)
        comp = comp / comp.sum(-1, keepdims=True)
        priors = {"conc": comp * k, "A_mean": comp, "V_mean": np.clip(V, _EPS, None), "scale": scale}
    elif family == "binomial":
        A = np.clip(A, _EPS, 1 - _EPS)
        upper = np.clip(A + np.clip(V, _EPS, None), A + _EPS, 1 - 1e-6)
        priors = {"A_mean": A, "V_mean": upper - A, "scale": scale}
    elif family == "negbinom":
        priors = {"A_mean": np.clip(A, _EPS, None), "V_mean": np.clip(V, _EPS, None), "scale": scale}
    else:
        floor = _EPS * np.maximum(np.abs(A), 1.0)
        priors = {"A_mean": A, "V_mean": np.maximum(V, floor), "scale": np.maximum(scale, floor)}
    priors["cell_sd"] = np.where(np.isfinite(cell_sd) & (cell_sd > 0), cell_sd, 1.0)
    priors.update(_dose_priors(x_true, assignment, min_guides))
    priors["cv"] = float(cv)
    return priors, report


def _dose_priors(x_true: np.ndarray, assignment, min_guides: int) -> dict:
    """Shared K prior and the x range of the guides."""
    xg = None
    if assignment is not None:
        a = sp.csr_matrix(assignment, dtype=np.float64)
        n = np.asarray(a.sum(0)).ravel()
        with np.errstate(invalid="ignore", divide="ignore"):
            xg = np.asarray(a.T @ x_true).ravel() / n
        xg = xg[n > 0]
        if xg.size < min_guides:
            xg = None
    ref = x_true if xg is None else xg
    k_mean = 0.5 * float(ref.max())
    x_cv = float(np.std(x_true) / np.mean(x_true))
    loc, scale = lognormal_params(k_mean, max(x_cv, 0.1))
    lo, hi = (float(np.quantile(x_true, 0.05)), float(np.quantile(x_true, 0.95))) if xg is None \
        else (float(xg.min()), float(xg.max()))
    log_x = np.log(x_true)
    return {
        "K_loc": float(loc), "K_scale": float(scale), "x_lo": lo, "x_hi": hi,
        "log_x_center": float(log_x.mean()), "log_x_scale": float(max(log_x.std(), 1e-3)),
    }


def baseline_priors(values: np.ndarray, family: str, *, features=None) -> tuple[dict, PriorReport]:
    """Priors of the technical model's per-feature baseline, from reference cells.

    Parameters
    ----------
    values : numpy.ndarray
        Normalised observations (:func:`normalized_values`) of the reference cells
        (NTC cells of the baseline group), NaN = unusable.
    family : str
        Likelihood family.
    features : sequence of str, optional
        Names used in the report.

    Returns
    -------
    priors : dict
        ``mean`` (per feature; per category for multinomial) and ``scale`` (sd of the
        normalised values, per feature).
    report : PriorReport
        ``overall`` counts features with usable cells; fallbacks as in :func:`hill_priors`.

    Examples
    --------
    >>> pri, rep = baseline_priors(np.array([[1.0, np.nan], [3.0, np.nan]]), "negbinom")
    >>> pri["mean"].tolist(), rep.median_fallback
    ([2.0, 2.0], 1)
    """
    values = np.asarray(values, dtype=np.float64)
    n_feat = values.shape[1]
    names = list(features) if features is not None else [f"feature{j}" for j in range(n_feat)]
    report = PriorReport(n_feat)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(values, axis=0)
        sd = np.nanstd(values, axis=0)
    report.overall = int(np.isfinite(mean).reshape(n_feat, -1).all(1).sum())
    proportion = family in ("binomial", "multinomial")
    default = (1.0 / values.shape[2]) if family == "multinomial" else FAMILY_DEFAULTS[
        "proportion" if proportion else "other"][0]
    mean = _fill(mean, default, report, names, count=True)
    sd = _fill(sd.reshape(n_feat, -1).mean(1), 1.0, None, names, count=False)
    if family == "negbinom":
        mean = np.clip(mean, _EPS, None)
    elif family == "binomial":
        mean = np.clip(mean, _EPS, 1 - _EPS)
    elif family == "multinomial":
        mean = np.clip(mean, _EPS, None)
        mean = mean / mean.sum(-1, keepdims=True)
    return {"mean": mean, "scale": np.maximum(sd, _EPS)}, report


def cis_priors(counts: np.ndarray, size_factor: np.ndarray, assignment, *, tech=None,
               min_cells: int = 3, min_guides: int = 3) -> tuple[dict, PriorReport]:
    """Priors of the cis model: centre and spread of guide-level log2 expression.

    Parameters
    ----------
    counts : numpy.ndarray
        Cis counts per cell.
    size_factor : numpy.ndarray
        Size factors.
    assignment : scipy.sparse matrix
        cells x guides 0/1.
    tech : numpy.ndarray, optional
        Per-cell log technical effect of the cis feature.
    min_cells, min_guides : int
        As in :func:`hill_priors`.

    Returns
    -------
    priors : dict
        ``mu_mean``, ``mu_sd`` (log2 scale) and ``guide_log2`` (per-guide starting
        values, NaN-free).
    report : PriorReport
        One "feature": guide-level or overall.

    Examples
    --------
    >>> a = sp.csr_matrix(np.repeat(np.eye(3), 4, axis=0))
    >>> pri, rep = cis_priors(np.repeat([4.0, 8.0, 16.0], 4), np.ones(12), a)
    >>> round(pri["mu_mean"], 3), rep.guide_level
    (3.101, 1)
    """
    norm = normalized_values("negbinom", np.asarray(counts, dtype=np.float64)[:, None],
                             size_factor=size_factor, tech=None if tech is None else np.asarray(tech)[:, None])
    log2 = np.log2(norm[:, 0] + 0.5)
    report = PriorReport(1)
    gm = group_means(norm, assignment, min_cells)[:, 0]
    ok = np.isfinite(gm)
    if ok.sum() >= min_guides:
        lg = np.log2(gm[ok] + 0.5)
        mu_mean, mu_sd = float(lg.mean()), float(max(lg.std(), 0.5))
        report.guide_level = 1
    else:
        mu_mean, mu_sd = float(log2.mean()), float(max(log2.std(), 0.5))
        report.overall = 1
    guide_log2 = np.where(ok, np.log2(np.where(ok, gm, 1.0) + 0.5), mu_mean)
    if not math.isfinite(mu_mean):
        raise InputError("the cis feature has no usable counts")
    return {"mu_mean": mu_mean, "mu_sd": mu_sd, "guide_log2": guide_log2}, report
