"""Sparse REML + LASSO: large-effect variants as fixed effects on top of a polygenic REML model.

The penalized GLS problem of the GPU_REML seed,

    min_{a, b} 1/2 (y - C a - Z_S b)' V^-1 (y - C a - Z_S b) + lambda |b|_1,

with ``V = s2g K + s2e I`` from REML and ``Z`` standardized genotypes, is solved as
follows (:func:`sparse_reml`):

1. REML with the current support as fixed effects (none at first) gives ``V``.
2. Screening: ``|Z'Py|`` for every variant in one genotype pass (``P`` profiles out
   the covariates); the ``n_screen`` largest, plus the current support, are the
   candidates ``S``.
3. ``V^-1 Z_S`` by block PCG (or Cholesky for small n) gives the whitened Gram
   matrix ``H = Z_S'PZ_S`` and ``g = Z_S'Py``; coordinate descent with active sets
   and KKT checks solves the LASSO along a lambda path from ``max |g|`` down
   (:mod:`torchgenetics.gwas.lasso`), and EBIC (on the GLS refit of each support)
   picks lambda.
4. If the chosen support differs from the current one, it becomes the fixed
   effects of the next REML fit (step 1); otherwise the support is stable and the
   last REML fit (support as fixed effects) is the answer.

``whiten=False`` runs the same path with ``V = s2 I`` (plain LASSO on the
covariate-residualized data, ``s2`` the OLS residual variance), the comparison
that shows what the whitening buys.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import pandas as pd
import torch

from ..errors import InputError, PhenotypeError
from ..io.store import load_h5, save_h5
from .blocks import block_threads
from .covariance import LocoCovariance
from .design import as_covariates, as_phenotypes, covariate_basis
from .lasso import ebic, lambda_grid, lasso_path, refit_rss
from .pvalues import chi2_log10_pvalue, chi2_pvalue

__all__ = ["sparse_reml", "SparseREMLFit"]

_FORMAT = "SparseREMLFit"


@dataclass
class SparseREMLFit:
    """Selected large-effect variants, their effects, the LASSO path and the final variances.

    Attributes
    ----------
    support : numpy.ndarray of int64
        Positions (in the genotypes) of the selected variants.
    variants : pandas.DataFrame
        ``chrom, id, pos, a1, a2`` of the selected variants.
    lasso_effect : numpy.ndarray
        LASSO coefficients at the chosen lambda (standardized-genotype scale).
    beta, beta_se : numpy.ndarray
        GLS effects (OLS with ``whiten=False``) and standard errors of the
        selected variants as fixed effects in the final model (standardized scale).
    sd : numpy.ndarray
        Genotype standard deviations (``beta / sd`` is the effect per allele).
    candidates : numpy.ndarray of int64
        Screened variants of the last LASSO path.
    lambdas, path_df, path_rss, path_ebic : numpy.ndarray
        The last path: penalties, support sizes, whitened RSS of the GLS refit on
        each support, and EBIC.
    path_coef : numpy.ndarray
        (L, s) coefficients of the candidates along the last path.
    chosen : int
        Index of the EBIC-chosen lambda.
    variance_names : list of str
    variances : numpy.ndarray
        Final variance components (genetic ..., residual).
    h2 : float
        Heritability of the polygenic term in the final model (0 without whitening).
    reml : dict
        The final :class:`~torchgenetics.reml.REMLFit` as a dict (empty without whitening).
    n_outer : int
        REML/LASSO rounds run.
    converged : bool
        Whether the support was stable before ``max_outer`` rounds.
    history : list of dict
        Per round: support IDs, chosen lambda, EBIC, variances.
    n : int
        Samples.
    n_candidates : int
        Polymorphic variants (the ``M`` of EBIC).
    settings : dict
        Options the fit ran with.

    Examples
    --------
    >>> fit = _example()
    >>> fit.to_frame().columns.tolist()[:4]
    ['CHROM', 'ID', 'POS', 'A1']
    """

    support: np.ndarray
    variants: pd.DataFrame
    lasso_effect: np.ndarray
    beta: np.ndarray
    beta_se: np.ndarray
    sd: np.ndarray
    candidates: np.ndarray
    lambdas: np.ndarray
    path_df: np.ndarray
    path_rss: np.ndarray
    path_ebic: np.ndarray
    path_coef: np.ndarray
    chosen: int
    variance_names: list
    variances: np.ndarray
    h2: float
    reml: dict
    n_outer: int
    converged: bool
    history: list
    n: int
    n_candidates: int
    settings: dict = field(default_factory=dict)

    @property
    def lambda_(self) -> float:
        """The EBIC-chosen penalty.

        Examples
        --------
        >>> fit = _example()
        >>> bool(fit.lambda_ == fit.lambdas[fit.chosen])
        True
        """
        return float(self.lambdas[self.chosen])

    def to_frame(self) -> pd.DataFrame:
        """The selected variants with their effects.

        Returns
        -------
        pandas.DataFrame
            ``CHROM ID POS A1 A2 LASSO_BETA BETA SE P LOG10_P BETA_ALLELE SE_ALLELE``
            (``A1`` the counted allele; ``BETA``/``SE`` on the standardized scale).

        Examples
        --------
        >>> len(_example().to_frame()) >= 1
        True
        """
        z2 = (self.beta / self.beta_se) ** 2
        v = self.variants
        return pd.DataFrame({
            "CHROM": v["chrom"].to_numpy(), "ID": v["id"].to_numpy(), "POS": v["pos"].to_numpy(),
            "A1": v["a1"].to_numpy(), "A2": v["a2"].to_numpy(), "LASSO_BETA": self.lasso_effect,
            "BETA": self.beta, "SE": self.beta_se, "P": chi2_pvalue(z2), "LOG10_P": chi2_log10_pvalue(z2),
            "BETA_ALLELE": self.beta / self.sd, "SE_ALLELE": self.beta_se / self.sd,
        })

    def path_frame(self) -> pd.DataFrame:
        """The last lambda path: ``lambda, df, rss, ebic, chosen``.

        Examples
        --------
        >>> int(_example().path_frame()["chosen"].sum())
        1
        """
        chosen = np.zeros(len(self.lambdas), dtype=bool)
        chosen[self.chosen] = True
        return pd.DataFrame({"lambda": self.lambdas, "df": self.path_df, "rss": self.path_rss,
                             "ebic": self.path_ebic, "chosen": chosen})

    def summary(self) -> str:
        """A short report.

        Examples
        --------
        >>> _example().summary().startswith("sparse REML")
        True
        """
        state = "stable support" if self.converged else "support NOT stable"
        kind = "whitened (GLS)" if self.settings.get("whiten", True) else "unwhitened (OLS)"
        lines = [f"sparse REML + LASSO, {kind}: n = {self.n}, {self.n_candidates} variants, "
                 f"{len(self.support)} selected, {self.n_outer} rounds ({state})",
                 f"  lambda = {self.lambda_:.4g} (EBIC gamma {self.settings.get('ebic_gamma')}), "
                 f"h2 (polygenic) = {self.h2:.4f}, variances "
                 + ", ".join(f"{k} {v:.4g}" for k, v in zip(self.variance_names, self.variances, strict=True))]
        if len(self.support):
            lines.append(self.to_frame()[["ID", "BETA", "SE", "P"]].to_string(index=False))
        return "\n".join(lines)

    def save(self, path) -> None:
        """Write the fit to HDF5 (:meth:`load` reads it back).

        Examples
        --------
        >>> import tempfile, os
        >>> f = os.path.join(tempfile.mkdtemp(), "sparse.h5")
        >>> fit = _example(); fit.save(f)
        >>> SparseREMLFit.load(f).support.tolist() == fit.support.tolist()
        True
        """
        data = asdict(self)
        data["variants"] = self.variants.reset_index(drop=True)
        save_h5(path, data, format_name=_FORMAT)

    @classmethod
    def load(cls, path) -> "SparseREMLFit":
        """Read a fit written by :meth:`save`.

        Examples
        --------
        See :meth:`save`.
        """
        data = load_h5(path, format_name=_FORMAT)
        missing = [f.name for f in fields(cls) if f.name not in data]
        if missing:
            raise InputError(f"{path}: SparseREMLFit file lacks fields {missing}")
        for name in ("support", "lasso_effect", "beta", "beta_se", "sd", "candidates", "lambdas",
                     "path_df", "path_rss", "path_ebic", "path_coef", "variances"):
            data[name] = np.asarray(data[name])
        data["variance_names"] = list(data["variance_names"])
        return cls(**{f.name: data[f.name] for f in fields(cls)})

    def reml_fit(self):
        """The final REML fit as a :class:`~torchgenetics.reml.REMLFit` (None without whitening).

        Examples
        --------
        >>> _example().reml_fit().converged
        True
        """
        from ..reml import REMLFit

        if not self.reml:
            return None
        known = {f.name for f in fields(REMLFit)}
        return REMLFit(**{k: v for k, v in self.reml.items() if k in known})


class _Identity:
    """``V = s2 I`` with the interface of :class:`LocoCovariance` (the unwhitened LASSO)."""

    def __init__(self, n, dtype, device):
        self.n, self.dtype, self.device = n, dtype, device
        self.residual = 1.0

    def set_variances(self, genetic, residual, rank=0, seed=0):
        self.residual = float(residual)

    def solve(self, B, leave_out=None, tol=None, max_iter=None):
        return B / self.residual


def _projections(cov, C, y, tol):
    """``Py``, ``y'Py`` and ``V^-1 C (C'V^-1C)^-1`` factors for the current V."""
    S = cov.solve(torch.cat([C, y.unsqueeze(1)], dim=1), tol=tol)
    vc, vy = S[:, :-1], S[:, -1]
    L = torch.linalg.cholesky(0.5 * (C.T @ vc + vc.T @ C))
    coef = torch.cholesky_solve((C.T @ vy).unsqueeze(1), L).squeeze(1)
    py = vy - vc @ coef
    return py, float(y @ py), vc, L


def _screen(genotypes, py, n_screen, keep, device, dtype):
    """Top ``n_screen`` polymorphic variants by ``|z'Py|``, plus ``keep``; sorted."""
    idx, score = [], []
    with block_threads(device):
        for pos, Z in genotypes.blocks(device=device, dtype=dtype):
            idx.append(pos)
            score.append((Z.T @ py).abs().cpu().numpy())
    idx, score = np.concatenate(idx), np.concatenate(score)
    top = idx[np.argsort(-score, kind="stable")[:n_screen]]
    return np.union1d(top, keep).astype(np.int64)


