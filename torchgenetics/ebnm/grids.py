"""Default grids of the mixture EBNM families, as the R package ebnm chooses them.

* :func:`smn_scale_grid` is ebnm's ``ebnm_scale_normalmix``: standard deviations
  ``sqrt(min(s)^2 (m^j - 1))``, ``j = 0..K-1`` (the first is a point mass), with
  the multiplier ``m`` set so that the KL divergence between any ``N(0, s^2)``
  and its best two-neighbour approximation is at most ``1 / n``. ebnm reads
  ``m`` from a table it built by Monte Carlo; :func:`smn_grid_multiplier`
  computes the same bound by Gauss-Hermite quadrature, and clips ``m`` to the
  table's range ``[1.05, 4]`` as ebnm's interpolation does.
* :func:`ashr_scale_grid` is ebnm's ``get_ashr_grid`` (ashr's default grid),
  used here for the symmetric unimodal family.

Both return one grid per problem in a batch, padded to a common length.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

__all__ = ["smn_grid_multiplier", "smn_kl_bound", "smn_scale_grid", "ashr_scale_grid", "pad_grids"]

_M_RANGE = (1.05, 4.0)
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(40)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def _kl(s2, omega, m):
    """KL(N(0, s2) || omega N(0, 1) + (1 - omega) N(0, m)) by quadrature; arrays broadcast."""
    x2 = (_NODES**2) * s2[..., None]
    a = np.log(np.clip(omega, 1e-300, None))[..., None] + 0.5 * x2 * (1.0 / s2[..., None] - 1.0)
    m = np.asarray(m)[..., None]
    b = np.log(np.clip(1.0 - omega, 1e-300, None))[..., None] + 0.5 * x2 * (1.0 / s2[..., None] - 1.0 / m) - 0.5 * np.log(m)
    return ((-np.logaddexp(a, b)) * _WEIGHTS).sum(-1) - 0.5 * np.log(s2)


def _kl_bound(m: np.ndarray) -> np.ndarray:
    """Vectorised worst-case KL for an array of multipliers ``m``."""
    m = np.asarray(m, dtype=np.float64)[..., None]
    s2 = np.exp(np.linspace(0.0, 1.0, 33)[1:-1] * np.log(m))
    m = np.broadcast_to(m, s2.shape)
    lo, hi = np.zeros_like(s2), np.ones_like(s2)
    golden = (math.sqrt(5.0) - 1.0) / 2.0
    for _ in range(40):
        a = hi - golden * (hi - lo)
        b = lo + golden * (hi - lo)
        left = _kl(s2, a, m) < _kl(s2, b, m)
        hi = np.where(left, b, hi)
        lo = np.where(left, lo, a)
    return np.max(_kl(s2, 0.5 * (lo + hi), m), axis=-1)


def smn_kl_bound(m: float) -> float:
    """Worst-case KL divergence of ebnm's scale-mixture grid with multiplier ``m``.

    ``max over s^2 in [1, m] of min over w of KL(N(0, s^2) || w N(0, 1) + (1 - w) N(0, m))``.

    Examples
    --------
    >>> smn_kl_bound(2.0) > smn_kl_bound(1.5) > 0
    True
    """
    return float(_kl_bound(np.array([m]))[0])


@lru_cache(maxsize=1)
def _smn_table() -> tuple[np.ndarray, np.ndarray]:
    """ebnm's table: 100 multipliers evenly spaced in log(log(m)) over [1.05, 4] and their KL bounds."""
    m = np.exp(np.exp(np.linspace(np.log(np.log(_M_RANGE[0])), np.log(np.log(_M_RANGE[1])), 100)))
    return m, _kl_bound(m)


@lru_cache(maxsize=256)
def smn_grid_multiplier(kl_target: float) -> float:
    """Grid multiplier ``m`` whose KL bound is ``kl_target``.

    Interpolates ``m`` linearly in ``log(KL)`` over ebnm's table of 100
    multipliers in ``[1.05, 4]``, clamping outside it (R's ``approx(rule = 2)``).

    Examples
    --------
    >>> 1.05 <= smn_grid_multiplier(1e-3) < smn_grid_multiplier(1e-2) <= 4
    True
    """
    m, kl = _smn_table()
    return float(np.interp(math.log(kl_target), np.log(kl), m))


