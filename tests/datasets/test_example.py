"""Tests of the bundled example dataset and the script that makes it."""

import importlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bed_reader import open_bed

from torchgenetics.datasets import example, simulate_genotypes
from torchgenetics.datasets import make_example as mk
from torchgenetics.errors import MissingFileError

# The package attribute `example` is the function; the module lives in sys.modules.
ex_mod = importlib.import_module("torchgenetics.datasets.example")


@pytest.fixture(scope="module")
def ex():
    return example()


@pytest.fixture(scope="module")
def dosages(ex):
    with open_bed(ex.bed) as bed:
        return bed.read()


@pytest.fixture(scope="module")
def truth(ex):
    return ex.load_truth()


def test_paths_exist(ex):
    for p in (ex.bed, ex.bim, ex.fam, ex.pheno, ex.covar, ex.components, ex.truth):
        assert Path(p).is_file(), p
    assert ex.bed == ex.bfile + ".bed"
    assert Path(ex.bed).stat().st_size == 3 + 5000 * 250


def test_genotypes_shape_chromosomes_missingness(ex, dosages, truth):
    assert dosages.shape == (1000, 5000)
    with open_bed(ex.bed) as bed:
        assert bed.chromosome.tolist() == ["1"] * 2500 + ["2"] * 2500
        assert len(set(bed.sid)) == 5000
    miss = np.isnan(dosages)
    assert 0.003 < miss.mean() < 0.007
    assert int(miss.sum()) == truth["n_missing_calls"]
    assert set(np.unique(dosages[~miss])) == {0.0, 1.0, 2.0}


def test_bed_equals_simulated_dosages(dosages):
    # make_example draws the genotypes from the first child of its seed sequence.
    s_geno = np.random.SeedSequence(mk.EXAMPLE_SEED).spawn(4)[0]
    sim = simulate_genotypes(1000, 5000, [2500, 2500], seed=s_geno, missing_rate=mk.MISSING_RATE)
    np.testing.assert_array_equal(dosages, sim.dosages)


def test_pheno_and_covar_tables(ex, truth):
    head = Path(ex.pheno).read_text().splitlines()[0]
    assert head == "#FID\tIID\tpheno"
    ph = pd.read_csv(ex.pheno, sep="\t")
    cv = pd.read_csv(ex.covar, sep="\t")
    fam = pd.read_csv(ex.fam, sep=" ", header=None, names=["fid", "iid", "f", "m", "sex", "ph"])
    assert ph["#FID"].tolist() == fam["fid"].tolist() and ph["IID"].tolist() == fam["iid"].tolist()
    assert cv["IID"].tolist() == fam["iid"].tolist()
    na = ph["pheno"].isna()
    assert int(na.sum()) == 10 == 1000 - truth["n_samples_with_phenotype"]
    assert ph.loc[na, "IID"].tolist() == truth["missing_phenotype_iids"]
    assert list(cv.columns) == ["#FID", "IID", "age", "sex", "pc1", "pc2"]
    assert set(cv["sex"]) == {"M", "F"}
    assert ((cv["sex"] == "M") == (fam["sex"] == 1)).all()
    assert cv[["age", "pc1", "pc2"]].notna().all().all()


def test_components_spec(ex):
    spec = json.loads(Path(ex.components).read_text())
    comps = spec["components"]
    assert [c["name"] for c in comps] == ["chr1", "chr2"]
    assert all(set(c) == {"name", "variant_indices", "annotation"} for c in comps)
    assert [c["annotation"] for c in comps] == [
        {"chromosome": "1", "n_variants": 2500},
        {"chromosome": "2", "n_variants": 2500},
    ]
    assert comps[0]["variant_indices"] == list(range(2500))
    assert comps[1]["variant_indices"] == list(range(2500, 5000))


def test_truth_reproduces_the_phenotype(ex, dosages, truth):
    assert truth["h2"] == 0.5
    assert [c["h2"] for c in truth["components"]] == [0.3, 0.2]
    causal = np.array(truth["causal_indices"])
    assert causal.size == 300 and [c["n_causal"] for c in truth["components"]] == [150, 150]
    with open_bed(ex.bed) as bed:
        assert bed.sid[causal].tolist() == truth["causal_ids"]
    # Rebuild g from the bundled genotypes and the true standardized effects.
    X = dosages[:, causal]
    Z = (X - np.nanmean(X, 0)) / np.nanstd(X, 0)
    Z[np.isnan(Z)] = 0.0
    g = Z @ np.array(truth["effects_standardized"])
    ph = pd.read_csv(ex.pheno, sep="\t")["pheno"].to_numpy()
    cv = pd.read_csv(ex.covar, sep="\t")
    b = truth["covariate_effects"]
    cov = (
        b["age"] * cv["age"]
        + b["sex_M"] * (cv["sex"] == "M")
        + b["pc1"] * cv["pc1"]
        + b["pc2"] * cv["pc2"]
    )
    ok = ~np.isnan(ph)
    e = ph[ok] - g[ok] - cov.to_numpy()[ok]
    assert np.var(e) == pytest.approx(truth["residual_variance"], abs=0.08)
    assert abs(np.corrcoef(e, g[ok])[0, 1]) < 0.1
    realized = np.var(g[ok]) / np.var(g[ok] + e)
    assert realized == pytest.approx(truth["realized_h2"], abs=1e-5)
    assert 0.35 < truth["realized_h2"] < 0.65


def test_regeneration_is_byte_identical_and_quick(tmp_path, capsys):
    start = time.perf_counter()
    assert mk.main(["--out", str(tmp_path)]) == 0
    elapsed = time.perf_counter() - start
    assert elapsed < 10, f"make_example took {elapsed:.1f} s"
    printed = capsys.readouterr().out
    for name in mk.EXAMPLE_FILES:
        assert (tmp_path / name).read_bytes() == (mk.DATA_DIR / name).read_bytes(), name
        assert name in printed


def test_missing_bundle_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(ex_mod, "_DATA_DIR", tmp_path)
    with pytest.raises(MissingFileError) as info:
        example()
    # args[0] holds the message (str() of this OSError subclass may show errno format).
    assert "make_example" in info.value.args[0]
    assert info.value.path == str(tmp_path / "example.bed")


def test_files_load_with_torchgenetics_io(ex, dosages):
    io_plink = pytest.importorskip("torchgenetics.io.plink")
    io_tables = pytest.importorskip("torchgenetics.io.tables")
    io_components = pytest.importorskip("torchgenetics.io.components")
    G = io_plink.read_plink(ex.bfile)
    np.testing.assert_array_equal(G.read(), dosages)
    spec = io_components.read_components(ex.components, G.variants)
    assert [len(ix) for ix in spec.indices] == [2500, 2500]
    pheno = io_tables.read_table(ex.pheno)
    assert int(pheno["pheno"].isna().sum()) == 10
    covar = io_tables.read_table(ex.covar, kind="covariate")
    assert list(covar.columns) == ["age", "sex=M", "pc1", "pc2"]
