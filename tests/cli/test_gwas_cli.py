"""``torchgen gwas`` and ``torchgen sparse-reml`` end to end."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest
import torch

from torchgenetics.cli.main import main
from torchgenetics.datasets import example, simulate_genotypes, simulate_phenotype, write_plink
from torchgenetics.gwas import gwas
from torchgenetics.gwas.inputs import association_data


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_gwas_writes_plink2_style_table_and_plots(tmp_path, capsys):
    ex = example()
    assert main(["gwas", "--bfile", ex.bfile, "--pheno", ex.pheno, "--covar", ex.covar, "--plot",
                 "--out", str(tmp_path / "run")]) == 0
    table = pd.read_csv(tmp_path / "run.pheno.glm.tsv", sep="\t")
    data = association_data(bfile=ex.bfile, pheno=ex.pheno, covar=ex.covar)
    res = gwas(data.genotypes, data.y, data.covariates)
    np.testing.assert_allclose(table["BETA"], res.beta[:, 0], rtol=1e-5)
    assert (tmp_path / "run.pheno.manhattan.png").stat().st_size > 0
    assert (tmp_path / "run.pheno.qq.png").stat().st_size > 0
    out = capsys.readouterr().out
    assert "990 used" in out and "covariates: intercept, age, sex=M, pc1, pc2" in out


def test_lmm_with_a_reml_fit_from_torchgen_reml(tmp_path, capsys):
    ex = example()
    assert main(["reml", "--bfile", ex.bfile, "--pheno", ex.pheno, "--covar", ex.covar,
                 "--out", str(tmp_path / "h2")]) == 0
    assert main(["gwas", "--bfile", ex.bfile, "--pheno", ex.pheno, "--covar", ex.covar,
                 "--reml-fit", str(tmp_path / "h2.fit.h5"), "--gz", "--out", str(tmp_path / "lmm")]) == 0
    with gzip.open(tmp_path / "lmm.pheno.glm.tsv.gz", "rt") as handle:
        table = pd.read_csv(handle, sep="\t")
    assert "CHISQ" in table.columns and len(table) == 5000
    assert "calibration gamma per kernel: 1 " in capsys.readouterr().out


def test_reml_fit_needs_one_phenotype(tmp_path, capsys):
    ex = example()
    two = tmp_path / "two.pheno"
    frame = pd.read_csv(ex.pheno, sep="\t")
    frame.assign(other=frame["pheno"]).to_csv(two, sep="\t", index=False, na_rep="NA")
    code = main(["gwas", "--bfile", ex.bfile, "--pheno", str(two), "--reml-fit", "x.h5", "--out", str(tmp_path / "o")])
    assert code == 2 and "--pheno-name" in capsys.readouterr().err


def test_sparse_reml_outputs(tmp_path, capsys):
    sim = simulate_genotypes(400, 300, chromosomes=2, seed=0)
    ph = simulate_phenotype(sim, h2=0.4, causal=[30, 200], seed=1)
    write_plink(tmp_path / "d", sim.dosages, sim.samples, sim.variants)
    pd.DataFrame({"FID": sim.samples["fid"], "IID": sim.samples["iid"], "y": ph.y}).to_csv(
        tmp_path / "d.pheno", sep="\t", index=False)
    assert main(["sparse-reml", "--bfile", str(tmp_path / "d"), "--pheno", str(tmp_path / "d.pheno"),
                 "--n-screen", "50", "--out", str(tmp_path / "s")]) == 0
    selected = pd.read_csv(tmp_path / "s.sparse.tsv", sep="\t")
    path = pd.read_csv(tmp_path / "s.path.tsv", sep="\t")
    assert sim.variants["id"].iloc[30] in selected["ID"].tolist()
    assert path["chosen"].sum() == 1 and (tmp_path / "s.sparse.h5").exists()
    assert "sparse REML + LASSO" in capsys.readouterr().out
