"""The same module and data module under Lightning (``lightning`` extra; skipped without it)."""

import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")

from torchgenetics.deepwas.datamodule import RegionDataModule  # noqa: E402
from torchgenetics.deepwas.lightning import lightning_datamodule, lightning_module  # noqa: E402
from torchgenetics.deepwas.module import DeepWASModule  # noqa: E402
from torchgenetics.deepwas.priors import MLPPrior  # noqa: E402
from torchgenetics.optim import one_cycle_lrs  # noqa: E402


def test_lightning_trains_with_onecycle_and_clipping(small_example):
    dm = RegionDataModule(small_example.regions, batch_size=1, val_chromosomes=["2"])
    torch.manual_seed(0)
    module = DeepWASModule(MLPPrior(6, hidden=(8,)), likelihood={"method": "exact"},
                           log_scale=dm.moment_log_variance(), optim={"lr": 0.02, "clip_norm": 1e-3})
    norms, lrs = [], []
    configure = module.configure_optimizers

    def spy():
        out = configure()
        opt, step = out["optimizer"], out["optimizer"].step

        def recorded(closure=None):
            # Lightning's closure runs training_step, backward and the gradient clipping
            loss = closure() if closure is not None else None
            grads = [p.grad.norm() for g in opt.param_groups for p in g["params"] if p.grad is not None]
            norms.append(float(torch.linalg.vector_norm(torch.stack(grads))))
            lrs.append(opt.param_groups[0]["lr"])
            step()
            return loss

        opt.step = recorded
        return out

    module.configure_optimizers = spy
    lm = lightning_module(module)
    trainer = pl.Trainer(max_epochs=5, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    before = module.evaluate(dm.val_regions)["nll"]
    trainer.fit(lm, datamodule=lightning_datamodule(dm))
    sched = trainer.lr_scheduler_configs[0].scheduler
    assert trainer.global_step == 15 == sched.last_epoch == module.optim_config.n_steps
    assert lrs == pytest.approx(list(one_cycle_lrs(module.optim_config)))
    assert max(norms) <= 1e-3 * (1 + 1e-9)
    assert "val_nll" in trainer.callback_metrics and "val_delta" in trainer.callback_metrics
    assert module.evaluate(dm.val_regions)["nll"] < before
