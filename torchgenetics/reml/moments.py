"""Haseman-Elston (method-of-moments) variance components for dense kernels.

With ``M = I - Q Q'`` projecting off the covariates (``Q`` an orthonormal basis of
X) and ``y* = M y``, the moment equations ``E[y*' K_g y*] = sum_h theta_h tr(M K_g M
K_h)`` (``K_{G+1} = I``) are solved for ``theta``. Every trace is a Frobenius
product of n x n matrices, so the estimate costs O(G^2 n^2), negligible next to one
Cholesky factorisation: it is the starting point of the exact multi-kernel REML.
"""

from __future__ import annotations

import torch

__all__ = ["he_regression"]


def _frobenius(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """``sum(A * B)`` without an n x n temporary."""
    return torch.dot(A.reshape(-1), B.reshape(-1)) if A.is_contiguous() and B.is_contiguous() else (A * B).sum()


def he_regression(kernels, y: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Haseman-Elston moment estimates of ``(s2_1, ..., s2_G, s2_e)``.

    Parameters
    ----------
    kernels : list of torch.Tensor
        G dense symmetric (n, n) kernels.
    y : torch.Tensor
        (n,) phenotype.
    X : torch.Tensor
        (n, p) full-rank covariates (an intercept column included by the caller).

    Returns
    -------
    torch.Tensor
        (G+1,) unconstrained moment estimates, residual last (may be negative on
        small samples; callers clamp them).

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> Z = torch.randn(400, 200, generator=g, dtype=torch.float64)
    >>> K = Z @ Z.T / 200
    >>> u = Z @ torch.randn(200, generator=g, dtype=torch.float64) * (0.6 / 200) ** 0.5
    >>> y = u + 0.8 ** 0.5 * torch.randn(400, generator=g, dtype=torch.float64)
    >>> th = he_regression([K], y, torch.ones(400, 1, dtype=torch.float64))
    >>> bool(abs(th.sum() - y.var()) < 0.2)
    True
    """
    Q = torch.linalg.qr(X).Q
    ys = y - Q @ (Q.mT @ y)
    n, p = X.shape
    G = len(kernels)
    KQ = [k @ Q for k in kernels]
    QKQ = [Q.mT @ kq for kq in KQ]
    S = torch.empty(G + 1, G + 1, dtype=y.dtype, device=y.device)
    rhs = torch.empty(G + 1, dtype=y.dtype, device=y.device)
    for g in range(G):
        for h in range(g + 1):
            S[g, h] = S[h, g] = (_frobenius(kernels[g], kernels[h]) - 2.0 * (KQ[g] * KQ[h]).sum()
                                 + (QKQ[g] * QKQ[h]).sum())
        S[g, G] = S[G, g] = kernels[g].diagonal().sum() - QKQ[g].diagonal().sum()
        rhs[g] = ys @ (kernels[g] @ ys)
    S[G, G] = n - p
    rhs[G] = ys @ ys
    return torch.linalg.solve(S, rhs)
