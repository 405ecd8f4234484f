"""The mixed-model covariance of the association tests, whole-genome or leave-one-chromosome-out.

``V_S = s2g / t_S * K_S + s2e I`` where ``K_S = sum_{c in S} (m_c / m_S) K_c`` is the
GRM of the variants of the chromosomes in ``S`` (``K_c`` the GRM of chromosome
``c``, ``m_c`` its polymorphic variants) and ``t_S = tr(K_S) / n``, so every
version carries the same genetic variance ``s2g``. All chromosome GRMs are the
components of one :class:`~torchgenetics.operators.GRMStack`, so any ``V_S`` product
is one pass over the genotypes (or over resident blocks), and ``V_S^-1`` is applied
by block PCG with one projected-core preconditioner whose core is updated for
each ``S`` (never an n x n matrix). :meth:`LocoCovariance.solve_loco` solves for
several ``S`` at once: one pass over the genotypes gives every chromosome's
``K_c X`` for all right-hand sides, and each system combines them with its own
weights, so the genotypes are read once per PCG iteration rather than once per
chromosome. Small problems may instead choose the exact
path (``method="exact"``): dense ``K_S`` and a Cholesky factor of ``V_S``.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import torch

from ..errors import ConvergenceError, InputError
from ..linalg import ConvergenceWarning, block_cg, choose_method
from ..memory import available_bytes, dtype_bytes
from ..operators import GRMStack

__all__ = ["LocoCovariance"]


class LocoCovariance:
    """``V = s2g K + s2e I`` and its leave-one-chromosome-out versions, solved by PCG.

    Parameters
    ----------
    genotypes : Genotypes
        Samples in the order of the phenotype.
    loco : bool, default True
        One GRM component per chromosome (so chromosomes can be left out), or
        one component for the whole genome.
    device, dtype : optional
        Default CPU, float64.
    resident : bool, optional
        Keep the standardized blocks in memory (None: decide from the budget).
    block_size : int, optional
        Columns per streamed block.
    method : {"cg", "exact", "auto"}, default "cg"
        Block PCG (matrix-free), dense Cholesky, or
        :func:`~torchgenetics.linalg.choose_method` on n.
    variants : index array, slice or mask, optional
        Variants of the GRM (BOLT-LMM's model SNPs; default all).

    Attributes
    ----------
    groups : list of str
        Chromosome names with at least one polymorphic variant (``["all"]`` without LOCO).
    stack : GRMStack
    cg_iterations : list of int
        PCG iterations of every solve.

    Examples
    --------
    >>> from torchgenetics.datasets import simulate_genotypes
    >>> G = simulate_genotypes(100, 60, chromosomes=2, seed=0).to_genotypes()
    >>> cov = LocoCovariance(G)
    >>> cov.groups
    ['1', '2']
    >>> cov.set_variances(0.5, 0.5, rank=20, seed=0)
    >>> x = cov.solve(torch.ones(100, 1, dtype=torch.float64), leave_out="1")
    >>> V = 0.5 * cov.kernel("1").to_dense() / cov.trace_scale("1") + 0.5 * torch.eye(100, dtype=torch.float64)
    >>> torch.allclose(V @ x, torch.ones(100, 1, dtype=torch.float64), atol=1e-6)
    True
    """

    def __init__(self, genotypes, loco: bool = True, device=None, dtype=torch.float64,
                 resident=None, block_size=None, method: str = "cg", variants=None):
        if method not in ("cg", "exact", "auto"):
            raise InputError(f"method must be 'cg', 'exact' or 'auto', got {method!r}")
        chrom = genotypes.variants["chrom"].astype(str).to_numpy()
        poly = genotypes.stats.polymorphic.copy()
        if variants is not None:
            chosen = np.zeros(poly.size, dtype=bool)
            chosen[np.arange(poly.size)[variants] if isinstance(variants, slice) else np.asarray(variants)] = True
            poly &= chosen
        if not poly.any():
            raise InputError("no polymorphic variant: the genetic relationship matrix needs at least one")
        if loco:
            names = [c for c in dict.fromkeys(chrom) if (poly & (chrom == c)).any()]
            sets = [np.flatnonzero(poly & (chrom == c)) for c in names]
        else:
            names, sets = ["all"], [np.flatnonzero(poly)]
        self.groups = names
        self.stack = GRMStack(genotypes, sets, device=device, dtype=dtype, resident=resident,
                              block_size=block_size, names=names)
        self.n = genotypes.n_samples
        self.dtype, self.device = self.stack.dtype, self.stack.device
        self._m = torch.as_tensor(self.stack.m_eff, dtype=self.dtype, device=self.device)
        self.method = choose_method(self.n) if method == "auto" else method
        if self.method == "iterative":
            self.method = "cg"
        self.genetic = self.residual = None
        self.precond = None
        self._dense: dict = {}
        self._factors: dict = {}
        self.cg_iterations: list[int] = []

    def _index(self, leave_out) -> int | None:
        if leave_out is None:
            return None
        if str(leave_out) not in self.groups:
            raise InputError(f"unknown chromosome {leave_out!r}; the kernel has {self.groups}")
        if len(self.groups) == 1:
            raise InputError("cannot leave out the only chromosome of the kernel")
        return self.groups.index(str(leave_out))

    def weights(self, leave_out=None) -> torch.Tensor:
        """Component weights ``m_c / m_S`` of ``K_S`` (0 for the chromosome left out).

        Examples
        --------
        >>> from torchgenetics.datasets import simulate_genotypes
        >>> cov = LocoCovariance(simulate_genotypes(50, 40, chromosomes=2, seed=0).to_genotypes())
        >>> cov.weights("2").tolist()
        [1.0, 0.0]
        """
        w = self._m.clone()
        c = self._index(leave_out)
        if c is not None:
            w[c] = 0.0
        return w / w.sum()

    def kernel(self, leave_out=None):
        """``K_S`` (all chromosomes but ``leave_out``) as a LinearOperator.

        Examples
        --------
        >>> from torchgenetics.datasets import simulate_genotypes
        >>> cov = LocoCovariance(simulate_genotypes(50, 40, chromosomes=2, seed=0).to_genotypes())
        >>> cov.kernel().shape
        torch.Size([50, 50])
        """
        return self.stack.weighted(self.weights(leave_out))

    def trace_scale(self, leave_out=None) -> float:
        """``tr(K_S) / n`` (1 when no call is missing).

        Examples
        --------
        >>> from torchgenetics.datasets import simulate_genotypes
        >>> cov = LocoCovariance(simulate_genotypes(50, 40, chromosomes=2, seed=0).to_genotypes())
        >>> round(cov.trace_scale(), 6)
        1.0
        """
        traces = self.stack.diagonals().sum(1)
        return float(self.weights(leave_out) @ traces) / self.n

    def theta(self, leave_out=None) -> torch.Tensor:
        """Per-component variances of ``V_S``: ``s2g w_c / t_S``.

        Examples
        --------
        >>> from torchgenetics.datasets import simulate_genotypes
        >>> cov = LocoCovariance(simulate_genotypes(50, 40, chromosomes=2, seed=0).to_genotypes())
        >>> cov.set_variances(0.6, 0.4, rank=0)
        >>> round(float(cov.theta("1").sum() * cov.trace_scale("1")), 6)
        0.6
        """
        if self.genetic is None:
            raise InputError("set the variance components first (set_variances)")
        return self.genetic * self.weights(leave_out) / self.trace_scale(leave_out)

    def set_variances(self, genetic: float, residual: float, rank: int = 64, seed=0) -> None:
        """Fix ``s2g`` (phenotype scale) and ``s2e``, and build the preconditioner.

        Parameters
        ----------
        genetic : float
            Genetic variance ``s2g >= 0`` (e.g. ``sum_g s2_g tr(K_g)/n`` of a REML fit).
        residual : float
            Residual variance ``s2e > 0``.
        rank : int, default 64
            Rank of the projected-core preconditioner (0: none).
        seed : int or torch.Generator
            Randomness of the preconditioner's range finder.

        Examples
        --------
        See :class:`LocoCovariance`.
        """
        from ..reml.kernelset import KernelSet
        from ..reml.stochastic import build_preconditioner

        if not (genetic >= 0 and residual > 0):
            raise InputError(f"variances must be s2g >= 0 and s2e > 0, got {genetic} and {residual}")
        self.genetic, self.residual = float(genetic), float(residual)
        rank = min(int(rank), self.n - 1)
        self.precond = None
        self._factors = {}
        if self.method == "cg" and rank > 0 and self.genetic > 0:
            gen = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
            kset = KernelSet(self.stack.components, self.n)
            full = torch.cat([self.theta(None), torch.tensor([self.residual], dtype=self.dtype)])
            self.precond = build_preconditioner(kset, full.to(self.device), rank, gen)

    def matmul(self, X: torch.Tensor, leave_out=None) -> torch.Tensor:
        """``V_S X``.

        Examples
        --------
        See :class:`LocoCovariance`.
        """
        theta = self.theta(leave_out)
        return self.stack.weighted_matmul(theta, X) + self.residual * X

    def solve(self, B: torch.Tensor, leave_out=None, tol: float = 1e-8, max_iter: int = 1000,
              project: torch.Tensor | None = None) -> torch.Tensor:
        """``V_S^-1 B``, or ``P B`` with covariates projected out, by block PCG.

        With ``project = Q`` (orthonormal basis of the covariates, ``M = I - QQ'``)
        the result is ``P B`` for ``P = V^-1 - V^-1 Q (Q'V^-1Q)^-1 Q'V^-1 = M (MVM)^+ M``:
        CG on the consistent singular system ``(MVM) u = M B`` from 0 stays in the
        range of ``M`` and converges to that solution, with ``M Pc^-1 M`` as
        preconditioner. No solve with the covariates is needed.

        Parameters
        ----------
        B : torch.Tensor
            ``n x k`` right-hand sides.
        leave_out : str, optional
            Chromosome left out of the kernel.
        tol, max_iter : float, int
            PCG relative-residual tolerance and iteration cap.
        project : torch.Tensor, optional
            ``n x p`` orthonormal covariate basis.

        Returns
        -------
        torch.Tensor

        Raises
        ------
        ConvergenceError
            If a column does not converge.

        Examples
        --------
        See :class:`LocoCovariance`.
        """
        theta = self.theta(leave_out)
        if project is not None:
            def proj(X):
                return X - project @ (project.T @ X)
        else:
            def proj(X):
                return X
        if self.method == "exact":
            if project is None:
                return torch.cholesky_solve(B, self._factor(leave_out, theta))
            L = self._factor(leave_out, theta)
            VB, VQ = torch.cholesky_solve(B, L), torch.cholesky_solve(project, L)
            return VB - VQ @ torch.linalg.solve(project.T @ VQ, project.T @ VB)
        precond = None
        if self.precond is not None:
            self.precond.update(theta, self.residual)
            precond = (lambda R: proj(self.precond.solve(proj(R)))) if project is not None else self.precond
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            res = block_cg(lambda X: proj(self.matmul(proj(X), leave_out)), proj(B), precond, tol=tol,
                           max_iter=max_iter, raise_on_fail=True)
        self.cg_iterations.append(res.n_iter)
        return proj(res.solution)

    def _factor(self, leave_out, theta) -> torch.Tensor:
        """Cholesky factor of the dense ``V_S`` (exact path; kernels and factors cached)."""
        key = self._index(leave_out)
        if key not in self._factors:
            if "components" not in self._dense:
                self._dense["components"] = [K.to_dense() for K in self.stack.components]
            V = sum(t * K for t, K in zip(theta, self._dense["components"], strict=True))
            V = V + self.residual * torch.eye(self.n, dtype=self.dtype, device=self.device)
            self._factors[key] = torch.linalg.cholesky(V)
        return self._factors[key]

    def solve_loco(self, rhs: dict, tol: float = 1e-8, max_iter: int = 1000,
                   project: torch.Tensor | None = None) -> dict:
        """Solve several systems ``V_S X = B`` (or ``P_S``-projected ones) jointly by PCG.

        Parameters
        ----------
        rhs : dict
            ``leave_out`` (chromosome name, or None for the whole GRM) -> ``n x k``
            right-hand sides.
        tol, max_iter : float, int
            Relative-residual tolerance per column and iteration cap.
        project : torch.Tensor, optional
            Orthonormal covariate basis: return ``P_S B`` as in :meth:`solve`.

        Returns
        -------
        dict
            Same keys, the solutions.

        Raises
        ------
        ConvergenceError
            If a column does not reach ``tol`` in ``max_iter`` iterations.

        Examples
        --------
        >>> from torchgenetics.datasets import simulate_genotypes
        >>> cov = LocoCovariance(simulate_genotypes(80, 60, chromosomes=3, seed=0).to_genotypes())
        >>> cov.set_variances(0.5, 0.5, rank=10)
        >>> B = torch.ones(80, 2, dtype=torch.float64)
        >>> out = cov.solve_loco({"1": B, "3": B})
        >>> torch.allclose(out["3"], cov.solve(B, "3"), atol=1e-6)
        True
        """
        labels = list(rhs)
        if self.method == "exact":
            return {lab: self.solve(rhs[lab], lab, tol, max_iter, project) for lab in labels}
        # batches of systems whose stacked products (components x n x columns) fit the budget
        per_column = self.stack.n_components * self.n * dtype_bytes(self.dtype) * 2
        room = max(available_bytes(self.device) // 4 // per_column, 1)
        out, batch, width = {}, [], 0
        for lab in labels:
            if batch and width + rhs[lab].shape[1] > room:
                out.update(self._joint(batch, rhs, tol, max_iter, project))
                batch, width = [], 0
            batch.append(lab)
            width += rhs[lab].shape[1]
        out.update(self._joint(batch, rhs, tol, max_iter, project))
        return out

    def _joint(self, labels, rhs, tol, max_iter, project) -> dict:
        """Block PCG over the columns of several systems (frozen once converged)."""
        if project is not None:
            def proj(X):
                return X - project @ (project.T @ X)
        else:
            def proj(X):
                return X
        widths = [rhs[lab].shape[1] for lab in labels]
        edges = np.cumsum([0, *widths])
        theta = torch.stack([self.theta(lab) for lab in labels])             # systems x components
        col_theta = torch.repeat_interleave(theta, torch.as_tensor(widths, device=theta.device), dim=0)
        precs = []
        for lab in labels:
            if self.precond is None:
                precs.append(None)
            else:
                precs.append(copy.copy(self.precond).update(self.theta(lab), self.residual))

        def matvec(X):
            KX = self.stack.stacked_matmul(proj(X))                          # components x n x k
            return proj(torch.einsum("cnk,kc->nk", KX, col_theta) + self.residual * proj(X))

        def precondition(R):
            Z = torch.empty_like(R)
            for i, prec in enumerate(precs):
                part = proj(R[:, edges[i]:edges[i + 1]])
                Z[:, edges[i]:edges[i + 1]] = part if prec is None else proj(prec.solve(part))
            return Z

        B = proj(torch.cat([rhs[lab] for lab in labels], dim=1))
        X = torch.zeros_like(B)
        R = B.clone()
        bnorm = B.norm(dim=0)
        done = R.norm(dim=0) <= tol * bnorm
        Z = precondition(R)
        P = Z.clone()
        rz = (R * Z).sum(0)
        iterations = 0
        while not bool(done.all()):
            if iterations == max_iter:
                raise ConvergenceError(
                    f"PCG: {int((~done).sum())} of {done.numel()} right-hand sides did not reach relative "
                    f"residual {tol:g} in {max_iter} iterations; raise cg_max_iter or the preconditioner rank")
            iterations += 1
            AP = matvec(P)
            alpha = torch.where(done, torch.zeros_like(rz), rz / (P * AP).sum(0))
            X.addcmul_(P, alpha)
            R.addcmul_(AP, alpha, value=-1.0)
            done = done | (R.norm(dim=0) <= tol * bnorm)
            Z = precondition(R)
            rz_new = (R * Z).sum(0)
            beta = torch.where(done, torch.zeros_like(rz), rz_new / rz)
            P = Z + P * beta
            rz = torch.where(done, rz, rz_new)
        self.cg_iterations.append(iterations)
        X = proj(X)
        return {lab: X[:, edges[i]:edges[i + 1]] for i, lab in enumerate(labels)}
