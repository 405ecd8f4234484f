"""LD regions: the mini-batch unit of DeepWAS.

A :class:`Region` is a set of ``p`` variants in LD with each other, of which a window
of ``q`` variants is scored (has summary statistics and enters the likelihood); the
others are flanking variants whose effects reach the window through LD. Its LD is a
dense ``p x p`` tensor or, for large regions, a :class:`~torchgenetics.operators.BandedLD`.

:func:`build_regions` matches summary statistics, annotations and LD operators by
variant id and cuts the genome into regions: one per LD block of a
:class:`~torchgenetics.operators.BlockLD` (optionally split into windows), or sliding
windows with a flank of one bandwidth on each side for a
:class:`~torchgenetics.operators.BandedLD`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from torchgenetics.errors import InputError
from torchgenetics.operators import BandedLD, BlockLD

from .data import Annotations, SumStats

__all__ = ["Region", "RegionSet", "build_regions", "banded_subset", "ld_matmul", "ld_dense",
           "ld_squared"]

#: Default number of scored variants per window of a banded LD operator.
DEFAULT_BANDED_WINDOW = 1000


def banded_subset(ld: BandedLD, index) -> BandedLD:
    """The banded LD of the variants at sorted positions ``index`` (a principal submatrix).

    Parameters
    ----------
    ld : BandedLD
    index : array-like of int
        Increasing positions of the rows kept.

    Returns
    -------
    BandedLD
        Same bandwidth as ``ld`` (entries beyond the original band are zero).

    Examples
    --------
    >>> R = torch.tensor([[1.0, 0.5, 0.2], [0.5, 1.0, 0.5], [0.2, 0.5, 1.0]], dtype=torch.float64)
    >>> B = BandedLD.from_dense(R, window=2)
    >>> banded_subset(B, [0, 2]).to_dense()[0, 1].item()
    0.2
    """
    idx = np.asarray(index, dtype=np.int64)
    if idx.size > 1 and np.any(np.diff(idx) <= 0):
        raise InputError("banded_subset needs increasing positions")
    w, bands = ld.bandwidth, ld.bands
    k = idx.size
    out = torch.zeros(min(w, max(k - 1, 0)) + 1, k, dtype=bands.dtype, device=bands.device)
    out[0] = bands[0, torch.as_tensor(idx, device=bands.device)]
    for d in range(1, out.shape[0]):
        gap = idx[d:] - idx[:-d]
        ok = gap <= w
        if not ok.any():
            continue
        rows = torch.as_tensor(idx[:-d][ok], device=bands.device)
        out[d, torch.as_tensor(np.flatnonzero(ok), device=bands.device)] = bands[
            torch.as_tensor(gap[ok], device=bands.device), rows]
    return BandedLD(out)


def ld_matmul(ld, X: torch.Tensor) -> torch.Tensor:
    """``R X`` for a region's LD (dense tensor or BandedLD), X (p, k).

    A BandedLD is multiplied in its block-tridiagonal form (built once, kept on the
    operator), three batched products instead of one operation per diagonal.

    Examples
    --------
    >>> ld_matmul(torch.eye(2, dtype=torch.float64), torch.ones(2, 1, dtype=torch.float64)).shape
    torch.Size([2, 1])
    """
    if isinstance(ld, torch.Tensor):
        return ld @ X
    fast = getattr(ld, "_deepwas_blocks", None)
    if fast is None:
        from .banded import BlockTridiagonal

        fast = BlockTridiagonal(ld.bands)
        ld._deepwas_blocks = fast
    return fast.matmul(X)


def ld_dense(ld) -> torch.Tensor:
    """The region's LD as a dense tensor.

    Examples
    --------
    >>> ld_dense(BandedLD(torch.ones(1, 2, dtype=torch.float64))).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    return ld if isinstance(ld, torch.Tensor) else ld.to_dense()


def ld_squared(ld):
    """Elementwise square ``R o R`` of a region's LD, of the same kind.

    Examples
    --------
    >>> ld_squared(torch.full((2, 2), 0.5, dtype=torch.float64))[0, 1].item()
    0.25
    """
    return ld.square() if isinstance(ld, torch.Tensor) else BandedLD(ld.bands.square())


