"""One symmetric kernel as ``K = Q T Q'`` with ``T`` block tridiagonal, for exact REML.

A full eigendecomposition (``syevd``) spends most of its time reducing the matrix to
tridiagonal form with matrix-vector products, which run at memory speed. Stopping
at a *block* tridiagonal ``T`` (block size b) needs only level-3 BLAS: each block
column is QR-factored and the trailing matrix updated by a symmetric rank-2b
product (``dsymm`` + ``dsyr2k``), ``4/3 n^3`` flops at matrix-product speed (the
first stage of LAPACK's two-stage eigensolvers). The reflectors are kept, so data
are rotated once (``Q' U``); afterwards ``V = a K + c I = Q (a T + c I) Q'`` is
factored by a block Cholesky in O(n b^2), and its log-determinant, solves and
the traces ``tr(V^-1)``, ``tr(V^-1 K)`` (diagonal blocks of the inverse by the
block Takahashi recursion) are exact, each evaluation costing O(n b^2).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from scipy.linalg import cho_solve, cholesky, solve_triangular
from scipy.linalg.blas import dgemm, dgemv
from scipy.linalg.lapack import dgeqrf

from ..errors import InputError
from ._blas import one_thread, symm_lower, syr2k_lower

__all__ = ["BlockTridiagonalKernel", "ShiftedFactor"]

_BLOCK = 128


def _small_blocks(method):
    """Run a method made of many b x b operations with one BLAS/OpenMP thread."""
    @functools.wraps(method)
    def wrapped(*args, **kwargs):
        with one_thread():
            return method(*args, **kwargs)
    return wrapped


def _reflector_core(V: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Upper-triangular T with ``H_1 ... H_w = I - V T V'`` (LAPACK ``larft``, forward)."""
    w = tau.size
    VtV = dgemm(1.0, V, V, trans_a=1)
    T = np.zeros((w, w))
    for j in range(w):
        T[j, j] = tau[j]
        if j:
            T[:j, j] = dgemv(-tau[j], T[:j, :j], VtV[:j, j])
    return T


class ShiftedFactor:
    """Block Cholesky factor of ``S = a T + c I`` for a :class:`BlockTridiagonalKernel`.

    Attributes
    ----------
    logdet : float
        ``log|S|`` (equal to ``log|a K + c I|``).

    Examples
    --------
    >>> K = torch.tensor([[2.0, 1.0, 0.0], [1.0, 2.0, 1.0], [0.0, 1.0, 2.0]], dtype=torch.float64)
    >>> f = BlockTridiagonalKernel.from_kernel(K, block=1).factor(1.0, 1.0)
    >>> round(f.logdet, 10) == round(float(torch.logdet(K + torch.eye(3, dtype=torch.float64))), 10)
    True
    """

    def __init__(self, kernel: "BlockTridiagonalKernel", a: float, c: float, L: list, C: list):
        self.kernel, self.a, self.c = kernel, a, c
        self.L, self.C = L, C
        self.logdet = float(sum(2.0 * np.log(np.diagonal(li)).sum() for li in L))

    @_small_blocks
    def solve(self, W: np.ndarray) -> np.ndarray:
        """``S^-1 W`` for W (n, k) in the rotated basis."""
        e, L, C = self.kernel.edges, self.L, self.C
        z = np.empty_like(W)
        prev = None
        for i in range(len(L)):
            rhs = W[e[i]:e[i + 1]] if prev is None else W[e[i]:e[i + 1]] - C[i - 1] @ prev
            prev = z[e[i]:e[i + 1]] = solve_triangular(L[i], rhs, lower=True, check_finite=False)
        x = np.empty_like(W)
        nxt = None
        for i in reversed(range(len(L))):
            rhs = z[e[i]:e[i + 1]] if nxt is None else z[e[i]:e[i + 1]] - C[i].T @ nxt
            nxt = x[e[i]:e[i + 1]] = solve_triangular(L[i], rhs, lower=True, trans="T", check_finite=False)
        return x

    @_small_blocks
    def traces(self) -> tuple[float, float]:
        """``(tr(S^-1), tr(S^-1 T))``, from the diagonal and first sub-diagonal blocks of ``S^-1``."""
        k, L, C = self.kernel, self.L, self.C
        G = None
        tr_inv = tr_inv_t = 0.0
        for i in reversed(range(len(L))):
            eye = np.eye(L[i].shape[0])
            Gi = cho_solve((L[i], True), eye, check_finite=False)
            if G is not None:
                F = solve_triangular(L[i], C[i].T, lower=True, trans="T", check_finite=False).T  # C_i L_i^-1
                GF = G @ F
                Gi = Gi + F.T @ GF
                tr_inv_t -= 2.0 * float((GF * k.E[i]).sum())
            tr_inv += float(np.trace(Gi))
            tr_inv_t += float((Gi * k.D[i]).sum())
            G = Gi
        return tr_inv, tr_inv_t


