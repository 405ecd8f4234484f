"""Scale-out on ``torch.distributed``: rank helpers, a local launcher, sharded models.

Launch with ``torchrun`` or SLURM ``srun``; call :func:`init_from_env` once, then
build operators with ``distributed=True`` (each rank streams its share of the
variants) and fit as usual. Without a process group every helper behaves as a
world of one rank, so the same code runs in a single process.

* :mod:`~torchgenetics.distributed.context` - rank, world size, sharding,
  collectives, rank-aware progress bars and logs.
* :mod:`~torchgenetics.distributed.launch` - :func:`run_local` and
  :class:`LocalCluster`, N local ranks from Python (tests, benchmarks).
* :mod:`~torchgenetics.distributed.reml` - ``reml.reml(...)``: REML on sharded kernels.
* :mod:`~torchgenetics.distributed.gwas` - ``gwas.gwas(...)``: variant blocks split
  over the ranks, one merged result.
* :mod:`~torchgenetics.distributed.lmm` - ``lmm.lmm_gwas(...)``: LOCO mixed-model GWAS,
  test blocks split over the ranks; ``shard_grm=True`` also shards the GRM variants.
* :mod:`~torchgenetics.distributed.scan` - ``scan.distributed_scan(...)``: loci split
  over the ranks, per-rank checkpoints, one merged table.
* :mod:`~torchgenetics.distributed.training` - data-parallel DeepWAS training.

The model modules are imported on first access (``tgd.reml``, ``tgd.gwas``), so
that the low-level operators can use this package without an import cycle.

Examples
--------
>>> from torchgenetics import distributed as tgd
>>> tgd.rank(), tgd.world_size(), tgd.shard_range(5)
(0, 1, slice(0, 5, None))
"""

import importlib

from .context import (
    agreed_budget,
    all_gather_objects,
    all_reduce,
    all_reduce_sum,
    barrier,
    broadcast_object,
    check_same,
    device_for_rank,
    digest,
    first_host,
    gather_objects,
    get_logger,
    init_from_env,
    is_distributed,
    is_main,
    launch_env,
    local_rank,
    local_world_size,
    progress,
    rank,
    rank_zero_only,
    shard_range,
    world_size,
)
from .launch import LocalCluster, RankError, free_port, run_local

__all__ = [
    "is_distributed",
    "rank",
    "world_size",
    "local_rank",
    "local_world_size",
    "is_main",
    "init_from_env",
    "launch_env",
    "first_host",
    "device_for_rank",
    "shard_range",
    "all_reduce",
    "all_reduce_sum",
    "broadcast_object",
    "gather_objects",
    "all_gather_objects",
    "barrier",
    "agreed_budget",
    "digest",
    "check_same",
    "rank_zero_only",
    "progress",
    "get_logger",
    "run_local",
    "LocalCluster",
    "free_port",
    "RankError",
]

_LAZY = ("reml", "gwas", "lmm", "scan", "training")


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