@dataclass(eq=False)
class Region:
    """One LD region: ``p`` variants, of which a window of ``q`` is scored.

    Attributes
    ----------
    name : str
    chrom : str
        Chromosome of the region (for leave-chromosomes-out validation).
    variant_ids : numpy.ndarray
        Ids of the ``p`` variants.
    ld : torch.Tensor or BandedLD
        ``p x p`` LD of the region.
    window : torch.Tensor
        int64 positions (in ``0..p-1``) of the ``q`` scored variants.
    z : torch.Tensor
        ``(q,)`` z-scores of the scored variants.
    sqrt_n : torch.Tensor
        ``(q,)`` square roots of their GWAS sample sizes.
    features : torch.Tensor
        ``(p, ...)`` annotation features of all ``p`` variants.
    cache : dict
        Per-region precomputations of the likelihoods (filled on first use).

    Examples
    --------
    >>> r = Region("r", "1", np.array(["a", "b"], dtype=object), torch.eye(2, dtype=torch.float64),
    ...            torch.tensor([0]), torch.tensor([1.0], dtype=torch.float64),
    ...            torch.tensor([10.0], dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64))
    >>> r.n_variants, r.n_scored
    (2, 1)
    """

    name: str
    chrom: str
    variant_ids: np.ndarray
    ld: object
    window: torch.Tensor
    z: torch.Tensor
    sqrt_n: torch.Tensor
    features: torch.Tensor
    cache: dict = field(default_factory=dict, repr=False)

    @property
    def n_variants(self) -> int:
        """Number of variants ``p`` (scored and flanking)."""
        return int(self.variant_ids.shape[0])

    @property
    def n_scored(self) -> int:
        """Number of scored variants ``q``."""
        return int(self.window.shape[0])

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the region's tensors."""
        return self.z.dtype

    @property
    def device(self) -> torch.device:
        """Device of the region's tensors."""
        return self.z.device

    def to(self, device=None, dtype=None) -> "Region":
        """A copy on another device / dtype (the cache is dropped).

        Examples
        --------
        >>> r = Region("r", "1", np.array(["a"], dtype=object), torch.eye(1, dtype=torch.float64),
        ...            torch.tensor([0]), torch.ones(1, dtype=torch.float64),
        ...            torch.ones(1, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64))
        >>> r.to(dtype=torch.float32).z.dtype
        torch.float32
        """
        if (device is None or torch.device(device) == self.device) and (dtype is None or dtype == self.dtype):
            return self

        def mv(t):
            return t.to(device=device, dtype=dtype if t.is_floating_point() else None)

        ld = mv(self.ld) if isinstance(self.ld, torch.Tensor) else BandedLD(mv(self.ld.bands))
        return Region(self.name, self.chrom, self.variant_ids, ld, self.window.to(device),
                      mv(self.z), mv(self.sqrt_n), mv(self.features))


@dataclass
class RegionSet:
    """The regions built from one set of inputs, and what matching dropped.

    Attributes
    ----------
    regions : list of Region
    report : dict
        Counts: ``n_ld_variants``, ``n_no_annotation`` (LD variants dropped: no
        features), ``n_flank_only`` (kept without statistics), ``n_sumstats_not_in_ld``,
        ``n_regions``, ``n_scored``, ``n_blocks_unscored``.

    Examples
    --------
    >>> RegionSet([], {"n_regions": 0}).chromosomes
    []
    """

    regions: list
    report: dict

    def __len__(self) -> int:
        return len(self.regions)

    def __iter__(self):
        return iter(self.regions)

    def __getitem__(self, i):
        return self.regions[i]

    @property
    def chromosomes(self) -> list:
        """Chromosomes with at least one region, in order of appearance."""
        return list(dict.fromkeys(r.chrom for r in self.regions))

    def summary(self) -> str:
        """One paragraph describing the regions and the matching.

        Examples
        --------
        >>> "0 regions" in RegionSet([], {"n_regions": 0, "n_scored": 0}).summary()
        True
        """
        r = self.report
        text = f"{r.get('n_regions', 0)} regions, {r.get('n_scored', 0):,} scored variants"
        extra = [f"{r[k]:,} {label}" for k, label in (
            ("n_flank_only", "LD variants without statistics (flanking only)"),
            ("n_no_annotation", "LD variants without annotations (dropped)"),
            ("n_sumstats_not_in_ld", "statistics without LD (dropped)"),
            ("n_blocks_unscored", "LD blocks without statistics (skipped)")) if r.get(k)]
        return text + ("; " + "; ".join(extra) if extra else "")


