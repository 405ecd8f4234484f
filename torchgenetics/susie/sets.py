"""Credible sets, their purity, and posterior inclusion probabilities (susieR's ``susie_get_cs`` / ``susie_get_pip``).

A level-``coverage`` credible set of an effect is the smallest set of variables
whose alpha sums to at least ``coverage`` (largest alpha first, ties in index
order). Sets of effects with ``V <= prior_tol`` are dropped, duplicates keep their
first occurrence, and a set is kept only if its purity (smallest absolute
correlation between two members) reaches ``min_abs_corr``. For sets larger than
``n_purity`` the purity is computed on a random subsample drawn from the caller's
seeded ``torch.Generator``. Kept sets are ordered by purity, highest first.
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["credible_sets", "pip", "in_credible_set", "purity"]


def pip(alpha: torch.Tensor, V: torch.Tensor | None = None, prior_tol: float = 1e-9,
        null_index: int = -1) -> torch.Tensor:
    """Posterior inclusion probabilities ``1 - prod_l (1 - alpha_lj)``.

    Parameters
    ----------
    alpha : torch.Tensor
        (L, p) inclusion probabilities.
    V : torch.Tensor, optional
        (L,) prior variances; effects with ``V <= prior_tol`` are left out.
    prior_tol : float
        Pruning tolerance.
    null_index : int
        Column of the null variable to drop (-1: none).

    Returns
    -------
    torch.Tensor
        (p,) PIPs (p - 1 with a null column).

    Examples
    --------
    >>> pip(torch.tensor([[0.5, 0.5], [0.9, 0.1]]))
    tensor([0.9500, 0.5500])
    """
    if null_index >= 0:
        keep_cols = torch.ones(alpha.shape[1], dtype=torch.bool, device=alpha.device)
        keep_cols[null_index] = False
        alpha = alpha[:, keep_cols]
    if V is not None:
        alpha = alpha[V > prior_tol]
    if alpha.shape[0] == 0:
        return torch.zeros(alpha.shape[1], dtype=alpha.dtype, device=alpha.device)
    return 1.0 - torch.prod(1.0 - alpha, dim=0)


def in_credible_set(alpha: torch.Tensor, coverage: float = 0.95) -> torch.Tensor:
    """Boolean (L, p) membership of each variable in each effect's credible set.

    Examples
    --------
    >>> in_credible_set(torch.tensor([[0.6, 0.3, 0.1]]), 0.85)
    tensor([[ True,  True, False]])
    """
    order = torch.sort(alpha, dim=1, descending=True, stable=True)
    size = (torch.cumsum(order.values, dim=1) < coverage).sum(dim=1) + 1
    size = torch.clamp(size, max=alpha.shape[1])
    ranks = torch.arange(alpha.shape[1], device=alpha.device).expand_as(alpha)
    member_sorted = ranks < size[:, None]
    member = torch.zeros_like(member_sorted)
    member.scatter_(1, order.indices, member_sorted)
    return member


def purity(idx: torch.Tensor, correlations: Callable[[torch.Tensor], torch.Tensor],
           n_purity: int = 100, generator: torch.Generator | None = None,
           squared: bool = False) -> torch.Tensor:
    """Minimum, mean and median absolute correlation between members of one set.

    Parameters
    ----------
    idx : torch.Tensor
        Member indices.
    correlations : callable
        Maps an index tensor to the k x k correlation matrix of those variables.
    n_purity : int
        Sets larger than this are subsampled (without replacement) to this size.
    generator : torch.Generator, optional
        Source of the subsample.
    squared : bool
        Report squared correlations instead.

    Returns
    -------
    torch.Tensor
        (3,) min, mean, median (NaN when a member does not vary).

    Examples
    --------
    >>> R = torch.tensor([[1.0, 0.8, 0.6], [0.8, 1.0, 0.7], [0.6, 0.7, 1.0]], dtype=torch.float64)
    >>> [round(v, 12) for v in purity(torch.tensor([0, 1, 2]), lambda i: R[i][:, i]).tolist()]
    [0.6, 0.7, 0.7]
    """
    if idx.numel() == 1:
        return torch.ones(3, dtype=torch.float64)
    if idx.numel() > n_purity:
        pick = torch.randperm(idx.numel(), generator=generator)[:n_purity]
        idx = idx[pick.to(idx.device)]
    corr = correlations(idx)
    k = idx.numel()
    upper = torch.triu_indices(k, k, offset=1, device=corr.device)
    values = corr[upper[0], upper[1]].abs().to(torch.float64).cpu()
    if squared:
        values = values**2
    return torch.stack([values.min(), values.mean(), torch.quantile(values, 0.5)])


def credible_sets(alpha: torch.Tensor, V: torch.Tensor | None = None,
                  correlations: Callable[[torch.Tensor], torch.Tensor] | None = None,
                  coverage: float = 0.95, min_abs_corr: float = 0.5, n_purity: int = 100,
                  prior_tol: float = 1e-9, null_index: int = -1, dedup: bool = True,
                  squared: bool = False, generator: torch.Generator | None = None) -> dict:
    """Credible sets of a SuSiE fit with their coverage and purity.

    Parameters
    ----------
    alpha : torch.Tensor
        (L, p) inclusion probabilities.
    V : torch.Tensor, optional
        (L,) prior variances; effects with ``V <= prior_tol`` give no set.
    correlations : callable, optional
        Index tensor -> correlation matrix of those variables (from X or R). Without
        it no purity filter is applied.
    coverage : float
        Target coverage.
    min_abs_corr : float
        Purity threshold on the minimum absolute correlation.
    n_purity : int
        Subsample size for the purity of large sets.
    prior_tol : float
        Pruning tolerance on V.
    null_index : int
        Column of the null variable (-1: none); a set holding it is dropped.
    dedup : bool
        Drop sets identical to an earlier one.
    squared : bool
        Purity and threshold on squared correlations.
    generator : torch.Generator, optional
        Seeded source of the purity subsample.

    Returns
    -------
    dict
        ``cs`` (list of LongTensors of variable indices), ``cs_index`` (effect of
        each set), ``coverage`` (claimed coverage), ``purity`` ((k, 3): min, mean,
        median |corr|, or NaN without ``correlations``) and ``requested_coverage``.

    Examples
    --------
    >>> a = torch.tensor([[0.97, 0.02, 0.01], [1/3, 1/3, 1/3]], dtype=torch.float64)
    >>> out = credible_sets(a, V=torch.tensor([1.0, 0.0], dtype=torch.float64))
    >>> out["cs"], out["cs_index"]
    ([tensor([0])], tensor([0]))
    """
    L = alpha.shape[0]
    member = in_credible_set(alpha, coverage).cpu()
    alpha_cpu = alpha.detach().cpu()
    keep = torch.ones(L, dtype=torch.bool) if V is None else (V.detach().cpu() > prior_tol)
    seen = set()
    candidates = []
    for eff in range(L):
        idx = torch.nonzero(member[eff]).flatten()
        key = tuple(idx.tolist())
        if not keep[eff] or len(key) == 0 or (dedup and key in seen):
            continue
        seen.add(key)
        candidates.append((eff, idx, float(alpha_cpu[eff, idx].sum())))
    threshold = min_abs_corr**2 if squared else min_abs_corr
    rows = []
    for eff, idx, claimed in candidates:
        if correlations is None:
            pur = torch.full((3,), float("nan"), dtype=torch.float64)
        elif null_index >= 0 and bool((idx == null_index).any()):
            continue
        else:
            pur = purity(idx.to(alpha.device), correlations, n_purity, generator, squared)
            if not bool(pur[0] >= threshold):
                continue
        rows.append((eff, idx, claimed, pur))
    if correlations is not None:
        rows.sort(key=lambda r: -float(r[3][0]))
    return {
        "cs": [r[1] for r in rows],
        "cs_index": torch.tensor([r[0] for r in rows], dtype=torch.long),
        "coverage": torch.tensor([r[2] for r in rows], dtype=torch.float64),
        "purity": torch.stack([r[3] for r in rows]) if rows else torch.zeros((0, 3), dtype=torch.float64),
        "requested_coverage": float(coverage),
    }
