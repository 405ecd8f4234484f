"""Shared fixtures of the association tests: one torch thread, simulated cohorts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from torchgenetics.datasets import simulate_genotypes, simulate_phenotype


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine OpenMP threads spin against other processes."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def polygenic():
    """800 samples x 1200 variants on 3 chromosomes (1% missing calls), h2 0.6 from 300 causal
    variants, two covariates with effects."""
    sim = simulate_genotypes(800, 1200, chromosomes=3, seed=0, missing_rate=0.01)
    ph = simulate_phenotype(sim, h2=0.6, n_causal=300, seed=1)
    C = np.random.default_rng(0).normal(size=(800, 2))
    y = ph.y + C @ np.array([0.5, -0.2])
    return {"sim": sim, "G": sim.to_genotypes(), "y": y, "C": C, "causal": ph.causal}


@pytest.fixture(scope="session")
def small_missing():
    """300 samples x 60 variants with 5% missing calls and two phenotypes with different missingness."""
    sim = simulate_genotypes(300, 60, chromosomes=2, seed=4, missing_rate=0.05)
    rng = np.random.default_rng(3)
    X = np.nan_to_num(sim.dosages, nan=1.0)
    Y = np.column_stack([X[:, 7] * 0.4 + rng.normal(size=300), rng.normal(size=300) * 2 + 5])
    Y[rng.choice(300, 25, replace=False), 1] = np.nan
    C = pd.DataFrame({"age": rng.normal(50, 10, 300), "batch": rng.integers(0, 2, 300).astype(float)})
    return {"sim": sim, "G": sim.to_genotypes(), "Y": Y, "C": C}
