"""fit_deepwas end to end: config, save/load, predictions, conv prior, banded LD."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from torchgenetics.deepwas.config import DeepWASConfig
from torchgenetics.deepwas.fit import DeepWASFit, fit_deepwas
from torchgenetics.deepwas.predict import predict_variance, write_predictions
from torchgenetics.errors import FileFormatError, InputError
from torchgenetics.operators import BandedLD

SMALL = {"prior": {"kind": "mlp", "hidden": [8]}, "training": {"epochs": 5},
         "data": {"batch_size": 1, "val_chromosomes": ["2"]}, "likelihood": {"method": "exact"}}


def test_fit_save_load_predict(small_example, tmp_path):
    ex = small_example
    fit = fit_deepwas(ex.sumstats, ex.annotations, ex.ld, SMALL)
    assert fit.history.n_steps == 15
    assert fit.metrics["val"]["n_scored"] == 300 and fit.metrics["val"]["delta"] < 0
    assert "val: NLL/variant" in fit.summary()
    fit.save(tmp_path / "fit.h5")
    back = DeepWASFit.load(tmp_path / "fit.h5")
    a, b = fit.predict(ex.annotations), back.predict(ex.annotations)
    assert np.allclose(a["log_variance"], b["log_variance"]) and list(a.columns) == [
        "id", "chrom", "pos", "log_variance", "variance"]
    assert back.config["data"]["val_chromosomes"] == ["2"]
    assert back.history.epochs.equals(fit.history.epochs)
    write_predictions(a, tmp_path / "p.tsv")
    table = pd.read_csv(tmp_path / "p.tsv", sep="\t")
    assert np.allclose(table["variance"], a["variance"], rtol=1e-9)


def test_same_seed_same_trajectory(small_example):
    ex = small_example
    runs = [fit_deepwas(ex.sumstats, ex.annotations, ex.ld, SMALL).history.steps["loss"] for _ in range(2)]
    assert np.array_equal(runs[0].to_numpy(), runs[1].to_numpy())


def test_custom_prior_needs_prior_to_load(small_example, tmp_path):
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(6, 1, dtype=torch.float64)

        def forward(self, x):
            return self.lin(x).squeeze(-1)

    ex = small_example
    fit = fit_deepwas(ex.sumstats, ex.annotations, ex.ld, SMALL, prior=Tiny())
    fit.save(tmp_path / "t.h5")
    with pytest.raises(FileFormatError, match="pass prior="):
        DeepWASFit.load(tmp_path / "t.h5")
    back = DeepWASFit.load(tmp_path / "t.h5", prior=Tiny())
    assert np.allclose(back.predict(ex.annotations)["variance"], fit.predict(ex.annotations)["variance"])


def test_conv_prior_on_windowed_tracks(small_example):
    ex = small_example
    cfg = dict(SMALL, prior={"kind": "conv", "channels": [4], "kernel_size": 3, "hidden": [8]},
               data={"batch_size": 1, "val_chromosomes": ["2"], "track_half_width": 2})
    fit = fit_deepwas(ex.sumstats, ex.annotations, ex.ld, cfg)
    assert fit.module.prior.window == 5
    pred = predict_variance(fit, ex.annotations.windowed(2))
    assert pred.shape[0] == 600 and np.isfinite(pred["variance"]).all()


def test_banded_ld_iterative_fit(small_example):
    ex = small_example
    G = ex.genotypes.to_genotypes()
    band = BandedLD.from_genotypes(G, window=20).repaired("ridge").repaired("ridge", 0.1)
    cfg = {"prior": {"kind": "linear"}, "training": {"epochs": 6},
           "data": {"window_size": 150, "batch_size": 1, "val_chromosomes": ["2"]},
           "likelihood": {"method": "iterative", "num_probes": 8}}
    fit = fit_deepwas(ex.sumstats, ex.annotations, band, cfg)
    assert fit.report["n_regions"] == 4
    assert np.isfinite(fit.history.steps["loss"]).all()
    assert fit.metrics["val"]["se"] > 0


def test_config_validation(tmp_path):
    with pytest.raises(InputError, match="unknown key"):
        DeepWASConfig.from_dict({"training": {"epoch": 3}})
    with pytest.raises(InputError, match="unknown config section"):
        DeepWASConfig.from_dict({"trainer": {}})
    f = tmp_path / "c.yaml"
    f.write_text("optim:\n  lr: -1\n")
    with pytest.raises(FileFormatError, match="lr"):
        DeepWASConfig.from_yaml(f)
    cfg = DeepWASConfig.from_yaml("configs/deepwas.yaml")
    assert cfg.to_dict() == DeepWASConfig().to_dict()
    assert cfg.optim_config(50).n_steps == 50


def test_warm_start_continues_from_a_fit(small_example, tmp_path):
    ex = small_example
    first = fit_deepwas(ex.sumstats, ex.annotations, ex.ld, SMALL)
    first.save(tmp_path / "first.h5")
    again = fit_deepwas(ex.sumstats, ex.annotations, ex.ld, SMALL, init=DeepWASFit.load(tmp_path / "first.h5"))
    assert again.history.steps["loss"].iloc[0] < first.history.steps["loss"].iloc[0]
    assert again.metrics["val"]["nll"] <= first.metrics["val"]["nll"] + 1e-3
    with pytest.raises(InputError, match="init"):
        fit_deepwas(ex.sumstats, ex.annotations, ex.ld, dict(SMALL, prior={"kind": "linear"}), init=first)
