"""Helpers shared by the operators: index parsing, right-hand-side shapes, block checks."""

from __future__ import annotations

import numpy as np
import torch
from linear_operator.operators import LinearOperator

from ..distributed import context as dist_context
from ..errors import InputError

__all__ = [
    "as_positions",
    "resolve",
    "flatten_rhs",
    "check_symmetric_block",
    "SymmetricOperator",
    "BatchView",
    "standardized_columns",
    "Shard",
]


def resolve(device=None, dtype=None) -> tuple[torch.device, torch.dtype]:
    """Default device (CPU) and dtype (float64) when not given."""
    return torch.device("cpu" if device is None else device), (
        torch.float64 if dtype is None else dtype
    )


def as_positions(variants, n_total: int, what: str = "variants") -> np.ndarray:
    """Turn ``None``, a slice, a boolean mask or integer indices into a 1-D int64 array.

    Negative indices count from the end; duplicates and out-of-range values raise
    :class:`~torchgenetics.errors.InputError` naming ``what``.
    """
    if variants is None:
        return np.arange(n_total, dtype=np.int64)
    if isinstance(variants, slice):
        return np.arange(n_total, dtype=np.int64)[variants]
    if torch.is_tensor(variants):
        variants = variants.detach().cpu().numpy()
    arr = np.asarray(variants)
    if arr.ndim != 1:
        raise InputError(f"{what} must be a 1-D index array or boolean mask, got shape {arr.shape}")
    if arr.dtype == bool:
        if arr.shape[0] != n_total:
            raise InputError(
                f"{what}: boolean mask has length {arr.shape[0]} but there are {n_total} entries"
            )
        return np.flatnonzero(arr).astype(np.int64)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise InputError(f"{what} must hold integer positions, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = (arr < -n_total) | (arr >= n_total)
    if bad.any():
        raise InputError(
            f"{what}: position {int(arr[bad][0])} is out of range for {n_total} entries"
        )
    arr = np.where(arr < 0, arr + n_total, arr)
    uniq, counts = np.unique(arr, return_counts=True)
    if uniq.size != arr.size:
        raise InputError(f"{what}: position {int(uniq[counts > 1][0])} is listed more than once")
    return arr


def flatten_rhs(rhs: torch.Tensor, n: int):
    """View a right-hand side ``(n,)``, ``(n, k)`` or ``(..., n, k)`` as one ``(n, K)`` matrix.

    Returns the matrix and a function mapping an ``(n', K)`` result back to the
    original layout (with ``n'`` rows).
    """
    if rhs.dim() == 1:
        if rhs.shape[0] != n:
            raise InputError(f"right-hand side has {rhs.shape[0]} rows, operator has {n} columns")
        return rhs.unsqueeze(-1), lambda out: out.squeeze(-1)
    if rhs.shape[-2] != n:
        raise InputError(f"right-hand side has {rhs.shape[-2]} rows, operator has {n} columns")
    if rhs.dim() == 2:
        return rhs, lambda out: out
    batch, k = rhs.shape[:-2], rhs.shape[-1]
    mat = rhs.movedim(-2, 0).reshape(n, -1)

    def restore(out):
        return out.reshape(out.shape[0], *batch, k).movedim(0, -2)

    return mat, restore


def check_symmetric_block(mat, index: int, what: str, size: int | None = None, dtype=None):
    """Check one dense block is a finite, square, symmetric matrix of the expected size.

    Returns it as a tensor (``dtype`` if given). Raises
    :class:`~torchgenetics.errors.InputError` naming ``what`` and the block ``index``.
    """
    try:
        t = torch.as_tensor(mat)
    except (TypeError, ValueError, RuntimeError) as err:
        raise InputError(f"{what} {index}: cannot be read as a matrix ({err})") from None
    if dtype is not None:
        t = t.to(dtype)
    elif not t.is_floating_point():
        t = t.to(torch.float64)
    if t.dim() != 2 or t.shape[0] != t.shape[1]:
        raise InputError(f"{what} {index}: expected a square matrix, got shape {tuple(t.shape)}")
    if size is not None and t.shape[0] != size:
        raise InputError(
            f"{what} {index}: matrix is {t.shape[0]} x {t.shape[1]} but it lists {size} variants"
        )
    if not bool(torch.isfinite(t).all()):
        raise InputError(f"{what} {index}: matrix has non-finite entries (NaN or inf)")
    if t.numel():
        scale = float(t.abs().max())
        gap = float((t - t.T).abs().max())
        tol = 1e-8 * max(scale, 1.0) if t.dtype == torch.float64 else 1e-5 * max(scale, 1.0)
        if gap > tol:
            raise InputError(
                f"{what} {index}: matrix is not symmetric (max |W - W^T| = {gap:.3g}, "
                f"tolerance {tol:.1g})"
            )
        t = 0.5 * (t + t.T)  # exact symmetry (a no-op for symmetric input)
    return t


class SymmetricOperator(LinearOperator):
    """Base for non-batched square symmetric operators: transpose is the operator itself.

    Batch dimensions, which linear_operator adds for broadcasting (``unsqueeze``,
    ``expand``, tensor indexing), are provided by :class:`BatchView`.
    """

    def _transpose_nonbatch(self):
        return self

    def _t_matmul(self, rhs):
        return self._matmul(rhs)

    def _unsqueeze_batch(self, dim):
        return BatchView(self, 1)

    def _get_indices(self, row_index, col_index, *batch_indices):
        # entries K[r, c] from the columns K e_c of the distinct c (few, for indexing)
        shape = torch.broadcast_shapes(row_index.shape, col_index.shape,
                                       *(b.shape for b in batch_indices))
        rows = row_index.expand(shape).reshape(-1)
        cols, inv = torch.unique(col_index.expand(shape).reshape(-1), return_inverse=True)
        unit = torch.zeros(self.shape[-1], cols.numel(), dtype=self.dtype, device=self.device)
        unit[cols, torch.arange(cols.numel(), device=self.device)] = 1.0
        return self._matmul(unit)[rows, inv].reshape(shape)


class BatchView(LinearOperator):
    """A non-batched operator seen with ``n_batch`` leading singleton batch dimensions."""

    def __init__(self, base, n_batch=1):
        super().__init__(base, n_batch=n_batch)
        self.base = base
        self.n_batch = n_batch

    def _size(self):
        return torch.Size([1] * self.n_batch) + self.base.shape

    def _matmul(self, rhs):
        out = self.base._matmul(rhs)
        while out.dim() < self.n_batch + 2:
            out = out.unsqueeze(0)
        return out

    def _transpose_nonbatch(self):
        return self

    def _unsqueeze_batch(self, dim):
        return BatchView(self.base, self.n_batch + 1)

    def _diagonal(self):
        return self.base._diagonal().view(*([1] * self.n_batch), -1)

    def _bilinear_derivative(self, left_vecs, right_vecs):
        return self.base._bilinear_derivative(left_vecs, right_vecs)

    def _get_indices(self, row_index, col_index, *batch_indices):
        shape = torch.broadcast_shapes(row_index.shape, col_index.shape,
                                       *(b.shape for b in batch_indices))
        return self.base._get_indices(row_index.expand(shape), col_index.expand(shape))

    def to_dense(self):
        return self.base.to_dense().view(*([1] * self.n_batch), *self.base.shape)


def standardized_columns(genotypes, positions, device=None, dtype=torch.float64) -> torch.Tensor:
    """Standardized genotypes of ``positions`` as an n x len(positions) tensor, in that order.

    Monomorphic variants (skipped by ``Genotypes.blocks``) give zero columns, missing
    calls are zero (as in ``Genotypes.blocks``).
    """
    positions = np.asarray(positions, dtype=np.int64)
    out = torch.zeros(genotypes.n_samples, positions.size, device=device, dtype=dtype)
    if positions.size == 0:
        return out
    order = np.argsort(positions, kind="stable")
    sorted_pos = positions[order]
    for idx, block in genotypes.blocks(
        block_size=positions.size, device=device, dtype=dtype, standardize=True,
        variants=positions, prefetch=False,
    ):
        cols = order[np.searchsorted(sorted_pos, np.asarray(idx, dtype=np.int64))]
        out[:, torch.as_tensor(cols, device=out.device)] = block
    return out


class Shard:
    """How an operator's variants are split over the ranks of a process group.

    Each rank holds a contiguous, balanced share of the operator's (sorted)
    variants and reads nothing else, not even for the per-variant statistics
    (:meth:`share_view`); products are local sums ``sum_{j in share} z_j (z_j' V)``
    added up over the ranks with one ``all_reduce``. Without a process group (or
    with ``distributed=False``) the share is everything and the reduction a no-op.

    Parameters
    ----------
    distributed : bool
        Shard over ``group``. A given ``group`` implies True.
    group : ProcessGroup, optional
        Default: the world group.

    Examples
    --------
    >>> s = Shard()
    >>> s.active, s.take(5), s.reduce(torch.ones(2)).tolist()
    (False, slice(0, 5, None), [1.0, 1.0])
    """

    def __init__(self, distributed: bool = False, group=None):
        self.active = bool(distributed) or group is not None
        self.group = group

    @property
    def world(self) -> int:
        """Number of ranks sharing the variants (1 when not sharded)."""
        return dist_context.world_size(self.group) if self.active else 1

    @property
    def rank(self) -> int:
        """This rank's position among them (0 when not sharded)."""
        return dist_context.rank(self.group) if self.active else 0

    def take(self, n_items: int) -> slice:
        """This rank's contiguous share of ``n_items`` ordered items."""
        return dist_context.shard_range(n_items, self.rank, self.world)

    def owner_slices(self, sizes) -> slice:
        """This rank's share of consecutive groups (sizes ``sizes``), balanced by total size.

        A group goes to the rank whose variant range holds its midpoint, so groups
        stay whole and shares stay contiguous.
        """
        sizes = np.asarray(sizes, dtype=np.int64)
        own = dist_context.shard_range(int(sizes.sum()), self.rank, self.world)
        mid2 = 2 * (np.cumsum(sizes) - sizes) + sizes  # twice each group's midpoint
        keep = np.flatnonzero((mid2 >= 2 * own.start) & (mid2 < 2 * own.stop))
        if keep.size == 0:
            return slice(0, 0)
        return slice(int(keep[0]), int(keep[-1]) + 1)

    def share_view(self, genotypes, positions):
        """This rank's share of sorted variant ``positions`` as a lazy Genotypes view.

        The view computes its statistics (polymorphism, means, variances) over the
        share only, so no rank decodes the other ranks' variants.

        Returns
        -------
        view : Genotypes
        share : numpy.ndarray
            Positions in ``genotypes`` of the view's variants (view position i is
            ``share[i]``).
        """
        share = np.asarray(positions, dtype=np.int64)[self.take(len(positions))]
        return genotypes.subset(variants=share), share

    def gather(self, obj) -> list:
        """Every rank's picklable ``obj``, in rank order (``[obj]`` when not sharded)."""
        return dist_context.all_gather_objects(obj, self.group) if self.active else [obj]

    def reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the ranks in place (no-op when not sharded); returns it."""
        if self.active:
            dist_context.all_reduce_sum(tensor, self.group)
        return tensor

    def __repr__(self):
        return f"Shard(rank={self.rank}, world={self.world})" if self.active else "Shard(off)"
