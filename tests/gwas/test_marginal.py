"""Marginal GWAS against a per-variant complete-case least-squares twin, and its inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from torchgenetics.errors import InputError, PhenotypeError
from torchgenetics.genotypes import Genotypes
from torchgenetics.gwas import gwas


def naive(X, Y, C):
    """Per variant and phenotype: OLS of y on [1, C, x] over samples with both observed."""
    m, k = X.shape[1], Y.shape[1]
    out = {key: np.full((m, k), np.nan) for key in ("beta", "se", "t", "p", "freq")}
    obs = np.zeros((m, k), dtype=int)
    for j in range(m):
        for q in range(k):
            rows = ~np.isnan(X[:, j]) & ~np.isnan(Y[:, q])
            D = np.column_stack([np.ones(rows.sum()), C[rows], X[rows, j]])
            coef, *_ = np.linalg.lstsq(D, Y[rows, q], rcond=None)
            resid = Y[rows, q] - D @ coef
            df = rows.sum() - D.shape[1]
            cov = resid @ resid / df * np.linalg.inv(D.T @ D)
            beta, se = coef[-1], np.sqrt(cov[-1, -1])
            out["beta"][j, q], out["se"][j, q], out["t"][j, q] = beta, se, beta / se
            out["p"][j, q] = 2 * stats.t.sf(abs(beta / se), df)
            out["freq"][j, q] = X[rows, j].mean() / 2
            obs[j, q] = rows.sum()
    return out, obs


def test_matches_complete_case_least_squares(small_missing):
    d = small_missing
    res = gwas(d["G"], d["Y"], d["C"], phenotype_names=["a", "b"])
    ref, obs = naive(d["sim"].dosages, d["Y"], d["C"].to_numpy())
    np.testing.assert_array_equal(res.obs_ct, obs)
    for ours, theirs in ((res.beta, ref["beta"]), (res.se, ref["se"]), (res.stat, ref["t"]),
                         (res.p, ref["p"]), (res.a1_freq, ref["freq"])):
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)
    assert res.covariate_names == ["intercept", "age", "batch"]
    assert res.n_samples.tolist() == [300, 275]


def test_independent_of_block_size_and_phenotype_grouping(small_missing):
    d = small_missing
    whole = gwas(d["G"], d["Y"], d["C"])
    blocks = gwas(d["G"], d["Y"], d["C"], block_size=7)
    single = gwas(d["G"], d["Y"][:, 1], d["C"])
    np.testing.assert_allclose(blocks.beta, whole.beta, rtol=1e-12)
    np.testing.assert_allclose(single.p[:, 0], whole.p[:, 1], rtol=1e-12)


def test_variant_subset_and_float32(small_missing):
    d = small_missing
    whole = gwas(d["G"], d["Y"][:, 0], d["C"])
    part = gwas(d["G"], d["Y"][:, 0], d["C"], variants=[3, 10, 11])
    assert part.variants["id"].tolist() == whole.variants["id"].iloc[[3, 10, 11]].tolist()
    np.testing.assert_allclose(part.beta[:, 0], whole.beta[[3, 10, 11], 0], rtol=1e-12)
    single = gwas(d["G"], d["Y"][:, 0], d["C"], dtype=torch.float32)
    np.testing.assert_allclose(single.beta, whole.beta, rtol=1e-3)


def test_untestable_variants_get_plink2_error_codes():
    rng = np.random.default_rng(0)
    n = 200
    c = rng.integers(0, 3, n).astype(float)
    X = rng.binomial(2, 0.3, size=(n, 4)).astype(float)
    X[:, 0] = 1.0                       # constant
    X[:, 1] = c                         # identical to the covariate
    X[3:, 2] = np.nan                   # three calls left: no residual degrees of freedom
    y = rng.normal(size=n)
    res = gwas(Genotypes.from_array(X), y, c[:, None])
    assert res.errcode[:, 0].tolist() == ["CONST_OMITTED_ALLELE", "CORR_TOO_HIGH", "SAMPLE_CT<=PREDICTOR_CT", "."]
    assert np.isnan(res.p[:3, 0]).all() and np.isfinite(res.p[3, 0])


def test_extreme_association_keeps_log10_p():
    rng = np.random.default_rng(1)
    x = rng.binomial(2, 0.4, 5000).astype(float)
    y = x + rng.normal(size=5000) * 0.05
    res = gwas(Genotypes.from_array(x[:, None]), y)
    assert res.p[0, 0] == 0.0                       # underflows as a double
    assert -1e6 < res.log10_p[0, 0] < -1000         # but its log10 does not
    assert np.isfinite(res.log10_p[0, 0])


def test_input_errors(small_missing):
    d = small_missing
    with pytest.raises(PhenotypeError, match="rows|shape"):
        gwas(d["G"], d["Y"][:10, 0])
    with pytest.raises(PhenotypeError, match="vary"):
        gwas(d["G"], np.ones(300))
    bad = d["C"].to_numpy().copy()
    bad[4, 0] = np.nan
    with pytest.raises(InputError, match="row 4"):
        gwas(d["G"], d["Y"][:, 0], bad)
    collinear = np.column_stack([d["C"]["age"], 2 * d["C"]["age"]])
    with pytest.raises(InputError, match="linear combination"):
        gwas(d["G"], d["Y"][:, 0], collinear)
