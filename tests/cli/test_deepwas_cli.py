"""``torchgen deepwas train`` and ``torchgen deepwas predict`` on simulated files."""

import pandas as pd
import pytest
import torch

from torchgenetics.cli.main import main
from torchgenetics.deepwas.simulate import simulate_example


@pytest.fixture(autouse=True)
def _single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("deepwas")
    ex = simulate_example(n_variants=400, n_reference=300, block_size=100, chromosomes=2, seed=1)
    ex.sumstats.write(d / "ss.tsv")
    ex.annotations.write(d / "ann.tsv")
    (d / "ld").mkdir()
    ex.ld.save(d / "ld" / "chr1_2.h5")
    (d / "cfg.yaml").write_text("prior: {kind: mlp, hidden: [8]}\n"
                                "training: {epochs: 6}\ndata: {batch_size: 1}\n")
    return d


def test_train_then_predict(inputs, capsys):
    d = inputs
    code = main(["deepwas", "train", "--sumstats", str(d / "ss.tsv"), "--annotations",
                 str(d / "ann.tsv"), "--ld", str(d / "ld"), "--config", str(d / "cfg.yaml"),
                 "--val-chrom", "2", "--out", str(d / "run")])
    assert code == 0
    out = capsys.readouterr().out
    assert "DeepWAS fit: prior mlp" in out and "val: NLL/variant" in out
    hist = pd.read_csv(d / "run.history.tsv", sep="\t")
    assert len(hist) == 6 and {"val_nll", "val_delta"} <= set(hist.columns)
    code = main(["deepwas", "predict", "--model", str(d / "run.model.h5"), "--annotations",
                 str(d / "ann.tsv"), "--out", str(d / "pred.tsv")])
    assert code == 0
    pred = pd.read_csv(d / "pred.tsv", sep="\t")
    assert len(pred) == 400 and (pred["variance"] > 0).all()


def test_bad_inputs_are_clean_errors(inputs, capsys):
    d = inputs
    code = main(["deepwas", "train", "--sumstats", str(d / "missing.tsv"), "--annotations",
                 str(d / "ann.tsv"), "--ld", str(d / "ld"), "--out", str(d / "x")])
    assert code == 2
    assert "torchgen deepwas: error:" in capsys.readouterr().err
    (d / "bad.yaml").write_text("training: {epoch: 3}\n")
    code = main(["deepwas", "train", "--sumstats", str(d / "ss.tsv"), "--annotations",
                 str(d / "ann.tsv"), "--ld", str(d / "ld"), "--config", str(d / "bad.yaml"),
                 "--out", str(d / "x")])
    assert code == 2
    assert "unknown key" in capsys.readouterr().err


def test_help_lists_deepwas(capsys):
    with pytest.raises(SystemExit):
        main(["deepwas", "--help"])
    out = capsys.readouterr().out
    assert "train" in out and "predict" in out
