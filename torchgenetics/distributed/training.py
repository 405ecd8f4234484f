"""Data-parallel DeepWAS training: each global batch of LD regions split over the ranks.

Every rank draws the same global batch (same shuffling seed), runs the prior
network on the features of the whole batch (cheap next to the likelihoods; it
keeps dropout masks and per-variant outputs identical to one process) and scores
only its share of the regions (:func:`shard_regions`, balanced by cost). The
single-process loss is ``sum_i NLL_i / N`` over the batch's regions, ``N`` the
batch's scored variants, so rank ``r`` returns ``R * sum_{i in r} NLL_i / N``:
DistributedDataParallel (or Lightning's DDP strategy) averages gradients over the
``R`` ranks, which gives exactly the single-process gradient, up to the order of
the floating-point sum. Clipping, AdamW and the OneCycle schedule then run on
identical gradients on every rank, so the parameters stay identical across ranks
and equal to single-process training.

The exact likelihood path is deterministic, so the parameters match single-process
training to rounding. The iterative path draws Hutchinson probes from the
likelihood's generator in the order regions are scored, so under data parallelism
each region gets different (equally valid) probes than in one process: the
gradient is unbiased either way but not bit-identical.
"""

from __future__ import annotations

import torch
from torch import nn

from torchgenetics.errors import InputError

from .balance import balanced_split
from .context import all_gather_objects, all_reduce_sum, world_size
from .context import rank as _rank

__all__ = ["shard_regions", "ShardedObjective", "ddp_objective", "global_loss",
           "sharded_evaluate", "region_cost"]


def region_cost(region) -> float:
    """Relative cost of scoring one region: ``q^2 p`` (the exact path's ``B F B^T`` product).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> region_cost(SimpleNamespace(n_scored=10, n_variants=30))
    3000.0
    """
    return float(region.n_scored) ** 2 * float(region.n_variants)


def shard_regions(regions, rank: int, world: int) -> list[int]:
    """Positions (in ``regions``) of the regions rank ``rank`` of ``world`` scores.

    Deterministic (every rank computes the same split), balanced by
    :func:`region_cost`; a rank may get none when there are fewer regions than ranks.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> batch = [SimpleNamespace(n_scored=q, n_variants=q) for q in (40, 10, 30, 20)]
    >>> shard_regions(batch, 0, 2), shard_regions(batch, 1, 2)
    ([0], [1, 2, 3])
    """
    return balanced_split([region_cost(r) for r in regions], world)[rank]


def _scorer(module):
    return module.likelihood if module.objective == "likelihood" else module.ldsc


class ShardedObjective(nn.Module):
    """This rank's share of a DeepWASModule's batch loss, scaled for gradient averaging.

    ``forward(batch)`` returns ``(loss, part)``: ``part`` is this rank's term of the
    single-process loss (``sum_{i in shard} NLL_i / N``, detached) and ``loss`` is
    ``world * part`` with its graph, so that averaging the gradients over the ranks
    (what DDP does) gives the gradient of the whole batch's loss.

    Parameters
    ----------
    module : DeepWASModule
        Trained in place (it is this module's only submodule, so DDP syncs its parameters).
    rank, world : int, optional
        Default: this process's rank and world size in ``group``.
    group : ProcessGroup, optional

    Examples
    --------
    >>> from torchgenetics.deepwas.simulate import simulate_example
    >>> from torchgenetics.deepwas.module import DeepWASModule
    >>> from torchgenetics.deepwas.priors import LinearPrior
    >>> ex = simulate_example(n_variants=200, n_reference=300, block_size=100, seed=0)
    >>> m = DeepWASModule(LinearPrior(6), likelihood={"method": "exact"}, log_scale=-9.0)
    >>> loss, part = ShardedObjective(m, rank=0, world=1)(list(ex.regions))
    >>> bool(torch.isclose(loss, m.training_step(list(ex.regions))))
    True
    """

    def __init__(self, module, rank: int | None = None, world: int | None = None, group=None):
        super().__init__()
        self.module = module
        self.world = world_size(group) if world is None else int(world)
        self.rank = _rank(group) if rank is None else int(rank)
        if not 0 <= self.rank < self.world:
            raise InputError(f"rank {self.rank} is not in a world of {self.world} ranks")

    def forward(self, batch: list):
        if not batch:
            raise InputError("empty batch of regions")
        module = self.module
        dtype = batch[0].dtype
        f_all = module.variance(torch.cat([r.features for r in batch], dim=0)).to(dtype)
        n_total = sum(r.n_scored for r in batch)
        mine = shard_regions(batch, self.rank, self.world)
        if mine:
            parts = torch.split(f_all, [r.n_variants for r in batch])
            sigma, score = module.sigma.to(dtype), _scorer(module)
            part = torch.stack([score(batch[i], parts[i], sigma).loss for i in mine]).sum() / n_total
        else:  # nothing to score here: a zero that still reaches every parameter
            params = [p for p in module.parameters() if p.requires_grad]
            part = 0.0 * (f_all.sum() + sum(p.sum() for p in params))
        return part * self.world, part.detach()


