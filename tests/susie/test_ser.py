"""Single-effect regression: a case done by hand, L = 1 against the closed form, Brent's method."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from torchgenetics.susie import single_effect_regression, susie
from torchgenetics.susie.ser import brent_minimize, log_prior_weights, optimize_prior_variance

F64 = torch.float64


def test_three_variants_by_hand():
    # X columns c1 = (1,0,1,0), c2 = (0,1,1,0), c3 = (1,1,0,1); y = (1,2,2,0); sigma2 = V = 1.
    # d = (2, 2, 3), X'y = (3, 4, 3), bhat = (3/2, 2, 1), shat2 = (1/2, 1/2, 1/3).
    # lbf_j = 1/2 log(s2/(V+s2)) + 1/2 bhat^2 V / (s2 (V+s2)):
    lbf = [0.5 * math.log(1 / 3) + 3 / 2, 0.5 * math.log(1 / 3) + 8 / 3, math.log(1 / 2) + 9 / 8]
    w = [math.exp(v) for v in lbf]
    alpha = [v / sum(w) for v in w]
    mu = [3 / 3, 4 / 3, 3 / 4]              # post_var * X'y / sigma2, post_var = 1/(1/V + d)
    post_var = [1 / 3, 1 / 3, 1 / 4]
    mu2 = [v + m * m for v, m in zip(post_var, mu, strict=True)]
    # With the exact SER posterior the ELBO is the log marginal likelihood:
    # sum log N(y_i; 0, 1) + log(mean_j BF_j), y'y = 9, n = 4.
    log_ml = -2 * math.log(2 * math.pi) - 9 / 2 + math.log(sum(w) / 3)

    X = torch.tensor([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1]], dtype=F64)
    y = torch.tensor([1, 2, 2, 0], dtype=F64)
    var_y = float(y.var())
    fit = susie(X, y, L=1, standardize=False, intercept=False, residual_variance=1.0,
                   estimate_residual_variance=False, estimate_prior_variance=False,
                   scaled_prior_variance=1.0 / var_y, min_abs_corr=0.0)
    assert fit.alpha[0].tolist() == pytest.approx(alpha, abs=1e-12)
    assert fit.mu[0].tolist() == pytest.approx(mu, abs=1e-12)
    assert fit.mu2[0].tolist() == pytest.approx(mu2, abs=1e-12)
    assert fit.lbf_variable[0].tolist() == pytest.approx(lbf, abs=1e-12)
    # susieR adds sqrt(eps) to the prior weights: log(1 + 3 sqrt(eps)) = 4.5e-8 on top.
    assert float(fit.elbo[-1]) == pytest.approx(log_ml, abs=1e-7)
    assert fit.pip.tolist() == pytest.approx(alpha, abs=1e-12)
    assert [0.2081, 0.6681, 0.1238] == pytest.approx(alpha, abs=1e-4)  # the numbers themselves


def _closed_form_ser(X, y, V, sigma2):
    """SER on standardised X and centred y, written out with numpy."""
    Xs = (X - X.mean(0)) / X.std(0, ddof=1)
    yc = y - y.mean()
    d = (Xs * Xs).sum(0)
    xty = Xs.T @ yc
    bhat, s2 = xty / d, sigma2 / d
    lbf = 0.5 * np.log(s2 / (V + s2)) + 0.5 * bhat**2 * V / (s2 * (V + s2))
    w = np.exp(lbf - lbf.max())
    post_var = 1 / (1 / V + d / sigma2)
    return w / w.sum(), post_var * xty / sigma2, lbf


def test_l1_equals_closed_form_on_real_genotypes(n3):
    X, y = n3["X"], n3["y"]
    var_y = y.var(ddof=1)
    fit = susie(torch.from_numpy(X), torch.from_numpy(y), L=1, estimate_prior_variance=False,
                   estimate_residual_variance=False)
    alpha, mu, lbf = _closed_form_ser(X, y, 0.2 * var_y, var_y)
    assert np.abs(fit.alpha[0].numpy() - alpha).max() < 1e-10
    assert np.abs(fit.mu[0].numpy() - mu).max() < 1e-10
    assert np.abs(fit.lbf_variable[0].numpy() - lbf).max() < 1e-8
    assert fit.n_iter == 2 and fit.converged


def test_l1_optim_maximises_the_ser_likelihood(n3):
    X, y = n3["X"], n3["y"]
    var_y = y.var(ddof=1)
    fit = susie(torch.from_numpy(X), torch.from_numpy(y), L=1, estimate_residual_variance=False)
    V = float(fit.V[0])

    def loglik(v):
        _, _, lbf = _closed_form_ser(X, y, v, var_y)
        m = lbf.max()
        return m + np.log(np.mean(np.exp(lbf - m)))

    assert V > 0
    for factor in (0.9, 0.99, 1.01, 1.1):
        assert loglik(V) >= loglik(V * factor)
    alpha, _, _ = _closed_form_ser(X, y, V, var_y)
    assert np.abs(fit.alpha[0].numpy() - alpha).max() < 1e-8


def test_brent_finds_minima():
    assert brent_minimize(lambda x: (x - 2.0) ** 2 + 1.0, -30.0, 15.0) == pytest.approx(2.0, abs=1e-7)
    assert brent_minimize(lambda x: math.cosh(x - 14.0), -30.0, 15.0) == pytest.approx(14.0, abs=1e-6)
    # minimum on the boundary
    assert brent_minimize(lambda x: x, -30.0, 15.0) == pytest.approx(-30.0, abs=1e-6)


def test_brent_follows_scipy_bounded_step_by_step():
    optimize = pytest.importorskip("scipy.optimize")
    for shift in (-7.3, 0.4, 9.9):
        def f(x, shift=shift):
            return math.log1p((x - shift) ** 2) + 0.1 * math.sin(3 * x)

        ref = optimize.minimize_scalar(f, bounds=(-30.0, 15.0), method="bounded",
                                       options={"xatol": 1e-8}).x
        assert brent_minimize(f, -30.0, 15.0) == ref


def test_prior_variance_null_check_and_methods():
    lp = log_prior_weights(torch.full((3,), 1 / 3, dtype=F64))
    d = torch.full((3,), 100.0, dtype=F64)
    null_xtr = torch.tensor([0.1, -0.2, 0.05], dtype=F64)
    assert optimize_prior_variance(null_xtr, d, 1.0, lp, 0.5, "optim") == 0.0
    assert optimize_prior_variance(null_xtr, d, 1.0, lp, 0.5, "simple") == 0.0
    assert optimize_prior_variance(null_xtr, d, 1.0, lp, 0.5, "none") == 0.5
    strong = torch.tensor([60.0, 1.0, -2.0], dtype=F64)
    assert optimize_prior_variance(strong, d, 1.0, lp, 0.5, "simple") == 0.5
    # A very large threshold forces V = 0 even for a strong signal.
    assert optimize_prior_variance(strong, d, 1.0, lp, 0.5, "optim", check_null_threshold=1e6) == 0.0
    res = single_effect_regression(strong, d, 0.5, 1.0, lp, method="EM")
    assert res.V == pytest.approx(float((res.alpha * res.mu2).sum()), rel=1e-12)
