"""Region likelihood: exact against dense MVN (incl. rank-deficient LD), iterative against exact."""

import math

import numpy as np
import pytest
import torch

from torchgenetics.deepwas.likelihood import RegionLikelihood
from torchgenetics.deepwas.regions import Region
from torchgenetics.operators import BandedLD

DT = torch.float64


def _dense_cov(region, f, sigma):
    R = region.ld if isinstance(region.ld, torch.Tensor) else region.ld.to_dense()
    w = region.window
    S = region.sqrt_n.unsqueeze(-1) * R[w]
    return S @ torch.diag(f) @ S.T + sigma * R[w][:, w]


def _mvn_nll(region, f, sigma):
    K = _dense_cov(region, f, sigma)
    mvn = torch.distributions.MultivariateNormal(torch.zeros(K.shape[0], dtype=DT), K)
    return -mvn.log_prob(region.z)


def _prior(p, seed=1, N=10_000.0):
    g = torch.Generator().manual_seed(seed)
    return (2.0 / (N * p)) * torch.exp(torch.randn(p, generator=g, dtype=DT))


def _grads(fn, f, sigma):
    f = f.clone().requires_grad_(True)
    s = torch.tensor(float(sigma), dtype=DT, requires_grad=True)
    out = fn(f, s)
    loss = out if isinstance(out, torch.Tensor) else out.loss
    loss.backward()
    return float(loss.detach()), f.grad, s.grad, out


def test_exact_matches_dense_mvn_with_flanks_and_per_variant_n(region_factory):
    reg = region_factory(p=60, window=np.arange(20, 45))
    reg.sqrt_n = reg.sqrt_n * torch.linspace(0.8, 1.2, reg.n_scored, dtype=DT)
    f = _prior(60)
    lik = RegionLikelihood("exact")
    v, gf, gs, out = _grads(lambda f, s: lik(reg, f, s), f, 1.3)
    v_ref, gf_ref, gs_ref, _ = _grads(lambda f, s: _mvn_nll(reg, f, s), f, 1.3)
    assert out.method == "exact" and out.se == 0.0 and out.info["rank"] == 25
    assert v == pytest.approx(v_ref, rel=1e-10)
    assert torch.allclose(gf, gf_ref, rtol=1e-7, atol=1e-9 * gf_ref.abs().max())
    assert float(gs) == pytest.approx(float(gs_ref), rel=1e-8)


def test_exact_handles_rank_deficient_ld(region_factory):
    # reference panel of 25 (centred) samples for 60 variants: R has rank 24
    reg = region_factory(p=60, rank=25, ridge=0.0)
    f = _prior(60)
    with pytest.raises((RuntimeError, ValueError)):
        _mvn_nll(reg, f, 1.0)
    v, gf, _, out = _grads(lambda f, s: RegionLikelihood("exact")(reg, f, s), f, 1.0)
    assert out.info["rank"] == 24
    # density of z on range(R): the MVN of U_r^T z
    lam, U = torch.linalg.eigh(reg.ld)
    Ur = U[:, lam > 1e-8 * lam.max()]
    K = Ur.T @ _dense_cov(reg, f, 1.0) @ Ur
    ref = -torch.distributions.MultivariateNormal(torch.zeros(24, dtype=DT), K).log_prob(Ur.T @ reg.z)
    assert v == pytest.approx(float(ref), rel=1e-8)
    assert bool(torch.isfinite(gf).all())


def test_null_is_sigma_r(region_factory):
    reg = region_factory(p=40)
    null = RegionLikelihood("exact").null(reg, sigma=0.7)
    assert null.value == pytest.approx(float(_mvn_nll(reg, torch.zeros(40, dtype=DT), 0.7)), rel=1e-10)
    it = RegionLikelihood("iterative", num_probes=8).null(reg, sigma=0.7)
    assert abs(it.value - null.value) < 4 * it.se + 1e-6


def _check_iterative(reg, f, sigma, lik, rel_grad):
    v_ex, gf_ex, gs_ex, _ = _grads(lambda f, s: RegionLikelihood("exact")(reg, f, s), f, sigma)
    v, gf, gs, out = _grads(lambda f, s: lik(reg, f, s), f, sigma)
    assert out.method == "iterative" and out.info["cg_converged"]
    assert abs(v - v_ex) < 4 * out.se + 1e-6 * abs(v_ex)
    assert float((gf - gf_ex).norm() / gf_ex.norm()) < rel_grad
    assert abs(float(gs - gs_ex)) < rel_grad * abs(float(gs_ex)) + 0.05 * reg.n_scored ** 0.5
    return out


