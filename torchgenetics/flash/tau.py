"""Residual precisions ``tau`` and the expected log likelihood term of the flash ELBO.

Without standard errors the variance structure is estimated in closed form
from expected squared residuals (overall, row or column means). With ``S`` and
``var_type`` not ``None`` the precision is ``1 / (S^2 + sigma^2)`` with one
``sigma^2`` overall, per row or per column, found by a one-dimensional search
that never returns a worse value than the current one.
"""

from __future__ import annotations

import math

import torch

from .data import FlashData

__all__ = ["estimate_tau", "expected_loglik", "initial_tau"]

_LOG_2PI = math.log(2.0 * math.pi)


def _masked(data: FlashData, er2: torch.Tensor) -> torch.Tensor:
    return er2 if data.mask is None else er2 * data.mask


def _sum_by(data: FlashData, values: torch.Tensor) -> torch.Tensor:
    """Sum an ``(n, p)`` matrix over the groups of ``data.var_type`` (keepdim shapes)."""
    if data.var_type == 1:
        return values.sum(1, keepdim=True)
    if data.var_type == 2:
        return values.sum(0, keepdim=True)
    return values.sum()


def _counts(data: FlashData) -> torch.Tensor:
    if data.var_type == 1:
        return data.row_obs.reshape(-1, 1)
    if data.var_type == 2:
        return data.col_obs.reshape(1, -1)
    return data.row_obs.sum()


def _floor(data: FlashData) -> float:
    return 1e-12 * max(data.y2_mean, 1e-300)


def _profile(data: FlashData, er2: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    var = data.S2 + sigma2
    terms = -0.5 * (torch.log(var) + er2 / var)
    return _sum_by(data, _masked(data, terms.expand_as(er2)))


def _search_sigma2(data: FlashData, er2: torch.Tensor, current: torch.Tensor | None) -> torch.Tensor:
    """Golden-section search of ``sigma^2`` on a log scale, per group."""
    mean_er2 = _sum_by(data, _masked(data, er2)) / _counts(data)
    hi = torch.log(torch.clamp(mean_er2, min=_floor(data)) * 4.0 + 1e-300)
    lo = torch.full_like(hi, math.log(_floor(data)))
    golden = (math.sqrt(5.0) - 1.0) / 2.0
    for _ in range(60):
        a = hi - golden * (hi - lo)
        b = lo + golden * (hi - lo)
        left = _profile(data, er2, torch.exp(a)) >= _profile(data, er2, torch.exp(b))
        hi = torch.where(left, b, hi)
        lo = torch.where(left, lo, a)
    best = torch.exp(0.5 * (lo + hi))
    # The boundary sigma^2 = 0 and the current value compete with the search result.
    candidates = [best, torch.zeros_like(best)] + ([current] if current is not None else [])
    values = torch.stack([_profile(data, er2, c).expand_as(best) for c in candidates])
    pick = values.argmax(0)
    stacked = torch.stack([c.expand_as(best) for c in candidates])
    return stacked.gather(0, pick.unsqueeze(0))[0]


def estimate_tau(data: FlashData, er2, sigma2: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Maximum-ELBO precisions given expected squared residuals.

    Parameters
    ----------
    data : FlashData
        The data (variance structure, mask, ``S``).
    er2 : float or torch.Tensor
        ``sum E R^2`` (implicit engine) or the ``(n, p)`` matrix of ``E R_ij^2``.
    sigma2 : torch.Tensor, optional
        Current extra variance (with ``S``), kept if the search finds nothing better.

    Returns
    -------
    (torch.Tensor, torch.Tensor or None)
        ``tau`` broadcastable to ``(n, p)`` and the extra variance (``None`` without ``S``).

    Examples
    --------
    >>> d = FlashData.build(torch.ones(2, 2, dtype=torch.float64))
    >>> float(estimate_tau(d, 8.0)[0])
    0.5
    """
    if data.var_type is None:
        return 1.0 / data.S2, None
    if data.S2 is not None:
        sig = _search_sigma2(data, er2, sigma2)
        return 1.0 / (data.S2 + sig), sig
    floor = _floor(data)
    if not isinstance(er2, torch.Tensor) or er2.ndim == 0:
        total = max(float(er2), floor * data.n_obs)
        return torch.tensor(data.n_obs / total, dtype=data.Y.dtype, device=data.Y.device), None
    sums = _sum_by(data, _masked(data, er2))
    counts = _counts(data)
    return counts / torch.clamp(sums, min=floor) / 1.0, None


def expected_loglik(data: FlashData, tau: torch.Tensor, er2) -> float:
    """``sum_{ij observed} E log N(Y_ij; (LF')_ij, 1/tau_ij)``.

    Examples
    --------
    >>> d = FlashData.build(torch.ones(2, 2, dtype=torch.float64))
    >>> round(expected_loglik(d, torch.tensor(1.0, dtype=torch.float64), 4.0), 4)
    -5.6758
    """
    if not isinstance(er2, torch.Tensor) or er2.ndim == 0:
        N = data.n_obs
        t = float(tau)
        return -0.5 * N * _LOG_2PI + 0.5 * N * math.log(t) - 0.5 * t * float(er2)
    shape = data.Y.shape
    log_tau = torch.log(tau).expand(shape)
    terms = 0.5 * log_tau - 0.5 * tau * er2
    total = _masked(data, terms).sum()
    return float(total) - 0.5 * data.n_obs * _LOG_2PI


def initial_tau(data: FlashData) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Precisions of the model with no factors (``E R^2 = Y^2``).

    Examples
    --------
    >>> d = FlashData.build(2 * torch.ones(2, 2, dtype=torch.float64))
    >>> float(initial_tau(d)[0])
    0.25
    """
    er2 = data.Y * data.Y
    if data.implicit:
        return estimate_tau(data, float(er2.sum()))
    return estimate_tau(data, er2)
