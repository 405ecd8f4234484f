"""Fitted priors ``g`` of the EBNM families, batched over a leading axis.

Each prior holds its parameters as tensors with a leading batch axis ``B`` (one
prior per normal-means problem) and can evaluate, for data ``x, s`` of shape
``(B, n)``, the log marginal density and the posterior (mean, second moment,
lfsr). Mixture priors carry ``(B, K)`` weights; problems with fewer components
are padded with zero-weight copies of their last component.

Examples
--------
>>> import torch
>>> g = PointNormalPrior(pi0=torch.tensor([0.5]), sd=torch.tensor([1.0]), mode=torch.zeros(1))
>>> post = g.posterior(torch.tensor([[3.0]]), torch.tensor([[1.0]]))
>>> round(float(post.mean), 3)
1.305
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import torch

from ..errors import InputError
from .normal_means import (
    Components,
    Posterior,
    combine_components,
    interval_truncated_moments,
    log_ndtr_diff,
    log_normal_pdf,
    positive_truncated_moments,
)

__all__ = [
    "Prior",
    "PointNormalPrior",
    "NormalPrior",
    "PointLaplacePrior",
    "PointExponentialPrior",
    "NormalMixturePrior",
    "UniformMixturePrior",
    "prior_from_dict",
    "concat_priors",
]

_REGISTRY: dict[str, type[Prior]] = {}


def _log(t: torch.Tensor) -> torch.Tensor:
    return torch.log(torch.clamp(t, min=0.0))


def _indicator(cond: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return cond.to(like.dtype).expand_as(like)


@dataclass
class Prior:
    """Base class: a batch of priors of one family.

    Subclasses define ``family`` and ``_components(z, s, moments)`` where
    ``z = x - mode``; everything else is shared.
    """

    family: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.family:
            _REGISTRY[cls.family] = cls

    # ---- batch handling ------------------------------------------------------
    @property
    def batch_size(self) -> int:
        """Number of priors in the batch.

        Examples
        --------
        >>> NormalPrior(torch.ones(3), torch.zeros(3)).batch_size
        3
        """
        return int(self.mode.shape[0])

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def select(self, index) -> Prior:
        """Sub-batch ``index`` (int, slice, index tensor or boolean mask), keeping the batch axis.

        Examples
        --------
        >>> NormalPrior(torch.ones(3), torch.zeros(3)).select(1).batch_size
        1
        """
        if isinstance(index, int):
            index = slice(index, index + 1)
        return type(self)(**{k: v[index] for k, v in self._tensors().items()})

    def to(self, device=None, dtype=None) -> Prior:
        """Copy on another device / dtype.

        Examples
        --------
        >>> NormalPrior(torch.ones(1), torch.zeros(1)).to(dtype=torch.float64).sd.dtype
        torch.float64
        """
        return type(self)(**{k: v.to(device=device, dtype=dtype) for k, v in self._tensors().items()})

    def to_dict(self) -> dict:
        """Plain dict (family name and parameter tensors) for HDF5 storage.

        Examples
        --------
        >>> sorted(NormalPrior(torch.ones(1), torch.zeros(1)).to_dict())
        ['family', 'mode', 'sd']
        """
        out = {"family": self.family}
        out.update({k: v.detach().cpu() for k, v in self._tensors().items()})
        return out

    def params(self, index: int = 0) -> dict:
        """Parameters of prior ``index`` as Python numbers / lists (for tables).

        Examples
        --------
        >>> NormalPrior(torch.ones(1), torch.zeros(1)).params()
        {'family': 'normal', 'sd': 1.0, 'mode': 0.0}
        """
        out = {"family": self.family}
        for k, v in self._tensors().items():
            item = v[index]
            out[k] = float(item) if item.ndim == 0 else [float(t) for t in item]
        return out

    # ---- posterior -----------------------------------------------------------
    def _prep(self, x: torch.Tensor, s: torch.Tensor):
        mode = self.mode.unsqueeze(-1)
        return x - mode, s, mode

    def log_marginal(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """Elementwise ``log p(x_i | g, s_i)`` for ``x, s`` of shape ``(B, n)``.

        Examples
        --------
        >>> g = NormalPrior(torch.ones(1), torch.zeros(1))
        >>> round(float(g.log_marginal(torch.zeros(1, 1), torch.ones(1, 1))), 4)
        -1.2655
        """
        z, s, _ = self._prep(x, s)
        comp = self._components(z, s, moments=False)
        top = comp.log_lik.amax(-1, keepdim=True).detach()
        top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
        return top.squeeze(-1) + torch.log((comp.pi * torch.exp(comp.log_lik - top)).sum(-1))

    def posterior(self, x: torch.Tensor, s: torch.Tensor) -> Posterior:
        """Posterior mean, second moment, lfsr and log marginal for ``x, s`` of shape ``(B, n)``.

        Examples
        --------
        >>> g = NormalPrior(torch.ones(1), torch.zeros(1))
        >>> float(g.posterior(torch.full((1, 1), 2.0), torch.ones(1, 1)).mean)
        1.0
        """
        z, s, mode = self._prep(x, s)
        comp = self._components(z, s, moments=True)
        return combine_components(comp, mode)

    def _components(self, z, s, moments: bool) -> Components:  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} does not define its components")


def _normal_components(z, s, pi, sd, mode, moments: bool) -> Components:
    """Components ``N(0, sd_c^2)`` (``sd_c = 0`` is a point mass) for z, s of shape (B, n)."""
    z3, s2 = z.unsqueeze(-1), (s * s).unsqueeze(-1)
    sd2 = (sd * sd).unsqueeze(-2)
    total = s2 + sd2
    pi = pi.unsqueeze(-2)
    log_lik = log_normal_pdf(z3, total)
    if not moments:
        return Components(None, pi=pi, log_lik=log_lik)
    log_w = _log(pi) + log_lik
    shrink = sd2 / total
    mean = shrink * z3
    var = shrink * s2
    cut = -mode.reshape(-1, 1, 1)
    sd_post = torch.sqrt(var)
    safe = torch.where(sd_post > 0, sd_post, torch.ones_like(sd_post))
    below = torch.where(sd_post > 0, torch.special.ndtr((cut - mean) / safe), _indicator(mean < cut, mean))
    at = torch.where(sd_post > 0, torch.zeros_like(mean), _indicator(mean == cut, mean))
    return Components(log_w, mean, var + mean * mean, below, at)


def _point_component(z, s, pi0, mode, moments: bool) -> Components:
    log_lik = log_normal_pdf(z, s * s).unsqueeze(-1)
    pi = pi0.reshape(-1, 1, 1)
    if not moments:
        return Components(None, pi=pi, log_lik=log_lik)
    log_w = _log(pi) + log_lik
    zero = torch.zeros_like(log_w)
    cut = -mode.reshape(-1, 1, 1).expand_as(log_w)
    return Components(log_w, zero, zero, _indicator(cut > 0, zero), _indicator(cut == 0, zero))


def _cat(*parts: Components) -> Components:
    def join(name):
        vals = [getattr(p, name) for p in parts]
        if vals[0] is None:
            return None
        shape = torch.broadcast_shapes(*(v.shape[:-1] for v in vals))
        return torch.cat([v.expand(*shape, v.shape[-1]) for v in vals], dim=-1)

    return Components(*(join(n) for n in ("log_weight", "mean", "mean2", "below", "at", "pi", "log_lik")))


def _positive_component(z, s, pi, rate, sign: float, mode, moments: bool) -> Components:
    """``sign * Exp(rate)`` component (a half-Laplace or exponential slab)."""
    rate = rate.unsqueeze(-1)
    zs = sign * z
    m = zs - rate * s * s
    log_lik = torch.log(rate) + 0.5 * (rate * s) ** 2 - rate * zs + torch.special.log_ndtr(m / s)
    pi3 = pi.reshape(-1, 1, 1)
    if not moments:
        return Components(None, pi=pi3, log_lik=log_lik.unsqueeze(-1))
    log_w = _log(pi).unsqueeze(-1) + log_lik
    e1, e2 = positive_truncated_moments(m, s)
    # eta = sign * eta' with eta' ~ N(m, s^2) truncated to (0, inf); below = P(eta < -mode)
    d = -sign * mode.unsqueeze(-1).expand_as(z)
    d_pos = torch.clamp(d, min=0.0)
    upper = torch.exp(torch.special.log_ndtr((m - d_pos) / s) - torch.special.log_ndtr(m / s))
    upper = torch.where(d > 0, torch.clamp(upper, 0.0, 1.0), torch.ones_like(upper))
    below = 1.0 - upper if sign > 0 else upper
    return Components(
        log_w.unsqueeze(-1),
        (sign * e1).unsqueeze(-1),
        e2.unsqueeze(-1),
        below.unsqueeze(-1),
        torch.zeros_like(e1).unsqueeze(-1),
    )


@dataclass
class PointNormalPrior(Prior):
    """``pi0 * delta_mode + (1 - pi0) * N(mode, sd^2)``.

    Examples
    --------
    >>> g = PointNormalPrior(torch.tensor([1.0]), torch.tensor([1.0]), torch.zeros(1))
    >>> float(g.posterior(torch.ones(1, 1), torch.ones(1, 1)).mean)
    0.0
    """

    pi0: torch.Tensor
    sd: torch.Tensor
    mode: torch.Tensor
    family: ClassVar[str] = "point_normal"

    def _components(self, z, s, moments):
        pi = torch.stack([self.pi0, 1.0 - self.pi0], dim=-1)
        sd = torch.stack([torch.zeros_like(self.sd), self.sd], dim=-1)
        return _normal_components(z, s, pi, sd, self.mode, moments)


@dataclass
class NormalPrior(Prior):
    """``N(mode, sd^2)`` (a point mass when ``sd = 0``).

    Examples
    --------
    >>> NormalPrior(torch.tensor([2.0]), torch.zeros(1)).sd
    tensor([2.])
    """

    sd: torch.Tensor
    mode: torch.Tensor
    family: ClassVar[str] = "normal"

    def _components(self, z, s, moments):
        return _normal_components(z, s, torch.ones_like(self.sd).unsqueeze(-1), self.sd.unsqueeze(-1), self.mode, moments)


@dataclass
class PointLaplacePrior(Prior):
    """``pi0 * delta_mode + (1 - pi0) * Laplace(mode, scale)`` (density ``exp(-|t|/scale) / (2 scale)``).

    Examples
    --------
    >>> g = PointLaplacePrior(torch.tensor([0.0]), torch.tensor([1.0]), torch.zeros(1))
    >>> float(g.posterior(torch.zeros(1, 1), torch.ones(1, 1)).mean)
    0.0
    """

    pi0: torch.Tensor
    scale: torch.Tensor
    mode: torch.Tensor
    family: ClassVar[str] = "point_laplace"

    def _components(self, z, s, moments):
        rate = 1.0 / self.scale
        half = 0.5 * (1.0 - self.pi0)
        return _cat(
            _point_component(z, s, self.pi0, self.mode, moments),
            _positive_component(z, s, half, rate, 1.0, self.mode, moments),
            _positive_component(z, s, half, rate, -1.0, self.mode, moments),
        )


@dataclass
class PointExponentialPrior(Prior):
    """``pi0 * delta_mode + (1 - pi0) * (mode + Exp(mean = scale))``: non-negative effects.

    Examples
    --------
    >>> g = PointExponentialPrior(torch.tensor([0.5]), torch.tensor([1.0]), torch.zeros(1))
    >>> bool(g.posterior(-torch.ones(1, 1), torch.ones(1, 1)).mean >= 0)
    True
    """

    pi0: torch.Tensor
    scale: torch.Tensor
    mode: torch.Tensor
    family: ClassVar[str] = "point_exponential"

    def _components(self, z, s, moments):
        return _cat(
            _point_component(z, s, self.pi0, self.mode, moments),
            _positive_component(z, s, 1.0 - self.pi0, 1.0 / self.scale, 1.0, self.mode, moments),
        )


@dataclass
class NormalMixturePrior(Prior):
    """Scale mixture ``sum_k pi_k N(mode, sd_k^2)`` (``sd_k = 0``: point mass at the mode).

    Examples
    --------
    >>> g = NormalMixturePrior(torch.tensor([[0.5, 0.5]]), torch.tensor([[0.0, 1.0]]), torch.zeros(1))
    >>> round(float(g.posterior(torch.full((1, 1), 3.0), torch.ones(1, 1)).mean), 3)
    1.305
    """

    pi: torch.Tensor
    sd: torch.Tensor
    mode: torch.Tensor
    family: ClassVar[str] = "normal_scale_mixture"

    def _components(self, z, s, moments):
        return _normal_components(z, s, self.pi, self.sd, self.mode, moments)


@dataclass
class UniformMixturePrior(Prior):
    """Symmetric unimodal ``sum_k pi_k U[mode - a_k, mode + a_k]`` (``a_k = 0``: point mass).

    Examples
    --------
    >>> g = UniformMixturePrior(torch.tensor([[1.0]]), torch.tensor([[1.0]]), torch.zeros(1))
    >>> round(float(g.posterior(torch.zeros(1, 1), torch.ones(1, 1)).mean2), 4)
    0.2911
    """

    pi: torch.Tensor
    half_width: torch.Tensor
    mode: torch.Tensor
    family: ClassVar[str] = "unimodal_symmetric"

    def _components(self, z, s, moments):
        a = self.half_width.unsqueeze(-2)
        point = a == 0
        a_safe = torch.where(point, torch.ones_like(a), a)
        z3, s3 = z.unsqueeze(-1), s.unsqueeze(-1)
        pi = self.pi.unsqueeze(-2)
        lo, hi = -a_safe - z3, a_safe - z3
        log_box = log_ndtr_diff(lo / s3, hi / s3) - torch.log(2.0 * a_safe)
        log_lik = torch.where(point, log_normal_pdf(z3, s3 * s3), log_box)
        if not moments:
            return Components(None, pi=pi, log_lik=log_lik)
        log_w = _log(pi) + log_lik
        mean, mean2, log_z = interval_truncated_moments(z3.expand_as(log_w), s3.expand_as(log_w), -a_safe, a_safe)
        cut = (-self.mode).reshape(-1, 1, 1).expand_as(log_w)
        clip = torch.minimum(torch.maximum(cut, -a_safe), a_safe)
        below = torch.exp(log_ndtr_diff(lo / s3, (clip - z3) / s3) - log_z)
        below = torch.where(cut <= -a_safe, torch.zeros_like(below), below)
        below = torch.where(cut >= a_safe, torch.ones_like(below), below)
        zero = torch.zeros_like(mean)
        mean = torch.where(point, zero, mean)
        mean2 = torch.where(point, zero, mean2)
        below = torch.where(point, _indicator(cut > 0, zero), below)
        at = torch.where(point, _indicator(cut == 0, zero), zero)
        return Components(log_w, mean, mean2, below, at)


def prior_from_dict(data: dict) -> Prior:
    """Rebuild a prior saved with :meth:`Prior.to_dict`.

    Examples
    --------
    >>> g = NormalPrior(torch.ones(1), torch.zeros(1))
    >>> prior_from_dict(g.to_dict()).family
    'normal'
    """
    family = data.get("family")
    if family not in _REGISTRY:
        raise InputError(f"unknown prior family {family!r}; expected one of {sorted(_REGISTRY)}")
    cls = _REGISTRY[family]
    return cls(**{f.name: torch.as_tensor(data[f.name]) for f in fields(cls)})


def concat_priors(priors: list[Prior]) -> Prior:
    """Concatenate priors of one family along the batch axis (mixtures padded to a common K).

    Examples
    --------
    >>> g = NormalPrior(torch.ones(1), torch.zeros(1))
    >>> concat_priors([g, g]).batch_size
    2
    """
    if not priors:
        raise InputError("concat_priors needs at least one prior")
    cls = type(priors[0])
    if any(type(p) is not cls for p in priors):
        raise InputError("concat_priors needs priors of one family, got " + ", ".join(sorted({p.family for p in priors})))
    out = {}
    for f in fields(cls):
        vals = [getattr(p, f.name) for p in priors]
        if vals[0].ndim == 2:
            width = max(v.shape[1] for v in vals)
            vals = [_pad_components(v, width, zero=(f.name == "pi")) for v in vals]
        out[f.name] = torch.cat(vals, dim=0)
    return cls(**out)


def _pad_components(v: torch.Tensor, width: int, zero: bool) -> torch.Tensor:
    extra = width - v.shape[1]
    if extra == 0:
        return v
    fill = torch.zeros_like(v[:, -1:]) if zero else v[:, -1:]
    return torch.cat([v, fill.expand(-1, extra)], dim=1)
