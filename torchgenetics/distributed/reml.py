"""REML on many ranks: the single-process fit on top of variant-sharded kernels.

Nothing in the likelihood, the solvers or the optimizer changes. Every rank holds
the n-sized vectors (phenotype, covariates, probes, CG iterates) and runs the same
AI-REML iterations; only kernel products communicate (the sharded operators'
``all_reduce``). The probes come from the same seed on every rank, the reduced
products are bit-identical on every rank, so every rank computes the same
iterates and the fit equals the single-process one up to the order of the
floating-point sums.

:func:`reml` adds what keeps the ranks in step: it checks that every rank holds
the same phenotype, covariates and seed, pins the smallest memory budget of all
ranks (so "auto" choices agree) and shows progress on rank 0 only.
"""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist

from ..errors import InputError
from ..reml import REMLFit
from ..reml import reml as _reml
from ..reml.kernelset import as_kernel_set
from .context import agreed_budget, all_gather_objects, check_same, digest, is_main, world_size

__all__ = ["reml", "sharded_kernels"]


def sharded_kernels(kset) -> list:
    """The kernels of a KernelSet that are sharded over a process group.

    Parameters
    ----------
    kset : KernelSet

    Returns
    -------
    list of LinearOperator
        GRMs (including GRMStack components) and WeightedBlockGRMs built with
        ``distributed=True``.

    Examples
    --------
    >>> from torchgenetics.reml.kernelset import KernelSet
    >>> sharded_kernels(KernelSet([torch.eye(2, dtype=torch.float64)], n=2))
    []
    """
    return [k for k in kset.operators if getattr(k, "distributed", False)]


def _group_of(kernels, group):
    """The group the sharded kernels use; all must agree (with ``group`` if given)."""
    def key(g):
        return None if g is None or (dist.is_initialized() and g is dist.group.WORLD) else id(g)

    groups = {key(k.group): k.group for k in kernels}
    if group is not None:
        groups.setdefault(key(group), group)
    if len(groups) > 1:
        raise InputError("the sharded kernels (and group=) name different process groups; "
                         "build every kernel with the same group")
    return next(iter(groups.values())) if groups else None


def reml(y, kernels, covariates=None, *, group=None, names=None, dtype=None, device=None,
         seed=0, verbose=False, **options) -> REMLFit:
    """Fit ``V = sum_g s2_g K_g + s2_e I`` on every rank of a process group.

    Call it on every rank with the same arguments. Kernels built with
    ``distributed=True`` (:class:`~torchgenetics.operators.GRM`,
    :class:`~torchgenetics.operators.GRMStack`,
    :class:`~torchgenetics.operators.WeightedBlockGRM`, or
    :func:`~torchgenetics.reml.grm_stack` / :func:`~torchgenetics.reml.grms_from_prefixes`
    / :func:`~torchgenetics.reml.smile_kernels` with ``distributed=True``) stream
    only this rank's share of the variants; other kernels are replicated.

    Parameters
    ----------
    y, kernels, covariates
        As for :func:`torchgenetics.reml.reml`; identical on every rank.
    group : ProcessGroup, optional
        The ranks of the fit (default: the group of the sharded kernels, else the
        world group).
    names, dtype, device
        As for :func:`torchgenetics.reml.reml`.
    seed : int or torch.Generator
        Probe seed (a generator must be in the same state on every rank).
    verbose : bool
        Progress bar, on rank 0 only.
    **options
        Every other option of :func:`torchgenetics.reml.reml` (``method``,
        ``init``, ``num_probes``, ``cg_tol``, ...).

    Returns
    -------
    REMLFit
        The same fit on every rank; ``settings`` gains ``world_size``,
        ``sharded_kernels`` (how many kernels were sharded) and ``ranks_agree``
        (every rank ended with the same bits; a RuntimeWarning when not).

    Raises
    ------
    InputError
        When the phenotype, covariates or seed differ between ranks, or the
        kernels are sharded over different groups.

    Examples
    --------
    >>> from torchgenetics.genotypes import Genotypes
    >>> from torchgenetics.operators import GRM
    >>> g = torch.Generator().manual_seed(0)
    >>> X = torch.randint(0, 3, (120, 200), generator=g).double()
    >>> y = torch.randn(120, generator=g, dtype=torch.float64)
    >>> fit = reml(y, GRM(Genotypes.from_array(X), distributed=True), method="exact")
    >>> fit.settings["world_size"], fit.converged
    (1, True)
    """
    n = len(y)
    ks = as_kernel_set(kernels, n, names=names, dtype=dtype, device=device)
    sharded = sharded_kernels(ks)
    group = _group_of(sharded, group)
    check_same(y, "the phenotype y", group)
    check_same(covariates, "the covariates", group)
    check_same(seed.get_state() if isinstance(seed, torch.Generator) else seed, "the seed", group)
    with agreed_budget(ks.device, group):
        fit = _reml(y, ks, covariates, seed=seed, verbose=bool(verbose) and is_main(group),
                    **options)
    fit.settings["world_size"] = world_size(group)
    fit.settings["sharded_kernels"] = len(sharded)
    fit.settings["ranks_agree"] = _ranks_agree(fit, group)
    return fit


def _ranks_agree(fit, group) -> bool:
    """Whether every rank ended with the same bits (warns when not)."""
    prints = all_gather_objects(digest([fit.variances, fit.n_iter]), group)
    if all(p == prints[0] for p in prints):
        return True
    warnings.warn("the ranks ended the REML fit with different variance components (in the last "
                  "bits at least): they did not compute identically; run every rank with the same "
                  "software, thread count and device type", RuntimeWarning, stacklevel=3)
    return False
