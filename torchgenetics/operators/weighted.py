"""SMILE-style weighted block GRM ``K = X W X^T / c`` with block-diagonal ``W``.

Adapted from the weighted-GRM idea of SMILE (JianqiaoWang/SMILE) as used by GPU_REML:
``X`` holds standardized genotypes, ``W = blockdiag(W_1, ..., W_B)`` with dense,
user-given SNP x SNP blocks over variant sets, and ``c = tr(X W X^T) / n`` (computed
exactly in one streaming pass, ``= sum_i sum_jk (W_i)_jk (X_i^T X_i)_jk / n``) makes
the average diagonal 1. ``K`` is never formed: ``K V = sum_i X_i (W_i (X_i^T V)) / c``.

With ``distributed=True`` the W blocks (kept whole) are split over the ranks in
contiguous shares balanced by variant count; each rank sums its blocks' terms
and one ``all_reduce`` adds them (``c`` comes from the reduced diagonal).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError, MemoryBudgetError
from ..memory import dtype_bytes, plan_block
from ._common import (
    Shard,
    SymmetricOperator,
    as_positions,
    check_symmetric_block,
    resolve,
    standardized_columns,
)
from .grm import _kernel_matmul

__all__ = ["WeightedBlockGRM"]


class _WeightedState:
    """Blocks, scale and caches of one WeightedBlockGRM, shared by its rebuilds.

    When sharded (``shard``), ``genotypes`` is this rank's view of its blocks'
    variants, ``positions``/``weights`` are its blocks, and ``n_blocks`` /
    ``n_monomorphic`` count those of every rank.
    """

    def __init__(self, genotypes, positions, weights, device, dtype, resident, n_monomorphic,
                 shard=None, n_blocks=None):
        self.genotypes = genotypes
        self.shard = Shard() if shard is None else shard
        self.n_blocks = len(positions) if n_blocks is None else int(n_blocks)
        self.positions = positions  # per block: polymorphic positions (W row order)
        self.weights = weights  # per block: W restricted to those positions
        self.n = int(genotypes.n_samples)
        self.device, self.dtype = device, dtype
        self.resident = resident
        self.n_monomorphic = n_monomorphic
        self.passes = 0
        self._x = None
        self._raw_diag = None
        self._dense = None

    def _decide(self) -> bool:
        if self.resident is None:
            total = sum(p.size for p in self.positions)
            try:
                self.resident = plan_block(total, self.n * dtype_bytes(self.dtype),
                                           device=self.device) >= total
            except MemoryBudgetError:
                self.resident = False
        return self.resident

    def blocks(self):
        """Yield ``(X_i, W_i)`` per block, streamed or resident."""
        if self._decide() and self._x is not None:
            yield from zip(self._x, self.weights, strict=True)
            return
        self.passes += 1
        keep = [] if self.resident else None
        for pos, w in zip(self.positions, self.weights, strict=True):
            x = standardized_columns(self.genotypes, pos, self.device, self.dtype)
            if keep is not None:
                keep.append(x)
            yield x, w
        if keep is not None:
            self._x = keep

    def raw_diagonal(self) -> torch.Tensor:
        """``diag(X W X^T)`` (cached); its mean is ``c``."""
        if self._raw_diag is None:
            d = torch.zeros(self.n, dtype=self.dtype, device=self.device)
            for x, w in self.blocks():
                d += ((x @ w) * x).sum(dim=1)
            self.shard.reduce(d)
            c = float(d.sum()) / self.n
            if not c > 0:
                raise InputError(
                    f"tr(X W X^T) / n = {c:.4g} is not positive: the W blocks do not define "
                    "a usable kernel (check their signs)"
                )
            self._raw_diag = d
        return self._raw_diag

    @property
    def scale(self) -> float:
        return float(self.raw_diagonal().sum()) / self.n

    def matmul(self, v: torch.Tensor) -> torch.Tensor:
        c = self.scale
        out = torch.zeros(self.n, v.shape[1], dtype=v.dtype, device=v.device)
        for x, w in self.blocks():
            out.addmm_(x, w @ (x.T @ v))
        return self.shard.reduce(out).div_(c)

    def dense(self) -> torch.Tensor:
        if self._dense is None:
            c = self.scale
            out = torch.zeros(self.n, self.n, dtype=self.dtype, device=self.device)
            for x, w in self.blocks():
                out.addmm_(x @ w, x.T)
            self.shard.reduce(out)
            self._dense = 0.5 * (out + out.T) / c
        return self._dense


class WeightedBlockGRM(SymmetricOperator):
    """SMILE weighted block kernel ``K = X W X^T / c``, ``c = tr(X W X^T) / n``.

    Parameters
    ----------
    genotypes : Genotypes
        The source; ``X`` are its standardized genotypes (missing calls 0).
    blocks : list of (variant_indices, W_block)
        Each ``W_block`` a dense symmetric, finite p x p matrix (numpy or torch) over
        the p variants ``variant_indices`` (positions in ``genotypes``). Blocks are
        summed, so a variant may appear in several. Monomorphic variants have zero
        columns in ``X`` and are dropped with their W rows/columns.
    device, dtype : optional
        Default CPU, float64.
    resident : bool, optional
        Keep ``X_i`` on the device after the first pass (True), re-read them on
        every product (False), or decide from the memory budget (None).
    distributed : bool, default False
        Split the blocks over the ranks of ``group`` (whole blocks, contiguous
        shares balanced by variant count; one ``all_reduce`` per product; every
        rank must make the same calls).
    group : ProcessGroup, optional
        Default the world group; giving one implies ``distributed=True``.

    Attributes
    ----------
    scale : float
        ``c`` (computed on first use, in one pass that also gives the diagonal).
    n_monomorphic : int
        Variant entries dropped as monomorphic, summed over blocks.

    Raises
    ------
    InputError
        When a block is not square, does not match its variant list, is not
        symmetric or not finite (the message names the block index).

    Examples
    --------
    >>> from torchgenetics.genotypes import Genotypes
    >>> G = Genotypes.from_array(np.array([[0, 1, 2, 1], [2, 1, 0, 0], [1, 0, 1, 2.]]))
    >>> W = [([0, 1], np.array([[1.0, 0.5], [0.5, 1.0]])), ([2, 3], np.eye(2))]
    >>> K = WeightedBlockGRM(G, W)
    >>> round(float(K.diagonal().mean()), 12)
    1.0
    """

    def __init__(self, genotypes=None, blocks=None, device=None, dtype=None, resident=None,
                 *, distributed=False, group=None, _state=None):
        if _state is None:
            if genotypes is None or blocks is None:
                raise InputError("WeightedBlockGRM needs genotypes and a list of (variants, W) blocks")
            device, dtype = resolve(device, dtype)
            blocks = list(blocks)
            if not blocks:
                raise InputError("WeightedBlockGRM needs at least one (variants, W) block")
            m = genotypes.n_variants
            checked = []
            for i, item in enumerate(blocks):
                try:
                    idx, w = item
                except (TypeError, ValueError):
                    raise InputError(f"W block {i}: expected a (variant_indices, W) pair") from None
                pos = as_positions(idx, m, f"W block {i} variants")
                checked.append((pos, check_symmetric_block(w, i, "W block", size=pos.size, dtype=dtype)))
            shard = Shard(distributed, group)
            source = genotypes
            if shard.active:
                # whole blocks per rank, read through a view of their variants only
                checked = checked[shard.owner_slices([p.size for p, _ in checked])]
                union = np.unique(np.concatenate([p for p, _ in checked])) if checked else \
                    np.zeros(0, dtype=np.int64)
                source = genotypes.subset(variants=union)
                checked = [(np.searchsorted(union, p), w) for p, w in checked]
            positions, weights, n_mono = [], [], 0
            for pos, w in checked:
                poly = set(np.asarray(source.polymorphic_index(pos), dtype=np.int64).tolist())
                keep = np.array([p in poly for p in pos.tolist()], dtype=bool)
                n_mono += int((~keep).sum())
                if keep.any():
                    k = torch.as_tensor(np.flatnonzero(keep))
                    positions.append(pos[keep])
                    weights.append(w.index_select(0, k).index_select(1, k).contiguous().to(device))
            counts = np.sum(shard.gather((len(positions), n_mono)), axis=0)
            if counts[0] == 0:
                raise InputError("WeightedBlockGRM: no block has a polymorphic variant")
            _state = _WeightedState(source, positions, weights, device, dtype, resident,
                                    int(counts[1]), shard, int(counts[0]))
        super().__init__(_state=_state)
        self._state = _state

    @property
    def dtype(self):
        return self._state.dtype

    @property
    def device(self):
        return self._state.device

    @property
    def scale(self) -> float:
        """``c = tr(X W X^T) / n``."""
        return self._state.scale

    @property
    def n_monomorphic(self) -> int:
        """Variant entries dropped as monomorphic."""
        return self._state.n_monomorphic

    @property
    def n_blocks(self) -> int:
        """Blocks with at least one polymorphic variant (over all ranks)."""
        return self._state.n_blocks

    @property
    def n_local_blocks(self) -> int:
        """Blocks this rank multiplies (all of them when not sharded)."""
        return len(self._state.positions)

    @property
    def distributed(self) -> bool:
        """Whether the blocks are split over a process group."""
        return self._state.shard.active

    @property
    def group(self):
        """The process group of a sharded operator (None: the world group)."""
        return self._state.shard.group

    @property
    def passes(self) -> int:
        """Passes over the genotypes so far."""
        return self._state.passes

    def _size(self):
        return torch.Size([self._state.n, self._state.n])

    def _matmul(self, rhs):
        return _kernel_matmul(self._state, rhs)

    def _diagonal(self):
        return self._state.raw_diagonal() / self._state.scale

    def to_dense(self):
        return self._state.dense()

    def __repr__(self):
        return f"WeightedBlockGRM(n={self._state.n}, blocks={self.n_blocks})"
