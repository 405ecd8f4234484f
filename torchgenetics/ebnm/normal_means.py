"""Shared maths of the normal-means problem ``x_i ~ N(theta_i, s_i^2)``.

Every prior family is a mixture of *components* (a point mass, a normal, a
half-Laplace, an exponential, a uniform). For each observation and component we
need the log marginal density of ``x`` and the moments of the component's
posterior; :func:`combine_components` turns those into the posterior of the
mixture (mean, second moment, lfsr) and its log marginal likelihood.

All functions work elementwise on tensors of any shape and are numerically
stable in the tails (``log_ndtr``, ``erfcx`` and asymptotic series).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = [
    "LOG_2PI",
    "log_normal_pdf",
    "log1mexp",
    "log_ndtr_diff",
    "positive_truncated_moments",
    "interval_truncated_moments",
    "normal_means_loglik",
    "Components",
    "Posterior",
    "combine_components",
]

LOG_2PI = math.log(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_SQRT_HALF = math.sqrt(0.5)
# Asymptotic series of the truncated-normal moments below t = -_SERIES_CUT
# (coefficients of 1/(r R(r)) in powers of 1/r^2, R = Mills ratio).
_SERIES_CUT = 40.0
_MILLS_INV = (1.0, 1.0, -2.0, 10.0, -74.0, 706.0, -8162.0, 110410.0)


def log_normal_pdf(x: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Log density of ``N(0, var)`` at ``x``.

    Examples
    --------
    >>> round(float(log_normal_pdf(torch.tensor(0.0), torch.tensor(1.0))), 6)
    -0.918939
    """
    return -0.5 * (LOG_2PI + torch.log(var) + x * x / var)


def log1mexp(t: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(t))`` for ``t <= 0``, accurate near 0 and far below it.

    Examples
    --------
    >>> round(float(log1mexp(torch.tensor(-1e-20, dtype=torch.float64))), 2)
    -46.05
    """
    return torch.where(t > -math.log(2.0), torch.log(-torch.expm1(t)), torch.log1p(-torch.exp(t)))


def log_ndtr_diff(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``log(Phi(b) - Phi(a))`` for ``a <= b``, stable in both tails.

    Examples
    --------
    >>> x = log_ndtr_diff(torch.tensor(40.0, dtype=torch.float64), torch.tensor(41.0, dtype=torch.float64))
    >>> round(float(x), 2)
    -804.61
    """
    flip = a > 0
    lo = torch.where(flip, -b, a)
    hi = torch.where(flip, -a, b)
    log_hi = torch.special.log_ndtr(hi)
    return log_hi + log1mexp(torch.special.log_ndtr(lo) - log_hi)


