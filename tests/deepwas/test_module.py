"""DeepWASModule + Trainer: OneCycle stepped every step, clipping, validation, early stopping."""

import numpy as np
import pytest
import torch
from torch import nn

from torchgenetics.deepwas.datamodule import RegionDataModule
from torchgenetics.deepwas.fit import feature_stats
from torchgenetics.deepwas.module import DeepWASModule
from torchgenetics.deepwas.priors import LinearPrior, MLPPrior
from torchgenetics.deepwas.trainer import Trainer
from torchgenetics.errors import InputError
from torchgenetics.optim import one_cycle_lrs

DT = torch.float64


def _module(ex, dm, prior=None, **kw):
    mean, sd = feature_stats(ex.annotations)
    torch.manual_seed(0)
    kw.setdefault("optim", {"lr": 0.02})
    return DeepWASModule(prior if prior is not None else MLPPrior(6, hidden=(8,)),
                         likelihood={"method": "exact"}, log_scale=dm.moment_log_variance(),
                         feature_mean=mean, feature_sd=sd, **kw)


def test_datamodule_split_and_batches(small_example):
    dm = RegionDataModule(small_example.regions, batch_size=2, val_chromosomes=["chr2"], seed=3)
    assert {r.chrom for r in dm.train_regions} == {"1"} and {r.chrom for r in dm.val_regions} == {"2"}
    order1 = [[r.name for r in b] for b in dm.train_dataloader()]
    order2 = [[r.name for r in b] for b in RegionDataModule(
        small_example.regions, batch_size=2, val_chromosomes=["2"], seed=3).train_dataloader()]
    assert order1 == order2 and len(order1) == dm.steps_per_epoch == 2
    with pytest.raises(InputError, match="no region"):
        RegionDataModule(small_example.regions, val_chromosomes=["9"])
    with pytest.raises(InputError, match="keep some"):
        RegionDataModule(small_example.regions, val_chromosomes=["1", "2"])


def test_onecycle_is_stepped_every_step_and_clipping_applies(small_example):
    dm = RegionDataModule(small_example.regions, batch_size=1, val_chromosomes=["2"])
    module = _module(small_example, dm, optim={"lr": 0.05, "clip_norm": 1e-3})
    seen = []
    configure = module.configure_optimizers

    def spy():
        out = configure()
        opt = out["optimizer"]
        step = opt.step

        def recorded_step(*a, **k):
            grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
            seen.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
            return step(*a, **k)

        opt.step = recorded_step
        return out

    module.configure_optimizers = spy
    hist = Trainer(max_epochs=4).fit(module, dm)
    assert hist.n_steps == 12 == module.optim_config.n_steps
    assert np.allclose(hist.steps["lr"].to_numpy(), one_cycle_lrs(module.optim_config))
    assert 0.04 < hist.steps["lr"].max() <= 0.05  # peak of the warm-up
    assert max(seen) <= 1e-3 * (1 + 1e-9) and hist.steps["grad_norm"].max() > 1e-3


def test_training_improves_held_out_likelihood_and_restores_best(small_example):
    dm = RegionDataModule(small_example.regions, batch_size=1, val_chromosomes=["2"])
    module = _module(small_example, dm)
    start = module.evaluate(dm.val_regions)
    hist = Trainer(max_epochs=8, eval_train=True).fit(module, dm)
    e = hist.epochs
    assert {"train_nll", "train_delta", "val_nll", "val_null_nll", "val_delta", "val_se"} <= set(e.columns)
    end = module.evaluate(dm.val_regions)
    assert end["nll"] < start["nll"] and end["delta"] < 0
    assert end["nll"] == pytest.approx(e["val_nll"].min())  # best epoch restored
    assert hist.best_epoch == int(e["val_nll"].idxmin())


def test_early_stopping_on_a_plateau(small_example):
    dm = RegionDataModule(small_example.regions, batch_size=1, val_chromosomes=["2"])
    module = _module(small_example, dm, optim={"lr": 1e-9})
    hist = Trainer(max_epochs=30, patience=2).fit(module, dm)
    assert hist.stopped_early and len(hist.epochs) == 3


def test_learned_sigma_and_softplus_link(small_example):
    dm = RegionDataModule(small_example.regions, batch_size=2)
    module = _module(small_example, dm, prior=LinearPrior(6), learn_sigma=True, link="softplus",
                     optim={"lr": 0.05})
    Trainer(max_epochs=15).fit(module, dm)
    assert module.log_sigma.requires_grad
    assert 0.7 < float(module.sigma.detach()) < 1.4  # simulated with sigma = 1
    out = module.validation_step(dm.train_regions[:2])
    assert set(out) == {"nll", "null_nll", "n_scored", "var"} and out["var"] == 0.0


def test_ldsc_objective_trains_and_bad_priors_fail_cleanly(small_example):
    dm = RegionDataModule(small_example.regions, batch_size=2, val_chromosomes=["2"])
    module = _module(small_example, dm, objective="ldsc")
    hist = Trainer(max_epochs=6).fit(module, dm)
    assert np.isfinite(hist.epochs["val_nll"]).all()

    class Broken(nn.Module):
        def forward(self, x):
            return torch.full((x.shape[0],), float("nan"), dtype=DT)

    bad = DeepWASModule(Broken(), likelihood={"method": "exact"}, optim={"lr": 0.01})
    with pytest.raises(Exception, match="(not positive definite|loss became nan)"):
        Trainer(max_epochs=6).fit(bad, dm)
    with pytest.raises(InputError, match="objective"):
        DeepWASModule(LinearPrior(1), objective="mse")
