"""The G kernels of a variance-component model, with products that share genotype passes.

:class:`KernelSet` accepts torchgen operators (GRM, the components of a GRMStack,
WeightedBlockGRM), any ``linear_operator.LinearOperator``, dense tensors or a
precomputed :class:`~torchgenetics.linalg.EigenKernel`. When every kernel is a
component of one :class:`~torchgenetics.operators.GRMStack`, ``[K_1 X, ..., K_G X]``
and ``sum_g theta_g K_g X`` each take a single pass over the genotypes.
"""

from __future__ import annotations

import numpy as np
import torch
from linear_operator.operators import DenseLinearOperator, LinearOperator

from ..errors import InputError
from ..linalg import EigenKernel
from ..operators import GRM, GRMStack

__all__ = ["KernelSet", "as_kernel_set"]


def _dense_operator(value, name, dtype, device) -> DenseLinearOperator:
    t = torch.as_tensor(value.detach() if torch.is_tensor(value) else np.array(value, dtype=np.float64))
    t = t.to(dtype=dtype, device=device)
    if t.dim() != 2 or t.shape[0] != t.shape[1]:
        raise InputError(f"kernel {name!r} must be a square n x n matrix, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise InputError(f"kernel {name!r} has non-finite entries (NaN or inf)")
    gap = float((t - t.T).abs().max()) if t.numel() else 0.0
    if gap > 1e-8 * max(1.0, float(t.abs().max())):
        raise InputError(f"kernel {name!r} is not symmetric (max |K - K^T| = {gap:.3g})")
    return DenseLinearOperator(0.5 * (t + t.T))


def _flatten(kernels, names):
    """List of (name, kernel) with GRMStacks expanded into their components."""
    if isinstance(kernels, dict):
        items = [(str(k), v) for k, v in kernels.items()]
    elif isinstance(kernels, (list, tuple)):
        items = [(None, k) for k in kernels]
    else:
        items = [(None, kernels)]
    out = []
    for name, k in items:
        if isinstance(k, GRMStack):
            prefix = f"{name}:" if name is not None else ""
            out.extend((prefix + c, K) for c, K in zip(k.names, k.components, strict=True))
        else:
            out.append((name, k))
    if not out:
        raise InputError("no kernel given: pass at least one GRM, GRMStack, LinearOperator or matrix")
    if names is not None:
        names = [str(x) for x in names]
        if len(names) != len(out):
            raise InputError(f"{len(names)} names for {len(out)} kernels (a GRMStack counts once per component)")
        out = [(nm, k) for nm, (_, k) in zip(names, out, strict=True)]
    default = ["G"] if len(out) == 1 else [f"G{g + 1}" for g in range(len(out))]
    out = [(nm if nm is not None else default[g], k) for g, (nm, k) in enumerate(out)]
    seen = set()
    for nm, _ in out:
        if nm in seen:
            raise InputError(f"kernel name {nm!r} is used twice; names must be unique")
        seen.add(nm)
    return out


class KernelSet:
    """Kernels ``K_1..K_G`` of one model, checked against n, dtype and device.

    Parameters
    ----------
    kernels : kernel, list of kernels, or dict name -> kernel
        Each a GRM, GRMStack (expands to its components), WeightedBlockGRM,
        LinearOperator, dense tensor/array, or (alone) an EigenKernel.
    n : int
        Number of samples every kernel must match.
    names : list of str, optional
        Component names (default from dict keys / stack names, else ``G`` or ``G1, G2, ...``).
    dtype, device : optional
        Working dtype/device. Default dtype: the first operator kernel's, else
        float64; default device: the first operator's or tensor's, else CPU.

    Attributes
    ----------
    names : list of str
    operators : list of LinearOperator (empty for an EigenKernel)
    eigen : EigenKernel or None
    products : int
        Kernel products done so far (each one genotype pass when the kernels share a stack).

    Examples
    --------
    >>> ks = KernelSet([torch.eye(3, dtype=torch.float64)], n=3)
    >>> ks.names, ks.G, ks.stacked(torch.ones(3, 1, dtype=torch.float64)).shape
    (['G'], 1, torch.Size([1, 3, 1]))
    """

    def __init__(self, kernels, n: int, names=None, dtype=None, device=None):
        items = _flatten(kernels, names)
        first = next((k for _, k in items if isinstance(k, (LinearOperator, EigenKernel))), None)
        if isinstance(first, EigenKernel):
            first = first.eigenvalues
        if dtype is None:
            dtype = first.dtype if first is not None else torch.float64
        if device is None:
            placed = first if first is not None else next((k for _, k in items if torch.is_tensor(k)), None)
            device = placed.device if placed is not None else torch.device("cpu")
        self.dtype, self.device, self.n = dtype, torch.device(device), int(n)
        self.names = [nm for nm, _ in items]
        self.eigen = None
        ops = []
        for nm, k in items:
            if isinstance(k, EigenKernel):
                if len(items) != 1:
                    raise InputError("an EigenKernel can only be used alone (one variance component)")
                self._check_size(nm, k.n, k.n)
                if k.eigenvalues.dtype != dtype or k.eigenvalues.device != self.device:
                    k = EigenKernel(k.eigenvectors.to(dtype=dtype, device=self.device),
                                    k.eigenvalues.to(dtype=dtype, device=self.device))
                self.eigen = k
                continue
            if not isinstance(k, LinearOperator):
                if not (torch.is_tensor(k) or isinstance(k, np.ndarray)):
                    raise InputError(
                        f"kernel {nm!r} is a {type(k).__name__}; expected a GRM, GRMStack, "
                        "WeightedBlockGRM, LinearOperator or an n x n matrix"
                    )
                k = _dense_operator(k, nm, dtype, self.device)
            elif isinstance(k, DenseLinearOperator) and (k.dtype != dtype or k.device != self.device):
                k = DenseLinearOperator(k.to_dense().to(dtype=dtype, device=self.device))
            if k.dim() != 2 or k.shape[0] != k.shape[1]:
                raise InputError(f"kernel {nm!r} must be square n x n, got shape {tuple(k.shape)}")
            self._check_size(nm, k.shape[0], k.shape[1])
            if k.dtype != dtype or k.device != self.device:
                raise InputError(
                    f"kernel {nm!r} works in {k.dtype} on {k.device} but the fit uses {dtype} on "
                    f"{self.device}; build the kernel with dtype=/device= or pass matching ones to reml()"
                )
            ops.append(k)
        self.operators = ops
        self.products = 0
        self._stack, self._ids = self._shared_stack()
        self._traces = None

    def _check_size(self, name, rows, cols):
        if rows != self.n or cols != self.n:
            raise InputError(
                f"kernel {name!r} is {rows} x {cols} but y has {self.n} samples; every kernel must be "
                f"{self.n} x {self.n} over the same samples in the same order"
            )

    def _shared_stack(self):
        infos = [getattr(k, "stack_component", None) for k in self.operators]
        if not infos or any(i is None for i in infos):
            return None, None
        stack = infos[0][0]
        if any(i[0] is not stack for i in infos):
            return None, None
        return stack, torch.as_tensor([i[1] for i in infos], device=self.device)

    @property
    def G(self) -> int:
        """Number of kernels."""
        return 1 if self.eigen is not None else len(self.operators)

    @property
    def shares_stack(self) -> bool:
        """True when all kernels are components of one GRMStack (one pass per product)."""
        return self._stack is not None

    @property
    def stack(self):
        """The shared GRMStack, or None."""
        return self._stack

    # -- products ------------------------------------------------------------------------
    def stacked(self, X: torch.Tensor) -> torch.Tensor:
        """``[K_1 X, ..., K_G X]`` of shape (G, n, k); one genotype pass for a shared stack."""
        self.products += 1
        if self.eigen is not None:
            Q, lam = self.eigen.eigenvectors, self.eigen.eigenvalues
            return (Q @ (lam.unsqueeze(-1) * (Q.mT @ X))).unsqueeze(0)
        if self._stack is not None:
            return self._stack.stacked_matmul(X)[self._ids]
        return torch.stack([_mm(k, X) for k in self.operators])

    def weighted(self, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        """``sum_g theta_g K_g X``; one genotype pass for a shared stack."""
        self.products += 1
        if self.eigen is not None:
            Q, lam = self.eigen.eigenvectors, self.eigen.eigenvalues
            return Q @ ((theta[0] * lam).unsqueeze(-1) * (Q.mT @ X))
        if self._stack is None:
            return sum(t * _mm(k, X) for t, k in zip(theta, self.operators, strict=True))
        full = torch.zeros(self._stack.n_components, dtype=theta.dtype, device=theta.device)
        return self._stack.weighted_matmul(full.index_add(0, self._ids, theta), X)

    # -- exact forms -------------------------------------------------------------------------
    def dense(self) -> list:
        """The kernels as dense n x n tensors (exact path only)."""
        if self.eigen is not None:
            Q, lam = self.eigen.eigenvectors, self.eigen.eigenvalues
            return [(Q * lam) @ Q.mT]
        return [k.to_dense() for k in self.operators]

    def has_cheap_traces(self) -> bool:
        """Whether every ``tr(K_g)`` is exact without n products."""
        return self.eigen is not None or all(
            type(k)._diagonal is not LinearOperator._diagonal for k in self.operators)

    def traces(self) -> torch.Tensor:
        """Exact ``tr(K_g)``, shape (G,) (one pass for GRMs; cached)."""
        if self._traces is None:
            if self.eigen is not None:
                self._traces = self.eigen.eigenvalues.sum().reshape(1)
            elif self._stack is not None:
                self._traces = self._stack.diagonals()[self._ids].sum(-1)
            else:
                self._traces = torch.stack([k.diagonal().sum() for k in self.operators])
        return self._traces

    def set_traces(self, traces: torch.Tensor) -> None:
        """Use given (e.g. estimated) traces instead of exact ones."""
        self._traces = traces.reshape(self.G).to(dtype=self.dtype, device=self.device)

    def low_rank_factor(self):
        """``(Z, m)`` with ``K = Z Z^T / m`` for one GRM with m < n (Woodbury case), else None."""
        if self.eigen is not None or len(self.operators) != 1:
            return None
        k = self.operators[0]
        if not isinstance(k, GRM) or k.m_eff >= self.n:
            return None
        Z = k.genotypes.standardized(variants=k.variant_index, device=self.device, dtype=self.dtype)
        return Z, k.m_eff

    def eigen_kernel(self) -> EigenKernel:
        """One kernel in spectral form: given, thin SVD of a low-rank GRM, or eigh of the dense kernel."""
        if self.eigen is not None:
            return self.eigen
        if len(self.operators) != 1:
            raise InputError("the spectral path needs exactly one kernel")
        factor = self.low_rank_factor()
        if factor is not None:
            return EigenKernel.from_factor(factor[0], scale=factor[1])
        return EigenKernel.from_kernel(self.operators[0].to_dense())


def _mm(k: LinearOperator, X: torch.Tensor) -> torch.Tensor:
    out = k.matmul(X)
    return out.to_dense() if isinstance(out, LinearOperator) else out


def as_kernel_set(kernels, n, names=None, dtype=None, device=None) -> KernelSet:
    """Build a :class:`KernelSet` (returned unchanged if it already is one).

    Examples
    --------
    >>> as_kernel_set({"a": torch.eye(2, dtype=torch.float64)}, n=2).names
    ['a']
    """
    if isinstance(kernels, KernelSet):
        if kernels.n != n:
            raise InputError(f"the kernels are {kernels.n} x {kernels.n} but y has {n} samples")
        return kernels
    return KernelSet(kernels, n, names=names, dtype=dtype, device=device)
