"""Preconditioners with exact solves and log-determinants.

Two preconditioners ``M`` for covariances ``V = sum_k theta_k K_k + s2e I``:

* :class:`ProjectedCorePreconditioner` - the GPU_REML "projected core"
  ``M = d I + U C(theta) U^T``: an orthonormal basis ``U`` (n x r) of the kernels'
  leading range is found once by a randomized range finder; the per-kernel cores
  ``C_k = U^T K_k U`` are computed once; when the variances change the core
  ``C(theta) = sum_k theta_k C_k`` is rebuilt in O(G r^2 + r^3) by :meth:`update`.
* :class:`PivotedCholeskyPreconditioner` - ``M = s L L^T + D`` with ``L`` a rank-r
  partial pivoted Cholesky factor of a kernel and ``D`` the diagonal noise.

Both expose ``solve`` (``M^{-1} R``), ``matmul``, ``logdet`` (exact ``log|M|``),
``root_matmul`` (a factor ``F`` with ``F F^T = M``, for probes ``z ~ (0, M)``)
and plug into :func:`~torchgenetics.linalg.cg.block_cg`,
:func:`~torchgenetics.linalg.slq.slq_logdet` and, through
:func:`with_preconditioner`, into linear_operator's ``inv_quad_logdet``.
"""

from __future__ import annotations

import abc
import math
from typing import Sequence

import torch
from linear_operator import settings as lo_settings
from linear_operator.operators import DenseLinearOperator, LinearOperator

from torchgenetics.errors import InputError
from torchgenetics.linalg._operator import MatmulLike, Operator, as_operator
from torchgenetics.linalg.probes import make_probes

__all__ = [
    "Preconditioner",
    "ProjectedCorePreconditioner",
    "PivotedCholeskyPreconditioner",
    "randomized_range_finder",
    "pivoted_cholesky",
    "PreconditionerLinearOperator",
    "PreconditionedLinearOperator",
    "with_preconditioner",
    "preconditioner_override",
]


class Preconditioner(abc.ABC):
    """An SPD matrix ``M`` with cheap exact ``M^{-1} R``, ``log|M|`` and a root ``F F^T = M``.

    Subclasses set ``n``, ``dtype``, ``device`` and implement :meth:`solve`,
    :meth:`matmul`, :meth:`logdet`, :attr:`root_size` and :meth:`root_matmul`.
    Calling the object applies ``M^{-1}``.

    Examples
    --------
    >>> P = ProjectedCorePreconditioner(torch.eye(4, 1, dtype=torch.float64),
    ...                                 [torch.ones(1, 1, dtype=torch.float64)], [1.0], 0.5)
    >>> torch.allclose(P(P.matmul(torch.ones(4, dtype=torch.float64))), torch.ones(4, dtype=torch.float64))
    True
    """

    n: int
    dtype: torch.dtype
    device: torch.device

    @abc.abstractmethod
    def solve(self, R: torch.Tensor) -> torch.Tensor:
        """``M^{-1} R`` for R (n,) or (n, k)."""

    @abc.abstractmethod
    def matmul(self, X: torch.Tensor) -> torch.Tensor:
        """``M X`` for X (n,) or (n, k)."""

    @abc.abstractmethod
    def logdet(self) -> torch.Tensor:
        """Exact ``log|M|`` (0-d tensor)."""

    @property
    @abc.abstractmethod
    def root_size(self) -> int:
        """Number of columns of the root factor ``F`` (rows of the base probes)."""

    @abc.abstractmethod
    def root_matmul(self, G: torch.Tensor) -> torch.Tensor:
        """``F G`` for G (root_size, k), with ``F F^T = M``."""

    def __call__(self, R: torch.Tensor) -> torch.Tensor:
        return self.solve(R)

    def sample(self, k: int, generator=None, distribution: str = "rademacher") -> torch.Tensor:
        """``k`` probes with covariance ``M`` (``F u`` with ``u`` of identity covariance), n x k.

        Examples
        --------
        >>> P = PivotedCholeskyPreconditioner(torch.eye(5, dtype=torch.float64), 1.0, rank=2)
        >>> P.sample(3, generator=0).shape
        torch.Size([5, 3])
        """
        base = make_probes(self.root_size, k, generator, self.dtype, self.device, distribution)
        return self.root_matmul(base)

    def to_dense(self) -> torch.Tensor:
        """Dense ``M`` (tests; O(n^2) memory)."""
        return self.matmul(torch.eye(self.n, dtype=self.dtype, device=self.device))

    def diagonal(self) -> torch.Tensor:
        """Diagonal of ``M`` (subclasses compute it in O(n r))."""
        return self.to_dense().diagonal()

    def as_linear_operator(self) -> "PreconditionerLinearOperator":
        """``M`` as a linear_operator ``LinearOperator`` (the ``precond_lt`` of its hook)."""
        return PreconditionerLinearOperator(
            torch.zeros(1, dtype=self.dtype, device=self.device), preconditioner=self
        )

    def linear_operator_hook(self):
        """The triple ``(M^{-1} closure, M as LinearOperator, log|M|)`` of ``LinearOperator._preconditioner``."""
        return self.solve, self.as_linear_operator(), self.logdet()


