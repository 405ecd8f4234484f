"""Missing values, standard errors, variance structures, intercepts and bad input."""

import numpy as np
import pytest
import torch
from flash_sim import block_factors, sparse_factors

import torchgenetics.flash as fl
from torchgenetics.errors import InputError


def test_missing_values_are_masked():
    Y, L, F = block_factors(seed=10)
    Ym = Y.clone()
    g = torch.Generator().manual_seed(1)
    holes = torch.rand(Y.shape, generator=g) < 0.15
    Ym[holes] = float("nan")
    fit = fl.flash(Ym, greedy_max=5, backfit="sequential")
    assert fit.n_factors == 3
    truth = L @ F.T
    # held-out entries are predicted about as well as observed ones
    err_obs = float(((fit.fitted() - truth)[~holes]).pow(2).mean())
    err_miss = float(((fit.fitted() - truth)[holes]).pow(2).mean())
    assert err_miss < 3 * err_obs
    res = fit.residuals()
    assert torch.isnan(res[holes]).all() and torch.isfinite(res[~holes]).all()
    assert float(fit.pve.sum()) < 1


def test_given_standard_errors():
    Y, L, F = block_factors(noise=0.5, seed=11)
    fixed = fl.flash(Y, S=0.5, var_type=None, greedy_max=5)
    assert fixed.n_factors == 3
    assert float(fixed.tau) == pytest.approx(4.0)
    # S understates the noise: the extra variance is estimated on top of S^2
    g = torch.Generator().manual_seed(2)
    Y2 = L @ F.T + torch.randn(Y.shape, generator=g, dtype=torch.float64)
    extra = fl.flash(Y2, S=0.5, var_type=0, greedy_max=5)
    assert float(extra.sigma2) == pytest.approx(0.75, rel=0.1)
    S = torch.full(Y.shape, 0.5, dtype=torch.float64)
    S[:5] = 5.0
    per_entry = fl.flash(Y, S=S, var_type=None, greedy_max=5)
    assert per_entry.residuals_sd.shape == Y.shape


@pytest.mark.parametrize("var_type, axis", [(1, 1), (2, 0)])
def test_row_and_column_variances(var_type, axis):
    Y, L, F = sparse_factors(seed=12)
    g = torch.Generator().manual_seed(3)
    sd = 0.5 + 2 * torch.rand(Y.shape[1 - axis], generator=g, dtype=torch.float64)
    noise = torch.randn(Y.shape, generator=g, dtype=torch.float64) * (sd.unsqueeze(1) if axis == 1 else sd.unsqueeze(0))
    fit = fl.flash(L @ F.T + noise, var_type=var_type, greedy_max=5)
    est = fit.residuals_sd
    assert est.shape == sd.shape
    assert np.corrcoef(est.numpy(), sd.numpy())[0, 1] > 0.95


def test_row_intercept_is_fixed_at_one_and_recovers_offsets():
    Y, L, F = block_factors(K=2, seed=13)
    offsets = torch.linspace(-3, 3, Y.shape[0], dtype=torch.float64)
    fit = fl.flash(Y + offsets.unsqueeze(1), intercept="row", greedy_max=5, backfit=True)
    assert fit.fixed[0].tolist() == [False, True]
    torch.testing.assert_close(fit.F_pm[:, 0], torch.ones(Y.shape[1], dtype=torch.float64))
    assert np.corrcoef(fit.L_pm[:, 0].numpy(), offsets.numpy())[0, 1] > 0.99
    assert torch.isnan(fit.F_lfsr[:, 0]).all()
    col = fl.flash(Y + offsets[:120].unsqueeze(0), intercept="column", greedy_max=0)
    assert col.fixed[0].tolist() == [True, False]


def test_fix_and_remove_factors():
    Y, _, _ = block_factors(seed=14)
    fit = fl.flash(Y, greedy_max=5)
    fixed = fit.fix_factors([1], mode=1)
    assert fixed.fixed[1].tolist() == [False, True]
    torch.testing.assert_close(fixed.F_pm2[:, 1], fixed.F_pm[:, 1] ** 2)
    refit = fixed.backfit()
    torch.testing.assert_close(refit.F_pm[:, 1], fixed.F_pm[:, 1])
    assert fit.remove([0, 2]).n_factors == fit.n_factors - 2
    with pytest.raises(InputError, match="out of range"):
        fit.remove([7])


def _nan_row(Y, i):
    Y = Y.clone()
    Y[i] = float("nan")
    return Y


def test_bad_input_names_row_or_column():
    Y, _, _ = block_factors(n=20, p=10)
    with pytest.raises(InputError, match="row 3 of Y has no observed values"):
        fl.flash(_nan_row(Y, 3))
    Yc = Y.clone()
    Yc[:, 4] = float("nan")
    with pytest.raises(InputError, match="column 4 of Y has no observed values"):
        fl.flash(Yc)
    Yi = Y.clone()
    Yi[2, 5] = float("inf")
    with pytest.raises(InputError, match="row 2, column 5"):
        fl.flash(Yi)
    S = torch.ones_like(Y)
    S[6, 1] = 0.0
    with pytest.raises(InputError, match="row 6, column 1"):
        fl.flash(Y, S=S)
    S[6, 1] = -2.0
    with pytest.raises(InputError, match="positive"):
        fl.flash(Y, S=S, var_type=None)
    with pytest.raises(InputError, match="var_type"):
        fl.flash(Y, var_type=3)
    with pytest.raises(InputError, match="needs standard errors"):
        fl.flash(Y, var_type=None)
    with pytest.raises(InputError, match="2-D"):
        fl.flash(torch.ones(5))
    with pytest.raises(InputError, match="backfit"):
        fl.flash(Y, backfit="random")
    with pytest.raises(InputError, match="unknown prior family"):
        fl.flash(Y, prior="horseshoe")


def test_nonnegative_priors_give_nonnegative_posteriors():
    g = torch.Generator().manual_seed(15)
    L = torch.rand(80, 2, generator=g, dtype=torch.float64) * (torch.rand(80, 2, generator=g) < 0.4)
    F = torch.rand(50, 2, generator=g, dtype=torch.float64)
    Y = 4 * L @ F.T + 0.1 * torch.randn(80, 50, generator=g, dtype=torch.float64)
    fit = fl.flash(Y, prior="point_exponential", greedy_max=4, backfit=True, tol=1e-2, maxiter=60)
    assert fit.n_factors >= 1
    assert bool((fit.L_pm >= 0).all()) and bool((fit.F_pm >= 0).all())
    mixed = fl.flash(Y, prior=("point_laplace", "normal_scale_mixture"), greedy_max=1, maxiter=30)
    assert mixed.priors[0][0]["family"] == "point_laplace"
    assert mixed.F_ghat[0].family == "normal_scale_mixture"
