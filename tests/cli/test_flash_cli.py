"""``torchgen flash``: reading matrices, writing loadings/factors/priors/ELBO, clean errors."""

import argparse
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from torchgenetics.cli import flash as flash_cli
from torchgenetics.errors import FileFormatError, InputError
from torchgenetics.flash import FlashFit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "flash"))
from flash_sim import block_factors  # noqa: E402


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _run(argv):
    parser = argparse.ArgumentParser()
    flash_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["flash", *argv])
    return args.func(args)


@pytest.fixture(scope="module")
def matrix():
    Y, _, _ = block_factors(n=60, p=40, K=2, seed=30)
    return Y.numpy()


def test_tsv_with_names_and_missing_values(matrix, tmp_path, capsys):
    Y = matrix.copy()
    Y[3, 4] = np.nan
    frame = pd.DataFrame(Y, index=[f"g{i}" for i in range(60)], columns=[f"s{j}" for j in range(40)])
    frame.index.name = "gene"
    path = tmp_path / "Y.tsv"
    frame.to_csv(path, sep="\t", na_rep="NA")
    out = tmp_path / "res"
    assert _run(["--matrix", str(path), "--out", str(out), "--backfit", "parallel", "--plots"]) == 0
    text = capsys.readouterr().out
    assert "flash: 2 factors on 60 x 40 (1 missing)" in text
    loadings = pd.read_csv(f"{out}.loadings.tsv", sep="\t", index_col=0)
    assert list(loadings.index[:2]) == ["g0", "g1"] and {"pm1", "psd1", "lfsr2"} <= set(loadings.columns)
    factors = pd.read_csv(f"{out}.factors.tsv", sep="\t", index_col=0)
    assert list(factors.index[:2]) == ["s0", "s1"]
    priors = pd.read_csv(f"{out}.priors.tsv", sep="\t")
    assert set(priors.family) == {"point_normal"}
    trace = pd.read_csv(f"{out}.elbo.tsv", sep="\t")
    assert {"greedy", "backfit"} <= set(trace.step) and trace.elbo.notna().all()
    for png in ("scree", "loadings", "elbo"):
        assert Path(f"{out}.{png}.png").stat().st_size > 1000
    fit = FlashFit.load(f"{out}.fit.h5")
    assert fit.n_factors == 2 and fit.row_names[0] == "g0"
    # warm start from the saved fit
    assert _run(["--matrix", str(path), "--out", str(tmp_path / "again"), "--init", f"{out}.fit.h5",
                 "--greedy-max", "0", "--backfit", "sequential"]) == 0


def test_npy_and_h5_inputs_with_standard_errors(matrix, tmp_path):
    np.save(tmp_path / "Y.npy", matrix)
    np.save(tmp_path / "S.npy", np.ones_like(matrix))
    assert _run(["--matrix", str(tmp_path / "Y.npy"), "--se", str(tmp_path / "S.npy"), "--var-type", "none",
                 "--out", str(tmp_path / "npy"), "--prior", "point_laplace", "--factors-prior", "normal"]) == 0
    fit = FlashFit.load(tmp_path / "npy.fit.h5")
    assert fit.priors[0][0]["family"] == "point_laplace" and fit.priors[0][1]["family"] == "normal"
    with h5py.File(tmp_path / "Y.h5", "w") as f:
        f["expression"] = matrix
        f["other"] = np.zeros(3)
    with pytest.raises(FileFormatError, match="--dataset"):
        _run(["--matrix", str(tmp_path / "Y.h5"), "--out", str(tmp_path / "h5")])
    assert _run(["--matrix", str(tmp_path / "Y.h5"), "--dataset", "expression", "--out", str(tmp_path / "h5"),
                 "--var-type", "2"]) == 0


def test_bad_files_are_clean_errors(tmp_path, matrix):
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\n1\t2\n3\tx\n")
    with pytest.raises(FileFormatError, match="line 3"):
        _run(["--matrix", str(bad), "--out", str(tmp_path / "o")])
    nan_row = matrix.copy()
    nan_row[5] = np.nan
    np.save(tmp_path / "nanrow.npy", nan_row)
    with pytest.raises(InputError, match="row 5"):
        _run(["--matrix", str(tmp_path / "nanrow.npy"), "--out", str(tmp_path / "o")])
    from torchgenetics.cli.main import main

    if "flash" in __import__("torchgenetics.cli.main", fromlist=["SUBCOMMANDS"]).SUBCOMMANDS:
        assert main(["flash", "--matrix", str(tmp_path / "nanrow.npy"), "--out", str(tmp_path / "o")]) == 2
