"""The DeepWAS marginal likelihood of one LD region, exact and iterative.

For a region with LD ``R`` (p x p), scored window ``w`` (q variants), per-variant
effect variances ``f`` (p,) and noise scale ``sigma``, the z-scores of the window are

    z_w ~ N(0, K),   K = D R_{w,:} F R_{:,w} D + sigma R_{w,w},   F = diag(f), D = diag(sqrt(N_w))

(``z = sqrt(N) bhat``; with one N this is ``N R_{w,:} F R_{:,w} + sigma R_{w,w}``).

* **exact** -- the eigendecomposition ``R_ww = U diag(lam) U^T`` (once per region)
  whitens the window onto the range of ``R_ww``: with ``W = U_r lam_r^{-1/2}``
  (eigenvalues above ``rank_tol * max``), ``B = W^T D R_{w,:}`` and ``t = W^T z``,
  ``K`` restricted to that range is ``W^{-T} (sigma I + B F B^T) W^{-1}``, so the
  negative log-likelihood is
  ``0.5 [r log 2 pi + sum log lam_r + log|C| + t^T C^{-1} t]`` with ``C = sigma I + B F B^T``
  (one r x r float64 Cholesky per step). A rank-deficient ``R`` (reference panel
  smaller than the region, monomorphic variants) is handled exactly: directions
  outside the range carry no signal. This is the pseudo-inverse (Woodbury) form of
  the DeepWAS code.
* **iterative** -- matrix-free ``K`` products through the region's LD (dense or
  banded), block PCG for ``K^{-1} [z, probes]`` and preconditioned SLQ for ``log|K|``
  (banded Cholesky of ``K`` at a recent prior for banded LD, else the engine's
  projected-core preconditioner on the kernels ``D R F R D`` and ``R_ww``). The value
  is a Monte Carlo estimate with a standard error; the gradient is unbiased: the loss
  carries the surrogate ``0.5 [tr-estimate(K^{-1} dK) - s^T dK s]`` (``s = K^{-1} z``,
  trace by ``E[(M^{-1} u)^T dK (K^{-1} u)]`` with probes ``u ~ (0, M)``), built from
  solves taken without autograd. Needs ``R_ww`` positive definite (repair LD with
  ``repair="ridge"``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import torch

from torchgenetics.errors import InputError
from torchgenetics.linalg import ProjectedCorePreconditioner, block_cg, make_probes, slq_logdet
from torchgenetics.memory import available_bytes
from torchgenetics.operators import BandedLD

from .banded import BandedCholeskyPreconditioner, bands_from_matvec
from .regions import Region, ld_dense, ld_matmul, ld_squared

__all__ = ["RegionNLL", "RegionLikelihood", "EXACT_MAX_VARIANTS", "BANDED_EXACT_MAX", "LOG_2PI"]

LOG_2PI = math.log(2.0 * math.pi)

# Largest scored window for which method="auto" takes the exact path, measured by
#   .venv/bin/python benchmarks/deepwas.py [--iterative-ld dense]
# (time per AdamW training step, MLP prior, 1 thread, shared 2-core x86-64, float64).
# Banded LD (band 100 SNPs, banded-Cholesky preconditioner): exact vs iterative s/step
# 0.09/0.22 (p=500), 0.70/0.79 (1,000), 8.6/1.4 (2,000), 25/1.0 (4,000), 286/2.6 (10,000);
# p^3 and p cost models cross near 900. Dense LD (projected-core preconditioner, dense
# products): exact faster at every measured size (4,000: 26 s vs 87 s), so auto keeps it
# while its matrices fit the memory budget.
BANDED_EXACT_MAX = 1000
EXACT_MAX_VARIANTS = 8000

METHODS = ("auto", "exact", "iterative")
PRECONDITIONERS = ("auto", "banded", "projected_core", "none")


@dataclass
class RegionNLL:
    """Negative log-likelihood of one region (nats, summed over its scored variants).

    Attributes
    ----------
    loss : torch.Tensor
        0-d tensor whose value is the NLL (estimate) and whose gradient is the NLL's
        gradient (exact) or an unbiased estimate of it (iterative).
    se : float
        Monte Carlo standard error of the value (0 for the exact path).
    n_scored : int
        Scored variants (the window size q).
    method : str
        ``"exact"`` or ``"iterative"``.
    info : dict
        Diagnostics: ``rank`` (exact); ``cg_iterations``, ``cg_converged``,
        ``logdet_se`` (iterative).

    Examples
    --------
    >>> out = RegionNLL(torch.tensor(3.0), 0.0, 2, "exact")
    >>> out.value, out.per_variant
    (3.0, 1.5)
    """

    loss: torch.Tensor
    se: float
    n_scored: int
    method: str
    info: dict = field(default_factory=dict)

    @property
    def value(self) -> float:
        """The NLL as a float."""
        return float(self.loss.detach())

    @property
    def per_variant(self) -> float:
        """NLL per scored variant."""
        return self.value / max(self.n_scored, 1)


def _as_sigma(sigma, like: torch.Tensor) -> torch.Tensor:
    s = torch.as_tensor(sigma, dtype=like.dtype, device=like.device)
    if float(s.detach()) <= 0:
        raise InputError(f"the noise scale sigma must be > 0, got {float(s.detach())}")
    return s


def _check_variance(region: Region, variance: torch.Tensor) -> torch.Tensor:
    if variance.dim() != 1 or variance.shape[0] != region.n_variants:
        raise InputError(f"region {region.name}: need one variance per variant "
                         f"({region.n_variants}), got shape {tuple(variance.shape)}")
    return variance.to(region.dtype)


def _exact_parts(region: Region, rank_tol: float) -> dict:
    """Whitening of the window onto range(R_ww): B (r x p), t (r,), sum log lam_r."""
    with torch.no_grad():
        R = ld_dense(region.ld)
        w = region.window
        Rw = R.index_select(0, w)
        Rww = Rw.index_select(1, w)
        lam, U = torch.linalg.eigh(0.5 * (Rww + Rww.mT))
        top = float(lam.max()) if lam.numel() else 0.0
        low = float(lam.min()) if lam.numel() else 0.0
        if low < -1e-6 * max(top, 0.0):
            warnings.warn(f"region {region.name}: LD of the scored window is not positive "
                          f"semi-definite (smallest eigenvalue {low:.3g}); the exact likelihood "
                          "drops those directions. Repair the LD (repair='ridge').",
                          RuntimeWarning, stacklevel=4)
        keep = lam > rank_tol * top if top > 0 else torch.zeros_like(lam, dtype=torch.bool)
        lam, U = lam[keep], U[:, keep]
        Wt = U / lam.sqrt()
        B = Wt.mT @ (region.sqrt_n.unsqueeze(-1) * Rw)
        t = Wt.mT @ region.z
    return {"B": B, "t": t, "logdet_lam": float(lam.log().sum()), "rank": int(lam.numel()),
            "min_eigenvalue": low}


def _projection(region: Region):
    """Closures for ``(S^T U, R_ww U)`` (p x k, q x k) with ``S = D R_{w,:}``, and K matvecs."""
    ld, w, sn = region.ld, region.window, region.sqrt_n
    p = region.n_variants
    common = bool((sn == sn[0]).all()) if sn.numel() else True

    def embed(U):
        E = U.new_zeros(p, U.shape[1])
        E[w] = U
        return E

    def parts(U):
        if common:
            RU = ld_matmul(ld, embed(U))
            return sn[0] * RU, RU.index_select(0, w)
        RU = ld_matmul(ld, embed(torch.cat([sn.unsqueeze(-1) * U, U], dim=1)))
        k = U.shape[1]
        return RU[:, :k], RU[:, k:].index_select(0, w)

    def kmv(U, f, sigma):
        StU, RwwU = parts(U)
        return sn.unsqueeze(-1) * ld_matmul(ld, f.unsqueeze(-1) * StU).index_select(0, w) + sigma * RwwU

    def rww(U):
        return ld_matmul(ld, embed(U)).index_select(0, w)

    return parts, kmv, rww


class RegionLikelihood:
    """Region negative log-likelihood with an exact and an iterative path (one interface).

    Parameters
    ----------
    method : {"auto", "exact", "iterative"}
        ``"auto"``: exact when the window has at most ``exact_max`` variants (dense LD) or
        ``banded_exact_max`` (banded LD) and its dense matrices fit the memory budget
        (:func:`torchgenetics.memory.available_bytes`), iterative otherwise.
    exact_max : int
        Crossover for dense LD (default :data:`EXACT_MAX_VARIANTS`, measured).
    banded_exact_max : int
        Crossover for banded LD (default :data:`BANDED_EXACT_MAX`, measured).
    rank_tol : float
        Exact path: eigenvalues of ``R_ww`` below ``rank_tol * max`` are treated as 0.
    num_probes : int
        Iterative path: probe vectors for SLQ and the trace in the gradient.
    lanczos_steps : int
        Iterative path: Lanczos steps per probe.
    tol : float
        Iterative path: relative residual of the block PCG solves.
    max_iter : int
        Iterative path: PCG iteration cap.
    preconditioner : {"auto", "banded", "projected_core", "none"}
        Iterative path: ``"banded"`` is LAPACK's banded Cholesky of K (banded LD only,
        O(q w^2)); ``"projected_core"`` is the engine's
        :class:`~torchgenetics.linalg.ProjectedCorePreconditioner` on the kernels
        ``D R F R D`` and ``R_ww``; ``"auto"`` takes banded for banded LD, projected core
        otherwise.
    precond_rank : int
        Rank of the projected-core preconditioner (0 with ``"auto"``: none for dense LD).
    precond_refresh : int
        Rebuild a region's preconditioner every this many calls, at the current prior (in
        between the projected core is rescaled, O(r^3); the banded one is kept).
    seed : int
        Seed of the probe generator (fresh probes every call, reproducible sequence).
    cache : bool
        Keep per-region precomputations (whitening, preconditioner) in ``region.cache``.

    Examples
    --------
    >>> import numpy as np
    >>> R = torch.tensor([[1.0, 0.4], [0.4, 1.0]], dtype=torch.float64)
    >>> reg = Region("r", "1", np.array(["a", "b"], dtype=object), R, torch.tensor([0, 1]),
    ...              torch.tensor([2.0, 1.0], dtype=torch.float64),
    ...              torch.full((2,), 10.0, dtype=torch.float64), torch.zeros(2, 1, dtype=torch.float64))
    >>> f = torch.full((2,), 0.01, dtype=torch.float64, requires_grad=True)
    >>> out = RegionLikelihood("exact")(reg, f)
    >>> K = 100 * R @ torch.diag(f.detach()) @ R + R
    >>> ref = -torch.distributions.MultivariateNormal(torch.zeros(2, dtype=torch.float64), K).log_prob(reg.z)
    >>> round(out.value, 10) == round(float(ref), 10)
    True
    """

    def __init__(self, method: str = "auto", exact_max: int = EXACT_MAX_VARIANTS,
                 banded_exact_max: int = BANDED_EXACT_MAX, rank_tol: float = 1e-8, num_probes: int = 16, lanczos_steps: int = 30,
                 tol: float = 1e-6, max_iter: int = 1000, preconditioner: str = "auto",
                 precond_rank: int = 64, precond_refresh: int = 10, seed: int = 0,
                 cache: bool = True):
        if method not in METHODS:
            raise InputError(f"likelihood method must be one of {METHODS}, got {method!r}")
        if int(num_probes) < 2:
            raise InputError(f"num_probes must be >= 2 (the standard error needs two), got {num_probes}")
        if preconditioner not in PRECONDITIONERS:
            raise InputError(f"preconditioner must be one of {PRECONDITIONERS}, got {preconditioner!r}")
        self.method = method
        self.preconditioner = preconditioner
        self.exact_max = int(exact_max)
        self.banded_exact_max = int(banded_exact_max)
        self.rank_tol = float(rank_tol)
        self.num_probes = int(num_probes)
        self.lanczos_steps = int(lanczos_steps)
        self.tol = float(tol)
        self.max_iter = int(max_iter)
        self.precond_rank = int(precond_rank)
        self.precond_refresh = max(1, int(precond_refresh))
        self.seed = int(seed)
        self.cache = bool(cache)
        self.generator = torch.Generator().manual_seed(self.seed)
        self._budgets: dict = {}

    def config(self) -> dict:
        """The constructor arguments (for saving with a fit).

        Examples
        --------
        >>> RegionLikelihood("exact").config()["method"]
        'exact'
        """
        keys = ("method", "exact_max", "banded_exact_max", "rank_tol", "num_probes", "lanczos_steps", "tol",
                "max_iter", "preconditioner", "precond_rank", "precond_refresh", "seed", "cache")
        return {k: getattr(self, k) for k in keys}

    def method_for(self, region: Region) -> str:
        """The path ``"auto"`` takes for a region.

        Examples
        --------
        >>> RegionLikelihood("iterative").method_for(None)
        'iterative'
        """
        if self.method != "auto":
            return self.method
        limit = self.exact_max if isinstance(region.ld, torch.Tensor) else self.banded_exact_max
        if region.n_scored > limit:
            return "iterative"
        # dense R, its window rows and the whitened B (about 3 p^2), and C and its gradient
        need = (3 * region.n_variants ** 2 + 3 * region.n_scored ** 2) * region.z.element_size()
        return "exact" if need <= self._budget(region.device) else "iterative"

    def _budget(self, device) -> int:
        key = str(device)
        if key not in self._budgets:
            self._budgets[key] = available_bytes(device)
        return self._budgets[key]

    def __call__(self, region: Region, variance: torch.Tensor, sigma=1.0,
                 method: str | None = None) -> RegionNLL:
        """NLL of a region under per-variant effect variances ``variance`` (p,).

        Parameters
        ----------
        region : Region
        variance : torch.Tensor
            ``(p,)`` non-negative effect variances (standardized genotypes, unit phenotype
            variance) of all the region's variants, differentiable.
        sigma : float or torch.Tensor
            Noise scale (> 0), differentiable when a tensor.
        method : str, optional
            Override of the configured path.

        Returns
        -------
        RegionNLL

        Examples
        --------
        >>> import numpy as np
        >>> reg = Region("r", "1", np.array(["a"], dtype=object), torch.eye(1, dtype=torch.float64),
        ...              torch.tensor([0]), torch.tensor([1.0], dtype=torch.float64),
        ...              torch.ones(1, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64))
        >>> round(RegionLikelihood("exact")(reg, torch.zeros(1, dtype=torch.float64)).value, 6)
        1.418939
        """
        variance = _check_variance(region, variance)
        sigma = _as_sigma(sigma, variance)
        path = method or self.method_for(region)
        if path == "exact":
            return self._exact(region, variance, sigma)
        if path == "iterative":
            return self._iterative(region, variance, sigma)
        raise InputError(f"likelihood method must be 'exact' or 'iterative', got {path!r}")

    def prepare(self, region: Region) -> dict:
        """Precompute (and cache) the exact path's whitening of a region; returns it.

        The eigendecomposition of ``R_ww`` is the exact path's one-off cost; training
        calls it lazily on first use, this does it ahead (e.g. to time it, or before a
        timed loop).

        Examples
        --------
        >>> import numpy as np
        >>> reg = Region("r", "1", np.array(["a", "b"], dtype=object), torch.eye(2, dtype=torch.float64),
        ...              torch.tensor([0, 1]), torch.ones(2, dtype=torch.float64),
        ...              torch.ones(2, dtype=torch.float64), torch.zeros(2, 1, dtype=torch.float64))
        >>> RegionLikelihood().prepare(reg)["rank"]
        2
        """
        key = ("exact", self.rank_tol)
        parts = region.cache.get(key) if self.cache else None
        if parts is None:
            parts = _exact_parts(region, self.rank_tol)
            if self.cache:
                region.cache[key] = parts
        return parts

    def null(self, region: Region, sigma=1.0, method: str | None = None) -> RegionNLL:
        """NLL of the region's window under the null ``F -> 0`` (``z_w ~ N(0, sigma R_ww)``).

        Examples
        --------
        >>> import numpy as np
        >>> reg = Region("r", "1", np.array(["a"], dtype=object), torch.eye(1, dtype=torch.float64),
        ...              torch.tensor([0]), torch.tensor([0.0], dtype=torch.float64),
        ...              torch.ones(1, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64))
        >>> round(RegionLikelihood().null(reg).value, 6)
        0.918939
        """
        zero = torch.zeros(region.n_variants, dtype=region.dtype, device=region.device)
        sigma = float(sigma.detach()) if isinstance(sigma, torch.Tensor) else float(sigma)
        with torch.no_grad():
            return self(region, zero, sigma, method=method)

    # ----------------------------------------------------------------- exact path

    def _exact(self, region, f, sigma) -> RegionNLL:
        parts = self.prepare(region)
        B, t, r = parts["B"], parts["t"], parts["rank"]
        if r == 0:
            loss = (f * 0.0).sum() + sigma * 0.0
            return RegionNLL(loss, 0.0, region.n_scored, "exact", {"rank": 0})
        C = (B * f) @ B.mT
        C = C + sigma * torch.eye(r, dtype=C.dtype, device=C.device)
        L, info = torch.linalg.cholesky_ex(0.5 * (C + C.mT))
        if int(info) != 0:
            raise InputError(f"region {region.name}: the whitened covariance is not positive "
                             "definite (are the variances finite and sigma > 0?)")
        alpha = torch.linalg.solve_triangular(L, t.unsqueeze(-1), upper=False)
        nll = 0.5 * (r * LOG_2PI + parts["logdet_lam"] + 2.0 * L.diagonal().log().sum()
                     + alpha.square().sum())
        return RegionNLL(nll, 0.0, region.n_scored, "exact", {"rank": r})

    # ------------------------------------------------------------- iterative path

    def preconditioner_for(self, region: Region) -> str:
        """The preconditioner the iterative path uses for a region.

        ``"auto"``: ``"banded"`` (banded Cholesky of K) for banded LD, otherwise
        ``"projected_core"`` (rank ``precond_rank``); ``"none"`` when ``precond_rank`` is 0.

        Examples
        --------
        >>> RegionLikelihood(preconditioner="none").preconditioner_for(None)
        'none'
        """
        kind = self.preconditioner
        if kind == "auto":
            if self.precond_rank <= 0 and not isinstance(region.ld, BandedLD):
                return "none"
            return "banded" if isinstance(region.ld, BandedLD) else "projected_core"
        if kind == "banded" and not isinstance(region.ld, BandedLD):
            raise InputError(f"region {region.name}: the banded preconditioner needs banded LD")
        return kind

    def _build_preconditioner(self, region, kind, fd, sd, kmv, rww):
        q = region.n_scored
        if kind == "banded":
            bands = bands_from_matvec(lambda X: kmv(X, fd, sd), q, 2 * region.ld.bandwidth,
                                      dtype=region.dtype, device=region.device)
            return BandedCholeskyPreconditioner(bands)
        rank = min(self.precond_rank, q - 1)
        if rank < 1:
            return None
        w, sn = region.window, region.sqrt_n
        diag_r = region.ld.diagonal() if isinstance(region.ld, torch.Tensor) else region.ld.bands[0]
        sq = ld_matmul(ld_squared(region.ld), fd.unsqueeze(-1)).squeeze(-1)
        traces = [float((sn.square() * sq.index_select(0, w)).sum()),
                  float(diag_r.index_select(0, w).sum())]
        return ProjectedCorePreconditioner.from_kernels(
            [lambda X: kmv(X, fd, 0.0), rww], theta=[1.0, sd], residual=1e-6 * sd, rank=rank,
            generator=self.generator, traces=traces, size=q, dtype=region.dtype,
            device=region.device)

    def _preconditioner(self, region, fd, sd, kmv, rww):
        kind = self.preconditioner_for(region)
        if kind == "none":
            return None
        state = region.cache.get("precond") if self.cache else None
        log_mean = float(fd.clamp_min(1e-300).log().mean())
        if state is None or state["calls"] >= self.precond_refresh or state["kind"] != kind:
            P = self._build_preconditioner(region, kind, fd, sd, kmv, rww)
            state = {"P": P, "kind": kind, "log_mean": log_mean, "calls": 0}
        elif kind == "projected_core" and state["P"] is not None:
            state["P"].update([math.exp(log_mean - state["log_mean"]), sd], 1e-6 * sd)
        state["calls"] += 1
        if self.cache:
            region.cache["precond"] = state
        return state["P"]

    def _iterative(self, region, f, sigma) -> RegionNLL:
        q, k = region.n_scored, self.num_probes
        fd, sd = f.detach(), float(sigma.detach())
        parts, kmv, rww = _projection(region)

        def K(U):
            return kmv(U, fd, sd)

        with torch.no_grad():
            P = self._preconditioner(region, fd, sd, kmv, rww)
            u = make_probes(q, k, self.generator, region.dtype, region.device)
            zp = P.root_matmul(u) if P is not None else u
            rhs = torch.cat([region.z.unsqueeze(-1), zp], dim=1)
            cg = block_cg(K, rhs, preconditioner=P, tol=self.tol, max_iter=self.max_iter)
            s, Kinv_zp = cg.solution[:, :1], cg.solution[:, 1:]
            Minv_zp = P.solve(zp) if P is not None else zp
            try:
                logdet = slq_logdet(K, probes=u, lanczos_steps=self.lanczos_steps,
                                    preconditioner=P, size=q, dtype=region.dtype, device=region.device)
            except InputError as err:
                raise InputError(f"region {region.name}: {err}; the iterative path needs R_ww "
                                 "positive definite (repair the LD with repair='ridge' or use "
                                 "method='exact')") from None
            quad = float((region.z * s.squeeze(-1)).sum())
            # d NLL / d f_j = 0.5 [tr-estimate(K^-1 S_j S_j^T) - (S_j^T s)^2], likewise sigma
            St_a, Rww_a = parts(torch.cat([Kinv_zp, s], dim=1))
            St_b, Rww_b = parts(Minv_zp)
            g_f = (St_a[:, :k] * St_b).mean(1) - St_a[:, k].square()
            g_s = float((Kinv_zp * Rww_b).sum(0).mean()) - float((s * Rww_a[:, k:]).sum())
        value = 0.5 * (q * LOG_2PI + float(logdet.value) + quad)
        sur = 0.5 * ((f * g_f).sum() + sigma * g_s)
        loss = (sur - sur.detach()) + value
        info = {"cg_iterations": cg.n_iter, "cg_converged": cg.all_converged,
                "logdet_se": float(logdet.se), "quad": quad,
                "preconditioner": "none" if P is None else self.preconditioner_for(region)}
        return RegionNLL(loss, 0.5 * float(logdet.se), q, "iterative", info)