def positive_truncated_moments(m: torch.Tensor, sd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """First two moments of ``N(m, sd^2)`` truncated to ``(0, inf)``.

    Uses ``E = m + sd * lambda(m / sd)`` with the inverse Mills ratio from
    ``erfcx``, and an asymptotic series when ``m / sd < -40`` where the direct
    formula cancels.

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        ``E[theta]`` and ``E[theta^2]``.

    Examples
    --------
    >>> e1, e2 = positive_truncated_moments(torch.tensor(0.0), torch.tensor(1.0))
    >>> round(float(e1), 4), round(float(e2), 4)
    (0.7979, 1.0)
    """
    t = m / sd
    lam = _SQRT_2_OVER_PI / torch.special.erfcx(-t * _SQRT_HALF)
    e1 = t + lam
    e2 = 1.0 + t * e1
    far = t < -_SERIES_CUT
    if bool(far.any()):
        u = 1.0 / torch.where(far, t * t, torch.ones_like(t))
        r = torch.sqrt(1.0 / u)
        # e1 = r * sum_{k>=1} c_k u^k ; e2 = -sum_{k>=2} c_k u^(k-1)
        s1 = torch.zeros_like(t)
        s2 = torch.zeros_like(t)
        power = torch.ones_like(t)
        for k, c in enumerate(_MILLS_INV[1:], start=1):
            if k >= 2:
                s2 = s2 - c * power
            power = power * u
            s1 = s1 + c * power
        e1 = torch.where(far, r * s1, e1)
        e2 = torch.where(far, s2, e2)
    e1 = torch.clamp(e1, min=0.0)
    e2 = torch.maximum(e2, e1 * e1)
    return sd * e1, sd * sd * e2


def interval_truncated_moments(
    m: torch.Tensor, sd: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Moments of ``N(m, sd^2)`` truncated to ``[lo, hi]`` (``lo < hi``).

    Returns
    -------
    (torch.Tensor, torch.Tensor, torch.Tensor)
        ``E[theta]``, ``E[theta^2]`` and ``log(Phi(beta) - Phi(alpha))``, the log
        probability of the interval under the untruncated normal.

    Examples
    --------
    >>> one = torch.tensor(1.0, dtype=torch.float64)
    >>> e1, e2, _ = interval_truncated_moments(0 * one, one, -one, one)
    >>> round(float(e1), 6), round(float(e2), 4)
    (0.0, 0.2911)
    """
    alpha = (lo - m) / sd
    beta = (hi - m) / sd
    log_z = log_ndtr_diff(alpha, beta)
    log_phi = lambda v: -0.5 * (LOG_2PI + v * v)  # noqa: E731
    r_a = torch.exp(log_phi(alpha) - log_z)
    r_b = torch.exp(log_phi(beta) - log_z)
    mean = m + sd * (r_a - r_b)
    var = sd * sd * (1.0 + alpha * r_a - beta * r_b - (r_a - r_b) ** 2)
    mean = torch.minimum(torch.maximum(mean, lo), hi)
    var = torch.clamp(var, min=0.0)
    var = torch.minimum(var, (hi - lo) ** 2 / 4.0)
    return mean, var + mean * mean, log_z


def normal_means_loglik(
    x: torch.Tensor, s: torch.Tensor, mean: torch.Tensor, mean2: torch.Tensor
) -> torch.Tensor:
    """Expected log likelihood ``sum_i E_q log N(x_i; theta_i, s_i^2)`` over the last axis.

    With the posterior moments of an EBNM fit, ``log_likelihood - this`` is
    ``-KL(q || g)``: the identity flash uses to evaluate its ELBO.

    Examples
    --------
    >>> x = torch.tensor([0.0]); s = torch.tensor([1.0])
    >>> round(float(normal_means_loglik(x, s, x, x)), 6)
    -0.918939
    """
    s2 = s * s
    quad = (x * x - 2.0 * x * mean + mean2) / s2
    return -0.5 * (LOG_2PI + torch.log(s2) + quad).sum(-1)


@dataclass
class Components:
    """Per-component pieces of a mixture posterior, stacked on the last axis.

    Attributes
    ----------
    log_weight : torch.Tensor
        ``log pi_c + log p(x | component c)``.
    mean, mean2 : torch.Tensor or None
        Posterior first and second moments of ``eta = theta - mode`` given the component.
    below : torch.Tensor or None
        ``P(eta < -mode | component)``.
    at : torch.Tensor or None
        ``P(eta = -mode | component)`` (non-zero only for point masses).
    pi, log_lik : torch.Tensor or None
        The prior weights and component log likelihoods separately (weights kept
        on the linear scale so that gradients stay finite at zero weights).
    """

    log_weight: torch.Tensor
    mean: torch.Tensor | None = None
    mean2: torch.Tensor | None = None
    below: torch.Tensor | None = None
    at: torch.Tensor | None = None
    pi: torch.Tensor | None = None
    log_lik: torch.Tensor | None = None


@dataclass
class Posterior:
    """Posterior summaries of ``theta`` in a normal-means problem.

    Attributes
    ----------
    mean, mean2, lfsr : torch.Tensor
        Posterior mean, second moment and local false sign rate.
    log_marginal : torch.Tensor
        Log marginal density of each observation.
    """

    mean: torch.Tensor
    mean2: torch.Tensor
    lfsr: torch.Tensor
    log_marginal: torch.Tensor


def combine_components(comp: Components, mode: torch.Tensor) -> Posterior:
    """Posterior of a mixture from its components.

    Parameters
    ----------
    comp : Components
        Component pieces, shape ``(..., C)``.
    mode : torch.Tensor
        Location the components are centred on, broadcastable to ``(...)``.

    Returns
    -------
    Posterior
        ``mean = mode + E[eta]``, ``mean2 = E[(mode + eta)^2]`` and
        ``lfsr = P(theta = 0) + min(P(theta < 0), P(theta > 0))``.

    Examples
    --------
    >>> lw = torch.log(torch.tensor([[0.5, 0.5]]))
    >>> c = Components(lw, torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2))
    >>> combine_components(c, torch.zeros(1)).lfsr
    tensor([1.])
    """
    log_marginal = torch.logsumexp(comp.log_weight, dim=-1)
    resp = torch.exp(comp.log_weight - log_marginal.unsqueeze(-1))
    eta = (resp * comp.mean).sum(-1)
    eta2 = (resp * comp.mean2).sum(-1)
    mean = mode + eta
    mean2 = torch.clamp(mode * mode + 2.0 * mode * eta + eta2, min=0.0)
    mean2 = torch.maximum(mean2, mean * mean)
    below = torch.clamp((resp * comp.below).sum(-1), 0.0, 1.0)
    at = torch.clamp((resp * comp.at).sum(-1), 0.0, 1.0)
    above = torch.clamp(1.0 - below - at, 0.0, 1.0)
    lfsr = torch.clamp(at + torch.minimum(below, above), 0.0, 1.0)
    return Posterior(mean, mean2, lfsr, log_marginal)
