"""The one-pass ``X b`` / ``X^T (X b)`` product (``torchgenetics.susie._products``).

Checked against numpy's two BLAS passes on awkward shapes (rows not a multiple of
four, columns not a multiple of eight, a single row or column), through
``IndividualData.products`` with and without centring and scaling, and on whole
fits; the BLAS path still serves column-major and float32 X.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from susie_helpers import simulate

from torchgenetics.susie import data as data_module
from torchgenetics.susie import susie
from torchgenetics.susie.data import IndividualData

_products = data_module._products


def test_the_compiled_module_was_built():
    assert _products is not None, "torchgenetics.susie._products missing: reinstall (pip install -e .)"


@pytest.mark.parametrize("n,p", [(1, 1), (3, 5), (4, 8), (7, 17), (64, 1000), (1003, 997)])
def test_one_pass_equals_two_blas_passes(n, p):
    rng = np.random.default_rng(n * 7919 + p)
    X = rng.standard_normal((n, p)) + 2.0
    b = rng.standard_normal(p)
    f, g = np.empty(n), np.empty(p)
    _products.fused(X, b, 0.75, f, g)
    f_ref = X @ b - 0.75
    g_ref = f_ref @ X
    scale = np.abs(X).sum(1).max() * np.abs(b).max()
    assert np.abs(f - f_ref).max() <= 1e-14 * scale
    assert np.abs(g - g_ref).max() <= 1e-13 * np.abs(X).sum(0).max() * np.abs(f_ref).max()


def test_bad_arrays_are_refused():
    X, b = np.zeros((4, 3)), np.zeros(3)
    with pytest.raises(TypeError, match="float64"):
        _products.fused(X.astype(np.float32), b, 0.0, np.empty(4), np.empty(3))
    with pytest.raises(ValueError, match="C-contiguous"):
        _products.fused(np.asfortranarray(np.zeros((4, 3))), b, 0.0, np.empty(4), np.empty(3))
    with pytest.raises(ValueError, match="4 x 3"):
        _products.fused(X, b, 0.0, np.empty(5), np.empty(3))


@pytest.mark.parametrize("standardize,intercept", [(True, True), (False, True), (True, False)])
def test_products_equal_the_blas_path(standardize, intercept, monkeypatch):
    X, y = simulate(n=150, p=90, causal=(3, 40), seed=4)
    X = X * 0.5 + 1.0
    b = np.random.default_rng(0).standard_normal(90)
    fused = IndividualData(X, y, standardize=standardize, intercept=intercept)
    assert fused._arrays()["fused"]
    monkeypatch.setattr(data_module, "USE_FUSED_PRODUCTS", False)
    blas = IndividualData(X, y, standardize=standardize, intercept=intercept)
    assert not blas._arrays()["fused"]
    (f1, g1), (f2, g2) = fused.products(b), blas.products(b)
    assert np.allclose(f1, f2, rtol=1e-13, atol=1e-12)
    assert np.allclose(g1, g2, rtol=1e-12, atol=1e-10)


def test_fits_agree_with_the_blas_path_and_layouts(monkeypatch):
    X, y = simulate(n=300, p=200, causal=(10, 120), effect=0.4, seed=8)
    fused = susie(X, y, L=5)
    column_major = susie(X.T.contiguous().T, y, L=5)  # X^T contiguous: BLAS path
    monkeypatch.setattr(data_module, "USE_FUSED_PRODUCTS", False)
    blas = susie(X, y, L=5)
    for other in (blas, column_major):
        # products agree to ~1e-16; Brent's xatol (1e-8 in log V) bounds what follows
        assert torch.allclose(fused.pip, other.pip, rtol=0, atol=1e-8)
        assert abs(float(fused.elbo[-1] - other.elbo[-1])) < 1e-8
    assert [c.tolist() for c in fused.sets["cs"]] == [c.tolist() for c in blas.sets["cs"]]
