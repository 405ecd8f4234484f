"""Exact (dense) solves and log-determinants, and the exact-vs-iterative switch.

Three exact paths, each the dense twin of the stochastic machinery:

* :func:`exact_solve_logdet` - Cholesky of any SPD matrix, O(n^3).
* :class:`EigenKernel` - one eigendecomposition of a kernel K, after which
  ``V = s2g K + s2e I`` is solved and its log-determinant taken for any
  (s2g, s2e) in O(n^2) (O(n) in the rotated basis). Differentiable in s2g, s2e.
* :func:`woodbury_solve_logdet` - ``V = s2g Z Z^T / m + s2e I`` with m < n by
  Woodbury and the matrix determinant lemma, O(n m^2).

:func:`choose_method` picks ``"exact"`` below the measured crossover
:data:`EXACT_CROSSOVER_N` and ``"iterative"`` above it.
"""

from __future__ import annotations

import os
import warnings

import torch

from torchgenetics.errors import InputError
from torchgenetics.linalg._operator import MatmulLike, as_operator

__all__ = [
    "EXACT_CROSSOVER_N",
    "choose_method",
    "exact_max_n",
    "exact_solve_logdet",
    "EigenKernel",
    "woodbury_solve_logdet",
]

# Crossover n* between the dense Cholesky path and block PCG (projected-core
# preconditioner, tol 1e-8, 35 right-hand sides) + SLQ (30 probes x 20 steps) for one
# REML evaluation with a dense kernel, measured by
#   .venv/bin/python benchmarks/crossover.py --sizes 6000 8000 10000 12000 --repeats 1
#   .venv/bin/python benchmarks/crossover.py --sizes 16000 --repeats 1
# on a shared 2-core x86-64 CPU container (torch 2.13.0+cpu, float64, 1 thread). The
# exact path won at every measured n: 6000 6.9 s vs 26.7 s, 12000 17.1 s vs 30.7 s,
# 16000 125 s vs 193 s; the fitted cost models (exact a n^3, iterative b n^2) cross at
# n ~ 24,000. The constant is the largest n measured where exact still wins; whole-REML
# fits (benchmarks/reml_scaling.py) favour exact by more. choose_method also refuses the
# exact path when three n x n matrices do not fit the memory budget.
# Override with TORCHGEN_EXACT_MAX_N (e.g. on GPUs or for matrix-free kernels).
EXACT_CROSSOVER_N = 16000

_JITTERS = (1e-10, 1e-8, 1e-6)


def exact_max_n(default: int = EXACT_CROSSOVER_N) -> int:
    """Largest n for which the exact path is chosen.

    ``default`` (the measured crossover of the caller's exact path, by default
    ``EXACT_CROSSOVER_N``) unless the environment variable ``TORCHGEN_EXACT_MAX_N``
    holds an integer.

    Examples
    --------
    >>> exact_max_n() > 0
    True
    """
    raw = os.environ.get("TORCHGEN_EXACT_MAX_N")
    if raw is None or raw.strip() == "":
        return int(default)
    try:
        return int(float(raw))
    except ValueError:
        raise InputError(f"TORCHGEN_EXACT_MAX_N must be an integer, got {raw!r}") from None


def choose_method(
    n: int, exact_max: int | None = None, budget_bytes: int | None = None, itemsize: int = 8
) -> str:
    """Return ``"exact"`` or ``"iterative"`` for an n x n covariance.

    Parameters
    ----------
    n : int
        Number of samples.
    exact_max : int, optional
        Override of the crossover (default :func:`exact_max_n`).
    budget_bytes : int, optional
        Memory the caller may use (e.g. from ``torchgenetics.memory.available_bytes``);
        the exact path needs about three n x n matrices and is refused if they do not fit.
    itemsize : int
        Bytes per element (8 for float64).

    Returns
    -------
    str

    Examples
    --------
    >>> choose_method(100)
    'exact'
    >>> choose_method(10**6)
    'iterative'
    """
    limit = exact_max_n() if exact_max is None else int(exact_max)
    if n > limit:
        return "iterative"
    if budget_bytes is not None and 3 * n * n * itemsize > budget_bytes:
        return "iterative"
    return "exact"


def _cholesky(V: torch.Tensor, max_jitter_tries: int = len(_JITTERS)):
    L, info = torch.linalg.cholesky_ex(V)
    if int(info) == 0:
        return L
    scale = V.diagonal().abs().mean()
    for rel in _JITTERS[:max_jitter_tries]:
        jitter = rel * scale
        L, info = torch.linalg.cholesky_ex(
            V + jitter * torch.eye(V.shape[-1], dtype=V.dtype, device=V.device)
        )
        if int(info) == 0:
            warnings.warn(
                f"matrix was not numerically positive definite; added jitter {float(jitter):.3g} "
                "to its diagonal for the Cholesky factorisation",
                RuntimeWarning,
                stacklevel=3,
            )
            return L
    raise InputError(
        f"the {V.shape[-1]} x {V.shape[-1]} matrix is not positive definite (Cholesky failed at "
        f"column {int(info)} even with diagonal jitter up to {_JITTERS[max_jitter_tries - 1]:g} x mean diagonal); "
        "check that the variance components are positive"
    )