def ddp_objective(module, group=None, **ddp_options):
    """``DistributedDataParallel(ShardedObjective(module))`` over ``group``.

    The module's parameters and buffers are broadcast from rank 0 when it is
    built (so every rank starts from the same weights). ``find_unused_parameters``
    defaults to True, for prior networks with parameters a batch may not reach.

    Parameters
    ----------
    module : DeepWASModule
    group : ProcessGroup, optional
    **ddp_options
        Passed to ``torch.nn.parallel.DistributedDataParallel``.

    Returns
    -------
    torch.nn.parallel.DistributedDataParallel
        Called with a global batch, returns ``(loss, part)`` as :class:`ShardedObjective`.

    Raises
    ------
    InputError
        Without an initialised process group.

    Examples
    --------
    >>> ddp_objective.__name__  # needs a process group: see Trainer(distributed=True)
    'ddp_objective'
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise InputError("distributed training needs an initialised process group "
                         "(torchgenetics.distributed.init_from_env() under torchrun or srun)")
    device = next(module.parameters()).device
    options = {"find_unused_parameters": True, "broadcast_buffers": False, "process_group": group}
    if device.type == "cuda":
        options["device_ids"] = [device]
    options.update(ddp_options)
    return nn.parallel.DistributedDataParallel(ShardedObjective(module, group=group), **options)


def global_loss(part: torch.Tensor, group=None) -> float:
    """The whole batch's loss from each rank's detached ``part`` (a sum over ranks).

    Examples
    --------
    >>> global_loss(torch.tensor(1.5, dtype=torch.float64))
    1.5
    """
    return float(all_reduce_sum(part.detach().clone(), group))


def sharded_evaluate(module, regions, batch_size: int = 16, group=None) -> dict:
    """``module.evaluate(regions)`` with the regions scored across the ranks; same on every rank.

    Each rank scores its share of the regions one by one, the per-region sums are
    gathered to every rank and combined in the order and batches of
    :meth:`~torchgenetics.deepwas.module.DeepWASModule.evaluate`.

    Parameters
    ----------
    module : DeepWASModule
    regions : list of Region
    batch_size : int
        Regions per summed batch (as in ``evaluate``).
    group : ProcessGroup, optional

    Returns
    -------
    dict
        ``nll``, ``null_nll``, ``delta``, ``se``, ``n_scored`` per scored variant.

    Examples
    --------
    >>> from torchgenetics.deepwas.simulate import simulate_example
    >>> from torchgenetics.deepwas.module import DeepWASModule
    >>> from torchgenetics.deepwas.priors import LinearPrior
    >>> ex = simulate_example(n_variants=200, n_reference=300, block_size=100, seed=0)
    >>> m = DeepWASModule(LinearPrior(6), likelihood={"method": "exact"}, log_scale=-9.0)
    >>> a, b = sharded_evaluate(m, list(ex.regions)), m.evaluate(list(ex.regions))
    >>> abs(a["nll"] - b["nll"]) < 1e-12
    True
    """
    from torchgenetics.deepwas.module import summarize_validation

    regions = list(regions)
    mine = shard_regions(regions, _rank(group), world_size(group))
    was_training = module.training
    module.eval()
    try:
        own = {i: module.validation_step([regions[i]], i) for i in mine}
    finally:
        module.train(was_training)
    scored = {}
    for part in all_gather_objects(own, group):
        scored.update(part)
    outs = []
    for start in range(0, len(regions), batch_size):
        chunk = [scored[i] for i in range(start, min(start + batch_size, len(regions)))]
        outs.append({key: sum(o[key] for o in chunk) for key in ("nll", "null_nll", "n_scored", "var")})
    return summarize_validation(outs)
