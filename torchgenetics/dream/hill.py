"""Dose-response curves of a trans feature against the cis expression x.

All curves are written on log x, so tiny x and steep slopes stay stable:

* single Hill, signed slope: ``A + V * sigmoid(n * (log x - log K))``; ``n > 0``
  activates, ``n < 0`` represses, ``A`` is the floor and ``A + V`` the ceiling;
* additive two-Hill: ``A + V1 * s(x; K1, n1) + V2 * s(x; K2, n2)`` (a rising and a
  falling term give non-monotone responses);
* nested Hill: an outer Hill of the inner Hill's output,
  ``A + V * sigmoid(n_out * (log s(x; K_in, n_in) - log K_out))``;
* polynomial in the standardised log x: ``A + sum_d b_d t**d``.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "FORMS",
    "hill_shape",
    "hill",
    "additive_hill",
    "nested_hill",
    "polynomial",
    "inflection_point",
    "hill_numpy",
]

FORMS = ("single", "additive", "nested", "polynomial")


def hill_shape(log_x: torch.Tensor, log_K: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """Hill fraction ``x**n / (K**n + x**n)`` as ``sigmoid(n (log x - log K))``.

    Parameters
    ----------
    log_x, log_K, n : torch.Tensor
        Broadcastable log dose, log half-saturation and signed slope.

    Returns
    -------
    torch.Tensor
        Values in (0, 1).

    Examples
    --------
    >>> float(hill_shape(torch.tensor(0.0), torch.tensor(0.0), torch.tensor(2.0)))
    0.5
    """
    return torch.sigmoid(n * (log_x - log_K))


def hill(x: torch.Tensor, A, V, K, n) -> torch.Tensor:
    """Single Hill curve with signed slope: ``A + V * sigmoid(n (log x - log K))``.

    Parameters
    ----------
    x : torch.Tensor
        Positive doses.
    A, V, K, n : torch.Tensor or float
        Floor, amplitude, half-saturation dose, signed Hill coefficient.

    Returns
    -------
    torch.Tensor

    Examples
    --------
    >>> x = torch.tensor([1.0, 100.0])
    >>> hill(x, 1.0, 4.0, torch.tensor(10.0), torch.tensor(3.0)).round().tolist()
    [1.0, 5.0]
    >>> hill(x, 1.0, 4.0, torch.tensor(10.0), torch.tensor(-3.0)).round().tolist()
    [5.0, 1.0]
    """
    K = torch.as_tensor(K, dtype=x.dtype)
    n = torch.as_tensor(n, dtype=x.dtype)
    return A + V * hill_shape(torch.log(x), torch.log(K), n)


def additive_hill(x: torch.Tensor, A, V1, K1, n1, V2, K2, n2) -> torch.Tensor:
    """Sum of two Hill terms over a common floor.

    Parameters
    ----------
    x : torch.Tensor
        Positive doses.
    A : torch.Tensor or float
        Floor.
    V1, K1, n1, V2, K2, n2 : torch.Tensor or float
        Amplitude, half-saturation and signed slope of each term.

    Returns
    -------
    torch.Tensor

    Examples
    --------
    >>> x = torch.tensor([0.01, 10.0, 1e4])
    >>> additive_hill(x, 0.0, 1.0, torch.tensor(1.0), torch.tensor(4.0),
    ...               1.0, torch.tensor(100.0), torch.tensor(-4.0)).round().tolist()
    [1.0, 2.0, 1.0]
    """
    log_x = torch.log(x)
    t1 = hill_shape(log_x, torch.log(torch.as_tensor(K1, dtype=x.dtype)), torch.as_tensor(n1, dtype=x.dtype))
    t2 = hill_shape(log_x, torch.log(torch.as_tensor(K2, dtype=x.dtype)), torch.as_tensor(n2, dtype=x.dtype))
    return A + V1 * t1 + V2 * t2


def nested_hill(x: torch.Tensor, A, V, K_out, n_out, K_in, n_in) -> torch.Tensor:
    """Outer Hill curve applied to the inner Hill fraction of x.

    Parameters
    ----------
    x : torch.Tensor
        Positive doses.
    A, V : torch.Tensor or float
        Floor and amplitude.
    K_out : torch.Tensor
        Half-saturation of the outer curve, in (0, 1) (the inner fraction's scale).
    n_out : torch.Tensor
        Signed outer slope.
    K_in, n_in : torch.Tensor
        Inner half-saturation dose and (positive) slope.

    Returns
    -------
    torch.Tensor

    Examples
    --------
    >>> x = torch.tensor([1e-3, 1e3])
    >>> nested_hill(x, 0.0, 1.0, torch.tensor(0.5), torch.tensor(5.0),
    ...             torch.tensor(1.0), torch.tensor(2.0)).round().tolist()
    [0.0, 1.0]
    """
    dtype = x.dtype
    log_inner = torch.nn.functional.logsigmoid(
        torch.as_tensor(n_in, dtype=dtype) * (torch.log(x) - torch.log(torch.as_tensor(K_in, dtype=dtype)))
    )
    return A + V * hill_shape(log_inner, torch.log(torch.as_tensor(K_out, dtype=dtype)),
                              torch.as_tensor(n_out, dtype=dtype))


def polynomial(t: torch.Tensor, A, coefs: torch.Tensor) -> torch.Tensor:
    """``A + sum_d coefs[..., d] * t**(d + 1)``.

    Parameters
    ----------
    t : torch.Tensor
        Standardised log dose, shape ``(..., 1)`` to broadcast against features.
    A : torch.Tensor or float
        Intercept.
    coefs : torch.Tensor
        Coefficients, last dimension the degree.

    Returns
    -------
    torch.Tensor

    Examples
    --------
    >>> polynomial(torch.tensor([2.0]), 1.0, torch.tensor([3.0, 0.5])).tolist()
    [9.0]
    """
    powers = torch.stack([t ** (d + 1) for d in range(coefs.shape[-1])], dim=-1)
    return A + (powers * coefs).sum(-1)


def inflection_point(K: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """Dose at which a Hill curve ``x**|n| / (K**|n| + x**|n|)`` bends, on the linear x scale.

    ``K ((|n| - 1) / (|n| + 1)) ** (1 / |n|)`` for ``|n| > 1``; NaN for ``|n| <= 1``
    (no inflection at positive x). On the log-x scale every curve bends at K.

    Parameters
    ----------
    K, n : torch.Tensor
        Half-saturation and signed slope.

    Returns
    -------
    torch.Tensor

    Examples
    --------
    >>> round(float(inflection_point(torch.tensor(10.0), torch.tensor(-3.0))), 4)
    7.937
    >>> bool(torch.isnan(inflection_point(torch.tensor(1.0), torch.tensor(0.5))))
    True
    """
    m = n.abs()
    safe = torch.clamp(m, min=1.0 + 1e-12)
    value = K * ((safe - 1) / (safe + 1)) ** (1 / safe)
    return torch.where(m > 1, value, torch.full_like(value, float("nan")))


def hill_numpy(x, A, V, K, n) -> np.ndarray:
    """NumPy twin of :func:`hill` (used by the simulator).

    Examples
    --------
    >>> hill_numpy(np.array([10.0]), 1.0, 2.0, 10.0, 2.0).tolist()
    [2.0]
    """
    z = np.asarray(n) * (np.log(x) - np.log(K))
    return A + V / (1.0 + np.exp(-z))
