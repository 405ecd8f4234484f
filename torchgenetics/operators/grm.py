"""Matrix-free genomic relationship matrix ``K = Z Z^T / m_eff``.

``Z`` holds the standardized genotypes of the polymorphic variants of a set
(missing calls are 0, monomorphic variants dropped; ``m_eff`` counts the rest). ``K``
is never formed: ``K V = sum_b Z_b (Z_b^T V) / m_eff`` over blocks of ``Z`` that are
either streamed from the :class:`~torchgenetics.genotypes.Genotypes` source on each
product or kept resident on the device when the memory budget allows.

With ``distributed=True`` (a ``torch.distributed`` process group initialised) each
rank keeps a contiguous share of the variants and a product is the local sum
``sum_{b in share} Z_b (Z_b^T V)`` added up over the ranks by one ``all_reduce``,
divided by the global ``m_eff``; every rank holds the whole n-sized result, so
anything built on the operator runs unchanged (every rank must make the same
calls, in the same order).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.autograd import Function

from ..errors import InputError, MemoryBudgetError
from ..memory import dtype_bytes, plan_block
from ._common import Shard, SymmetricOperator, as_positions, flatten_rhs, resolve

__all__ = ["GRM"]

# Widest streamed block: ~2k columns keep both GEMMs of K V near peak speed (narrow
# blocks of a few hundred columns lose ~40% on CPU BLAS); the memory budget may
# make blocks narrower.
_STREAM_BLOCK_COLUMNS = 2048
# Blocks alive while streaming: the one in use, the one being decoded, its raw buffer.
_STREAM_LIVE_COPIES = 3


class _BlockSource:
    """Standardized blocks of one set of polymorphic variants, streamed or resident.

    Shared by every operator built on the same variants (a GRM, the components of a
    GRMStack), so that resident blocks are loaded once and passes are counted in one
    place.

    Parameters
    ----------
    genotypes : Genotypes
        The source.
    index : numpy.ndarray
        Sorted positions (in ``genotypes``) of the polymorphic variants covered
        (this rank's share when sharded).
    device, dtype : torch.device, torch.dtype
        Where blocks live.
    resident : bool or None
        Keep all blocks on the device (True), stream each time (False), or decide
        from the memory budget at first use (None).
    block_size : int or None
        Columns per streamed block (None: planned from the memory budget, at most
        2048).
    shard : Shard, optional
        How the variants are split over ranks (default: not split).

    Attributes
    ----------
    passes : int
        How many times the genotypes were decoded (one per streamed product; one to
        load resident blocks).
    """

    def __init__(self, genotypes, index, device, dtype, resident=None, block_size=None,
                 shard=None):
        self.genotypes = genotypes
        self.shard = Shard() if shard is None else shard
        self.share = None  # positions in the user's genotypes of a sharded view's variants
        self.index = np.asarray(index, dtype=np.int64)
        self.device, self.dtype = device, dtype
        self.n = int(genotypes.n_samples)
        self.block_size = block_size
        self.resident = resident
        self.passes = 0
        self._blocks = None

    def _decide(self) -> bool:
        # resident when all n x m_eff standardized values fit the device's budget
        if self.resident is None:
            try:
                fits = plan_block(self.index.size, self.n * dtype_bytes(self.dtype),
                                  device=self.device)
                self.resident = fits >= self.index.size
            except MemoryBudgetError:
                self.resident = False
        return self.resident

    def _stream(self, variants):
        self.passes += 1
        block_size = self.block_size or plan_block(
            len(variants), self.n * dtype_bytes(self.dtype), live_copies=_STREAM_LIVE_COPIES,
            device=self.device, max_block=_STREAM_BLOCK_COLUMNS,
        )
        yield from self.genotypes.blocks(
            block_size=block_size, device=self.device, dtype=self.dtype,
            standardize=True, variants=variants,
        )

    def iter_blocks(self, subset=None):
        """Yield ``(positions, block)``; blocks cover ``subset`` (default all) and maybe more.

        Streaming reads exactly ``subset``; resident blocks cover all of ``index``,
        so consumers select their own columns from ``positions``.
        """
        if self._decide():
            if self._blocks is None:
                self._blocks = [(np.asarray(i, dtype=np.int64), b)
                                for i, b in self._stream(self.index)]
            yield from self._blocks
        else:
            for i, b in self._stream(self.index if subset is None else subset):
                yield np.asarray(i, dtype=np.int64), b


def _selector(positions: np.ndarray, members: np.ndarray, device):
    """Columns of a block (with variant ``positions``) that belong to sorted ``members``.

    Returns ``None`` (no column), ``slice`` (a contiguous run, no copy needed) or a
    long tensor of column indices.
    """
    if members.size == 0 or positions.size == 0:
        return None
    loc = np.searchsorted(members, positions)
    hit = loc < members.size
    hit[hit] = members[loc[hit]] == positions[hit]
    cols = np.flatnonzero(hit)
    if cols.size == 0:
        return None
    if cols[-1] - cols[0] + 1 == cols.size:
        return slice(int(cols[0]), int(cols[-1]) + 1)
    return torch.as_tensor(cols, device=device)


def _take(block: torch.Tensor, sel):
    """Columns ``sel`` (slice or index tensor) of a block."""
    return block[:, sel] if isinstance(sel, slice) else block.index_select(1, sel)


class _KernelState:
    """What a GRM operator needs, shared by every rebuild of it by linear_operator.

    Parameters
    ----------
    source : _BlockSource
        Where blocks come from.
    members : numpy.ndarray
        Sorted polymorphic positions of this kernel (a subset of ``source.index``:
        this rank's share when sharded).
    variants : numpy.ndarray or None
        The variant set as the user gave it (None: all), for ``sample_sq_norms``.
    n_requested : int
        Variants requested (polymorphic or not).
    stack : GRMStack, optional
        The stack this kernel is a component of, and its component number.
    all_members : numpy.ndarray, optional
        Every rank's members together, as positions in ``parent`` (default
        ``members``); ``m_eff`` is their count.
    parent : Genotypes, optional
        The user's genotypes when ``source.genotypes`` is this rank's view of its
        share (default ``source.genotypes``).
    """

    def __init__(self, source, members, variants, n_requested, stack=None, component=None,
                 all_members=None, parent=None):
        self.source = source
        self.parent = source.genotypes if parent is None else parent
        self.members = np.asarray(members, dtype=np.int64)
        self.all_members = self.members if all_members is None else np.asarray(all_members, dtype=np.int64)
        self.variants = variants
        self.n_requested = int(n_requested)
        self.m_eff = int(self.all_members.size)
        self.stack, self.component = stack, component
        self._sel_cache = {}
        self._diag = None
        self._dense = None

    n = property(lambda self: self.source.n, doc="Number of samples.")
    dtype = property(lambda self: self.source.dtype, doc="Working dtype.")
    device = property(lambda self: self.source.device, doc="Working device.")

    @property
    def whole(self) -> bool:
        """Whether this kernel uses every column of its source."""
        return self.members.size == self.source.index.size

    def _select(self, positions):
        key = positions.tobytes()
        if key not in self._sel_cache:
            self._sel_cache[key] = _selector(positions, self.members, self.source.device)
        return self._sel_cache[key]

    def blocks(self):
        """Yield this kernel's standardized column blocks ``Z_b`` (n x b_g)."""
        subset = None if self.whole else self.members
        for positions, block in self.source.iter_blocks(subset):
            if self.whole or positions.size == self.members.size and np.array_equal(
                positions, self.members
            ):
                yield block
                continue
            sel = self._select(positions)
            if sel is not None:
                yield _take(block, sel)

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        """``K x`` for an n x k tensor (no autograd)."""
        out = torch.zeros(self.source.n, x.shape[1], dtype=x.dtype, device=x.device)
        for z in self.blocks():
            out.addmm_(z, z.T @ x)
        return self.source.shard.reduce(out).div_(self.m_eff)

    def diagonal(self) -> torch.Tensor:
        """Exact diagonal (cached)."""
        if self._diag is None:
            src = self.source
            if self.stack is not None:
                self._diag = self.stack.diagonals()[self.component]
            elif src.shard.active:
                # this rank's members (view positions); a copy, as the genotypes cache the norms
                sq = src.genotypes.sample_sq_norms(variants=self.members, device=src.device,
                                                   dtype=src.dtype).clone()
                self._diag = src.shard.reduce(sq) / self.m_eff
            else:
                sq = src.genotypes.sample_sq_norms(
                    variants=self.variants, device=src.device, dtype=src.dtype
                )
                self._diag = torch.as_tensor(sq, device=src.device, dtype=src.dtype) / self.m_eff
        return self._diag

    def dense(self) -> torch.Tensor:
        """The n x n matrix (cached; small problems only)."""
        if self._dense is None:
            n, src = self.source.n, self.source
            out = torch.zeros(n, n, dtype=src.dtype, device=src.device)
            for z in self.blocks():
                out.addmm_(z, z.T)
            self._dense = src.shard.reduce(out).div_(self.m_eff)
        return self._dense


def _check_members(m_eff: int, n_req: int) -> None:
    if m_eff == 0:
        raise InputError(
            f"GRM: none of the {n_req} requested variants is polymorphic; "
            "a relationship matrix needs at least one"
        )


def _sharded_state(genotypes, requested, n_req, shard, device, dtype, resident, block_size):
    """State of a GRM whose variants are split over the ranks (a collective: every rank calls it).

    Each rank takes a contiguous share of the sorted requested variants as a view
    (statistics over the share only), keeps its polymorphic ones, and learns the
    others' from one all-gather of positions.
    """
    wanted = np.arange(genotypes.n_variants, dtype=np.int64) if requested is None else np.sort(requested)
    view, share = shard.share_view(genotypes, wanted)
    local = np.asarray(view.polymorphic_index(), dtype=np.int64)  # view positions, sorted
    members = np.concatenate(shard.gather(share[local]))
    _check_members(members.size, n_req)
    source = _BlockSource(view, local, device, dtype, resident, block_size, shard)
    source.share = share
    return _KernelState(source, local, requested, n_req, all_members=members, parent=genotypes)


class _KernelMatmul(Function):
    """``K @ rhs`` with ``K`` symmetric and constant: the gradient is ``K @ grad``."""

    @staticmethod
    def forward(ctx, state, rhs):
        ctx.state = state
        return state.matmul(rhs)

    @staticmethod
    def backward(ctx, grad):
        return None, _KernelMatmul.apply(ctx.state, grad)


def _kernel_matmul(state, rhs: torch.Tensor) -> torch.Tensor:
    """``K @ rhs`` for any rhs layout ((n,), (n, k), (..., n, k)), differentiable in rhs.

    ``state`` is any object with ``n``, ``dtype``, ``device`` and a no-grad
    ``matmul(x)`` of a constant symmetric ``K`` on n x k tensors.
    """
    x, restore = flatten_rhs(rhs, state.n)
    if x.dtype != state.dtype or x.device != state.device:
        raise InputError(
            f"right-hand side is {x.dtype} on {x.device}; the operator works in "
            f"{state.dtype} on {state.device} (pass dtype=/device= when building it)"
        )
    return restore(_KernelMatmul.apply(state, x))


class GRM(SymmetricOperator):
    """Genomic relationship matrix ``K = Z Z^T / m_eff``, matrix-free.

    Parameters
    ----------
    genotypes : Genotypes
        The genotype source (standardization statistics come from its cached
        ``stats``).
    variants : slice, index array or boolean mask, optional
        Variants in ``K`` (default all). Monomorphic ones are dropped; ``m_eff``
        counts the polymorphic rest.
    device : torch.device or str, optional
        Where blocks and products live (default CPU).
    dtype : torch.dtype, optional
        Default float64.
    resident : bool, optional
        Keep the standardized blocks on the device (True), stream them from the
        source on every product (False), or decide at first use from
        :func:`torchgenetics.memory.plan_block` (None, default).
    block_size : int, optional
        Columns per streamed block (default: the widest, up to 2048, that the
        memory budget allows).
    distributed : bool, default False
        Shard the variants over the ranks of ``group``: each rank reads only a
        contiguous share of the (sorted) requested variants, statistics included,
        and products are summed with one ``all_reduce`` (every rank must then make
        the same calls, construction included). Without a process group this is a
        world of one rank (no communication).
    group : ProcessGroup, optional
        The ranks sharing the variants (default: the world group); giving one
        implies ``distributed=True``.

    Attributes
    ----------
    m_eff : int
        Number of polymorphic variants used (over all ranks).
    n_monomorphic : int
        Requested variants dropped as monomorphic.
    passes : int
        Passes over the genotypes so far (shared with operators on the same source).

    Examples
    --------
    >>> from torchgenetics.genotypes import Genotypes
    >>> G = Genotypes.from_array(np.array([[0, 1, 2], [2, 1, 0], [1, 1, 1.]]))
    >>> K = GRM(G)
    >>> K.m_eff, K.n_monomorphic
    (2, 1)
    >>> torch.allclose(K.matmul(torch.eye(3, dtype=torch.float64)), K.to_dense())
    True
    """

    def __init__(self, genotypes=None, variants=None, device=None, dtype=None, resident=None,
                 block_size=None, *, distributed=False, group=None, _state=None):
        if _state is None:
            if genotypes is None:
                raise InputError("GRM needs a Genotypes source")
            device, dtype = resolve(device, dtype)
            m = genotypes.n_variants
            requested = None if variants is None else as_positions(variants, m, "GRM variants")
            n_req = m if requested is None else requested.size
            shard = Shard(distributed, group)
            if shard.active:
                _state = _sharded_state(genotypes, requested, n_req, shard, device, dtype,
                                        resident, block_size)
            else:
                members = np.sort(np.asarray(genotypes.polymorphic_index(requested), dtype=np.int64))
                _check_members(members.size, n_req)
                source = _BlockSource(genotypes, members, device, dtype, resident, block_size)
                _state = _KernelState(source, members, requested, n_req)
        super().__init__(_state=_state)
        self._state = _state

    # -- properties -------------------------------------------------------------------
    @property
    def dtype(self):
        return self._state.source.dtype

    @property
    def device(self):
        return self._state.source.device

    @property
    def m_eff(self) -> int:
        """Number of polymorphic variants in the kernel."""
        return self._state.m_eff

    @property
    def n_monomorphic(self) -> int:
        """Requested variants dropped because they are monomorphic."""
        return self._state.n_requested - self._state.m_eff

    @property
    def variant_index(self) -> np.ndarray:
        """Positions (in the Genotypes) of the variants used (on every rank)."""
        return self._state.all_members

    @property
    def local_variant_index(self) -> np.ndarray:
        """Positions (in the Genotypes) of the variants this rank streams (all when not sharded)."""
        s = self._state
        return s.members if s.source.share is None else s.source.share[s.members]

    @property
    def distributed(self) -> bool:
        """Whether the variants are sharded over a process group."""
        return self._state.source.shard.active

    @property
    def group(self):
        """The process group of a sharded operator (None: the world group)."""
        return self._state.source.shard.group

    @property
    def genotypes(self):
        """The genotype source (the whole of it, also when sharded)."""
        return self._state.parent

    @property
    def resident(self):
        """True/False once decided (at first product), None before."""
        return self._state.source.resident

    @property
    def passes(self) -> int:
        """Passes over the genotypes done by operators sharing this source."""
        return self._state.source.passes

    def local_blocks(self, block_size: int | None = None, dtype=None):
        """Stream the standardized genotype blocks of the variants this rank holds.

        All of the kernel's variants in one process; its share when sharded (streamed
        from this rank's view, whose statistics cover the share only), so that
        ``sum_r sum_b Z_b Z_b^T / m_eff`` over the ranks (:meth:`reduce`) is ``K``.

        Parameters
        ----------
        block_size : int, optional
            Columns per block (default as :meth:`Genotypes.blocks`).
        dtype : torch.dtype, optional
            dtype of the blocks (default the operator's).

        Returns
        -------
        iterator of (numpy.ndarray, torch.Tensor)
            Positions and (n, b) blocks, as :meth:`Genotypes.blocks` yields them.

        Examples
        --------
        >>> from torchgenetics.genotypes import Genotypes
        >>> K = GRM(Genotypes.from_array(np.array([[0, 1.], [2, 1.], [1, 0.]])))
        >>> Z = torch.cat([z for _, z in K.local_blocks()], dim=1)
        >>> torch.allclose(Z @ Z.T / K.m_eff, K.to_dense())
        True
        """
        s = self._state
        sharded = s.source.shard.active
        source = s.source.genotypes if sharded else s.parent
        variants = s.members if sharded else s.all_members
        return source.blocks(block_size=block_size, device=s.source.device,
                             dtype=s.source.dtype if dtype is None else dtype, standardize=True,
                             variants=variants)

    def reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the ranks holding this kernel's shares, in place (no-op in
        one process); returns it.

        Examples
        --------
        >>> from torchgenetics.genotypes import Genotypes
        >>> K = GRM(Genotypes.from_array(np.array([[0, 1.], [2, 1.], [1, 0.]])))
        >>> K.reduce(torch.ones(2)).tolist()
        [1.0, 1.0]
        """
        return self._state.source.shard.reduce(tensor)

    @property
    def stack_component(self):
        """``(stack, g)`` when this GRM is component ``g`` of a GRMStack, else None."""
        s = self._state
        return None if s.stack is None else (s.stack, s.component)

    # -- LinearOperator interface ----------------------------------------------------------
    def _size(self):
        n = self._state.source.n
        return torch.Size([n, n])

    def _matmul(self, rhs):
        return _kernel_matmul(self._state, rhs)

    def _diagonal(self):
        return self._state.diagonal()

    def to_dense(self):
        return self._state.dense()

    def to(self, *args, **kwargs):
        """A GRM on another device/dtype (same variants; a standalone copy).

        Examples
        --------
        >>> from torchgenetics.genotypes import Genotypes
        >>> G = Genotypes.from_array(np.array([[0, 1.], [2, 1.], [1, 0.]]))
        >>> GRM(G).to(torch.float32).dtype
        torch.float32
        """
        probe = torch.empty(0, dtype=self.dtype, device=self.device).to(*args, **kwargs)
        if probe.dtype == self.dtype and probe.device == self.device:
            return self
        src = self._state.source
        return GRM(self.genotypes, self._state.variants, device=probe.device, dtype=probe.dtype,
                   resident=src.resident, block_size=src.block_size,
                   distributed=src.shard.active, group=src.shard.group)

    def type(self, dtype):
        return self.to(dtype)

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device_id=None):
        return self.to("cuda" if device_id is None else f"cuda:{device_id}")

    def __repr__(self):
        shard = f", {self._state.source.shard!r}" if self.distributed else ""
        return (f"GRM(n={self.shape[0]}, m_eff={self.m_eff}, dtype={self.dtype}, "
                f"device={self.device}, resident={self.resident}{shard})")
