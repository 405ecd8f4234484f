"""The mixed-model covariance ``V = sum_g s2_g K_g + s2_e I`` as one LinearOperator.

Differentiable in the variances (they are tensors in the operator's
representation), never materialised unless ``to_dense()`` is asked for, and, when
every kernel is a component of the same :class:`~torchgenetics.operators.GRMStack`,
multiplied in one pass over the genotypes.
"""

from __future__ import annotations

import torch
from linear_operator.operators import LinearOperator

from ..errors import InputError
from ._common import SymmetricOperator, flatten_rhs

__all__ = ["Covariance", "covariance"]


def _shared_stack(kernels):
    """The GRMStack all kernels are components of (and their component ids), or None."""
    infos = [getattr(k, "stack_component", None) for k in kernels]
    if not infos or any(i is None for i in infos):
        return None, None
    stack = infos[0][0]
    if any(i[0] is not stack for i in infos):
        return None, None
    return stack, [i[1] for i in infos]


class Covariance(SymmetricOperator):
    """``V = sum_g variances[g] * kernels[g] + residual * I``.

    Build it with :func:`covariance`. The variances are part of the operator's
    representation, so ``inv_quad_logdet``, ``solve`` and ``matmul`` propagate
    gradients to them (exactly, via :meth:`_bilinear_derivative`).

    Parameters
    ----------
    *kernels : LinearOperator
        Square n x n symmetric kernels.
    variances : torch.Tensor, shape (G,)
        One variance per kernel.
    residual : torch.Tensor, shape ()
        Residual variance.

    Examples
    --------
    >>> from linear_operator.operators import DenseLinearOperator
    >>> K = DenseLinearOperator(torch.eye(3, dtype=torch.float64))
    >>> V = Covariance(K, variances=torch.tensor([2.0], dtype=torch.float64),
    ...                residual=torch.tensor(1.0, dtype=torch.float64))
    >>> V.diagonal().tolist()
    [3.0, 3.0, 3.0]
    """

    def __init__(self, *kernels, variances, residual):
        super().__init__(*kernels, variances=variances, residual=residual)
        self._kernels = kernels
        self.variances = variances
        self.residual = residual
        self._n = int(kernels[0].shape[-1])
        self._stack, self._stack_ids = _shared_stack(kernels)

    @property
    def kernels(self) -> tuple:
        """The kernels K_g."""
        return self._kernels

    def _size(self):
        return torch.Size([self._n, self._n])

    def _stack_theta(self, variances):
        theta = torch.zeros(self._stack.n_components, dtype=variances.dtype,
                            device=variances.device)
        ids = torch.as_tensor(self._stack_ids, device=variances.device)
        return theta.index_add(0, ids, variances)

    def _matmul(self, rhs):
        x, restore = flatten_rhs(rhs, self._n)
        out = self.residual * x
        if self._stack is not None:
            out = out + self._stack.weighted_matmul(self._stack_theta(self.variances), x)
        else:
            for s2, k in zip(self.variances, self._kernels, strict=True):
                out = out + s2 * k._matmul(x)
        return restore(out)

    def _bilinear_derivative(self, left_vecs, right_vecs):
        # d(u^T V v)/d s2_g = u^T K_g v and d/d s2_e = u^T v, summed over columns
        left, _ = flatten_rhs(left_vecs, self._n)
        right, _ = flatten_rhs(right_vecs, self._n)
        with torch.no_grad():
            if self._stack is not None:
                kv = self._stack.stacked_matmul(right.detach())[self._stack_ids]
                d_var = (kv * left.detach()).sum(dim=(-2, -1))
            else:
                d_var = torch.stack([(left.detach() * k._matmul(right.detach())).sum()
                                     for k in self._kernels])
            d_res = (left.detach() * right.detach()).sum()
        kernel_grads = []
        for s2, k in zip(self.variances.detach(), self._kernels, strict=True):
            if len(k.representation()):
                kernel_grads.extend(k._bilinear_derivative(left * s2, right))
        return (*kernel_grads, d_res.reshape(self.residual.shape),
                d_var.to(self.variances.dtype).reshape(self.variances.shape))

    def _diagonal(self):
        d = self.residual * torch.ones(self._n, dtype=self.dtype, device=self.device)
        for s2, k in zip(self.variances, self._kernels, strict=True):
            d = d + s2 * k._diagonal()
        return d

    def to_dense(self):
        out = self.residual * torch.eye(self._n, dtype=self.dtype, device=self.device)
        for s2, k in zip(self.variances, self._kernels, strict=True):
            out = out + s2 * k.to_dense()
        return out


def covariance(kernels, variances, residual) -> Covariance:
    """The covariance ``V = sum_g variances[g] K_g + residual I`` as a LinearOperator.

    Parameters
    ----------
    kernels : sequence of LinearOperator
        n x n symmetric kernels (GRM, WeightedBlockGRM, GRMStack components, any
        LinearOperator). When all are components of one GRMStack, ``V @ v`` takes a
        single pass over the genotypes.
    variances : sequence of float or torch.Tensor
        One variance per kernel; tensors with ``requires_grad`` receive gradients.
    residual : float or torch.Tensor
        Residual variance ``s2_e``.

    Returns
    -------
    Covariance
        Works with ``inv_quad_logdet``, ``solve``, ``diagonal`` and ``to_dense``.

    Examples
    --------
    >>> from linear_operator.operators import DenseLinearOperator
    >>> K = DenseLinearOperator(torch.eye(2, dtype=torch.float64))
    >>> s2 = torch.tensor([0.5], dtype=torch.float64, requires_grad=True)
    >>> V = covariance([K], s2, 0.5)
    >>> _, logdet = V.inv_quad_logdet(logdet=True)
    >>> logdet.backward(); s2.grad.tolist()
    [2.0]
    """
    kernels = list(kernels)
    if not kernels:
        raise InputError("covariance needs at least one kernel")
    for g, k in enumerate(kernels):
        if not isinstance(k, LinearOperator):
            raise InputError(f"kernel {g} is a {type(k).__name__}, expected a LinearOperator")
        if k.dim() != 2 or k.shape[0] != k.shape[1]:
            raise InputError(f"kernel {g} must be square n x n, got shape {tuple(k.shape)}")
        if k.shape != kernels[0].shape:
            raise InputError(
                f"kernel {g} has shape {tuple(k.shape)} but kernel 0 has {tuple(kernels[0].shape)}"
            )
    dtype, device = kernels[0].dtype, kernels[0].device
    if isinstance(variances, torch.Tensor):
        theta = variances.to(dtype=dtype, device=device).reshape(-1)
    else:
        theta = torch.stack([torch.as_tensor(v, dtype=dtype, device=device).reshape(())
                             for v in variances])
    if theta.numel() != len(kernels):
        raise InputError(f"{theta.numel()} variances for {len(kernels)} kernels")
    s2e = torch.as_tensor(residual, dtype=dtype, device=device)
    if s2e.numel() != 1:
        raise InputError(f"residual must be one number, got shape {tuple(s2e.shape)}")
    return Covariance(*kernels, variances=theta, residual=s2e.reshape(()))
