"""Simulated CRISPR screens with known dose-response curves.

:func:`simulate_screen` draws guides that shift a cis gene's expression, cells
whose true cis expression ``x_true`` scatters around their guide, technical groups
(e.g. cell lines) with per-feature effects, and trans features that follow a Hill
curve of ``x_true`` (activators, repressors, or flat), observed through any of the
five likelihood families. The truth is returned beside the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InputError
from .data import FAMILIES, Modality
from .hill import hill_numpy

__all__ = ["SimulatedScreen", "simulate_screen"]


@dataclass
class SimulatedScreen:
    """A simulated screen and its true parameters.

    Attributes
    ----------
    counts : pandas.DataFrame
        cells x features counts of the primary modality (cis gene first, then the
        negative-binomial trans genes when ``family="negbinom"``).
    cells : pandas.DataFrame
        Cell table: ``cell``, ``guide`` (low MOI), ``target``, ``size_factor``, ``group``.
    cis_gene : str
        Name of the cis gene.
    family : str
        Family of the trans features.
    modality : Modality or None
        The trans features when ``family`` is not ``"negbinom"``.
    guide_assignment : pandas.DataFrame or None
        High MOI: cells x guides 0/1 matrix.
    guides : pandas.DataFrame
        Guide table (``guide``, ``target``, ``log2_shift``).
    truth : dict
        ``x_true`` (cells), ``kind`` (activator/repressor/flat per feature), ``A``,
        ``V``, ``K``, ``n`` (and ``K2``, ``n2``, ``V2`` for the additive form),
        ``gate``, technical effects ``tech`` (groups x features), noise parameters,
        ``cis_phi``, ``cis_tech``.

    Examples
    --------
    >>> sim = simulate_screen(n_cells=30, n_features=4, seed=0)
    >>> sim.counts.shape, sim.trans_modality
    ((30, 5), 'counts')
    """

    counts: pd.DataFrame
    cells: pd.DataFrame
    cis_gene: str
    family: str
    modality: Modality | None
    guide_assignment: pd.DataFrame | None
    guides: pd.DataFrame
    truth: dict

    @property
    def trans_modality(self) -> str:
        """Name of the modality holding the trans features."""
        return "counts" if self.modality is None else self.modality.name

    @property
    def trans_features(self) -> list:
        """Names of the trans features."""
        return list(self.truth["features"])

    @property
    def modalities(self) -> dict:
        """Extra modalities to pass to :class:`~torchgenetics.dream.BayesDream`."""
        return {} if self.modality is None else {self.modality.name: self.modality}


def _kinds(n_features: int, frac_activator: float, frac_repressor: float) -> np.ndarray:
    n_act = int(round(frac_activator * n_features))
    n_rep = int(round(frac_repressor * n_features))
    n_flat = n_features - n_act - n_rep
    if n_flat < 0:
        raise InputError("frac_activator + frac_repressor must be <= 1")
    return np.array(["activator"] * n_act + ["repressor"] * n_rep + ["flat"] * n_flat)


def _guides(rng, n_guides: int, n_ntc: int, shift_range) -> pd.DataFrame:
    n_target = n_guides - n_ntc
    if n_target < 2 or n_ntc < 1:
        raise InputError("need at least 1 NTC guide and 2 targeting guides")
    shifts = np.concatenate([np.zeros(n_ntc), np.linspace(shift_range[0], shift_range[1], n_target)])
    names = [f"ntc_{i}" for i in range(n_ntc)] + [f"g_{i}" for i in range(n_target)]
    targets = ["ntc"] * n_ntc + ["CIS"] * n_target
    return pd.DataFrame({"guide": names, "target": targets, "log2_shift": shifts})


def simulate_screen(
    n_cells: int = 300,
    n_features: int = 20,
    family: str = "negbinom",
    *,
    form: str = "single",
    n_guides: int = 14,
    n_ntc_guides: int = 3,
    n_groups: int = 2,
    frac_activator: float = 0.4,
    frac_repressor: float = 0.3,
    high_moi: bool = False,
    moi: float = 1.5,
    cis_mean: float = 30.0,
    shift_range=(-4.0, 1.0),
    cell_sd: float = 0.25,
    tech_sd: float = 0.3,
    n_categories: int = 3,
    seed: int = 0,
) -> SimulatedScreen:
    """Simulate a screen whose trans features follow known Hill curves of x_true.

    Parameters
    ----------
    n_cells, n_features : int
        Cells and trans features.
    family : {"negbinom", "normal", "studentt", "binomial", "multinomial"}
        Observation family of the trans features.
    form : {"single", "additive"}
        One signed Hill term, or an activating plus a repressing term.
    n_guides, n_ntc_guides : int
        Guides in all, of which non-targeting.
    n_groups : int
        Technical groups (group ``line0`` is the baseline).
    frac_activator, frac_repressor : float
        Fractions of activated and repressed features; the rest are flat.
        (Multinomial features have no sign: repressors become activators.)
    high_moi : bool
        Give each cell 1 + Poisson(moi - 1) guides; their log2 shifts add up.
    moi : float
        Mean guides per cell under ``high_moi``.
    cis_mean : float
        Mean cis expression (per unit size factor) of NTC cells.
    shift_range : (float, float)
        log2 shifts of the targeting guides (evenly spaced).
    cell_sd : float
        Cell-to-cell sd of log2 x_true around the guide.
    tech_sd : float
        Sd of technical-group effects (log, additive, logit or log-ratio scale).
    n_categories : int
        Categories of multinomial features.
    seed : int
        Seed of the numpy generator.

    Returns
    -------
    SimulatedScreen

    Examples
    --------
    >>> sim = simulate_screen(n_cells=40, n_features=3, family="binomial", seed=2)
    >>> sim.modality.family, sim.modality.denominator.shape
    ('binomial', (40, 3))
    """
    if family not in FAMILIES:
        raise InputError(f"family must be one of {FAMILIES}, got {family!r}")
    if form not in ("single", "additive"):
        raise InputError(f"simulated form must be 'single' or 'additive', got {form!r}")
    if form == "additive" and family in ("binomial", "multinomial"):
        raise InputError("the additive form is simulated for negbinom, normal and studentt features")
    rng = np.random.default_rng(seed)
    guides = _guides(rng, n_guides, n_ntc_guides, shift_range)
    cell_names = [f"cell{i}" for i in range(n_cells)]
    if high_moi:
        counts_per_cell = 1 + rng.poisson(max(moi - 1.0, 0.0), n_cells)
        assign = np.zeros((n_cells, n_guides))
        for i, k in enumerate(counts_per_cell):
            assign[i, rng.choice(n_guides, size=min(k, n_guides), replace=False)] = 1.0
        shift = assign @ guides["log2_shift"].to_numpy()
    else:
        code = rng.integers(0, n_guides, n_cells)
        assign = None
        shift = guides["log2_shift"].to_numpy()[code]
    log2_x = np.log2(cis_mean) + shift + rng.normal(0, cell_sd, n_cells)
    x_true = 2.0**log2_x
    group = rng.integers(0, n_groups, n_cells)
    size_factor = np.exp(rng.normal(0, 0.2, n_cells))
    size_factor /= np.median(size_factor)

    # cis gene: negative binomial around size factor x technical effect x x_true
    cis_tech = np.concatenate([[0.0], rng.normal(0, tech_sd, n_groups - 1)])
    cis_phi = 15.0
    cis_counts = _negbinom(rng, size_factor * np.exp(cis_tech[group]) * x_true, cis_phi)

    kinds = _kinds(n_features, frac_activator, frac_repressor)
    if family == "multinomial":
        kinds = np.where(kinds == "repressor", "activator", kinds)
    truth = _trans_truth(rng, kinds, family, form, np.log(x_true), n_categories)
    tech_shape = (n_groups - 1, n_features) + ((n_categories - 1,) if family == "multinomial" else ())
    tech = np.concatenate([np.zeros((1,) + tech_shape[1:]), rng.normal(0, tech_sd, tech_shape)])
    values, denominator = _observe(rng, family, truth, x_true, tech[group], size_factor)

    features = [f"gene{j}" if family == "negbinom" else f"{family}{j}" for j in range(n_features)]
    cis_gene = "CIS"
    if family == "negbinom":
        counts = np.column_stack([cis_counts, values])
        count_names = [cis_gene] + features
        modality = None
    else:
        counts = cis_counts[:, None]
        count_names = [cis_gene]
        modality = Modality(family, family, values, features, cell_names, denominator=denominator,
                            categories=[f"c{k}" for k in range(n_categories)] if family == "multinomial" else None)
    cells = pd.DataFrame({
        "cell": cell_names,
        "size_factor": size_factor,
        "group": [f"line{g}" for g in group],
    })
    assignment = None
    if high_moi:
        assignment = pd.DataFrame(assign, index=cell_names, columns=guides["guide"].tolist())
        ntc = guides["target"].to_numpy() == "ntc"
        cells["target"] = np.where(assign[:, ~ntc].sum(axis=1) == 0, "ntc", "CIS")
    else:
        cells["guide"] = guides["guide"].to_numpy()[code]
        cells["target"] = guides["target"].to_numpy()[code]
    truth.update(
        features=features, x_true=x_true, log2_x_true=log2_x, tech=tech, cis_tech=cis_tech,
        cis_phi=cis_phi, kind=kinds, group=group,
    )
    return SimulatedScreen(
        counts=pd.DataFrame(counts, index=cell_names, columns=count_names),
        cells=cells, cis_gene=cis_gene, family=family, modality=modality,
        guide_assignment=assignment, guides=guides, truth=truth,
    )


def _negbinom(rng, mean: np.ndarray, phi) -> np.ndarray:
    rate = rng.gamma(shape=phi, scale=mean / phi)
    return rng.poisson(rate).astype(np.float64)


def _trans_truth(rng, kinds, family, form, log_x, n_categories) -> dict:
    f = len(kinds)
    lo, hi = np.quantile(log_x, [0.25, 0.75])
    K = np.exp(rng.uniform(lo, hi, f))
    mag = rng.uniform(1.5, 3.0, f)
    n = np.where(kinds == "repressor", -mag, mag)
    gate = kinds != "flat"
    truth = {"K": K, "n": n, "gate": gate}
    if family == "negbinom":
        A = rng.uniform(3.0, 10.0, f)
        V = A * rng.uniform(1.5, 3.0, f)
        truth["phi"] = rng.uniform(8.0, 20.0, f)
    elif family in ("normal", "studentt"):
        A = rng.uniform(-1.0, 1.0, f)
        V = rng.uniform(1.5, 3.0, f)
        truth["sigma"] = rng.uniform(0.4, 0.7, f)
        if family == "studentt":
            truth["df"] = np.full(f, 4.0)
    elif family == "binomial":
        A = rng.uniform(0.1, 0.3, f)
        V = (1 - A) * rng.uniform(0.4, 0.7, f)
    else:
        A = rng.dirichlet(np.full(n_categories, 3.0), f)
        # the high-x composition leans on the category that is rarest at low x
        rarest = np.eye(n_categories)[np.argmin(A, axis=1)]
        V = 0.3 * rng.dirichlet(np.full(n_categories, 3.0), f) + 0.7 * rarest - A
    V = np.where(gate[:, None] if np.ndim(V) == 2 else gate, V, 0.0)
    truth.update(A=A, V=V)
    if form == "additive":
        # a rise at low x, a fall at high x: a bump over the observed range
        q = np.quantile(log_x, [0.1, 0.4, 0.6, 0.9])
        K = np.exp(rng.uniform(q[0], q[1], f))
        K2 = np.exp(rng.uniform(q[2], q[3], f))
        truth.update(K=K, K2=K2, n2=-rng.uniform(2.0, 3.0, f), n=np.abs(n), V2=np.where(gate, 0.8 * V, 0.0))
    truth["form"] = form
    return truth


def _mean_curve(truth, x: np.ndarray) -> np.ndarray:
    """Mean of every trans feature at each x (cells x features [x categories])."""
    A, V = truth["A"], truth["V"]
    if np.ndim(A) == 2:
        h = hill_numpy(x[:, None], 0.0, 1.0, truth["K"][None], truth["n"][None])
        return A[None] + h[..., None] * V[None]
    mean = hill_numpy(x[:, None], A[None], V[None], truth["K"][None], truth["n"][None])
    if truth["form"] == "additive":
        mean = mean + hill_numpy(x[:, None], 0.0, truth["V2"][None], truth["K2"][None], truth["n2"][None])
    return mean


def _observe(rng, family, truth, x_true, tech, size_factor):
    mean = _mean_curve(truth, x_true)
    if family == "negbinom":
        return _negbinom(rng, size_factor[:, None] * np.exp(tech) * mean, truth["phi"][None]), None
    if family == "normal":
        return mean + tech + rng.normal(0, 1, mean.shape) * truth["sigma"][None], None
    if family == "studentt":
        return mean + tech + rng.standard_t(truth["df"][None], mean.shape) * truth["sigma"][None], None
    if family == "binomial":
        total = (20 + rng.poisson(20, mean.shape)).astype(np.float64)
        logit = np.log(mean) - np.log1p(-mean) + tech
        return rng.binomial(total.astype(np.int64), 1 / (1 + np.exp(-logit))).astype(np.float64), total
    shift = np.concatenate([np.zeros(tech.shape[:-1] + (1,)), tech], axis=-1)
    logits = np.log(np.clip(mean, 1e-9, None)) + shift
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    total = 20 + rng.poisson(20, mean.shape[:2])
    out = np.zeros_like(probs)
    for i in range(probs.shape[0]):
        for j in range(probs.shape[1]):
            out[i, j] = rng.multinomial(total[i, j], probs[i, j])
    return out, None