def test_iterative_dense_projected_core_agrees_with_exact(region_factory):
    reg = region_factory(p=150)
    lik = RegionLikelihood("iterative", num_probes=64, precond_rank=40, seed=3)
    out = _check_iterative(reg, _prior(150), 1.0, lik, rel_grad=0.2)
    assert out.info["preconditioner"] == "projected_core" and out.se > 0


def test_iterative_banded_agrees_with_exact_after_the_prior_moves(region_factory):
    dense = region_factory(p=200, ridge=0.05)
    # truncation breaks PSD: lift the smallest eigenvalue to 0, then to 0.05
    band = BandedLD.from_dense(dense.ld, window=15).repaired("ridge").repaired("ridge", 0.05)
    R = band.to_dense()
    lam, U = torch.linalg.eigh(R)
    g = torch.Generator().manual_seed(5)
    beta = torch.randn(200, generator=g, dtype=DT) * _prior(200).sqrt()
    z = 100.0 * R @ beta + U @ (lam.sqrt() * torch.randn(200, generator=g, dtype=DT))
    reg = Region("b", "1", dense.variant_ids, band, dense.window, z, dense.sqrt_n, dense.features)
    lik = RegionLikelihood("iterative", num_probes=32, seed=0)
    f0 = _prior(200, seed=1)
    lik(reg, f0)  # builds the banded Cholesky preconditioner at f0
    f1 = f0 * torch.exp(0.5 * torch.randn(200, generator=torch.Generator().manual_seed(7), dtype=DT))
    out = _check_iterative(reg, f1, 1.0, lik, rel_grad=0.15)  # stale preconditioner
    assert out.info["preconditioner"] == "banded" and out.info["cg_iterations"] < 60


def test_iterative_gradient_is_unbiased(region_factory):
    reg = region_factory(p=100)
    f = _prior(100)
    _, g_ex, s_ex, _ = _grads(lambda f, s: RegionLikelihood("exact")(reg, f, s), f, 1.0)
    gs, ss = [], []
    for seed in range(24):
        lik = RegionLikelihood("iterative", num_probes=4, precond_rank=10, seed=seed)
        _, g, s, _ = _grads(lambda f, s, lik=lik: lik(reg, f, s), f, 1.0)
        gs.append(g)
        ss.append(float(s))
    single = float((gs[0] - g_ex).norm() / g_ex.norm())
    mean = float((torch.stack(gs).mean(0) - g_ex).norm() / g_ex.norm())
    assert mean < 0.45 * single
    assert abs(np.mean(ss) - float(s_ex)) < 4 * np.std(ss) / math.sqrt(len(ss))


def test_auto_method_by_size_and_ld_kind(region_factory):
    reg = region_factory(p=30)
    lik = RegionLikelihood(exact_max=20, banded_exact_max=10)
    assert lik.method_for(reg) == "iterative"
    assert RegionLikelihood().method_for(reg) == "exact"
    band = Region("b", "1", reg.variant_ids, BandedLD.from_dense(reg.ld, window=3), reg.window,
                  reg.z, reg.sqrt_n, reg.features)
    assert RegionLikelihood(banded_exact_max=10).method_for(band) == "iterative"
    assert RegionLikelihood().preconditioner_for(band) == "banded"


def test_exact_warns_on_indefinite_ld():
    R = torch.tensor([[1.0, 0.9, 0.0], [0.9, 1.0, 0.9], [0.0, 0.9, 1.0]], dtype=DT)
    reg = Region("bad", "1", np.array(["a", "b", "c"], dtype=object), R, torch.arange(3),
                 torch.ones(3, dtype=DT), torch.ones(3, dtype=DT), torch.zeros(3, 1, dtype=DT))
    with pytest.warns(RuntimeWarning, match="not positive semi-definite"):
        out = RegionLikelihood("exact")(reg, torch.full((3,), 0.1, dtype=DT))
    assert out.info["rank"] == 2
