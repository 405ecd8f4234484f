"""Plain torch training loop for :class:`~torchgenetics.deepwas.module.DeepWASModule`.

What Lightning's ``Trainer.fit`` would do, in a few lines: AdamW + OneCycleLR from
``configure_optimizers`` with the scheduler stepped after **every** optimiser step,
gradient-norm clipping, per-epoch held-out likelihood on the validation chromosomes,
early stopping on it (:class:`torchgenetics.optim.EarlyStopping`) and restoring the
best epoch's weights.

With ``distributed=True`` (inside an initialised ``torch.distributed`` process
group) it trains data-parallel: every rank draws the same global batch, scores its
share of the regions and DistributedDataParallel averages the scaled gradients
(:mod:`torchgenetics.distributed.training`), so the run equals single-process
training with the same batch size and seed; validation regions are split over
the ranks too, and only rank 0 shows the progress bar.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import pandas as pd
import torch
from tqdm.auto import tqdm

from torchgenetics.errors import ConvergenceError, InputError
from torchgenetics.optim import EarlyStopping

__all__ = ["TrainingHistory", "Trainer"]


@dataclass
class TrainingHistory:
    """What a training run did.

    Attributes
    ----------
    steps : pandas.DataFrame
        One row per optimiser step: ``step``, ``epoch``, ``loss`` (objective per scored
        variant), ``lr`` (the rate used), ``grad_norm`` (before clipping).
    epochs : pandas.DataFrame
        One row per epoch: ``train_loss`` (mean step loss), ``val_nll``, ``val_null_nll``,
        ``val_delta`` (held-out NLL per variant minus the ``F -> 0`` null's), ``val_se``
        and, with ``eval_train``, ``train_nll``/``train_delta``; ``seconds``.
    best_epoch : int or None
        Epoch with the lowest held-out NLL (None without validation).
    stopped_early : bool
    seconds : float

    Examples
    --------
    >>> h = TrainingHistory(pd.DataFrame({"loss": [1.0]}), pd.DataFrame({"epoch": [0]}), None, False, 1.0)
    >>> h.n_steps
    1
    """

    steps: pd.DataFrame
    epochs: pd.DataFrame
    best_epoch: int | None
    stopped_early: bool
    seconds: float

    @property
    def n_steps(self) -> int:
        """Optimiser steps taken."""
        return len(self.steps)

    def to_dict(self) -> dict:
        """Plain dict for :func:`torchgenetics.io.save_h5`.

        Examples
        --------
        >>> h = TrainingHistory(pd.DataFrame({"loss": [1.0]}), pd.DataFrame({"epoch": [0]}), 0, False, 1.0)
        >>> sorted(h.to_dict())
        ['best_epoch', 'epochs', 'seconds', 'steps', 'stopped_early']
        """
        return {"steps": self.steps, "epochs": self.epochs, "best_epoch": self.best_epoch,
                "stopped_early": self.stopped_early, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, data: dict) -> "TrainingHistory":
        """Inverse of :meth:`to_dict`.

        Examples
        --------
        >>> h = TrainingHistory(pd.DataFrame({"loss": [1.0]}), pd.DataFrame({"epoch": [0]}), 0, True, 1.0)
        >>> TrainingHistory.from_dict(h.to_dict()).stopped_early
        True
        """
        best = data.get("best_epoch")
        return cls(data["steps"], data["epochs"], None if best is None else int(best),
                   bool(data["stopped_early"]), float(data["seconds"]))


class Trainer:
    """Train a DeepWASModule on a RegionDataModule with plain torch.

    Parameters
    ----------
    max_epochs : int
        Epochs (the OneCycle schedule spans ``max_epochs * steps_per_epoch`` steps).
    clip_norm : float, optional
        Gradient-norm clip (default: the module's ``optim_config.clip_norm``; None there
        disables clipping).
    patience : int, optional
        Stop after this many epochs without a better held-out NLL (None: never).
    restore_best : bool
        Load the weights of the best held-out epoch at the end.
    eval_train : bool
        Also compute the full likelihood on the training regions each epoch (costs one
        extra pass; useful when training on the LDSC objective).
    verbose : bool
        Show a tqdm bar over steps (rank 0 only when distributed).
    distributed : bool
        Data-parallel training over the ranks of ``group`` (needs an initialised
        process group; see :mod:`torchgenetics.distributed.training`).
    group : ProcessGroup, optional
        Process group of distributed training (default: the world group).

    Examples
    --------
    >>> from torchgenetics.deepwas.simulate import simulate_example
    >>> from torchgenetics.deepwas.datamodule import RegionDataModule
    >>> from torchgenetics.deepwas.priors import LinearPrior
    >>> from torchgenetics.deepwas.module import DeepWASModule
    >>> ex = simulate_example(n_variants=400, n_reference=300, block_size=100, chromosomes=2, seed=0)
    >>> dm = RegionDataModule(ex.regions, batch_size=1, val_chromosomes=["2"])
    >>> module = DeepWASModule(LinearPrior(6), log_scale=dm.moment_log_variance(),
    ...                        likelihood={"method": "exact"}, optim={"lr": 0.01})
    >>> hist = Trainer(max_epochs=10).fit(module, dm)
    >>> hist.n_steps, bool(hist.epochs["val_delta"].iloc[-1] < 0)
    (20, True)
    """

    def __init__(self, max_epochs: int = 20, clip_norm: float | None = None, patience: int | None = None,
                 restore_best: bool = True, eval_train: bool = False, verbose: bool = False,
                 distributed: bool = False, group=None):
        if int(max_epochs) < 1:
            raise InputError(f"max_epochs must be >= 1, got {max_epochs}")
        self.max_epochs = int(max_epochs)
        self.clip_norm = clip_norm
        self.patience = patience
        self.restore_best = bool(restore_best)
        self.eval_train = bool(eval_train)
        self.verbose = bool(verbose)
        self.distributed = bool(distributed)
        self.group = group

    def _step_and_evaluate(self, module):
        """``step(batch, idx) -> (loss to backpropagate, batch loss value)`` and ``evaluate(regions)``."""
        if not self.distributed:
            def step(batch, batch_idx):
                loss = module.training_step(batch, batch_idx)
                return loss, float(loss.detach())

            return step, module.evaluate, self.verbose
        from torchgenetics.distributed.context import is_main
        from torchgenetics.distributed.training import ddp_objective, global_loss, sharded_evaluate

        ddp = ddp_objective(module, self.group)

        def step(batch, batch_idx):
            loss, part = ddp(batch)
            value = global_loss(part, self.group)
            module.log("train_loss", value)
            return loss, value

        def evaluate(regions):
            return sharded_evaluate(module, regions, group=self.group)

        return step, evaluate, self.verbose and is_main(self.group)

    def fit(self, module, datamodule) -> TrainingHistory:
        """Run the training loop; returns the history (the module is trained in place).

        Examples
        --------
        >>> Trainer.fit.__name__
        'fit'
        """
        datamodule.setup("fit")
        step, evaluate, show = self._step_and_evaluate(module)
        loader = datamodule.train_dataloader()
        module.set_total_steps(self.max_epochs * len(loader))
        opt = module.configure_optimizers()
        optimizer, scheduler = opt["optimizer"], opt["lr_scheduler"]["scheduler"]
        clip = module.optim_config.clip_norm if self.clip_norm is None else self.clip_norm
        has_val = bool(datamodule.val_regions)
        stopper = EarlyStopping(patience=int(self.patience), rel_tol=0.0, abs_tol=1e-6, smoothing=1.0) \
            if (self.patience and has_val) else None
        best, best_state, best_epoch, stopped = math.inf, None, None, False
        steps, epochs = [], []
        start = time.perf_counter()
        bar = tqdm(total=self.max_epochs * len(loader), desc="DeepWAS", disable=not show,
                   leave=False)
        for epoch in range(self.max_epochs):
            t0 = time.perf_counter()
            module.train()
            losses = []
            for batch_idx, batch in enumerate(loader):
                lr = float(scheduler.get_last_lr()[0])
                optimizer.zero_grad(set_to_none=True)
                loss, value = step(batch, batch_idx)
                if not math.isfinite(value):
                    bar.close()
                    raise ConvergenceError(f"DeepWAS loss became {value} at epoch {epoch}, step "
                                           f"{len(steps) + 1}; lower optim.lr or check the inputs")
                loss.backward()
                params = [p for p in module.parameters() if p.grad is not None]
                gnorm = float(torch.nn.utils.clip_grad_norm_(
                    params, clip if clip is not None else math.inf))
                optimizer.step()
                scheduler.step()
                losses.append(value)
                steps.append({"step": len(steps), "epoch": epoch, "loss": value, "lr": lr,
                              "grad_norm": gnorm})
                bar.update(1)
                bar.set_postfix(loss=f"{value:.4g}", lr=f"{lr:.2e}")
            row = {"epoch": epoch, "train_loss": sum(losses) / len(losses)}
            if self.eval_train:
                m = evaluate(datamodule.train_regions)
                row.update(train_nll=m["nll"], train_delta=m["delta"])
            if has_val:
                m = evaluate(datamodule.val_regions)
                row.update(val_nll=m["nll"], val_null_nll=m["null_nll"], val_delta=m["delta"],
                           val_se=m["se"])
                if m["nll"] < best:
                    best, best_epoch = m["nll"], epoch
                    best_state = copy.deepcopy(module.state_dict()) if self.restore_best else None
            row["seconds"] = time.perf_counter() - t0
            epochs.append(row)
            if stopper is not None and stopper.update(row["val_nll"]):
                stopped = True
                break
        bar.close()
        if best_state is not None:
            module.load_state_dict(best_state)
        return TrainingHistory(pd.DataFrame(steps), pd.DataFrame(epochs), best_epoch, stopped,
                               time.perf_counter() - start)
