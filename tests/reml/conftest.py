"""Shared data for the REML tests (fixture ``rh``): simulated genotypes and phenotypes.

Phenotypes are drawn from the model itself (``u_g = sqrt(s2_g) Z_g b / sqrt(m_g)``
with ``b ~ N(0, I)``, so ``u_g ~ N(0, s2_g K_g)`` exactly), which makes the true
variance components known exactly.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from torchgenetics.datasets import simulate_genotypes

DT = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def standardize(dosages: np.ndarray) -> torch.Tensor:
    """Column-standardize dosages by hand (mean/sd of non-missing calls, missing -> 0)."""
    x = np.asarray(dosages, dtype=np.float64)
    mu = np.nanmean(x, 0)
    sd = np.nanstd(x, 0)
    keep = sd > 0
    z = (x[:, keep] - mu[keep]) / sd[keep]
    return torch.as_tensor(np.nan_to_num(z, nan=0.0))


def model_phenotype(Zs, variances, residual, seed, X=None, beta=None):
    """y = X beta + sum_g sqrt(s2_g / m_g) Z_g b_g + sqrt(s2_e) e."""
    g = gen(seed)
    n = Zs[0].shape[0]
    y = torch.randn(n, generator=g, dtype=DT) * residual**0.5
    for Z, s2 in zip(Zs, variances, strict=True):
        y = y + Z @ torch.randn(Z.shape[1], generator=g, dtype=DT) * (s2 / Z.shape[1]) ** 0.5
    if X is not None:
        y = y + X @ torch.as_tensor(beta, dtype=DT)
    return y


@pytest.fixture(autouse=True)
def one_thread():
    """Run each REML test on one intra-op thread, restoring the setting afterwards.

    On a shared 2-core machine, OpenMP's two threads spin-wait against other
    processes: measured 25x slower (124 s versus 5 s for the same 60 dense fits)
    than one thread under a load average of 5.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def rh():
    """Namespace of builders: ``sim(n, m, seed)``, ``standardize``, ``model_phenotype``, ``gen``."""
    cache = {}

    def sim(n, m, seed=0, chromosomes=1):
        key = (n, m, seed, chromosomes)
        if key not in cache:
            cache[key] = simulate_genotypes(n, m, chromosomes=chromosomes, seed=seed)
        return cache[key]

    return SimpleNamespace(sim=sim, standardize=standardize, model_phenotype=model_phenotype, gen=gen, DT=DT)
