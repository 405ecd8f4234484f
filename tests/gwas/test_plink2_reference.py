"""Marginal GWAS equals plink2 --glm to plink2's printed precision.

Stored references (tests/gwas/data, made by make_plink2_reference.py with the commands
listed there, plink2 v2.00a3.5) run everywhere; the live comparison runs where plink2
is installed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from torchgenetics.datasets import example, simulate_genotypes, write_plink
from torchgenetics.gwas import gwas
from torchgenetics.gwas.inputs import association_data

DATA = Path(__file__).resolve().parent / "data"


def digits6(ours: np.ndarray, printed: np.ndarray) -> np.ndarray:
    """|ours - printed| in units of the 6th significant digit of the printed value."""
    unit = 10.0 ** (np.floor(np.log10(np.abs(printed))) - 5)
    return np.abs(ours - printed) / unit


def compare(ours: pd.DataFrame, path) -> None:
    """Check one phenotype's result against a plink2 .glm.linear(.gz) table."""
    ref = pd.read_csv(path, sep="\t")
    ours = ours.set_index("ID").loc[ref["ID"]]
    flip = (ref["A1"] != ref["ALT"]).to_numpy()        # older plink2 defaults test the minor allele
    sign = np.where(flip, -1.0, 1.0)
    assert (ours["ERRCODE"].to_numpy() == ref["ERRCODE"].to_numpy()).all()
    np.testing.assert_array_equal(ours["OBS_CT"].to_numpy(), ref["OBS_CT"].to_numpy())
    tested = (ref["ERRCODE"] == ".").to_numpy()
    assert tested.sum() > 0
    for column, signed, tol in (("BETA", True, 0.501), ("SE", False, 0.501), ("T_STAT", True, 0.501),
                                ("A1_FREQ", False, 0.501), ("P", False, 1.0)):
        mine = ours[column].to_numpy(dtype=float)[tested]
        if column == "A1_FREQ":
            mine = np.where(flip[tested], 1.0 - mine, mine)
        elif signed:
            mine = mine * sign[tested]
        theirs = ref[column].to_numpy(dtype=float)[tested]
        # plink2's t CDF is good to ~1e-7 relative, so its printed P may be one unit off
        assert digits6(mine, theirs).max() <= tol, column
    untested = ~tested
    assert ours["P"].isna().to_numpy()[untested].all()


def test_example_with_covariates_two_phenotypes():
    data = association_data(bfile=example().bfile, pheno=DATA / "example2.pheno", covar=example().covar)
    res = gwas(data.genotypes, data.y, data.covariates, phenotype_names=data.phenotype_names,
               covariate_names=data.covariate_names)
    for name in ("pheno", "pheno_b"):
        compare(res.to_frame(name), DATA / f"example.{name}.glm.linear.gz")


@pytest.mark.parametrize("covar", [True, False])
def test_edge_cases_with_and_without_covariates(covar):
    data = association_data(bfile=DATA / "edge", pheno=DATA / "edge.pheno",
                            covar=DATA / "edge.covar" if covar else None)
    res = gwas(data.genotypes, data.y, data.covariates, phenotype_names=data.phenotype_names)
    stem = "edge" if covar else "edge_nocovar"
    for name in ("y1", "y2", "y3"):
        compare(res.to_frame(name), DATA / f"{stem}.{name}.glm.linear.gz")
    codes = set(res.errcode.ravel())
    assert {"CONST_OMITTED_ALLELE", "SAMPLE_CT<=PREDICTOR_CT"} <= codes
    if covar:
        assert {"CORR_TOO_HIGH", "VIF_TOO_HIGH"} <= codes


@pytest.mark.peer
@pytest.mark.skipif(shutil.which("plink2") is None, reason="plink2 is not installed")
def test_live_plink2_on_fresh_simulation(tmp_path):
    rng = np.random.default_rng(21)
    sim = simulate_genotypes(500, 300, chromosomes=3, seed=21, missing_rate=0.01)
    write_plink(tmp_path / "d", sim.dosages, sim.samples, sim.variants)
    ids = {"FID": sim.samples["fid"], "IID": sim.samples["iid"]}
    y = np.nan_to_num(sim.dosages[:, 40], nan=1.0) * 0.5 + rng.normal(size=500)
    z = rng.normal(size=500)
    z[rng.choice(500, 30, replace=False)] = np.nan
    pd.DataFrame({**ids, "y": np.round(y, 6), "z": np.round(z, 6)}).to_csv(
        tmp_path / "d.pheno", sep="\t", index=False, na_rep="NA")
    site = rng.choice(["north", "south", "west"], 500)
    pd.DataFrame({**ids, "age": np.round(rng.normal(50, 8, 500), 3), "site": site}).to_csv(
        tmp_path / "d.covar", sep="\t", index=False)
    subprocess.run(["plink2", "--bfile", str(tmp_path / "d"), "--pheno", str(tmp_path / "d.pheno"),
                    "--covar", str(tmp_path / "d.covar"), "--glm", "hide-covar", "omit-ref", "cols=+a1freq",
                    "--threads", "1", "--out", str(tmp_path / "p")], check=True, capture_output=True)
    data = association_data(bfile=tmp_path / "d", pheno=tmp_path / "d.pheno", covar=tmp_path / "d.covar")
    res = gwas(data.genotypes, data.y, data.covariates, phenotype_names=data.phenotype_names)
    for name in ("y", "z"):
        compare(res.to_frame(name), tmp_path / f"p.{name}.glm.linear")
