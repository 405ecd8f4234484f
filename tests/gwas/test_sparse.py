"""Sparse REML + LASSO: the coordinate-descent path, EBIC, and selection under a polygenic background."""

from __future__ import annotations

import numpy as np
import pytest

from torchgenetics.datasets import simulate_genotypes, simulate_phenotype
from torchgenetics.errors import PhenotypeError
from torchgenetics.gwas import SparseREMLFit, ebic, lambda_grid, lasso_path, refit_rss, sparse_reml


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 30)) + 0.5 * rng.normal(size=(200, 1))   # correlated columns
    y = X[:, [2, 7, 11]] @ np.array([1.0, -0.7, 0.5]) + rng.normal(size=200)
    return X.T @ X, X.T @ y, float(y @ y), X, y


def test_path_satisfies_kkt(problem):
    H, g, ypy, *_ = problem
    lambdas = lambda_grid(g, 25, 0.01)
    path = lasso_path(H, g, lambdas, ypy=ypy, tol=1e-14)
    assert path.df[0] == 0 and path.df[-1] > 3
    for lam, b in zip(path.lambdas, path.coef, strict=True):
        grad = g - H @ b
        on = b != 0
        np.testing.assert_allclose(grad[on], lam * np.sign(b[on]), rtol=1e-4)
        assert np.all(np.abs(grad[~on]) <= lam * (1 + 1e-8))
    np.testing.assert_allclose(path.rss, [ypy - 2 * b @ g + b @ H @ b for b in path.coef])


def test_path_matches_sklearn(problem):
    linear_model = pytest.importorskip("sklearn.linear_model")
    H, g, ypy, X, y = problem
    lam = float(lambda_grid(g, 10, 0.05)[6])
    ours = lasso_path(H, g, [lam], ypy=ypy, tol=1e-16).coef[0]
    theirs = linear_model.Lasso(alpha=lam / len(y), fit_intercept=False, tol=1e-12, max_iter=100000).fit(X, y).coef_
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_refit_rss_and_ebic(problem):
    H, g, ypy, *_ = problem
    coef = np.zeros((2, 30))
    coef[1, [2, 7]] = 1.0
    rss = refit_rss(H, g, coef, ypy)
    S = [2, 7]
    assert rss[0] == ypy
    assert rss[1] == pytest.approx(ypy - g[S] @ np.linalg.solve(H[np.ix_(S, S)], g[S]))
    from math import comb, log
    assert ebic([10.0], [2], n=100, n_candidates=50, gamma=0.5)[0] == pytest.approx(10 + 2 * log(100) + log(comb(50, 2)))


@pytest.fixture(scope="module")
def background():
    """1000 samples x 4000 variants; four large effects on top of an infinitesimal h2 0.6."""
    sim = simulate_genotypes(1000, 4000, chromosomes=2, seed=2)
    G = sim.to_genotypes()
    rng = np.random.default_rng(2)
    pi = G.polymorphic_index()
    big = pi[np.searchsorted(pi, np.sort(rng.choice(4000, 4, replace=False))).clip(max=pi.size - 1)]
    poly = simulate_phenotype(sim, h2=0.6, n_causal=None, seed=12)
    Z = G.standardized(variants=big).numpy()
    y = poly.y + Z @ np.array([0.25, -0.25, 0.2, 0.22])
    return {"G": G, "y": y, "big": big, "X": np.nan_to_num(sim.dosages)}


def _score(fit, d):
    """(large effects recovered by a selected variant with |r| > 0.8, selections with |r| < 0.5 to all)."""
    sel = fit.support
    if sel.size == 0:
        return 0, 0
    r = np.abs(np.corrcoef(d["X"][:, sel].T, d["X"][:, d["big"]].T)[:sel.size, sel.size:])
    return int((r.max(0) > 0.8).sum()), int((r.max(1) < 0.5).sum())


def test_whitening_recovers_large_effects_with_fewer_false_positives(background, tmp_path):
    d = background
    whitened = sparse_reml(d["G"], d["y"], seed=0)
    plain = sparse_reml(d["G"], d["y"], whiten=False)
    hits_w, fp_w = _score(whitened, d)
    hits_p, fp_p = _score(plain, d)
    assert hits_w == 4
    assert fp_w < fp_p
    assert whitened.converged and 0.3 < whitened.h2 < 0.9
    assert whitened.variance_names == ["GRM", "residual"] and plain.h2 == 0.0
    frame = whitened.to_frame()
    assert len(frame) == whitened.support.size and (frame["P"] < 1e-6).all()
    assert whitened.path_frame()["chosen"].sum() == 1
    # the final REML fit carries the selected variants as fixed effects
    reml_fit = whitened.reml_fit()
    assert reml_fit.covariate_names[-whitened.support.size:] == [f"variant:{v}" for v in whitened.support]
    whitened.save(tmp_path / "s.h5")
    back = SparseREMLFit.load(tmp_path / "s.h5")
    assert back.support.tolist() == whitened.support.tolist()
    np.testing.assert_array_equal(back.path_coef, whitened.path_coef)
    assert back.reml_fit().variances.tolist() == reml_fit.variances.tolist()


def test_rejects_missing_phenotype(background):
    y = background["y"].copy()
    y[0] = np.nan
    with pytest.raises(PhenotypeError):
        sparse_reml(background["G"], y)
