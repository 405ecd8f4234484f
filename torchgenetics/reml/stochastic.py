"""Matrix-free restricted likelihood: block PCG, Hutchinson traces and SLQ.

Per evaluation at ``theta``:

1. the projected-core preconditioner is updated to ``theta`` (no kernel products);
2. one block PCG solve gives ``V^-1 [X | y | Z]`` (``Z`` Rademacher probes drawn
   once per fit), hence ``beta``, ``P y`` and ``P Z``. It is warm-started from the
   previous accepted point's solution and runs in two phases sharing every
   genotype pass: all columns to ``probe_tol``, then ``[X | y]`` alone on to
   ``cg_tol`` (the probe columns only feed Hutchinson traces, whose Monte Carlo
   error is orders of magnitude above ``probe_tol``). The line search's objective
   at a trial point does this whole solve, so an accepted step costs no second solve;
3. one kernel pass gives ``K_g P y`` for every g (a single genotype pass when the
   kernels share a GRMStack) and a second, small PCG solve gives
   ``V^-1 [K_1 P y, ..., K_G P y]``; ``V^-1 P y`` follows from
   ``sum_g s2_g V^-1 K_g P y + s2_e V^-1 P y = P y`` (solved too when ``s2_e`` is a
   small share of the variance), giving the exact average information;
4. ``tr(P K_g)`` is Hutchinson's ``mean_j (P z_j)' (K_g z_j)`` with ``K_g Z``
   computed once per fit and cached; the per-probe samples give the Monte Carlo
   covariance of the score;
5. ``log|V|`` is preconditioned SLQ on fixed probes (exact ``log|M|`` plus
   quadrature of ``M^-1/2 V M^-1/2``), so the likelihood is a deterministic function
   of ``theta`` with a Monte Carlo standard error.

Genotype passes per evaluation: ``its(phase 1) + its(phase 2) + lanczos_steps + 1 +
its(AI solve)``, plus one for the initial residual of each warm-started solve; once
per fit: the preconditioner sketch (``power_iters + 2`` passes) and ``K_g Z`` (one
pass). ``benchmarks/REML_COST_MODEL.md`` has the measured counts.
"""

from __future__ import annotations

import math
import warnings

import torch

from ..errors import InputError
from ..linalg import (
    ConvergenceWarning,
    ProjectedCorePreconditioner,
    block_cg,
    make_probes,
    slq_logdet,
)
from ..memory import available_bytes, dtype_bytes
from .aireml import Evaluation, Objective
from .exact import _NOT_PD

__all__ = ["StochasticREML", "build_preconditioner"]


def build_preconditioner(kset, theta, rank, generator, oversampling=10, power_iters=1):
    """Projected-core preconditioner for ``V(theta)`` built from stacked kernel products.

    The range of ``sum_g w_g K_g`` (``w`` = the genetic variances, or the inverse mean
    diagonals when those are all zero) is sketched with ``rank + oversampling``
    Gaussian columns and ``power_iters`` subspace iterations, each a single
    weighted product; the cores ``U' K_g U`` come from one stacked product.

    Parameters
    ----------
    kset : KernelSet
    theta : torch.Tensor
        (G+1,) variances, residual last.
    rank : int
        Columns of the basis U.
    generator : torch.Generator
    oversampling, power_iters : int

    Returns
    -------
    ProjectedCorePreconditioner

    Examples
    --------
    >>> from torchgenetics.reml.kernelset import KernelSet
    >>> g = torch.Generator().manual_seed(0)
    >>> Z = torch.randn(50, 10, generator=g, dtype=torch.float64)
    >>> ks = KernelSet([Z @ Z.T / 10], n=50)
    >>> P = build_preconditioner(ks, torch.tensor([0.5, 0.5], dtype=torch.float64), 10, g)
    >>> V = 0.5 * Z @ Z.T / 10 + 0.5 * torch.eye(50, dtype=torch.float64)
    >>> torch.allclose(P.to_dense(), V)
    True
    """
    n, dt, dev = kset.n, kset.dtype, kset.device
    width = min(n, rank + oversampling)
    traces = kset.traces()
    w = theta[:-1].clone()
    if not bool((w > 0).any()):
        w = n / traces.clamp_min(1e-300)
    omega = make_probes(n, width, generator, dt, dev, "gaussian")
    Y = kset.weighted(w, omega)
    for _ in range(power_iters):
        Y = kset.weighted(w, torch.linalg.qr(Y).Q)
    Q = torch.linalg.qr(Y).Q
    KQ = kset.stacked(Q)
    proj = Q.mT.unsqueeze(0) @ KQ
    proj = 0.5 * (proj + proj.mT)
    _, W = torch.linalg.eigh(torch.einsum("g,gij->ij", w, proj))
    Wr = W[:, -rank:].flip(-1)
    cores = Wr.mT.unsqueeze(0) @ proj @ Wr
    discarded = None
    if n > rank:
        discarded = ((traces - cores.diagonal(dim1=-2, dim2=-1).sum(-1)) / (n - rank)).clamp_min(0.0)
    return ProjectedCorePreconditioner(Q @ Wr, list(cores), theta[:-1], float(theta[-1]), discarded)


