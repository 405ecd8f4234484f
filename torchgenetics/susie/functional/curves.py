"""Effect curves in the data domain, with pointwise credible bands.

The coefficients of an outcome are ``c = dwt(z)`` of its centred, scaled grid
values ``z``, so a curve is ``z = c @ W`` with the orthogonal wavelet matrix ``W``
(:func:`.wavelets.wavelet_matrix`) and data values ``center + scale * z``.
Effect l is, under its posterior, the coefficient vector of variable j with
probability ``alpha_lj``; given j the coefficients are independent with means
``mu_ljt`` and variances ``mu2_ljt - mu_ljt^2``. Per unit of X (column scale
``csd_j``) the curve of effect l at position s therefore has mean
``sum_j alpha_lj m_js`` with ``m_js = scale * (mu_lj / csd_j) @ W`` and variance
``sum_j alpha_lj (scale^2 (v_lj / csd_j^2) @ W^2 + m_js^2) - mean_s^2`` (within
and between variables). The band is ``mean +- z sd`` with the normal quantile of
the requested level (a pointwise normal approximation).
"""

from __future__ import annotations

import torch

from .wavelets import wavelet_matrix

__all__ = ["synthesis_matrix", "effect_curve_moments", "coefficient_curves", "band_quantile"]


def synthesis_matrix(T: int, wavelet: str, dtype=torch.float64, device=None) -> torch.Tensor:
    """``W`` with ``curve = coefficients @ W`` (the identity for a scalar outcome).

    Examples
    --------
    >>> W = synthesis_matrix(4, "haar")
    >>> torch.allclose(W @ W.T, torch.eye(4, dtype=torch.float64))
    True
    """
    if T == 1:
        return torch.ones(1, 1, dtype=dtype, device=device)
    return wavelet_matrix(T, wavelet, dtype=dtype, device=device)


def effect_curve_moments(alpha: torch.Tensor, mu: torch.Tensor, mu2: torch.Tensor, csd: torch.Tensor,
                         W: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Pointwise posterior mean and sd of one effect's curve (per unit of X).

    Parameters
    ----------
    alpha : torch.Tensor
        (p,) the effect's inclusion probabilities.
    mu, mu2 : torch.Tensor
        (p, T) posterior moments of the outcome's coefficients given each variable.
    csd : torch.Tensor
        (p,) column scales of X.
    W : torch.Tensor
        (T, T) synthesis matrix.
    scale : float
        Scale of the outcome.

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        (T,) mean and standard deviation of the curve at each grid position.

    Examples
    --------
    >>> W = synthesis_matrix(2, "haar")
    >>> mean, sd = effect_curve_moments(torch.tensor([1.0, 0.0], dtype=torch.float64),
    ...                                 torch.tensor([[2 ** 0.5, 0.0], [0.0, 0.0]], dtype=torch.float64),
    ...                                 torch.tensor([[2.0, 0.0], [0.0, 0.0]], dtype=torch.float64),
    ...                                 torch.ones(2, dtype=torch.float64), W, 1.0)
    >>> [round(v, 12) for v in mean.tolist()], [round(v, 12) for v in sd.tolist()]
    ([1.0, 1.0], [0.0, 0.0])
    """
    inv = 1.0 / csd[:, None]
    per_variable = scale * ((mu * inv) @ W)
    var = torch.clamp(mu2 - mu * mu, min=0.0) * inv * inv
    within = (scale * scale) * (var @ (W * W))
    mean = alpha @ per_variable
    second = alpha @ (within + per_variable * per_variable)
    return mean, torch.sqrt(torch.clamp(second - mean * mean, min=0.0))


def coefficient_curves(B: torch.Tensor, csd: torch.Tensor, W: torch.Tensor, scale: float) -> torch.Tensor:
    """(p, T) data-domain effect curve of every variable from wavelet coefficients B (p, T).

    Examples
    --------
    >>> coefficient_curves(torch.eye(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64),
    ...                    synthesis_matrix(2, "haar"), 2.0).shape
    torch.Size([2, 2])
    """
    return scale * ((B / csd[:, None]) @ W)


def band_quantile(level: float) -> float:
    """Normal quantile of a two-sided pointwise band of the given level.

    Examples
    --------
    >>> round(band_quantile(0.95), 4)
    1.96
    """
    return float(torch.special.ndtri(torch.tensor(0.5 + level / 2.0, dtype=torch.float64)))