def _vec(fn):
    """Let an (n, k) method also take (n,) vectors."""

    def wrapped(self, X):
        if X.dim() == 1:
            return fn(self, X.unsqueeze(-1)).squeeze(-1)
        return fn(self, X)

    wrapped.__name__, wrapped.__doc__ = fn.__name__, fn.__doc__
    return wrapped


def _as_kernel_ops(kernels, size):
    if isinstance(kernels, (torch.Tensor, LinearOperator, Operator)) or callable(kernels):
        kernels = [kernels]
    ops = [as_operator(K, size=size) for K in kernels]
    if not ops:
        raise InputError("need at least one kernel")
    n = ops[0].n
    for i, op in enumerate(ops):
        if op.n != n:
            raise InputError(f"kernel {i} is {op.n} x {op.n}; kernel 0 is {n} x {n}")
    return ops


def _sym(M):
    return 0.5 * (M + M.mT)


def _range_sketch(ops, rank, oversampling, power_iters, generator, weights, dtype, device):
    """Range finder + Rayleigh-Ritz; returns U (n x r), cores [r x r], sketch trace estimates."""
    n = ops[0].n
    if not 1 <= int(rank) <= n:
        raise InputError(f"rank must be between 1 and n={n}, got {rank}")
    rank = int(rank)
    width = min(n, rank + max(0, int(oversampling)))
    w = [1.0] * len(ops) if weights is None else [float(x) for x in weights]
    if len(w) != len(ops):
        raise InputError(f"{len(w)} weights given for {len(ops)} kernels")
    Omega = make_probes(n, width, generator, dtype, device, "gaussian")
    KO = [op.matmul(Omega) for op in ops]
    sketch_traces = torch.stack([(Omega * Y).sum(0).mean() for Y in KO])
    Y = sum(wk * Yk for wk, Yk in zip(w, KO, strict=True))
    for _ in range(int(power_iters)):
        Q = torch.linalg.qr(Y).Q
        Y = sum(wk * op.matmul(Q) for wk, op in zip(w, ops, strict=True))
    Q = torch.linalg.qr(Y).Q
    proj = [_sym(Q.mT @ op.matmul(Q)) for op in ops]
    _, W = torch.linalg.eigh(sum(wk * P for wk, P in zip(w, proj, strict=True)))
    Wr = W[:, -rank:].flip(-1)  # leading r Ritz vectors
    U = Q @ Wr
    cores = [_sym(Wr.mT @ P @ Wr) for P in proj]
    return U, cores, sketch_traces