class BlockTridiagonalKernel:
    """``K = Q T Q'`` with ``T`` symmetric block tridiagonal and ``Q`` orthogonal.

    Built by :meth:`from_kernel` (CPU, float64). ``T`` has diagonal blocks ``D[i]``
    and sub-diagonal blocks ``E[i]`` on the block ``edges``; ``Q`` is the product of
    the stored block reflectors.

    Parameters
    ----------
    D, E : list of np.ndarray
        Diagonal (symmetric) and sub-diagonal blocks of ``T``.
    edges : list of int
        Block boundaries ``0 = e_0 < ... < e_nb = n``.
    reflectors : list of (int, np.ndarray, np.ndarray)
        ``(start, V, Tcore)``: ``H = I - V Tcore V'`` acting on rows ``start:``.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> Z = torch.randn(50, 30, generator=g, dtype=torch.float64)
    >>> K = Z @ Z.T / 30
    >>> bt = BlockTridiagonalKernel.from_kernel(K, block=8)
    >>> f = bt.factor(0.4, 0.6)
    >>> V = 0.4 * K + 0.6 * torch.eye(50, dtype=torch.float64)
    >>> abs(f.logdet - float(torch.logdet(V))) < 1e-10
    True
    >>> b = torch.randn(50, 1, generator=g, dtype=torch.float64)
    >>> x = bt.unrotate(f.solve(bt.rotate(b)))
    >>> bool(torch.allclose(torch.as_tensor(x), torch.linalg.solve(V, b)))
    True
    """

    def __init__(self, D: list, E: list, edges: list, reflectors: list):
        self.D, self.E, self.edges, self.reflectors = D, E, edges, reflectors
        self.n = edges[-1]

    @classmethod
    def from_kernel(cls, K, block: int = _BLOCK, overwrite: bool = False) -> "BlockTridiagonalKernel":
        """Reduce a dense symmetric kernel (its lower triangle is read), ``4/3 n^3`` flops.

        Parameters
        ----------
        K : torch.Tensor or np.ndarray
            (n, n) float64 on CPU.
        block : int
            Block size b (the bandwidth of ``T``).
        overwrite : bool
            Reduce in the memory of a C- or column-contiguous ``K`` (destroying it)
            instead of a copy.

        Returns
        -------
        BlockTridiagonalKernel

        Examples
        --------
        >>> BlockTridiagonalKernel.from_kernel(torch.eye(5, dtype=torch.float64), block=2).edges
        [0, 2, 4, 5]
        """
        A = K.detach().numpy() if torch.is_tensor(K) else np.asarray(K)
        if A.ndim != 2 or A.shape[0] != A.shape[1] or A.dtype != np.float64:
            raise InputError(f"the kernel must be a square float64 matrix, got shape {A.shape} and dtype {A.dtype}")
        if block < 1:
            raise InputError(f"block must be >= 1, got {block}")
        # a symmetric C-ordered matrix is its own transpose, which is column-major
        A = A.T if A.flags.c_contiguous and not A.flags.f_contiguous else A
        A = A if overwrite and A.flags.f_contiguous else np.array(A, order="F")
        n = A.shape[0]
        edges = list(range(0, n, block)) + [n]
        reflectors = []
        for i in range(len(edges) - 3):
            k0, s = edges[i], edges[i + 1]
            panel = A[s:, k0:s]
            qr, tau, _, info = dgeqrf(panel)
            if info != 0:
                raise InputError(f"QR of block column {i} failed (LAPACK info {info})")
            w = s - k0
            V = np.asfortranarray(np.tril(qr[:, :w], -1))
            V[np.arange(w), np.arange(w)] = 1.0
            Tc = _reflector_core(V, tau)
            # every product through SciPy's BLAS: mixing in numpy's own BLAS thread pool
            # makes the two pools' spinning threads fight over the cores
            X = symm_lower(A, s, dgemm(1.0, V, Tc))
            M = dgemm(1.0, Tc, dgemm(1.0, V, X, trans_a=1), trans_a=1)
            W = dgemm(-0.5, V, M, beta=1.0, c=X, overwrite_c=1)  # X - V M / 2
            syr2k_lower(A, s, V, W)
            panel[:] = 0.0
            panel[:w] = np.triu(qr[:w])
            reflectors.append((s, V, Tc))
        D, E = [], []
        for i in range(len(edges) - 1):
            a, b = edges[i], edges[i + 1]
            low = np.tril(A[a:b, a:b])
            D.append(low + np.tril(low, -1).T)
            if i + 2 < len(edges):
                E.append(np.array(A[b:edges[i + 2], a:b]))
        return cls(D, E, edges, reflectors)

    def _as_numpy(self, U) -> tuple[np.ndarray, bool]:
        arr = U.detach().cpu().numpy() if torch.is_tensor(U) else np.asarray(U, dtype=np.float64)
        return (arr[:, None], True) if arr.ndim == 1 else (arr, False)

    @_small_blocks
    def rotate(self, U) -> np.ndarray:
        """``Q' U`` for U (n,) or (n, k)."""
        X, flat = self._as_numpy(U)
        X = np.array(X, dtype=np.float64)
        for s, V, Tc in self.reflectors:
            X[s:] -= V @ (Tc.T @ (V.T @ X[s:]))
        return X[:, 0] if flat else X

    @_small_blocks
    def unrotate(self, U) -> np.ndarray:
        """``Q U`` (the inverse of :meth:`rotate`)."""
        X, flat = self._as_numpy(U)
        X = np.array(X, dtype=np.float64)
        for s, V, Tc in reversed(self.reflectors):
            X[s:] -= V @ (Tc @ (V.T @ X[s:]))
        return X[:, 0] if flat else X

    @_small_blocks
    def matmul(self, W: np.ndarray) -> np.ndarray:
        """``T W`` for W (n, k) in the rotated basis."""
        e, out = self.edges, np.empty_like(W)
        for i in range(len(self.D)):
            rows = slice(e[i], e[i + 1])
            acc = self.D[i] @ W[rows]
            if i > 0:
                acc += self.E[i - 1] @ W[e[i - 1]:e[i]]
            if i < len(self.E):
                acc += self.E[i].T @ W[e[i + 1]:e[i + 2]]
            out[rows] = acc
        return out

    @_small_blocks
    def factor(self, a: float, c: float) -> ShiftedFactor | None:
        """Block Cholesky of ``a T + c I``; None when it is not positive definite."""
        L, C = [], []
        for i, Di in enumerate(self.D):
            S = a * Di
            S[np.diag_indices_from(S)] += c
            if i > 0:
                S -= C[-1] @ C[-1].T
            try:
                Li = cholesky(S, lower=True, check_finite=False)
            except np.linalg.LinAlgError:
                return None
            L.append(Li)
            if i < len(self.E):
                C.append(solve_triangular(Li, a * self.E[i].T, lower=True, check_finite=False).T)
        return ShiftedFactor(self, float(a), float(c), L, C)
