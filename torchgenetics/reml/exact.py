"""Exact restricted likelihood, score and average information.

Two evaluators for :func:`~torchgenetics.reml.aireml.optimize`:

* :class:`DenseREML` - any number of dense kernels; one Cholesky factorisation of
  ``V`` per evaluation and, for the score and AI, its inverse (``n^3 / 3``
  multiply-adds each for ``potrf``, ``trtri`` and ``lauum``), O(n^3).
* :class:`SpectralREML` - one kernel in spectral form ``K = Q diag(lam) Q^T``
  (Q n x q orthonormal; q < n for a low-rank GRM ``Z Z^T / m`` via a thin SVD, the
  Woodbury case). The data are rotated once; afterwards every evaluation costs
  O(q p^2): ``V`` is diagonal in the basis ``[Q, Q_perp]``, and everything the
  complement contributes is carried by the Gram matrix of ``[X | y]``
  projected off ``Q``.

With ``P = V^-1 - V^-1 X (X'V^-1X)^-1 X'V^-1`` and ``K_{G+1} = I``:
``loglik = -0.5 (log|V| + log|X'V^-1X| + y'Py)``,
``score_i = -0.5 (tr(P K_i) - y'P K_i P y)``, ``AI_ij = 0.5 y'P K_i P K_j P y``.
"""

from __future__ import annotations

import math

import torch

from ..errors import InputError
from ..linalg import EigenKernel
from .aireml import Evaluation, Objective

__all__ = ["DenseREML", "SpectralREML", "dense_kernel", "eigen_kernel"]

# Row tiles of the symmetric Gram accumulation in :func:`dense_kernel`: with r tiles
# the lower triangle costs (r + 1) / (2 r) of a full GEMM (56% at r = 8) while each
# tile product stays large enough for BLAS to run near peak.
_GRAM_TILES = 8
_GRAM_MIN_TILE = 512

_NOT_PD = ("V = sum_g s2_g K_g + s2_e I is not positive definite at variances {}; "
           "check that every kernel is positive semi-definite")


def _grm_blocks(op):
    """Standardized column blocks of a single-process GRM (or GRMStack component), else None."""
    from ..operators import GRM

    if not isinstance(op, GRM) or getattr(op, "distributed", False):
        return None
    return op.genotypes.blocks(device=op.device, dtype=op.dtype, standardize=True,
                               variants=op.variant_index)


