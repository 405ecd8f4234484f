"""Mixed-model GWAS: exact dense twin, null calibration, power, inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from torchgenetics.datasets import simulate_genotypes, simulate_phenotype
from torchgenetics.errors import InputError, PhenotypeError
from torchgenetics.genotypes import Genotypes
from torchgenetics.gwas import gwas, lmm_gwas
from torchgenetics.gwas.design import as_covariates
from torchgenetics.reml import reml


@pytest.fixture(scope="module")
def polygenic_lmm(polygenic):
    d = polygenic
    return lmm_gwas(d["G"], d["y"], d["C"], precond_rank=50, seed=0)


def dense_loco_statistics(d, res):
    """Exact x'Py and (x'Py)^2 / x'Px with dense V_{-c} = s2g K_{-c} / t + s2e I per chromosome."""
    X = np.array(d["sim"].dosages)
    mean, sd = np.nanmean(X, 0), np.nanstd(X, 0)
    Xc = np.nan_to_num(X - mean)
    Z = torch.as_tensor(np.nan_to_num((X - mean) / np.where(sd > 0, sd, 1)))
    C = torch.as_tensor(as_covariates(d["C"], X.shape[0])[0])
    y = torch.as_tensor(d["y"])
    chrom = d["sim"].variants["chrom"].to_numpy()
    s2g, s2e = res.info["genetic_variance"], res.info["residual_variance"]
    num, chi2 = np.zeros(X.shape[1]), np.zeros(X.shape[1])
    for c in np.unique(chrom):
        keep = torch.as_tensor((chrom != c) & (sd > 0))
        K = Z[:, keep] @ Z[:, keep].T / int(keep.sum())
        V = s2g * K / K.diagonal().mean() + s2e * torch.eye(len(y), dtype=torch.float64)
        Vi = torch.linalg.inv(V)
        P = Vi - Vi @ C @ torch.linalg.solve(C.T @ Vi @ C, C.T @ Vi)
        x = torch.as_tensor(Xc[:, chrom == c])
        xpy = x.T @ (P @ y)
        num[chrom == c] = xpy.numpy()
        chi2[chrom == c] = (xpy**2 / (x * (P @ x)).sum(0)).numpy()
    return num, chi2


def test_numerator_exact_and_calibrated_denominator_close(polygenic, polygenic_lmm):
    res = polygenic_lmm
    num, chi2 = dense_loco_statistics(polygenic, res)
    ok = np.isfinite(res.stat[:, 0])
    ours_num = (res.beta / res.se**2)[ok, 0]              # beta = x'Py / x'Px, se^2 = 1 / x'Px
    np.testing.assert_allclose(ours_num, num[ok], rtol=1e-5, atol=1e-6 * np.abs(num).max())
    ratio = res.stat[ok, 0] / chi2[ok]
    assert abs(ratio.mean() - 1) < 0.02                  # GRAMMAR-gamma is unbiased on average
    assert np.abs(ratio - 1).max() < 0.15
    assert res.info["loco"] and list(res.info["gamma"]) == ["1", "2", "3"]


def test_more_power_than_marginal_on_polygenic_trait(polygenic, polygenic_lmm):
    d = polygenic
    marginal = gwas(d["G"], d["y"], d["C"])
    causal = d["causal"]
    lmm_chi2 = np.nanmean(polygenic_lmm.stat[causal, 0])
    lin_chi2 = np.nanmean(marginal.stat[causal, 0] ** 2)
    assert lmm_chi2 > 1.25 * lin_chi2
    hits = lambda r: int((r.p[causal, 0] < 1e-3).sum())  # noqa: E731
    assert hits(polygenic_lmm) > hits(marginal)


def test_null_variants_calibrated_under_polygenic_background():
    # GRM: 4 simulated chromosomes, the phenotype polygenic on 1 and 3 (h2 0.5);
    # tested null variants: 20,000 independent ones outside the GRM (chromosome 9)
    n, m, m_null = 800, 3000, 20000
    sim = simulate_genotypes(n, m, chromosomes=4, seed=0)
    chrom = sim.variants["chrom"].to_numpy()
    ph = simulate_phenotype(sim, h2=[0.5], n_causal=None, components=[np.flatnonzero(np.isin(chrom, ["1", "3"]))],
                            seed=100)
    rng = np.random.default_rng(0)
    null = rng.binomial(2, rng.uniform(0.05, 0.5, m_null), size=(n, m_null)).astype(float)
    G = Genotypes.from_array(np.column_stack([sim.dosages, null]),
                             variants=pd.DataFrame({"chrom": list(chrom) + ["9"] * m_null}))
    res = lmm_gwas(G, ph.y, model_variants=np.arange(m), precond_rank=32, seed=0)
    p = res.p[m:, 0]
    lambda_gc = np.median(stats.chi2.isf(p, 1)) / stats.chi2.ppf(0.5, 1)
    assert 0.95 <= lambda_gc <= 1.05
    assert list(res.info["gamma"])[-1] == "genome"      # chromosome 9 is tested with the whole GRM
    assert res.info["n_model_variants"] == m


def test_given_fit_is_used_and_checked(polygenic):
    d = polygenic
    G = d["G"].subset(variants=np.arange(0, 1200, 3))
    Z = d["G"].standardized(variants=np.arange(1, 1200, 4))
    fit = reml(d["y"], Z @ Z.T / Z.shape[1], covariates=d["C"])   # a REMLFit on these samples
    res = lmm_gwas(G, d["y"], d["C"], fit=fit, precond_rank=20)
    genetic = float(fit.variances[0] * fit.trace_scale[0])   # variance on the phenotype scale
    assert res.info["genetic_variance"] == pytest.approx(genetic, rel=1e-12)
    assert res.info["residual_variance"] == pytest.approx(float(fit.variances[1]), rel=1e-12)
    assert res.info["reml_method"] == fit.method
    with pytest.raises(InputError, match="800"):
        lmm_gwas(G.subset(samples=np.arange(700)), d["y"][:700], d["C"][:700], fit=fit)


def test_input_errors_and_single_chromosome(polygenic):
    d = polygenic
    G = d["G"].subset(variants=np.arange(0, 400, 2))        # chromosome 1 only
    y = d["y"].copy()
    y[3] = np.nan
    with pytest.raises(PhenotypeError, match="missing"):
        lmm_gwas(G, y)
    with pytest.warns(RuntimeWarning, match="two chromosomes"):
        res = lmm_gwas(G, d["y"], precond_rank=10)
    assert not res.info["loco"] and list(res.info["gamma"]) == ["genome"]


def test_lmm_result_roundtrip(polygenic_lmm, tmp_path):
    from torchgenetics.gwas import GWASResult

    polygenic_lmm.save(tmp_path / "lmm.h5")
    back = GWASResult.load(tmp_path / "lmm.h5")
    assert back.method == "lmm" and back.stat_name == "CHISQ"
    assert back.info["gamma"] == polygenic_lmm.info["gamma"]
    np.testing.assert_array_equal(back.stat, polygenic_lmm.stat)
    assert list(back.to_frame().columns)[10] == "CHISQ"
