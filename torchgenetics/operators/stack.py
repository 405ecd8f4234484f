"""Several GRMs over sets of the variants of one genotype source, multiplied in one pass.

For components ``K_g = Z_g Z_g^T / m_g`` (``Z_g`` the standardized columns of set
``g``), one sweep over the blocks of the union ``Z`` gives all of them: per block,
``P = Z_b^T V`` is computed once and its rows are scattered to the components that
own the block's columns. ``sum_g theta_g K_g V`` needs just ``Z_b (w * P)`` with
per-column weights ``w_j = sum_{g owns j} theta_g / m_g``.

With ``distributed=True`` each rank sweeps a contiguous share of the union and
the per-rank sums are added with one ``all_reduce`` per product (all components
at once), as for :class:`~torchgenetics.operators.GRM`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.autograd import Function

from ..errors import ComponentSpecError, InputError
from ._common import Shard, as_positions, flatten_rhs, resolve
from .grm import GRM, _BlockSource, _KernelState, _selector, _take

__all__ = ["GRMStack"]


class _Stacked(Function):
    """``[K_1 V, ..., K_G V]``; adjoint: ``sum_g K_g Y_g``."""

    @staticmethod
    def forward(ctx, stack, x):
        ctx.stack = stack
        return stack._stacked(x)

    @staticmethod
    def backward(ctx, grad):
        return None, _Combine.apply(ctx.stack, grad)


class _Combine(Function):
    """``sum_g K_g Y_g`` for ``Y`` of shape (G, n, k); adjoint: :class:`_Stacked`."""

    @staticmethod
    def forward(ctx, stack, y):
        ctx.stack = stack
        return stack._combine(y)

    @staticmethod
    def backward(ctx, grad):
        return None, _Stacked.apply(ctx.stack, grad)


class _Weighted(Function):
    """``sum_g theta_g K_g V``, differentiable in ``theta`` and ``V``."""

    @staticmethod
    def forward(ctx, stack, theta, x):
        ctx.stack = stack
        ctx.save_for_backward(theta, x)
        return stack._weighted(theta, x)

    @staticmethod
    def backward(ctx, grad):
        theta, x = ctx.saved_tensors
        g_theta = g_x = None
        if ctx.needs_input_grad[2]:
            g_x = _Weighted.apply(ctx.stack, theta, grad)
        if ctx.needs_input_grad[1]:
            g_theta = (_Stacked.apply(ctx.stack, x) * grad).sum(dim=(1, 2))
        return None, g_theta, g_x


class GRMStack:
    """GRMs ``K_1..K_G`` over variant sets of one genotype source, sharing its blocks.

    Parameters
    ----------
    genotypes : Genotypes
        The source.
    partition : list of index arrays, or a ComponentSpec-like object with ``.indices``
        Variant positions of each component (sets are usually disjoint; a variant
        listed in several components counts in each). Monomorphic variants are
        dropped per component; a component left with none raises
        :class:`~torchgenetics.errors.ComponentSpecError`.
    device, dtype : optional
        Default CPU, float64.
    resident : bool, optional
        Keep the union's standardized blocks on the device (True), stream (False), or
        decide from the memory budget at first use (None).
    block_size : int, optional
        Columns per streamed block (default: the widest, up to 2048, that the
        memory budget allows).
    names : list of str, optional
        Component names (default: ``partition.names`` or ``component_000``, ...).
    distributed : bool, default False
        Shard the union of the components' variants over the ranks of ``group``
        (one ``all_reduce`` per product, for all components at once; every rank
        must make the same calls).
    group : ProcessGroup, optional
        Default the world group; giving one implies ``distributed=True``.

    Attributes
    ----------
    names : list of str
    m_eff : list of int
        Polymorphic variants per component (over all ranks).

    Examples
    --------
    >>> from torchgenetics.genotypes import Genotypes
    >>> G = Genotypes.from_array(np.array([[0, 1, 2, 1], [2, 1, 0, 0], [1, 0, 1, 2.]]))
    >>> S = GRMStack(G, [[0, 1], [2, 3]])
    >>> V = torch.eye(3, dtype=torch.float64)
    >>> KV = S.stacked_matmul(V)                       # one pass: (G, n, k)
    >>> torch.allclose(KV[1], S.components[1].to_dense())
    True
    >>> theta = torch.tensor([0.3, 0.7], dtype=torch.float64)
    >>> torch.allclose(S.weighted_matmul(theta, V), 0.3 * KV[0] + 0.7 * KV[1])
    True
    """

    def __init__(self, genotypes, partition, device=None, dtype=None, resident=None,
                 block_size=None, names=None, *, distributed=False, group=None):
        device, dtype = resolve(device, dtype)
        if hasattr(partition, "indices"):
            sets = list(partition.indices)
            if names is None and getattr(partition, "names", None) is not None:
                names = list(partition.names)
        else:
            sets = list(partition)
        if not sets:
            raise ComponentSpecError("GRMStack needs at least one component")
        names = [f"component_{g:03d}" for g in range(len(sets))] if names is None else list(names)
        if len(names) != len(sets):
            raise ComponentSpecError(f"{len(names)} names for {len(sets)} components")
        m = genotypes.n_variants
        requested = []
        for name, s in zip(names, sets, strict=True):
            try:
                requested.append(as_positions(s, m, f"component {name!r}"))
            except InputError as err:
                raise ComponentSpecError(str(err)) from None
        shard = Shard(distributed, group)
        source, mine, members = self._split(genotypes, requested, shard)
        for name, pos, poly in zip(names, requested, members, strict=True):
            if poly.size == 0:
                raise ComponentSpecError(
                    f"component {name!r}: none of its {pos.size} variants is polymorphic"
                )
        self.names = names
        self.m_eff = [int(p.size) for p in members]
        self._source = _BlockSource(source[0], source[1], device, dtype, resident, block_size, shard)
        self._source.share = source[2]
        self._states = [_KernelState(self._source, q, r, r.size, stack=self, component=g,
                                     all_members=p, parent=genotypes)
                        for g, (q, p, r) in enumerate(zip(mine, members, requested, strict=True))]
        self._members = mine
        self._m = torch.tensor(self.m_eff, dtype=dtype, device=device)
        self._plans = {}
        self._diags = None
        self._components = None

    @staticmethod
    def _split(genotypes, requested, shard):
        """Where blocks come from and which variants each component has.

        Returns ``(genotypes, union, share)`` for the block source, this rank's
        sorted members of each component (positions in the source's genotypes) and
        every rank's members of each component (positions in ``genotypes``). When
        sharded, the source is this rank's view of its share of the requested
        union (statistics over the share only) and the members come from one
        all-gather; ``share`` maps view positions to ``genotypes`` (None otherwise).
        """
        if not shard.active:
            members = [np.sort(np.asarray(genotypes.polymorphic_index(pos), dtype=np.int64))
                       for pos in requested]
            return (genotypes, np.unique(np.concatenate(members)), None), members, members
        view, share = shard.share_view(genotypes, np.unique(np.concatenate(requested)))
        local = np.asarray(view.polymorphic_index(), dtype=np.int64)  # view positions, sorted
        poly = share[local]
        mine = [np.searchsorted(share, np.intersect1d(pos, poly)) for pos in requested]
        gathered = shard.gather([share[q] for q in mine])
        members = [np.concatenate([part[g] for part in gathered]) for g in range(len(requested))]
        return (view, local, share), mine, members

    # -- properties -------------------------------------------------------------------
    @property
    def n_components(self) -> int:
        """Number of components G."""
        return len(self._members)

    @property
    def n_samples(self) -> int:
        """Number of samples n."""
        return self._source.n

    @property
    def dtype(self):
        return self._source.dtype

    @property
    def device(self):
        return self._source.device

    @property
    def passes(self) -> int:
        """Passes over the genotypes done so far by the stack and its components."""
        return self._source.passes

    @property
    def distributed(self) -> bool:
        """Whether the variants are sharded over a process group."""
        return self._source.shard.active

    @property
    def group(self):
        """The process group of a sharded stack (None: the world group)."""
        return self._source.shard.group

    @property
    def block_size(self):
        """Columns per streamed block (None: planned from the memory budget)."""
        return self._source.block_size

    @property
    def resident(self):
        """True/False once decided (at first product), None before."""
        return self._source.resident

    @property
    def components(self) -> list[GRM]:
        """The G component GRMs (LinearOperators), sharing this stack's blocks.

        Examples
        --------
        >>> from torchgenetics.genotypes import Genotypes
        >>> G = Genotypes.from_array(np.array([[0, 1, 2], [2, 1, 0], [1, 0, 1.]]))
        >>> [K.m_eff for K in GRMStack(G, [[0], [1, 2]]).components]
        [1, 2]
        """
        if self._components is None:
            self._components = [GRM(_state=s) for s in self._states]
        return self._components

    # -- one-pass kernels (no autograd) -----------------------------------------------
    def _plan(self, positions):
        """Per block: column selector of each component and the b x G membership matrix."""
        key = positions.tobytes()
        if key not in self._plans:
            src = self._source
            sels = [_selector(positions, p, src.device) for p in self._members]
            member = np.zeros((positions.size, len(sels)), dtype=np.float64)
            for g, p in enumerate(self._members):
                if p.size:
                    loc = np.searchsorted(p, positions).clip(max=p.size - 1)
                    member[:, g] = p[loc] == positions
            self._plans[key] = (sels, torch.as_tensor(member, dtype=src.dtype, device=src.device))
        return self._plans[key]

    def _stacked(self, x):
        out = torch.zeros(self.n_components, self.n_samples, x.shape[1], dtype=x.dtype,
                          device=x.device)
        for positions, z in self._source.iter_blocks():
            sels, _ = self._plan(positions)
            p = z.T @ x
            for g, sel in enumerate(sels):
                if sel is None:
                    continue
                if isinstance(sel, slice):
                    out[g].addmm_(z[:, sel], p[sel])
                else:
                    out[g].addmm_(z.index_select(1, sel), p.index_select(0, sel))
        return self._source.shard.reduce(out).div_(self._m.view(-1, 1, 1))

    def _combine(self, y):
        out = torch.zeros(self.n_samples, y.shape[2], dtype=y.dtype, device=y.device)
        for positions, z in self._source.iter_blocks():
            sels, _ = self._plan(positions)
            for g, sel in enumerate(sels):
                if sel is not None:
                    zg = _take(z, sel)
                    out.addmm_(zg, zg.T @ y[g], alpha=1.0 / self.m_eff[g])
        return self._source.shard.reduce(out)

    def _weighted(self, theta, x):
        coef = theta / self._m
        out = torch.zeros(self.n_samples, x.shape[1], dtype=x.dtype, device=x.device)
        for positions, z in self._source.iter_blocks():
            _, member = self._plan(positions)
            w = member @ coef
            out.addmm_(z, (z.T @ x).mul_(w.unsqueeze(1)))
        return self._source.shard.reduce(out)

    def _check_rhs(self, x):
        if x.dtype != self.dtype or x.device != self.device:
            raise InputError(
                f"right-hand side is {x.dtype} on {x.device}; the stack works in "
                f"{self.dtype} on {self.device} (pass dtype=/device= when building it)"
            )

    # -- public products ----------------------------------------------------------------
    def stacked_matmul(self, V: torch.Tensor) -> torch.Tensor:
        """``[K_1 V, ..., K_G V]`` in one pass over the genotypes.

        Parameters
        ----------
        V : torch.Tensor
            Right-hand side, shape (n,), (n, k) or (..., n, k).

        Returns
        -------
        torch.Tensor
            Shape ``(G, *V.shape)``; differentiable in ``V``.

        Examples
        --------
        >>> from torchgenetics.genotypes import Genotypes
        >>> G = Genotypes.from_array(np.array([[0, 1, 2], [2, 1, 0], [1, 0, 1.]]))
        >>> GRMStack(G, [[0], [1, 2]]).stacked_matmul(torch.ones(3, 4, dtype=torch.float64)).shape
        torch.Size([2, 3, 4])
        """
        x, restore = flatten_rhs(V, self.n_samples)
        self._check_rhs(x)
        out = _Stacked.apply(self, x)
        return torch.stack([restore(o) for o in out.unbind(0)])

    def weighted_matmul(self, theta, V: torch.Tensor) -> torch.Tensor:
        """``sum_g theta_g K_g V`` in one pass over the genotypes.

        Parameters
        ----------
        theta : sequence of float or torch.Tensor, shape (G,)
            Component weights; differentiable.
        V : torch.Tensor
            Right-hand side, shape (n,), (n, k) or (..., n, k); differentiable.

        Returns
        -------
        torch.Tensor
            Same shape as ``V``.

        Examples
        --------
        >>> from torchgenetics.genotypes import Genotypes
        >>> G = Genotypes.from_array(np.array([[0, 1, 2], [2, 1, 0], [1, 0, 1.]]))
        >>> S = GRMStack(G, [[0], [1, 2]])
        >>> S.weighted_matmul([1.0, 0.0], torch.ones(3, dtype=torch.float64)).shape
        torch.Size([3])
        """
        x, restore = flatten_rhs(V, self.n_samples)
        self._check_rhs(x)
        theta = self._theta(theta)
        return restore(_Weighted.apply(self, theta, x))

    def _theta(self, theta) -> torch.Tensor:
        if isinstance(theta, torch.Tensor):
            t = theta.to(dtype=self.dtype, device=self.device).reshape(-1)
        else:
            t = torch.as_tensor(np.asarray(theta, dtype=np.float64), dtype=self.dtype,
                                device=self.device).reshape(-1)
        if t.numel() != self.n_components:
            raise InputError(f"{t.numel()} weights for {self.n_components} components")
        return t

    def weighted(self, theta):
        """``sum_g theta_g K_g`` as a LinearOperator whose products take one pass.

        Parameters
        ----------
        theta : sequence of float or torch.Tensor, shape (G,)
            Component weights (tensors with ``requires_grad`` receive gradients).

        Returns
        -------
        Covariance
            With zero residual variance.

        Examples
        --------
        >>> from torchgenetics.genotypes import Genotypes
        >>> G = Genotypes.from_array(np.array([[0, 1, 2], [2, 1, 0], [1, 0, 1.]]))
        >>> S = GRMStack(G, [[0], [1, 2]])
        >>> K = S.weighted([0.5, 0.5])
        >>> torch.allclose(K.to_dense(), 0.5 * S.components[0].to_dense() + 0.5 * S.components[1].to_dense())
        True
        """
        from .covariance import Covariance

        zero = torch.zeros((), dtype=self.dtype, device=self.device)
        return Covariance(*self.components, variances=self._theta(theta), residual=zero)

    def diagonals(self) -> torch.Tensor:
        """Exact diagonals of all components, shape (G, n), in one pass (cached).

        Examples
        --------
        >>> from torchgenetics.genotypes import Genotypes
        >>> G = Genotypes.from_array(np.array([[0, 1, 2], [2, 1, 0], [1, 0, 1.]]))
        >>> GRMStack(G, [[0], [1, 2]]).diagonals().shape
        torch.Size([2, 3])
        """
        if self._diags is None:
            acc = torch.zeros(self.n_samples, self.n_components, dtype=self.dtype,
                              device=self.device)
            for positions, z in self._source.iter_blocks():
                _, member = self._plan(positions)
                acc.addmm_(z.square(), member)
            self._diags = (self._source.shard.reduce(acc) / self._m).T.contiguous()
        return self._diags

    def __repr__(self):
        shard = f", {self._source.shard!r}" if self.distributed else ""
        return (f"GRMStack(n={self.n_samples}, components={self.n_components}, "
                f"m_eff={self.m_eff}, resident={self.resident}{shard})")
