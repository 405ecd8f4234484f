"""Exact restricted likelihood, score and average information.

Three evaluators for :func:`~torchgenetics.reml.aireml.optimize`:

* :class:`BandREML` - one dense kernel reduced once to ``K = Q T Q'`` with ``T``
  block tridiagonal (:class:`~torchgenetics.linalg.BlockTridiagonalKernel`,
  ``4/3 n^3`` flops of level-3 BLAS); ``[X | y]`` is rotated once and every
  evaluation is a block Cholesky of ``theta_g T + theta_e I``, O(n b^2).
* :class:`DenseREML` - any number of dense kernels; one Cholesky factorisation of
  ``V`` per evaluation and, for the traces, its inverse (``n^3 / 3``
  multiply-adds each for ``potrf``, ``trtri`` and ``lauum``), O(n^3).
* :class:`SpectralREML` - one kernel in spectral form ``K = Q diag(lam) Q^T``
  (Q n x q orthonormal; q < n for a low-rank GRM ``Z Z^T / m`` via a thin SVD, the
  Woodbury case; an eigendecomposition off CPU). The data are rotated once;
  afterwards every evaluation costs O(q p^2).

A dense GRM is accumulated from standardized genotype blocks (:func:`dense_kernel`),
with float32 products accumulated in float64 by default.

With ``P = V^-1 - V^-1 X (X'V^-1X)^-1 X'V^-1`` and ``K_{G+1} = I``:
``loglik = -0.5 (log|V| + log|X'V^-1X| + y'Py)``,
``score_i = -0.5 (tr(P K_i) - y'P K_i P y)``, ``AI_ij = 0.5 y'P K_i P K_j P y``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import InputError
from ..linalg import EigenKernel
from .aireml import Evaluation, Objective

__all__ = ["BandREML", "DenseREML", "SpectralREML", "builds_from_genotypes", "dense_kernel"]

# Row tiles of the symmetric Gram accumulation in :func:`dense_kernel`: with r tiles
# the lower triangle costs (r + 1) / (2 r) of a full GEMM (56% at r = 8) while each
# tile product stays large enough for BLAS to run near peak.
_GRAM_TILES = 8
_GRAM_MIN_TILE = 512

_NOT_PD = ("V = sum_g s2_g K_g + s2_e I is not positive definite at variances {}; "
           "check that every kernel is positive semi-definite")


# Genotype columns per block of the Gram build: wide enough for BLAS to run at its
# peak and for the float64 accumulation of each mixed-precision block product to cost
# little next to the product.
_GRAM_BLOCK_COLUMNS = 2048
PRECISIONS = ("mixed", "double")


def builds_from_genotypes(op) -> bool:
    """Whether :func:`dense_kernel` accumulates ``op`` from genotype blocks into a new matrix.

    Examples
    --------
    >>> builds_from_genotypes(torch.eye(2))
    False
    """
    from ..operators import GRM

    return isinstance(op, GRM)


def _grm_blocks(op, precision: str):
    """Standardized column blocks of a GRM (or GRMStack component; this rank's share when
    sharded), else None."""
    from ..memory import dtype_bytes, plan_block

    if not builds_from_genotypes(op):
        return None
    dtype = torch.float32 if precision == "mixed" and op.dtype == torch.float64 else op.dtype
    block_size = plan_block(max(1, op.local_variant_index.size), op.shape[-1] * dtype_bytes(dtype),
                            live_copies=3, device=op.device, min_block=1, max_block=_GRAM_BLOCK_COLUMNS)
    return op.local_blocks(block_size=block_size, dtype=dtype)


def _gram_lower(blocks, n, dtype, device) -> torch.Tensor:
    """``sum_b Z_b Z_b^T`` accumulated on the lower triangle, then mirrored.

    Blocks of a lower precision than ``dtype`` are multiplied in their own precision
    and each block product is added in ``dtype``. On CPU the products are BLAS
    ``syrk`` calls (half a GEMM); elsewhere GEMMs over a lower block triangle.
    """
    if torch.device(device).type == "cpu" and dtype in (torch.float32, torch.float64):
        return _gram_lower_syrk(blocks, n, dtype)
    tiles = max(1, min(_GRAM_TILES, n // _GRAM_MIN_TILE))
    edges = [round(i * n / tiles) for i in range(tiles + 1)]
    out = torch.zeros(n, n, dtype=dtype, device=device)
    for _, z in blocks:
        for i0, i1 in zip(edges[:-1], edges[1:], strict=True):
            if z.dtype == dtype:
                out[i0:i1, :i1].addmm_(z[i0:i1], z[:i1].mT)
            else:
                out[i0:i1, :i1].add_(z[i0:i1] @ z[:i1].mT)
    for i0, i1 in zip(edges[:-1], edges[1:], strict=True):
        out[i0:i1, i1:] = out[i1:, i0:i1].mT
    return out


def _gram_lower_syrk(blocks, n, dtype) -> torch.Tensor:
    from ..linalg._blas import syrk_lower

    acc = np.zeros((n, n), dtype=torch.empty(0, dtype=dtype).numpy().dtype, order="F")
    part = None
    strips = [round(i * n / _GRAM_TILES) for i in range(_GRAM_TILES + 1)]
    for _, z in blocks:
        cols = z.numpy() if (z.is_contiguous() or z.mT.is_contiguous()) else z.contiguous().numpy()
        if cols.dtype == acc.dtype:
            syrk_lower(acc, cols)
            continue
        if part is None:
            part = np.zeros((n, n), dtype=cols.dtype, order="F")
        syrk_lower(part, cols, beta=0.0)
        acc_t, part_t = torch.from_numpy(acc), torch.from_numpy(part)  # torch's threads for the adds
        for j0, j1 in zip(strips[:-1], strips[1:], strict=True):  # lower column strips only
            acc_t[j0:, j0:j1].add_(part_t[j0:, j0:j1])
    del part
    for j0, j1 in zip(strips[:-1], strips[1:], strict=True):  # mirror the lower triangle
        diag = acc[j0:j1, j0:j1]
        diag[:] = np.tril(diag) + np.tril(diag, -1).T
        acc[j0:j1, j1:] = acc[j1:, j0:j1].T
    return torch.from_numpy(acc.T)  # symmetric: the C-ordered view is the same matrix


def dense_kernel(op, precision: str = "double") -> torch.Tensor:
    """The dense n x n form of one kernel, with half the flops for a GRM.

    A GRM ``K = Z Z^T / m`` is accumulated from its standardized genotype blocks on
    the lower block triangle only (``(r + 1) / (2 r)`` of a full product with ``r``
    row tiles) and mirrored; a sharded GRM so on every rank from its share, then
    summed over the ranks. Anything else (LinearOperators) uses its own
    ``to_dense``; a result (or a dense tensor) that is not exactly symmetric is
    replaced by ``(K + K') / 2``.

    Parameters
    ----------
    op : LinearOperator or torch.Tensor
    precision : {"double", "mixed"}
        For a float64 GRM: ``"mixed"`` multiplies float32 blocks of up to 2,048
        standardized genotype columns and accumulates the block products in
        float64 (about twice as fast on CPU; entries agree with ``"double"`` to
        about 1e-6 relative, the precision of a GCTA ``.grm.bin``). Other kernels
        ignore it.

    Returns
    -------
    torch.Tensor
        (n, n), exactly symmetric.

    Examples
    --------
    >>> import numpy as np
    >>> from torchgenetics.genotypes import Genotypes
    >>> from torchgenetics.operators import GRM
    >>> G = Genotypes.from_array(np.random.default_rng(0).integers(0, 3, (40, 30)).astype(float))
    >>> K = GRM(G)
    >>> torch.allclose(dense_kernel(K), K.to_dense())
    True
    >>> float((dense_kernel(K, "mixed") - K.to_dense()).abs().max()) < 1e-6
    True
    """
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    blocks = None if torch.is_tensor(op) else _grm_blocks(op, precision)
    if blocks is None:
        K = op if torch.is_tensor(op) else op.to_dense()
        return K if torch.equal(K, K.mT) else 0.5 * (K + K.mT)
    n = op.shape[-1]
    return op.reduce(_gram_lower(blocks, n, op.dtype, op.device)).div_(op.m_eff)


class _DenseFactor:
    """Cholesky factor of a dense SPD ``V`` (LAPACK through SciPy on CPU float64, else torch).

    On one CPU thread SciPy's ``potrf``/``potri`` on column-major memory take
    0.40 s / 0.79 s at n = 4,000 against 0.48 s / 1.29 s for torch's
    ``cholesky`` / ``cholesky_inverse``.
    """

    def __init__(self, V: torch.Tensor):
        self.scipy = V.device.type == "cpu" and V.dtype == torch.float64
        if self.scipy:
            from scipy.linalg.lapack import dpotrf

            # V is symmetric: its C-ordered memory is a column-major V, factored in place
            c, info = dpotrf(V.numpy().T, lower=1, clean=0, overwrite_a=1)
            self.ok, self.c = info == 0, c
            self.logdet = float(2.0 * np.log(np.diagonal(c)).sum()) if self.ok else math.nan
        else:
            L, info = torch.linalg.cholesky_ex(V)
            self.ok, self.L = int(info) == 0, L
            self.logdet = float(2.0 * L.diagonal().log().sum()) if self.ok else math.nan

    def solve(self, B: torch.Tensor) -> torch.Tensor:
        if self.scipy:
            from scipy.linalg import cho_solve

            return torch.from_numpy(cho_solve((self.c, True), B.numpy(), check_finite=False))
        return torch.cholesky_solve(B, self.L)

    def inverse(self) -> torch.Tensor:
        """``V^-1`` (symmetric), consuming the factor."""
        if not self.scipy:
            return torch.cholesky_inverse(self.L)
        from scipy.linalg.lapack import dpotri

        inv, info = dpotri(self.c, lower=1, overwrite_c=1)
        if info != 0:
            raise InputError(f"inverting V failed (LAPACK potri info {info})")
        n, step = inv.shape[0], 512
        for j0 in range(0, n, step):  # mirror the lower triangle
            j1 = min(j0 + step, n)
            block = inv[j0:j1, j0:j1]
            block[:] = np.tril(block) + np.tril(block, -1).T
            inv[j0:j1, j1:] = inv[j1:, j0:j1].T
        return torch.from_numpy(inv.T)  # symmetric: the C-ordered view is the same matrix


def _chol_logdet(A):
    L, info = torch.linalg.cholesky_ex(0.5 * (A + A.mT))
    if int(info) != 0:
        return None, math.nan
    return L, float(2.0 * L.diagonal().log().sum())


def _gls(solve, X, y):
    """GLS pieces from a solver of ``V``: ``V^-1 X``, factor and log-det of ``A = X'V^-1X``, beta, ``P y``."""
    B = solve(torch.cat([X, y.unsqueeze(1)], 1))
    p = X.shape[1]
    VX, Vy = B[:, :p], B[:, p]
    LA, ld_a = _chol_logdet(X.mT @ VX)
    if LA is None:
        return None
    beta = torch.cholesky_solve((X.mT @ Vy).unsqueeze(1), LA).squeeze(1)
    return VX, LA, ld_a, beta, Vy - VX @ beta


def _score_ai(solve, kernel_matmuls, VX, A_inv, Py, tr_vinv_k, tr_vinv):
    """``tr(P K_i)``, ``y'P K_i P y`` and the AI matrix, ``K_{G+1} = I``, without forming ``P``.

    ``tr(P K) = tr(V^-1 K) - tr(A^-1 (V^-1X)' K (V^-1X))`` from the given ``tr(V^-1 K_g)``
    and ``tr(V^-1)``; ``P U = V^-1 U - V^-1X A^-1 (V^-1X)' U``.
    """
    trace = torch.stack(
        [t - (A_inv * (VX.mT @ mm(VX))).sum() for mm, t in zip(kernel_matmuls, tr_vinv_k, strict=True)]
        + [tr_vinv - (A_inv * (VX.mT @ VX)).sum()]
    )
    U = torch.stack([mm(Py.unsqueeze(1)).squeeze(1) for mm in kernel_matmuls] + [Py], 1)
    quad = U.mT @ Py
    ai = 0.5 * U.mT @ (solve(U) - VX @ (A_inv @ (VX.mT @ U)))
    return trace, quad, 0.5 * (ai + ai.mT)


class _FactoredREML:
    """Shared part of the factor-based evaluators: the GLS pieces of one factorisation of
    ``V``, kept for the next call at the same parameters (the line search's accepted
    trial point is the next evaluation), and the likelihood from them."""

    stochastic = False
    _cached = None  # (theta, parts) of the last factorisation

    def _solve_parts(self, theta):
        if self._cached is not None and torch.equal(self._cached[0], theta):
            return self._cached[1]
        self._cached = None
        factored = self._factor(theta)
        if factored is None:
            return None
        factor, solve = factored
        gls = _gls(solve, self.X, self.y)
        if gls is None:
            return None
        parts = (factor, factor.logdet) + gls
        self._cached = (theta.clone(), parts)
        return parts

    def objective(self, theta) -> Objective:
        """Restricted log-likelihood only (``-inf`` where V is not positive definite)."""
        parts = self._solve_parts(theta)
        if parts is None:
            return Objective(-math.inf)
        _, ld_v, _, _, ld_a, _, Py = parts
        return Objective(-0.5 * (ld_v + ld_a + float(self.y @ Py)))

    @staticmethod
    def _evaluation(theta, minus_two_loglik, trace, quad, ai, beta, A_inv) -> Evaluation:
        return Evaluation(theta=theta.clone(), loglik=-0.5 * minus_two_loglik, score=-0.5 * (trace - quad),
                          ai=ai, quad=quad, trace=trace, beta=beta, beta_cov=A_inv)


class DenseREML(_FactoredREML):
    """Exact REML for ``V = sum_g theta_g K_g + theta_e I`` with dense kernels.

    Each evaluation factors ``V`` once (the factor of the line search's accepted
    trial point is reused) and inverts it once for ``tr(V^-1 K_g) = <V^-1, K_g>``;
    ``P`` itself is never formed.

    Parameters
    ----------
    kernels : list of torch.Tensor
        G dense n x n kernels.
    y : torch.Tensor
        (n,) phenotype.
    X : torch.Tensor
        (n, p) full-rank design.
    symmetric : bool
        The kernels are exactly symmetric (as :func:`dense_kernel` returns them); when
        False each is replaced by ``(K + K') / 2``.

    Examples
    --------
    >>> K = torch.eye(4, dtype=torch.float64)
    >>> ev = DenseREML([K], torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64),
    ...                torch.ones(4, 1, dtype=torch.float64))
    >>> round(ev.objective(torch.tensor([0.5, 0.5], dtype=torch.float64)).value, 6)
    -2.536897
    """

    def __init__(self, kernels, y, X, symmetric=False):
        self.K = list(kernels) if symmetric else [0.5 * (k + k.mT) for k in kernels]
        self.y, self.X = y, X
        self.n, self.p = X.shape
        self.G = len(self.K)

    def _V(self, theta):
        V = torch.mul(self.K[0], theta[0])
        for g in range(1, self.G):
            V.add_(self.K[g], alpha=float(theta[g]))
        V.diagonal().add_(theta[-1])
        return V

    def _factor(self, theta):
        factor = _DenseFactor(self._V(theta))
        return (factor, factor.solve) if factor.ok else None

    def evaluate(self, theta) -> Evaluation:
        """Likelihood, score and AI (O(n^3))."""
        parts = self._solve_parts(theta)
        if parts is None:
            raise InputError(_NOT_PD.format(theta.tolist()))
        factor, ld_v, VX, LA, ld_a, beta, Py = parts
        self._cached = None  # the inverse consumes the factor
        Vinv = factor.inverse()
        flat = (Vinv.mT if Vinv.mT.is_contiguous() else Vinv).reshape(-1)  # V^-1 is symmetric
        A_inv = torch.cholesky_inverse(LA)
        trace, quad, ai = _score_ai(
            lambda B: Vinv @ B, [k.__matmul__ for k in self.K], VX, A_inv, Py,
            [flat @ k.reshape(-1) for k in self.K], Vinv.diagonal().sum())
        return self._evaluation(theta, ld_v + ld_a + float(self.y @ Py), trace, quad, ai, beta, A_inv)


class BandREML(_FactoredREML):
    """Exact REML for ``V = theta_g K + theta_e I`` with ``K = Q T Q'`` block tridiagonal.

    The data are rotated once (``Q'[X | y]``); every evaluation then factors
    ``theta_g T + theta_e I`` by block Cholesky and takes the traces from the
    diagonal blocks of its inverse, O(n b^2) for block size b, all exact.

    Parameters
    ----------
    kernel : BlockTridiagonalKernel
    y : torch.Tensor
        (n,) phenotype.
    X : torch.Tensor
        (n, p) design.

    Examples
    --------
    >>> from torchgenetics.linalg import BlockTridiagonalKernel
    >>> g = torch.Generator().manual_seed(0)
    >>> Z = torch.randn(40, 20, generator=g, dtype=torch.float64)
    >>> K = Z @ Z.T / 20
    >>> y, X = torch.randn(40, generator=g, dtype=torch.float64), torch.ones(40, 1, dtype=torch.float64)
    >>> th = torch.tensor([0.4, 0.6], dtype=torch.float64)
    >>> a = BandREML(BlockTridiagonalKernel.from_kernel(K, block=6), y, X).evaluate(th)
    >>> b = DenseREML([K], y, X).evaluate(th)
    >>> abs(a.loglik - b.loglik) < 1e-10 and bool(torch.allclose(a.ai, b.ai))
    True
    """

    def __init__(self, kernel, y, X):
        self.kernel = kernel
        self.n, self.p = X.shape
        self.G = 1
        rotated = torch.from_numpy(kernel.rotate(torch.cat([X, y.unsqueeze(1)], 1))).to(y.dtype)
        self.X, self.y = rotated[:, : self.p], rotated[:, self.p]

    def _matmul(self, B):
        return torch.from_numpy(self.kernel.matmul(B.numpy()))

    def _factor(self, theta):
        a, c = float(theta[0]), float(theta[1])
        factor = self.kernel.factor(a, c) if a >= 0 and c > 0 else None
        return None if factor is None else (factor, lambda B: torch.from_numpy(factor.solve(B.numpy())))

    def evaluate(self, theta) -> Evaluation:
        """Likelihood, score and AI (O(n b^2))."""
        parts = self._solve_parts(theta)
        if parts is None:
            raise InputError(_NOT_PD.format(theta.tolist()))
        factor, ld_v, VX, LA, ld_a, beta, Py = parts
        A_inv = torch.cholesky_inverse(LA)
        tr_inv, tr_inv_t = factor.traces()
        trace, quad, ai = _score_ai(
            lambda B: torch.from_numpy(factor.solve(B.numpy())), [self._matmul], VX, A_inv, Py,
            [torch.tensor(tr_inv_t, dtype=Py.dtype)], torch.tensor(tr_inv, dtype=Py.dtype))
        return self._evaluation(theta, ld_v + ld_a + float(self.y @ Py), trace, quad, ai, beta, A_inv)


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
