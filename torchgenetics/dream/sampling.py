"""Posterior draws of latent sites only, in memory-planned chunks.

Pyro's ``Predictive`` reruns the whole model for every draw, so even with
``return_sites`` it builds each observation distribution — a
[samples x cells x features] tensor when vectorised. Here the guide alone is
sampled: for :class:`~pyro.infer.autoguide.AutoNormal` directly from its
``loc``/``scale`` parameters (vectorised over draws, in chunks sized by
:func:`torchgenetics.memory.plan_block`), for any other guide by tracing the
guide once per draw. Memory grows with samples x parameters, never with
samples x cells x features.
"""

from __future__ import annotations

import torch
from pyro import poutine
from pyro.distributions.transforms import biject_to
from pyro.infer.autoguide import AutoNormal
from pyro.poutine.util import site_is_subsample

from ..errors import InputError
from ..memory import available_bytes, dtype_bytes, plan_block

__all__ = ["latent_sites", "sample_posterior", "plan_sample_chunk"]


def latent_sites(guide, model_kwargs: dict | None = None) -> list:
    """Names of the latent sample sites a guide produces.

    Parameters
    ----------
    guide : callable
        A Pyro guide (an AutoGuide after its first call, or any guide function).
    model_kwargs : dict, optional
        Keyword arguments to trace a non-AutoNormal guide with.

    Returns
    -------
    list of str

    Examples
    --------
    >>> import pyro, pyro.distributions as dist
    >>> def model():
    ...     pyro.sample("a", dist.Normal(torch.tensor(0.0), 1.0))
    >>> with pyro.get_param_store().scope():
    ...     g = AutoNormal(model); _ = g()
    ...     latent_sites(g)
    ['a']
    """
    if isinstance(guide, AutoNormal) and guide.prototype_trace is not None:
        return [name for name, _ in guide.prototype_trace.iter_stochastic_nodes()]
    trace = poutine.trace(guide).get_trace(**(model_kwargs or {}))
    return [name for name, site in trace.nodes.items() if _is_latent(site)]


def _is_latent(site: dict) -> bool:
    return (
        site["type"] == "sample"
        and not site["is_observed"]
        and not site_is_subsample(site)
        and not site["infer"].get("is_auxiliary", False)
    )


def plan_sample_chunk(n_samples: int, bytes_per_sample: int, *, budget=None, device=None,
                      live_copies: int = 3) -> int:
    """Draws per chunk whose working set fits the memory budget.

    Parameters
    ----------
    n_samples : int
        Draws wanted.
    bytes_per_sample : int
        Bytes of one draw of every kept site.
    budget : int or str, optional
        Default ``available_bytes(device)``.
    device : torch.device or str, optional
        Device of the draws.
    live_copies : int, default 3
        Copies alive per draw while transforming (noise, unconstrained, constrained).

    Returns
    -------
    int

    Examples
    --------
    >>> plan_sample_chunk(1000, 8_000, budget="240KB")
    10
    """
    budget = available_bytes(device) if budget is None else budget
    return plan_block(n_samples, max(int(bytes_per_sample), 1), live_copies=live_copies, budget=budget,
                      device=device)


def sample_posterior(guide, n_samples: int, *, sites=None, model_kwargs: dict | None = None, seed: int = 0,
                     budget=None, device=None) -> dict:
    """Draw from the variational posterior, keeping latent sites only.

    Must run where the guide's parameters are live (the parameter-store scope the
    guide was trained in).

    Parameters
    ----------
    guide : callable
        A trained guide; :class:`~pyro.infer.autoguide.AutoNormal` is sampled from
        its parameters (full size, also for subsampled local sites), other guides by
        tracing them with ``model_kwargs``.
    n_samples : int
        Draws.
    sites : sequence of str, optional
        Latent sites to keep (default all).
    model_kwargs : dict, optional
        Arguments for tracing a non-AutoNormal guide (use full batches).
    seed : int
        Seed of the draws.
    budget : int or str, optional
        Memory budget of a chunk (default :func:`torchgenetics.memory.available_bytes`).
    device : torch.device or str, optional
        Device for the budget.

    Returns
    -------
    dict of str to torch.Tensor
        Each ``(n_samples, *site_shape)``.

    Examples
    --------
    >>> import pyro, pyro.distributions as dist
    >>> def model():
    ...     pyro.sample("s", dist.LogNormal(torch.zeros(3), 1.0).to_event(1))
    >>> with pyro.get_param_store().scope():
    ...     g = AutoNormal(model); _ = g()
    ...     draws = sample_posterior(g, 50)
    >>> draws["s"].shape, bool((draws["s"] > 0).all())
    (torch.Size([50, 3]), True)
    """
    if n_samples < 1:
        raise InputError(f"n_samples must be >= 1, got {n_samples}")
    if isinstance(guide, AutoNormal):
        return _sample_autonormal(guide, n_samples, sites, seed, budget, device)
    return _sample_traced(guide, n_samples, sites, model_kwargs, seed)


@torch.no_grad()
def _sample_autonormal(guide: AutoNormal, n_samples, sites, seed, budget, device) -> dict:
    if guide.prototype_trace is None:
        raise InputError("the guide has not been run yet; fit it before sampling")
    nodes = dict(guide.prototype_trace.iter_stochastic_nodes())
    names = list(nodes) if sites is None else list(sites)
    unknown = [n for n in names if n not in nodes]
    if unknown:
        raise InputError(f"unknown latent site(s) {unknown}; the guide has {sorted(nodes)}")
    params = {name: guide._get_loc_and_scale(name) for name in names}
    per_sample = sum(loc.numel() * dtype_bytes(loc.dtype) for loc, _ in params.values())
    chunk = plan_sample_chunk(n_samples, per_sample, budget=budget, device=device)
    gen = torch.Generator(device=next(iter(params.values()))[0].device).manual_seed(int(seed))
    out = {}
    for name, (loc, scale) in params.items():
        transform = biject_to(nodes[name]["fn"].support)
        loc, scale = loc.detach(), scale.detach()
        shape = tuple(transform(loc).shape)  # constrained shape (a simplex has one more entry)
        draws = torch.empty((n_samples,) + shape, dtype=loc.dtype, device=loc.device)
        for start in range(0, n_samples, chunk):
            stop = min(start + chunk, n_samples)
            eps = torch.randn((stop - start,) + tuple(loc.shape), generator=gen, dtype=loc.dtype,
                              device=loc.device)
            draws[start:stop] = transform(loc + scale * eps)
            del eps
        out[name] = draws
    return out


@torch.no_grad()
def _sample_traced(guide, n_samples, sites, model_kwargs, seed) -> dict:
    kwargs = dict(model_kwargs or {})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        collected: dict[str, list] = {}
        for _ in range(n_samples):
            trace = poutine.trace(guide).get_trace(**kwargs)
            for name, site in trace.nodes.items():
                if _is_latent(site) and (sites is None or name in sites):
                    collected.setdefault(name, []).append(site["value"].detach())
    return {name: torch.stack(values) for name, values in collected.items()}
