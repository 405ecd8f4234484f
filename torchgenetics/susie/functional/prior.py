"""Priors of the wavelet coefficients of a functional single effect, fitted by empirical Bayes.

Every coefficient column belongs to a prior group (one per outcome, or one per
(outcome, scale)); each single effect l has its own prior per group, a mixture of
K components with weights ``pi[l, g]`` and scales ``scale[l, g]``:

* ``"mixture_normal"``: scale mixture of normals ``sum_k pi_k N(0, scale_k^2)`` on a
  fixed grid (ash's default grid, :func:`torchgenetics.ebnm.ashr_scale_grid`, from the
  marginal regressions of each outcome; ``scale = 0`` is the null point mass);
  weights by mix-SQP (:func:`torchgenetics.ebnm.mixsqp`).
* ``"point_normal"`` and ``"point_laplace"``: ``pi0 delta_0 + (1 - pi0) slab`` with
  the slab a normal (sd) or a Laplace (scale) (ebnm's priors,
  :mod:`torchgenetics.ebnm.priors`), both parameters by Newton's method
  (:func:`torchgenetics.ebnm.optimize.newton_maximize`).

The empirical-Bayes update of effect l (the M step of EM on its SER marginal
likelihood ``log sum_j pi_j prod_t p(bhat_jt | g, shat_jt) / N(bhat_jt; 0, shat_jt^2)``,
with alpha the E step) maximises, per group, the alpha-weighted marginal
likelihood ``sum_j alpha_lj sum_(t in g) log p(bhat_jt | g, shat_jt)``, plus
``null_penalty`` pseudo-observations per coefficient on the null component (a
Dirichlet-type penalty that keeps an effect without support null). Variables with
``alpha_lj <= 1e-6`` are left out of the update, as mfsusieR does. The point-prior
Newton search is capped at a few steps (a generalised M step: it never lowers
the objective).

Given the prior, the single-effect posterior of a variable's coefficients is
exact: per coefficient a log Bayes factor against ``b = 0`` and the posterior
mean and second moment. For normal components they use the form of susie's SER
(``t = scale^2 / shat^2``, ``lbf = (z^2 t / (1 + t) - log(1 + t)) / 2``), so a
one-component prior is susie's single effect regression.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ...ebnm.grids import ashr_scale_grid, pad_grids
from ...ebnm.mixsqp import mixsqp
from ...ebnm.normal_means import log_normal_pdf
from ...ebnm.optimize import newton_maximize
from ...ebnm.priors import PointLaplacePrior, PointNormalPrior
from ...errors import InputError

__all__ = ["PRIOR_FAMILIES", "PriorSettings", "CoefficientPrior"]

#: Prior families of the wavelet coefficients.
PRIOR_FAMILIES = ("mixture_normal", "point_normal", "point_laplace")
# Variables with alpha at most this are left out of the prior update (mfsusieR's mixsqp_alpha_eps).
_ALPHA_EPS = 1e-6
# Elements of one (p, columns, K) block of the posterior kernel.
_BLOCK = 1 << 22
# Newton iterations and relative tolerance of the point-prior updates (one EM step of many).
_NEWTON_ITER, _NEWTON_RTOL = 5, 1e-10


@dataclass
class PriorSettings:
    """How the coefficient priors are chosen and updated.

    Attributes
    ----------
    family : {"mixture_normal", "point_normal", "point_laplace"}
        Prior family.
    estimate : bool
        Update the prior of each effect by empirical Bayes (False: fixed prior).
    null_component : bool
        Whether the prior has a point mass at zero.
    null_penalty : float
        Pseudo-observations per coefficient on the null component in the update.
    null_prior_init : float
        Initial weight of the null component.
    check_null_threshold : float
        After its update, an effect's prior is set to the null unless its SER log
        marginal likelihood beats the null's by more than this.

    Examples
    --------
    >>> PriorSettings().family
    'mixture_normal'
    """

    family: str = "mixture_normal"
    estimate: bool = True
    null_component: bool = True
    null_penalty: float = 0.7
    null_prior_init: float = 0.5
    check_null_threshold: float = 0.0


def _normal_lbfk(bhat: torch.Tensor, s2: torch.Tensor, sd2: torch.Tensor):
    """Per-component log Bayes factors and shrinkage factors of normal components.

    ``bhat, s2`` of shape (..., 1) and the component variances ``sd2`` (..., K)
    broadcast to the two (..., K) results.
    """
    t = sd2 / s2
    shrink = t / (1.0 + t)
    lbfk = 0.5 * ((bhat * bhat / s2) * shrink - torch.log1p(t))
    return lbfk, shrink


def _normal_mixture(bhat: torch.Tensor, s2: torch.Tensor, log_pi: torch.Tensor, sd2: torch.Tensor,
                    moments: bool = True):
    """log BF (and posterior mean, second moment) under ``sum_k pi_k N(0, sd2_k)`` per coefficient.

    ``bhat`` is (p, t), ``s2`` is (p, t) or (1, t) (one standard error per column, the
    usual case with standardised X, where the component factors are only (t, K));
    ``log_pi, sd2`` are (t, K). The work is one pass of exponentials over a (t, p, K)
    array and, for the moments, one batched matrix product.
    """
    z2 = (bhat * bhat / s2).T  # (t, p)
    uniform = s2.shape[0] == 1
    if uniform:
        t = sd2 / s2.T
        shrink = t / (1.0 + t)
        logw = torch.baddbmm((log_pi - 0.5 * torch.log1p(t)).unsqueeze(1), z2.unsqueeze(-1),
                             (0.5 * shrink).unsqueeze(1))
    else:
        t = sd2.unsqueeze(1) / s2.T.unsqueeze(-1)
        shrink = t / (1.0 + t)
        logw = 0.5 * z2.unsqueeze(-1) * shrink + (log_pi.unsqueeze(1) - 0.5 * torch.log1p(t))
    top = logw.amax(dim=-1, keepdim=True)
    e = logw.sub_(top).exp_()
    top = top.squeeze(-1)
    if not moments:
        return (top + torch.log(e.sum(dim=-1))).T
    if uniform:
        total, first, second = torch.bmm(e, torch.stack([torch.ones_like(shrink), shrink, shrink * shrink],
                                                        dim=-1)).unbind(-1)
    else:
        total, first, second = e.sum(-1), (e * shrink).sum(-1), (e * shrink * shrink).sum(-1)
    lbf = top + torch.log(total)
    bT, vT = bhat.T, s2.T
    mean = bT * (first / total)
    mean2 = vT * (first / total) + bT * bT * (second / total)
    return lbf.T, mean.T, mean2.T


def _log(t: torch.Tensor) -> torch.Tensor:
    return torch.log(torch.clamp(t, min=0.0))


class CoefficientPrior:
    """The coefficient priors of a fit: groups, grid and the per-effect update.

    Parameters
    ----------
    settings : PriorSettings
        Family and update options.
    group : torch.LongTensor
        (T,) prior group of each coefficient column.
    grid : torch.Tensor
        (G, K) component scales of each group (mixture: the fixed grid, padded
        with its last value; point priors: ``[0, slab scale]``, the start).
    mask : torch.Tensor
        (G, K) real components of each group.

    Examples
    --------
    >>> prior = CoefficientPrior(PriorSettings(), torch.tensor([0, 0]),
    ...                          torch.tensor([[0.0, 1.0]], dtype=torch.float64), torch.tensor([[True, True]]))
    >>> pi, scale = prior.initial(2)
    >>> pi.shape, pi[0, 0].tolist()
    (torch.Size([2, 1, 2]), [0.5, 0.5])
    """

    def __init__(self, settings: PriorSettings, group: torch.Tensor, grid: torch.Tensor,
                 mask: torch.Tensor):
        if settings.family not in PRIOR_FAMILIES:
            raise InputError(f"prior must be one of {PRIOR_FAMILIES}, got {settings.family!r}")
        self.settings, self.group, self.grid, self.mask = settings, group, grid, mask
        self.G, self.K = grid.shape
        self.group_cols = [torch.nonzero(group == g).flatten() for g in range(self.G)]
        sizes = torch.tensor([c.numel() for c in self.group_cols], dtype=grid.dtype, device=grid.device)
        self.group_sizes = sizes
        self.col_weight = sizes / sizes.sum()  # share of the columns in each group
        self._buckets = {}
        for g, cols in enumerate(self.group_cols):
            self._buckets.setdefault(cols.numel(), []).append(g)
        self.has_null = settings.null_component and bool((grid[:, 0] == 0).all())

    # ---- construction ---------------------------------------------------------------
    @classmethod
    def build(cls, settings: PriorSettings, data, group: torch.Tensor, group_outcome: torch.Tensor,
              variance_grid=None) -> "CoefficientPrior":
        """The prior of a data set: a grid from the marginal regressions or ``variance_grid``.

        Parameters
        ----------
        settings : PriorSettings
            Family and options.
        data : FunctionalData
            The data (marginal estimates ``X^T D / d`` give the default grid).
        group, group_outcome : torch.LongTensor
            (T,) group of each column and (G,) outcome of each group.
        variance_grid : sequence of float, optional
            Component variances (mixture), or one slab variance (point priors), on the
            scale of the scaled outcomes.

        Returns
        -------
        CoefficientPrior

        Examples
        --------
        >>> from torchgenetics.susie.functional.data import FunctionalData
        >>> g = torch.Generator().manual_seed(0)
        >>> X = torch.randn(30, 4, generator=g, dtype=torch.float64)
        >>> data = FunctionalData(X, [torch.randn(30, 4, generator=g, dtype=torch.float64)], [None], ["y"])
        >>> prior = CoefficientPrior.build(PriorSettings(), data, torch.zeros(4, dtype=torch.long),
        ...                                torch.zeros(1, dtype=torch.long))
        >>> float(prior.grid[0, 0])
        0.0
        """
        dtype, device = data.D.dtype, data.D.device
        G = group_outcome.numel()
        point = settings.family != "mixture_normal"
        if variance_grid is not None:
            v = torch.as_tensor(variance_grid, dtype=dtype, device=device).reshape(-1)
            if v.numel() == 0 or not bool(torch.isfinite(v).all()) or bool((v <= 0).any()):
                raise InputError("prior_variance_grid must hold positive, finite variances")
            if point and v.numel() != 1:
                raise InputError(f"a {settings.family} prior takes one slab variance in "
                                 f"prior_variance_grid, got {v.numel()}")
        if point:
            slab = (torch.sqrt(v).expand(G) if variance_grid is not None
                    else cls._slab_start(data, group, G))
            if settings.family == "point_laplace":
                slab = slab / math.sqrt(2.0)  # Laplace variance is 2 scale^2
            grid = torch.stack([torch.zeros_like(slab), slab], dim=1)
            return cls(settings, group, grid, torch.ones_like(grid, dtype=torch.bool))
        if variance_grid is not None:
            sd = torch.sqrt(torch.sort(v).values)
            if settings.null_component:
                sd = torch.cat([sd.new_zeros(1), sd])
            grids = [sd] * data.M
        else:
            grids = [cls._ash_grid(data, m, settings.null_component) for m in range(data.M)]
        grid, mask = pad_grids(grids)
        return cls(settings, group, grid[group_outcome], mask[group_outcome])

    @staticmethod
    def _marginal(data, cols):
        """Marginal estimates (bhat, shat^2) of the informative variables on columns ``cols``."""
        d = data.d
        ok = d > 0
        bhat = data.xtr(data.D[:, cols])[ok] / d[ok, None]
        s2 = data.col_var[cols][None, :] / d[ok, None]
        return bhat, s2

    @classmethod
    def _ash_grid(cls, data, m: int, null_component: bool) -> torch.Tensor:
        bhat, s2 = cls._marginal(data, data.coef_slice(m))
        s = torch.sqrt(torch.clamp(s2, min=torch.finfo(s2.dtype).tiny)).expand_as(bhat)
        grid, _ = ashr_scale_grid(bhat.reshape(1, -1), s.reshape(1, -1))
        grid = grid[0]
        return grid if null_component else grid[1:]

    @classmethod
    def _slab_start(cls, data, group: torch.Tensor, G: int) -> torch.Tensor:
        """Slab sd start of each group: sqrt(max(mean(bhat^2 - shat^2), mean(shat^2)))."""
        out = []
        for g in range(G):
            bhat, s2 = cls._marginal(data, torch.nonzero(group == g).flatten())
            s2 = s2.expand_as(bhat)
            spread = float(torch.clamp((bhat * bhat - s2).mean(), min=0.0))
            out.append(math.sqrt(max(spread, float(s2.mean()))))
        return torch.tensor(out, dtype=data.D.dtype, device=data.D.device)

    def initial(self, L: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Starting weights and scales of L effects, each (L, G, K).

        The null component (if any) gets ``null_prior_init``, the others share the rest.
        """
        mask = self.mask.to(self.grid.dtype)
        if self.settings.family != "mixture_normal" and not self.has_null:
            pi = torch.zeros_like(mask)
            pi[:, 1] = 1.0  # a plain slab (no point mass)
        elif self.has_null and self.K > 1:
            rest = mask.clone()
            rest[:, 0] = 0.0
            pi = rest * (1.0 - self.settings.null_prior_init) / rest.sum(-1, keepdim=True).clamp(min=1.0)
            pi[:, 0] = self.settings.null_prior_init
        else:
            pi = mask / mask.sum(-1, keepdim=True)
        return (pi.unsqueeze(0).expand(L, -1, -1).clone(),
                self.grid.unsqueeze(0).expand(L, -1, -1).clone())

    # ---- summaries --------------------------------------------------------------------
    def group_variance(self, pi: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """Prior variance of a coefficient in each group, (..., G)."""
        if self.settings.family == "point_laplace":
            return (pi[..., 1] * 2.0 * scale[..., 1] ** 2)
        return (pi * scale * scale).sum(-1)

    def variance(self, pi: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """Prior variance of a coefficient averaged over all columns (..., ): susie's V.

        Examples
        --------
        >>> prior = CoefficientPrior(PriorSettings(), torch.tensor([0]),
        ...                          torch.tensor([[0.0, 2.0]], dtype=torch.float64), torch.tensor([[True, True]]))
        >>> float(prior.variance(*[t[0] for t in prior.initial(1)]))
        2.0
        """
        return (self.group_variance(pi, scale) * self.col_weight.to(pi)).sum(-1)

    def null(self, pi: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The null prior (all weight on the point mass) with the same scales."""
        out = torch.zeros_like(pi)
        out[..., 0] = 1.0
        return out, scale.clone()

    # ---- single-effect posterior --------------------------------------------------------
    def posterior(self, bhat: torch.Tensor, s2: torch.Tensor, pi: torch.Tensor, scale: torch.Tensor):
        """Per-coefficient log Bayes factors and posterior moments of one effect.

        Parameters
        ----------
        bhat : torch.Tensor
            (p, T) estimates.
        s2 : torch.Tensor
            (p, T) their squared standard errors (finite, > 0), or (1, T) when they
            do not depend on the variable.
        pi, scale : torch.Tensor
            (G, K) the effect's prior.

        Returns
        -------
        (torch.Tensor, torch.Tensor, torch.Tensor)
            (p, T) log Bayes factors, posterior means and second moments.
        """
        pi_c, scale_c = pi[self.group], scale[self.group]  # (T, K)
        if self.settings.family == "point_laplace":
            x, s = bhat.T, torch.sqrt(s2.expand_as(bhat)).T
            post = self._laplace(pi_c, scale_c).posterior(x, s)
            lbf = post.log_marginal - log_normal_pdf(x, s * s)
            return lbf.T, post.mean.T, post.mean2.T
        log_pi, sd2 = _log(pi_c), scale_c * scale_c
        parts = [_normal_mixture(bhat[:, cols], s2[:, cols], log_pi[cols], sd2[cols])
                 for cols in self._column_blocks(bhat.shape[0], bhat.shape[1])]
        if len(parts) == 1:
            return parts[0]
        return tuple(torch.cat([part[i] for part in parts], dim=1) for i in range(3))

    def log_bf(self, bhat: torch.Tensor, s2: torch.Tensor, pi: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """(p, T) per-coefficient log Bayes factors of one effect (no moments).

        Examples
        --------
        >>> prior = CoefficientPrior(PriorSettings(), torch.tensor([0]),
        ...                          torch.tensor([[0.0, 1.0]], dtype=torch.float64), torch.tensor([[True, True]]))
        >>> pi, scale = (t[0] for t in prior.initial(1))
        >>> b, v = torch.tensor([[3.0]], dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64)
        >>> bool(torch.allclose(prior.log_bf(b, v, pi, scale), prior.posterior(b, v, pi, scale)[0]))
        True
        """
        pi_c, scale_c = pi[self.group], scale[self.group]
        if self.settings.family == "point_laplace":
            x, s = bhat.T, torch.sqrt(s2.expand_as(bhat)).T
            return (self._laplace(pi_c, scale_c).log_marginal(x, s) - log_normal_pdf(x, s * s)).T
        log_pi, sd2 = _log(pi_c), scale_c * scale_c
        parts = [_normal_mixture(bhat[:, cols], s2[:, cols], log_pi[cols], sd2[cols], moments=False)
                 for cols in self._column_blocks(bhat.shape[0], bhat.shape[1])]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def _column_blocks(self, p: int, T: int) -> list:
        """Column slices whose (p, columns, K) kernel fits in one block."""
        step = max(1, _BLOCK // max(1, p * self.K))
        return [slice(a, min(a + step, T)) for a in range(0, T, step)]

    @staticmethod
    def _laplace(pi_c: torch.Tensor, scale_c: torch.Tensor) -> PointLaplacePrior:
        return PointLaplacePrior(pi0=pi_c[:, 0], scale=scale_c[:, 1], mode=torch.zeros_like(pi_c[:, 0]))

    def is_null(self, pi: torch.Tensor) -> bool:
        """Whether a (G, K) prior puts all its weight on the point mass."""
        return self.has_null and bool((pi[:, 0] >= 1.0).all())

    def log_penalty(self, pi: torch.Tensor) -> torch.Tensor:
        """The null penalty ``null_penalty * sum_g |g| log pi_g0`` of a (G, K) prior (0 without a null)."""
        if not self.has_null or self.settings.null_penalty == 0:
            return pi.new_zeros(())
        return (self._penalty(self.group_sizes.to(pi)) * torch.log(pi[:, 0])).sum()

    # ---- empirical-Bayes update -------------------------------------------------------------
    def update(self, bhat: torch.Tensor, s2: torch.Tensor, alpha: torch.Tensor, pi: torch.Tensor,
               scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One effect's prior fitted to its alpha-weighted coefficient estimates.

        Parameters
        ----------
        bhat, s2 : torch.Tensor
            (p, T) estimates and squared standard errors (s2 may be (1, T)); uninformative
            variables are excluded by the caller through ``alpha = 0``.
        alpha : torch.Tensor
            (p,) the effect's current inclusion probabilities (the weights).
        pi, scale : torch.Tensor
            (G, K) current prior (the start).

        Returns
        -------
        (torch.Tensor, torch.Tensor)
            The new (G, K) weights and scales.
        """
        keep = alpha > _ALPHA_EPS
        if not bool(keep.any()):
            keep = alpha == alpha.max()
        bhat, s2, w = bhat[keep], s2.expand(alpha.shape[0], -1)[keep], alpha[keep]
        pi, scale = pi.clone(), scale.clone()
        # Groups of equal size are solved as one batch (padding them to one size costs more).
        for size, groups in self._buckets.items():
            cols = torch.stack([self.group_cols[g] for g in groups])  # (B, size)
            x = bhat[:, cols].permute(1, 0, 2).reshape(len(groups), -1)  # (B, n): variable-major
            v = s2[:, cols].permute(1, 0, 2).reshape(len(groups), -1)
            weights = w.repeat_interleave(size).expand(len(groups), -1)
            idx = torch.tensor(groups, device=pi.device)
            penalty = self._penalty(self.group_sizes[idx])
            if self.settings.family == "mixture_normal":
                pi[idx] = self._mixsqp(x, v, weights, idx, pi[idx], penalty)
            else:
                pi[idx], scale[idx] = self._newton(x, v, weights, pi[idx], scale[idx], penalty)
        return pi, scale

    def _penalty(self, sizes: torch.Tensor) -> torch.Tensor:
        """Null pseudo-observations of groups with ``sizes`` coefficients."""
        return self.settings.null_penalty * sizes if self.has_null else torch.zeros_like(sizes)

    def _mixsqp(self, x, v, weights, idx, pi0, penalty: torch.Tensor) -> torch.Tensor:
        """Mixture weights of B groups by mix-SQP on the rows (variable, coefficient)."""
        sd2 = (self.grid[idx] ** 2).unsqueeze(1)  # (B, 1, K)
        logL, _ = _normal_lbfk(x.unsqueeze(-1), v.unsqueeze(-1), sd2)  # (B, n, K)
        mask = self.mask[idx]
        if bool((penalty > 0).any()):
            row = torch.full_like(logL[:, :1], -math.inf)
            row[..., 0] = 0.0
            logL = torch.cat([row, logL], dim=1)
            weights = torch.cat([penalty.to(weights)[:, None], weights], dim=1)
        return mixsqp(logL, x0=pi0, weights=weights, mask=mask, log=True).x

    def _newton(self, x, v, weights, pi0, scale0, penalty: torch.Tensor):
        """(pi0, slab scale) of B groups by Newton's method on the weighted marginal likelihood."""
        s = torch.sqrt(v)
        laplace = self.settings.family == "point_laplace"
        cls = PointLaplacePrior if laplace else PointNormalPrior
        fit_weight = self.has_null
        penalty = penalty.to(x)
        penalised = bool((penalty > 0).any())
        zero = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)

        def make(w_slab, sc):
            return cls(1.0 - w_slab, sc, zero)

        def value(prior, w_slab):
            out = (weights * prior.log_marginal(x, s)).sum(-1)
            if penalised:
                out = out + penalty * torch.log(torch.clamp(1.0 - w_slab, min=0.0))
            return out

        slab0 = torch.where(pi0[:, 1] > 0, pi0[:, 1], torch.full_like(pi0[:, 1], 0.5))
        sc0 = torch.where(scale0[:, 1] > 0, scale0[:, 1], torch.sqrt(v.mean(-1)))
        log_lo = torch.log(1e-6 * s.amin(-1))
        log_hi = torch.log(1e3 * (x.abs().amax(-1) + s.amax(-1)))
        cols, lo, hi = [torch.log(sc0)], [torch.minimum(log_lo, torch.log(sc0))], [torch.maximum(log_hi, torch.log(sc0))]
        if fit_weight:
            top = 1.0 - 1e-10 if penalised else 1.0
            cols.insert(0, torch.clamp(slab0, max=top))
            lo.insert(0, torch.zeros_like(slab0))
            hi.insert(0, torch.full_like(slab0, top))

        def build(theta):
            w_slab = theta[:, 0] if fit_weight else torch.ones_like(theta[:, 0])
            return make(w_slab, torch.exp(theta[:, -1])), w_slab

        theta, fitted, _ = newton_maximize(lambda th: value(*build(th)), torch.stack(cols, -1),
                                           torch.stack(lo, -1), torch.stack(hi, -1), max_iter=_NEWTON_ITER,
                                           rtol=_NEWTON_RTOL)
        prior, w_slab = build(theta)
        sc = torch.exp(theta[:, -1])
        start_w = pi0[:, 1] if fit_weight else torch.ones_like(zero)
        start_value = value(make(start_w, scale0[:, 1]), start_w)
        use_start = start_value > fitted
        w_slab = torch.where(use_start, start_w, w_slab)
        sc = torch.where(use_start, scale0[:, 1], sc)
        if fit_weight:
            null_value = value(make(torch.zeros_like(zero), sc), torch.zeros_like(zero))
            null = null_value >= torch.maximum(fitted, start_value)
            w_slab = torch.where(null, torch.zeros_like(w_slab), w_slab)
        pi = torch.stack([1.0 - w_slab, w_slab], dim=-1)
        return pi, torch.stack([torch.zeros_like(sc), sc], dim=-1)