def randomized_range_finder(
    kernels: MatmulLike | Sequence[MatmulLike],
    rank: int,
    oversampling: int = 10,
    power_iters: int = 1,
    generator=None,
    weights: Sequence[float] | None = None,
    size: int | None = None,
    dtype: torch.dtype | None = None,
    device=None,
    return_cores: bool = False,
):
    """Orthonormal basis of the leading range of ``sum_k w_k K_k`` (Halko et al., 2011).

    A Gaussian sketch of ``rank + oversampling`` columns, ``power_iters`` subspace
    iterations (with QR in between), then Rayleigh-Ritz to keep the leading ``rank``
    directions. Cost: ``(rank + oversampling) (2 + power_iters)`` matvecs per kernel.

    Parameters
    ----------
    kernels : matrix-like or list of them
        Symmetric PSD kernels (tensors, LinearOperators or matmul callables).
    rank : int
        Columns of the returned basis.
    oversampling : int
        Extra sketch columns.
    power_iters : int
        Subspace iterations (1-2 sharpen a slowly decaying spectrum).
    generator : torch.Generator or int, optional
    weights : list of float, optional
        Weights of the kernels in the sum (default all 1).
    size : int, optional
        n when every kernel is a callable.
    dtype, device : optional
        Of the sketch (default: the first kernel's, else float64 / CPU).
    return_cores : bool
        Also return the projected cores ``U^T K_k U`` (no extra matvecs).

    Returns
    -------
    U : Tensor (n, rank)
    cores : list of Tensor (rank, rank), only if ``return_cores``

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> Z = torch.randn(100, 5, dtype=torch.float64)
    >>> U = randomized_range_finder([Z @ Z.T], rank=5, generator=0)
    >>> torch.allclose(U @ (U.T @ Z), Z)          # exact range of a rank-5 kernel
    True
    """
    ops = _as_kernel_ops(kernels, size)
    dtype = dtype or ops[0].dtype or torch.float64
    device = device if device is not None else ops[0].device
    U, cores, _ = _range_sketch(
        ops, rank, oversampling, power_iters, generator, weights, dtype, device
    )
    return (U, cores) if return_cores else U


