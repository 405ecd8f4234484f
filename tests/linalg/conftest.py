"""Shared builders for the linalg tests (fixture ``lh``): small dense SPD matrices with known answers."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

DT = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def lowrank_cov(n: int, m: int, s2g: float = 0.5, s2e: float = 0.5, seed: int = 0):
    """V = s2g Z Z^T / m + s2e I with standardized random genotype-like Z; returns (V, K, Z)."""
    g = gen(seed)
    p = 0.05 + 0.45 * torch.rand(m, generator=g, dtype=DT)
    X = (torch.rand(n, m, generator=g, dtype=DT) < p).to(DT) + (
        torch.rand(n, m, generator=g, dtype=DT) < p
    ).to(DT)
    Z = (X - X.mean(0)) / X.std(0).clamp_min(1e-12)
    K = Z @ Z.T / m
    V = s2g * K + s2e * torch.eye(n, dtype=DT)
    return V, K, Z


def structured_kernel(n: int, seed: int = 0, decay: float = 1.2):
    """PSD kernel with a power-law spectrum (large leading eigenvalues), trace n."""
    g = gen(seed)
    Q = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=DT)).Q
    lam = torch.arange(1, n + 1, dtype=DT) ** (-decay)
    lam = lam * n / lam.sum()
    return (Q * lam) @ Q.T


def rel_err(a, b) -> float:
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


@pytest.fixture
def lh():
    """The helpers above as one namespace (tests run with --import-mode=importlib)."""
    return SimpleNamespace(
        DT=DT,
        gen=gen,
        lowrank_cov=lowrank_cov,
        structured_kernel=structured_kernel,
        rel_err=rel_err,
    )


@pytest.fixture(autouse=True)
def _single_thread():
    """Small matrices: one BLAS thread is faster and immune to oversubscribed shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
