"""``torchgen dream technical|cis|trans`` end to end on a tiny simulated screen."""

import argparse

import pandas as pd
import pytest
import torch

from torchgenetics.cli import dream
from torchgenetics.dream import TransFit, simulate_screen, write_cells, write_counts
from torchgenetics.errors import FileFormatError, InputError


def _parse(argv):
    parser = argparse.ArgumentParser(prog="torchgen")
    dream.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("dream_cli")
    sim = simulate_screen(n_cells=120, n_features=3, seed=0)
    write_counts(root / "counts.csv", sim.counts)
    write_cells(root / "cells.tsv", sim.cells)
    config = root / "dream.yaml"
    config.write_text("seed: 1\nthreads: 1\ntrans:\n  n_samples: 50\n  optim: {lr: 0.05}\n"
                      "cis:\n  n_samples: 50\ntechnical:\n  n_samples: 50\n")
    return root, sim


def _args(root, step, *extra):
    return ["dream", step, "--counts", str(root / "counts.csv"), "--cells", str(root / "cells.tsv"),
            "--cis-gene", "CIS", "--config", str(root / "dream.yaml"), "--out", str(root / "out"),
            "--n-steps", "60", *extra]


def test_three_steps_write_their_outputs(files, capsys):
    root, sim = files
    threads = torch.get_num_threads()
    try:
        for step in ("technical", "cis", "trans"):
            args = _parse(_args(root, step))
            assert args.func(args) == 0
    finally:
        torch.set_num_threads(threads)
    out = root / "out"
    for name in ("technical_counts.h5", "technical_counts_effects.tsv", "cis.h5", "cis_guides.tsv",
                 "cis_cells.tsv", "trans_counts.h5", "trans_counts.tsv"):
        assert (out / name).is_file(), name
    table = pd.read_csv(out / "trans_counts.tsv", sep="\t", index_col=0)
    assert list(table.index) == sim.trans_features
    assert {"K_mean", "n_mean", "gate_mean", "log2fc_mean"} <= set(table.columns)
    fit = TransFit.load(out / "trans_counts.h5")
    assert fit.n_iter == 60 and fit.settings["technical_used"]
    effects = pd.read_csv(out / "technical_counts_effects.tsv", sep="\t")
    assert set(effects["group"]) == {"line1"}
    printed = capsys.readouterr().out
    assert "trans: 60 SVI steps" in printed and "wrote" in printed


def test_trans_before_cis_is_a_clear_error(files, tmp_path):
    root, _ = files
    argv = _args(root, "trans")
    argv[argv.index("--out") + 1] = str(tmp_path / "empty")
    args = _parse(argv)
    with pytest.raises(InputError, match="run `torchgen dream cis"):
        args.func(args)


def test_unknown_config_key_is_named(files, tmp_path):
    root, _ = files
    bad = tmp_path / "bad.yaml"
    bad.write_text("trans:\n  frm: single\n")
    argv = _args(root, "cis")
    argv[argv.index("--config") + 1] = str(bad)
    args = _parse(argv)
    with pytest.raises(FileFormatError, match="unknown key\\(s\\) \\['frm'\\] in section 'trans'"):
        args.func(args)


def test_shipped_config_is_valid():
    from pathlib import Path

    config = dream.load_config(Path(__file__).resolve().parents[2] / "configs" / "dream.yaml")
    assert config["trans"]["form"] == "single" and config["cis"]["optim"]["schedule"] == "onecycle"
