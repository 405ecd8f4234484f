"""scan: two-pass triage, warm-started second pass, checkpoint and resume, loci from files."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from susie_helpers import simulate

from torchgenetics.datasets import example
from torchgenetics.errors import InputError
from torchgenetics.io import align, read_plink
from torchgenetics.operators import BlockLD
from torchgenetics.susie import (
    Locus,
    load_scan,
    loci_from_regions,
    loci_from_sumstats,
    parse_regions,
    read_regions,
    residualize,
    scan,
    susie,
)


@pytest.fixture(scope="module")
def loci():
    """Ten loci: strong and weak signals, and nulls."""
    out = []
    for i in range(10):
        effect = (0.0, 0.25, 0.6)[i % 3]
        X, y = simulate(n=200, p=40 + 3 * i, causal=(6, 25), effect=effect, rho=0.8, seed=200 + i)
        out.append(Locus.from_data(f"L{i}", (X, y)))
    return out


def _equal_results(a, b):
    pd.testing.assert_frame_equal(a.table, b.table)
    assert list(a.fits) == list(b.fits)
    for name in a.fits:
        fa, fb = a.fits[name], b.fits[name]
        for field in ("alpha", "mu", "mu2", "V", "elbo", "pip"):
            assert torch.equal(getattr(fa, field), getattr(fb, field)), (name, field)


def test_triage_and_second_pass(loci):
    out = scan(loci, L=5, first_max_iter=3, max_iter=100)
    table = out.table.set_index("locus")
    assert set(table["status"]) <= {"null", "converged", "flat", "refit"}
    assert {"null", "refit"} <= set(table["status"]) and len(set(table["status"])) >= 3
    for loc in loci:
        row = table.loc[loc.name]
        data = loc.load()
        cold = susie(data["X"], data["y"], L=5, max_iter=100)
        if row["status"] in ("null", "converged"):  # done in the first pass: the cold fit itself
            assert row["first_converged"] and row["n_iter"] == cold.n_iter
        if row["status"] == "converged":
            assert torch.equal(out.fits[loc.name].alpha, cold.alpha)
        if row["status"] == "flat":
            assert not row["first_converged"] and row["n_cs"] == 0 and row["max_pip"] < 0.5
        if row["status"] == "refit":  # the warm continuation reaches the cold fit
            fit = out.fits[loc.name]
            assert not row["first_converged"] and fit.converged
            assert float((fit.pip - cold.pip).abs().max()) < 1e-6
            assert abs(float(fit.elbo[-1] - cold.elbo[-1])) < 1e-6
            assert [c.tolist() for c in fit.sets["cs"]] == [c.tolist() for c in cold.sets["cs"]]
    assert set(out.fits) == set(table.index[table["status"].isin(["converged", "refit"])])
    cs = out.cs_frame()
    assert set(cs["locus"]) <= set(out.fits) and len(cs) == int(table["n_cs"][list(out.fits)].sum())
    assert set(out.pip_frame()["locus"]) == set(out.fits)
    assert sum(out.summary().values()) == len(loci)


class Stop(Exception):
    pass


@pytest.mark.parametrize("stop_after", [4, 12])  # in the first pass; in the second pass
def test_interrupted_scan_resumes_to_the_same_result(tmp_path, loci, stop_after):
    opts = dict(L=5, first_max_iter=3, chunk_size=2)
    reference = scan(loci, **opts)
    path = tmp_path / "scan.h5"
    seen = []

    def interrupt(phase, names):
        seen.extend(names)
        if len(seen) >= stop_after:
            raise Stop

    with pytest.raises(Stop):
        scan(loci, checkpoint=path, callback=interrupt, **opts)
    assert path.exists()
    resumed_chunks = []
    out = scan(loci, checkpoint=path, callback=lambda ph, names: resumed_chunks.append(ph), **opts)
    _equal_results(out, reference)
    assert len(resumed_chunks) < len(loci) // 2 + 5  # the finished chunks were not redone
    _equal_results(load_scan(path), reference)
    with pytest.raises(InputError, match="another scan"):
        scan(loci, checkpoint=path, L=4, first_max_iter=3, chunk_size=2)


def test_failing_locus_is_reported_not_fatal(loci):
    X = loci[0].load()["X"]
    bad = Locus.from_data("bad", (X, torch.ones(X.shape[0], dtype=X.dtype)))
    out = scan([loci[2], bad], L=5)
    row = out.table.set_index("locus").loc["bad"]
    assert row["status"] == "error" and "constant" in row["error"]
    assert out.table.set_index("locus").loc[loci[2].name, "status"] != "error"


@pytest.fixture(scope="module")
def cohort():
    ex = example()
    G = read_plink(ex.bfile)
    al = align(G, pheno=ex.pheno, covar=ex.covar)
    return al.subset(G), al


def test_loci_from_regions_and_residualisation(cohort, tmp_path):
    G, al = cohort
    regions = tmp_path / "regions.txt"
    regions.write_text("# name chrom start end\nchr1:22,000,000-24,000,000\n1:32000000-33000000\n9:1-2\n")
    table = read_regions(regions)
    assert table["chrom"].tolist() == ["1", "1", "9"]
    with pytest.warns(RuntimeWarning, match="hold no variant"):
        loci = loci_from_regions(G, al.y, table, al.covariates)
    assert [loc.name for loc in loci] == ["chr1:22,000,000-24,000,000", "1:32000000-33000000"]
    data = loci[0].load()
    X = torch.as_tensor(G.read(variants=np.flatnonzero(G.variants["id"].isin(loci[0].variants["id"]))))
    X = torch.where(torch.isnan(X), torch.nanmean(X, dim=0), X)
    y_ref, X_ref = residualize(al.y, X, al.covariates)
    assert torch.allclose(data["y"], y_ref, atol=1e-12) and torch.allclose(data["X"], X_ref, atol=1e-10)
    assert float((al.covariates.T @ data["y"]).abs().max()) < 1e-8
    assert data["variable_names"] == loci[0].variants["id"].tolist()
    out = scan(loci, L=10)
    first = out.table.set_index("locus").loc[loci[0].name]
    assert first["n_cs"] >= 1 and first["status"] in ("converged", "refit")
    frame = loci[0].annotate(out.fits[loci[0].name])
    assert {"chrom", "pos", "pip", "cs"} <= set(frame.columns) and len(frame) == loci[0].n_variables


def test_loci_from_sumstats_blocks(cohort):
    G, al = cohort
    idx = np.flatnonzero(G.variants["chrom"].astype(str).eq("1").to_numpy())[1000:1120]
    sub = G.subset(variants=idx)
    ld = BlockLD.from_genotypes(sub, [0, 60])
    Z = sub.standardized()
    y = residualize(al.y, covariates=al.covariates)
    r = Z.T @ (y / y.std()) / (Z.shape[0] - 1)
    z = r * ((Z.shape[0] - 2) / (1 - r**2)) ** 0.5
    stats = pd.DataFrame({"SNP": sub.variants["id"].to_numpy(), "Z": z.numpy(), "N": 990})
    stats = stats.drop(index=[3, 70])  # two LD variants without statistics
    with pytest.warns(RuntimeWarning, match="2 LD variant"):
        loci = loci_from_sumstats(stats, ld)
    assert [loc.n_variables for loc in loci] == [59, 59]
    data = loci[1].load()
    assert data["n"] == 990 and data["R"].shape == (59, 59)
    out = scan(loci, L=5, first_max_iter=2)
    assert out.table["kind"].tolist() == ["rss", "rss"] and (out.table["status"] != "error").all()


def test_region_parsing_errors():
    assert parse_regions("2:5-10")["end"].tolist() == [10]
    assert parse_regions(pd.DataFrame({"chrom": ["chr3"], "start": [1], "stop": [9]}))["name"].tolist() == ["3:1-9"]
    with pytest.raises(InputError, match="chrom:start-end"):
        parse_regions(["1:abc"])
    with pytest.raises(InputError, match="start > end"):
        parse_regions(["1:10-5"])


def test_collinear_columns_become_zero():
    C = torch.randn(30, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    X = torch.stack([C[:, 0] * 2 + 1, torch.ones(30, dtype=torch.float64), torch.arange(30.0).double()], 1)
    _, Xr = residualize(torch.randn(30, dtype=torch.float64), X, C)
    assert torch.equal(Xr[:, 0], torch.zeros(30, dtype=torch.float64))
    assert torch.equal(Xr[:, 1], torch.zeros(30, dtype=torch.float64)) and not math.isclose(float(Xr[:, 2].abs().sum()), 0)
