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

import math
from typing import Callable

import numpy as np
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
    cols = alpha.shape[1] - (null_index >= 0)
    rows = None if V is None else (V > prior_tol).tolist()
    if alpha.device.type == "cpu" and not alpha.requires_grad:  # numpy: the same products, less overhead
        a = alpha.numpy()
        if null_index >= 0:
            a = np.delete(a, null_index, axis=1)
        if rows is not None and not all(rows):
            a = a[rows]
        if a.shape[0] == 0:
            return torch.zeros(cols, dtype=alpha.dtype)
        return torch.from_numpy(1.0 - np.multiply.reduce(1.0 - a, axis=0))
    if null_index >= 0:
        keep_cols = torch.ones(alpha.shape[1], dtype=torch.bool, device=alpha.device)
        keep_cols[null_index] = False
        alpha = alpha[:, keep_cols]
    if rows is not None:
        alpha = alpha[torch.tensor(rows, dtype=torch.bool, device=alpha.device)]
    if alpha.shape[0] == 0:
        return torch.zeros(cols, dtype=alpha.dtype, device=alpha.device)
    return 1.0 - torch.prod(1.0 - alpha, dim=0)


def _cs_members(alpha: np.ndarray, coverage: float) -> list:
    """Per row, the members of its level-``coverage`` credible set in index order.

    One sort of all L rows gives the ranked values, their running sums (accumulated
    in float64 and compared in alpha's own precision, as torch's ``cumsum`` and
    comparison with a Python float do) and each set's size k; the members are then
    the variables above the k-th largest value plus, among those equal to it, the
    lowest indices: exactly the first k of a stable sort by decreasing alpha.
    """
    p = alpha.shape[1]
    ranked = -np.sort(-alpha, axis=1)
    running = np.cumsum(ranked, axis=1, dtype=np.float64).astype(alpha.dtype, copy=False)
    size = np.minimum((running < alpha.dtype.type(coverage)).sum(axis=1) + 1, p).tolist()
    out = []
    for r, k in enumerate(size):
        row = alpha[r]
        if k == 0:
            out.append(np.zeros(0, dtype=np.int64))
            continue
        edge = ranked[r, k - 1]
        if edge != edge:  # NaN in the set: rank as a stable sort of -alpha does
            out.append(np.sort(np.argsort(-row, kind="stable")[:k]))
            continue
        member = row > edge
        short = k - int(np.count_nonzero(member))
        if short:
            member[np.flatnonzero(row == edge)[:short]] = True
        out.append(np.flatnonzero(member))
    return out


def _as_numpy(alpha: torch.Tensor) -> np.ndarray:
    alpha = alpha.detach().cpu()
    if alpha.dtype not in (torch.float32, torch.float64):
        alpha = alpha.to(torch.float64)
    return alpha.numpy()


def in_credible_set(alpha: torch.Tensor, coverage: float = 0.95) -> torch.Tensor:
    """Boolean (L, p) membership of each variable in each effect's credible set.

    One sort and one cumulative sum for all L rows.

    Examples
    --------
    >>> in_credible_set(torch.tensor([[0.6, 0.3, 0.1]]), 0.85)
    tensor([[ True,  True, False]])
    """
    a = _as_numpy(alpha)
    member = np.zeros(a.shape, dtype=bool)
    for row, idx in enumerate(_cs_members(a, coverage)):
        member[row, idx] = True
    return torch.from_numpy(member).to(alpha.device)


_TRIU: dict = {}


