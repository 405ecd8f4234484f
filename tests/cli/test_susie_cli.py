"""``torchgen susie`` and ``torchgen scan`` end to end on the bundled example; the demo step."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import torchgenetics.cli.main as cli
from torchgenetics.datasets import example
from torchgenetics.io import align, read_plink
from torchgenetics.operators import BlockLD
from torchgenetics.susie import SusieFit, residualize
from torchgenetics.susie.demo import demo_susie

REGION = "1:22000000-24000000"


@pytest.fixture(autouse=True)
def _commands(monkeypatch):
    """Register the two subcommands (whether or not cli.main lists them yet); one torch thread."""
    names = tuple(dict.fromkeys(cli.SUBCOMMANDS + ("susie", "scan")))
    monkeypatch.setattr(cli, "SUBCOMMANDS", names)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ex():
    return example()


def test_susie_on_a_region_writes_and_reads_back(tmp_path, ex, capsys):
    out = tmp_path / "fm"
    code = cli.main(["susie", "--bfile", ex.bfile, "--pheno", ex.pheno, "--covar", ex.covar,
                     "--region", REGION, "--L", "10", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "990 used" in printed and "L1:" in printed and "1:22308287" in printed
    per_variant = pd.read_csv(f"{out}.susie.tsv", sep="\t")
    assert len(per_variant) == 122
    assert {"locus", "chrom", "id", "pos", "pip", "cs", "lbf", "posterior_mean", "posterior_sd"} <= set(per_variant)
    sets = pd.read_csv(f"{out}.cs.tsv", sep="\t")
    assert len(sets) >= 1 and {"variables", "coverage", "min_abs_corr"} <= set(sets)
    fit = SusieFit.load(f"{out}.fit.h5")
    assert np.allclose(per_variant["pip"].to_numpy(), fit.pip.numpy(), rtol=0, atol=1e-15)
    members = set(sets["variables"][0].split(","))
    assert set(per_variant.loc[per_variant["cs"].notna(), "id"]) == members
    assert fit.variable_names == per_variant["id"].tolist()


def test_susie_from_sumstats_and_ld_file(tmp_path, ex):
    G = read_plink(ex.bfile)
    al = align(G, pheno=ex.pheno, covar=ex.covar)
    kept = al.subset(G)
    idx = np.flatnonzero(kept.variants["id"].str.startswith("1:22").to_numpy())[:80]
    sub = kept.subset(variants=idx)
    BlockLD.from_genotypes(sub, [0]).save(tmp_path / "ld.h5")
    Z = sub.standardized()
    y = residualize(al.y, covariates=al.covariates)
    r = Z.T @ (y / y.std()) / (Z.shape[0] - 1)
    z = r * ((Z.shape[0] - 2) / (1 - r**2)) ** 0.5
    pd.DataFrame({"SNP": sub.variants["id"], "Z": z.numpy()}).to_csv(tmp_path / "stats.tsv", sep="\t",
                                                                     index=False)
    out = tmp_path / "rss"
    assert cli.main(["susie", "--sumstats", str(tmp_path / "stats.tsv"), "--ld", str(tmp_path / "ld.h5"),
                     "--n", "990", "--L", "5", "--out", str(out)]) == 0
    per_variant = pd.read_csv(f"{out}.susie.tsv", sep="\t")
    assert per_variant["id"].tolist() == sub.variants["id"].tolist()
    assert per_variant["z"].to_numpy() == pytest.approx(z.numpy())
    assert SusieFit.load(f"{out}.fit.h5").data_kind == "rss"


def test_scan_with_regions_file_and_resume(tmp_path, ex, capsys):
    regions = tmp_path / "regions.txt"
    regions.write_text(f"{REGION}\n1:32000000-33000000\n2:0-3000000\n")
    out = tmp_path / "scan"
    args = ["scan", "--bfile", ex.bfile, "--pheno", ex.pheno, "--covar", ex.covar, "--regions",
            str(regions), "--chunk-size", "2", "--out", str(out)]
    assert cli.main(args) == 0
    table = pd.read_csv(f"{out}.scan.tsv", sep="\t")
    assert table["locus"].tolist() == [REGION, "1:32000000-33000000", "2:0-3000000"]
    assert table.set_index("locus").loc[REGION, "n_cs"] >= 1
    sets = pd.read_csv(f"{out}.cs.tsv", sep="\t")
    assert set(sets["locus"]) == {REGION}
    pips = pd.read_csv(f"{out}.pip.tsv", sep="\t")
    assert set(pips["locus"]) <= set(table["locus"]) and len(pips) >= 122
    capsys.readouterr()
    assert cli.main(args) == 0  # the finished checkpoint is reused
    assert "resuming from" in capsys.readouterr().out
    pd.testing.assert_frame_equal(pd.read_csv(f"{out}.scan.tsv", sep="\t"), table)


def test_bad_input_is_a_clean_error(tmp_path, ex, capsys):
    assert cli.main(["susie", "--bfile", ex.bfile, "--region", REGION, "--out", str(tmp_path / "x")]) == 2
    assert "needs a phenotype" in capsys.readouterr().err
    assert cli.main(["susie", "--bfile", ex.bfile, "--pheno", ex.pheno, "--region", "1:5-x",
                     "--out", str(tmp_path / "x")]) == 2
    assert "chrom:start-end" in capsys.readouterr().err


def test_demo_step_prints_the_credible_set(capsys):
    fit = demo_susie()
    printed = capsys.readouterr().out
    assert "credible set" in printed and "1:22308287 (PIP" in printed and "causal" in printed
    assert len(fit.sets["cs"]) >= 1