class StochasticREML:
    """Stochastic REML evaluator for :func:`~torchgenetics.reml.aireml.optimize`.

    Parameters
    ----------
    kset : KernelSet
        The kernels (traces are taken exactly when cheap, else estimated from the
        cached probe products).
    y, X : torch.Tensor
        Phenotype (n,) and design (n, p).
    num_probes : int
        Hutchinson probes for the traces in the score.
    slq_probes, lanczos_steps : int
        SLQ probes and Lanczos steps for ``log|V|``.
    precond_rank : int
        Rank of the projected-core preconditioner (0: no preconditioner).
    cg_tol, cg_max_iter : float, int
        Block PCG relative-residual tolerance (for ``[X | y]`` and the average
        information) and iteration cap.
    generator : torch.Generator
        Source of all probes (drawn once here).
    cache_probe_products : bool or None
        Keep ``K_g Z`` for the fit (None: when it fits the memory budget).
    probe_tol : float or None
        Relative-residual tolerance of the Hutchinson probe columns (None: 1e-6;
        never tighter than ``cg_tol``).

    Notes
    -----
    Call :meth:`prepare` with the starting variances before the first evaluation
    (it builds the preconditioner basis); traces are available right after
    construction, so starting values may depend on them.

    Examples
    --------
    >>> from torchgenetics.reml.kernelset import KernelSet
    >>> g = torch.Generator().manual_seed(0)
    >>> Z = torch.randn(80, 40, generator=g, dtype=torch.float64)
    >>> ks = KernelSet([Z @ Z.T / 40], n=80)
    >>> y, X = torch.randn(80, generator=g, dtype=torch.float64), torch.ones(80, 1, dtype=torch.float64)
    >>> th = torch.tensor([0.5, 0.5], dtype=torch.float64)
    >>> ev = StochasticREML(ks, y, X, 30, 20, 20, 10, 1e-10, 500, g).prepare(th)
    >>> e = ev.evaluate(th)
    >>> tuple(e.ai.shape), e.loglik_se > 0
    ((2, 2), True)
    """

    stochastic = True

    #: default relative-residual tolerance of the probe columns: their warm-started
    #: solutions carry a path-dependent error of about this relative size into the
    #: score, which must stay well below the optimizer's ``param_tol`` (1e-5)
    PROBE_TOL = 1e-6
    #: below this share of the variance, ``V^-1 P y`` is solved rather than derived
    _MIN_RESIDUAL_SHARE = 0.05

    def __init__(self, kset, y, X, num_probes, slq_probes, lanczos_steps, precond_rank,
                 cg_tol, cg_max_iter, generator, cache_probe_products=None, probe_tol=None):
        self.kset, self.y, self.X = kset, y, X
        self.n, self.p = X.shape
        self.G = kset.G
        dt, dev = y.dtype, y.device
        self.Z = make_probes(self.n, int(num_probes), generator, dt, dev)
        self.S = make_probes(self.n, int(slq_probes), generator, dt, dev)
        self.lanczos_steps = int(lanczos_steps)
        self.cg_tol, self.cg_max_iter = float(cg_tol), int(cg_max_iter)
        self.probe_tol = max(self.cg_tol, float(self.PROBE_TOL if probe_tol is None else probe_tol))
        need = self.G * self.n * self.Z.shape[1] * dtype_bytes(dt)
        if cache_probe_products is None:
            cache_probe_products = need <= available_bytes(dev)
        self._KZ = kset.stacked(self.Z) if cache_probe_products else None
        if not kset.has_cheap_traces():
            KZ = self._KZ if self._KZ is not None else kset.stacked(self.Z)
            kset.set_traces((self.Z.unsqueeze(0) * KZ).sum(-2).mean(-1))
        self._rank = min(int(precond_rank), self.n - 1)
        self._generator = generator
        self.precond = None
        self._x0_main = None
        self._x0_ai = None
        self._cache = None
        self.cg_iterations = []
        self.cg_failures = 0

    def prepare(self, theta0) -> "StochasticREML":
        """Build the projected-core preconditioner for ``theta0`` (one sketch); returns self."""
        if self._rank > 0:
            self.precond = build_preconditioner(self.kset, theta0, self._rank, self._generator)
        return self

    # -- pieces -------------------------------------------------------------------------
    def _operator(self, theta):
        tg, te = theta[:-1], theta[-1]
        return lambda x: self.kset.weighted(tg, x) + te * x

    def _set(self, theta):
        if self.precond is not None:
            self.precond.update(theta[:-1], float(theta[-1]))
        return self._operator(theta)

    def _solve(self, op, B, x0, tol=None, record=True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            res = block_cg(op, B, self.precond, tol=self.cg_tol if tol is None else tol,
                           max_iter=self.cg_max_iter, x0=x0)
        if record:
            self.cg_iterations.append(res.n_iter)
            self.cg_failures += int((~res.converged).sum())
        return res

    def _solve_main(self, op, x0):
        """``V^-1 [X | y | Z]``: every column to ``probe_tol``, then ``[X | y]`` to ``cg_tol``.

        Returns the solution and the PCG iterations of the two phases.
        """
        q = self.p + 1
        B = torch.cat([self.X, self.y.unsqueeze(1), self.Z], 1)
        if self.probe_tol <= self.cg_tol:
            res = self._solve(op, B, x0)
            return res.solution, (res.n_iter, 0)
        first = self._solve(op, B, x0, tol=self.probe_tol, record=False)
        self.cg_failures += int((~first.converged[q:]).sum())
        sol = first.solution
        second = self._solve(op, B[:, :q], sol[:, :q], record=False)
        self.cg_failures += int((~second.converged).sum())
        self.cg_iterations.append(first.n_iter + second.n_iter)
        sol = torch.cat([second.solution, sol[:, q:]], 1)
        return sol, (first.n_iter, second.n_iter)

    def _gls(self, VXy):
        p = self.p
        VX, Vy = VXy[:, :p], VXy[:, p]
        A = self.X.mT @ VX
        LA, info = torch.linalg.cholesky_ex(0.5 * (A + A.mT))
        if int(info) != 0:
            return None
        beta = torch.cholesky_solve((self.X.mT @ Vy).unsqueeze(1), LA).squeeze(1)
        Py = Vy - VX @ beta
        return VX, LA, beta, Py, float(2.0 * LA.diagonal().log().sum())

    def _cg_error(self, sol, VX, LA) -> float:
        """Bound on the error of ``y'Py + log|X'V^-1X|`` from the CG residual tolerance."""
        a_inv = torch.cholesky_inverse(LA).abs()
        term_a = (a_inv * torch.outer(self.X.norm(dim=0), VX.norm(dim=0))).sum()
        return 0.5 * self.cg_tol * float(self.y.norm() * sol[:, -1].norm() + term_a)

    def _slq(self, op):
        est = slq_logdet(op, probes=self.S, lanczos_steps=self.lanczos_steps,
                         preconditioner=self.precond, size=self.n)
        return est

    def objective(self, theta) -> Objective:
        """Fixed-probe likelihood (PCG for ``[X | y | Z]`` and SLQ), cached per theta.

        The probe columns are solved here too (sharing the genotype passes of
        ``[X | y]``), so that :meth:`evaluate` at an accepted trial point needs no
        second solve.
        """
        key = tuple(float(v) for v in theta)
        if self._cache is not None and self._cache["key"] == key:
            return self._cache["objective"]
        if float(theta[-1]) <= 0:
            return Objective(-math.inf)
        op = self._set(theta)
        sol, phases = self._solve_main(op, self._x0_main)
        gls = self._gls(sol[:, : self.p + 1])
        try:
            est = self._slq(op)
        except ValueError:  # a non-positive Ritz value: V not positive definite
            return Objective(-math.inf)
        if gls is None:
            return Objective(-math.inf)
        VX, LA, _, Py, ld_a = gls
        value = -0.5 * (float(est.value) + ld_a + float(self.y @ Py))
        obj = Objective(value, -0.5 * est.samples, self._cg_error(sol[:, : self.p + 1], VX, LA))
        self._cache = {"key": key, "objective": obj, "loglik_se": 0.5 * float(est.se), "solution": sol,
                       "gls": gls, "phases": phases}
        return obj

    def _ai_solve(self, op, theta, KPy, Py):
        """``V^-1 [K_1 P y, ..., K_G P y, P y]`` (the last column derived when safe)."""
        share = float(theta[-1]) / float(theta[:-1] @ self.kset.traces() / self.n + theta[-1])
        if share < self._MIN_RESIDUAL_SHARE:
            U = torch.cat([KPy.mT, Py.unsqueeze(1)], 1)
            x0 = self._x0_ai if self._x0_ai is not None and self._x0_ai.shape == U.shape else None
            VU = self._solve(op, U, x0).solution
            self._x0_ai = VU
            return U, VU
        U = KPy.mT
        x0 = self._x0_ai[:, : self.G] if self._x0_ai is not None else None
        VK = self._solve(op, U, x0).solution
        VPy = (Py - VK @ theta[:-1]) / theta[-1]
        self._x0_ai = VK
        return torch.cat([U, Py.unsqueeze(1)], 1), torch.cat([VK, VPy.unsqueeze(1)], 1)

    def evaluate(self, theta) -> Evaluation:
        """Likelihood (SLQ), Hutchinson score with its MC covariance, and exact-solve AI."""
        obj = self.objective(theta)
        if not math.isfinite(obj.value):
            raise InputError(_NOT_PD.format(theta.tolist()))
        cache = self._cache
        loglik_se, sol = cache["loglik_se"], cache["solution"]
        op = self._set(theta)
        p = self.p
        self._x0_main = sol
        VX, LA, beta, Py, _ = cache["gls"]
        A_inv = torch.cholesky_inverse(LA)
        KPy = self.kset.stacked(Py.unsqueeze(1))[..., 0]  # (G, n)
        U, VU = self._ai_solve(op, theta, KPy, Py)
        PU = VU - VX @ (A_inv @ (self.X.mT @ VU))
        ai = 0.5 * U.mT @ PU
        quad = U.mT @ Py
        VZ = sol[:, p + 1:]
        PZ = VZ - VX @ (A_inv @ (self.X.mT @ VZ))
        KZ = self._KZ if self._KZ is not None else self.kset.stacked(self.Z)
        samples = torch.cat([(PZ.unsqueeze(0) * KZ).sum(-2), (PZ * self.Z).sum(0, keepdim=True)])
        score_samples = -0.5 * (samples - quad.unsqueeze(1))  # (G+1, k)
        k = score_samples.shape[1]
        score = score_samples.mean(1)
        centred = score_samples - score.unsqueeze(1)
        score_cov = centred @ centred.mT / (k - 1) / k
        return Evaluation(theta=theta.clone(), loglik=obj.value, score=score, ai=0.5 * (ai + ai.mT),
                          quad=quad, trace=samples.mean(1), beta=beta, beta_cov=A_inv,
                          loglik_se=loglik_se, score_cov=score_cov, samples=obj.samples,
                          info={"cg_iterations": list(self.cg_iterations[-2:]),
                                "main_solve_phases": list(cache["phases"])})