def pad_grids(grids: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack grids of different lengths: pad with the last value; return ``(grid, mask)``.

    Examples
    --------
    >>> g, m = pad_grids([torch.tensor([0.0, 1.0]), torch.tensor([0.0])])
    >>> g.tolist(), m.tolist()
    ([[0.0, 1.0], [0.0, 0.0]], [[True, True], [True, False]])
    """
    width = max(int(g.shape[0]) for g in grids)
    out, mask = [], []
    for g in grids:
        extra = width - g.shape[0]
        out.append(torch.cat([g, g[-1:].expand(extra)]))
        mask.append(torch.arange(width, device=g.device) < g.shape[0])
    return torch.stack(out), torch.stack(mask)


def smn_scale_grid(
    x: torch.Tensor,
    s: torch.Tensor,
    mode: torch.Tensor | float = 0.0,
    min_K: int = 3,
    max_K: int = 300,
    kl_target: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """ebnm's default grid of standard deviations for ``normal_scale_mixture``.

    Parameters
    ----------
    x, s : torch.Tensor
        ``(B, n)`` observations and standard errors.
    mode : torch.Tensor or float
        ``(B,)`` prior modes.
    min_K, max_K : int
        Bounds on the number of components.
    kl_target : float, optional
        KL bound (default ``1 / n``).

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        ``(B, K)`` standard deviations (first 0) and the mask of real components.

    Examples
    --------
    >>> sd, mask = smn_scale_grid(torch.tensor([[0.0, 3.0]]), torch.ones(1, 2))
    >>> float(sd[0, 0]), bool(mask.all())
    (0.0, True)
    """
    n = x.shape[-1]
    kl_target = 1.0 / n if kl_target is None else kl_target
    mult = smn_grid_multiplier(float(kl_target))
    mode = torch.as_tensor(mode, dtype=x.dtype, device=x.device).reshape(-1, 1).expand(x.shape[0], 1)
    max_x2 = ((x - mode) ** 2).amax(-1)
    min_s2 = s.expand_as(x).amin(-1) ** 2
    grids = []
    for b in range(x.shape[0]):
        ratio = max(float(max_x2[b] / min_s2[b]), 1.0)
        max_mult = (ratio + 1.0) ** (1.0 / (min_K - 1)) + 1e-8
        min_mult = max_mult ** ((min_K - 1) / (max_K - 1)) - 1e-8
        m = min(max(mult, min_mult), max_mult)
        K = math.ceil(math.log(ratio + 1.0) / math.log(m)) + 1
        powers = torch.arange(K, dtype=x.dtype, device=x.device)
        grids.append(torch.sqrt(min_s2[b] * (m**powers - 1.0)))
    return pad_grids(grids)


def ashr_scale_grid(
    x: torch.Tensor, s: torch.Tensor, mode: torch.Tensor | float = 0.0, grid_mult: float = math.sqrt(2.0)
) -> tuple[torch.Tensor, torch.Tensor]:
    """ashr's default grid (ebnm's ``get_ashr_grid``): 0 then a geometric grid up to ``2 sqrt(max(x^2 - s^2))``.

    Parameters
    ----------
    x, s : torch.Tensor
        ``(B, n)`` observations and standard errors.
    mode : torch.Tensor or float
        ``(B,)`` prior modes.
    grid_mult : float
        Ratio of neighbouring grid points.

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        ``(B, K)`` scales (first 0) and the mask of real components.

    Examples
    --------
    >>> a, _ = ashr_scale_grid(torch.tensor([[4.0]]), torch.ones(1, 1))
    >>> float(a[0, 0]), round(float(a[0, -1]), 3)
    (0.0, 7.746)
    """
    mode = torch.as_tensor(mode, dtype=x.dtype, device=x.device).reshape(-1, 1).expand(x.shape[0], 1)
    s = s.expand_as(x)
    grids = []
    for b in range(x.shape[0]):
        sigma_min = float(s[b].amin()) / 10.0
        spread = float(torch.clamp(((x[b] - mode[b]) ** 2 - s[b] ** 2).amax(), min=0.0))
        sigma_max = max(8.0 * sigma_min, 2.0 * math.sqrt(spread))
        npoint = math.ceil(math.log2(sigma_max / sigma_min) / math.log2(grid_mult))
        powers = torch.arange(-npoint, 1, dtype=x.dtype, device=x.device)
        grids.append(torch.cat([torch.zeros(1, dtype=x.dtype, device=x.device), grid_mult**powers * sigma_max]))
    return pad_grids(grids)
