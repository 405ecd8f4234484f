"""Mixed-model (LOCO) GWAS on many ranks: one merged result, identical to one process.

:func:`torchgenetics.gwas.lmm_gwas` has three stages: the variance components
(REML on the whole-genome GRM, or a given fit), one joint block-PCG solve that
gives every leave-one-chromosome-out kernel its ``Py`` and calibration ratio
``gamma``, and the score tests, one pass over the tested variants.

The score tests are split like the marginal scan
(:func:`~torchgenetics.distributed.gwas.variant_share`): each rank tests a
contiguous run of the blocks one process would stream, with ``Py`` and ``gamma``
of every kernel, so each variant is computed exactly as in one process, and rank
0 concatenates the parts (:func:`~torchgenetics.distributed.gwas.merge_results`).

The first two stages run one of two ways:

* default: on every rank, as in one process (the full covariance, REML and the
  joint LOCO solve; rank 0's fit and ``Py``/``gamma`` are broadcast so that all
  parts use the same bits). The result is bit-identical to the single-process
  one; only the score tests are divided between the ranks.
* ``shard_grm=True``: the chromosome GRMs are sharded by variants
  (:class:`ShardedLocoCovariance`): REML, the preconditioner and the LOCO solve
  stream ``1/R`` of the variants per rank and add the ranks' products with one
  ``all_reduce`` each, so time and memory of every stage scale with the ranks;
  results equal one process up to the order of the floating-point sums.

Splitting the chromosomes' systems over the ranks instead is neither exact nor
scalable: the joint solve multiplies all right-hand sides at once, and a BLAS
product of a subset of the columns (MKL here) differs in the last bits from the
full product; and each rank would still stream every variant per iteration, for a
product whose cost grows far more slowly than its number of columns.
"""

from __future__ import annotations

import math
from functools import partial

import torch

from ..gwas import GWASResult, LocoCovariance
from ..gwas.lmm import _calibrate, _info, _model, _plan, _tests, _variance_fit
from ..operators import GRMStack
from .context import (
    agreed_budget,
    broadcast_object,
    check_same,
    gather_objects,
    is_main,
    rank,
    shard_range,
    world_size,
)
from .gwas import _global_rank_zero, merge_results, variant_share

__all__ = ["lmm_gwas", "ShardedLocoCovariance"]


class ShardedLocoCovariance(LocoCovariance):
    """:class:`~torchgenetics.gwas.LocoCovariance` whose chromosome GRMs are sharded over the ranks.

    The chromosomes and their variants are those of the single-process covariance
    (found by the genotypes' statistics pass); the GRMs are then one
    :class:`~torchgenetics.operators.GRMStack` built with ``distributed=True``, so
    each product streams this rank's share of the variants and adds the ranks'
    sums with one ``all_reduce``. Constructing it, and every product, solve and
    trace, is a collective: every rank makes the same calls.

    Parameters
    ----------
    genotypes, loco, device, dtype, variants
        As for :class:`~torchgenetics.gwas.LocoCovariance` (PCG method).
    group : ProcessGroup, optional
        Default the world group (without a process group: one rank).

    Examples
    --------
    >>> from torchgenetics.datasets import simulate_genotypes
    >>> G = simulate_genotypes(100, 60, chromosomes=2, seed=0).to_genotypes()
    >>> cov = ShardedLocoCovariance(G)
    >>> cov.groups, cov.stack.distributed
    (['1', '2'], True)
    """

    def __init__(self, genotypes, loco: bool = True, device=None, dtype=torch.float64, variants=None, *,
                 group=None):
        super().__init__(genotypes, loco=loco, device=device, dtype=dtype, variants=variants)
        members = [K.variant_index for K in self.stack.components]
        self.stack = GRMStack(genotypes, members, device=self.device, dtype=self.dtype, names=self.groups,
                              distributed=True, group=group)


