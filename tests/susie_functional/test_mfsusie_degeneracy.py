"""mfsusie with one scalar outcome, a one-component prior without null, a fixed prior
variance and ELBO convergence is susie with ``estimate_prior_variance=False``."""

from __future__ import annotations

import pytest
import torch

from torchgenetics.susie import susie
from torchgenetics.susie.functional import mfsusie

F64 = torch.float64
TOL = 1e-10


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(3)
    n, p = 200, 30
    X = torch.randn(n, p, generator=g, dtype=F64)
    beta = torch.zeros(p, dtype=F64)
    beta[0], beta[1] = 1.0, -0.5
    y = X @ beta + 0.5 * torch.randn(n, generator=g, dtype=F64)
    y = (y - y.mean()) / y.std()  # unit variance: the outcome scaling of mfsusie is 1
    return X, y


@pytest.mark.parametrize("L", [1, 5, 10])
@pytest.mark.parametrize("standardize", [True, False])
def test_degenerates_to_susie(data, L, standardize):
    X, y = data
    ref = susie(X, y, L=L, scaled_prior_variance=0.2, estimate_prior_variance=False, tol=1e-8,
                standardize=standardize)
    fit = mfsusie(X, [y], L=L, L_greedy=None, prior_variance_grid=[0.2], null_component=False,
                  estimate_prior=False, convergence="elbo", tol=1e-8, standardize=standardize)
    assert fit.n_iter == ref.n_iter
    assert fit.converged and ref.converged
    assert fit.mu.shape == (L, X.shape[1], 1)
    torch.testing.assert_close(fit.alpha, ref.alpha, rtol=0, atol=TOL)
    torch.testing.assert_close(fit.mu[..., 0], ref.mu, rtol=0, atol=TOL)
    torch.testing.assert_close(fit.mu2[..., 0], ref.mu2, rtol=0, atol=TOL)
    assert abs(float(fit.sigma2[0]) - ref.sigma2) < TOL
    torch.testing.assert_close(fit.elbo, ref.elbo, rtol=0, atol=TOL)
    torch.testing.assert_close(fit.KL, ref.KL, rtol=0, atol=TOL)
    torch.testing.assert_close(fit.lbf, ref.lbf, rtol=0, atol=TOL)
    torch.testing.assert_close(fit.pip, ref.pip, rtol=0, atol=TOL)
    assert [c.tolist() for c in fit.sets["cs"]] == [c.tolist() for c in ref.sets["cs"]]
    torch.testing.assert_close(fit.V, torch.full((L,), 0.2, dtype=F64))


def test_scalar_coefficients_on_the_data_scale(data):
    """coef() of a scalar outcome is susie's coefficient on the scale of X and y."""
    X, y = data
    y3 = 3.0 * y + 1.0
    ref = susie(X, y3, L=5, scaled_prior_variance=0.2, estimate_prior_variance=False, tol=1e-8)
    fit = mfsusie(X, [y3], L=5, L_greedy=None, prior_variance_grid=[0.2], null_component=False,
                  estimate_prior=False, convergence="elbo", tol=1e-8)
    torch.testing.assert_close(fit.coef(0)[:, 0], ref.coef()[1:], rtol=0, atol=1e-8)
    torch.testing.assert_close(fit.intercept_curve(0), ref.coef()[:1], rtol=0, atol=1e-8)
    torch.testing.assert_close(fit.predict()[0][:, 0], ref.fitted, rtol=0, atol=1e-8)
