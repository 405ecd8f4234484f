"""Data helpers shared by the SuSiE tests (a uniquely named module: pytest runs with
``--import-mode=importlib``, so ``conftest`` is not importable by name)."""

from __future__ import annotations

import numpy as np
import torch
from make_reference import univariate_z

__all__ = ["simulate", "suff_stats", "z_and_R", "univariate_z"]


def simulate(n=200, p=50, causal=(5, 30), effect=1.0, rho=0.6, seed=0):
    """Correlated (AR(1), correlation ``rho``) Gaussian X and y with the given causal columns."""
    gen = torch.Generator().manual_seed(seed)
    Z = torch.randn(n, p, generator=gen, dtype=torch.float64)
    X = torch.empty_like(Z)
    X[:, 0] = Z[:, 0]
    for j in range(1, p):
        X[:, j] = rho * X[:, j - 1] + (1 - rho**2) ** 0.5 * Z[:, j]
    beta = torch.zeros(p, dtype=torch.float64)
    beta[list(causal)] = effect
    y = X @ beta + torch.randn(n, generator=gen, dtype=torch.float64)
    return X, y


def suff_stats(X, y):
    """Centred X'X, X'y, y'y."""
    Xc, yc = X - X.mean(0), y - y.mean()
    return Xc.T @ Xc, Xc.T @ yc, float(yc @ yc)


def z_and_R(X, y):
    """Univariate z-scores and the in-sample correlation matrix."""
    Xn, yn = X.numpy(), y.numpy()
    return torch.from_numpy(univariate_z(Xn, yn)), torch.from_numpy(np.corrcoef(Xn, rowvar=False))