class ProjectedCorePreconditioner(Preconditioner):
    """Projected-core preconditioner ``M = d (I - U U^T) + U (C(theta) + s2e I) U^T``.

    With ``U`` (n x r) orthonormal, ``C(theta) = sum_k theta_k C_k`` and
    ``C_k = U^T K_k U``, M equals ``V = sum_k theta_k K_k + s2e I`` on span(U) and
    replaces V on the complement by ``d I``. This is the GPU_REML form
    ``d I + U C' U^T`` with ``C' = C(theta) + (s2e - d) I``.

    Choice of ``d``: ``d = s2e + sum_k theta_k delta_k`` where
    ``delta_k = (tr K_k - tr C_k) / (n - r)`` is the average eigenvalue of the
    discarded part of ``K_k`` (``include_discarded=True``, the default), or
    ``d = s2e`` (``include_discarded=False``). Using the average places the
    complement's spectrum of ``M^{-1} V`` around 1, next to the (almost exactly 1)
    spectrum on span(U), which lowers the condition number whenever the
    discarded eigenvalues are bounded away from 0.

    Exact algebra (Woodbury and the determinant lemma for orthonormal U)::

        M^{-1} R = (R - U U^T R) / d + U S^{-1} U^T R,   S = C(theta) + s2e I
        log|M|   = (n - r) log d + log|S|

    Parameters
    ----------
    basis : Tensor (n, r)
        Orthonormal columns (re-orthonormalised by QR if needed).
    cores : list of Tensor (r, r)
        ``U^T K_k U`` for each kernel.
    theta : sequence of float or Tensor (G,)
        Kernel variances.
    residual : float
        Residual variance ``s2e > 0``.
    discarded : Tensor (G,), optional
        ``delta_k`` per kernel (default zeros, i.e. ``d = s2e``).

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> Z = torch.randn(200, 400, dtype=torch.float64)
    >>> K = Z @ Z.T / 400
    >>> P = ProjectedCorePreconditioner.from_kernels([K], theta=[0.5], residual=0.5, rank=20, generator=0)
    >>> V = 0.5 * K + 0.5 * torch.eye(200, dtype=torch.float64)
    >>> from torchgenetics.linalg import block_cg
    >>> B = torch.randn(200, 4, dtype=torch.float64)
    >>> block_cg(V, B, P, tol=1e-8).n_iter < block_cg(V, B, tol=1e-8).n_iter
    True
    >>> _ = P.update([0.8], 0.2)   # new variances: O(r^3), no matvecs
    """

    def __init__(self, basis, cores, theta, residual, discarded=None):
        if basis.dim() != 2:
            raise InputError(f"basis must be (n, r), got shape {tuple(basis.shape)}")
        n, r = basis.shape
        self.dtype, self.device = basis.dtype, basis.device
        eye = torch.eye(r, dtype=self.dtype, device=self.device)
        if not torch.allclose(
            basis.mT @ basis, eye, atol=1e-8 if self.dtype == torch.float64 else 1e-4
        ):
            basis = torch.linalg.qr(basis).Q
        cores = [_sym(torch.as_tensor(C, dtype=self.dtype, device=self.device)) for C in cores]
        for i, C in enumerate(cores):
            if C.shape != (r, r):
                raise InputError(f"core {i} has shape {tuple(C.shape)}; expected ({r}, {r})")
        self.U = basis.detach()
        self.cores = torch.stack([C.detach() for C in cores])
        self.n, self.rank = n, r
        G = len(cores)
        self.discarded = (
            torch.zeros(G, dtype=self.dtype, device=self.device)
            if discarded is None
            else torch.as_tensor(discarded, dtype=self.dtype, device=self.device)
            .detach()
            .reshape(G)
        )
        self.update(theta, residual)

    @classmethod
    def from_kernels(
        cls,
        kernels: MatmulLike | Sequence[MatmulLike],
        theta,
        residual,
        rank: int,
        oversampling: int = 10,
        power_iters: int = 1,
        generator=None,
        weights: Sequence[float] | None = None,
        include_discarded: bool = True,
        traces: Sequence[float] | None = None,
        size: int | None = None,
        dtype: torch.dtype | None = None,
        device=None,
    ) -> "ProjectedCorePreconditioner":
        """Build the basis by :func:`randomized_range_finder`, the cores, and ``M(theta)``.

        Parameters
        ----------
        kernels : matrix-like or list of them
        theta, residual
            Initial variances (change them later with :meth:`update`).
        rank, oversampling, power_iters, generator, weights
            See :func:`randomized_range_finder`.
        include_discarded : bool
            Add the average discarded eigenvalue to ``d`` (see the class notes).
        traces : list of float, optional
            ``tr(K_k)``. By default exact when the kernel's diagonal is cheap
            (tensors, LinearOperators that define ``_diagonal``), else estimated
            from the range finder's own Gaussian sketch (no extra matvecs).
        size, dtype, device : optional

        Returns
        -------
        ProjectedCorePreconditioner

        Examples
        --------
        >>> K = torch.eye(30, dtype=torch.float64)
        >>> P = ProjectedCorePreconditioner.from_kernels([K], [1.0], 1.0, rank=3, generator=0)
        >>> round(float(P.logdet()), 6)   # M = V = 2 I exactly
        20.794415
        """
        ops = _as_kernel_ops(kernels, size)
        dtype = dtype or ops[0].dtype or torch.float64
        device = device if device is not None else ops[0].device
        U, cores, sketch_traces = _range_sketch(
            ops, rank, oversampling, power_iters, generator, weights, dtype, device
        )
        discarded = None
        n, r = U.shape
        if include_discarded and n > r:
            if traces is not None:
                tr = torch.as_tensor(traces, dtype=dtype, device=device).reshape(len(ops))
            else:
                tr = torch.stack(
                    [
                        op.diagonal().sum().to(dtype) if op.has_cheap_diagonal() else est
                        for op, est in zip(ops, sketch_traces, strict=True)
                    ]
                )
            core_tr = torch.stack([C.diagonal().sum() for C in cores])
            discarded = ((tr - core_tr) / (n - r)).clamp_min(0.0)
        return cls(U, cores, theta, residual, discarded)

    def update(self, theta, residual) -> "ProjectedCorePreconditioner":
        """Rebuild ``M`` for new variances in O(G r^2 + r^3) (no matvecs); returns self.

        Eigenvalues of ``S = C(theta) + s2e I`` are floored at ``1e-10 d`` so M stays
        positive definite even if some ``theta_k`` are negative.

        Examples
        --------
        >>> P = ProjectedCorePreconditioner(torch.eye(3, 1, dtype=torch.float64),
        ...                                 [torch.eye(1, dtype=torch.float64)], [1.0], 1.0)
        >>> round(float(P.update([3.0], 1.0).logdet()), 12) == round(math.log(4.0), 12)
        True
        """
        theta = torch.as_tensor(theta, dtype=self.dtype, device=self.device).detach().reshape(-1)
        if theta.numel() != self.cores.shape[0]:
            raise InputError(f"{theta.numel()} variances given for {self.cores.shape[0]} kernels")
        s2e = float(residual)
        if not s2e > 0:
            raise InputError(
                f"residual variance must be > 0 for the projected-core preconditioner, got {s2e}"
            )
        d = s2e + float((theta * self.discarded).sum())
        if not d > 0:
            d = s2e
        S = torch.einsum("g,gij->ij", theta, self.cores) + s2e * torch.eye(
            self.rank, dtype=self.dtype, device=self.device
        )
        s, W = torch.linalg.eigh(_sym(S))
        self.theta, self.residual, self.d = theta, s2e, d
        self._s = s.clamp_min(1e-10 * d)
        self._UW = self.U @ W
        return self

    @_vec
    def solve(self, R):
        """``M^{-1} R``."""
        C = self._UW.mT @ R
        return (R - self._UW @ C) / self.d + self._UW @ (C / self._s.unsqueeze(-1))

    @_vec
    def matmul(self, X):
        """``M X``."""
        C = self._UW.mT @ X
        return self.d * (X - self._UW @ C) + self._UW @ (C * self._s.unsqueeze(-1))

    def logdet(self):
        """``(n - r) log d + sum log s``."""
        return (self.n - self.rank) * math.log(self.d) + self._s.log().sum()

    def diagonal(self) -> torch.Tensor:
        """``d (1 - |U_i|^2) + sum_j (UW)_ij^2 s_j``."""
        UW2 = self._UW.square()
        return self.d * (1.0 - UW2.sum(-1)) + UW2 @ self._s

    @property
    def root_size(self) -> int:
        return self.n

    @_vec
    def root_matmul(self, G):
        """Symmetric square root ``M^{1/2} G``."""
        C = self._UW.mT @ G
        return self.d**0.5 * (G - self._UW @ C) + self._UW @ (C * self._s.sqrt().unsqueeze(-1))


