"""The exact restricted log-likelihood as a differentiable function.

``reml_loglik(theta, y, kernels, X)`` builds ``V`` densely and factorises it with
torch's Cholesky, so gradients flow to ``theta`` and to anything the kernels were
built from: :func:`combine_kernels` makes a kernel ``K(w) = sum_j w_j K_j`` with
learnable weights (the relaxed grouping GPU_REML's authors also shipped), normalised
to mean diagonal 1, so SNP-group weights can be learnt by gradient ascent on the
REML likelihood.
"""

from __future__ import annotations

import torch
from linear_operator.operators import LinearOperator

from ..errors import InputError
from ..operators import GRMStack
from .data import prepare_design

__all__ = ["reml_loglik", "combine_kernels"]


def _dense(k) -> torch.Tensor:
    if isinstance(k, LinearOperator):
        return k.to_dense()
    if torch.is_tensor(k):
        return k
    raise InputError(f"kernels must be tensors or LinearOperators, got {type(k).__name__}")


def _kernel_list(kernels):
    if isinstance(kernels, GRMStack):
        return list(kernels.components)
    if isinstance(kernels, dict):
        return list(kernels.values())
    if isinstance(kernels, (list, tuple)):
        out = []
        for k in kernels:
            out.extend(k.components if isinstance(k, GRMStack) else [k])
        return out
    return [kernels]


def combine_kernels(kernels, weights, normalize=True) -> torch.Tensor:
    """Dense ``K(w) = sum_j w_j K_j``, scaled to mean diagonal 1, differentiable in ``w``.

    Parameters
    ----------
    kernels : GRMStack, list of tensors / LinearOperators
        The J kernels (e.g. one GRM per SNP group).
    weights : torch.Tensor
        (J,) non-negative weights (e.g. ``softmax(logits)``).
    normalize : bool
        Divide by ``sum_j w_j tr(K_j) / n`` so the result has mean diagonal 1 and the
        weights only shape the kernel (its scale is left to the variance component).

    Returns
    -------
    torch.Tensor
        (n, n).

    Examples
    --------
    >>> K1, K2 = torch.eye(3, dtype=torch.float64), 2 * torch.ones(3, 3, dtype=torch.float64)
    >>> w = torch.tensor([1.0, 1.0], dtype=torch.float64, requires_grad=True)
    >>> K = combine_kernels([K1, K2], w)
    >>> round(float(K.detach().diagonal().mean()), 12)
    1.0
    >>> K.sum().backward(); w.grad.shape
    torch.Size([2])
    """
    dense = torch.stack([_dense(k) for k in _kernel_list(kernels)])
    w = weights.to(dtype=dense.dtype, device=dense.device).reshape(-1)
    if w.numel() != dense.shape[0]:
        raise InputError(f"{w.numel()} weights for {dense.shape[0]} kernels")
    K = torch.einsum("j,jab->ab", w, dense)
    if normalize:
        traces = dense.diagonal(dim1=-2, dim2=-1).mean(-1)
        K = K / (w * traces).sum()
    return K


def reml_loglik(theta, y, kernels, covariates=None) -> torch.Tensor:
    """Exact restricted log-likelihood ``-0.5 (log|V| + log|X'V^-1X| + y'Py)``, differentiable.

    The same quantity :func:`~torchgenetics.reml.reml` maximises (no ``2 pi``
    constant), for ``V = sum_g theta_g K_g + theta_e I``.

    Parameters
    ----------
    theta : torch.Tensor
        (G+1,) variances, residual last (may require grad).
    y : array-like (n,)
    kernels : tensor, LinearOperator, GRMStack or list of them
        G kernels; their dense forms may carry gradients (e.g. from
        :func:`combine_kernels` or ``GRMStack.weighted(w)``).
    covariates : array-like (n, c), optional
        An intercept is added unless a constant column is present.

    Returns
    -------
    torch.Tensor
        0-d, differentiable in ``theta`` and the kernels.

    Raises
    ------
    InputError
        Wrong number of variances, kernels of the wrong size, or a ``V`` that is not
        positive definite.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> Z = torch.randn(50, 20, generator=g, dtype=torch.float64)
    >>> y = torch.randn(50, generator=g, dtype=torch.float64)
    >>> theta = torch.tensor([0.3, 0.7], dtype=torch.float64, requires_grad=True)
    >>> ll = reml_loglik(theta, y, Z @ Z.T / 20)
    >>> ll.backward(); theta.grad.shape
    torch.Size([2])
    """
    Ks = [_dense(k) for k in _kernel_list(kernels)]
    theta = torch.as_tensor(theta) if not torch.is_tensor(theta) else theta
    if theta.dim() != 1 or theta.numel() != len(Ks) + 1:
        raise InputError(f"theta must hold {len(Ks) + 1} variances (one per kernel, then the residual), "
                         f"got shape {tuple(theta.shape)}")
    dtype, device = Ks[0].dtype, Ks[0].device
    design = prepare_design(y, covariates, dtype=dtype, device=device)
    n = design.n
    for g, K in enumerate(Ks):
        if K.shape != (n, n):
            raise InputError(f"kernel {g} is {tuple(K.shape)} but y has {n} samples")
    theta = theta.to(dtype=dtype, device=device)
    V = sum(t * K for t, K in zip(theta[:-1], Ks, strict=True)) + theta[-1] * torch.eye(n, dtype=dtype, device=device)
    L, info = torch.linalg.cholesky_ex(V)
    if int(info) != 0:
        raise InputError(f"V is not positive definite at theta = {theta.detach().tolist()}")
    Xy = torch.cat([design.X, design.y.unsqueeze(1)], 1)
    sol = torch.cholesky_solve(Xy, L)
    p = design.p
    M = Xy.mT @ sol
    LA = torch.linalg.cholesky(M[:p, :p])
    b = M[:p, p:]
    ypy = M[p, p] - (b * torch.cholesky_solve(b, LA)).sum()
    return -(L.diagonal().log().sum() + LA.diagonal().log().sum() + 0.5 * ypy)
