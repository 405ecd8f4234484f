"""Point-normal flash with one factor equals a hand-written rank-one EBMF with closed-form updates."""

import math

import numpy as np
import torch
from scipy import optimize, special, stats

from torchgenetics.flash import steps


def _pn_mle(x, s):
    """Point-normal prior by maximum marginal likelihood (scipy, several starts, null compared)."""

    def nll(par):
        w, sd = special.expit(par[0]), math.exp(par[1])
        lik = (1 - w) * stats.norm.pdf(x, scale=s) + w * stats.norm.pdf(x, scale=np.sqrt(s**2 + sd**2))
        return -np.log(lik).sum()

    best = min((optimize.minimize(nll, st, method="Nelder-Mead", options={"xatol": 1e-12, "fatol": 1e-13, "maxiter": 20000})
                for st in ([0.0, 0.0], [2.0, 1.0], [-2.0, 0.5])), key=lambda r: r.fun)
    null = -stats.norm.logpdf(x, scale=s).sum()
    if null <= best.fun:
        return 1.0, 1.0
    return 1 - special.expit(best.x[0]), math.exp(best.x[1])


def _pn_posterior(x, s, pi0, sd):
    slab = (1 - pi0) * stats.norm.pdf(x, scale=np.sqrt(s**2 + sd**2))
    null = pi0 * stats.norm.pdf(x, scale=s)
    w = slab / (slab + null)
    shrink = sd**2 / (sd**2 + s**2)
    m, v = shrink * x, shrink * s**2
    mean, mean2 = w * m, w * (m**2 + v)
    loglik = np.log(slab + null).sum()
    nm = (-0.5 * np.log(2 * np.pi * s**2) - (x**2 - 2 * x * mean + mean2) / (2 * s**2)).sum()
    return mean, mean2, nm - loglik


def _rank_one_ebmf(Y, lo, f, iters=400):
    n, p = Y.shape
    l2, f2 = lo**2, f**2
    tau = n * p / ((Y - np.outer(lo, f)) ** 2).sum()
    elbo = -np.inf
    for _ in range(iters):
        s2 = 1 / (tau * f2.sum())
        x = tau * (Y @ f) * s2
        lo, l2, kl_l = _pn_posterior(x, np.sqrt(s2), *_pn_mle(x, np.sqrt(s2)))
        s2 = 1 / (tau * l2.sum())
        x = tau * (Y.T @ lo) * s2
        f, f2, kl_f = _pn_posterior(x, np.sqrt(s2), *_pn_mle(x, np.sqrt(s2)))
        er2 = ((Y - np.outer(lo, f)) ** 2).sum() + l2.sum() * f2.sum() - (lo**2).sum() * (f**2).sum()
        tau = n * p / er2
        new = -0.5 * n * p * (np.log(2 * np.pi / tau) + 1) - kl_l - kl_f
        if abs(new - elbo) < 1e-9:
            break
        elbo = new
    return lo, f, new


def test_single_factor_equals_closed_form_ebmf():
    g = np.random.default_rng(0)
    n, p = 60, 40
    l_true = np.where(g.random(n) < 0.5, 0.0, g.normal(scale=2.0, size=n))
    Y = np.outer(l_true, g.normal(size=p)) + g.normal(size=(n, p))
    u, d, vt = np.linalg.svd(Y)
    l0, f0 = u[:, 0] * np.sqrt(d[0]), vt[0] * np.sqrt(d[0])
    l_ref, f_ref, elbo_ref = _rank_one_ebmf(Y, l0, f0)

    start = steps.init_factors(steps.init(torch.as_tensor(Y)), torch.as_tensor(l0), torch.as_tensor(f0))
    fit = steps.backfit(start, extrapolate=False, tol=1e-10, maxiter=400)
    assert fit.converged
    assert abs(fit.elbo - elbo_ref) <= 1e-6 * abs(elbo_ref)
    np.testing.assert_allclose(fit.fitted().numpy(), np.outer(l_ref, f_ref), atol=1e-5)
