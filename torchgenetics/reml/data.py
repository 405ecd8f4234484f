"""Checked phenotype and fixed-effect design for a REML fit.

The design always holds an intercept: a constant column already among the
covariates (e.g. the ``intercept`` column that :func:`torchgenetics.io.align`
adds) serves as it, otherwise a column of ones is put first. The design must have
full column rank; the first covariate that is a linear combination of the columns
before it is named in the error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..errors import InputError, PhenotypeError

__all__ = ["Design", "prepare_design"]


@dataclass
class Design:
    """Phenotype and fixed-effect design matrix, checked and on one device.

    Attributes
    ----------
    y : torch.Tensor
        (n,) phenotype.
    X : torch.Tensor
        (n, p) design, intercept included.
    names : list of str
        Column names of ``X``.

    Examples
    --------
    >>> d = prepare_design(torch.tensor([1.0, 2.0, 4.0]), None)
    >>> d.names, tuple(d.X.shape)
    (['intercept'], (3, 1))
    """

    y: torch.Tensor
    X: torch.Tensor
    names: list

    @property
    def n(self) -> int:
        """Number of samples."""
        return int(self.y.shape[0])

    @property
    def p(self) -> int:
        """Number of fixed effects."""
        return int(self.X.shape[1])


def _as_tensor(value, what, dtype, device) -> torch.Tensor:
    if isinstance(value, (pd.Series, pd.DataFrame)):
        value = value.to_numpy()
    try:
        t = torch.as_tensor(value.detach() if torch.is_tensor(value) else np.array(value, dtype=np.float64))
    except (TypeError, ValueError) as err:
        raise InputError(f"{what} must be numeric, could not convert it ({err})") from None
    if not t.is_floating_point():
        t = t.to(torch.float64)
    return t.to(dtype=dtype, device=device)


def _check_y(y: torch.Tensor) -> torch.Tensor:
    if y.dim() == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.dim() != 1:
        raise PhenotypeError(f"y must be one phenotype, shape (n,) or (n, 1); got shape {tuple(y.shape)}")
    bad = ~torch.isfinite(y)
    if bool(bad.any()):
        where = torch.nonzero(bad).flatten()[:5].tolist()
        raise PhenotypeError(
            f"y has {int(bad.sum())} missing or non-finite values (first at sample positions "
            f"{where}); drop those samples before fitting (torchgenetics.io.align does)"
        )
    if y.numel() < 3:
        raise PhenotypeError(f"y has {y.numel()} samples; REML needs at least 3")
    if float(y.max() - y.min()) <= 1e-12 * max(1.0, float(y.abs().max())):
        raise PhenotypeError(f"y is constant (every value is {float(y[0]):g}); there is no variance to partition")
    return y


def _covariate_frame(covariates, names, n):
    if covariates is None:
        return None, []
    if isinstance(covariates, pd.Series):
        covariates = covariates.to_frame()
    if isinstance(covariates, pd.DataFrame):
        cols = [str(c) for c in covariates.columns]
        return covariates, cols if names is None else list(names)
    return covariates, None if names is None else list(names)


def prepare_design(y, covariates=None, covariate_names=None, dtype=torch.float64, device=None) -> Design:
    """Check ``y`` and build the full-rank design ``[intercept | covariates]``.

    Parameters
    ----------
    y : array-like, (n,) or (n, 1)
        Phenotype; NaN or non-finite values and constant phenotypes are errors.
    covariates : array-like or DataFrame, (n, c), optional
        Fixed-effect covariates (no missing values). A constant column is taken as
        the intercept; otherwise one is added first.
    covariate_names : list of str, optional
        Names of the covariate columns (default DataFrame columns, else ``covar1``, ...).
    dtype, device : optional
        Of the returned tensors (default float64, CPU).

    Returns
    -------
    Design

    Raises
    ------
    PhenotypeError
        If ``y`` has a missing value, is constant or has the wrong shape.
    InputError
        If the covariates have the wrong number of rows, missing values, or are
        collinear (the message names the first redundant column).

    Examples
    --------
    >>> d = prepare_design([1.0, 2.0, 4.0, 3.0], [[1.0], [0.0], [2.0], [5.0]])
    >>> d.names
    ['intercept', 'covar1']
    """
    device = torch.device("cpu" if device is None else device)
    y = _check_y(_as_tensor(y, "y", dtype, device))
    n = int(y.shape[0])
    frame, names = _covariate_frame(covariates, covariate_names, n)
    ones = torch.ones(n, 1, dtype=dtype, device=device)
    if frame is None:
        return Design(y=y, X=ones, names=["intercept"])
    C = _as_tensor(frame, "covariates", dtype, device)
    if C.dim() == 1:
        C = C.unsqueeze(1)
    if C.dim() != 2 or C.shape[0] != n:
        raise InputError(f"covariates must be (n, c) with n = {n} rows (one per sample of y), got shape {tuple(C.shape)}")
    names = [f"covar{j + 1}" for j in range(C.shape[1])] if names is None else names
    if len(names) != C.shape[1]:
        raise InputError(f"{len(names)} covariate names for {C.shape[1]} covariate columns")
    bad = ~torch.isfinite(C)
    if bool(bad.any()):
        i, j = torch.nonzero(bad)[0].tolist()
        raise InputError(
            f"covariate {names[j]!r} is missing or non-finite for sample position {i}; "
            "drop such samples before fitting (torchgenetics.io.align does)"
        )
    const = (C.max(0).values - C.min(0).values) <= 1e-12 * C.abs().max(0).values.clamp_min(1.0)
    has_intercept = bool((const & (C.abs().max(0).values > 0)).any())
    if not has_intercept:
        C, names = torch.cat([ones, C], 1), ["intercept"] + names
    _check_rank(C, names)
    return Design(y=y, X=C, names=names)


def _check_rank(X: torch.Tensor, names) -> None:
    """Raise naming the first column that lies in the span of the columns before it."""
    n, p = X.shape
    if p >= n:
        raise InputError(f"{p} fixed effects (intercept included) for {n} samples; need fewer fixed effects than samples")
    scale = X.norm(dim=0).clamp_min(1e-300)
    Xs = X / scale
    R = torch.linalg.qr(Xs, mode="r").R.diagonal().abs()
    tol = max(n, p) * torch.finfo(X.dtype).eps * 1e3
    low = torch.nonzero(R <= tol * float(R.max())).flatten()
    if low.numel():
        j = int(low[0])
        others = ", ".join(repr(c) for c in names[:j])
        raise InputError(
            f"covariates are collinear: column {names[j]!r} is (up to rounding) a linear combination of "
            f"{others or 'nothing (it is all zero)'}; remove it or a column it depends on"
        )
