"""Data-driven priors: percentiles, mean-preserving log-normal K, Beta forms, counted fallbacks."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from torchgenetics.dream import hill_priors
from torchgenetics.dream.priors import (
    baseline_priors,
    group_means,
    lognormal_params,
    normalized_values,
)


def _design(n_guides=10, per=8, seed=0):
    rng = np.random.default_rng(seed)
    n = n_guides * per
    code = np.repeat(np.arange(n_guides), per)
    assign = sp.csr_matrix((np.ones(n), (np.arange(n), code)), shape=(n, n_guides))
    x = np.repeat(np.geomspace(1, 40, n_guides), per) * np.exp(rng.normal(0, 0.1, n))
    return rng, assign, x


def test_percentiles_of_guide_means_and_k_prior():
    rng, assign, x = _design()
    y = rng.gamma(2.0, 3.0, (x.size, 4))
    pri, rep = hill_priors(y, "negbinom", assign, x)
    gm = group_means(y, assign, min_cells=3)
    np.testing.assert_allclose(pri["A_mean"], np.percentile(gm, 5, axis=0))
    np.testing.assert_allclose(pri["V_mean"], np.percentile(gm, 95, axis=0) - np.percentile(gm, 5, axis=0))
    xg = np.asarray(assign.T @ x).ravel() / 8
    # mean-preserving log-normal: mean half the largest guide-mean x_true, CV of x_true
    k_mean = np.exp(pri["K_loc"] + pri["K_scale"] ** 2 / 2)
    assert k_mean == pytest.approx(0.5 * xg.max())
    assert np.sqrt(np.exp(pri["K_scale"] ** 2) - 1) == pytest.approx(x.std() / x.mean())
    assert (pri["x_lo"], pri["x_hi"]) == (pytest.approx(xg.min()), pytest.approx(xg.max()))
    assert rep.guide_level == 4 and rep.overall == rep.median_fallback == rep.default_fallback == 0


def test_lognormal_params_preserve_mean_and_cv():
    loc, scale = lognormal_params(np.array([2.0, 50.0]), 0.7)
    draws = torch.distributions.LogNormal(torch.tensor(loc), torch.tensor(scale)).sample((200_000,))
    np.testing.assert_allclose(draws.mean(0).numpy(), [2.0, 50.0], rtol=0.02)
    np.testing.assert_allclose((draws.std(0) / draws.mean(0)).numpy(), [0.7, 0.7], rtol=0.05)


def test_without_guides_falls_back_to_cell_percentiles():
    rng, _, x = _design()
    y = rng.gamma(2.0, 3.0, (x.size, 3))
    pri, rep = hill_priors(y, "negbinom", None, x)
    np.testing.assert_allclose(pri["A_mean"], np.percentile(y, 5, axis=0))
    assert rep.overall == 3 and rep.guide_level == 0
    assert np.exp(pri["K_loc"] + pri["K_scale"] ** 2 / 2) == pytest.approx(0.5 * x.max())


def test_nan_features_fall_back_to_the_median_then_to_family_defaults():
    rng, assign, x = _design()
    counts = rng.binomial(20, 0.3, (x.size, 4)).astype(float)
    den = np.full_like(counts, 20.0)
    den[:, 2] = 1.0  # below the usable denominator everywhere
    ratio = normalized_values("binomial", counts, denominator=den)
    pri, rep = hill_priors(ratio, "binomial", assign, x, features=["a", "b", "c", "d"])
    assert rep.median_fallback == 1 and rep.fallback_features == ["c"]
    assert pri["A_mean"][2] == pytest.approx(np.median(pri["A_mean"][[0, 1, 3]]))
    assert "1 from the median of other features" in str(rep)
    pri, rep = hill_priors(normalized_values("binomial", counts, denominator=np.ones_like(den)),
                           "binomial", assign, x)
    assert rep.default_fallback == 4
    np.testing.assert_allclose(pri["A_mean"], 0.1)
    np.testing.assert_allclose(pri["A_mean"] + pri["V_mean"], 0.6)
    _, rep = baseline_priors(np.full((5, 2), np.nan), "negbinom")
    assert rep.default_fallback == 2


def test_binomial_and_multinomial_prior_forms():
    rng, assign, x = _design()
    counts = rng.binomial(30, 0.2, (x.size, 2)).astype(float)
    pri, _ = hill_priors(normalized_values("binomial", counts, denominator=np.full_like(counts, 30.0)),
                         "binomial", assign, x)
    assert np.all((pri["A_mean"] > 0) & (pri["A_mean"] + pri["V_mean"] < 1))
    a = torch.as_tensor(pri["A_mean"])
    beta = torch.distributions.Beta(torch.ones_like(a), (1 - a) / a)  # A ~ Beta(1, (1-A)/A)
    np.testing.assert_allclose(beta.mean.numpy(), pri["A_mean"])
    cats = rng.multinomial(40, [0.2, 0.3, 0.5], (x.size, 2)).astype(float)
    pri, rep = hill_priors(normalized_values("multinomial", cats), "multinomial", assign, x)
    assert pri["conc"].shape == (2, 3)
    np.testing.assert_allclose(pri["conc"].sum(-1), 3.0)  # about one pseudo-count per category
    np.testing.assert_allclose(pri["conc"][0] / 3, [0.2, 0.3, 0.5], atol=0.03)
