"""SuSiE / mfsusie genome scans with the loci spread over the ranks of a process group.

Each rank runs :func:`torchgenetics.susie.scan` on its own share of the loci
(a deterministic split every rank computes alike: balanced by locus size, or
round robin) with its own checkpoint file ``PREFIX.rank{r}-of-{R}.h5``, so a
killed job started again with the same command and the same number of ranks
skips the loci its ranks had finished. Rank 0 then gathers the per-rank tables
and fits and returns one result in the original locus order, equal to the
single-process scan of the same loci (each locus' fit does not depend on the
loci batched with it).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch.distributed

from torchgenetics.errors import TorchgenError
from torchgenetics.susie.loci import as_loci
from torchgenetics.susie.scan import ScanResult, scan

from .balance import split_items
from .context import all_gather_objects, gather_objects, is_main, rank, world_size

__all__ = ["distributed_scan", "rank_checkpoint", "scan_assignment", "RankFailedError"]


class RankFailedError(TorchgenError, RuntimeError):
    """Another rank of a distributed scan raised; its message names the rank and the error."""


def rank_checkpoint(prefix, rank: int, world: int) -> Path:
    """Checkpoint file of one rank: ``PREFIX.rank{rank}-of-{world}.h5``.

    A checkpoint prefix ending in ``.h5`` loses that suffix first, so ``scan.h5``
    gives ``scan.rank0-of-2.h5``.

    Examples
    --------
    >>> rank_checkpoint("out/scan.h5", 1, 4).name
    'scan.rank1-of-4.h5'
    """
    prefix = str(prefix)
    if prefix.endswith(".h5"):
        prefix = prefix[:-3]
    return Path(f"{prefix}.rank{int(rank)}-of-{int(world)}.h5")


def scan_assignment(loci, world: int, assignment: str = "balanced") -> list[list[int]]:
    """Indices of the loci each rank scans.

    Parameters
    ----------
    loci : sequence of Locus
    world : int
        Number of ranks.
    assignment : {"balanced", "round_robin"}
        ``"balanced"``: largest loci (by number of variables) first, each to the
        least loaded rank; ``"round_robin"``: locus ``i`` to rank ``i % world``.

    Returns
    -------
    list of list of int
        One increasing list per rank.

    Examples
    --------
    >>> import torch
    >>> from torchgenetics.susie import Locus
    >>> loci = [Locus.from_data(f"l{p}", (torch.zeros(5, p), torch.zeros(5))) for p in (9, 2, 4, 6)]
    >>> scan_assignment(loci, 2)
    [[0, 1], [2, 3]]
    """
    return split_items([loc.n_variables for loc in loci], world, assignment)


def _merge(parts: list, loci) -> ScanResult:
    """One ScanResult in the original locus order from the per-rank (indices, result) pairs."""
    order, fits, columns = {}, {}, None
    for indices, result in parts:
        columns = list(result.table.columns) if columns is None else columns
        for i, row in zip(indices, result.table.to_dict("records"), strict=True):
            order[i] = row
        for i in indices:
            name = loci[i].name
            if name in result.fits:
                fits[i] = result.fits[name]
    rows = [order[i] for i in range(len(loci))]
    table = pd.DataFrame(rows, columns=columns)
    return ScanResult(table=table, fits={loci[i].name: fits[i] for i in sorted(fits)})


def distributed_scan(loci, L: int = 10, *, checkpoint=None, assignment: str = "balanced",
                     callback=None, verbose: bool = False, group=None, **options) -> ScanResult | None:
    """Fine-map many loci, split over the ranks of a process group; one merged result on rank 0.

    Call it on every rank with the same loci and options (e.g. under ``torchrun``,
    after :func:`torchgenetics.distributed.init_from_env`). Without a process group
    it is the single-process :func:`~torchgenetics.susie.scan` (with the checkpoint
    ``PREFIX.rank0-of-1.h5``).

    Parameters
    ----------
    loci : sequence of Locus, tuples or dicts
        As for :func:`~torchgenetics.susie.scan`, the same on every rank (loci from
        files are only read by the rank that scans them).
    L : int
        Number of effects.
    checkpoint : path, optional
        Checkpoint prefix; rank ``r`` of ``R`` writes ``PREFIX.rank{r}-of-{R}.h5``
        (:func:`rank_checkpoint`) after each of its chunks and resumes from it. Restart
        with the same number of ranks to reuse the checkpoints.
    assignment : {"balanced", "round_robin"}
        How loci are dealt to ranks (:func:`scan_assignment`).
    callback : callable, optional
        ``callback(phase, names)`` after each checkpointed chunk, on the rank that ran it.
    verbose : bool
        One line per chunk, printed by rank 0 for its own chunks.
    group : ProcessGroup, optional
        Default: the world group.
    **options
        Options of :func:`~torchgenetics.susie.scan` (``first_max_iter``, ``max_iter``,
        ``flat_pip``, ``chunk_size``) and of the fits (``coverage``, ...).

    Returns
    -------
    ScanResult or None
        On rank 0: the table (one row per locus, in the input order) and the fits of
        the loci with signal, as the single-process scan gives them. None on other ranks.

    Raises
    ------
    RankFailedError
        On every rank that did not fail when another rank raised (the ranks
        exchange their status before the merge, so none waits for a failed peer);
        the failing rank re-raises its own exception.

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> X = torch.randn(200, 30, generator=g, dtype=torch.float64)
    >>> y = X[:, 7] + 0.5 * torch.randn(200, generator=g, dtype=torch.float64)
    >>> out = distributed_scan([(X, y), (X, torch.randn(200, generator=g, dtype=torch.float64))], L=5)
    >>> out.table[["locus", "n_cs"]].values.tolist()
    [['locus1', 1], ['locus2', 0]]
    """
    loci = as_loci(loci)
    world, me = world_size(group), rank(group)
    mine = scan_assignment(loci, world, assignment)[me]
    path = None if checkpoint is None else rank_checkpoint(checkpoint, me, world)
    failure = None
    try:
        result = scan([loci[i] for i in mine], L=L, checkpoint=path, callback=callback,
                      verbose=bool(verbose) and is_main(group), **options)
    except Exception as err:  # every rank must learn of it (no rank waits for a dead peer)
        failure = err
    status = all_gather_objects(None if failure is None else f"{type(failure).__name__}: {failure}",
                                group=group)
    if failure is not None:
        raise failure
    failed = [(r, msg) for r, msg in enumerate(status) if msg is not None]
    if failed:
        raise RankFailedError("; ".join(f"rank {r} failed: {msg}" for r, msg in failed)
                              + "; run the same command again to resume from the checkpoints")
    # gather_objects takes the global rank of the receiver: the group's rank 0
    dst = 0 if group is None or world == 1 else torch.distributed.get_global_rank(group, 0)
    parts = gather_objects((mine, result), dst=dst, group=group)
    return None if parts is None else _merge(parts, loci)