def _pivoted_cholesky_matvec(
    op: Operator, rank: int, error_tol: float, diag: torch.Tensor, dtype, device
):
    """Greedy pivoted Cholesky using one matvec per pivot (any operator)."""
    n = op.n
    d = diag.detach().to(dtype=dtype, device=device).clone()
    orig = d.max()
    L = torch.zeros(n, rank, dtype=dtype, device=device)
    m = 0
    while m < rank:
        if m > 0 and float(d.clamp_min(0).sum() / orig) <= error_tol:
            break
        i = int(torch.argmax(d))
        piv = float(d[i])
        if piv <= 0:
            break
        e = torch.zeros(n, 1, dtype=dtype, device=device)
        e[i] = 1.0
        col = op.matmul(e).squeeze(-1)
        col = col - L[:, :m] @ L[i, :m]
        L[:, m] = col / piv**0.5
        d = d - L[:, m].square()
        d[i] = 0.0
        m += 1
    return L[:, :m]


def pivoted_cholesky(
    A: MatmulLike,
    rank: int,
    error_tol: float = 1e-10,
    diagonal: torch.Tensor | None = None,
    size: int | None = None,
) -> torch.Tensor:
    """Rank-``rank`` partial pivoted Cholesky factor ``L`` (n x r') with ``L L^T ~ A``.

    Stops early when the trace of the residual falls below ``error_tol`` times the
    largest diagonal entry (so r' <= rank). Tensors and LinearOperators use
    ``linear_operator``'s implementation; operators it cannot index, and callables,
    use a matvec-per-pivot version (callables need ``diagonal``).

    Parameters
    ----------
    A : Tensor (n, n), LinearOperator or callable
        PSD matrix.
    rank : int
    error_tol : float
    diagonal : Tensor (n,), optional
        Diagonal of ``A`` (required for callables).
    size : int, optional
        n for a callable.

    Returns
    -------
    Tensor (n, r')

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> Z = torch.randn(50, 4, dtype=torch.float64)
    >>> L = pivoted_cholesky(Z @ Z.T, rank=10)
    >>> L.shape[1], torch.allclose(L @ L.T, Z @ Z.T)
    (4, True)
    """
    if int(rank) < 1:
        raise InputError(f"rank must be >= 1, got {rank}")
    op = as_operator(A, size=size)
    dtype = op.dtype or (diagonal.dtype if diagonal is not None else torch.float64)
    device = (
        op.device if op.device is not None else (diagonal.device if diagonal is not None else None)
    )
    rank = min(int(rank), op.n)
    if op.kind != "callable" and diagonal is None:
        lo = DenseLinearOperator(op.source) if op.kind == "tensor" else op.source
        try:
            with torch.no_grad():
                return lo.pivoted_cholesky(rank=rank, error_tol=error_tol).detach()
        except NotImplementedError:  # linear_operator's signal for an operator without row access
            pass  # fall back to matvecs
    if diagonal is None:
        if op.kind == "callable":
            raise InputError(
                "pivoted_cholesky of a matmul callable needs its diagonal (pass diagonal=)"
            )
        diagonal = op.diagonal()
    with torch.no_grad():
        return _pivoted_cholesky_matvec(op, rank, error_tol, diagonal, dtype, device)


