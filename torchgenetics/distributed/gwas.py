"""Marginal GWAS on many ranks: variant blocks split across ranks, one merged result.

The variants are cut into the blocks a single process would stream, and each rank
tests a contiguous run of whole blocks with :func:`torchgenetics.gwas.gwas`, so
every variant is tested by exactly the same computation as in one process. Each
rank's part goes to rank 0 (in memory, or as an HDF5 file in ``parts_dir`` on a
shared file system), which concatenates the parts in variant order: the merged
result, and the tables it writes, are identical to the single-process ones.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist

from ..errors import InputError, MissingFileError
from ..gwas import GWASResult
from ..gwas import gwas as _gwas
from ..gwas.result import _ARRAYS
from ..memory import dtype_bytes
from ..operators._common import as_positions
from .context import barrier, check_same, gather_objects, is_main, rank, shard_range, world_size

__all__ = ["gwas", "variant_share", "merge_results", "part_path"]

# Live blocks while scanning: the one in use and the one being decoded (as Genotypes.blocks plans).
_LIVE_BLOCKS = 2


def variant_share(genotypes, variants=None, block_size=None, device=None, dtype=torch.float64,
                  rank_=None, world=None):
    """This rank's variants: a contiguous run of whole blocks of the variant list.

    Parameters
    ----------
    genotypes : Genotypes
    variants : index array, slice or mask, optional
        Variants to test (default all), in output order.
    block_size : int, optional
        Variants per block (default: what :meth:`Genotypes.blocks` plans for the
        whole list in one process).
    device, dtype : optional
        Where and in what type blocks are made (for the default block size).
    rank_, world : int, optional
        Default: this process's rank and world size.

    Returns
    -------
    positions : numpy.ndarray of int64
        Variant positions of this rank (possibly none), in output order.
    block_size : int
        The block size used on every rank.

    Examples
    --------
    >>> from torchgenetics.genotypes import Genotypes
    >>> G = Genotypes.from_array(np.zeros((3, 10)))
    >>> [variant_share(G, block_size=3, rank_=r, world=2)[0].tolist() for r in range(2)]
    [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9]]
    """
    positions = as_positions(variants, genotypes.n_variants, "variants")
    if block_size is None:
        device = torch.device("cpu" if device is None else device)
        block_size = genotypes._plan(len(positions), genotypes.n_samples * dtype_bytes(dtype),
                                     _LIVE_BLOCKS, device)
    if isinstance(block_size, bool) or int(block_size) < 1:
        raise InputError(f"block_size must be a positive integer, got {block_size!r}")
    block_size = int(block_size)
    blocks = shard_range(math.ceil(len(positions) / block_size), rank_, world)
    return positions[blocks.start * block_size: blocks.stop * block_size], block_size


def merge_results(parts) -> GWASResult:
    """Concatenate the results of consecutive variant runs (in the order given).

    Parameters
    ----------
    parts : list of GWASResult
        Same method, phenotypes, samples and covariates.

    Returns
    -------
    GWASResult

    Raises
    ------
    InputError
        When the parts are not of one scan.

    Examples
    --------
    >>> from torchgenetics.genotypes import Genotypes
    >>> from torchgenetics.gwas import gwas as scan
    >>> G = Genotypes.from_array(np.array([[0, 1, 2], [1, 2, 0], [2, 0, 1], [1, 1, 2.]]))
    >>> y = [0.1, 0.9, 2.2, 1.4]
    >>> merged = merge_results([scan(G, y, variants=[0, 1]), scan(G, y, variants=[2])])
    >>> merged.to_frame().equals(scan(G, y).to_frame())
    True
    """
    parts = list(parts)
    if not parts:
        raise InputError("merge_results needs at least one GWASResult")
    first = parts[0]
    for i, p in enumerate(parts[1:], start=1):
        if (p.method, list(p.phenotypes), list(p.covariate_names)) != (
                first.method, list(first.phenotypes), list(first.covariate_names)) \
                or not np.array_equal(p.n_samples, first.n_samples):
            raise InputError(f"part {i} is not of the same scan as part 0 (method, phenotypes, "
                             "samples or covariates differ)")
    kept = [p for p in parts if p.n_variants] or parts[:1]
    arrays = {name: np.concatenate([getattr(p, name) for p in kept]) for name in _ARRAYS}
    variants = pd.concat([p.variants for p in kept], ignore_index=True)
    return GWASResult(variants=variants, phenotypes=list(first.phenotypes), method=first.method,
                      n_samples=first.n_samples, covariate_names=list(first.covariate_names),
                      info=dict(first.info), **arrays)


def part_path(parts_dir, rank_: int, world: int) -> Path:
    """File of one rank's part: ``<parts_dir>/gwas.part-<rank>-of-<world>.h5``.

    Examples
    --------
    >>> part_path("tmp", 1, 4).name
    'gwas.part-00001-of-00004.h5'
    """
    return Path(parts_dir) / f"gwas.part-{rank_:05d}-of-{world:05d}.h5"


def gwas(genotypes, y, covariates=None, *, variants=None, block_size=None, device=None,
         dtype=torch.float64, out=None, compress=False, parts_dir=None, keep_parts=False,
         group=None, verbose=False, **options) -> GWASResult | None:
    """Marginal GWAS (plink2 ``--glm``) with the variant blocks split across ranks.

    Call it on every rank with the same arguments.

    Parameters
    ----------
    genotypes, y, covariates
        As for :func:`torchgenetics.gwas.gwas`; the same on every rank.
    variants : index array, slice or mask, optional
        Variants to test (default all), in output order.
    block_size : int, optional
        Variants per block (default: the single-process plan for the whole list);
        ranks get whole blocks, so each variant is computed exactly as in one process.
    device, dtype : optional
        As for :func:`torchgenetics.gwas.gwas` (e.g. each rank's own GPU).
    out : str or path, optional
        Rank 0 writes ``<out>.<phenotype>.glm.tsv`` (:meth:`GWASResult.write`).
    compress : bool
        Gzip those tables.
    parts_dir : str or path, optional
        A directory all ranks can write (shared file system): each rank saves its
        part there as HDF5 and rank 0 merges the files. Default: parts are sent to
        rank 0 through the process group.
    keep_parts : bool
        Keep the part files after merging.
    group : ProcessGroup, optional
        Default the world group.
    verbose : bool
        Progress bar on rank 0.
    **options
        Other options of :func:`torchgenetics.gwas.gwas` (``phenotype_names``,
        ``covariate_names``).

    Returns
    -------
    GWASResult or None
        The merged result (all variants, in order) on rank 0; None on other ranks.

    Examples
    --------
    >>> from torchgenetics.datasets import simulate_genotypes, simulate_phenotype
    >>> sim = simulate_genotypes(200, 40, seed=0)
    >>> y = simulate_phenotype(sim, h2=0.3, causal=[5], seed=1).y
    >>> gwas(sim.to_genotypes(), y, block_size=16).n_variants
    40
    """
    r, world = rank(group), world_size(group)
    check_same(y, "the phenotypes y", group)
    check_same(covariates, "the covariates", group)
    share, block = variant_share(genotypes, variants, block_size, device, dtype, r, world)
    part = _gwas(genotypes, y, covariates, variants=share, block_size=block, device=device,
                 dtype=dtype, verbose=bool(verbose) and is_main(group), **options)
    if parts_dir is None:
        parts = gather_objects(part, dst=_global_rank_zero(group), group=group)
    else:
        parts_dir = Path(parts_dir)
        if not parts_dir.is_dir():
            raise MissingFileError(parts_dir, "directory for the GWAS parts")
        part.save(part_path(parts_dir, r, world))
        barrier(group)
        parts = [GWASResult.load(part_path(parts_dir, i, world)) for i in range(world)] if r == 0 else None
    if r != 0:
        return None
    merged = merge_results(parts)
    if parts_dir is not None and not keep_parts:
        for i in range(world):
            part_path(parts_dir, i, world).unlink()
    if out is not None:
        merged.write(out, compress=compress)
    return merged


def _global_rank_zero(group) -> int:
    """Global rank of ``group``'s rank 0 (``gather_objects`` takes global ranks)."""
    if group is None or world_size(group) == 1:
        return 0
    return dist.get_global_rank(group, 0)
