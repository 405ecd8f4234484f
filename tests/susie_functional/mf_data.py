"""Simulated data of the functional SuSiE tests (imported by the test modules)."""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from torchgenetics.datasets import simulate_genotypes

N3_DIR = Path(os.environ.get("TORCHGEN_N3_DIR", Path(__file__).resolve().parents[3] / "shared" / "data"
                             / "n3finemapping"))
F64 = torch.float64


@lru_cache(maxsize=4)
def genotypes(n: int, p: int, seed: int) -> torch.Tensor:
    """(n, p) simulated dosages with LD (torchgenetics.datasets.simulate_genotypes)."""
    return torch.as_tensor(simulate_genotypes(n, p, seed=seed).dosages, dtype=F64)


def vignette(causal=(11, 79), beta=(0.1, -0.07), sd=1.0, T=32, M=2, seed=5, X=None):
    """The seed vignette's loci: X, a signal locus (two causal variants with the same effect
    at every position of every outcome, as in the vignette) and a null locus."""
    X = genotypes(574, 120, 11) if X is None else X
    n, p = X.shape
    g = torch.Generator().manual_seed(seed)
    b = torch.zeros(p, dtype=F64)
    b[list(causal)] = torch.tensor(beta, dtype=F64)
    signal = [(X @ b)[:, None] * torch.ones(T, dtype=F64) + sd * torch.randn(n, T, generator=g, dtype=F64)
              for _ in range(M)]
    null = [sd * torch.randn(n, T, generator=g, dtype=F64) for _ in range(M)]
    return X, signal, null


def shapes(T: int = 64):
    """Effect curves of two causal variants on two outcomes: {(variant slot, outcome): curve}."""
    s = torch.arange(T, dtype=F64)
    return {
        (0, 0): 0.6 * torch.exp(-(((s - 0.3 * T) / (0.08 * T)) ** 2)),
        (0, 1): 0.4 * torch.sin(2 * math.pi * s / T),
        (1, 0): -0.5 * (s > 0.6 * T).to(F64),
        (1, 1): 0.5 * torch.exp(-(((s - 0.7 * T) / (0.1 * T)) ** 2)) - 0.3 * torch.exp(-(((s - 0.3 * T) / (0.1 * T)) ** 2)),
    }


def shaped(causal=(7, 41), n=400, p=60, T=64, sd=1.0, seed=3):
    """X and two functional outcomes whose effect curves at ``causal`` are :func:`shapes`."""
    X = genotypes(n, p, 21)
    g = torch.Generator().manual_seed(seed)
    curves = shapes(T)
    Y = []
    for m in range(2):
        effect = X[:, [causal[0]]] * curves[(0, m)] + X[:, [causal[1]]] * curves[(1, m)]
        Y.append(effect + sd * torch.randn(n, T, generator=g, dtype=F64))
    return X, Y, curves


def n3_genotypes(p: int = 120):
    """The first p columns of N3finemapping's X, or None when the data are absent."""
    path = N3_DIR / "N3finemapping_X.csv.gz"
    if not path.exists():
        return None
    import pandas as pd

    return torch.as_tensor(pd.read_csv(path, header=None, usecols=range(p)).to_numpy(np.float64))


def small(causal=(4,), n=300, p=30, T=16, sd=0.6, seed=8):
    """A small locus: two outcomes of T positions, effect curves at ``causal``, plus a scalar outcome."""
    X = genotypes(n, p, 31)
    g = torch.Generator().manual_seed(seed)
    s = torch.arange(T, dtype=F64)
    bump = torch.exp(-(((s - T / 3) / (T / 8)) ** 2))
    Y1 = sum(X[:, [j]] * bump for j in causal) + sd * torch.randn(n, T, generator=g, dtype=F64)
    Y2 = sum(-0.7 * X[:, [j]] * torch.cos(s / T * math.pi) for j in causal) + sd * torch.randn(n, T, generator=g,
                                                                                              dtype=F64)
    y3 = sum(0.5 * X[:, j] for j in causal) + sd * torch.randn(n, generator=g, dtype=F64)
    return X, [Y1, Y2], y3


def one_thread():
    """Body of a module-scoped autouse fixture: module-scoped fits also run on one torch thread
    (the conftest's fixture is function-scoped, and results depend on the thread count in the
    last bits)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