def _upper(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-major indices of the strict upper triangle of a k x k matrix (cached)."""
    if k not in _TRIU:
        if len(_TRIU) > 256:
            _TRIU.clear()
        _TRIU[k] = np.triu_indices(k, 1)
    return _TRIU[k]


def _pair_values(corr: torch.Tensor, squared: bool) -> np.ndarray:
    """|corr| (or corr^2) of every pair, row-major over the upper triangle, as float64."""
    c = corr.detach().to(torch.float64).cpu().numpy()
    values = np.abs(c[_upper(c.shape[0])])
    return values * values if squared else values


def _median(values: np.ndarray) -> float:
    """``torch.quantile(values, 0.5)`` bit for bit: the middle value, or for an even count
    the linear interpolation ``hi - (hi - lo) * 0.5`` of the two middle ones (torch's lerp)."""
    m = values.shape[0]
    if m % 2:
        return float(np.partition(values, m // 2)[m // 2])
    part = np.partition(values, [m // 2 - 1, m // 2])
    lo, hi = float(part[m // 2 - 1]), float(part[m // 2])
    return hi - (hi - lo) * 0.5


def _summary(values: np.ndarray) -> tuple[float, float, float]:
    """Min, mean and median of the pair values (all NaN when one is NaN)."""
    if np.isnan(values).any():
        return (math.nan,) * 3
    return float(values.min()), float(torch.from_numpy(values).mean()), _median(values)


def _subsample(idx: torch.Tensor, n_purity: int, generator) -> torch.Tensor:
    if idx.numel() <= n_purity:
        return idx
    pick = torch.randperm(idx.numel(), generator=generator)[:n_purity]
    return idx[pick.to(idx.device)]


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
    idx = _subsample(idx, n_purity, generator)
    return torch.tensor(_summary(_pair_values(correlations(idx), squared)), dtype=torch.float64)


# Sets larger than this are first screened on a few spread members: a pair whose
# |corr| falls below the threshold by more than _PROBE_MARGIN (far above the rounding
# of any correlation routine) proves the set impure without its full k x k block.
_PROBE_MIN = 24
_PROBE_SIZE = 8
_PROBE_MARGIN = 1e-8
_PROBE_STEPS = np.arange(_PROBE_SIZE)


def _impure_by_probe(idx: torch.Tensor, correlations, threshold: float, squared: bool) -> bool:
    k = idx.numel()
    if k <= _PROBE_MIN:
        return False
    spread = torch.from_numpy(_PROBE_STEPS * (k - 1) // (_PROBE_SIZE - 1))  # distinct: k > 8
    values = _pair_values(correlations(idx[spread.to(idx.device)]), squared)
    values = values[np.isfinite(values)]
    return bool(values.size) and float(values.min()) < threshold - _PROBE_MARGIN


def credible_sets(alpha: torch.Tensor, V: torch.Tensor | None = None,
                  correlations: Callable[[torch.Tensor], torch.Tensor] | None = None,
                  coverage: float = 0.95, min_abs_corr: float = 0.5, n_purity: int = 100,
                  prior_tol: float = 1e-9, null_index: int = -1, dedup: bool = True,
                  squared: bool = False, generator: torch.Generator | None = None) -> dict:
    """Credible sets of a SuSiE fit with their coverage and purity.

    All L sets come from one sort and one cumulative sum. The purity of a
    set is computed from one correlation block of its (subsampled) members; a large
    set is first screened on a few spread members, and a pair clearly below the
    threshold drops it without its full block (the kept sets and their purity are
    exactly those of the full computation).

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
    a = _as_numpy(alpha)
    L = a.shape[0]
    keep = [True] * L if V is None else (V.detach().cpu() > prior_tol).tolist()
    effects = [eff for eff in range(L) if keep[eff]]
    seen = set()
    candidates = []
    for eff, members in zip(effects, _cs_members(a[effects], coverage) if effects else [],
                            strict=True):
        key = members.tobytes()
        if members.size == 0 or (dedup and key in seen):
            continue
        seen.add(key)
        candidates.append((eff, members))
    threshold = min_abs_corr**2 if squared else min_abs_corr
    nan3 = (math.nan,) * 3
    rows = []
    for eff, members in candidates:
        idx = torch.from_numpy(members)
        if correlations is None:
            pur = nan3
        elif null_index >= 0 and bool((idx == null_index).any()):
            continue
        elif idx.numel() == 1:
            pur = (1.0, 1.0, 1.0)
            if not 1.0 >= threshold:
                continue
        else:
            sub = _subsample(idx.to(alpha.device), n_purity, generator)
            if _impure_by_probe(sub, correlations, threshold, squared):
                continue
            pur = _summary(_pair_values(correlations(sub), squared))
            if not pur[0] >= threshold:
                continue
        # torch's sum of the members' alpha in index order (the claimed coverage)
        rows.append((eff, idx, float(torch.from_numpy(a[eff, members]).sum()), pur))
    if correlations is not None:
        rows.sort(key=lambda r: -r[3][0])
    return {
        "cs": [r[1] for r in rows],
        "cs_index": torch.tensor([r[0] for r in rows], dtype=torch.long),
        "coverage": torch.tensor([r[2] for r in rows], dtype=torch.float64),
        "purity": torch.tensor([r[3] for r in rows], dtype=torch.float64).reshape(-1, 3),
        "requested_coverage": float(coverage),
    }
