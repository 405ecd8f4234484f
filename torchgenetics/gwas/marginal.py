"""Marginal GWAS: per-variant linear regression, as plink2 ``--glm`` computes it.

For each variant ``x`` and phenotype ``y`` the model is ``y = C a + x b + e`` fitted
on the samples with a non-missing genotype (complete-case, as plink2 does), so
``OBS_CT`` varies by variant. With ``M`` the projection off the covariates of those
samples, ``b = x'My / x'Mx``, ``RSS = y'My - b x'My`` and
``SE = sqrt(RSS / (OBS_CT - p - 1) / x'Mx)``.

Nothing per variant is solved from scratch. With ``Q`` an orthonormal basis of the
covariates over all samples with the phenotype, ``y~ = y - Q Q'y``, and ``x`` the
dosages with missing calls set to 0 and centred over the observed calls, the
observed-sample quantities follow from full-sample products and a rank-``k``
downdate over the ``k`` missing samples ``S`` (``A = I - Q_S' Q_S``, ``u = Q_S' y~_S``;
``Q'y~ = 0``):

    x'My = x'y~ + (Q'x)' A^-1 u
    x'Mx = x'x - (Q'x)' A^-1 (Q'x)
    y'My = y~'y~ - y~_S'y~_S - u' A^-1 u

One pass over the genotype blocks computes ``X' [Q | Y~ | 1]`` (a single product,
see :mod:`torchgenetics.gwas.blocks`); the downdates touch only the missing calls.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..errors import InputError
from .blocks import block_threads, centred_products
from .design import as_covariates, as_phenotypes, covariate_basis, missing_groups
from .pvalues import t_log10_pvalue, t_pvalue
from .result import GWASResult

__all__ = ["gwas", "variant_table"]

# plink2's defaults --vif 50 and --max-corr 0.999: beyond them a variant is not tested.
_MAX_VIF = 50.0
_MAX_CORR = 0.999


def variant_table(genotypes, variants=None) -> pd.DataFrame:
    """``chrom, pos, id, ref, alt`` of the tested variants (``alt`` = counted allele ``a1``).

    Parameters
    ----------
    genotypes : Genotypes
    variants : index array, slice or mask, optional
        Subset (default all).

    Returns
    -------
    pandas.DataFrame

    Examples
    --------
    >>> from torchgenetics.genotypes import Genotypes
    >>> variant_table(Genotypes.from_array([[0, 1]])).columns.tolist()
    ['chrom', 'pos', 'id', 'ref', 'alt']
    """
    v = genotypes.variants
    if variants is not None:
        v = v.iloc[np.arange(len(v))[variants] if isinstance(variants, slice) else np.asarray(variants)]
    return pd.DataFrame({"chrom": v["chrom"].to_numpy(), "pos": v["pos"].to_numpy(),
                         "id": v["id"].to_numpy(), "ref": v["a2"].to_numpy(),
                         "alt": v["a1"].to_numpy()})


class _Group:
    """The samples and phenotypes sharing one missingness pattern, ready for blocks."""

    def __init__(self, rows, cols, Y, C, names, n_total, device, dtype):
        self.cols = cols
        self.rows = None if rows.size == n_total else torch.as_tensor(rows, device=device)
        Cg = torch.as_tensor(C[rows], dtype=dtype, device=device)
        self.Q = covariate_basis(Cg, names)
        Yg = torch.as_tensor(Y[np.ix_(rows, cols)], dtype=dtype, device=device)
        self.Y = Yg - self.Q @ (self.Q.T @ Yg)
        self.n, self.p = Cg.shape
        self.k = len(cols)
        self.W = torch.cat([self.Q, self.Y], dim=1)
        self.qy = self.Q.T @ self.Y              # Q'Y~ (0 up to rounding)
        self.yy = self.Y.square().sum(0)
        self._collinearity_reference(C[rows], self.Q.T @ Cg)

    def _collinearity_reference(self, C: np.ndarray, R: torch.Tensor):
        """What plink2's CORR_TOO_HIGH / VIF_TOO_HIGH checks need from the covariates.

        With ``C = Q R``, a centred genotype's products with the covariates are
        ``C'x = R' Q'x`` and its regression coefficients on them ``R^-1 Q'x``.
        """
        varying = ~np.all(C == C[:1], axis=0)
        self.varying = np.flatnonzero(varying)
        centred = C[:, varying] - C[:, varying].mean(0)
        self.ss = np.square(centred).sum(0)      # sum of squares of each varying covariate
        self.R = R.cpu().numpy()
        if self.varying.size:
            corr = np.corrcoef(centred, rowvar=False).reshape(self.varying.size, self.varying.size)
            self.vif0 = np.diag(np.linalg.inv(corr))
        else:
            self.vif0 = np.zeros(0)

    def collinear(self, qx: np.ndarray, cnt: np.ndarray, xx: np.ndarray, xmx: np.ndarray):
        """plink2's checks: max |corr(x, c_j)| > 0.999 and max VIF over the predictors > 50."""
        if self.varying.size == 0:
            return np.zeros(len(xx), dtype=bool), np.zeros(len(xx), dtype=bool)
        with np.errstate(invalid="ignore", divide="ignore"):
            cx = (qx @ self.R)[:, self.varying]                    # C'x per varying covariate
            scale = self.ss * (cnt / self.n)[:, None]
            corr = cx / np.sqrt(xx[:, None] * scale)
            coef = np.linalg.solve(self.R, qx.T).T[:, self.varying]
            std_coef = coef * np.sqrt(scale / xx[:, None])
            vif_x = xx / xmx
            vif = np.maximum(vif_x, (self.vif0 + std_coef**2 * vif_x[:, None]).max(1))
        return ~(np.abs(corr).max(1) <= _MAX_CORR), ~(vif <= _MAX_VIF)


