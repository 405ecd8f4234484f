"""Residual bookkeeping for flash updates: the statistics each EBNM subproblem needs.

For factor ``k`` and mode ``m`` (0 = loadings, 1 = factors) the EBNM problem has
``x = num / den`` and ``s = den^{-1/2}`` with

    num_i = sum_j w_ij (Y_ij - sum_{k' != k} l_ik' f_jk') f_jk,    den_i = sum_j w_ij E[f_jk^2]

(``w = tau`` times the observed mask), and the ELBO needs the expected squared
residuals ``E R_ij^2 = (Y - L F^T)_ij^2 + sum_k (E l^2 E f^2 - l^2 f^2)_ijk``.

* :class:`ImplicitEngine` (constant variance, nothing missing, no ``S``) never
  forms an ``n x p`` matrix: it keeps ``t_k = l_k' Y f_k`` and the Gram matrices
  ``L'L``, ``F'F``, so ``sum E R^2`` comes from crossproducts, as in flashier's
  parallel note.
* :class:`ExplicitEngine` stores the residual ``R = Y - L F^T`` and the variance
  part ``V`` and updates them by rank-one corrections; it serves row/column
  variances, missing data and given standard errors.
"""

from __future__ import annotations

import torch

from .data import FlashData

__all__ = ["ImplicitEngine", "ExplicitEngine", "make_engine"]


