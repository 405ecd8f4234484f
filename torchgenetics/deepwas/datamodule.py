"""Region sampler: LD regions as shuffled mini-batches, whole chromosomes held out.

:class:`RegionDataModule` has the hooks of a Lightning data module
(``setup``, ``train_dataloader``, ``val_dataloader``); its loaders are plain
``torch.utils.data.DataLoader`` objects whose batches are lists of
:class:`~torchgenetics.deepwas.regions.Region`, so the same module feeds the plain
torch trainer and, through :mod:`torchgenetics.deepwas.lightning`, a Lightning trainer.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader, Dataset

from torchgenetics.errors import InputError

from .ldsc import ld_scores

__all__ = ["RegionDataset", "RegionDataModule", "collate_regions"]


def collate_regions(batch: list) -> list:
    """Batches are plain lists of regions (regions differ in size).

    Examples
    --------
    >>> collate_regions([1, 2])
    [1, 2]
    """
    return list(batch)


class RegionDataset(Dataset):
    """A list of regions as a map-style dataset.

    Examples
    --------
    >>> len(RegionDataset([]))
    0
    """

    def __init__(self, regions):
        self.regions = list(regions)

    def __len__(self) -> int:
        return len(self.regions)

    def __getitem__(self, i):
        return self.regions[i]


def _chrom_key(c) -> str:
    c = str(c)
    return c[3:] if c.lower().startswith("chr") else c


class RegionDataModule:
    """LD regions split into training and held-out chromosomes, served as mini-batches.

    Parameters
    ----------
    regions : RegionSet or list of Region
    batch_size : int
        Regions per training step.
    val_chromosomes : sequence of str
        Chromosomes held out for validation (``"chr"`` prefixes ignored); empty: no
        validation set.
    seed : int
        Seed of the shuffling (the sequence of batches over epochs is reproducible).
    shuffle : bool
        Shuffle training regions each epoch.

    Examples
    --------
    >>> from torchgenetics.deepwas.simulate import simulate_example
    >>> ex = simulate_example(n_variants=400, n_reference=300, block_size=100, chromosomes=2, seed=0)
    >>> dm = RegionDataModule(ex.regions, batch_size=2, val_chromosomes=["2"]); dm.setup()
    >>> len(dm.train_regions), len(dm.val_regions), dm.steps_per_epoch
    (2, 2, 1)
    """

    def __init__(self, regions, batch_size: int = 8, val_chromosomes=(), seed: int = 0,
                 shuffle: bool = True):
        self.regions = list(regions)
        if not self.regions:
            raise InputError("RegionDataModule needs at least one region")
        if int(batch_size) < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        if isinstance(val_chromosomes, (str, int)):
            val_chromosomes = [val_chromosomes]
        self.val_chromosomes = [str(c) for c in val_chromosomes]
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.train_regions: list = []
        self.val_regions: list = []
        self._loader = None
        self.setup()

    def setup(self, stage: str | None = None) -> None:
        """Split the regions by chromosome (idempotent).

        Examples
        --------
        >>> RegionDataModule.setup.__name__
        'setup'
        """
        held = {_chrom_key(c) for c in self.val_chromosomes}
        present = {_chrom_key(r.chrom) for r in self.regions}
        missing = held - present
        if missing:
            raise InputError(f"validation chromosome(s) {sorted(missing)} have no region; "
                             f"chromosomes with regions: {sorted(present)}")
        self.train_regions = [r for r in self.regions if _chrom_key(r.chrom) not in held]
        self.val_regions = [r for r in self.regions if _chrom_key(r.chrom) in held]
        if not self.train_regions:
            raise InputError("every region is on a validation chromosome; keep some for training")

    @property
    def steps_per_epoch(self) -> int:
        """Training mini-batches per epoch."""
        return math.ceil(len(self.train_regions) / self.batch_size)

    def train_dataloader(self) -> DataLoader:
        """Shuffled mini-batches of training regions (one loader, reshuffled every epoch).

        Examples
        --------
        >>> from torchgenetics.deepwas.simulate import simulate_example
        >>> ex = simulate_example(n_variants=200, n_reference=300, block_size=100, seed=0)
        >>> len(next(iter(RegionDataModule(ex.regions, batch_size=2).train_dataloader())))
        2
        """
        if self._loader is None:
            gen = torch.Generator().manual_seed(self.seed)
            self._loader = DataLoader(RegionDataset(self.train_regions), batch_size=self.batch_size,
                                      shuffle=self.shuffle, generator=gen, collate_fn=collate_regions)
        return self._loader

    def val_dataloader(self) -> DataLoader:
        """Mini-batches of the held-out regions, in order.

        Examples
        --------
        >>> from torchgenetics.deepwas.simulate import simulate_example
        >>> ex = simulate_example(n_variants=200, n_reference=300, block_size=100, chromosomes=2, seed=0)
        >>> len(list(RegionDataModule(ex.regions, val_chromosomes=["2"]).val_dataloader()))
        1
        """
        return DataLoader(RegionDataset(self.val_regions), batch_size=self.batch_size,
                          shuffle=False, collate_fn=collate_regions)

    def moment_log_variance(self, sigma: float = 1.0) -> float:
        """Moment estimate of the mean log effect variance from the training regions.

        ``mean(chi2) - sigma = mean(N_j l_j) f`` (LDSC's intercept-fixed slope with
        equal variances), floored at a hundredth of ``sigma / mean(N l)``. A good
        starting value for the module's global log scale.

        Examples
        --------
        >>> import numpy as np
        >>> from torchgenetics.deepwas.simulate import simulate_example
        >>> ex = simulate_example(n_variants=300, n_reference=300, block_size=100, seed=0)
        >>> dm = RegionDataModule(ex.regions)
        >>> abs(dm.moment_log_variance() - float(np.log(ex.variance.mean()))) < 1.0
        True
        """
        chi2, nl = [], []
        for r in self.train_regions:
            chi2.append(r.z.square().detach().cpu())
            nl.append((r.sqrt_n.square() * ld_scores(r)).detach().cpu())
        chi2, nl = torch.cat(chi2), torch.cat(nl)
        excess = float(chi2.mean()) - float(sigma)
        denom = float(nl.mean())
        return math.log(max(excess, 0.01 * float(sigma)) / denom)
