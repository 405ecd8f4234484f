"""EBNM prior families: how each fits its prior ``g`` by maximum marginal likelihood.

Parametric families (``point_normal``, ``point_laplace``, ``point_exponential``,
``normal``) maximise the log marginal likelihood over their two or three
parameters with a batched Newton method; grid families
(``normal_scale_mixture``, ``unimodal_symmetric``) fix ebnm's default grid and
solve for the mixture weights with :func:`~torchgenetics.ebnm.mixsqp.mixsqp`.
Every family fits ``B`` problems at once from ``x, s`` of shape ``(B, n)``, and
a warm start ``g_init`` never ends at a lower likelihood than it started from.

Examples
--------
>>> import torch
>>> fam = get_family("normal")
>>> g = fam.fit(torch.tensor([[2.0, -2.0]], dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64))
>>> round(float(g.sd), 4)
1.7321
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from ..errors import InputError
from .grids import ashr_scale_grid, smn_scale_grid
from .mixsqp import mixsqp
from .optimize import newton_maximize
from .priors import (
    NormalMixturePrior,
    NormalPrior,
    PointExponentialPrior,
    PointLaplacePrior,
    PointNormalPrior,
    Prior,
    UniformMixturePrior,
)

__all__ = [
    "Family",
    "PointNormal",
    "PointLaplace",
    "PointExponential",
    "Normal",
    "NormalScaleMixture",
    "UnimodalSymmetric",
    "FAMILIES",
    "get_family",
]

def _check_mode(mode):
    if isinstance(mode, str):
        if mode != "estimate":
            raise InputError(f"mode must be a number or 'estimate', got {mode!r}")
        return mode
    try:
        return float(mode)
    except (TypeError, ValueError):
        raise InputError(f"mode must be a number or 'estimate', got {mode!r}") from None


class Family:
    """A family of priors and the way its member is fitted.

    Parameters
    ----------
    mode : float or "estimate"
        Location of the prior's mode; fixed (0 by default) or estimated.

    Examples
    --------
    >>> PointNormal(mode="estimate").spec()
    {'family': 'point_normal', 'mode': 'estimate'}
    """

    name: ClassVar[str] = ""
    prior_class: ClassVar[type[Prior]] = Prior
    #: +1 when the prior's support is ``mode + [0, inf)`` (sign constraint for flash's init).
    sign: ClassVar[int] = 0
    #: True for families on a fixed grid (a warm start then keeps the grid).
    grid: ClassVar[bool] = False

    def __init__(self, mode: float | str = 0.0):
        self.mode = _check_mode(mode)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mode={self.mode!r})"

    def spec(self) -> dict:
        """Settings that rebuild this family with :func:`get_family`.

        Examples
        --------
        >>> get_family(Normal(mode=1.0).spec()).mode
        1.0
        """
        return {"family": self.name, "mode": self.mode}

    def fit(self, x: torch.Tensor, s: torch.Tensor, g_init: Prior | None = None) -> Prior:
        """Fit ``B`` priors by maximum marginal likelihood from ``x, s`` of shape ``(B, n)``.

        Examples
        --------
        >>> g = PointNormal().fit(torch.zeros(1, 3, dtype=torch.float64), torch.ones(1, 3, dtype=torch.float64))
        >>> float(g.pi0)
        1.0
        """
        raise TypeError(f"{type(self).__name__} is abstract")

    def _mode_start(self, x, s, g_init):
        if self.mode != "estimate":
            return torch.full(x.shape[:1], float(self.mode), dtype=x.dtype, device=x.device)
        if g_init is not None:
            return g_init.mode.to(x)
        return x.median(dim=-1).values


class _Parametric(Family):
    """Families with a point mass and a one-parameter slab (or a plain normal)."""

    has_point: ClassVar[bool] = True

    def _slab_scale_start(self, z, s):
        spread = torch.clamp((z * z).mean(-1) - (s * s).mean(-1), min=0.0)
        return torch.sqrt(torch.maximum(spread, (s * s).mean(-1)))

    def _make(self, w, scale, mode) -> Prior:
        raise TypeError(f"{type(self).__name__} is abstract")

    def _unpack(self, g: Prior):
        """(slab weight, slab scale) of a prior of this family."""
        raise TypeError(f"{type(self).__name__} is abstract")

    def _null(self, mode) -> Prior:
        zero = torch.zeros_like(mode)
        return self._make(zero, torch.ones_like(mode), mode)

    def fit(self, x, s, g_init=None):
        B = x.shape[0]
        s = s.expand_as(x)
        mode0 = self._mode_start(x, s, g_init)
        estimate_mode = self.mode == "estimate"
        if g_init is not None:
            w0, scale0 = self._unpack(g_init)
            w0, scale0 = w0.to(x), scale0.to(x)
            # From the point mass alone (w = 0) the slab scale is unidentified: start afresh.
            w0 = torch.where(w0 > 0, w0, torch.full_like(w0, 0.5))
            scale0 = torch.where(scale0 > 0, scale0, self._slab_scale_start(x - mode0.unsqueeze(-1), s))
        else:
            w0 = torch.full((B,), 0.5, dtype=x.dtype, device=x.device)
            scale0 = self._slab_scale_start(x - mode0.unsqueeze(-1), s)
        s_min = s.amin(-1)
        x_span = torch.maximum((x - mode0.unsqueeze(-1)).abs().amax(-1), s.amax(-1))
        cols, lower, upper = [], [], []
        if self.has_point:
            # The slab weight itself (not its logit), so that a boundary start can move inwards.
            cols.append(w0)
            lower.append(torch.zeros_like(w0))
            upper.append(torch.ones_like(w0))
        cols.append(torch.log(scale0))
        lower.append(torch.log(1e-6 * s_min))
        upper.append(torch.log(1e3 * x_span + 1e3 * s.amax(-1)))
        if estimate_mode:
            cols.append(mode0)
            lower.append(x.amin(-1))
            upper.append(x.amax(-1))
        theta0 = torch.stack(cols, dim=-1)
        lo, hi = torch.stack(lower, -1), torch.stack(upper, -1)
        # Keep a warm start inside the box so that the optimiser starts exactly there.
        lo, hi = torch.minimum(lo, theta0), torch.maximum(hi, theta0)

        def build(theta):
            j = 0
            if self.has_point:
                w = theta[:, 0]
                j = 1
            else:
                w = torch.ones_like(theta[:, 0])
            scale = torch.exp(theta[:, j])
            mode = theta[:, j + 1] if estimate_mode else mode0
            return self._make(w, scale, mode)

        def objective(theta):
            return build(theta).log_marginal(x, s).sum(-1)

        theta, value, _ = newton_maximize(objective, theta0, lo, hi)
        fitted = build(theta.detach())
        # Boundary solution: the point mass alone (pi0 = 1, or sd = 0 for the normal family).
        null = self._null(fitted.mode)
        null_value = null.log_marginal(x, s).sum(-1)
        if g_init is not None:
            start_value = g_init.to(dtype=x.dtype, device=x.device).log_marginal(x, s).sum(-1)
        else:
            start_value = torch.full_like(value, -math.inf)
        use_null = null_value >= value
        use_start = start_value > torch.maximum(value, null_value)
        return _select(fitted, null, use_null, g_init if g_init is not None else None, use_start)


def _select(fitted: Prior, null: Prior, use_null: torch.Tensor, start: Prior | None, use_start: torch.Tensor) -> Prior:
    out = {}
    for name, value in fitted._tensors().items():
        v = torch.where(use_null.view(-1, *([1] * (value.ndim - 1))), getattr(null, name), value)
        if start is not None:
            sv = getattr(start, name).to(v)
            v = torch.where(use_start.view(-1, *([1] * (value.ndim - 1))), sv, v)
        out[name] = v
    return type(fitted)(**out)


class PointNormal(_Parametric):
    """Point-normal prior ``pi0 delta_mode + (1 - pi0) N(mode, sd^2)`` (ebnm's ``point_normal``).

    Examples
    --------
    >>> g = PointNormal().fit(torch.tensor([[0.1, 5.0, -0.2, 0.0]], dtype=torch.float64),
    ...                       torch.ones(1, 4, dtype=torch.float64))
    >>> 0 < float(g.pi0) < 1
    True
    """

    name = "point_normal"
    prior_class = PointNormalPrior

    def _make(self, w, scale, mode):
        return PointNormalPrior(1.0 - w, scale, mode)

    def _unpack(self, g):
        return 1.0 - g.pi0, g.sd


class Normal(_Parametric):
    """Normal prior ``N(mode, sd^2)`` (ebnm's ``normal``).

    Examples
    --------
    >>> g = Normal().fit(torch.tensor([[3.0, -3.0]], dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64))
    >>> round(float(g.sd) ** 2, 6)
    8.0
    """

    name = "normal"
    prior_class = NormalPrior
    has_point = False

    def _make(self, w, scale, mode):
        return NormalPrior(scale, mode)

    def _unpack(self, g):
        return torch.ones_like(g.sd), g.sd

    def _null(self, mode):
        return NormalPrior(torch.zeros_like(mode), mode)


class PointLaplace(_Parametric):
    """Point-Laplace prior ``pi0 delta_mode + (1 - pi0) Laplace(mode, scale)`` (ebnm's ``point_laplace``).

    Examples
    --------
    >>> g = PointLaplace().fit(torch.tensor([[0.1, 5.0, -3.0, 0.0]], dtype=torch.float64),
    ...                        torch.ones(1, 4, dtype=torch.float64))
    >>> float(g.scale) > 0
    True
    """

    name = "point_laplace"
    prior_class = PointLaplacePrior

    def _slab_scale_start(self, z, s):
        return super()._slab_scale_start(z, s) / math.sqrt(2.0)

    def _make(self, w, scale, mode):
        return PointLaplacePrior(1.0 - w, scale, mode)

    def _unpack(self, g):
        return 1.0 - g.pi0, g.scale


class PointExponential(_Parametric):
    """Point-exponential prior ``pi0 delta_mode + (1 - pi0) (mode + Exp(scale))`` (ebnm's ``point_exponential``).

    Examples
    --------
    >>> g = PointExponential().fit(torch.tensor([[0.1, 5.0, 3.0, 0.0]], dtype=torch.float64),
    ...                            torch.ones(1, 4, dtype=torch.float64))
    >>> float(g.scale) > 0
    True
    """

    name = "point_exponential"
    prior_class = PointExponentialPrior
    sign = 1

    def _make(self, w, scale, mode):
        return PointExponentialPrior(1.0 - w, scale, mode)

    def _unpack(self, g):
        return 1.0 - g.pi0, g.scale


class _GridFamily(Family):
    """Mixtures on a fixed grid: weights by mix-SQP, mode by golden-section search."""

    grid = True

    def __init__(self, mode: float | str = 0.0, scale=None):
        super().__init__(mode)
        self.scale = None if scale is None or isinstance(scale, str) else torch.as_tensor(scale, dtype=torch.float64)
        if isinstance(scale, str) and scale != "estimate":
            raise InputError(f"scale must be a grid of values or 'estimate', got {scale!r}")

    def spec(self) -> dict:
        out = super().spec()
        if self.scale is not None:
            out["scale"] = self.scale.tolist()
        return out

    def _default_grid(self, x, s, mode):
        raise TypeError(f"{type(self).__name__} is abstract")

    def _prior(self, pi, grid, mode) -> Prior:
        raise TypeError(f"{type(self).__name__} is abstract")

    def _grid_of(self, g: Prior) -> torch.Tensor:
        raise TypeError(f"{type(self).__name__} is abstract")

    def _grid(self, x, s, mode, g_init):
        if g_init is not None:
            grid = self._grid_of(g_init).to(x)
            mask = torch.ones_like(grid, dtype=torch.bool)
            mask[:, 1:] = grid[:, 1:] != grid[:, :-1]
            return grid, mask
        if self.scale is not None:
            grid = self.scale.to(x).expand(x.shape[0], -1)
            return grid, torch.ones_like(grid, dtype=torch.bool)
        return self._default_grid(x, s, mode)

    def _solve(self, x, s, mode, g_init):
        grid, mask = self._grid(x, s, mode, g_init)
        ones = torch.ones_like(grid)
        comp_ll = self._prior(ones, grid, mode)._components(x - mode.unsqueeze(-1), s, moments=False).log_lik
        row_max = comp_ll.amax(-1)
        x0 = g_init.pi.to(x) if g_init is not None else None
        res = mixsqp(comp_ll, x0=x0, mask=mask, log=True)
        pi = res.x * mask
        loglik = torch.log(torch.clamp(torch.exp(comp_ll - row_max.unsqueeze(-1)) @ pi.unsqueeze(-1), min=1e-300))
        return self._prior(pi, grid, mode), loglik.squeeze(-1).sum(-1) + row_max.sum(-1)

    def fit(self, x, s, g_init=None):
        s = s.expand_as(x)
        if self.mode != "estimate":
            prior, _ = self._solve(x, s, self._mode_start(x, s, g_init), g_init)
            return prior
        # Golden-section search of the profile likelihood over the mode.
        lo, hi = x.amin(-1).clone(), x.amax(-1).clone()
        golden = (math.sqrt(5.0) - 1.0) / 2.0
        for _ in range(40):
            a = hi - golden * (hi - lo)
            b = lo + golden * (hi - lo)
            _, fa = self._solve(x, s, a, None)
            _, fb = self._solve(x, s, b, None)
            left = fa >= fb
            hi = torch.where(left, b, hi)
            lo = torch.where(left, lo, a)
            if bool(((hi - lo) <= 1e-8 * (1.0 + hi.abs())).all()):
                break
        prior, value = self._solve(x, s, 0.5 * (lo + hi), None)
        if g_init is not None:
            start = g_init.to(dtype=x.dtype, device=x.device)
            keep = start.log_marginal(x, s).sum(-1) > value
            if bool(keep.any()) and start.pi.shape == prior.pi.shape:
                prior = _select(prior, prior, torch.zeros_like(keep), start, keep)
        return prior


class NormalScaleMixture(_GridFamily):
    """Scale mixture of normals on ebnm's default grid (ebnm's ``normal_scale_mixture``).

    Parameters
    ----------
    mode : float or "estimate"
        Prior mode.
    scale : sequence of float or "estimate", optional
        Grid of standard deviations (include 0 for a point mass); ebnm's
        default grid (:func:`~torchgenetics.ebnm.grids.smn_scale_grid`) otherwise.

    Examples
    --------
    >>> g = NormalScaleMixture().fit(torch.tensor([[0.0, 0.3, 4.0, -5.0]], dtype=torch.float64),
    ...                              torch.ones(1, 4, dtype=torch.float64))
    >>> round(float(g.pi.sum()), 6)
    1.0
    """

    name = "normal_scale_mixture"
    prior_class = NormalMixturePrior

    def _default_grid(self, x, s, mode):
        return smn_scale_grid(x, s, mode)

    def _prior(self, pi, grid, mode):
        return NormalMixturePrior(pi, grid, mode)

    def _grid_of(self, g):
        return g.sd


class UnimodalSymmetric(_GridFamily):
    """Symmetric unimodal prior: mixture of uniforms ``U[mode - a_k, mode + a_k]`` and a point mass.

    The default grid of half-widths is ashr's (ebnm's ``get_ashr_grid``).

    Examples
    --------
    >>> g = UnimodalSymmetric().fit(torch.tensor([[0.0, 0.3, 4.0, -5.0]], dtype=torch.float64),
    ...                             torch.ones(1, 4, dtype=torch.float64))
    >>> float(g.half_width[0, 0])
    0.0
    """

    name = "unimodal_symmetric"
    prior_class = UniformMixturePrior

    def _default_grid(self, x, s, mode):
        return ashr_scale_grid(x, s, mode)

    def _prior(self, pi, grid, mode):
        return UniformMixturePrior(pi, grid, mode)

    def _grid_of(self, g):
        return g.half_width


FAMILIES: dict[str, type[Family]] = {
    cls.name: cls for cls in (PointNormal, PointLaplace, PointExponential, Normal, NormalScaleMixture, UnimodalSymmetric)
}


def get_family(spec, **options) -> Family:
    """A :class:`Family` from a name, a settings dict (``Family.spec()``) or a family object.

    Parameters
    ----------
    spec : str, dict or Family
        ``"point_normal"``, ``"point_laplace"``, ``"point_exponential"``,
        ``"normal"``, ``"normal_scale_mixture"``, ``"unimodal_symmetric"``.
    **options
        Passed to the family (``mode=``, and ``scale=`` for grid families).

    Examples
    --------
    >>> get_family("point_laplace", mode="estimate")
    PointLaplace(mode='estimate')
    """
    if isinstance(spec, Family):
        return spec
    if isinstance(spec, dict):
        options = {**{k: v for k, v in spec.items() if k != "family"}, **options}
        spec = spec.get("family")
    if not isinstance(spec, str) or spec not in FAMILIES:
        raise InputError(f"unknown prior family {spec!r}; expected one of {', '.join(FAMILIES)}")
    cls = FAMILIES[spec]
    if not issubclass(cls, _GridFamily):
        options.pop("scale", None)
    return cls(**options)