def _block(X: torch.Tensor, g: _Group):
    """Per-variant sufficient statistics of one raw block (``X`` is modified in place)."""
    p = g.p
    c = centred_products(X, g.W)
    i, j = c.missing_rows, c.missing_cols
    b = X.shape[1]
    qx, xy = c.xw[:, :p], c.xw[:, p:]
    Qs, Ys = g.Q[i], g.Y[i]
    # downdate over the missing samples: A = I - Q_S'Q_S, v = Q_o'y~_o = Q'y~ - Q_S'y~_S
    eye = torch.eye(p, dtype=X.dtype, device=X.device)
    A = eye.expand(b, p, p).clone().index_add_(0, j, -(Qs.unsqueeze(2) * Qs.unsqueeze(1)))
    v = g.qy.expand(b, p, g.k).clone().index_add_(0, j, -(Qs.unsqueeze(2) * Ys.unsqueeze(1)))
    yy_s = torch.zeros(b, g.k, dtype=X.dtype, device=X.device).index_add_(0, j, Ys.square())
    L, info = torch.linalg.cholesky_ex(A)
    singular = (info != 0) | (L.diagonal(dim1=1, dim2=2).amin(1) < 1e-6)
    L = torch.where(singular.view(b, 1, 1), eye, L)
    sol = torch.cholesky_solve(torch.cat([qx.unsqueeze(2), v], dim=2), L)
    xmx = c.xx - (qx * sol[:, :, 0]).sum(1)
    xmy = xy - (qx.unsqueeze(2) * sol[:, :, 1:]).sum(1)
    ymy = g.yy - yy_s - (v * sol[:, :, 1:]).sum(1)
    return c.count, c.mean, qx, c.xx, xmx, xmy, ymy, singular


