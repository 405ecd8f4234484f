"""Stochastic Lanczos quadrature (SLQ) for ``log|A|``.

For a probe ``u`` with identity covariance, ``u^T log(A) u`` is approximated by
Gauss quadrature on the Lanczos tridiagonal ``T`` started at ``u / ||u||``:
``||u||^2 sum_i tau_i^2 log(theta_i)`` with ``T = W diag(theta) W^T`` and
``tau_i = W[0, i]`` (Ubaru, Chen & Saad, 2017). The mean over probes estimates
``tr log A = log|A|``; its standard error comes from the spread of the samples.

With a preconditioner ``M`` (exact ``log|M|`` and a root ``F F^T = M``),
``log|A| = log|M| + tr log(M^{-1/2} A M^{-1/2})``; the second term is taken by
preconditioned Lanczos (Lanczos on ``A M^{-1}`` in the ``M^{-1}`` inner product,
started at ``z = F u``), which never forms ``M^{-1/2}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from torchgenetics.errors import InputError
from torchgenetics.linalg._operator import MatmulLike, as_operator, as_solver
from torchgenetics.linalg.probes import Estimate, estimate_from_samples, make_probes

__all__ = ["LanczosResult", "lanczos", "slq_logdet", "slq_trace"]


@dataclass
class LanczosResult:
    """Batched Lanczos tridiagonalisations, one per start vector.

    Attributes
    ----------
    alpha : Tensor (k, m)
        Diagonals of the tridiagonal matrices.
    beta : Tensor (k, m - 1)
        Off-diagonals.
    start_norms : Tensor (k,)
        Norm of each start vector (in the ``M^{-1}`` inner product if preconditioned).
    steps : Tensor (k,) int64
        Steps actually taken per start vector (fewer than m when its Krylov space
        was exhausted; the padding has ``alpha = 1``, ``beta = 0``).

    Examples
    --------
    >>> res = lanczos(torch.eye(4, dtype=torch.float64), torch.ones(4, 1, dtype=torch.float64), 3)
    >>> res.steps.tolist(), res.tridiagonal().shape
    ([1], torch.Size([1, 3, 3]))
    """

    alpha: torch.Tensor
    beta: torch.Tensor
    start_norms: torch.Tensor
    steps: torch.Tensor

    def tridiagonal(self) -> torch.Tensor:
        """Dense (k, m, m) tridiagonal matrices."""
        T = torch.diag_embed(self.alpha)
        if self.beta.shape[-1]:
            T = T + torch.diag_embed(self.beta, 1) + torch.diag_embed(self.beta, -1)
        return T

    def quadrature(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Per-start-vector samples ``||v||^2 e1^T fn(T) e1`` (k,)."""
        theta, W = torch.linalg.eigh(self.tridiagonal())
        tau2 = W[..., 0, :].square()
        return self.start_norms.square() * (tau2 * fn(theta)).sum(-1)


def lanczos(
    A: MatmulLike,
    V0: torch.Tensor,
    steps: int,
    preconditioner=None,
    reorthogonalize: bool = True,
) -> LanczosResult:
    """Lanczos tridiagonalisation started from each column of ``V0``, batched.

    Parameters
    ----------
    A : Tensor (n, n), LinearOperator or callable
        Symmetric matrix.
    V0 : Tensor (n, k)
        Start vectors (any norm).
    steps : int
        Lanczos steps m (capped at n).
    preconditioner : callable or object with ``.solve``, optional
        SPD ``M``: runs Lanczos on ``A M^{-1}`` in the ``M^{-1}`` inner product,
        which yields the tridiagonal of ``M^{-1/2} A M^{-1/2}`` started at
        ``M^{-1/2} v0`` (one extra ``M^{-1}`` application per step).
    reorthogonalize : bool
        Full reorthogonalisation (two Gram-Schmidt passes per step) against all
        previous Lanczos vectors; stores ``m`` (2m if preconditioned) n x k blocks.

    Returns
    -------
    LanczosResult

    Examples
    --------
    >>> A = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    >>> res = lanczos(A, torch.ones(3, 1, dtype=torch.float64), 3)
    >>> [round(x, 10) for x in torch.linalg.eigvalsh(res.tridiagonal()[0]).tolist()]
    [1.0, 2.0, 3.0]
    """
    op = as_operator(A, size=V0.shape[0])
    if V0.dim() != 2 or V0.shape[0] != op.n:
        raise InputError(f"start vectors must be ({op.n}, k), got shape {tuple(V0.shape)}")
    if int(steps) < 1:
        raise InputError(f"steps must be >= 1, got {steps}")
    msolve = as_solver(preconditioner)
    with torch.no_grad():
        return _lanczos(op.matmul, V0.detach(), min(int(steps), op.n), msolve, reorthogonalize)


