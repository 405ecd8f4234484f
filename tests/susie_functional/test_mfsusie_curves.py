"""Effect curves in the data domain: recovery of simulated curves, credible bands, predictions."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import mf_data  # noqa: E402

from torchgenetics.susie.functional import idwt, mfsusie  # noqa: E402

CAUSAL = (7, 41)


_one_thread = pytest.fixture(scope="module", autouse=True)(mf_data.one_thread)


@pytest.fixture(scope="module")
def shaped():
    X, Y, curves = mf_data.shaped(causal=CAUSAL, sd=0.7)
    return X, Y, curves, mfsusie(X, Y, L=10)


def _effect_of(fit, j):
    """The effect whose credible set holds variable j."""
    for k, cs in zip(fit.sets["cs_index"].tolist(), fit.sets["cs"], strict=True):
        if j in cs.tolist():
            return k
    raise AssertionError(f"no credible set holds variable {j}")


def test_recovered_curves_correlate_with_the_simulated_ones(shaped):
    X, Y, curves, fit = shaped
    assert sorted(int(cs[0]) for cs in fit.sets["cs"]) == sorted(CAUSAL)
    for slot, j in enumerate(CAUSAL):
        k = _effect_of(fit, j)
        for m in range(2):
            curve = fit.effect_curve(k, outcome=m)
            truth = curves[(slot, m)].numpy()
            assert np.corrcoef(curve["mean"], truth)[0, 1] > 0.9
            # per unit of X: the recovered curve has the simulated amplitude
            assert 0.5 < np.abs(curve["mean"]).max() / np.abs(truth).max() < 1.5
            assert (curve["lower"] <= curve["mean"]).all() and (curve["mean"] <= curve["upper"]).all()
            assert (curve["sd"] > 0).any()


def test_long_table_of_curves(shaped):
    _, _, _, fit = shaped
    table = fit.curves(level=0.9)
    assert list(table.columns) == ["effect", "cs", "outcome", "pos", "mean", "sd", "lower", "upper"]
    assert len(table) == 2 * 2 * 64
    assert set(table["cs"]) == {f"L{k + 1}" for k in fit.sets["cs_index"].tolist()}
    assert set(table["outcome"]) == {"Y1", "Y2"}
    wide = fit.curves(level=0.99)
    assert ((wide["upper"] - wide["lower"]) >= (table["upper"] - table["lower"]) - 1e-12).all()


def test_band_moments_match_monte_carlo(shaped):
    """Mean and sd of a curve are those of the posterior: variable j ~ alpha, then independent
    coefficients with the posterior moments, inverse DWT, per unit of X."""
    X, _, _, fit = shaped
    k, m = _effect_of(fit, CAUSAL[0]), 1
    cols = fit.coef_slice(m)
    g = torch.Generator().manual_seed(0)
    draws = 20000
    j = torch.multinomial(fit.alpha[k], draws, replacement=True, generator=g)
    mu, mu2 = fit.mu[k][:, cols], fit.mu2[k][:, cols]
    sd = torch.sqrt(torch.clamp(mu2 - mu * mu, min=0.0))
    coef = mu[j] + sd[j] * torch.randn(draws, mu.shape[1], generator=g, dtype=mu.dtype)
    sample = fit.outcome_scale[m] * idwt(coef, fit.wavelet) / fit.X_column_scale_factors[j][:, None]
    curve = fit.effect_curve(k, outcome=m)
    sem = sample.std(dim=0) / draws**0.5
    assert (torch.tensor(curve["mean"].to_numpy()) - sample.mean(dim=0)).abs().max() < 5 * sem.max()
    assert np.allclose(curve["sd"], sample.std(dim=0).numpy(), rtol=0.05, atol=5 * float(sem.max()))


def test_predictions_and_coefficients(shaped):
    X, Y, curves, fit = shaped
    fitted = fit.predict()
    again = fit.predict(X)
    for m in range(2):
        assert fitted[m].shape == Y[m].shape
        torch.testing.assert_close(again[m], fitted[m], rtol=0, atol=1e-9)
        assert fit.coef(m).shape == (X.shape[1], 64)
    # the fitted curves follow the noiseless signal
    for m in range(2):
        signal = X[:, [CAUSAL[0]]] * curves[(0, m)] + X[:, [CAUSAL[1]]] * curves[(1, m)]
        signal, found = signal - signal.mean(dim=0), fitted[m] - fitted[m].mean(dim=0)
        assert float((signal * found).sum() / (signal.norm() * found.norm())) > 0.9


def test_uneven_positions_are_interpolated():
    X, Y, curves = mf_data.shaped(causal=CAUSAL, sd=0.5)
    g = torch.Generator().manual_seed(4)
    keep = torch.sort(torch.randperm(64, generator=g)[:50]).values
    pos = keep.to(torch.float64) * 10.0 + 1000.0  # uneven, T = 50 (not a power of two)
    fit = mfsusie(X, [Y[0][:, keep], Y[1][:, keep]], pos=[pos, pos], L=5)
    assert fit.n_coef == [64, 64]
    grid = fit.grid_pos[0]
    assert float(grid[0]) == float(pos[0]) and float(grid[-1]) == float(pos[-1])
    assert torch.allclose(grid[1:] - grid[:-1], (grid[1] - grid[0]).expand(63))
    assert sorted(int(cs[0]) for cs in fit.sets["cs"]) == sorted(CAUSAL)
    k = _effect_of(fit, CAUSAL[1])
    curve = fit.effect_curve(k, outcome=1)
    truth = np.interp(curve["pos"], np.arange(64) * 10.0 + 1000.0, curves[(1, 1)].numpy())
    assert np.corrcoef(curve["mean"], truth)[0, 1] > 0.9