def gwas(genotypes, y, covariates=None, *, phenotype_names=None, covariate_names=None,
         variants=None, block_size=None, device=None, dtype=torch.float64,
         verbose: bool = False) -> GWASResult:
    """Per-variant linear regression of phenotypes on allele dosages (plink2 ``--glm``).

    Each variant is tested in ``y = C a + x b + e`` on the samples with a
    non-missing call (complete-case per variant, exactly as plink2 ``--glm``;
    ``OBS_CT`` counts them), with a t test on ``OBS_CT - p - 1`` degrees of
    freedom (``p`` covariates including the intercept). Several phenotypes are
    tested in the same pass over the genotypes; a phenotype's missing values
    drop those samples for that phenotype only.

    Parameters
    ----------
    genotypes : Genotypes
        ``n x m`` dosages of allele ``a1`` (ALT), rows matching ``y``.
    y : array-like, torch.Tensor, Series or DataFrame
        ``(n,)`` or ``(n, k)`` phenotypes, NaN = missing.
    covariates : array-like, torch.Tensor or DataFrame, optional
        ``(n, c)`` covariates without missing values; an intercept is added
        unless a constant column is present (as :func:`torchgenetics.io.align`
        returns it).
    phenotype_names, covariate_names : list of str, optional
        Names (default from DataFrame columns, else ``PHENO1``/``COVAR1``...).
    variants : index array, slice or mask, optional
        Variants to test (default all).
    block_size : int, optional
        Variants per streamed block (default planned from the memory budget).
    device : torch.device or str, optional
        Where the products run (default CPU).
    dtype : torch.dtype, default torch.float64
    verbose : bool, default False
        Progress bar over the variant blocks.

    Returns
    -------
    GWASResult
        ``method="linear"``; ``stat`` holds ``T_STAT``.

    Raises
    ------
    PhenotypeError
        A phenotype of the wrong length, infinite, or with fewer than 3 varying values.
    InputError
        Missing or collinear covariates.

    Examples
    --------
    >>> from torchgenetics.datasets import simulate_genotypes, simulate_phenotype
    >>> sim = simulate_genotypes(300, 50, seed=0)
    >>> y = simulate_phenotype(sim, h2=0.3, causal=[10], seed=1).y
    >>> res = gwas(sim.to_genotypes(), y)
    >>> int(np.nanargmin(res.p[:, 0]))
    10
    """
    n = genotypes.n_samples
    Y, names = as_phenotypes(y, n, phenotype_names)
    C, cnames = as_covariates(covariates, n, covariate_names)
    device = torch.device("cpu" if device is None else device)
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise InputError(f"dtype must be a floating torch dtype, got {dtype}")
    groups = [_Group(r, c, Y, C, cnames, n, device, dtype) for r, c in missing_groups(Y)]
    table = variant_table(genotypes, variants)
    m, k = len(table), Y.shape[1]
    out = {name: np.full((m, k), np.nan) for name in ("a1_freq", "beta", "se", "stat")}
    obs = np.zeros((m, k), dtype=np.int64)
    code = np.full((m, k), ".", dtype=object)
    start = 0
    with block_threads(device):
        for _, X in genotypes.blocks(block_size=block_size, device=device, dtype=dtype,
                                     standardize=False, variants=variants, verbose=verbose):
            stop = start + X.shape[1]
            # row subsets are copied before _block zeroes the missing calls of X in place
            parts = [(g, X if g.rows is None else X.index_select(0, g.rows)) for g in groups]
            for g, Xg in parts:
                stats = [t.cpu().numpy() for t in _block(Xg, g)]
                _fill(out, obs, code, slice(start, stop), g, *stats)
            start = stop
    n_covar = np.zeros(k, dtype=np.int64)
    for g in groups:
        n_covar[g.cols] = g.p
    df = obs - n_covar - 1
    with np.errstate(invalid="ignore"):
        p = t_pvalue(out["stat"], df)
        log10_p = t_log10_pvalue(out["stat"], df)
    n_samples = np.zeros(k, dtype=np.int64)
    for g in groups:
        n_samples[g.cols] = g.n
    return GWASResult(variants=table, phenotypes=names, method="linear", a1_freq=out["a1_freq"],
                      obs_ct=obs, beta=out["beta"], se=out["se"], stat=out["stat"], p=p,
                      log10_p=log10_p, errcode=code, n_samples=n_samples, covariate_names=cnames,
                      info={"n_covariates": len(cnames)})


def _fill(out, obs, code, rows, g, cnt, mean, qx, xx, xmx, xmy, ymy, singular):
    """Write one block's statistics for one phenotype group into the result arrays.

    Variants are not tested, as in plink2, when the genotype is constant
    (``CONST_OMITTED_ALLELE``), there are no residual degrees of freedom
    (``SAMPLE_CT<=PREDICTOR_CT``), it correlates above 0.999 with a covariate
    (``CORR_TOO_HIGH``) or a predictor's VIF exceeds 50 (``VIF_TOO_HIGH``).
    """
    df = cnt - g.p - 1
    const = ~(xx > 1e-10 * np.maximum(cnt, 1))
    few = df < 1
    corr, vif = g.collinear(qx, cnt, xx, xmx)
    vif = vif | singular
    reason = np.select([const, few, corr, vif],
                       ["CONST_OMITTED_ALLELE", "SAMPLE_CT<=PREDICTOR_CT", "CORR_TOO_HIGH", "VIF_TOO_HIGH"],
                       ".").astype(object)
    ok = reason == "."
    with np.errstate(invalid="ignore", divide="ignore"):
        beta = xmy / xmx[:, None]
        rss = ymy - beta * xmy
        se = np.sqrt(rss / df[:, None] / xmx[:, None])
    shape = beta.shape
    _assign(out["a1_freq"], rows, g.cols, np.broadcast_to((mean / 2)[:, None], shape))
    for name, value in (("beta", beta), ("se", se), ("stat", beta / se)):
        _assign(out[name], rows, g.cols, np.where(ok[:, None], value, np.nan))
    _assign(obs, rows, g.cols, np.broadcast_to(cnt.astype(np.int64)[:, None], shape))
    _assign(code, rows, g.cols, np.broadcast_to(reason[:, None], shape))


def _assign(target, rows, cols, values):
    idx = np.arange(target.shape[0])[rows]
    target[np.ix_(idx, cols)] = values
