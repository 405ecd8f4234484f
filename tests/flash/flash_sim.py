"""Simulated low-rank data for the flash tests."""

import torch


def block_factors(n=200, p=120, K=3, scale=2.0, noise=1.0, seed=0):
    """``Y = L F^T + E`` with loadings on disjoint row blocks (well separated factors)."""
    g = torch.Generator().manual_seed(seed)
    L = torch.zeros(n, K, dtype=torch.float64)
    for k, rows in enumerate(torch.arange(n).chunk(K)):
        L[rows, k] = scale * torch.randn(len(rows), generator=g, dtype=torch.float64)
    F = torch.randn(p, K, generator=g, dtype=torch.float64)
    E = noise * torch.randn(n, p, generator=g, dtype=torch.float64)
    return L @ F.T + E, L, F


def sparse_factors(n=150, p=100, K=3, density=0.3, scale=3.0, noise=1.0, seed=1):
    """Point-normal loadings and normal factors with overlapping supports."""
    g = torch.Generator().manual_seed(seed)
    keep = torch.rand(n, K, generator=g, dtype=torch.float64) < density
    L = torch.where(keep, scale * torch.randn(n, K, generator=g, dtype=torch.float64), torch.zeros(n, K, dtype=torch.float64))
    F = torch.randn(p, K, generator=g, dtype=torch.float64)
    E = noise * torch.randn(n, p, generator=g, dtype=torch.float64)
    return L @ F.T + E, L, F