def _lanczos(matmul, V0, m, msolve, reorth):
    n, k = V0.shape
    dt, dev = V0.dtype, V0.device
    pre = msolve is not None
    alpha = torch.ones(k, m, dtype=dt, device=dev)
    beta = torch.zeros(k, max(m - 1, 0), dtype=dt, device=dev)
    steps = torch.zeros(k, dtype=torch.int64, device=dev)
    # Lanczos vectors q_j and p_j = M^{-1} q_j (kept only for reorthogonalisation)
    # stored probe-major (k, m, n) so the Gram-Schmidt passes are copy-free batched matmuls
    Qs = torch.empty(k, m if reorth else 0, n, dtype=dt, device=dev)
    Ps = torch.empty(k, m if (reorth and pre) else 0, n, dtype=dt, device=dev)

    r = V0.clone()
    s = msolve(r) if pre else r
    b0 = (r * s).sum(0).clamp_min(0).sqrt()
    if bool((b0 <= 0).any()):
        raise InputError(
            "a Lanczos start vector is zero (or the preconditioner is not positive definite)"
        )
    q, p = r / b0, s / b0
    active = torch.ones(k, dtype=torch.bool, device=dev)
    q_prev = torch.zeros_like(q)
    b_prev = torch.zeros(k, dtype=dt, device=dev)
    for j in range(m):
        if reorth:
            Qs[:, j, :] = q.mT
            if pre:
                Ps[:, j, :] = p.mT
        w = matmul(p)
        a = (p * w).sum(0)
        alpha[:, j] = torch.where(active, a, alpha[:, j])
        steps += active.to(torch.int64)
        if j == m - 1:
            break
        w = w - q * a - q_prev * b_prev
        if reorth:
            Q = Qs[:, : j + 1, :]
            P = Ps[:, : j + 1, :] if pre else Q
            for _ in range(2):
                coef = torch.bmm(P, w.mT.unsqueeze(-1))  # (k, j+1, 1)
                w = w - torch.bmm(Q.mT, coef).squeeze(-1).mT
        s = msolve(w) if pre else w
        b = (w * s).sum(0).clamp_min(0).sqrt()
        # invariant subspace found: freeze this column (pad alpha=1, beta=0)
        scale = a.abs() + b_prev
        stop = active & (b <= 1e-12 * torch.where(scale > 0, scale, torch.ones_like(scale)))
        active = active & ~stop
        if not bool(active.any()):
            break
        b = torch.where(active, b, torch.zeros_like(b))
        beta[:, j] = b
        safe = torch.where(active, b, torch.ones_like(b))
        q_prev, b_prev = q, b
        q = torch.where(active, w / safe, torch.zeros_like(w))
        p = torch.where(active, s / safe, torch.zeros_like(s))
    return LanczosResult(alpha=alpha, beta=beta, start_norms=b0, steps=steps)


def _slq_samples(op, probes, steps, preconditioner, fn):
    if preconditioner is None:
        res = lanczos(op, probes, steps)
        return res.quadrature(fn), 0.0
    if probes.shape[0] != preconditioner.root_size:
        raise InputError(
            f"preconditioned SLQ needs base probes with {preconditioner.root_size} rows, got {probes.shape[0]}"
        )
    Zm = preconditioner.root_matmul(probes)  # covariance M
    res = lanczos(op, Zm, steps, preconditioner=preconditioner)
    return res.quadrature(fn), preconditioner.logdet()


def _log_checked(theta):
    if bool((theta <= 0).any()):
        raise InputError(
            f"Lanczos found a non-positive Ritz value ({float(theta.min()):.3g}): the matrix is not positive definite"
        )
    return theta.log()


def _check_preconditioner(preconditioner):
    for attr in ("n", "dtype", "solve", "logdet", "root_matmul", "root_size"):
        if not hasattr(preconditioner, attr):
            raise InputError(
                "a preconditioner for SLQ needs n, dtype, solve, logdet, root_matmul and root_size "
                "(use ProjectedCorePreconditioner or PivotedCholeskyPreconditioner)"
            )


