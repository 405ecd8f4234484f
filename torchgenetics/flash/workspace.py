"""``Workspace``: the mutable state of a flash fit while a step runs.

Holds the posterior moments of loadings and factors, fitted priors, KL terms,
residual precisions and the residual engine, and performs the elementary
moves every step is built from: update one factor (both modes, then the
precisions), update all factors at once (parallel), add, zero or drop factors,
and evaluate the ELBO. Steps build a workspace from a :class:`FlashFit`, run,
and turn it back into a new fit.
"""

from __future__ import annotations

import math

import torch

from ..ebnm import Family, concat_priors, get_family, solve
from .data import FlashData
from .engines import ImplicitEngine, make_engine
from .tau import estimate_tau, expected_loglik

__all__ = ["Workspace", "family_pair"]


def family_pair(prior) -> tuple[Family, Family]:
    """Loadings and factors families from ``prior`` (one spec, or a pair of specs).

    Examples
    --------
    >>> [f.name for f in family_pair(("point_laplace", "point_exponential"))]
    ['point_laplace', 'point_exponential']
    """
    if isinstance(prior, (tuple, list)):
        if len(prior) != 2:
            from ..errors import InputError

            raise InputError(f"prior must be one family or a (loadings, factors) pair, got {len(prior)} entries")
        return get_family(prior[0]), get_family(prior[1])
    fam = get_family(prior)
    return fam, get_family(fam.spec())