def _gram(cov, Zs, vc, L, py, tol):
    """Whitened Gram ``Z'PZ`` and ``Z'Py`` of the candidates."""
    vz = cov.solve(Zs, tol=tol)
    cz = vc.T @ Zs
    H = Zs.T @ vz - cz.T @ torch.cholesky_solve(cz, L)
    return 0.5 * (H + H.T), Zs.T @ py


def _fixed_fit(y, C, cnames, Zsup, names, kernel, whiten, init, reml_options, seed):
    """REML (or OLS) with the support as fixed effects: variances, effects of the support."""
    X = torch.cat([C, Zsup], dim=1)
    if whiten:
        from ..reml import reml

        fit = reml(y, {"GRM": kernel}, covariates=X, covariate_names=cnames + names, init=init,
                   **{"seed": seed, **(reml_options or {})})
        sel = [fit.covariate_names.index(nm) for nm in names]
        genetic = float((fit.variances[:-1] * fit.trace_scale).sum())
        return (fit, genetic, float(fit.variances[-1]), fit.beta[sel].numpy(), fit.beta_se[sel].numpy(),
                float(fit.h2_total))
    Q = covariate_basis(X, cnames + names)
    resid = y - Q @ (Q.T @ y)
    s2 = float(resid @ resid) / (X.shape[0] - X.shape[1])
    beta = torch.linalg.lstsq(X, y.unsqueeze(1), driver="gelsd").solution.squeeze(1)
    XtX_inv = torch.cholesky_inverse(torch.linalg.cholesky(X.T @ X))
    se = (s2 * XtX_inv.diagonal()).sqrt()
    k = Zsup.shape[1]
    return None, 0.0, s2, beta[-k:].numpy() if k else np.zeros(0), se[-k:].numpy() if k else np.zeros(0), 0.0