def _run_slq(
    A,
    fn,
    num_probes,
    lanczos_steps,
    preconditioner,
    generator,
    probes,
    distribution,
    size,
    dtype,
    device,
):
    if preconditioner is not None:
        _check_preconditioner(preconditioner)
    n = (
        size
        if size is not None
        else (probes.shape[0] if probes is not None and preconditioner is None else None)
    )
    if n is None and preconditioner is not None:
        n = preconditioner.n
    op = as_operator(A, size=n)
    if probes is None:
        if num_probes is None or int(num_probes) < 1:
            raise InputError(f"num_probes must be a positive integer, got {num_probes}")
        rows = op.n if preconditioner is None else preconditioner.root_size
        dt = (
            dtype
            or op.dtype
            or (preconditioner.dtype if preconditioner is not None else torch.float64)
        )
        dev = device if device is not None else op.device
        probes = make_probes(rows, int(num_probes), generator, dt, dev, distribution)
    elif probes.dim() != 2:
        raise InputError(f"probes must be a 2-D (rows, k) tensor, got shape {tuple(probes.shape)}")
    samples, offset = _slq_samples(op, probes, lanczos_steps, preconditioner, fn)
    return estimate_from_samples(samples, offset=offset)


def slq_logdet(
    A: MatmulLike,
    num_probes: int | None = 30,
    lanczos_steps: int = 30,
    preconditioner=None,
    generator=None,
    probes: torch.Tensor | None = None,
    distribution: str = "rademacher",
    size: int | None = None,
    dtype: torch.dtype | None = None,
    device=None,
) -> Estimate:
    """Stochastic Lanczos quadrature estimate of ``log|A|`` for SPD ``A``.

    Parameters
    ----------
    A : Tensor (n, n), LinearOperator or callable
        SPD matrix.
    num_probes : int
        Probes (ignored if ``probes`` is given).
    lanczos_steps : int
        Lanczos steps per probe; the quadrature error decays like
        ``exp(-2 m / sqrt(kappa))`` (kappa the condition number of the, possibly
        preconditioned, matrix).
    preconditioner : Preconditioner, optional
        Object with ``solve``, ``logdet``, ``root_matmul`` and ``root_size`` (e.g.
        :class:`~torchgenetics.linalg.preconditioners.ProjectedCorePreconditioner`).
        The estimate is then ``log|M| + SLQ(M^{-1/2} A M^{-1/2})``; its variance
        shrinks as ``M`` approaches ``A``.
    generator : torch.Generator or int, optional
    probes : Tensor (n, k) or (root_size, k), optional
        Fixed base probes with identity covariance (use the preconditioner's
        ``root_size`` rows when preconditioned).
    distribution : {"rademacher", "gaussian"}
    size : int, optional
        n for a callable ``A``.
    dtype, device : optional
        For callables (default float64 / CPU).

    Returns
    -------
    Estimate
        Not differentiable (Lanczos runs without autograd).

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> Z = torch.randn(100, 200, dtype=torch.float64)
    >>> V = 0.5 * Z @ Z.T / 200 + 0.5 * torch.eye(100, dtype=torch.float64)
    >>> est = slq_logdet(V, num_probes=50, lanczos_steps=30, generator=0)
    >>> abs(float(est.value - torch.logdet(V))) < 3 * float(est.se)
    True
    """
    return _run_slq(
        A,
        _log_checked,
        num_probes,
        lanczos_steps,
        preconditioner,
        generator,
        probes,
        distribution,
        size,
        dtype,
        device,
    )


def slq_trace(
    A: MatmulLike,
    fn: Callable[[torch.Tensor], torch.Tensor],
    num_probes: int | None = 30,
    lanczos_steps: int = 30,
    generator=None,
    probes: torch.Tensor | None = None,
    distribution: str = "rademacher",
    size: int | None = None,
    dtype: torch.dtype | None = None,
    device=None,
) -> Estimate:
    """SLQ estimate of ``tr f(A)`` for symmetric ``A`` and a spectral function ``fn``.

    Parameters
    ----------
    A : Tensor (n, n), LinearOperator or callable
    fn : callable
        Elementwise function of the Ritz values, e.g. ``lambda t: 1 / t``.
    num_probes, lanczos_steps, generator, probes, distribution, size, dtype, device
        As in :func:`slq_logdet`.

    Returns
    -------
    Estimate

    Examples
    --------
    >>> A = torch.diag(torch.arange(1.0, 11.0, dtype=torch.float64))
    >>> round(float(slq_trace(A, lambda t: t ** 2, num_probes=5, lanczos_steps=10, generator=0).value), 6)
    385.0
    """
    return _run_slq(
        A, fn, num_probes, lanczos_steps, None, generator, probes, distribution, size, dtype, device
    )
