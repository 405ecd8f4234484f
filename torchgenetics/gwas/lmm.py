"""Mixed-model GWAS: the BOLT-LMM-inf / GRAMMAR-gamma score test with LOCO kernels.

With ``V = s2g K + s2e I`` from a REML fit, covariates ``C`` (intercept included)
and ``P = V^-1 - V^-1 C (C'V^-1 C)^-1 C'V^-1``, the score statistic of a variant
``x`` is ``chi2 = (x'Py)^2 / (x'Px)``. ``Py`` comes from block PCG on the covariate-projected
system ``(MVM) u = My`` (``M = I - QQ'``; no solve for the covariates, ``V^-1`` never
formed), all LOCO kernels solved jointly (one genotype pass per iteration), so the
numerator of every variant comes from one more pass over the genotypes. The denominator would need a solve per
variant; instead ``x'Px = gamma x~'x~`` with ``x~`` the covariate-residualized
genotype and ``gamma`` the mean of ``x'Px / x~'x~`` over a seeded random subset of
variants (GRAMMAR-gamma; BOLT-LMM's calibration of its infinitesimal statistic).

Leave-one-chromosome-out (LOCO): the variants of chromosome ``c`` are tested with
the kernel of all other chromosomes (``V_{-c}``, its own ``Py`` and ``gamma``), so
a variant's own effect is not absorbed into the polygenic term.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError, PhenotypeError
from .blocks import block_threads, centred_products
from .covariance import LocoCovariance
from .design import as_covariates, as_phenotypes, covariate_basis
from .marginal import variant_table
from .pvalues import chi2_log10_pvalue, chi2_pvalue
from .result import GWASResult

__all__ = ["lmm_gwas", "calibration_variants"]

# Label of the whole-genome kernel (no chromosome left out).
_WHOLE = "genome"


def calibration_variants(labels: np.ndarray, candidates: np.ndarray, total: int, minimum: int = 3,
                         seed=0) -> dict:
    """Random variants per kernel for the calibration ratio.

    Parameters
    ----------
    labels : numpy.ndarray of str
        Kernel label of each candidate (its chromosome under LOCO).
    candidates : numpy.ndarray of int
        Positions eligible (polymorphic, tested).
    total : int
        Variants overall, split over the kernels in proportion to their candidates.
    minimum : int, default 3
        At least this many per kernel (when it has them).
    seed : int

    Returns
    -------
    dict
        Kernel label -> sorted int64 positions, labels in order of first appearance.

    Examples
    --------
    >>> labels = np.array(["1"] * 10 + ["2"] * 10)
    >>> picks = calibration_variants(labels, np.arange(20), total=6, seed=0)
    >>> [len(v) for v in picks.values()]
    [3, 3]
    """
    rng = np.random.default_rng(seed)
    out = {}
    for label in dict.fromkeys(labels.tolist()):
        pool = candidates[labels == label]
        share = max(minimum, int(round(total * pool.size / max(candidates.size, 1))))
        out[label] = np.sort(rng.choice(pool, size=min(share, pool.size), replace=False)).astype(np.int64)
    return out


def _residualized(genotypes, positions: np.ndarray, Q: torch.Tensor, device, dtype) -> torch.Tensor:
    """Mean-imputed, centred genotypes of some variants with the covariates projected out."""
    X = torch.as_tensor(genotypes.read(variants=positions), dtype=dtype, device=device)
    Xc = torch.nan_to_num(X - torch.nanmean(X, dim=0), nan=0.0)
    return Xc - Q @ (Q.T @ Xc)


def lmm_gwas(genotypes, y, covariates=None, *, fit=None, loco: bool = True, n_calibration: int = 30,
             phenotype_name=None, covariate_names=None, variants=None, model_variants=None,
             precond_rank: int = 64,
             cg_tol: float = 1e-7, cg_max_iter: int = 1000, block_size=None, seed=0, device=None,
             dtype=torch.float64, reml_options=None, verbose: bool = False) -> GWASResult:
    """Mixed-model association test (score test with a calibrated denominator, LOCO).

    Parameters
    ----------
    genotypes : Genotypes
        Samples in the order of ``y``; every polymorphic variant enters the GRM.
    y : array-like, torch.Tensor or Series
        ``(n,)`` phenotype without missing values (drop those samples first).
    covariates : array-like, torch.Tensor or DataFrame, optional
        ``(n, c)``; an intercept is added unless a constant column is present.
    fit : REMLFit, optional
        Variance components to use (e.g. ``REMLFit.load("fit.h5")``) from a fit on
        these samples; its genetic variance is ``sum_g s2_g tr(K_g)/n``. Default:
        fit REML here on the GRM of all variants with the same covariates.
    loco : bool, default True
        Leave the tested variant's chromosome out of the kernel (needs GRM variants
        on at least two chromosomes; with one, a warning is given and the
        whole-genome kernel is used).
    n_calibration : int, default 30
        Random variants for the calibration ratio ``gamma`` (at least 3 per chromosome).
    phenotype_name : str, optional
    covariate_names : list of str, optional
    variants : index array, slice or mask, optional
        Variants to test (default all).
    model_variants : index array, slice or mask, optional
        Variants of the GRM (BOLT-LMM's model SNPs; default all). Tested variants on
        a chromosome outside the GRM are tested with the whole GRM.
    precond_rank : int, default 64
        Rank of the projected-core PCG preconditioner.
    cg_tol, cg_max_iter : float, int
        Block PCG tolerance and iteration cap.
    block_size : int, optional
        Variants per streamed block.
    seed : int
        Seeds the calibration subset, the preconditioner and the REML probes.
    device, dtype : optional
        Default CPU, float64.
    reml_options : dict, optional
        Extra arguments of :func:`torchgenetics.reml.reml` when ``fit`` is None.
    verbose : bool, default False
        Progress bar over the variant blocks.

    Returns
    -------
    GWASResult
        ``method="lmm"``; ``stat`` holds the 1-df ``CHISQ``; ``beta = x'Py / x'Px``
        and ``se = 1 / sqrt(x'Px)`` per allele. ``info`` records the variance
        components, ``gamma`` and calibration variants per chromosome, and PCG
        iterations.

    Raises
    ------
    PhenotypeError
        Missing values in ``y``.
    InputError
        A ``fit`` made on a different number of samples.

    Examples
    --------
    >>> from torchgenetics.datasets import simulate_genotypes, simulate_phenotype
    >>> sim = simulate_genotypes(300, 200, chromosomes=2, seed=0)
    >>> ph = simulate_phenotype(sim, h2=0.5, n_causal=20, seed=1)
    >>> res = lmm_gwas(sim.to_genotypes(), ph.y, precond_rank=20)
    >>> res.method, list(res.info["gamma"])
    ('lmm', ['1', '2'])
    """
    model = _model(genotypes, y, covariates, phenotype_name, covariate_names, loco, model_variants, device,
                   dtype, stacklevel=3)
    fit = _variance_fit(fit, model.cov, model.y, model.C, model.cnames, seed, reml_options)
    plan = _plan(genotypes, model, fit, variants, n_calibration, precond_rank, seed)
    calib = _calibrate(genotypes, model, plan.picks, cg_tol, cg_max_iter)
    info = _info(genotypes, model, fit, plan, calib, list(model.cov.cg_iterations))
    return _tests(genotypes, model, plan, calib, info, slice(None), block_size, verbose)


@dataclass
class _Model:
    """Phenotype, covariates and covariance of one mixed-model scan (on its device)."""

    names: list
    cnames: list
    y: torch.Tensor
    C: torch.Tensor
    Q: torch.Tensor
    cov: LocoCovariance
    loco: bool
    device: torch.device
    dtype: torch.dtype


@dataclass
class _Plan:
    """Variance components, tested variants, their kernels and the calibration variants."""

    genetic: float
    residual: float
    tested: np.ndarray
    labels: np.ndarray
    picks: dict


def _model(genotypes, y, covariates, phenotype_name, covariate_names, loco, model_variants, device, dtype,
           stacklevel, covariance=LocoCovariance) -> _Model:
    """Check the phenotype, build the covariate basis and the (LOCO) ``covariance``."""
    n = genotypes.n_samples
    Y, names = as_phenotypes(y, n, None if phenotype_name is None else [phenotype_name])
    if Y.shape[1] != 1:
        raise InputError(f"lmm_gwas tests one phenotype at a time, got {Y.shape[1]} columns")
    if np.isnan(Y).any():
        raise PhenotypeError(f"phenotype {names[0]!r} has {int(np.isnan(Y).sum())} missing values; "
                             "drop those samples (e.g. with torchgenetics.io.align) before the mixed model")
    Cn, cnames = as_covariates(covariates, n, covariate_names)
    device = torch.device("cpu" if device is None else device)
    C = torch.as_tensor(Cn, dtype=dtype, device=device)
    yt = torch.as_tensor(Y[:, 0], dtype=dtype, device=device)
    Q = covariate_basis(C, cnames)
    cov = covariance(genotypes, loco=loco, device=device, dtype=dtype, variants=model_variants)
    if loco and len(cov.groups) < 2:
        warnings.warn("leave-one-chromosome-out needs GRM variants on at least two chromosomes; "
                      "using the whole-genome kernel", RuntimeWarning, stacklevel=stacklevel)
        loco = False
        cov = covariance(genotypes, loco=False, device=device, dtype=dtype, variants=model_variants)
    return _Model(names, cnames, yt, C, Q, cov, bool(loco), device, dtype)


def _plan(genotypes, model: _Model, fit, variants, n_calibration, precond_rank, seed) -> _Plan:
    """Fix the variances (and preconditioner), label the tested variants, pick calibration variants."""
    genetic = float((fit.variances[:-1] * fit.trace_scale).sum())
    residual = float(fit.variances[-1])
    model.cov.set_variances(genetic, residual, rank=precond_rank, seed=seed)
    chrom = genotypes.variants["chrom"].astype(str).to_numpy()
    tested = np.arange(genotypes.n_variants)
    tested = np.asarray(tested[variants] if variants is not None else tested, dtype=np.int64)
    # kernel of each tested variant: its chromosome left out (LOCO), else the whole GRM
    labels = np.where(np.isin(chrom[tested], model.cov.groups), chrom[tested], _WHOLE) if model.loco else \
        np.full(tested.size, _WHOLE, dtype=object)
    labels = labels.astype(object)
    poly = genotypes.stats.polymorphic[tested]
    if not poly.any():
        raise InputError("none of the variants to test is polymorphic")
    picks = calibration_variants(labels[poly], tested[poly], n_calibration, seed=seed)
    return _Plan(genetic, residual, tested, labels, picks)


def _calibrate(genotypes, model: _Model, picks: dict, cg_tol, cg_max_iter) -> dict:
    """``Py``, ``gamma`` and the calibration ratios of every kernel (dict label -> triple), one joint solve."""
    Q, dtype, device = model.Q, model.dtype, model.device
    # one joint projected PCG solve for every kernel: [y~ | calibration x~] -> [Py | Px]
    y_res = model.y - Q @ (Q.T @ model.y)
    X_res = {label: _residualized(genotypes, chosen, Q, device, dtype) for label, chosen in picks.items()}
    rhs = {None if label == _WHOLE else label: torch.cat([y_res.unsqueeze(1), X_res[label]], dim=1)
           for label in picks}
    solved = model.cov.solve_loco(rhs, tol=cg_tol, max_iter=cg_max_iter, project=Q)
    out = {}
    for label in picks:
        S = solved[None if label == _WHOLE else label]
        ratio = (X_res[label] * S[:, 1:]).sum(0) / X_res[label].square().sum(0)
        out[label] = (S[:, 0], float(ratio.mean()), ratio.cpu().numpy())
    return out


def _info(genotypes, model: _Model, fit, plan: _Plan, calib: dict, cg_iterations: list) -> dict:
    """The result's ``info``: variances, kernels, calibration and solver record."""
    keys = list(plan.picks)
    genetic, residual = plan.genetic, plan.residual
    return {
        "genetic_variance": genetic, "residual_variance": residual, "h2": genetic / (genetic + residual),
        "loco": model.loco, "kernels": keys, "gamma": {k: calib[k][1] for k in keys},
        "calibration_variants": {k: table_ids(genotypes, plan.picks[k]) for k in keys},
        "calibration_ratios": {k: calib[k][2].tolist() for k in keys},
        "cg_iterations": list(cg_iterations), "reml_method": fit.method,
        "reml_converged": bool(fit.converged), "n_calibration": int(sum(len(v) for v in plan.picks.values())),
        "n_model_variants": int(sum(model.cov.stack.m_eff)),
    }


def _tests(genotypes, model: _Model, plan: _Plan, calib: dict, info: dict, part: slice, block_size,
           verbose) -> GWASResult:
    """Score tests of the tested variants ``plan.tested[part]`` (``calib`` holds every kernel)."""
    keys = list(plan.picks)
    lookup = {k: i for i, k in enumerate(keys)}
    tested = plan.tested[part]
    group_of = np.array([lookup.get(k, -1) for k in plan.labels[part]], dtype=np.int64)
    py = {k: calib[k][0] for k in keys}
    gamma = {k: calib[k][1] for k in keys}
    stats = _scan(genotypes, tested, group_of, keys, py, gamma, model.Q, block_size, model.device, model.dtype,
                  verbose)
    return GWASResult(variants=variant_table(genotypes, tested), phenotypes=model.names, method="lmm",
                      covariate_names=model.cnames, n_samples=np.array([genotypes.n_samples], dtype=np.int64),
                      info=info, **stats)


def table_ids(genotypes, positions) -> list[str]:
    """Variant IDs at some positions (for the result's ``info``).

    Examples
    --------
    >>> from torchgenetics.genotypes import Genotypes
    >>> table_ids(Genotypes.from_array([[0, 1, 2]]), [2])
    ['v2']
    """
    return [str(v) for v in genotypes.variants["id"].to_numpy()[np.asarray(positions, dtype=np.int64)]]


def _variance_fit(fit, cov, y, C, cnames, seed, reml_options):
    """The REML fit to take variances from: given (checked) or fitted on the full kernel."""
    from ..reml import REMLFit, reml

    if fit is not None:
        if not isinstance(fit, REMLFit):
            raise InputError(f"fit must be a REMLFit (e.g. REMLFit.load(path)), got {type(fit).__name__}")
        if fit.n != cov.n:
            raise InputError(f"the REML fit was made on {fit.n} samples but the association test has "
                             f"{cov.n}; fit REML on the same samples (after the same filters)")
        return fit
    options = {"seed": seed, **(reml_options or {})}
    return reml(y, {"GRM": cov.kernel(None)}, covariates=C, covariate_names=cnames, **options)


def _scan(genotypes, tested, group_of, groups, py, gamma, Q, block_size, device, dtype, verbose):
    """Stream the tested variants: numerators ``x'Py`` and calibrated denominators."""
    G, p = len(groups), Q.shape[1]
    W = torch.cat([torch.stack([py[g] for g in groups], dim=1), Q], dim=1)
    gam = torch.as_tensor([gamma[g] for g in groups], dtype=dtype, device=device)
    m = tested.size
    count, mean, num, den = (np.zeros(m) for _ in range(4))
    start = 0
    with block_threads(device):
        for _, X in genotypes.blocks(block_size=block_size, device=device, dtype=dtype,
                                     standardize=False, variants=tested, verbose=verbose):
            stop = start + X.shape[1]
            c = centred_products(X, W)
            own = torch.as_tensor(group_of[start:stop], device=device)
            own = own.clamp_min(0)  # -1: no polymorphic variant in that kernel group (nothing to test)
            xpy = c.xw[:, :G].gather(1, own.unsqueeze(1)).squeeze(1)
            qx = c.xw[:, G:G + p]
            xtx = c.xx - qx.square().sum(1)
            count[start:stop] = c.count.cpu().numpy()
            mean[start:stop] = c.mean.cpu().numpy()
            num[start:stop] = xpy.cpu().numpy()
            den[start:stop] = (gam[own] * xtx).cpu().numpy()
            start = stop
    const = ~(den > 1e-10 * np.maximum(count, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        chi2 = np.where(const, np.nan, num**2 / den)
        beta = np.where(const, np.nan, num / den)
        se = np.where(const, np.nan, 1.0 / np.sqrt(den))
    col = lambda a: np.asarray(a, dtype=np.float64).reshape(m, 1)  # noqa: E731
    return {
        "a1_freq": col(mean / 2), "obs_ct": count.astype(np.int64).reshape(m, 1), "beta": col(beta),
        "se": col(se), "stat": col(chi2), "p": col(chi2_pvalue(chi2)), "log10_p": col(chi2_log10_pvalue(chi2)),
        "errcode": np.where(const, "CONST_OMITTED_ALLELE", ".").astype(object).reshape(m, 1),
    }