def sparse_reml(genotypes, y, covariates=None, *, n_screen: int = 200, n_lambda: int = 40,
                lambda_min_ratio: float = 0.01, ebic_gamma: float = 0.5, max_outer: int = 5,
                max_support: int = 100, whiten: bool = True, method: str = "auto",
                precond_rank: int = 64, cg_tol: float = 1e-8, phenotype_name=None,
                covariate_names=None, reml_options=None, seed=0, device=None,
                dtype=torch.float64, verbose: bool = False) -> SparseREMLFit:
    """Sparse REML + LASSO: select large-effect variants under a polygenic (REML) background.

    Parameters
    ----------
    genotypes : Genotypes
        Samples in the order of ``y``; standardized by their own statistics.
    y : array-like, torch.Tensor or Series
        ``(n,)`` phenotype without missing values.
    covariates : array-like, torch.Tensor or DataFrame, optional
        Unpenalized covariates; an intercept is added unless a constant column is present.
    n_screen : int, default 200
        Candidates kept by the ``|Z'Py|`` screen in each round.
    n_lambda, lambda_min_ratio : int, float
        The path: ``n_lambda`` log-spaced penalties from ``max |Z_S'Py|`` down to
        ``lambda_min_ratio`` of it.
    ebic_gamma : float, default 0.5
        EBIC's gamma (0: BIC).
    max_outer : int, default 5
        REML/LASSO rounds before giving up on a stable support.
    max_support : int, default 100
        Stop each path once more variants than this are selected.
    whiten : bool, default True
        Use ``V`` from REML (the penalized GLS); False runs the plain LASSO
        (``V = s2 I``) for comparison.
    method : {"auto", "cg", "exact"}
        How ``V^-1`` is applied: block PCG, dense Cholesky, or by sample size.
    precond_rank : int, default 64
        PCG preconditioner rank.
    cg_tol : float, default 1e-8
    phenotype_name : str, optional
    covariate_names : list of str, optional
    reml_options : dict, optional
        Extra arguments of :func:`torchgenetics.reml.reml`.
    seed : int
    device, dtype : optional
    verbose : bool, default False
        Print one line per round.

    Returns
    -------
    SparseREMLFit

    Raises
    ------
    PhenotypeError
        Missing values in ``y``.

    Examples
    --------
    >>> from torchgenetics.datasets import simulate_genotypes, simulate_phenotype
    >>> sim = simulate_genotypes(400, 300, chromosomes=2, seed=0)
    >>> ph = simulate_phenotype(sim, h2=0.4, causal=[30, 200], seed=1)
    >>> fit = sparse_reml(sim.to_genotypes(), ph.y, n_screen=50)
    >>> len(fit.support), 30 in fit.support.tolist()   # 200 is tagged by a neighbour in LD
    (2, True)
    """
    n = genotypes.n_samples
    Y, _ = as_phenotypes(y, n, None if phenotype_name is None else [phenotype_name])
    if Y.shape[1] != 1 or np.isnan(Y).any():
        raise PhenotypeError("sparse_reml needs one phenotype without missing values (drop those samples first)")
    for name, value, ok in (("n_screen", n_screen, n_screen >= 1), ("max_outer", max_outer, max_outer >= 1)):
        if not ok:
            raise InputError(f"{name} must be >= 1, got {value}")
    Cn, cnames = as_covariates(covariates, n, covariate_names)
    device = torch.device("cpu" if device is None else device)
    C = torch.as_tensor(Cn, dtype=dtype, device=device)
    yt = torch.as_tensor(Y[:, 0], dtype=dtype, device=device)
    stats = genotypes.stats
    n_candidates = int(stats.polymorphic.sum())
    ids = genotypes.variants["id"].astype(str).to_numpy()
    if whiten:
        cov = LocoCovariance(genotypes, loco=False, device=device, dtype=dtype, method=method)
        kernel = cov.kernel(None)
    else:
        cov, kernel = _Identity(n, dtype, device), None

    support = np.zeros(0, dtype=np.int64)
    history, fit, converged = [], None, False
    for round_ in range(1, max_outer + 1):
        Zsup = genotypes.standardized(variants=support, device=device, dtype=dtype)
        fixed = _fixed_fit(yt, C, cnames, Zsup, [f"variant:{v}" for v in support], kernel, whiten,
                           fit, reml_options, seed)
        fit, genetic, residual = fixed[:3]
        cov.set_variances(genetic, residual, rank=precond_rank, seed=seed)
        py, ypy, vc, L = _projections(cov, C, yt, cg_tol)
        cand = _screen(genotypes, py, n_screen, support, device, dtype)
        Zs = genotypes.standardized(variants=cand, device=device, dtype=dtype)
        H, g = _gram(cov, Zs, vc, L, py, cg_tol)
        Hn, gn = H.cpu().numpy(), g.cpu().numpy()
        path = lasso_path(Hn, gn, lambda_grid(gn, n_lambda, lambda_min_ratio), ypy=ypy, max_df=max_support)
        rss = refit_rss(Hn, gn, path.coef, ypy)
        crit = ebic(rss, path.df, n, n_candidates, ebic_gamma)
        chosen = int(np.argmin(crit))
        new = cand[path.coef[chosen] != 0]
        history.append({"round": round_, "support": ids[new].tolist(), "lambda": float(path.lambdas[chosen]),
                        "ebic": float(crit[chosen]), "genetic_variance": genetic, "residual_variance": residual})
        if verbose:
            print(f"round {round_}: {new.size} selected at lambda {path.lambdas[chosen]:.4g} "
                  f"(s2g {genetic:.4g}, s2e {residual:.4g})")
        if np.array_equal(new, support):
            converged = True
            break
        support = new
    if not converged:
        Zsup = genotypes.standardized(variants=support, device=device, dtype=dtype)
        fixed = _fixed_fit(yt, C, cnames, Zsup, [f"variant:{v}" for v in support], kernel, whiten,
                           fit, reml_options, seed)
    fit, genetic, residual, beta, beta_se, h2 = fixed
    lasso_effect = path.coef[chosen][np.isin(cand, support)]
    v = genotypes.variants.iloc[support]
    names = ["GRM", "residual"] if whiten else ["residual"]
    variances = np.asarray(fit.variances.tolist() if fit is not None else [residual], dtype=np.float64)
    return SparseREMLFit(
        support=support, variants=v[["chrom", "id", "pos", "a1", "a2"]].reset_index(drop=True),
        lasso_effect=lasso_effect, beta=np.asarray(beta, dtype=np.float64), beta_se=np.asarray(beta_se, dtype=np.float64),
        sd=np.sqrt(stats.var[support]), candidates=cand, lambdas=path.lambdas, path_df=path.df,
        path_rss=rss, path_ebic=crit, path_coef=path.coef, chosen=chosen, variance_names=names,
        variances=variances, h2=float(h2), reml=asdict(fit) if fit is not None else {},
        n_outer=len(history), converged=converged, history=history, n=n, n_candidates=n_candidates,
        settings={"n_screen": int(n_screen), "n_lambda": int(n_lambda), "lambda_min_ratio": float(lambda_min_ratio),
                  "ebic_gamma": float(ebic_gamma), "max_outer": int(max_outer), "max_support": int(max_support),
                  "whiten": bool(whiten), "method": getattr(cov, "method", "identity"), "seed": int(seed)},
    )


@functools.lru_cache(maxsize=1)
def _example() -> SparseREMLFit:
    """A small fit for the docstring examples (made once)."""
    from ..datasets import simulate_genotypes, simulate_phenotype

    sim = simulate_genotypes(300, 200, chromosomes=2, seed=0)
    ph = simulate_phenotype(sim, h2=0.4, causal=[30, 150], seed=1)
    return sparse_reml(sim.to_genotypes(), ph.y, n_screen=40)
