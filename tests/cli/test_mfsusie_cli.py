"""``torchgen mfsusie`` end to end on the bundled example, with simulated outcome files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import torchgenetics.cli.main as cli
from torchgenetics.cli.mfsusie import align_outcomes, read_outcome, read_positions
from torchgenetics.datasets import example
from torchgenetics.errors import FileFormatError, SampleError
from torchgenetics.io import read_plink

REGION = "1:22000000-24000000"


@pytest.fixture(autouse=True)
def _commands(monkeypatch):
    """Register the subcommand (whether or not cli.main lists it yet); one torch thread."""
    monkeypatch.setattr(cli, "SUBCOMMANDS", tuple(dict.fromkeys(cli.SUBCOMMANDS + ("mfsusie",))))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """Two outcome files driven by one variant of REGION: a 24-position curve (uneven
    positions in the header, 5 samples absent, 3 with a missing value, 2 not genotyped)
    and a scalar outcome in an IID-only file."""
    d = tmp_path_factory.mktemp("mfsusie_cli")
    ex = example()
    G = read_plink(ex.bfile)
    v = G.variants
    idx = np.flatnonzero((v["chrom"].astype(str) == "1") & (v["pos"] >= 22000000) & (v["pos"] <= 24000000))
    X = G.read(variants=idx)
    X = np.where(np.isnan(X), np.nanmean(X, axis=0), X)
    causal = int(idx[np.argmax(X.var(axis=0))])
    x = (X[:, idx == causal][:, 0] - X[:, idx == causal].mean()) / X[:, idx == causal].std()
    rng = np.random.default_rng(5)
    pos = np.sort(rng.choice(np.arange(1000, 5000, 10), 24, replace=False))
    shape = np.exp(-0.5 * ((pos - 3000) / 500.0) ** 2)
    curve = 0.8 * x[:, None] * shape[None, :] + rng.normal(0, 0.6, (len(x), 24))
    samples = G.samples
    ids = samples[["fid", "iid"]].astype(str)
    atac = pd.concat([ids.reset_index(drop=True), pd.DataFrame(curve, columns=[str(p) for p in pos])], axis=1)
    atac = atac.drop(index=[3, 10, 20, 30, 40]).astype(object)
    atac.iloc[[0, 7, 50], 4] = "NA"
    extra = pd.DataFrame([["famX", "indX"] + ["0.1"] * 24, ["famY", "indY"] + ["NA"] * 24],
                         columns=atac.columns)
    atac = pd.concat([atac, extra])
    atac.columns = ["#FID", "IID"] + [str(p) for p in pos]
    atac.to_csv(d / "atac.tsv", sep="\t", index=False)
    expr = pd.DataFrame({"IID": ids["iid"], "expr": 0.5 * x + rng.normal(0, 1.0, len(x))})
    expr.to_csv(d / "expr.tsv", sep="\t", index=False)
    return {"dir": d, "bfile": ex.bfile, "covar": ex.covar, "causal_id": str(v["id"].iloc[causal]),
            "n_variants": len(idx), "dropped": {samples["iid"].iloc[i] for i in (3, 10, 20, 30, 40)},
            "missing": {str(atac.iloc[i, 1]) for i in (0, 7, 50)}, "pos": pos, "shape": shape}


def test_read_outcome_and_positions(sim, tmp_path):
    out = read_outcome(sim["dir"] / "atac.tsv")
    assert out.name == "atac" and out.n_positions == 24
    assert out.pos.tolist() == sim["pos"].astype(float).tolist()
    assert int((~out.complete).sum()) == 4  # three NA rows and the ungenotyped all-NA row
    scalar = read_outcome(sim["dir"] / "expr.tsv", name="rna")
    assert scalar.name == "rna" and scalar.pos is None and scalar.table.attrs["iid_only"]
    f = tmp_path / "p.txt"
    f.write_text("1 2\n# comment\n3\n")
    assert read_positions(f).tolist() == [1.0, 2.0, 3.0]
    f.write_text("1\n2\nx\n")
    with pytest.raises(FileFormatError, match=r"p.txt, line 3: position 'x'"):
        read_positions(f)
    f.write_text("1 5 4\n")
    with pytest.raises(FileFormatError, match=r"position 3 \(4\) follows position 2 \(5\)"):
        read_positions(f)
    with pytest.raises(FileFormatError, match="holds 3 positions but the outcome has 24"):
        read_outcome(sim["dir"] / "atac.tsv", pos=f)


def test_align_outcomes_keeps_complete_genotyped_samples_in_order(sim):
    G = read_plink(sim["bfile"])
    outs = [read_outcome(sim["dir"] / "atac.tsv"), read_outcome(sim["dir"] / "expr.tsv")]
    al, Y, report = align_outcomes(G, outs)
    kept = set(al.samples["iid"])
    assert al.n_samples == G.n_samples - 8
    assert not kept & (sim["dropped"] | sim["missing"])
    assert np.all(np.diff(al.sample_index) > 0)
    assert Y[0].shape == (al.n_samples, 24) and Y[1].shape == (al.n_samples, 1)
    # rows follow the genotype order
    expr = pd.read_csv(sim["dir"] / "expr.tsv", sep="\t").set_index("IID")["expr"]
    assert np.allclose(Y[1][:, 0].numpy(), expr.loc[al.samples["iid"]].to_numpy())
    assert "3 with missing values left out" in report and "atac" in report
    assert "absent from or incomplete in an outcome file: 8" in report


def test_mfsusie_writes_outputs_that_find_the_causal_variant(sim, tmp_path, capsys):
    from torchgenetics.susie.functional import load_mfsusie

    out = tmp_path / "fm"
    code = cli.main(["mfsusie", "--bfile", sim["bfile"], "--outcomes",
                     f"{sim['dir'] / 'atac.tsv'},{sim['dir'] / 'expr.tsv'}", "--covar", sim["covar"],
                     "--region", REGION, "--L", "5", "--wavelet", "haar", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "with missing values left out" in printed and "L1:" in printed
    pips = pd.read_csv(f"{out}.pip.tsv", sep="\t")
    assert len(pips) == sim["n_variants"]
    assert {"locus", "chrom", "id", "pos", "pip", "cs", "lbf"} <= set(pips)
    sets = pd.read_csv(f"{out}.cs.tsv", sep="\t")
    assert len(sets) >= 1
    assert sim["causal_id"] in sets["variables"][0].split(",")
    assert pips.loc[pips["pip"].idxmax(), "id"] in sets["variables"][0].split(",")
    curves = pd.read_csv(f"{out}.curves.tsv", sep="\t")
    assert {"effect", "cs", "lead_variable", "outcome", "pos", "mean", "lower", "upper"} <= set(curves)
    assert set(curves["outcome"]) == {"atac", "expr"}
    lead = curves[(curves["cs"] == sets["cs"][0]) & (curves["outcome"] == "atac")]
    assert (lead["lower"] <= lead["mean"]).all() and (lead["mean"] <= lead["upper"]).all()
    # the recovered curve follows the simulated bump (the grid spans the observed positions)
    simulated = np.interp(lead["pos"].to_numpy(), sim["pos"], sim["shape"])
    assert abs(np.corrcoef(lead["mean"].to_numpy(), simulated)[0, 1]) > 0.8
    fit = load_mfsusie(f"{out}.h5")
    assert np.allclose(fit.pip.numpy(), pips["pip"].to_numpy(), rtol=0, atol=1e-12)
    assert list(fit.outcome_names) == ["atac", "expr"]


def test_bad_inputs_are_clean_errors(sim, tmp_path, capsys):
    base = ["mfsusie", "--bfile", sim["bfile"], "--region", REGION, "--out", str(tmp_path / "x")]
    bad = tmp_path / "bad.tsv"
    bad.write_text("FID IID 1 2\nfam0001 ind0001 0.5 oops\n")
    assert cli.main(base + ["--outcomes", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.tsv, line 2" in err and "oops" in err
    bad.write_text("FID IID 10 30 20\nfam0001 ind0001 1 2 3\n")
    assert cli.main(base + ["--outcomes", str(bad)]) == 2
    assert "header position 3 (20) follows header position 2 (30)" in capsys.readouterr().err
    bad.write_text("FID IID 1 2\nnobody none 1 2\n")
    assert cli.main(base + ["--outcomes", str(bad)]) == 2
    assert "no sample in common" in capsys.readouterr().err
    atac = str(sim["dir"] / "atac.tsv")
    assert cli.main(base + ["--outcomes", atac, "--outcome-names", "a,b"]) == 2
    assert "--outcome-names lists 2 entries for 1 outcome files" in capsys.readouterr().err
    bad.write_text("FID IID 1\nfam0001 ind0001 NA\n")
    with pytest.raises(SampleError, match="no genotyped sample has a complete value"):
        align_outcomes(read_plink(sim["bfile"]), [read_outcome(bad)])
    assert cli.main(base + ["--outcomes", atac, "--region", "3:1-100"]) == 2
    assert "holds no variant" in capsys.readouterr().err
