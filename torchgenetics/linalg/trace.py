"""Stochastic trace estimators: Hutchinson, Hutch++ and ``tr(A^{-1} K)``.

Each returns an :class:`~torchgenetics.linalg.probes.Estimate` whose standard
error comes from the spread of the per-probe samples, so callers can tell how
many probes they need.
"""

from __future__ import annotations

from typing import Sequence

import torch

from torchgenetics.errors import InputError
from torchgenetics.linalg._operator import MatmulLike, as_operator
from torchgenetics.linalg.cg import DEFAULT_MAX_ITER, DEFAULT_TOL, block_cg
from torchgenetics.linalg.probes import Estimate, as_generator, estimate_from_samples, make_probes

__all__ = ["hutchinson", "hutch_plus_plus", "trace_of_inverse_product"]


def _dtype_device(op, probes):
    if probes is not None:
        return probes.dtype, probes.device
    return (op.dtype or torch.float64), op.device


def _probe_block(op, probes, num_probes, generator, distribution, dtype=None, device=None):
    dt, dev = _dtype_device(op, probes)
    if probes is not None:
        if probes.dim() != 2 or probes.shape[0] != op.n:
            raise InputError(f"probes must be ({op.n}, k), got shape {tuple(probes.shape)}")
        return probes
    if num_probes is None or int(num_probes) < 1:
        raise InputError(f"num_probes must be a positive integer, got {num_probes}")
    return make_probes(op.n, int(num_probes), generator, dtype or dt, device or dev, distribution)


def hutchinson(
    A: MatmulLike,
    num_probes: int | None = 30,
    generator=None,
    probes: torch.Tensor | None = None,
    distribution: str = "rademacher",
    size: int | None = None,
    block_size: int | None = None,
) -> Estimate:
    """Hutchinson's estimate of ``tr(A)`` as the mean of ``z^T A z``.

    Parameters
    ----------
    A : Tensor (n, n), LinearOperator or callable
        Square matrix (need not be symmetric or definite).
    num_probes : int
        Number of probes (ignored when ``probes`` is given).
    generator : torch.Generator or int, optional
    probes : Tensor (n, k), optional
        Fixed probes (e.g. from :func:`~torchgenetics.linalg.probes.make_probes`).
    distribution : {"rademacher", "gaussian"}
    size : int, optional
        n for a callable ``A`` (otherwise taken from ``probes``).
    block_size : int, optional
        Apply ``A`` to at most this many probes at a time (memory).

    Returns
    -------
    Estimate
        ``value`` keeps the autograd graph of ``A`` (differentiable).

    Examples
    --------
    >>> A = torch.diag(torch.arange(1.0, 101.0, dtype=torch.float64))
    >>> est = hutchinson(A, num_probes=10, generator=0)
    >>> float(est.value), float(est.se)   # Rademacher probes are exact on a diagonal
    (5050.0, 0.0)
    """
    op = as_operator(
        A, size=size if size is not None else (probes.shape[0] if probes is not None else None)
    )
    Z = _probe_block(op, probes, num_probes, generator, distribution)
    step = Z.shape[1] if block_size is None else max(1, int(block_size))
    samples = torch.cat([(Zb * op.matmul(Zb)).sum(0) for Zb in Z.split(step, dim=1)])
    return estimate_from_samples(samples)


