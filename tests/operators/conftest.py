"""Shared fixtures for the operator tests.

``dense_twin`` is the one routine every operator is checked with: matmul (n x k,
vector, batched), transpose, diagonal, ``to_dense`` and gradients w.r.t. the
right-hand side, all against a dense reference to 1e-10 relative.

``geno`` is a small genotype matrix with missing calls and monomorphic variants,
and ``hand_z`` standardizes it by hand with numpy (never via the library).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchgenetics.genotypes import Genotypes

RTOL = 1e-10


def assert_close(actual, expected, rtol=RTOL, what=""):
    """Max-abs error relative to the reference's max-abs entry (absolute when it is ~0)."""
    actual = torch.as_tensor(actual, dtype=torch.float64)
    expected = torch.as_tensor(expected, dtype=torch.float64)
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    err = float((actual - expected).abs().max()) if expected.numel() else 0.0
    denom = scale if scale > 0 else 1.0
    assert err <= rtol * denom, f"{what}: max error {err:.3g} > {rtol:g} x {denom:.3g}"


def check_dense_twin(op, dense, rtol=RTOL, k=3, batch=2, seed=0):
    """Check a LinearOperator against its dense twin; returns nothing, asserts everything."""
    dense = torch.as_tensor(dense, dtype=op.dtype, device=op.device)
    n = dense.shape[-1]
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape):
        return torch.randn(*shape, generator=gen, dtype=op.dtype).to(op.device)

    assert tuple(op.shape) == tuple(dense.shape)
    assert_close(op.to_dense(), dense, rtol, "to_dense")
    V = rnd(n, k)
    assert_close(op.matmul(V), dense @ V, rtol, "matmul n x k")
    assert_close(op @ V, dense @ V, rtol, "operator @ tensor")
    v = rnd(n)
    out = op.matmul(v)
    assert out.shape == (n,)
    assert_close(out, dense @ v, rtol, "matmul vector (k = 1)")
    assert_close(op.matmul(v.unsqueeze(-1)), dense @ v.unsqueeze(-1), rtol, "matmul n x 1")
    Vb = rnd(batch, n, k)
    assert_close(op.matmul(Vb), dense @ Vb, rtol, "batched right-hand side")
    assert_close(op.mT.matmul(V), dense.T @ V, rtol, "transpose matmul")
    assert_close(op.transpose(-1, -2).to_dense(), dense.T, rtol, "transpose to_dense")
    assert_close(V.T @ op, V.T @ dense, rtol, "left multiplication")
    assert_close(op.diagonal(), dense.diagonal(), rtol, "diagonal")
    # what linear_operator needs for broadcasting and indexing
    assert_close(op.expand(batch, n, n).matmul(Vb), dense @ Vb, rtol, "expanded batch")
    assert_close(op.unsqueeze(0).to_dense()[0], dense, rtol, "unsqueezed batch")
    idx = torch.tensor([0, n - 1, n // 2])
    assert_close(op[idx, idx], dense[idx, idx], rtol, "entries by index")
    assert_close(op[1:4, 0:3].to_dense(), dense[1:4, 0:3], rtol, "sub-block")
    # gradients w.r.t. the right-hand side: through LinearOperator.matmul and _matmul
    W = rnd(n, k)
    for fn, name in ((op.matmul, "matmul"), (op._matmul, "_matmul")):
        X = V.clone().requires_grad_(True)
        (g,) = torch.autograd.grad((fn(X) * W).sum(), X)
        assert_close(g, dense.T @ W, rtol, f"gradient via {name}")
    x = v.clone().requires_grad_(True)
    (g,) = torch.autograd.grad((op.matmul(x) * v).sum(), x)
    assert_close(g, dense.T @ v, rtol, "gradient, vector right-hand side")
    Xb = Vb.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(op.matmul(Xb).square().sum(), Xb)
    assert_close(g, 2 * dense.T @ (dense @ Vb), rtol, "gradient, batched right-hand side")


def hand_standardize(X):
    """Standardize dosages by hand: z = (x - mean) / sd over non-missing calls, missing -> 0.

    Returns ``Z`` (n x m, zero columns for monomorphic variants) and the polymorphic mask.
    """
    X = np.asarray(X, dtype=np.float64)
    n, m = X.shape
    Z = np.zeros((n, m))
    poly = np.zeros(m, dtype=bool)
    for j in range(m):
        obs = ~np.isnan(X[:, j])
        vals = X[obs, j]
        if vals.size < 2 or np.unique(vals).size < 2:
            continue
        mu = vals.sum() / vals.size
        sd = np.sqrt(((vals - mu) ** 2).sum() / vals.size)
        Z[obs, j] = (vals - mu) / sd
        poly[j] = True
    return Z, poly


def make_dosages(n=40, m=60, seed=1, missing=0.06):
    """Dosages with missing calls and every kind of monomorphic variant."""
    rng = np.random.default_rng(seed)
    freq = rng.uniform(0.05, 0.5, size=m)
    X = rng.binomial(2, freq, size=(n, m)).astype(np.float64)
    X[rng.random((n, m)) < missing] = np.nan
    if m < 40:
        X[:, 2] = 0.0
        return X
    X[:, 2] = 0.0  # monomorphic, no missing
    X[:, 11] = 2.0
    X[rng.random(n) < 0.3, 11] = np.nan  # monomorphic with missing calls
    X[:, 23] = np.nan
    X[5, 23] = 1.0  # a single call
    X[:, 37] = np.nan  # no call at all
    return X


@pytest.fixture
def dense_twin():
    """The shared dense-twin check."""
    return check_dense_twin


@pytest.fixture(scope="module")
def dosages():
    return make_dosages()


@pytest.fixture
def geno(dosages):
    """A fresh Genotypes (per test, so pass counters start at zero)."""
    return Genotypes.from_array(dosages)


@pytest.fixture(scope="module")
def hand_z(dosages):
    return hand_standardize(dosages)


@pytest.fixture
def tiny_geno():
    """8 samples x 12 variants (with missing calls) for costly checks such as gradcheck."""
    return Genotypes.from_array(make_dosages(n=8, m=12, seed=3))
