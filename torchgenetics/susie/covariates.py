"""Regress covariates out of y and X before fine-mapping, as susieR users do.

SuSiE has no covariate term: the standard practice is to fit it to the
residuals of y and of every column of X after least-squares regression on the
covariates (an intercept included). :class:`CovariateProjector` holds an
orthonormal basis of the covariate space so y is residualised once and each
locus' X when it is read.
"""

from __future__ import annotations

import torch

from ..errors import InputError

__all__ = ["CovariateProjector", "residualize"]

# A column whose residual sum of squares is below this fraction of its sum of squares
# lies in the covariate space (e.g. a variant constant among the samples): it
# is set to exactly zero, which SuSiE treats as a variable without data.
_COLLINEAR = 1e-10


class CovariateProjector:
    """Projection onto the orthogonal complement of the covariates' column space.

    Parameters
    ----------
    covariates : array-like or torch.Tensor
        (n, k) covariate matrix, finite. An intercept column is added when the
        span does not already hold the constant vector.
    dtype, device : optional
        Precision and device (default float64, the covariates' device).

    Attributes
    ----------
    basis : torch.Tensor
        (n, r) orthonormal basis of the covariate space (rank r, intercept included).

    Examples
    --------
    >>> C = torch.tensor([[1.0], [2.0], [3.0], [5.0]], dtype=torch.float64)
    >>> proj = CovariateProjector(C)
    >>> proj.basis.shape[1], round(float(proj(torch.tensor([2.0, 4.0, 6.0, 10.0], dtype=torch.float64)).abs().max()), 12)
    (2, 0.0)
    """

    def __init__(self, covariates, dtype=torch.float64, device=None):
        C = torch.as_tensor(covariates, dtype=dtype, device=device)
        if C.dim() == 1:
            C = C[:, None]
        if C.dim() != 2:
            raise InputError(f"covariates must be an (n, k) matrix, got shape {tuple(C.shape)}")
        if not bool(torch.isfinite(C).all()):
            row = int(torch.nonzero(~torch.isfinite(C))[0, 0])
            raise InputError(f"covariates contain NaN or infinite values (first at sample {row}); "
                             "drop those samples first (torchgenetics.io.align does)")
        ones = torch.ones((C.shape[0], 1), dtype=dtype, device=C.device)
        C = torch.cat([ones, C], dim=1)
        norms = torch.linalg.vector_norm(C, dim=0)
        C = C[:, norms > 0] / norms[norms > 0]  # unit columns: the rank cut-off ignores units
        U, s, _ = torch.linalg.svd(C, full_matrices=False)
        # An orthonormal basis of the span; collinear columns (a second intercept) add nothing.
        self.basis = U[:, s > s[0] * 1e-10]
        self.n = C.shape[0]

    def __call__(self, values: torch.Tensor) -> torch.Tensor:
        """Residuals of ``values`` ((n,) or (n, p)) on the covariates.

        Columns that lie in the covariate space (up to rounding) come back as exact zeros.
        """
        values = torch.as_tensor(values, dtype=self.basis.dtype, device=self.basis.device)
        if values.shape[0] != self.n:
            raise InputError(f"expected {self.n} samples (rows of the covariates), got {values.shape[0]}")
        flat = values.reshape(self.n, -1)
        resid = flat - self.basis @ (self.basis.T @ flat)
        tiny = (resid * resid).sum(dim=0) <= _COLLINEAR * (flat * flat).sum(dim=0)
        resid[:, tiny] = 0.0
        return resid.reshape(values.shape)


def residualize(y, X=None, covariates=None, dtype=torch.float64):
    """Residuals of y (and X) after least-squares regression on covariates plus an intercept.

    Parameters
    ----------
    y : array-like
        (n,) phenotype.
    X : array-like, optional
        (n, p) genotypes of one locus.
    covariates : array-like, optional
        (n, k) covariates (e.g. ``Alignment.covariates``; an intercept column there
        is harmless). None only centres.
    dtype : torch.dtype
        Precision of the result.

    Returns
    -------
    torch.Tensor or tuple of torch.Tensor
        Residualised y, or ``(y, X)`` when X is given. Columns of X inside the
        covariate space become zero (SuSiE gives them no weight).

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> C = torch.randn(50, 2, generator=g, dtype=torch.float64)
    >>> y = C[:, 0] * 3 + torch.randn(50, generator=g, dtype=torch.float64)
    >>> r = residualize(y, covariates=C)
    >>> bool((C.T @ r).abs().max() < 1e-10), bool(r.mean().abs() < 1e-12)
    (True, True)
    """
    y = torch.as_tensor(y, dtype=dtype)
    C = torch.zeros((y.shape[0], 0), dtype=dtype) if covariates is None else covariates
    proj = CovariateProjector(C, dtype=dtype, device=y.device)
    if X is None:
        return proj(y)
    return proj(y), proj(X)
