"""Phenotype and covariate inputs of the association tests.

Phenotypes are an ``n x k`` matrix with NaN for missing values; covariates an
``n x c`` matrix without missing values, to which an intercept is added unless a
constant column is already there. :func:`covariate_basis` returns an orthonormal
basis of the covariate space, with which residualizing is one product.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..errors import InputError, PhenotypeError

__all__ = ["as_phenotypes", "as_covariates", "covariate_basis", "missing_groups"]

# Relative size of R's diagonal (unit-norm columns) below which a covariate is collinear.
_COLLINEAR = 1e-9


def _values(value, what: str) -> tuple[np.ndarray, list | None]:
    names = None
    if isinstance(value, pd.Series):
        names = [str(value.name)] if value.name is not None else None
        value = value.to_numpy(dtype=np.float64)
    elif isinstance(value, pd.DataFrame):
        names = [str(c) for c in value.columns]
        value = value.to_numpy(dtype=np.float64)
    elif isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be numeric, got {type(value).__name__}") from None
    return arr, names


def as_phenotypes(y, n: int, names=None) -> tuple[np.ndarray, list[str]]:
    """Phenotypes as an ``n x k`` float64 array (NaN = missing) and their names.

    Parameters
    ----------
    y : array-like, torch.Tensor, Series or DataFrame
        ``(n,)`` or ``(n, k)``.
    n : int
        Number of genotyped samples (rows).
    names : list of str, optional
        Phenotype names (default: DataFrame/Series names, else ``PHENO1``, ...).

    Returns
    -------
    values : numpy.ndarray
    names : list of str

    Raises
    ------
    PhenotypeError
        Wrong number of rows, infinite values, or a phenotype with fewer than
        three observed or only constant values.

    Examples
    --------
    >>> v, names = as_phenotypes([1.0, 2.0, np.nan, 4.0], 4)
    >>> v.shape, names
    ((4, 1), ['PHENO1'])
    """
    arr, found = _values(y, "phenotype")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] != n:
        raise PhenotypeError(f"phenotypes have shape {arr.shape}; expected ({n},) or ({n}, k), one row per genotyped sample")
    names = list(names) if names is not None else (found or [f"PHENO{j + 1}" for j in range(arr.shape[1])])
    if len(names) != arr.shape[1]:
        raise InputError(f"{len(names)} phenotype names for {arr.shape[1]} phenotype columns")
    if len(set(names)) != len(names):
        raise InputError(f"phenotype names must be unique, got {names}")
    if np.isinf(arr).any():
        i, j = (int(v[0]) for v in np.nonzero(np.isinf(arr)))
        raise PhenotypeError(f"phenotype {names[j]!r} is infinite at sample row {i}; use NaN for a missing value")
    for j, name in enumerate(names):
        col = arr[:, j][~np.isnan(arr[:, j])]
        if col.size < 3 or np.all(col == col[0]):
            raise PhenotypeError(f"phenotype {name!r} has {col.size} observed values"
                                 + (" all equal" if col.size else "") + "; it needs at least 3 that vary")
    return arr, [str(v) for v in names]


def as_covariates(covariates, n: int, names=None) -> tuple[np.ndarray, list[str]]:
    """Covariates as an ``n x p`` float64 array with an intercept, and their names.

    A column of ones named ``intercept`` is put first unless some column is
    already constant (and non-zero).

    Parameters
    ----------
    covariates : array-like, torch.Tensor or DataFrame, optional
        ``(n,)`` or ``(n, c)``, no missing values (None: intercept only).
    n : int
        Number of samples.
    names : list of str, optional
        Covariate names (default: DataFrame columns, else ``COVAR1``, ...).

    Returns
    -------
    values : numpy.ndarray
    names : list of str

    Raises
    ------
    InputError
        Wrong shape or a missing/infinite value (row and column named).

    Examples
    --------
    >>> C, names = as_covariates(np.arange(4.0), 4)
    >>> C.shape, names
    ((4, 2), ['intercept', 'COVAR1'])
    >>> as_covariates(np.array([[1.0, 2.0], [1.0, 5.0], [1.0, 3.0]]), 3)[1]
    ['intercept', 'COVAR1']
    """
    if covariates is None:
        return np.ones((n, 1)), ["intercept"]
    arr, found = _values(covariates, "covariates")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] != n:
        raise InputError(f"covariates have shape {arr.shape}; expected ({n}, c), one row per genotyped sample")
    constant = np.all(arr == arr[:1], axis=0) & (arr[0] != 0) if n else np.zeros(arr.shape[1], dtype=bool)
    if names is None and found is None:
        numbered = iter(range(1, arr.shape[1] + 1))
        names = ["intercept" if c else f"COVAR{next(numbered)}" for c in constant]
    names = list(names) if names is not None else found
    if len(names) != arr.shape[1]:
        raise InputError(f"{len(names)} covariate names for {arr.shape[1]} covariate columns")
    bad = ~np.isfinite(arr)
    if bad.any():
        i, j = (int(v[0]) for v in np.nonzero(bad))
        raise InputError(f"covariate {names[j]!r} is {arr[i, j]} at sample row {i}; covariates may not be "
                         "missing (drop those samples first, e.g. with torchgenetics.io.align)")
    if not constant.any():
        arr = np.column_stack([np.ones(n), arr])
        names = ["intercept", *names]
    return arr, [str(v) for v in names]


def covariate_basis(C: torch.Tensor, names=None) -> torch.Tensor:
    """Orthonormal basis ``Q`` (n x p) of the covariate columns.

    Parameters
    ----------
    C : torch.Tensor
        ``n x p`` covariates.
    names : list of str, optional
        Column names used in the error message.

    Returns
    -------
    torch.Tensor
        ``Q`` with ``Q^T Q = I`` and the column space of ``C``.

    Raises
    ------
    InputError
        If a covariate is (numerically) a linear combination of the others.

    Examples
    --------
    >>> Q = covariate_basis(torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]], dtype=torch.float64))
    >>> torch.allclose(Q.T @ Q, torch.eye(2, dtype=torch.float64))
    True
    """
    n, p = C.shape
    if n <= p:
        raise InputError(f"{n} samples for {p} covariates (intercept included); need more samples than covariates")
    norms = torch.linalg.vector_norm(C, dim=0)
    if bool((norms == 0).any()):
        j = int(torch.nonzero(norms == 0)[0])
        label = names[j] if names else f"column {j}"
        raise InputError(f"covariate {label!r} is zero for every sample")
    Q, R = torch.linalg.qr(C / norms)
    diag = R.diagonal().abs()
    bad = diag < _COLLINEAR * diag.max()
    if bool(bad.any()):
        j = int(torch.nonzero(bad)[0])
        label = names[j] if names else f"column {j}"
        raise InputError(f"covariate {label!r} is a linear combination of the covariates before it; "
                         "remove it (or one of the collinear columns)")
    return Q


def missing_groups(Y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Phenotype columns grouped by their pattern of missing values.

    Parameters
    ----------
    Y : numpy.ndarray
        ``n x k`` phenotypes, NaN missing.

    Returns
    -------
    list of (rows, columns)
        ``rows``: int64 positions of the samples observed in every column of the
        group; ``columns``: the phenotype columns sharing that pattern.

    Examples
    --------
    >>> Y = np.array([[1.0, 2.0, 1.0], [np.nan, 1.0, 2.0], [3.0, 0.0, 0.0]])
    >>> [(r.tolist(), c.tolist()) for r, c in missing_groups(Y)]
    [([0, 2], [0]), ([0, 1, 2], [1, 2])]
    """
    groups: dict[bytes, list[int]] = {}
    observed = ~np.isnan(Y)
    for j in range(Y.shape[1]):
        groups.setdefault(np.packbits(observed[:, j]).tobytes(), []).append(j)
    return [(np.flatnonzero(observed[:, cols[0]]).astype(np.int64), np.asarray(cols, dtype=np.int64))
            for cols in groups.values()]
