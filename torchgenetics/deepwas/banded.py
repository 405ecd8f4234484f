"""Banded-LD helpers of the iterative likelihood: fast products and a banded Cholesky preconditioner.

With banded LD (bandwidth ``w``) the region covariance ``K = D R_{w,:} F R_{:,w} D + sigma R_ww``
is itself banded (bandwidth at most ``2 w``), so

* :class:`BlockTridiagonal` multiplies by ``R`` with three batched matrix products
  (blocks of ``b >= w`` rows) instead of one small operation per diagonal;
* :func:`bands_from_matvec` reads the band of any banded symmetric operator from
  ``2 B + 1`` products with comb vectors (columns ``j = c mod (2 B + 1)`` never share a row);
* :class:`BandedCholeskyPreconditioner` is LAPACK's banded Cholesky of ``K`` at a
  reference prior (O(q B^2)); it follows the engine's
  :class:`~torchgenetics.linalg.Preconditioner` interface (``solve``, ``logdet``,
  ``root_matmul``) so block PCG and preconditioned SLQ use it unchanged.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.linalg import cho_solve_banded, cholesky_banded

from torchgenetics.errors import InputError
from torchgenetics.linalg import Preconditioner

__all__ = ["BlockTridiagonal", "bands_from_matvec", "BandedCholeskyPreconditioner"]

# Smallest block of the block-tridiagonal form (few large products beat many small ones).
_MIN_BLOCK = 32


class BlockTridiagonal:
    """A symmetric banded matrix as diagonal blocks ``D_i`` and super-diagonal blocks ``U_i``.

    Parameters
    ----------
    bands : torch.Tensor, shape (w + 1, n)
        Upper diagonals ``bands[d, i] = A[i, i + d]`` (as ``BandedLD.bands``).
    block : int, optional
        Block size ``b >= w`` (default ``max(w, 32)``).

    Examples
    --------
    >>> A = torch.tensor([[2.0, 1.0, 0.0], [1.0, 2.0, 1.0], [0.0, 1.0, 2.0]], dtype=torch.float64)
    >>> bands = torch.stack([A.diagonal(), torch.cat([A.diagonal(1), torch.zeros(1, dtype=A.dtype)])])
    >>> T = BlockTridiagonal(bands, block=1)
    >>> torch.allclose(T.matmul(torch.eye(3, dtype=A.dtype)), A)
    True
    """

    def __init__(self, bands: torch.Tensor, block: int | None = None):
        w = bands.shape[0] - 1
        n = bands.shape[1]
        b = max(w, _MIN_BLOCK) if block is None else int(block)
        if b < max(w, 1):
            raise InputError(f"block size {b} is smaller than the bandwidth {w}")
        b = max(1, min(b, n))
        nb = -(-n // b)
        self.n, self.b, self.nb = n, b, nb
        dev = bands.device
        r = torch.arange(b, device=dev)
        base = (torch.arange(nb, device=dev) * b).view(nb, 1, 1)
        rows = base + r.view(1, b, 1)

        def gather(cols):
            lo, hi = torch.minimum(rows, cols), torch.maximum(rows, cols)
            d = hi - lo
            ok = (d <= w) & (hi < n)
            vals = bands[d.clamp(max=w), lo.clamp(max=n - 1)]
            return torch.where(ok, vals, torch.zeros((), dtype=bands.dtype, device=dev))

        self.diag = gather(base + r.view(1, 1, b))
        self.upper = gather(base + b + r.view(1, 1, b))[:-1] if nb > 1 else None

    def matmul(self, X: torch.Tensor) -> torch.Tensor:
        """``A X`` for X (n, k).

        Examples
        --------
        >>> T = BlockTridiagonal(torch.ones(1, 4, dtype=torch.float64))
        >>> T.matmul(torch.ones(4, 2, dtype=torch.float64)).sum().item()
        8.0
        """
        n, b, nb = self.n, self.b, self.nb
        k = X.shape[1]
        Xp = X if nb * b == n else torch.cat([X, X.new_zeros(nb * b - n, k)])
        Xb = Xp.reshape(nb, b, k)
        Y = torch.bmm(self.diag, Xb)
        if self.upper is not None:
            Y[:-1] += torch.bmm(self.upper, Xb[1:])
            Y[1:] += torch.bmm(self.upper.mT, Xb[:-1])
        return Y.reshape(nb * b, k)[:n]


def bands_from_matvec(matvec, n: int, bandwidth: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """Upper diagonals ``(B + 1, n)`` of a symmetric banded operator from ``2 B + 1`` products.

    Parameters
    ----------
    matvec : callable
        ``X (n, k) -> A X``.
    n : int
    bandwidth : int
        ``B``: ``A[i, j] = 0`` for ``|i - j| > B``.
    dtype, device : optional

    Returns
    -------
    torch.Tensor
        ``bands[d, i] = A[i, i + d]`` (zero past the end).

    Examples
    --------
    >>> A = torch.tensor([[2.0, 1.0, 0.0], [1.0, 2.0, 1.0], [0.0, 1.0, 2.0]], dtype=torch.float64)
    >>> bands_from_matvec(lambda X: A @ X, 3, 1).tolist()
    [[2.0, 2.0, 2.0], [1.0, 1.0, 0.0]]
    """
    B = max(0, min(int(bandwidth), n - 1))
    period = 2 * B + 1
    colors = torch.arange(n, device=device) % period
    probes = torch.zeros(n, min(period, n), dtype=dtype, device=device)
    probes[torch.arange(n, device=device), colors.clamp(max=probes.shape[1] - 1)] = 1.0
    Y = matvec(probes)
    i = torch.arange(n, device=device)
    out = torch.zeros(B + 1, n, dtype=dtype, device=device)
    for d in range(B + 1):
        j = i[: n - d] + d
        out[d, : n - d] = Y[i[: n - d], colors[j]]
    return out


class BandedCholeskyPreconditioner(Preconditioner):
    """``M = L L^T`` from LAPACK's banded Cholesky of a symmetric positive definite band.

    Parameters
    ----------
    bands : torch.Tensor, shape (B + 1, n)
        Upper diagonals of ``M`` (e.g. from :func:`bands_from_matvec`).
    jitter : float
        If the factorisation fails, retry with ``jitter * mean(diag)`` added (x10 up to
        three times).

    Examples
    --------
    >>> A = torch.tensor([[2.0, 1.0, 0.0], [1.0, 2.0, 1.0], [0.0, 1.0, 2.0]], dtype=torch.float64)
    >>> P = BandedCholeskyPreconditioner(bands_from_matvec(lambda X: A @ X, 3, 1))
    >>> torch.allclose(P.solve(A), torch.eye(3, dtype=torch.float64)), torch.allclose(P.logdet(), torch.logdet(A))
    (True, True)
    """

    def __init__(self, bands: torch.Tensor, jitter: float = 1e-10):
        self.n = int(bands.shape[1])
        self.dtype, self.device = bands.dtype, bands.device
        ab = bands.detach().cpu().numpy().astype(np.float64, copy=True)
        scale = float(np.abs(ab[0]).mean()) if self.n else 1.0
        factor = None
        for attempt in range(4):
            trial = ab.copy()
            if attempt:
                trial[0] += jitter * 10.0 ** (attempt - 1) * scale
            try:
                factor = cholesky_banded(trial, lower=True, check_finite=False)
                break
            except np.linalg.LinAlgError:
                continue
        if factor is None:
            raise InputError("banded Cholesky preconditioner: the matrix is not positive definite "
                             "(repair the LD with repair='ridge')")
        self._cb = factor
        self._L = torch.as_tensor(factor, dtype=self.dtype, device=self.device)

    def solve(self, R: torch.Tensor) -> torch.Tensor:
        """``M^{-1} R``."""
        x = cho_solve_banded((self._cb, True), R.detach().cpu().numpy(), check_finite=False)
        return torch.as_tensor(x, dtype=self.dtype, device=R.device)

    def _lower(self, G, transpose: bool):
        L, n = self._L, self.n
        G2 = G.unsqueeze(-1) if G.dim() == 1 else G
        out = torch.zeros_like(G2)
        for d in range(L.shape[0]):
            coef = L[d, : n - d].unsqueeze(-1)
            if transpose:
                out[: n - d] += coef * G2[d:]
            else:
                out[d:] += coef * G2[: n - d]
        return out.squeeze(-1) if G.dim() == 1 else out

    def matmul(self, X: torch.Tensor) -> torch.Tensor:
        """``M X = L (L^T X)``."""
        return self._lower(self._lower(X, True), False)

    def logdet(self) -> torch.Tensor:
        """``2 sum log diag L``."""
        return 2.0 * self._L[0].log().sum()

    @property
    def root_size(self) -> int:
        return self.n

    def root_matmul(self, G: torch.Tensor) -> torch.Tensor:
        """``L G``."""
        return self._lower(G, False)

    def diagonal(self) -> torch.Tensor:
        """Diagonal of ``L L^T``."""
        L, n = self._L, self.n
        out = torch.zeros(n, dtype=self.dtype, device=self.device)
        for d in range(L.shape[0]):
            out[d:] += L[d, : n - d].square()
        return out

