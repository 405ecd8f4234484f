"""Lightning adapters (the ``lightning`` extra): the same module and data, Lightning's Trainer.

:func:`lightning_module` wraps a :class:`~torchgenetics.deepwas.module.DeepWASModule`
in a ``LightningModule`` that delegates ``training_step``, ``validation_step`` and
``configure_optimizers`` (the OneCycle schedule is sized from
``trainer.estimated_stepping_batches`` and stepped every step), clips gradients with
the module's ``clip_norm`` unless the Trainer sets ``gradient_clip_val``, logs
``train_loss``, ``val_nll`` and ``val_delta``, and moves region batches to the device.
:func:`lightning_datamodule` wraps a
:class:`~torchgenetics.deepwas.datamodule.RegionDataModule`.

Under Lightning's DDP strategy (``Trainer(strategy="ddp", use_distributed_sampler=False)``)
every rank draws the same global batch, scores its share of the regions and
returns its loss scaled for DDP's gradient averaging
(:class:`~torchgenetics.distributed.training.ShardedObjective`), so training equals
the single-process run with the same batch size and seed; validation batches are
split over the ranks the same way and the held-out metrics combined on every rank.
Lightning's default distributed sampler would give each rank different batches
instead, so it is refused.
"""

from __future__ import annotations

from torchgenetics.errors import InputError, MissingExtraError

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

        def _world(self):
            return int(self.trainer.world_size) if self._trainer is not None else 1

        def on_train_start(self):
            if self._world() > 1:
                from torch.utils.data import DistributedSampler

                loader = self.trainer.train_dataloader
                samplers = (getattr(loader, "sampler", None),
                            getattr(getattr(loader, "batch_sampler", None), "sampler", None))
                if any(isinstance(s, DistributedSampler) for s in samplers):
                    raise InputError("DeepWAS under Lightning DDP splits each global batch of regions "
                                     "over the ranks itself: create the Trainer with "
                                     "use_distributed_sampler=False")

        def training_step(self, batch, batch_idx):
            world = self._world()
            if world == 1:
                loss = self.inner.training_step(batch, batch_idx)
                self.log("train_loss", loss.detach(), prog_bar=True, batch_size=len(batch))
                return loss
            from torchgenetics.distributed.training import ShardedObjective

            loss, part = ShardedObjective(self.inner, rank=self.global_rank, world=world)(batch)
            self.log("train_loss", part, prog_bar=True, batch_size=len(batch), sync_dist=True,
                     reduce_fx="sum")
            return loss

        def on_validation_epoch_start(self):
            self._val_outputs = []

        def validation_step(self, batch, batch_idx):
            world = self._world()
            if world > 1:
                from torchgenetics.distributed.training import shard_regions

                batch = [batch[i] for i in shard_regions(batch, self.global_rank, world)]
                if not batch:
                    return
            self._val_outputs.append(self.inner.validation_step(batch, batch_idx))

        def on_validation_epoch_end(self):
            outputs = self._val_outputs
            if self._world() > 1:
                from torchgenetics.distributed.context import all_gather_objects

                outputs = [o for part in all_gather_objects(outputs) for o in part]
            m = summarize_validation(outputs)
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
