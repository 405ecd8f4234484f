"""Closed forms and stable special functions of the normal-means problem."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, special, stats

from torchgenetics.ebnm import NormalPrior, PointNormalPrior, ebnm
from torchgenetics.ebnm.normal_means import (
    interval_truncated_moments,
    log_ndtr_diff,
    normal_means_loglik,
    positive_truncated_moments,
)

T = lambda v: torch.as_tensor(v, dtype=torch.float64)  # noqa: E731


def _quad_positive_moments(m, sd):
    """Moments of N(m, sd^2) on (0, inf) by quadrature of the density scaled at its peak."""
    peak = max(m, 0.0)
    log_peak = -0.5 * ((peak - m) / sd) ** 2

    def dens(t):
        return math.exp(-0.5 * ((t - m) / sd) ** 2 - log_peak)

    width = sd if m > 0 else min(sd, sd * sd / abs(m)) if m < 0 else sd
    pts = [peak + k * width for k in (1, 5, 20)]
    z = sum(integrate.quad(dens, a, b, epsabs=0, epsrel=1e-13, limit=200)[0] for a, b in zip([0.0] + pts, pts + [np.inf], strict=True))
    e1 = sum(integrate.quad(lambda t: t * dens(t), a, b, epsabs=0, epsrel=1e-13, limit=200)[0] for a, b in zip([0.0] + pts, pts + [np.inf], strict=True))
    e2 = sum(integrate.quad(lambda t: t * t * dens(t), a, b, epsabs=0, epsrel=1e-13, limit=200)[0] for a, b in zip([0.0] + pts, pts + [np.inf], strict=True))
    return e1 / z, e2 / z


@pytest.mark.parametrize("t", [-80.0, -41.0, -39.0, -12.0, -2.0, 0.0, 1.5, 9.0])
def test_positive_truncated_moments_match_quadrature(t):
    sd = 1.7
    e1, e2 = positive_truncated_moments(T(t * sd), T(sd))
    q1, q2 = _quad_positive_moments(t * sd, sd)
    assert float(e1) == pytest.approx(q1, rel=1e-8)
    assert float(e2) == pytest.approx(q2, rel=1e-8)


def test_series_and_direct_formula_meet_at_the_cut():
    sd = T(1.0)
    below = positive_truncated_moments(T(-40.0 - 1e-9), sd)
    above = positive_truncated_moments(T(-40.0 + 1e-9), sd)
    for a, b in zip(below, above, strict=True):
        assert float(a) == pytest.approx(float(b), rel=1e-8)


@pytest.mark.parametrize("m, lo, hi", [(0.0, -1.0, 1.0), (3.0, -1.0, 2.0), (-6.0, -1.0, 1.0), (0.5, 0.2, 0.9)])
def test_interval_truncated_moments_match_scipy(m, lo, hi):
    sd = 0.8
    e1, e2, log_z = interval_truncated_moments(T(m), T(sd), T(lo), T(hi))
    a, b = (lo - m) / sd, (hi - m) / sd
    dist = stats.truncnorm(a, b, loc=m, scale=sd)
    assert float(e1) == pytest.approx(dist.mean(), rel=1e-9, abs=1e-12)
    assert float(e2) == pytest.approx(dist.var() + dist.mean() ** 2, rel=1e-8)
    exact = special.ndtr(-a) - special.ndtr(-b) if a > 0 else special.ndtr(b) - special.ndtr(a)
    assert float(log_z) == pytest.approx(math.log(exact), rel=1e-9)


def test_log_ndtr_diff_in_both_tails():
    assert float(log_ndtr_diff(T(30.0), T(31.0))) == pytest.approx(special.log_ndtr(-30.0), rel=1e-9)
    assert float(log_ndtr_diff(T(-31.0), T(-30.0))) == pytest.approx(special.log_ndtr(-30.0), rel=1e-9)
    assert float(log_ndtr_diff(T(-1.0), T(2.0))) == pytest.approx(math.log(special.ndtr(2.0) - special.ndtr(-1.0)), rel=1e-12)


def test_normal_prior_closed_form():
    x = T([-3.0, 0.0, 0.4, 5.0])
    s = T([1.0, 0.5, 2.0, 1.5])
    sd = 1.3
    g = NormalPrior(T([sd]), T([0.0]))
    post = g.posterior(x.unsqueeze(0), s.unsqueeze(0))
    shrink = sd**2 / (sd**2 + s**2)
    var = shrink * s**2
    torch.testing.assert_close(post.mean[0], shrink * x)
    torch.testing.assert_close(post.mean2[0], var + (shrink * x) ** 2)
    marg = -0.5 * (math.log(2 * math.pi) + torch.log(sd**2 + s**2) + x**2 / (sd**2 + s**2))
    torch.testing.assert_close(post.log_marginal[0], marg)
    torch.testing.assert_close(post.lfsr[0], T(special.ndtr(-np.abs((shrink * x / var.sqrt()).numpy()))))


def test_normal_family_mle_closed_form():
    x = T([3.0, -1.0, 2.0, 0.5, -4.0])
    res = ebnm(x, 1.0, "normal")
    assert float(res.prior.sd) ** 2 == pytest.approx(float((x**2).mean()) - 1.0, rel=1e-8)
    # all-noise data: the MLE is the point mass sd = 0
    res0 = ebnm(T([0.1, -0.2, 0.05]), 1.0, "normal")
    assert float(res0.prior.sd) == 0.0
    assert torch.all(res0.posterior_mean == 0)


def test_point_mass_prior_closed_form():
    x = T([[-2.0, 0.0, 1.0, 7.0]])
    s = T([[1.0, 2.0, 0.5, 1.0]])
    g = PointNormalPrior(T([1.0]), T([2.0]), T([0.0]))
    post = g.posterior(x, s)
    assert torch.all(post.mean == 0) and torch.all(post.mean2 == 0)
    assert torch.all(post.lfsr == 1)
    torch.testing.assert_close(post.log_marginal, T(stats.norm.logpdf(x.numpy(), scale=s.numpy())))
    # The same point mass elsewhere: posterior is the mode itself.
    shifted = PointNormalPrior(T([1.0]), T([2.0]), T([1.5])).posterior(x, s)
    torch.testing.assert_close(shifted.mean, torch.full_like(x, 1.5))
    assert torch.all(shifted.lfsr == 0)


def test_normal_means_loglik_of_point_posterior():
    x, s = T([[1.0, 2.0]]), T([[1.0, 0.5]])
    m = T([[0.5, 2.0]])
    expected = stats.norm.logpdf(x.numpy(), loc=m.numpy(), scale=s.numpy()).sum()
    assert float(normal_means_loglik(x, s, m, m * m)) == pytest.approx(expected)