class ImplicitEngine:
    """Crossproduct bookkeeping for constant variance on complete data.

    Examples
    --------
    >>> d = FlashData.build(torch.eye(3, dtype=torch.float64))
    >>> e = ImplicitEngine(d)
    >>> M = [torch.ones(3, 1, dtype=torch.float64), torch.ones(3, 1, dtype=torch.float64)]
    >>> e.refresh(M, [m.clone() for m in M])
    >>> e.er2_total()
    6.0
    """

    def __init__(self, data: FlashData):
        self.data = data
        self.YY = data.y2_mean * data.n_obs

    def refresh(self, M: list[torch.Tensor], M2: list[torch.Tensor]) -> None:
        """Recompute all caches from the current moments ``M = [L, F]``, ``M2 = [L2, F2]``."""
        self.M, self.M2 = M, M2
        self.t = (M[0] * (self.data.Y @ M[1])).sum(0)
        self.G = [M[0].T @ M[0], M[1].T @ M[1]]
        self.s2 = [M2[0].sum(0), M2[1].sum(0)]
        self._prod = None

    def _times(self, v: torch.Tensor, mode: int) -> torch.Tensor:
        return self.data.Y @ v if mode == 0 else self.data.Y.T @ v

    def residual_times(self, v: torch.Tensor, mode: int) -> torch.Tensor:
        """``R v`` (mode 0) or ``R^T v`` (mode 1) with ``R = Y - L F^T``."""
        other = self.M[1 - mode]
        return self._times(v, mode) - self.M[mode] @ (other.T @ v)

    def mask_times(self, v: torch.Tensor, mode: int) -> torch.Tensor:
        """``Z v`` / ``Z^T v`` for the observed mask ``Z`` (all ones here)."""
        size = self.data.n if mode == 0 else self.data.p
        return v.sum().expand(size)

    def stats(self, k: int, mode: int, tau: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(num, den)`` of factor ``k``'s EBNM problem in ``mode``."""
        other = 1 - mode
        v = self.M[other][:, k]
        prod = self._times(v, mode)
        self._prod = prod
        own = self.M[mode]
        num = prod - own @ self.G[other][:, k] + own[:, k] * self.G[other][k, k]
        den = self.s2[other][k].expand_as(num)
        return tau * num, tau * den

    def commit(self, k: int, mode: int, new: torch.Tensor, new2: torch.Tensor) -> None:
        """Record the new moments of factor ``k`` in ``mode`` (after :meth:`stats`, or any change)."""
        other = 1 - mode
        if self._prod is None:
            self._prod = self._times(self.M[other][:, k], mode)
        self.M[mode][:, k] = new
        self.M2[mode][:, k] = new2
        self.t[k] = new @ self._prod
        g = self.M[mode].T @ new
        self.G[mode][:, k] = g
        self.G[mode][k, :] = g
        self.s2[mode][k] = new2.sum()
        self._prod = None

    def stats_all(self, mode: int, tau: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(num, den)`` of every factor at once (one matrix product)."""
        other = 1 - mode
        prod = self._times(self.M[other], mode)
        self._prod_all = prod
        own = self.M[mode]
        num = prod - own @ self.G[other] + own * torch.diagonal(self.G[other])
        den = self.s2[other].expand_as(num)
        return tau * num, tau * den

    def commit_all(self, mode: int, new: torch.Tensor, new2: torch.Tensor) -> None:
        """Record new moments of every factor in ``mode`` (after :meth:`stats_all`)."""
        self.M[mode].copy_(new)
        self.M2[mode].copy_(new2)
        self.t = (new * self._prod_all).sum(0)
        self.G[mode] = new.T @ new
        self.s2[mode] = new2.sum(0)

    def er2_total(self) -> float:
        """``sum_ij E R_ij^2`` from crossproducts (no ``n x p`` matrix)."""
        G0, G1 = self.G
        total = (
            self.YY
            - 2.0 * self.t.sum()
            + (G0 * G1).sum()
            - (torch.diagonal(G0) * torch.diagonal(G1)).sum()
            + (self.s2[0] * self.s2[1]).sum()
        )
        return float(total)


class ExplicitEngine:
    """Stored-residual bookkeeping for row/column variances, missing values and given ``S``.

    Examples
    --------
    >>> d = FlashData.build(torch.eye(3, dtype=torch.float64), var_type=1)
    >>> e = ExplicitEngine(d)
    >>> M = [torch.ones(3, 1, dtype=torch.float64), torch.ones(3, 1, dtype=torch.float64)]
    >>> e.refresh(M, [m.clone() for m in M])
    >>> e.er2().sum().item()
    6.0
    """

    def __init__(self, data: FlashData):
        self.data = data
        self.W = None

    def set_weights(self, tau: torch.Tensor) -> None:
        """Use precisions ``tau`` (broadcastable to ``(n, p)``) in the next statistics."""
        self.W = self.data.weights(tau)

    def refresh(self, M: list[torch.Tensor], M2: list[torch.Tensor]) -> None:
        """Recompute the residual and variance matrices from the moments."""
        self.M, self.M2 = M, M2
        self.R = self.data.Y - M[0] @ M[1].T
        self.V = M2[0] @ M2[1].T - (M[0] * M[0]) @ (M[1] * M[1]).T

    def _wtimes(self, A: torch.Tensor | None, v: torch.Tensor, mode: int) -> torch.Tensor:
        """``(W o A) v`` (mode 0) or ``(W o A)^T v`` (mode 1); ``A = None`` means all ones."""
        W = self.W
        full = W.ndim == 2 and W.shape == self.data.Y.shape
        if full:
            B = W if A is None else W * A
            return B @ v if mode == 0 else B.T @ v
        # W = a b^T broadcast from (n, 1) / (1, p) / scalar
        a = W.reshape(-1, 1) if W.ndim == 2 and W.shape[1] == 1 else None
        b = W.reshape(1, -1) if W.ndim == 2 and W.shape[0] == 1 else None
        c = W if W.ndim == 0 else None
        if mode == 0:
            vv = v * b.reshape(-1, *([1] * (v.ndim - 1))) if b is not None else v
            out = (A @ vv) if A is not None else vv.sum(0).expand(self.data.n, *v.shape[1:]).clone()
            out = out * a.reshape(-1, *([1] * (v.ndim - 1))) if a is not None else out
        else:
            vv = v * a.reshape(-1, *([1] * (v.ndim - 1))) if a is not None else v
            out = (A.T @ vv) if A is not None else vv.sum(0).expand(self.data.p, *v.shape[1:]).clone()
            out = out * b.reshape(-1, *([1] * (v.ndim - 1))) if b is not None else out
        return out * c if c is not None else out

    def residual_times(self, v: torch.Tensor, mode: int) -> torch.Tensor:
        """``(Z o R) v`` / ``(Z o R)^T v`` over observed entries."""
        Z = self.data.mask
        A = self.R if Z is None else self.R * Z
        return A @ v if mode == 0 else A.T @ v

    def mask_times(self, v: torch.Tensor, mode: int) -> torch.Tensor:
        """``Z v`` / ``Z^T v`` for the observed mask ``Z``."""
        Z = self.data.mask
        if Z is None:
            size = self.data.n if mode == 0 else self.data.p
            return v.sum().expand(size)
        return Z @ v if mode == 0 else Z.T @ v

    def stats(self, k: int, mode: int, tau: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(num, den)`` of factor ``k``'s EBNM problem in ``mode`` (``tau`` set by :meth:`set_weights`)."""
        other = 1 - mode
        v, v2 = self.M[other][:, k], self.M2[other][:, k]
        num = self._wtimes(self.R, v, mode) + self.M[mode][:, k] * self._wtimes(None, v * v, mode)
        den = self._wtimes(None, v2, mode)
        return num, den

    def commit(self, k: int, mode: int, new: torch.Tensor, new2: torch.Tensor) -> None:
        """Rank-one updates of ``R`` and ``V`` for the new moments of factor ``k`` in ``mode``."""
        other = 1 - mode
        old, old2 = self.M[mode][:, k].clone(), self.M2[mode][:, k].clone()
        v, v2 = self.M[other][:, k], self.M2[other][:, k]
        d1, d2, dsq = new - old, new2 - old2, new * new - old * old
        if mode == 0:
            self.R.addr_(d1, v, alpha=-1.0)
            self.V.addr_(d2, v2).addr_(dsq, v * v, alpha=-1.0)
        else:
            self.R.addr_(v, d1, alpha=-1.0)
            self.V.addr_(v2, d2).addr_(v * v, dsq, alpha=-1.0)
        self.M[mode][:, k] = new
        self.M2[mode][:, k] = new2

    def stats_all(self, mode: int, tau: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(num, den)`` of every factor at once."""
        other = 1 - mode
        V, V2 = self.M[other], self.M2[other]
        num = self._wtimes(self.R, V, mode) + self.M[mode] * self._wtimes(None, V * V, mode)
        den = self._wtimes(None, V2, mode)
        return num, den

    def commit_all(self, mode: int, new: torch.Tensor, new2: torch.Tensor) -> None:
        """Record new moments of every factor in ``mode``."""
        other = self.M[1 - mode]
        delta = new - self.M[mode]
        if mode == 0:
            self.R.sub_(delta @ other.T)
        else:
            self.R.sub_(other @ delta.T)
        self.M[mode].copy_(new)
        self.M2[mode].copy_(new2)
        M, M2 = self.M, self.M2
        self.V = M2[0] @ M2[1].T - (M[0] * M[0]) @ (M[1] * M[1]).T

    def er2(self) -> torch.Tensor:
        """``E R_ij^2`` as an ``(n, p)`` matrix (meaningless where missing)."""
        return self.R * self.R + self.V


def make_engine(data: FlashData):
    """The cheapest engine the data allow.

    Examples
    --------
    >>> type(make_engine(FlashData.build(torch.ones(2, 2)))).__name__
    'ImplicitEngine'
    """
    return ImplicitEngine(data) if data.implicit else ExplicitEngine(data)