class PivotedCholeskyPreconditioner(Preconditioner):
    """``M = scale L L^T + D`` with ``L`` a rank-r pivoted Cholesky factor of a kernel.

    Built once per kernel; :meth:`update` changes ``scale`` (the kernel's variance)
    and the noise ``D`` without refactoring. Exact algebra with the r x r
    capacitance ``C = I + scale L^T D^{-1} L``::

        M^{-1} R = D^{-1} R - D^{-1} L' C^{-1} L'^T D^{-1} R,   L' = sqrt(scale) L
        log|M|   = sum log D + log|C|

    Parameters
    ----------
    operator : Tensor (n, n), LinearOperator or callable
        The kernel (without the noise).
    noise : float or Tensor (n,)
        Diagonal ``D`` (> 0).
    rank : int
    scale : float
        Multiplier of ``L L^T`` (e.g. the genetic variance when ``operator`` is K).
    error_tol, diagonal, size
        See :func:`pivoted_cholesky`.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> Z = torch.randn(100, 10, dtype=torch.float64)
    >>> K = Z @ Z.T / 10
    >>> P = PivotedCholeskyPreconditioner(K, noise=0.5, rank=10, scale=0.5)
    >>> V = 0.5 * K + 0.5 * torch.eye(100, dtype=torch.float64)
    >>> torch.allclose(P.to_dense(), V), torch.allclose(P.logdet(), torch.logdet(V))
    (True, True)
    """

    def __init__(
        self,
        operator: MatmulLike,
        noise,
        rank: int,
        scale: float = 1.0,
        error_tol: float = 1e-10,
        diagonal: torch.Tensor | None = None,
        size: int | None = None,
    ):
        self.L = pivoted_cholesky(operator, rank, error_tol, diagonal, size)
        self.n = self.L.shape[0]
        self.dtype, self.device = self.L.dtype, self.L.device
        self.update(scale=scale, noise=noise)

    def update(self, scale=None, noise=None) -> "PivotedCholeskyPreconditioner":
        """Change ``scale`` and/or the noise in O(n r^2); returns self.

        Examples
        --------
        >>> P = PivotedCholeskyPreconditioner(torch.eye(4, dtype=torch.float64), 1.0, rank=4)
        >>> round(float(P.update(scale=2.0, noise=1.0).logdet()), 6) == round(4 * float(torch.log(torch.tensor(3.0))), 6)
        True
        """
        if scale is not None:
            if not float(scale) >= 0:
                raise InputError(f"scale must be >= 0, got {float(scale)}")
            self.scale = float(scale)
        if noise is not None:
            D = torch.as_tensor(noise, dtype=self.dtype, device=self.device).detach()
            D = D.expand(self.n).clone() if D.dim() == 0 or D.numel() == 1 else D.reshape(self.n)
            if not bool((D > 0).all()):
                raise InputError(
                    "the diagonal noise of a pivoted Cholesky preconditioner must be > 0"
                )
            self.D = D
        Ls = self.scale**0.5 * self.L
        self._Ls = Ls
        self._Dinv = 1.0 / self.D
        r = Ls.shape[1]
        cap = torch.eye(r, dtype=self.dtype, device=self.device) + Ls.mT @ (
            self._Dinv.unsqueeze(-1) * Ls
        )
        self._cap_chol = torch.linalg.cholesky(_sym(cap))
        return self

    @_vec
    def solve(self, R):
        """``M^{-1} R`` by Woodbury."""
        DR = self._Dinv.unsqueeze(-1) * R
        inner = torch.cholesky_solve(self._Ls.mT @ DR, self._cap_chol)
        return DR - self._Dinv.unsqueeze(-1) * (self._Ls @ inner)

    @_vec
    def matmul(self, X):
        """``M X``."""
        return self._Ls @ (self._Ls.mT @ X) + self.D.unsqueeze(-1) * X

    def logdet(self):
        """``sum log D + 2 sum log diag(chol(C))``."""
        return self.D.log().sum() + 2.0 * self._cap_chol.diagonal().log().sum()

    def diagonal(self) -> torch.Tensor:
        """``scale |L_i|^2 + D_i``."""
        return self._Ls.square().sum(-1) + self.D

    @property
    def root_size(self) -> int:
        return self.n + self._Ls.shape[1]

    @_vec
    def root_matmul(self, G):
        """``[D^{1/2}, L'] G``."""
        return self.D.sqrt().unsqueeze(-1) * G[: self.n] + self._Ls @ G[self.n :]


