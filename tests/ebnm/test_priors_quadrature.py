"""Every prior's marginal likelihood and posterior moments against brute-force quadrature."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from torchgenetics.ebnm import (
    NormalMixturePrior,
    NormalPrior,
    PointExponentialPrior,
    PointLaplacePrior,
    PointNormalPrior,
    UniformMixturePrior,
)

T = lambda v: torch.as_tensor(v, dtype=torch.float64)  # noqa: E731

SQ2PI = math.sqrt(2 * math.pi)


def npdf(t, loc=0.0, scale=1.0):
    return math.exp(-0.5 * ((t - loc) / scale) ** 2) / (SQ2PI * scale)


def lpdf(t, loc=0.0, scale=1.0):
    return math.exp(-abs(t - loc) / scale) / (2 * scale)


def epdf(t, loc=0.0, scale=1.0):
    return math.exp(-(t - loc) / scale) / scale if t >= loc else 0.0


def updf(t, lo, width):
    return 1.0 / width if lo <= t <= lo + width else 0.0


# (prior, point-mass weight, slab density on its support, support pieces)
CASES = {
    "point_normal": (PointNormalPrior(T([0.3]), T([1.5]), T([0.0])), 0.3, 0.0,
                     lambda t: 0.7 * npdf(t, scale=1.5), [(-np.inf, np.inf)]),
    "point_normal_mode": (PointNormalPrior(T([0.4]), T([0.8]), T([0.7])), 0.4, 0.7,
                          lambda t: 0.6 * npdf(t, loc=0.7, scale=0.8), [(-np.inf, np.inf)]),
    "normal": (NormalPrior(T([1.2]), T([0.5])), 0.0, 0.5,
               lambda t: npdf(t, loc=0.5, scale=1.2), [(-np.inf, np.inf)]),
    "point_laplace": (PointLaplacePrior(T([0.4]), T([2.0]), T([0.0])), 0.4, 0.0,
                      lambda t: 0.6 * lpdf(t, scale=2.0), [(-np.inf, 0.0), (0.0, np.inf)]),
    "point_laplace_mode": (PointLaplacePrior(T([0.1]), T([0.5]), T([-0.5])), 0.1, -0.5,
                           lambda t: 0.9 * lpdf(t, loc=-0.5, scale=0.5), [(-np.inf, -0.5), (-0.5, np.inf)]),
    "point_exponential": (PointExponentialPrior(T([0.2]), T([1.3]), T([0.0])), 0.2, 0.0,
                          lambda t: 0.8 * epdf(t, scale=1.3), [(0.0, np.inf)]),
    "point_exponential_mode": (PointExponentialPrior(T([0.5]), T([0.7]), T([0.3])), 0.5, 0.3,
                               lambda t: 0.5 * epdf(t, loc=0.3, scale=0.7), [(0.3, np.inf)]),
    "normal_scale_mixture": (NormalMixturePrior(T([[0.2, 0.5, 0.3]]), T([[0.0, 0.5, 3.0]]), T([0.0])), 0.2, 0.0,
                             lambda t: 0.5 * npdf(t, scale=0.5) + 0.3 * npdf(t, scale=3.0),
                             [(-np.inf, np.inf)]),
    "unimodal_symmetric": (UniformMixturePrior(T([[0.3, 0.4, 0.3]]), T([[0.0, 1.0, 4.0]]), T([0.5])), 0.3, 0.5,
                           lambda t: 0.4 * updf(t, -0.5, 2.0) + 0.3 * updf(t, -3.5, 8.0),
                           [(-3.5, -0.5), (-0.5, 0.5), (0.5, 1.5), (1.5, 4.5)]),
}

X = np.array([-4.0, -0.7, 0.0, 0.3, 2.5, 8.0])
S = np.array([0.5, 1.0, 2.0, 0.5, 1.0, 2.0])


def _integrate(f, pieces, x, s):
    total = 0.0
    for a, b in pieces:
        # split each piece at x so the narrow likelihood peak is never missed
        cuts = [a] + [c for c in (x - 8 * s, x, x + 8 * s) if a < c < b] + [b]
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
            total += integrate.quad(f, lo, hi, epsabs=0, epsrel=1e-11, limit=200)[0]
    return total


def _brute_force(pi0, mode, slab, pieces, x, s):
    lik = lambda t: npdf(x, loc=t, scale=s)  # noqa: E731
    point = pi0 * lik(mode)
    marg = point + _integrate(lambda t: slab(t) * lik(t), pieces, x, s)
    m1 = (point * mode + _integrate(lambda t: t * slab(t) * lik(t), pieces, x, s)) / marg
    m2 = (point * mode**2 + _integrate(lambda t: t * t * slab(t) * lik(t), pieces, x, s)) / marg
    neg_pieces = [(a, min(b, 0.0)) for a, b in pieces if a < 0.0]
    below = _integrate(lambda t: slab(t) * lik(t), neg_pieces, x, s) / marg
    at_zero = point / marg if mode == 0.0 else 0.0
    below += point / marg if mode < 0 else 0.0
    above = 1.0 - below - at_zero
    lfsr = at_zero + min(below, above)
    return math.log(marg), m1, m2, lfsr


@pytest.mark.parametrize("name", list(CASES))
def test_prior_matches_quadrature(name):
    prior, pi0, mode, slab, pieces = CASES[name]
    post = prior.posterior(T(X).unsqueeze(0), T(S).unsqueeze(0))
    for i, (x, s) in enumerate(zip(X, S, strict=True)):
        log_marg, m1, m2, lfsr = _brute_force(pi0, mode, slab, pieces, x, s)
        assert float(post.log_marginal[0, i]) == pytest.approx(log_marg, rel=1e-8, abs=1e-10), (name, x, s)
        assert float(post.mean[0, i]) == pytest.approx(m1, rel=1e-7, abs=1e-10), (name, x, s)
        assert float(post.mean2[0, i]) == pytest.approx(m2, rel=1e-7, abs=1e-10), (name, x, s)
        assert float(post.lfsr[0, i]) == pytest.approx(lfsr, rel=1e-6, abs=1e-9), (name, x, s)
    torch.testing.assert_close(prior.log_marginal(T(X).unsqueeze(0), T(S).unsqueeze(0)), post.log_marginal)


def test_far_tail_observations_stay_finite():
    x = T([[-300.0, -60.0, 60.0, 300.0]])
    s = T([[1.0, 0.5, 0.5, 1.0]])
    for prior, *_ in CASES.values():
        post = prior.posterior(x, s)
        for v in (post.mean, post.mean2, post.lfsr, post.log_marginal):
            assert torch.isfinite(v).all(), prior.family
        assert torch.all(post.mean2 >= post.mean**2 - 1e-9)
