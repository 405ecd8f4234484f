"""Lightning adapters (the ``lightning`` extra): the same module and data, Lightning's Trainer.

:func:`lightning_module` wraps a :class:`~torchgenetics.deepwas.module.DeepWASModule`
in a ``LightningModule`` that delegates ``training_step``, ``validation_step`` and
``configure_optimizers`` (the OneCycle schedule is sized from
``trainer.estimated_stepping_batches`` and stepped every step), clips gradients with
the module's ``clip_norm`` unless the Trainer sets ``gradient_clip_val``, logs
``train_loss``, ``val_nll`` and ``val_delta``, and moves region batches to the device.
:func:`lightning_datamodule` wraps a
:class:`~torchgenetics.deepwas.datamodule.RegionDataModule`.
"""

from __future__ import annotations

from torchgenetics.errors import MissingExtraError

from .module import summarize_validation

__all__ = ["lightning_module", "lightning_datamodule"]


def _pl():
    try:
        import lightning.pytorch as pl
    except ImportError:
        raise MissingExtraError("lightning", "lightning") from None
    return pl


def lightning_module(module):
    """A ``lightning.pytorch.LightningModule`` driving ``module``.

    Parameters
    ----------
    module : DeepWASModule

    Returns
    -------
    lightning.pytorch.LightningModule
        Its ``inner`` attribute is ``module`` (trained in place).

    Examples
    --------
    >>> from torchgenetics.deepwas.priors import LinearPrior
    >>> from torchgenetics.deepwas.module import DeepWASModule
    >>> lm = lightning_module(DeepWASModule(LinearPrior(2)))  # doctest: +SKIP
    >>> trainer = lightning.pytorch.Trainer(max_epochs=5)       # doctest: +SKIP
    >>> trainer.fit(lm, datamodule=lightning_datamodule(dm))    # doctest: +SKIP
    """
    pl = _pl()

    class LightningDeepWAS(pl.LightningModule):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self._val_outputs = []

        def forward(self, features):
            return self.inner(features)

        def training_step(self, batch, batch_idx):
            loss = self.inner.training_step(batch, batch_idx)
            self.log("train_loss", loss.detach(), prog_bar=True, batch_size=len(batch))
            return loss

        def on_validation_epoch_start(self):
            self._val_outputs = []

        def validation_step(self, batch, batch_idx):
            self._val_outputs.append(self.inner.validation_step(batch, batch_idx))

        def on_validation_epoch_end(self):
            m = summarize_validation(self._val_outputs)
            if m["n_scored"]:
                self.log("val_nll", m["nll"], prog_bar=True)
                self.log("val_delta", m["delta"], prog_bar=True)

        def configure_optimizers(self):
            self.inner.set_total_steps(int(self.trainer.estimated_stepping_batches))
            return self.inner.configure_optimizers()

        def configure_gradient_clipping(self, optimizer, gradient_clip_val=None,
                                        gradient_clip_algorithm=None):
            clip = gradient_clip_val if gradient_clip_val is not None else self.inner.optim_config.clip_norm
            if clip:
                self.clip_gradients(optimizer, gradient_clip_val=clip,
                                    gradient_clip_algorithm=gradient_clip_algorithm or "norm")

        def transfer_batch_to_device(self, batch, device, dataloader_idx):
            return [r.to(device=device) for r in batch]

    return LightningDeepWAS(module)


def lightning_datamodule(datamodule):
    """A ``lightning.pytorch.LightningDataModule`` serving a RegionDataModule's loaders.

    Parameters
    ----------
    datamodule : RegionDataModule

    Returns
    -------
    lightning.pytorch.LightningDataModule

    Examples
    --------
    >>> ldm = lightning_datamodule(dm)  # doctest: +SKIP
    """
    pl = _pl()

    class LightningRegions(pl.LightningDataModule):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def setup(self, stage=None):
            self.inner.setup(stage)

        def train_dataloader(self):
            return self.inner.train_dataloader()

        def val_dataloader(self):
            return self.inner.val_dataloader() if self.inner.val_regions else []

    return LightningRegions(datamodule)