class PreconditionerLinearOperator(LinearOperator):
    """A :class:`Preconditioner` seen as a linear_operator ``LinearOperator`` (``precond_lt``).

    Its representation is a constant anchor tensor, so linear_operator never
    differentiates through it; ``zero_mean_mvn_samples`` draws exact ``N(0, M)`` samples.

    Parameters
    ----------
    anchor : Tensor
        Any tensor with the preconditioner's dtype/device.
    preconditioner : Preconditioner

    Examples
    --------
    >>> P = PivotedCholeskyPreconditioner(torch.eye(3, dtype=torch.float64), 1.0, rank=1)
    >>> P.as_linear_operator().shape
    torch.Size([3, 3])
    """

    def __init__(self, anchor: torch.Tensor, preconditioner: Preconditioner = None):
        super().__init__(anchor, preconditioner=preconditioner)
        self.preconditioner = preconditioner

    def _matmul(self, rhs):
        return self.preconditioner.matmul(rhs)

    def _size(self):
        return torch.Size((self.preconditioner.n, self.preconditioner.n))

    def _transpose_nonbatch(self):
        return self

    def _diagonal(self):
        return self.preconditioner.diagonal()

    def zero_mean_mvn_samples(self, num_samples: int) -> torch.Tensor:
        return self.preconditioner.sample(num_samples, distribution="gaussian").mT


class PreconditionedLinearOperator(LinearOperator):
    """Wrap a LinearOperator so linear_operator's CG/SLQ use a given preconditioner.

    ``_preconditioner()`` returns ``(M^{-1}, M, log|M|)`` from the
    :class:`Preconditioner`, so ``inv_quad_logdet`` (iterative path), ``solve`` and
    ``inv_quad`` run preconditioned CG and compute
    ``log|A| = log|M| + SLQ(M^{-1/2} A M^{-1/2})``. With fixed ``probes`` (rows =
    ``preconditioner.root_size``) the probes are ``F probes`` (covariance M) and the
    stochastic log-determinant is reproducible.

    Parameters
    ----------
    base : LinearOperator
    preconditioner : Preconditioner
    probes : tuple of one Tensor, optional
        Base probes, kept in a tuple so linear_operator does not treat them as a
        differentiable argument.

    Examples
    --------
    See :func:`with_preconditioner`.
    """

    def __init__(
        self, base: LinearOperator, preconditioner: Preconditioner = None, probes: tuple = ()
    ):
        super().__init__(base, preconditioner=preconditioner, probes=probes)
        self.base = base
        self.preconditioner = preconditioner
        self.probes = probes

    def _matmul(self, rhs):
        return self.base._matmul(rhs)

    def _size(self):
        return self.base.shape

    def _transpose_nonbatch(self):
        return PreconditionedLinearOperator(
            self.base._transpose_nonbatch(), self.preconditioner, self.probes
        )

    def _diagonal(self):
        return self.base._diagonal()

    def _approx_diagonal(self):
        return self.base._approx_diagonal()

    def _preconditioner(self):
        return self.preconditioner.linear_operator_hook()

    def _probe_vectors_and_norms(self):
        if not self.probes:
            return None, None
        z = self.preconditioner.root_matmul(self.probes[0])
        norms = z.norm(dim=-2, keepdim=True)
        return z / norms, norms