def lmm_gwas(genotypes, y, covariates=None, *, fit=None, loco: bool = True, n_calibration: int = 30,
             phenotype_name=None, covariate_names=None, variants=None, model_variants=None,
             precond_rank: int = 64, cg_tol: float = 1e-7, cg_max_iter: int = 1000, block_size=None,
             seed=0, device=None, dtype=torch.float64, reml_options=None, shard_grm: bool = False,
             out=None, compress: bool = False, group=None, verbose: bool = False) -> GWASResult | None:
    """Mixed-model association test (LOCO score test) with the work split over the ranks.

    Call it on every rank with the same arguments. The arguments shared with
    :func:`torchgenetics.gwas.lmm_gwas` mean the same there.

    Parameters
    ----------
    genotypes, y, covariates
        As for :func:`torchgenetics.gwas.lmm_gwas`; the same on every rank.
    fit : REMLFit, optional
        Variance components (the same on every rank); default: REML fitted here
        (rank 0's fit is used on every rank).
    loco, n_calibration, phenotype_name, covariate_names, variants, model_variants
        As for :func:`torchgenetics.gwas.lmm_gwas`.
    precond_rank, cg_tol, cg_max_iter, seed, reml_options
        As for :func:`torchgenetics.gwas.lmm_gwas` (``seed`` the same on every rank).
    block_size : int, optional
        Variants per streamed block of the score tests (default: the single-process
        plan); ranks test whole blocks.
    device, dtype : optional
        As for :func:`torchgenetics.gwas.lmm_gwas` (e.g. each rank's own GPU).
    shard_grm : bool, default False
        Shard the GRM's variants over the ranks (:class:`ShardedLocoCovariance`):
        REML, preconditioner and LOCO solves scale with the ranks, and results equal
        one process to rounding instead of bit for bit. Default: those stages run on
        every rank as in one process (bit-identical result).
    out : str or path, optional
        Rank 0 writes ``<out>.<phenotype>.glm.tsv`` (:meth:`GWASResult.write`).
    compress : bool
        Gzip that table.
    group : ProcessGroup, optional
        Default the world group.
    verbose : bool
        Progress bar over the tested blocks, on rank 0.

    Returns
    -------
    GWASResult or None
        On rank 0 the merged result (all tested variants, in order): by default
        equal to :func:`torchgenetics.gwas.lmm_gwas`'s, ``info`` included (with
        ``shard_grm``, ``info["grm_shards"]`` holds the number of ranks). None on
        other ranks.

    Raises
    ------
    InputError
        When the phenotype, covariates, seed or fit differ between ranks, and in the
        cases of :func:`torchgenetics.gwas.lmm_gwas`.

    Examples
    --------
    >>> from torchgenetics.datasets import simulate_genotypes, simulate_phenotype
    >>> sim = simulate_genotypes(200, 120, chromosomes=2, seed=0)
    >>> ph = simulate_phenotype(sim, h2=0.5, n_causal=10, seed=1)
    >>> res = lmm_gwas(sim.to_genotypes(), ph.y, precond_rank=20, block_size=50)
    >>> res.n_variants, res.info["kernels"]
    (120, ['1', '2'])
    """
    r, world = rank(group), world_size(group)
    root = _global_rank_zero(group)
    check_same(y, "the phenotype y", group)
    check_same(covariates, "the covariates", group)
    check_same(seed, "the seed", group)
    check_same(getattr(fit, "variances", None), "the REML fit's variances", group)
    covariance = partial(ShardedLocoCovariance, group=group) if shard_grm else LocoCovariance
    with agreed_budget(device, group):
        model = _model(genotypes, y, covariates, phenotype_name, covariate_names, loco, model_variants,
                       device, dtype, stacklevel=3, covariance=covariance)
        fit = broadcast_object(_variance_fit(fit, model.cov, model.y, model.C, model.cnames, seed,
                                             reml_options), src=root, group=group)
        plan = _plan(genotypes, model, fit, variants, n_calibration, precond_rank, seed)
        calib = _calibrate(genotypes, model, plan.picks, cg_tol, cg_max_iter)
        calib = broadcast_object({k: (py.cpu(), gamma, ratios) for k, (py, gamma, ratios) in calib.items()},
                                 src=root, group=group)
        calib = {k: (py.to(model.device), gamma, ratios) for k, (py, gamma, ratios) in calib.items()}
        info = _info(genotypes, model, fit, plan, calib, model.cov.cg_iterations)
        if shard_grm:
            info["grm_shards"] = world
        share, block = variant_share(genotypes, plan.tested, block_size, model.device, model.dtype, r, world)
        start = shard_range(math.ceil(plan.tested.size / block), r, world).start * block
        part = _tests(genotypes, model, plan, calib, info, slice(start, start + share.size), block,
                      bool(verbose) and is_main(group)) if share.size else None
    parts = gather_objects(part, dst=root, group=group)
    if r != 0:
        return None
    merged = merge_results([p for p in parts if p is not None])
    if out is not None:
        merged.write(out, compress=compress)
    return merged
