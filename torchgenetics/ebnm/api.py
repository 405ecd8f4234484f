"""``ebnm()``: fit a prior to normal means and return the posterior, batched over problems."""

from __future__ import annotations

import torch

from ..errors import InputError
from .families import Family, get_family
from .normal_means import normal_means_loglik
from .priors import Prior
from .result import EBNMResult

__all__ = ["ebnm", "solve"]


def _as_tensor(value, name, dtype, device) -> torch.Tensor:
    try:
        return torch.as_tensor(value, dtype=dtype, device=device)
    except (TypeError, ValueError, RuntimeError) as err:
        raise InputError(f"{name} must be numeric: {err}") from None


def _where(mask: torch.Tensor, batched: bool) -> str:
    idx = tuple(int(i) for i in torch.nonzero(mask)[0])
    if batched:
        return f"problem {idx[0]}, observation {idx[1]}"
    return f"observation {idx[-1]}"


def _prepare(x, s, dtype, device):
    x = _as_tensor(x, "x", dtype, device)
    if x.ndim not in (1, 2) or x.shape[-1] == 0:
        raise InputError(f"x must be a non-empty vector (n,) or a batch (B, n), got shape {tuple(x.shape)}")
    batched = x.ndim == 2
    x2 = x if batched else x.unsqueeze(0)
    s = _as_tensor(s, "s", x.dtype, x.device)
    if s.ndim == 1 and batched and s.shape[0] == x2.shape[0] and s.shape[0] != x2.shape[1]:
        s = s.unsqueeze(-1)
    try:
        s2 = torch.broadcast_to(s if batched or s.ndim == 0 else s.unsqueeze(0), x2.shape)
    except RuntimeError:
        raise InputError(f"s of shape {tuple(s.shape)} does not broadcast to x of shape {tuple(x.shape)}") from None
    bad = ~torch.isfinite(x2)
    if bool(bad.any()):
        raise InputError(f"x must be finite; found {float(x2[bad][0])} at {_where(bad, batched)}")
    bad = ~torch.isfinite(s2) | (s2 <= 0)
    if bool(bad.any()):
        raise InputError(
            f"standard errors s must be positive and finite; found {float(s2[bad][0])} at {_where(bad, batched)}"
        )
    return x2, s2.contiguous(), batched


def solve(family: Family, x: torch.Tensor, s: torch.Tensor, g_init: Prior | None = None, fix_g: bool = False) -> EBNMResult:
    """Batched EBNM on already-checked ``(B, n)`` tensors (the fast path flash uses).

    Parameters
    ----------
    family : Family
        Prior family.
    x, s : torch.Tensor
        ``(B, n)`` observations and positive standard errors.
    g_init : Prior, optional
        Warm start (or the prior itself with ``fix_g``).
    fix_g : bool
        Use ``g_init`` as the prior without fitting.

    Returns
    -------
    EBNMResult
        Batched result.

    Examples
    --------
    >>> from torchgenetics.ebnm import get_family
    >>> x = torch.randn(3, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> solve(get_family("point_normal"), x, torch.ones_like(x)).posterior_mean.shape
    torch.Size([3, 20])
    """
    if fix_g:
        if g_init is None:
            raise InputError("fix_g=True needs the prior in g_init")
        prior = g_init.to(dtype=x.dtype, device=x.device)
    else:
        if g_init is not None and not isinstance(g_init, family.prior_class):
            raise InputError(f"g_init is a {g_init.family} prior but the family is {family.name}")
        prior = family.fit(x, s, None if g_init is None else g_init.to(dtype=x.dtype, device=x.device))
    if prior.batch_size != x.shape[0]:
        raise InputError(f"the prior holds {prior.batch_size} problems but x has {x.shape[0]}")
    post = prior.posterior(x, s)
    loglik = post.log_marginal.sum(-1)
    kl = normal_means_loglik(x, s, post.mean, post.mean2) - loglik
    return EBNMResult(post.mean, post.mean2, post.lfsr, prior, loglik, kl, prior.family)


def ebnm(
    x,
    s=1.0,
    prior_family: str | Family = "point_normal",
    mode: float | str = 0.0,
    scale="estimate",
    g_init: Prior | None = None,
    fix_g: bool = False,
    dtype: torch.dtype | None = None,
    device=None,
) -> EBNMResult:
    """Empirical Bayes normal means: fit ``g`` by maximum marginal likelihood, return the posterior.

    Model: ``x_i ~ N(theta_i, s_i^2)``, ``theta_i ~ g`` with ``g`` in ``prior_family``.
    A 2-D ``x`` holds ``B`` independent problems (rows), each with its own ``g``.

    Parameters
    ----------
    x : array-like
        Observations, ``(n,)`` or ``(B, n)``.
    s : float or array-like
        Standard errors (positive), broadcastable to ``x``; a ``(B,)`` vector
        gives one standard error per problem.
    prior_family : str or Family
        ``"point_normal"`` (default), ``"point_laplace"``, ``"point_exponential"``,
        ``"normal"``, ``"normal_scale_mixture"``, ``"unimodal_symmetric"``.
    mode : float or "estimate"
        Prior mode, fixed at 0 by default.
    scale : "estimate" or sequence of float
        Grid for the mixture families (ebnm's default grid when ``"estimate"``).
    g_init : Prior, optional
        Initial prior (warm start); with ``fix_g=True`` the prior used as is.
    fix_g : bool
        Skip fitting and compute the posterior under ``g_init``.
    dtype, device : optional
        Working precision and device (float64 on the input's device by default).

    Returns
    -------
    EBNMResult
        Posterior mean, second moment, lfsr, fitted prior, log likelihood and KL.

    Raises
    ------
    InputError
        Non-finite ``x``, non-positive or non-finite ``s`` (the message names
        the observation), unknown family, or a prior of the wrong family.

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(1)
    >>> theta = torch.where(torch.rand(500, generator=g) < 0.8, 0.0, 3 * torch.randn(500, generator=g))
    >>> x = theta + torch.randn(500, generator=g)
    >>> res = ebnm(x, 1.0, "point_normal")
    >>> round(float(res.prior.pi0), 1)
    0.8
    """
    if dtype is None:
        dtype = x.dtype if isinstance(x, torch.Tensor) and x.is_floating_point() and x.dtype == torch.float64 else torch.float64
    if device is None and isinstance(x, torch.Tensor):
        device = x.device
    x2, s2, batched = _prepare(x, s, dtype, device)
    family = get_family(prior_family, mode=mode, scale=scale) if not isinstance(prior_family, Family) else prior_family
    res = solve(family, x2, s2, g_init=g_init, fix_g=fix_g)
    if batched:
        return res
    return EBNMResult(
        res.posterior_mean[0], res.posterior_second_moment[0], res.lfsr[0], res.prior, res.log_likelihood[0], res.kl[0], res.family
    )