def with_preconditioner(
    A,
    preconditioner: Preconditioner,
    probes: torch.Tensor | None = None,
    num_probes: int | None = None,
    generator=None,
    distribution: str = "rademacher",
) -> PreconditionedLinearOperator:
    """Adapter: make linear_operator's ``inv_quad_logdet``/``solve`` use our preconditioner.

    Parameters
    ----------
    A : LinearOperator or Tensor (n, n)
        The SPD covariance (a tensor is wrapped in ``DenseLinearOperator``).
    preconditioner : Preconditioner
        Built for the same variances as ``A``.
    probes : Tensor (root_size, k), optional
        Fixed base probes for the log-determinant.
    num_probes : int, optional
        With ``generator``: draw fixed base probes (default
        ``linear_operator.settings.num_trace_samples``).
    generator : torch.Generator or int, optional
        Seed for fixed probes; without probes or generator linear_operator draws
        ``N(0, M)`` probes from torch's global RNG.
    distribution : {"rademacher", "gaussian"}

    Returns
    -------
    PreconditionedLinearOperator

    Notes
    -----
    Force the iterative path with ``settings.max_cholesky_size(0)`` and set explicit
    ``settings.cg_tolerance`` (its default is 1). linear_operator 0.6.1's ``linear_cg``
    stops updating a column once ``r^T M^{-1} r < 1e-10`` for unit-normalised
    right-hand sides, so its relative residual cannot go much below ~1e-5; use
    :func:`~torchgenetics.linalg.cg.block_cg` when tighter solves are needed.

    Examples
    --------
    >>> from linear_operator import settings
    >>> _ = torch.manual_seed(0)
    >>> Z = torch.randn(300, 20, dtype=torch.float64)
    >>> V = 0.5 * Z @ Z.T / 20 + 0.5 * torch.eye(300, dtype=torch.float64)
    >>> P = PivotedCholeskyPreconditioner(Z @ Z.T / 20, noise=0.5, rank=20, scale=0.5)
    >>> y = torch.randn(300, dtype=torch.float64)
    >>> with settings.max_cholesky_size(0), settings.cg_tolerance(1e-8):
    ...     iq, ld = with_preconditioner(V, P, generator=0).inv_quad_logdet(y, logdet=True)
    >>> torch.allclose(ld, torch.logdet(V)), torch.allclose(iq, y @ torch.linalg.solve(V, y))
    (True, True)
    """
    if isinstance(A, torch.Tensor):
        A = DenseLinearOperator(A)
    if not isinstance(A, LinearOperator):
        raise InputError(
            f"with_preconditioner needs a LinearOperator or Tensor, got {type(A).__name__}"
        )
    if not isinstance(preconditioner, Preconditioner):
        raise InputError(
            "with_preconditioner needs a Preconditioner (it must provide logdet and a root)"
        )
    if preconditioner.n != A.shape[-1]:
        raise InputError(
            f"preconditioner is {preconditioner.n} x {preconditioner.n}; A is {tuple(A.shape)}"
        )
    fixed = ()
    if probes is not None:
        if probes.dim() != 2 or probes.shape[0] != preconditioner.root_size:
            raise InputError(
                f"probes must be ({preconditioner.root_size}, k), got {tuple(probes.shape)}"
            )
        fixed = (probes.to(dtype=A.dtype, device=A.device),)
    elif generator is not None:
        k = int(num_probes) if num_probes is not None else lo_settings.num_trace_samples.value()
        fixed = (
            make_probes(preconditioner.root_size, k, generator, A.dtype, A.device, distribution),
        )
    return PreconditionedLinearOperator(A, preconditioner, fixed)


def preconditioner_override(preconditioner: Preconditioner):
    """Hook for ``AddedDiagLinearOperator(..., preconditioner_override=...)``.

    Parameters
    ----------
    preconditioner : Preconditioner

    Returns
    -------
    callable
        ``op -> (M^{-1} closure, M as LinearOperator, log|M|)``.

    Examples
    --------
    >>> from linear_operator.operators import AddedDiagLinearOperator, DiagLinearOperator
    >>> K = torch.eye(3, dtype=torch.float64)
    >>> P = PivotedCholeskyPreconditioner(K, noise=1.0, rank=3)
    >>> V = AddedDiagLinearOperator(DenseLinearOperator(K), DiagLinearOperator(torch.ones(3, dtype=torch.float64)),
    ...                             preconditioner_override=preconditioner_override(P))
    >>> V._preconditioner()[2].item() == P.logdet().item()
    True
    """
    if not isinstance(preconditioner, Preconditioner):
        raise InputError("preconditioner_override needs a Preconditioner")
    return lambda _op: preconditioner.linear_operator_hook()