def exact_solve_logdet(
    A: MatmulLike,
    B: torch.Tensor | None = None,
    logdet: bool = True,
    size: int | None = None,
    max_jitter_tries: int = 3,
):
    """``A^{-1} B`` and ``log|A|`` by a dense Cholesky factorisation.

    Parameters
    ----------
    A : Tensor (n, n), LinearOperator or callable
        SPD matrix (materialised; callables are applied to the identity).
    B : Tensor (n, k) or (n,), optional
        Right-hand sides.
    logdet : bool
        Whether to return ``log|A|``.
    size : int, optional
        n for a callable ``A`` when ``B`` is not given.
    max_jitter_tries : int
        If Cholesky fails, retry with diagonal jitter 1e-10, 1e-8, 1e-6 times the mean
        diagonal (with a warning); raise :class:`~torchgenetics.errors.InputError` after.

    Returns
    -------
    solution : Tensor or None
    logdet : Tensor (0-d) or None
        Both differentiable through torch's Cholesky.

    Examples
    --------
    >>> V = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    >>> X, ld = exact_solve_logdet(V, torch.eye(2, dtype=torch.float64))
    >>> torch.allclose(X, torch.linalg.inv(V)), torch.allclose(ld, torch.logdet(V))
    (True, True)
    """
    op = as_operator(A, size=size if B is None else B.shape[0])
    dtype = B.dtype if (B is not None and op.dtype is None) else (op.dtype or torch.float64)
    device = B.device if (B is not None and op.device is None) else op.device
    V = op.dense(dtype=dtype, device=device)
    L = _cholesky(V, max_jitter_tries)
    X = None
    if B is not None:
        B2 = B.unsqueeze(-1) if B.dim() == 1 else B
        X = torch.cholesky_solve(B2.to(L.dtype), L)
        X = X.squeeze(-1) if B.dim() == 1 else X
    ld = 2.0 * L.diagonal().log().sum() if logdet else None
    return X, ld


class EigenKernel:
    """Spectral form ``K = Q diag(lam) Q^T`` for fast exact ``V = s2g K + s2e I``.

    ``Q`` is n x q with orthonormal columns (q <= n); outside its span K is zero.
    After the one-off decomposition, for any (s2g, s2e)::

        V^{-1} B = Q diag(1/(s2g lam + s2e)) Q^T B + (B - Q Q^T B) / s2e
        log|V|   = sum log(s2g lam + s2e) + (n - q) log s2e

    in O(n q k) and O(q). Both are differentiable in ``s2g``/``s2e`` (tensors).

    Parameters
    ----------
    eigenvectors : Tensor (n, q)
    eigenvalues : Tensor (q,)

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> Z = torch.randn(30, 10, dtype=torch.float64)
    >>> K = Z @ Z.T / 10
    >>> ek = EigenKernel.from_kernel(K)
    >>> V = 0.3 * K + 0.7 * torch.eye(30, dtype=torch.float64)
    >>> torch.allclose(ek.logdet(0.3, 0.7), torch.logdet(V))
    True
    >>> ek2 = EigenKernel.from_factor(Z, scale=10)   # thin SVD, O(n m^2)
    >>> torch.allclose(ek2.solve(torch.ones(30, dtype=torch.float64), 0.3, 0.7),
    ...                torch.linalg.solve(V, torch.ones(30, dtype=torch.float64)))
    True
    """

    def __init__(self, eigenvectors: torch.Tensor, eigenvalues: torch.Tensor):
        if (
            eigenvectors.dim() != 2
            or eigenvalues.dim() != 1
            or eigenvectors.shape[1] != eigenvalues.numel()
        ):
            raise InputError(
                f"eigenvectors must be (n, q) and eigenvalues (q,), got {tuple(eigenvectors.shape)} "
                f"and {tuple(eigenvalues.shape)}"
            )
        self.eigenvectors = eigenvectors
        self.eigenvalues = eigenvalues
        self.n, self.q = eigenvectors.shape

    @classmethod
    def from_kernel(cls, K: MatmulLike, size: int | None = None) -> "EigenKernel":
        """Eigendecompose a (materialisable) kernel once, O(n^3).

        Examples
        --------
        >>> EigenKernel.from_kernel(torch.eye(3, dtype=torch.float64)).q
        3
        """
        op = as_operator(K, size=size)
        Kd = op.dense(dtype=op.dtype or torch.float64, device=op.device)
        lam, Q = torch.linalg.eigh(0.5 * (Kd + Kd.mT))
        return cls(Q, lam.clamp_min(0.0))

    @classmethod
    def from_factor(cls, Z: torch.Tensor, scale: float | None = None) -> "EigenKernel":
        """Decompose ``K = Z Z^T / scale`` (default scale = number of columns) by thin SVD.

        Costs O(n m min(n, m)); with m < n the basis has only m columns.

        Examples
        --------
        >>> EigenKernel.from_factor(torch.randn(20, 5, dtype=torch.float64)).q
        5
        """
        if Z.dim() != 2:
            raise InputError(f"Z must be an (n, m) matrix, got shape {tuple(Z.shape)}")
        scale = Z.shape[1] if scale is None else scale
        U, S, _ = torch.linalg.svd(Z, full_matrices=False)
        return cls(U, S.square() / scale)

    def _d(self, s2g, s2e):
        return s2g * self.eigenvalues + s2e

    def rotate(self, B: torch.Tensor) -> torch.Tensor:
        """``Q^T B`` (rotate data once; afterwards REML works coordinate-wise)."""
        return self.eigenvectors.mT @ B

    def solve(self, B: torch.Tensor, s2g, s2e) -> torch.Tensor:
        """``(s2g K + s2e I)^{-1} B`` for B (n,) or (n, k)."""
        B2 = B.unsqueeze(-1) if B.dim() == 1 else B
        QtB = self.rotate(B2)
        X = self.eigenvectors @ (QtB / self._d(s2g, s2e).unsqueeze(-1))
        if self.q < self.n:
            X = X + (B2 - self.eigenvectors @ QtB) / s2e
        return X.squeeze(-1) if B.dim() == 1 else X

    def logdet(self, s2g, s2e) -> torch.Tensor:
        """``log|s2g K + s2e I|``."""
        ld = self._d(s2g, s2e).log().sum()
        if self.q < self.n:
            ld = ld + (self.n - self.q) * torch.log(
                torch.as_tensor(s2e, dtype=ld.dtype, device=ld.device)
            )
        return ld

    def trace_inv(self, s2g, s2e) -> torch.Tensor:
        """``tr(V^{-1})``."""
        t = (1.0 / self._d(s2g, s2e)).sum()
        return t + (self.n - self.q) / s2e if self.q < self.n else t

    def trace_inv_kernel(self, s2g, s2e) -> torch.Tensor:
        """``tr(V^{-1} K)`` (the score term of the genetic variance)."""
        return (self.eigenvalues / self._d(s2g, s2e)).sum()

    def to_dense(self, s2g, s2e) -> torch.Tensor:
        """Dense ``V`` (tests)."""
        Q = self.eigenvectors
        V = (Q * (s2g * self.eigenvalues)) @ Q.mT
        return V + s2e * torch.eye(self.n, dtype=Q.dtype, device=Q.device)