def _as_ld_list(ld) -> list:
    items = list(ld) if isinstance(ld, (list, tuple)) else [ld]
    for i, op in enumerate(items):
        if not isinstance(op, (BlockLD, BandedLD)):
            raise InputError(f"LD operator {i} is a {type(op).__name__}; expected BlockLD or BandedLD "
                             "(wrap a dense matrix as BlockLD([R]) and set its variant_ids)")
        if getattr(op, "variant_ids", None) is None:
            raise InputError(f"LD operator {i} has no variant_ids, so its rows cannot be matched to "
                             "the summary statistics (build it with from_genotypes or set .variant_ids)")
    return items


def _chrom_of(ids, sumstats: SumStats, annotations: Annotations, ss_pos, ann_pos) -> np.ndarray:
    chrom = np.full(len(ids), "NA", dtype=object)
    if annotations.chrom is not None:
        ok = ann_pos >= 0
        chrom[ok] = annotations.chrom[ann_pos[ok]]
    if sumstats.chrom is not None:
        ok = ss_pos >= 0
        chrom[ok] = sumstats.chrom[ss_pos[ok]]
    return chrom


class _Builder:
    """Collects regions from LD operators against one sumstats/annotation pair."""

    def __init__(self, sumstats, annotations, dtype, device):
        self.ss, self.ann = sumstats, annotations
        self.dtype, self.device = dtype, device
        self.ss_index = pd.Index(sumstats.ids)
        self.regions = []
        self.report = dict(n_ld_variants=0, n_no_annotation=0, n_flank_only=0,
                           n_sumstats_not_in_ld=0, n_regions=0, n_scored=0, n_blocks_unscored=0)
        self.seen = np.zeros(len(sumstats), dtype=bool)

    def match(self, ids):
        ss_pos = self.ss_index.get_indexer(pd.Index(ids))
        ann_pos = self.ann.positions_of(ids)
        kept = ann_pos >= 0
        scored = kept & (ss_pos >= 0)
        self.seen[ss_pos[ss_pos >= 0]] = True
        self.report["n_ld_variants"] += len(ids)
        self.report["n_no_annotation"] += int((~kept).sum())
        self.report["n_flank_only"] += int((kept & (ss_pos < 0)).sum())
        return ss_pos, ann_pos, kept, scored

    def add(self, name, chrom_values, ids, ld, window_local, ss_rows, ann_rows):
        chroms = pd.unique(chrom_values[window_local])
        if len(chroms) > 1:
            raise InputError(f"LD region {name} spans chromosomes {list(chroms)}; LD blocks must "
                             "not cross chromosomes")
        t = dict(dtype=self.dtype, device=self.device)
        z = torch.as_tensor(self.ss.z[ss_rows], **t)
        sqrt_n = torch.as_tensor(np.sqrt(self.ss.n[ss_rows]), **t)
        feats = torch.as_tensor(self.ann.values[ann_rows], **t)
        self.regions.append(Region(name, str(chroms[0]), ids, ld,
                                   torch.as_tensor(window_local, dtype=torch.int64, device=self.device),
                                   z, sqrt_n, feats))
        self.report["n_regions"] += 1
        self.report["n_scored"] += int(len(window_local))


