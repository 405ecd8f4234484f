"""The exact path against an independent dense reference maximised with scipy.

The reference is written here from the closed form
``l(theta) = -0.5 (log|V| + log|X'V^-1X| + y'Py)`` in numpy (explicit P), with its
textbook gradient ``-0.5 (tr(P K_i) - y'P K_i P y)``, checked against finite
differences, and maximised by L-BFGS-B.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import optimize

from torchgenetics.linalg import EigenKernel
from torchgenetics.operators import GRM
from torchgenetics.reml import reml, reml_loglik

TOL = 1e-6


def reference_fit(y, Ks, X):
    """Maximise the closed-form REML likelihood with scipy (explicit inverse and P, no library code)."""
    y, X = torch.as_tensor(y, dtype=torch.float64), torch.as_tensor(X, dtype=torch.float64)
    Ks = [torch.as_tensor(K, dtype=torch.float64) for K in Ks] + [torch.eye(len(y), dtype=torch.float64)]

    def parts(theta):
        V = sum(float(t) * K for t, K in zip(theta, Ks, strict=True))
        Vi = torch.linalg.inv(V)
        A = X.T @ Vi @ X
        P = Vi - Vi @ X @ torch.linalg.solve(A, X.T @ Vi)
        ll = -0.5 * (torch.linalg.slogdet(V)[1] + torch.linalg.slogdet(A)[1] + y @ P @ y)
        Py = P @ y
        grad = [-0.5 * float((P * K).sum() - Py @ K @ Py) for K in Ks]
        return float(ll), np.array(grad)

    def negative(theta):
        ll, grad = parts(theta)
        return -ll, -grad

    x0 = np.full(len(Ks), float(y.var()) / len(Ks))
    # the reference gradient itself is checked against central differences
    _, g0 = parts(x0)
    eps = 1e-6
    fd = [(parts(x0 + eps * e)[0] - parts(x0 - eps * e)[0]) / (2 * eps) for e in np.eye(len(Ks))]
    assert np.allclose(fd, g0, rtol=1e-5, atol=1e-6)
    bounds = [(0.0, None)] * (len(Ks) - 1) + [(1e-8, None)]
    res = optimize.minimize(negative, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                            options={"ftol": 1e-16, "gtol": 1e-11, "maxiter": 2000})
    return res.x, -res.fun


@pytest.fixture(scope="module")
def data(rh):
    sim = rh.sim(300, 400, seed=11)
    Z = rh.standardize(sim.dosages)
    Z1, Z2 = Z[:, :200], Z[:, 200:]
    g = rh.gen(5)
    X = torch.cat([torch.ones(300, 1, dtype=rh.DT), torch.randn(300, 2, generator=g, dtype=rh.DT)], 1)
    y = rh.model_phenotype([Z1, Z2], [0.4, 0.25], 0.5, seed=3, X=X, beta=[1.0, 0.5, -0.3])
    return dict(sim=sim, Z=Z, Z1=Z1, Z2=Z2, X=X, y=y, K=Z @ Z.T / Z.shape[1], K1=Z1 @ Z1.T / 200,
                K2=Z2 @ Z2.T / 200)


def test_one_kernel_matches_scipy_reference(data):
    y, X, K = data["y"], data["X"][:, 1:], data["K"]
    ref, ref_ll = reference_fit(y, [K], data["X"])
    fit = reml(y, K, X, tol=1e-12, param_tol=1e-10)
    assert fit.method == "exact-band" and fit.converged
    assert np.abs(fit.variances.numpy() - ref).max() < TOL
    assert abs(fit.loglik - ref_ll) < 1e-8
    # the covariates come back with names and the intercept first
    assert fit.covariate_names == ["intercept", "covar1", "covar2"]


def test_two_kernels_match_scipy_reference(data):
    y, X = data["y"], data["X"][:, 1:]
    ref, ref_ll = reference_fit(y, [data["K1"], data["K2"]], data["X"])
    fit = reml(y, [data["K1"], data["K2"]], X, tol=1e-12, param_tol=1e-10)
    assert fit.method == "exact-cholesky" and fit.converged
    assert np.abs(fit.variances.numpy() - ref).max() < TOL
    assert abs(fit.loglik - ref_ll) < 1e-8


def test_eigh_woodbury_and_cholesky_paths_agree(data):
    """One GRM with m < n takes the Woodbury (thin SVD) path; the three exact evaluators agree."""
    from torchgenetics.reml.exact import DenseREML, SpectralREML

    sim, y, X = data["sim"], data["y"], data["X"][:, 1:]
    grm = GRM(sim.to_genotypes(), variants=np.arange(150))  # m = 150 < n = 300
    kw = dict(tol=1e-12, param_tol=1e-10)
    wood = reml(y, grm, X, **kw)
    assert wood.method == "exact-woodbury"
    dense = grm.to_dense()
    eig = reml(y, dense, X, **kw)
    assert eig.method == "exact-band"
    assert torch.allclose(wood.variances, eig.variances, atol=1e-8)
    assert abs(wood.loglik - eig.loglik) < 1e-8
    pre = reml(y, EigenKernel.from_kernel(dense), X, **kw)  # a precomputed EigenKernel is a kernel
    assert torch.allclose(pre.variances, eig.variances, atol=1e-8)
    # likelihood, score and AI of the Cholesky and spectral evaluators, away from the optimum
    theta = torch.tensor([0.7, 0.3], dtype=torch.float64)
    a = DenseREML([dense], y, data["X"]).evaluate(theta)
    Z = rh_standardized(grm)
    for spectral in (SpectralREML(EigenKernel.from_kernel(dense), y, data["X"]),
                     SpectralREML(EigenKernel.from_factor(Z, scale=150), y, data["X"])):
        b = spectral.evaluate(theta)
        assert abs(a.loglik - b.loglik) < 1e-9
        for name in ("score", "ai", "quad", "trace", "beta", "beta_cov"):
            assert torch.allclose(getattr(a, name), getattr(b, name), rtol=1e-9, atol=1e-9), name


def rh_standardized(grm):
    return grm.genotypes.standardized(variants=grm.variant_index)


def test_loglik_is_the_differentiable_likelihood(data):
    """reml_loglik at the estimate equals fit.loglik; its gradient is the (zero) score."""
    y, X = data["y"], data["X"][:, 1:]
    fit = reml(y, [data["K1"], data["K2"]], X, tol=1e-12, param_tol=1e-10)
    theta = fit.variances.clone().requires_grad_(True)
    ll = reml_loglik(theta, y, [data["K1"], data["K2"]], X)
    assert abs(float(ll.detach()) - fit.loglik) < 1e-8
    ll.backward()
    assert float(theta.grad.abs().max()) < 1e-5
    # away from the optimum the gradient equals the score the optimizer uses
    from torchgenetics.reml.exact import DenseREML

    t = torch.tensor([0.3, 0.1, 0.7], dtype=torch.float64, requires_grad=True)
    reml_loglik(t, y, [data["K1"], data["K2"]], X).backward()
    ev = DenseREML([data["K1"], data["K2"]], y, data["X"]).evaluate(t.detach())
    assert torch.allclose(t.grad, ev.score, rtol=1e-8, atol=1e-8)


def test_boundary_estimate_is_zero_and_converged(rh, data):
    """A kernel with no signal ends at exactly 0 (bound-constrained step), converged."""
    y, X = data["y"], data["X"][:, 1:]
    sim = rh.sim(300, 200, seed=99)
    Zn = rh.standardize(sim.dosages)
    noise = Zn @ Zn.T / Zn.shape[1]
    fit = reml(y, {"signal": data["K"], "noise": noise}, X, tol=1e-12, param_tol=1e-10)
    ref, _ = reference_fit(y, [data["K"], noise], data["X"])
    assert fit.converged
    assert np.abs(fit.variances.numpy() - ref).max() < TOL


def test_he_regression_equals_the_pairwise_least_squares(data):
    """HE moments equal the least-squares regression of y*y*' on vec(M K_g M), vec(M), written out."""
    from torchgenetics.reml.moments import he_regression

    y, X = data["y"], data["X"]
    Ks = [data["K1"], data["K2"]]
    n = len(y)
    M = torch.eye(n, dtype=torch.float64) - X @ torch.linalg.solve(X.T @ X, X.T)
    ys = M @ y
    design = torch.stack([(M @ K @ M).reshape(-1) for K in Ks] + [M.reshape(-1)], 1)
    expected = torch.linalg.lstsq(design, torch.outer(ys, ys).reshape(-1, 1)).solution.squeeze(1)
    assert torch.allclose(he_regression(Ks, y, X), expected, rtol=1e-9, atol=1e-10)


def test_mixed_precision_grm_agrees_with_double(data):
    """float32 genotype blocks accumulated in float64: the fit moves by rounding only."""
    from torchgenetics.reml.exact import dense_kernel

    sim, y, X = data["sim"], data["y"], data["X"][:, 1:]
    grm = GRM(sim.to_genotypes())
    exact = grm.to_dense()
    mixed = dense_kernel(grm, "mixed")
    assert torch.equal(mixed, mixed.mT)
    err = float((mixed - exact).abs().max())
    assert 0 < err < 1e-6 * float(exact.abs().max())
    a = reml(y, grm, X, grm_precision="mixed", tol=1e-12, param_tol=1e-10)
    b = reml(y, grm, X, grm_precision="double", tol=1e-12, param_tol=1e-10)
    assert a.settings["grm_precision"] == "mixed"
    assert float((a.variances - b.variances).abs().max()) < 1e-6
    with pytest.raises(Exception, match="grm_precision"):
        reml(y, grm, X, grm_precision="half")