def woodbury_solve_logdet(
    Z: torch.Tensor,
    s2g,
    s2e,
    B: torch.Tensor | None = None,
    scale: float | None = None,
    logdet: bool = True,
):
    """Solve with and take ``log|V|`` of ``V = s2g Z Z^T / scale + s2e I`` by Woodbury.

    With c = s2g / (scale s2e) and the m x m capacitance ``C = I + c Z^T Z``::

        V^{-1} B = (B - c Z C^{-1} Z^T B) / s2e,   log|V| = n log s2e + log|C|

    O(n m^2 + m^3); worthwhile when m < n. Differentiable in every input.

    Parameters
    ----------
    Z : Tensor (n, m)
    s2g, s2e : float or 0-d Tensor
        Genetic and residual variance (s2e > 0).
    B : Tensor (n, k) or (n,), optional
    scale : float, optional
        Default m.
    logdet : bool

    Returns
    -------
    solution : Tensor or None
    logdet : Tensor or None

    Examples
    --------
    >>> _ = torch.manual_seed(1)
    >>> Z = torch.randn(40, 8, dtype=torch.float64)
    >>> V = 0.5 * Z @ Z.T / 8 + 0.5 * torch.eye(40, dtype=torch.float64)
    >>> b = torch.randn(40, dtype=torch.float64)
    >>> x, ld = woodbury_solve_logdet(Z, 0.5, 0.5, b)
    >>> torch.allclose(x, torch.linalg.solve(V, b)), torch.allclose(ld, torch.logdet(V))
    (True, True)
    """
    if Z.dim() != 2:
        raise InputError(f"Z must be an (n, m) matrix, got shape {tuple(Z.shape)}")
    if float(s2e) <= 0:
        raise InputError(
            f"residual variance s2e must be > 0 for the Woodbury path, got {float(s2e)}"
        )
    n, m = Z.shape
    scale = m if scale is None else scale
    c = s2g / (scale * s2e)
    C = torch.eye(m, dtype=Z.dtype, device=Z.device) + c * (Z.mT @ Z)
    L = _cholesky(C)
    X = None
    if B is not None:
        B2 = B.unsqueeze(-1) if B.dim() == 1 else B
        inner = torch.cholesky_solve(Z.mT @ B2, L)
        X = (B2 - c * (Z @ inner)) / s2e
        X = X.squeeze(-1) if B.dim() == 1 else X
    ld = None
    if logdet:
        log_s2e = torch.log(torch.as_tensor(s2e, dtype=Z.dtype, device=Z.device))
        ld = n * log_s2e + 2.0 * L.diagonal().log().sum()
    return X, ld