def hutch_plus_plus(
    A: MatmulLike,
    num_matvecs: int,
    generator=None,
    distribution: str = "rademacher",
    size: int | None = None,
    dtype: torch.dtype | None = None,
    device=None,
) -> Estimate:
    """Hutch++ estimate of ``tr(A)`` for symmetric ``A`` (Meyer et al., 2021).

    A third of the matvecs sketch the top range ``Q`` of ``A``; ``tr(Q^T A Q)`` is
    taken exactly and Hutchinson is applied only to the deflated remainder
    ``(I - QQ^T) A (I - QQ^T)``. The standard error is that of the remainder's
    Hutchinson part (the exact part adds no Monte Carlo error given ``Q``).

    Parameters
    ----------
    A : Tensor (n, n), LinearOperator or callable
    num_matvecs : int
        Total budget of products with ``A`` (>= 4): ``s = num_matvecs // 3`` for the
        sketch, ``s`` for ``A Q`` and the rest as residual probes.
    generator : torch.Generator or int, optional
    distribution : {"rademacher", "gaussian"}
    size : int, optional
        n for a callable ``A``.
    dtype, device : optional
        For callables (default float64 / CPU).

    Returns
    -------
    Estimate
        ``n`` is the number of residual probes.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> U = torch.randn(200, 5, dtype=torch.float64)
    >>> A = U @ U.T * 100 + torch.eye(200, dtype=torch.float64)   # low rank dominated
    >>> est = hutch_plus_plus(A, num_matvecs=30, generator=1)
    >>> abs(float(est.value) - float(A.trace())) < 4 * float(est.se) + 1e-8
    True
    """
    if int(num_matvecs) < 4:
        raise InputError(
            f"Hutch++ needs num_matvecs >= 4 (>= 2 residual probes), got {num_matvecs}"
        )
    op = as_operator(A, size=size)
    dt = dtype or op.dtype or torch.float64
    dev = device if device is not None else op.device
    s = int(num_matvecs) // 3
    g = int(num_matvecs) - 2 * s
    gen = as_generator(generator)  # one stream for both draws (an int seed would repeat)
    S = make_probes(op.n, s, gen, dt, dev, distribution)
    G = make_probes(op.n, g, gen, dt, dev, distribution)
    Q = torch.linalg.qr(op.matmul(S)).Q
    exact_part = (Q * op.matmul(Q)).sum()
    Gp = G - Q @ (Q.mT @ G)
    samples = (Gp * op.matmul(Gp)).sum(0)
    return estimate_from_samples(samples, offset=exact_part)


def trace_of_inverse_product(
    A: MatmulLike,
    K: MatmulLike | Sequence[MatmulLike],
    probes: torch.Tensor | None = None,
    num_probes: int | None = 30,
    generator=None,
    distribution: str = "rademacher",
    solves: torch.Tensor | None = None,
    preconditioner=None,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
    raise_on_fail: bool = False,
    size: int | None = None,
) -> Estimate | list[Estimate]:
    """Estimate ``tr(A^{-1} K)`` (or several, one per kernel) from shared probes.

    Each sample is ``(A^{-1} z)^T (K z)``, unbiased for symmetric ``A``. The solves
    ``A^{-1} Z`` are done once (one :func:`~torchgenetics.linalg.cg.block_cg` call)
    and reused for every kernel, which is what a REML score needs for
    ``tr(V^{-1} K_k)``, k = 1..G. Draw the probes once per fit (fixed seed) so the
    estimate is a deterministic function of the variance components.

    Parameters
    ----------
    A : Tensor (n, n), LinearOperator or callable
        SPD matrix (e.g. V).
    K : matrix-like or list of them
        Kernels; a list returns a list of estimates.
    probes : Tensor (n, k), optional
        Fixed probes; otherwise ``num_probes`` are drawn from ``generator``.
    solves : Tensor (n, k), optional
        Precomputed ``A^{-1} probes`` (skips the CG solve).
    preconditioner, tol, max_iter, raise_on_fail
        Passed to :func:`~torchgenetics.linalg.cg.block_cg`.
    size : int, optional
        n when both ``A`` and ``K`` are callables and no probes are given.

    Returns
    -------
    Estimate or list of Estimate

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> Zg = torch.randn(60, 30, dtype=torch.float64)
    >>> K = Zg @ Zg.T / 30
    >>> V = 0.5 * K + 0.5 * torch.eye(60, dtype=torch.float64)
    >>> est = trace_of_inverse_product(V, K, num_probes=200, generator=0)
    >>> exact = torch.linalg.solve(V, K).trace()
    >>> abs(float(est.value - exact)) < 4 * float(est.se)
    True
    """
    n = size if size is not None else (probes.shape[0] if probes is not None else None)
    op = as_operator(A, size=n)
    Z = _probe_block(op, probes, num_probes, generator, distribution)
    if solves is None:
        solves = block_cg(
            op, Z, preconditioner, tol, max_iter, raise_on_fail=raise_on_fail
        ).solution
    elif solves.shape != Z.shape:
        raise InputError(
            f"solves has shape {tuple(solves.shape)}; probes have shape {tuple(Z.shape)}"
        )
    kernels = list(K) if isinstance(K, (list, tuple)) else [K]
    out = []
    for Kk in kernels:
        kop = as_operator(Kk, size=op.n)
        out.append(estimate_from_samples((solves * kop.matmul(Z)).sum(0)))
    return out if isinstance(K, (list, tuple)) else out[0]
