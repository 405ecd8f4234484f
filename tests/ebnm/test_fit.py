"""Fitting g: optimality against scipy, batching, mode estimation, warm starts, fix_g, KL identity."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, optimize

from torchgenetics.ebnm import (
    NormalPrior,
    PointLaplacePrior,
    PointNormalPrior,
    ebnm,
    get_family,
)
from torchgenetics.errors import InputError

T = lambda v: torch.as_tensor(v, dtype=torch.float64)  # noqa: E731


def _simulate(kind, n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    null = torch.rand(n, generator=g, dtype=torch.float64) < 0.6
    if kind == "point_exponential":
        effect = -2.0 * torch.log(torch.rand(n, generator=g, dtype=torch.float64))
    else:
        effect = 2.0 * torch.randn(n, generator=g, dtype=torch.float64)
    theta = torch.where(null, torch.zeros(n, dtype=torch.float64), effect)
    s = 0.5 + torch.rand(n, generator=g, dtype=torch.float64)
    return theta + s * torch.randn(n, generator=g, dtype=torch.float64), s


PARAMETRIC = ["point_normal", "point_laplace", "point_exponential", "normal"]


@pytest.mark.parametrize("family", PARAMETRIC)
def test_parametric_fit_reaches_scipy_optimum(family):
    x, s = _simulate(family)
    res = ebnm(x, s, family)
    fam = get_family(family)

    def negloglik(params):
        if family == "normal":
            g = fam._make(T([1.0]), T([math.exp(params[0])]), T([0.0]))
        else:
            w = 1.0 / (1.0 + math.exp(-params[0]))
            g = fam._make(T([w]), T([math.exp(params[1])]), T([0.0]))
        return -float(g.log_marginal(x.unsqueeze(0), s.unsqueeze(0)).sum())

    starts = [[0.5], [-1.0]] if family == "normal" else [[0.0, 0.0], [1.5, 1.0], [-1.0, -0.5]]
    best = min(optimize.minimize(negloglik, st, method="Nelder-Mead",
                                 options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 4000}).fun for st in starts)
    assert float(res.log_likelihood) >= -best - 1e-7
    assert float(res.log_likelihood) == pytest.approx(-best, abs=1e-5)


@pytest.mark.parametrize("family", ["normal_scale_mixture", "unimodal_symmetric"])
def test_grid_families_give_weights_on_the_simplex(family):
    x, s = _simulate("point_normal")
    res = ebnm(x, s, family)
    pi = res.prior.pi
    assert float(pi.sum()) == pytest.approx(1.0) and bool((pi >= 0).all())
    pn = ebnm(x, s, "point_normal")
    # a grid mixture containing near-point-normal shapes fits about as well as point-normal
    assert float(res.log_likelihood) > float(pn.log_likelihood) - 2.0
    uniform = type(res.prior)(torch.full_like(pi, 1.0 / pi.shape[-1]), *list(res.prior._tensors().values())[1:])
    assert float(res.log_likelihood) >= float(uniform.log_marginal(x.unsqueeze(0), s.unsqueeze(0)).sum())


def test_normal_scale_mixture_uses_ebnm_default_grid():
    x, s = _simulate("point_normal", n=200)
    res = ebnm(x, s, "normal_scale_mixture")
    sd = res.prior.sd[0]
    min_s2 = float(s.min()) ** 2
    ratios = (sd[1:] ** 2 + min_s2) / (sd[:-1] ** 2 + min_s2)
    assert float(sd[0]) == 0.0
    torch.testing.assert_close(ratios, torch.full_like(ratios, float(ratios[0])))
    assert float(sd[-1]) ** 2 >= float((x**2).max()) * (1 - 1e-9)


def test_batched_equals_one_at_a_time():
    xs, ss = zip(*[_simulate("point_normal", n=150, seed=k) for k in range(3)], strict=True)
    X, S = torch.stack(xs), torch.stack(ss)
    for family in ("point_normal", "normal_scale_mixture"):
        batch = ebnm(X, S, family)
        for k in range(3):
            one = ebnm(xs[k], ss[k], family)
            torch.testing.assert_close(batch.posterior_mean[k], one.posterior_mean, rtol=1e-6, atol=1e-8)
            assert float(batch.log_likelihood[k]) == pytest.approx(float(one.log_likelihood), abs=1e-6)


def test_mode_estimation_finds_the_centre():
    x, s = _simulate("point_normal", n=400)
    fixed = ebnm(x + 2.0, s, "point_normal")
    est = ebnm(x + 2.0, s, "point_normal", mode="estimate")
    assert float(est.prior.mode) == pytest.approx(2.0, abs=0.1)
    assert float(est.log_likelihood) > float(fixed.log_likelihood)
    mix = ebnm(x + 2.0, s, "normal_scale_mixture", mode="estimate")
    assert float(mix.prior.mode) == pytest.approx(2.0, abs=0.15)


def test_fix_g_and_warm_start():
    x, s = _simulate("point_laplace")
    g = PointLaplacePrior(T([0.5]), T([1.0]), T([0.0]))
    fixed = ebnm(x, s, "point_laplace", g_init=g, fix_g=True)
    assert fixed.prior is not None and float(fixed.prior.scale) == 1.0
    post = g.posterior(x.unsqueeze(0), s.unsqueeze(0))
    torch.testing.assert_close(fixed.posterior_mean, post.mean[0])
    warm = ebnm(x, s, "point_laplace", g_init=g)
    assert float(warm.log_likelihood) >= float(fixed.log_likelihood)
    again = ebnm(x, s, "point_laplace", g_init=warm.prior)
    assert float(again.log_likelihood) == pytest.approx(float(warm.log_likelihood), abs=1e-8)
    mix = ebnm(x, s, "normal_scale_mixture")
    mix_warm = ebnm(x, s, "normal_scale_mixture", g_init=mix.prior)
    assert float(mix_warm.log_likelihood) >= float(mix.log_likelihood) - 1e-9
    torch.testing.assert_close(mix_warm.prior.sd, mix.prior.sd)


def test_pure_noise_gives_the_point_mass():
    x = T([0.1, -0.2, 0.05, 0.0, -0.1])
    res = ebnm(x, 1.0, "point_normal")
    assert float(res.prior.pi0) == 1.0
    assert torch.all(res.posterior_mean == 0)


def _kl_point_normal(w1, m1, v1, pi0, sd):
    kl = 0.0
    if w1 < 1:
        kl += (1 - w1) * math.log((1 - w1) / pi0)
    if w1 > 0:
        kl += w1 * (math.log(w1 / (1 - pi0)) + 0.5 * (math.log(sd**2 / v1) + (v1 + m1**2) / sd**2 - 1))
    return kl


def test_kl_identity_point_normal_closed_form():
    x = T([-2.0, 0.3, 4.0])
    s = T([1.0, 0.5, 2.0])
    pi0, sd = 0.6, 1.7
    g = PointNormalPrior(T([pi0]), T([sd]), T([0.0]))
    res = ebnm(x, s, "point_normal", g_init=g, fix_g=True)
    expected = 0.0
    for xi, si in zip(x.tolist(), s.tolist(), strict=True):
        slab = math.exp(-0.5 * xi**2 / (sd**2 + si**2)) / math.sqrt(sd**2 + si**2) * (1 - pi0)
        null = math.exp(-0.5 * xi**2 / si**2) / si * pi0
        w1 = slab / (slab + null)
        m1 = xi * sd**2 / (sd**2 + si**2)
        v1 = sd**2 * si**2 / (sd**2 + si**2)
        expected += _kl_point_normal(w1, m1, v1, pi0, sd)
    assert float(res.kl) == pytest.approx(expected, rel=1e-10)


def _laplace_kl_by_quadrature(xi, si, pi0=0.3, scale=1.1):
    """KL(q || g) of a point-Laplace posterior, from the densities directly."""

    def lik(t):
        return math.exp(-0.5 * ((xi - t) / si) ** 2) / (si * math.sqrt(2 * math.pi))

    def slab(t):
        return (1 - pi0) * math.exp(-abs(t) / scale) / (2 * scale)

    halves = ((-np.inf, 0), (0, np.inf))
    marg_point = pi0 * lik(0.0)
    marg = marg_point + sum(integrate.quad(lambda t: slab(t) * lik(t), a, b, epsrel=1e-12)[0] for a, b in halves)
    q0 = marg_point / marg

    def integrand(t):
        dens = slab(t) * lik(t) / marg
        return dens * math.log(dens / slab(t)) if dens > 0 else 0.0

    cont = sum(integrate.quad(integrand, a, b, epsrel=1e-12)[0] for a, b in halves)
    return q0 * math.log(q0 / pi0) + cont


def test_kl_identity_normal_and_laplace_by_quadrature():
    x, s = T([1.5, -0.4]), T([0.8, 1.2])
    g = NormalPrior(T([0.9]), T([0.0]))
    res = ebnm(x, s, "normal", g_init=g, fix_g=True)
    sd2 = 0.81
    shrink = sd2 / (sd2 + s**2)
    m, v = shrink * x, shrink * s**2
    kl = 0.5 * (torch.log(sd2 / v) + (v + m**2) / sd2 - 1).sum()
    assert float(res.kl) == pytest.approx(float(kl), rel=1e-10)

    # point-Laplace: KL of the mixture posterior from the prior, integrated directly
    gl = PointLaplacePrior(T([0.3]), T([1.1]), T([0.0]))
    resl = ebnm(x, s, "point_laplace", g_init=gl, fix_g=True)
    total = sum(_laplace_kl_by_quadrature(xi, si) for xi, si in zip(x.tolist(), s.tolist(), strict=True))
    assert float(resl.kl) == pytest.approx(total, rel=1e-7)


def test_bad_input_names_the_observation():
    with pytest.raises(InputError, match="observation 2"):
        ebnm(T([0.0, 1.0, float("nan")]), 1.0)
    with pytest.raises(InputError, match="positive"):
        ebnm(T([0.0, 1.0]), T([1.0, 0.0]))
    with pytest.raises(InputError, match="problem 1, observation 0"):
        ebnm(T([[0.0, 1.0], [1.0, 1.0]]), T([[1.0, 1.0], [-1.0, 1.0]]))
    with pytest.raises(InputError, match="unknown prior family"):
        ebnm(T([0.0]), 1.0, "cauchy")
    with pytest.raises(InputError, match="family"):
        ebnm(T([0.0]), 1.0, "point_laplace", g_init=PointNormalPrior(T([0.5]), T([1.0]), T([0.0])))
    with pytest.raises(InputError, match="fix_g"):
        ebnm(T([0.0]), 1.0, fix_g=True)