class Workspace:
    """Mutable flash state on one :class:`FlashData`.

    Parameters
    ----------
    data : FlashData
        The data.
    M, M2 : list of torch.Tensor
        ``[L, F]`` posterior means and ``[L2, F2]`` second moments, ``(n, K)`` / ``(p, K)``.
    kl : torch.Tensor
        ``(K, 2)`` KL divergences of each factor's posterior from its prior.
    g : list of list
        ``g[mode][k]``: fitted prior (batch of one) or ``None``.
    lfsr : list of torch.Tensor
        ``[(n, K), (p, K)]`` local false sign rates (NaN when not fitted).
    families : list of tuple
        ``(loadings Family, factors Family)`` per factor.
    fixed : torch.Tensor
        ``(K, 2)`` booleans: modes held fixed.
    tau : torch.Tensor
        Residual precisions broadcastable to ``(n, p)``.
    sigma2 : torch.Tensor or None
        Extra variance on top of ``S`` (when estimated).

    Examples
    --------
    >>> d = FlashData.build(torch.randn(6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    >>> ws = Workspace.empty(d)
    >>> ws.K, round(ws.elbo(), 3) < 0
    (0, True)
    """

    def __init__(self, data: FlashData, M, M2, kl, g, lfsr, families, fixed, tau, sigma2=None):
        self.data = data
        self.M = [M[0].clone(), M[1].clone()]
        self.M2 = [M2[0].clone(), M2[1].clone()]
        self.kl = kl.clone()
        self.g = [list(g[0]), list(g[1])]
        self.lfsr = [lfsr[0].clone(), lfsr[1].clone()]
        self.families = list(families)
        self.fixed = fixed.clone()
        self.tau = tau.clone()
        self.sigma2 = None if sigma2 is None else sigma2.clone()
        self.engine = make_engine(data)
        self._tau_changed()
        self.engine.refresh(self.M, self.M2)

    @classmethod
    def empty(cls, data: FlashData, tau=None, sigma2=None) -> Workspace:
        """A workspace with no factors and precisions from ``Y`` alone.

        Examples
        --------
        >>> Workspace.empty(FlashData.build(torch.ones(2, 2, dtype=torch.float64))).K
        0
        """
        from .tau import initial_tau

        Y = data.Y
        if tau is None:
            tau, sigma2 = initial_tau(data)
        zeros = lambda size: torch.zeros(size, 0, dtype=Y.dtype, device=Y.device)  # noqa: E731
        return cls(
            data,
            [zeros(data.n), zeros(data.p)],
            [zeros(data.n), zeros(data.p)],
            torch.zeros(0, 2, dtype=Y.dtype, device=Y.device),
            [[], []],
            [zeros(data.n), zeros(data.p)],
            [],
            torch.zeros(0, 2, dtype=torch.bool, device=Y.device),
            tau,
            sigma2,
        )

    # ---- basic properties ---------------------------------------------------
    @property
    def K(self) -> int:
        """Number of factors."""
        return int(self.M[0].shape[1])

    def is_zero(self, k: int) -> bool:
        """Whether factor ``k`` is identically zero."""
        return bool((self.M2[0][:, k] == 0).all() or (self.M2[1][:, k] == 0).all())

    def _tau_changed(self) -> None:
        if not isinstance(self.engine, ImplicitEngine):
            self.engine.set_weights(self.tau)

    # ---- objective ----------------------------------------------------------
    def _er2(self):
        if isinstance(self.engine, ImplicitEngine):
            return self.engine.er2_total()
        return self.engine.er2()

    def update_tau(self) -> None:
        """Re-estimate the residual precisions (no-op when only ``S`` is used)."""
        if self.data.var_type is None:
            return
        self.tau, self.sigma2 = estimate_tau(self.data, self._er2(), self.sigma2)
        self._tau_changed()

    def loglik(self) -> float:
        """Expected log likelihood of the data under the current state."""
        return expected_loglik(self.data, self.tau, self._er2())

    def elbo(self) -> float:
        """Evidence lower bound: expected log likelihood minus the KL terms."""
        return self.loglik() - float(self.kl.sum())

    # ---- single-factor updates ----------------------------------------------
    def _ebnm(self, family: Family, x, s, g_init):
        return solve(family, x, s, g_init=g_init)

    def update_mode(self, k: int, mode: int, warmstart: bool = True) -> None:
        """EBNM update of factor ``k`` in ``mode`` given everything else."""
        num, den = self.engine.stats(k, mode, self.tau)
        if not bool((den > 0).all()):
            if not bool((den > 0).any()):
                self.zero_factor(k)
                return
            den = torch.clamp(den, min=torch.finfo(den.dtype).tiny ** 0.5)
        x = (num / den).unsqueeze(0)
        s = torch.rsqrt(den).unsqueeze(0)
        g_init = self.g[mode][k] if warmstart else None
        res = self._ebnm(self.families[k][mode], x, s, g_init)
        self.engine.commit(k, mode, res.posterior_mean[0], res.posterior_second_moment[0])
        self.kl[k, mode] = res.kl[0]
        self.g[mode][k] = res.prior
        self.lfsr[mode][:, k] = res.lfsr[0]
        if bool((self.M2[mode][:, k] == 0).all()):
            self.zero_factor(k)

    def update_factor(self, k: int, warmstart: bool = True, tau: bool = True) -> None:
        """Update both modes of factor ``k`` (skipping fixed modes), then the precisions."""
        for mode in (0, 1):
            if self.is_zero(k):
                break
            if not bool(self.fixed[k, mode]):
                self.update_mode(k, mode, warmstart=warmstart)
        if tau:
            self.update_tau()

    def zero_factor(self, k: int) -> None:
        """Set factor ``k`` to zero in both modes (KL 0, priors cleared)."""
        for mode in (0, 1):
            zero = torch.zeros_like(self.M[mode][:, k])
            self.engine.commit(k, mode, zero, zero)
            self.g[mode][k] = None
            self.lfsr[mode][:, k] = float("nan")
        self.kl[k] = 0.0

    def set_factor(self, k: int, values: list[torch.Tensor], values2: list[torch.Tensor]) -> None:
        """Overwrite factor ``k``'s moments (used to restore after a trial removal)."""
        for mode in (0, 1):
            self.engine.commit(k, mode, values[mode].clone(), values2[mode].clone())

    # ---- parallel update ----------------------------------------------------
    def update_parallel(self, ks: list[int] | None = None, warmstart: bool = True) -> None:
        """Update all factors in ``ks`` at once per mode: one matrix product, batched EBNM per family."""
        ks = list(range(self.K)) if ks is None else list(ks)
        for mode in (0, 1):
            active = [k for k in ks if not bool(self.fixed[k, mode]) and not self.is_zero(k)]
            if not active:
                continue
            num, den = self.engine.stats_all(mode, self.tau)
            new, new2 = self.M[mode].clone(), self.M2[mode].clone()
            den = torch.clamp(den, min=torch.finfo(den.dtype).tiny ** 0.5)
            groups: dict[str, list[int]] = {}
            for k in active:
                groups.setdefault(repr(self.families[k][mode].spec()), []).append(k)
            for members in groups.values():
                family = self.families[members[0]][mode]
                idx = torch.tensor(members, device=num.device)
                x = (num[:, idx] / den[:, idx]).T.contiguous()
                s = torch.rsqrt(den[:, idx]).T.contiguous()
                priors = [self.g[mode][k] for k in members]
                g_init = concat_priors(priors) if warmstart and all(p is not None for p in priors) else None
                res = self._ebnm(family, x, s, g_init)
                new[:, idx] = res.posterior_mean.T
                new2[:, idx] = res.posterior_second_moment.T
                for j, k in enumerate(members):
                    self.kl[k, mode] = res.kl[j]
                    self.g[mode][k] = res.prior.select(j)
                    self.lfsr[mode][:, k] = res.lfsr[j]
            self.engine.commit_all(mode, new, new2)
        for k in ks:
            if k < self.K and not self.is_zero(k) and (
                bool((self.M2[0][:, k] == 0).all()) or bool((self.M2[1][:, k] == 0).all())
            ):
                self.zero_factor(k)
        self.update_tau()

    # ---- adding and removing factors ----------------------------------------
    def add_factor(self, l0, f0, families: tuple[Family, Family], fixed=(False, False)) -> int:
        """Append a factor with point-mass moments at ``(l0, f0)``; returns its index."""
        vals = [l0.to(self.M[0]), f0.to(self.M[1])]
        for mode in (0, 1):
            self.M[mode] = torch.cat([self.M[mode], vals[mode].unsqueeze(1)], dim=1)
            self.M2[mode] = torch.cat([self.M2[mode], (vals[mode] ** 2).unsqueeze(1)], dim=1)
            nan = torch.full_like(vals[mode], float("nan")).unsqueeze(1)
            self.lfsr[mode] = torch.cat([self.lfsr[mode], nan], dim=1)
            self.g[mode].append(None)
        self.kl = torch.cat([self.kl, torch.zeros(1, 2, dtype=self.kl.dtype, device=self.kl.device)])
        self.fixed = torch.cat([self.fixed, torch.tensor([list(fixed)], dtype=torch.bool, device=self.fixed.device)])
        self.families.append(families)
        self.engine.refresh(self.M, self.M2)
        return self.K - 1

    def drop(self, ks: list[int]) -> None:
        """Remove factors ``ks``."""
        keep = [k for k in range(self.K) if k not in set(ks)]
        idx = torch.tensor(keep, dtype=torch.long, device=self.M[0].device)
        for mode in (0, 1):
            self.M[mode] = self.M[mode][:, idx].contiguous()
            self.M2[mode] = self.M2[mode][:, idx].contiguous()
            self.lfsr[mode] = self.lfsr[mode][:, idx].contiguous()
            self.g[mode] = [self.g[mode][k] for k in keep]
        self.kl = self.kl[idx]
        self.fixed = self.fixed[idx]
        self.families = [self.families[k] for k in keep]
        self.engine.refresh(self.M, self.M2)

    # ---- snapshots ----------------------------------------------------------
    def moments(self) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """Copies of ``([L, F], [L2, F2], tau)`` (what extrapolation works on)."""
        return [m.clone() for m in self.M], [m.clone() for m in self.M2], self.tau.clone()

    def copy(self) -> Workspace:
        """An independent copy (engine rebuilt)."""
        return Workspace(self.data, *self.state())

    def state(self) -> tuple:
        """Cloned constructor arguments (a cheap snapshot; ``Workspace(data, *state)`` restores it)."""
        return (
            [m.clone() for m in self.M],
            [m.clone() for m in self.M2],
            self.kl.clone(),
            [list(self.g[0]), list(self.g[1])],
            [m.clone() for m in self.lfsr],
            list(self.families),
            self.fixed.clone(),
            self.tau.clone(),
            None if self.sigma2 is None else self.sigma2.clone(),
        )

    def extrapolated(self, old: tuple, beta: float, ks: list[int] | None = None) -> Workspace:
        """flashier's extrapolation ``new + beta (new - old)`` of moments and precisions.

        Zero factors are left alone; second moments stay above squared means and
        precisions above zero. The returned workspace must be updated (a full
        sweep) before its ELBO means anything.
        """
        old_M, old_M2, old_tau = old
        if any(old_M[m].shape != self.M[m].shape for m in (0, 1)):
            return self.copy()
        chosen = set(range(self.K)) if ks is None else set(ks)
        skip = torch.tensor(
            [self.is_zero(k) or k not in chosen for k in range(self.K)], dtype=torch.bool, device=self.M[0].device
        )
        M, M2 = [], []
        for mode in (0, 1):
            keep = self.fixed[:, mode] | skip
            step = self.M[mode] + beta * (self.M[mode] - old_M[mode])
            step2 = self.M2[mode] + beta * (self.M2[mode] - old_M2[mode])
            step2 = torch.maximum(step2, step * step + 1e-10)
            M.append(torch.where(keep, self.M[mode], step))
            M2.append(torch.where(keep, self.M2[mode], step2))
        tau = self.tau
        if self.data.var_type is not None and old_tau.shape == self.tau.shape:
            tau = torch.clamp(self.tau + beta * (self.tau - old_tau), min=1e-10)
        return Workspace(self.data, M, M2, self.kl, self.g, self.lfsr, self.families, self.fixed, tau, self.sigma2)

    # ---- convenience --------------------------------------------------------
    def loadings_cosines(self, ks: list[int]) -> tuple[float, tuple[int, int], int]:
        """Largest |cosine| between two loadings or two factors among ``ks`` (value, pair, mode)."""
        best = (0.0, (-1, -1), 0)
        if len(ks) < 2:
            return best
        idx = torch.tensor(ks, device=self.M[0].device)
        for mode in (0, 1):
            A = self.M[mode][:, idx]
            norms = torch.linalg.vector_norm(A, dim=0)
            ok = norms > 0
            A = A / torch.where(ok, norms, torch.ones_like(norms))
            C = (A.T @ A).abs()
            C.fill_diagonal_(0.0)
            value, flat = C.flatten().max(0)
            if float(value) > best[0]:
                i, j = divmod(int(flat), len(ks))
                best = (float(value), (ks[i], ks[j]), mode)
        return best

    def default_tol(self) -> float:
        """flashier's default tolerance ``n p sqrt(eps)``."""
        return self.data.n * self.data.p * math.sqrt(torch.finfo(self.data.Y.dtype).eps)
