"""ebnm's default grids and the KL bound behind the scale-mixture multiplier."""

import math

import pytest
import torch
from scipy import integrate, optimize

from torchgenetics.ebnm import ashr_scale_grid, smn_grid_multiplier, smn_kl_bound, smn_scale_grid


def _kl_quad(s2, omega, m):
    def integrand(x):
        p = math.exp(-0.5 * x * x / s2) / math.sqrt(2 * math.pi * s2)
        q = omega * math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi) + (1 - omega) * math.exp(-0.5 * x * x / m) / math.sqrt(2 * math.pi * m)
        return p * math.log(p / q) if p > 0 else 0.0

    return integrate.quad(integrand, -40, 40, epsabs=1e-14, limit=200)[0]


def test_kl_bound_matches_direct_integration():
    m = 2.0

    def best_fit(s2):
        return optimize.minimize_scalar(lambda w: _kl_quad(s2, w, m), bounds=(0, 1), method="bounded",
                                        options={"xatol": 1e-10}).fun

    worst = -optimize.minimize_scalar(lambda s2: -best_fit(s2), bounds=(1, m), method="bounded",
                                      options={"xatol": 1e-6}).fun
    assert smn_kl_bound(m) == pytest.approx(worst, rel=2e-3)


def test_multiplier_is_monotone_and_clipped():
    ms = [smn_grid_multiplier(k) for k in (1e-9, 1e-5, 1e-3, 1e-2, 1.0)]
    assert ms[0] == pytest.approx(1.05) and ms[-1] == pytest.approx(4.0)
    assert all(a < b for a, b in zip(ms[1:-2], ms[2:-1], strict=True))
    assert smn_kl_bound(smn_grid_multiplier(1e-3)) == pytest.approx(1e-3, rel=0.02)


def test_smn_grid_follows_ebnm_rule():
    x = torch.tensor([[0.0, 1.0, -9.0, 3.0]], dtype=torch.float64)
    s = torch.tensor([[1.0, 0.5, 2.0, 1.0]], dtype=torch.float64)
    sd, mask = smn_scale_grid(x, s)
    m = smn_grid_multiplier(1 / 4)
    K = math.ceil(math.log(81 / 0.25 + 1) / math.log(m)) + 1
    assert sd.shape == (1, K) and bool(mask.all())
    expected = torch.sqrt(0.25 * (m ** torch.arange(K, dtype=torch.float64) - 1))
    torch.testing.assert_close(sd[0], expected)
    # max_K caps the number of components
    sd_small, _ = smn_scale_grid(x, s, max_K=5, kl_target=1e-9)
    assert sd_small.shape[1] <= 6


def test_ashr_grid_and_padding():
    x = torch.tensor([[4.0, 0.0], [1.0, 0.5]], dtype=torch.float64)
    s = torch.ones(2, 2, dtype=torch.float64)
    grid, mask = ashr_scale_grid(x, s)
    assert grid[0, 0] == 0 and grid[0, -1] == pytest.approx(2 * math.sqrt(15))
    short = int(mask[1].sum())
    assert short < grid.shape[1]
    assert torch.all(grid[1, short:] == grid[1, short - 1])