def _gram_lower(blocks, n, dtype, device) -> torch.Tensor:
    """``sum_b Z_b Z_b^T`` accumulated on the lower block triangle, then mirrored."""
    tiles = max(1, min(_GRAM_TILES, n // _GRAM_MIN_TILE))
    edges = [round(i * n / tiles) for i in range(tiles + 1)]
    out = torch.zeros(n, n, dtype=dtype, device=device)
    for _, z in blocks:
        for i0, i1 in zip(edges[:-1], edges[1:], strict=True):
            out[i0:i1, :i1].addmm_(z[i0:i1], z[:i1].mT)
    for i0, i1 in zip(edges[:-1], edges[1:], strict=True):
        out[i0:i1, i1:] = out[i1:, i0:i1].mT
    return out


def dense_kernel(op) -> torch.Tensor:
    """The dense n x n form of one kernel, with half the flops for a GRM.

    A GRM ``K = Z Z^T / m`` is accumulated from its standardized genotype blocks on
    the lower block triangle only (``(r + 1) / (2 r)`` of a full product with ``r``
    row tiles) and mirrored; anything else (dense tensors, LinearOperators, sharded
    GRMs) uses its own ``to_dense``.

    Parameters
    ----------
    op : LinearOperator or torch.Tensor

    Returns
    -------
    torch.Tensor
        (n, n), symmetric.

    Examples
    --------
    >>> import numpy as np
    >>> from torchgenetics.genotypes import Genotypes
    >>> from torchgenetics.operators import GRM
    >>> G = Genotypes.from_array(np.random.default_rng(0).integers(0, 3, (40, 30)).astype(float))
    >>> K = GRM(G)
    >>> torch.allclose(dense_kernel(K), K.to_dense())
    True
    """
    if torch.is_tensor(op):
        return op
    blocks = _grm_blocks(op)
    if blocks is None:
        return op.to_dense()
    n = op.shape[-1]
    return _gram_lower(blocks, n, op.dtype, op.device).div_(op.m_eff)


def eigen_kernel(K: torch.Tensor) -> EigenKernel:
    """Eigendecomposition of a dense symmetric kernel, once per fit (O(n^3)).

    On CPU in float64 this calls LAPACK ``syevd`` through SciPy rather than
    ``torch.linalg.eigh``: on the benchmark machine (one thread, n = 4,000) SciPy's
    build took 10.2 CPU s against 15.8 s for torch's, whose tridiagonalisation is
    fast (``eigvalsh`` 2.9 s) but whose eigenvector phase is not. Other devices and
    dtypes use torch. Negative rounding-level eigenvalues are clamped to 0.

    Parameters
    ----------
    K : torch.Tensor
        (n, n) symmetric (its lower triangle is used).

    Returns
    -------
    EigenKernel

    Examples
    --------
    >>> K = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    >>> [round(v, 12) for v in eigen_kernel(K).eigenvalues.tolist()]
    [1.0, 3.0]
    """
    if K.device.type == "cpu" and K.dtype == torch.float64 and not K.requires_grad:
        from scipy.linalg import eigh

        lam, Q = eigh(K.numpy(), lower=True, driver="evd", check_finite=False)
        lam, Q = torch.from_numpy(lam), torch.from_numpy(Q)
    else:
        lam, Q = torch.linalg.eigh(K)
    return EigenKernel(Q, lam.clamp_min(0.0))


def _chol_logdet(A):
    L, info = torch.linalg.cholesky_ex(0.5 * (A + A.mT))
    if int(info) != 0:
        return None, math.nan
    return L, float(2.0 * L.diagonal().log().sum())


class DenseREML:
    """Exact REML for ``V = sum_g theta_g K_g + theta_e I`` with dense kernels.

    Parameters
    ----------
    kernels : list of torch.Tensor
        G dense symmetric n x n kernels.
    y : torch.Tensor
        (n,) phenotype.
    X : torch.Tensor
        (n, p) full-rank design.

    Examples
    --------
    >>> K = torch.eye(4, dtype=torch.float64)
    >>> ev = DenseREML([K], torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64),
    ...                torch.ones(4, 1, dtype=torch.float64))
    >>> round(ev.objective(torch.tensor([0.5, 0.5], dtype=torch.float64)).value, 6)
    -2.536897
    """

    stochastic = False

    def __init__(self, kernels, y, X):
        self.K = torch.stack([0.5 * (k + k.mT) for k in kernels])
        self.y, self.X = y, X
        self.n, self.p = X.shape
        self.G = self.K.shape[0]
        self._eye = torch.eye(self.n, dtype=y.dtype, device=y.device)

    def _V(self, theta):
        return torch.einsum("g,gij->ij", theta[:-1], self.K) + theta[-1] * self._eye

    def _solve_parts(self, theta):
        L, ld_v = _chol_logdet(self._V(theta))
        if L is None:
            return None
        B = torch.cholesky_solve(torch.cat([self.X, self.y.unsqueeze(1)], 1), L)
        VX, Vy = B[:, : self.p], B[:, self.p]
        LA, ld_a = _chol_logdet(self.X.mT @ VX)
        if LA is None:
            return None
        beta = torch.cholesky_solve((self.X.mT @ Vy).unsqueeze(1), LA).squeeze(1)
        Py = Vy - VX @ beta
        return L, ld_v, VX, LA, ld_a, beta, Py

    def objective(self, theta) -> Objective:
        """Restricted log-likelihood only (``-inf`` where V is not positive definite)."""
        parts = self._solve_parts(theta)
        if parts is None:
            return Objective(-math.inf)
        _, ld_v, _, _, ld_a, _, Py = parts
        return Objective(-0.5 * (ld_v + ld_a + float(self.y @ Py)))

    def evaluate(self, theta) -> Evaluation:
        """Likelihood, score and AI (O(n^3))."""
        parts = self._solve_parts(theta)
        if parts is None:
            raise InputError(_NOT_PD.format(theta.tolist()))
        L, ld_v, VX, LA, ld_a, beta, Py = parts
        Vinv = torch.cholesky_inverse(L)
        A_inv = torch.cholesky_inverse(LA)
        P = Vinv - VX @ A_inv @ VX.mT
        trace = torch.cat([(P.unsqueeze(0) * self.K).sum((-2, -1)), P.diagonal().sum().reshape(1)])
        U = torch.cat([(self.K @ Py).mT, Py.unsqueeze(1)], 1)
        quad = U.mT @ Py
        ai = 0.5 * U.mT @ (P @ U)
        score = -0.5 * (trace - quad)
        loglik = -0.5 * (ld_v + ld_a + float(self.y @ Py))
        return Evaluation(theta=theta.clone(), loglik=loglik, score=score, ai=0.5 * (ai + ai.mT),
                          quad=quad, trace=trace, beta=beta, beta_cov=A_inv)


class SpectralREML:
    """Exact REML for ``V = theta_g K + theta_e I`` with ``K`` in spectral form.

    Parameters
    ----------
    eigen : EigenKernel
        ``K = Q diag(lam) Q^T`` with Q (n, q) orthonormal, q <= n.
    y : torch.Tensor
        (n,) phenotype.
    X : torch.Tensor
        (n, p) design.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> Z = torch.randn(30, 5, generator=g, dtype=torch.float64)
    >>> y, X = torch.randn(30, generator=g, dtype=torch.float64), torch.ones(30, 1, dtype=torch.float64)
    >>> th = torch.tensor([0.4, 0.6], dtype=torch.float64)
    >>> a = SpectralREML(EigenKernel.from_factor(Z), y, X).objective(th).value
    >>> b = DenseREML([Z @ Z.T / 5], y, X).objective(th).value
    >>> abs(a - b) < 1e-10
    True
    """

    stochastic = False

    def __init__(self, eigen: EigenKernel, y, X):
        Q, lam = eigen.eigenvectors, eigen.eigenvalues.clamp_min(0.0)
        self.n, self.p = X.shape
        self.G = 1
        U = torch.cat([X, y.unsqueeze(1)], 1)
        self.R = Q.mT @ U  # (q, p + 1)
        self.lam = lam
        self.n_perp = self.n - Q.shape[1]
        if self.n_perp > 0:
            Up = U - Q @ self.R
            self.gram = Up.mT @ Up
        else:
            self.gram = torch.zeros(U.shape[1], U.shape[1], dtype=U.dtype, device=U.device)

    def _core(self, theta):
        sg, se = theta[0], theta[1]
        d = sg * self.lam + se
        if bool((d <= 0).any()) or float(se) <= 0:
            return None
        w, wc = 1.0 / d, 1.0 / se
        M = self.R.mT @ (w.unsqueeze(1) * self.R) + wc * self.gram
        p = self.p
        LA, ld_a = _chol_logdet(M[:p, :p])
        if LA is None:
            return None
        beta = torch.cholesky_solve(M[:p, p:], LA).squeeze(1)
        ypy = float(M[p, p] - M[:p, p] @ beta)
        ld_v = float(d.log().sum() + self.n_perp * torch.log(se))
        return w, wc, LA, ld_a, beta, ypy, ld_v

    def objective(self, theta) -> Objective:
        """Restricted log-likelihood only (O(q p^2))."""
        core = self._core(theta)
        if core is None:
            return Objective(-math.inf)
        *_, ld_a, _, ypy, ld_v = core
        return Objective(-0.5 * (ld_v + ld_a + ypy))

    def evaluate(self, theta) -> Evaluation:
        """Likelihood, score and AI (O(q p^2))."""
        core = self._core(theta)
        if core is None:
            raise InputError(_NOT_PD.format(theta.tolist()))
        w, wc, LA, ld_a, beta, ypy, ld_v = core
        p, lam, R, gram = self.p, self.lam, self.R, self.gram
        RX = R[:, :p]
        A_inv = torch.cholesky_inverse(LA)
        c = torch.cat([-beta, torch.ones(1, dtype=beta.dtype, device=beta.device)])
        r = R @ c  # rotated GLS residual
        e2 = c @ gram @ c  # squared norm of its complement part
        gx = gram[:p] @ c  # X_perp' e_perp
        py = w * r
        # traces: tr(P K) and tr(P)
        tr_k = (w * lam).sum() - (A_inv * (RX.mT @ ((w.square() * lam).unsqueeze(1) * RX))).sum()
        xvvx = RX.mT @ (w.square().unsqueeze(1) * RX) + wc**2 * gram[:p, :p]
        tr_e = w.sum() + self.n_perp * wc - (A_inv * xvvx).sum()
        # v_K = K P y (no complement part); v_E = P y (complement part wc * e_perp)
        vq = torch.stack([lam * py, py])  # (2, q)
        alpha = torch.stack([torch.zeros_like(wc), wc])  # complement coefficients
        quad = torch.stack([(vq[0] * py).sum(), (py * py).sum() + wc**2 * e2])
        vv = (vq * w) @ vq.mT + torch.outer(alpha, alpha) * wc * e2
        xv = RX.mT @ (w.unsqueeze(1) * vq.mT) + wc * torch.outer(gx, alpha)  # (p, 2)
        ai = 0.5 * (vv - xv.mT @ A_inv @ xv)
        trace = torch.stack([tr_k, tr_e])
        score = -0.5 * (trace - quad)
        return Evaluation(theta=theta.clone(), loglik=-0.5 * (ld_v + ld_a + ypy), score=score,
                          ai=0.5 * (ai + ai.mT), quad=quad, trace=trace, beta=beta, beta_cov=A_inv)