def _windows(scored_local: np.ndarray, size: int | None) -> list:
    if size is None or scored_local.size <= size:
        return [scored_local]
    n_win = -(-scored_local.size // size)
    return np.array_split(scored_local, n_win)


def _block_regions(b: _Builder, op: BlockLD, k: int, window_size, flank):
    ids_all = np.asarray(op.variant_ids, dtype=object).astype(str)
    ss_pos, ann_pos, kept, scored = b.match(ids_all)
    chrom = _chrom_of(ids_all, b.ss, b.ann, ss_pos, ann_pos)
    for bi, (block, rows) in enumerate(zip(op.blocks, op.block_index, strict=True)):
        local = np.flatnonzero(kept[rows])
        sc = np.flatnonzero(scored[rows][local])  # positions within `local`
        if sc.size == 0:
            b.report["n_blocks_unscored"] += 1
            continue
        for wi, win in enumerate(_windows(sc, window_size)):
            lo, hi = (0, local.size) if flank is None else (
                max(0, int(win[0]) - flank), min(local.size, int(win[-1]) + flank + 1))
            sel = local[lo:hi]
            R = block[torch.as_tensor(sel, device=block.device)][:, torch.as_tensor(sel, device=block.device)]
            R = R.to(device=b.device, dtype=b.dtype)
            rows_sel = rows[sel]
            name = f"ld{k}.block{bi}" + (f".w{wi}" if window_size is not None else "")
            b.add(name, chrom[rows_sel], ids_all[rows_sel], R, win - lo,
                  ss_pos[rows_sel[win - lo]], ann_pos[rows_sel])


def _banded_regions(b: _Builder, op: BandedLD, k: int, window_size, flank, dense_max):
    ids_all = np.asarray(op.variant_ids, dtype=object).astype(str)
    ss_pos, ann_pos, kept, scored = b.match(ids_all)
    chrom = _chrom_of(ids_all, b.ss, b.ann, ss_pos, ann_pos)
    size = DEFAULT_BANDED_WINDOW if window_size is None else window_size
    fl = op.bandwidth if flank is None else flank
    codes = pd.factorize(chrom)[0]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(codes) != 0) + 1, [len(ids_all)]])
    for a, e in zip(starts[:-1], starts[1:], strict=True):
        sc = a + np.flatnonzero(scored[a:e])
        for wi, win in enumerate(_windows(sc, size)):
            lo, hi = max(a, int(win[0]) - fl), min(e, int(win[-1]) + fl + 1)
            rows = lo + np.flatnonzero(kept[lo:hi])
            sub = banded_subset(op, rows)
            sub = BandedLD(sub.bands.to(device=b.device, dtype=b.dtype))
            ld = sub.to_dense() if rows.size <= dense_max else sub
            window_local = np.searchsorted(rows, win)
            b.add(f"ld{k}.{chrom[a]}.w{wi}", chrom[rows], ids_all[rows], ld, window_local,
                  ss_pos[win], ann_pos[rows])


def build_regions(sumstats: SumStats, annotations: Annotations, ld, window_size: int | None = None,
                  flank: int | None = None, dense_max: int = 0, dtype=torch.float64,
                  device=None) -> RegionSet:
    """Cut summary statistics, annotations and LD into regions (matched by variant id).

    LD variants without annotations are dropped (they cannot have a prior); LD variants
    without statistics stay as flanking variants; statistics of variants absent from
    the LD are dropped. Everything dropped is counted in ``report``.

    Parameters
    ----------
    sumstats : SumStats
    annotations : Annotations
    ld : BlockLD, BandedLD, or a list of them
        LD operators with ``variant_ids`` (e.g. one per chromosome).
    window_size : int, optional
        Scored variants per region. BlockLD: default the whole block (larger blocks are
        split into windows that share the block as flank). BandedLD: default 1000.
    flank : int, optional
        Flanking variants kept on each side of a window. BlockLD: default the rest of
        the block; BandedLD: default the operator's bandwidth (everything in LD).
    dense_max : int
        Banded regions with at most this many variants are stored dense.
    dtype, device : optional
        Of the region tensors (default float64 on CPU).

    Returns
    -------
    RegionSet

    Examples
    --------
    >>> R = BlockLD([torch.eye(2, dtype=torch.float64)]); R.variant_ids = np.array(["a", "b"])
    >>> s = SumStats(["a", "b"], [1.0, -1.0], 1000)
    >>> a = Annotations(["a", "b"], np.ones((2, 1)), ["f"])
    >>> rs = build_regions(s, a, R)
    >>> len(rs), rs[0].n_scored
    (1, 2)
    """
    if window_size is not None and int(window_size) < 1:
        raise InputError(f"window_size must be >= 1, got {window_size}")
    if flank is not None and int(flank) < 0:
        raise InputError(f"flank must be >= 0, got {flank}")
    device = torch.device("cpu" if device is None else device)
    b = _Builder(sumstats, annotations, dtype, device)
    for k, op in enumerate(_as_ld_list(ld)):
        if isinstance(op, BlockLD):
            _block_regions(b, op, k, window_size, flank)
        else:
            _banded_regions(b, op, k, window_size, flank, dense_max)
    b.report["n_sumstats_not_in_ld"] = int((~b.seen).sum())
    if not b.regions:
        raise InputError("no region has a variant with summary statistics, annotations and LD; "
                         "check that the variant ids of the three inputs match")
    return RegionSet(b.regions, b.report)
