"""Shared DeepWAS fixtures: one thread, small simulated data sets built once per session."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from torchgenetics.deepwas.regions import Region
from torchgenetics.deepwas.simulate import simulate_example


@pytest.fixture(autouse=True)
def _single_thread():
    """Small products: one thread is faster on the shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def small_example():
    """600 variants on 2 chromosomes, blocks of 100, strong signal (N = 50,000)."""
    return simulate_example(n_variants=600, n_reference=300, block_size=100, chromosomes=2, seed=0)


def _make_region(p=120, n_ref=400, seed=0, ridge=0.1, N=10_000.0, window=None, rank=None):
    """A region with LD from random-walk genotypes; z drawn from the model at f = 2 / (N p)."""
    g = torch.Generator().manual_seed(seed)
    n = n_ref if rank is None else rank
    X = torch.randn(n, p, generator=g, dtype=torch.float64).cumsum(1)
    X = (X - X.mean(0)) / X.std(0)
    R = X.T @ X / n
    R = (1 - ridge) * R + ridge * torch.eye(p, dtype=torch.float64)
    win = torch.arange(p) if window is None else torch.as_tensor(window)
    f = torch.full((p,), 2.0 / (N * p), dtype=torch.float64)
    beta = torch.randn(p, generator=g, dtype=torch.float64) * f.sqrt()
    lam, U = torch.linalg.eigh(R)
    e = U @ (lam.clamp_min(0).sqrt() * torch.randn(p, generator=g, dtype=torch.float64))
    z = (math.sqrt(N) * R @ beta + e)[win]
    feats = torch.randn(p, 3, generator=g, dtype=torch.float64)
    ids = np.array([f"v{i}" for i in range(p)], dtype=object)
    return Region("test", "1", ids, R, win, z, torch.full((len(win),), math.sqrt(N), dtype=torch.float64),
                  feats)


@pytest.fixture
def region_factory():
    """Build test regions: ``region_factory(p=..., n_ref=..., ridge=..., window=..., rank=...)``."""
    return _make_region
