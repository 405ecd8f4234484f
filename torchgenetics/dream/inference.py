"""Fit one bayesDREAM model: batch size, guide, SVI, posterior draws, in a private parameter store.

:func:`run_inference` is shared by the technical, cis and trans fits. It

1. picks the cell batch size (``"auto"``: measured bytes per cell and
   :func:`torchgenetics.memory.plan_block`; an int; or None for full batches);
2. builds the guide (AutoNormal by default) in its own Pyro parameter-store scope,
   so fits never share or overwrite each other's parameters, and sets starting
   values (or a previous fit's variational parameters: warm start);
3. runs :func:`torchgenetics.optim.fit_svi` (OneCycleLR stepped every iteration,
   clipping, early stopping);
4. draws latent sites only from the guide (:func:`~torchgenetics.dream.sampling.sample_posterior`).

Randomness is seeded inside a forked RNG: the caller's global RNG is untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pyro
import torch
from pyro.distributions.transforms import biject_to
from pyro.infer.autoguide import AutoGuideList, AutoNormal

from ..errors import InputError
from ..optim import OptimConfig, SVIRun, fit_svi
from .batches import measure_bytes_per_cell, plan_batch_size
from .guides import guide_factory
from .sampling import latent_sites, sample_posterior

__all__ = ["InferenceResult", "run_inference", "autonormal_params"]


@dataclass
class InferenceResult:
    """What :func:`run_inference` returns.

    Attributes
    ----------
    run : SVIRun
        Losses, learning rates, time, early stopping.
    draws : dict of torch.Tensor
        Posterior draws of the kept latent sites, ``(n_samples, ...)``.
    guide_params : dict
        AutoNormal ``{"loc": ..., "scale": ...}`` per site (empty for other guides).
    batch_size : int or None
        Cells per step (None: full batch).
    bytes_per_cell : int
        Measured bytes per cell (0 when the batch size was not planned).

    Examples
    --------
    >>> InferenceResult(None, {}, {}, None, 0).batch_size is None
    True
    """

    run: SVIRun
    draws: dict
    guide_params: dict
    batch_size: int | None
    bytes_per_cell: int


def autonormal_params(guide: AutoNormal) -> dict:
    """Variational location and scale of every site of a trained AutoNormal guide.

    Must run inside the parameter-store scope the guide was trained in.

    Examples
    --------
    >>> import pyro.distributions as dist
    >>> def model():
    ...     pyro.sample("a", dist.Normal(torch.tensor(0.0), 1.0))
    >>> from pyro.infer.autoguide import AutoGuideList, AutoNormal
    >>> with pyro.get_param_store().scope():
    ...     g = AutoNormal(model); _ = g()
    ...     sorted(autonormal_params(g)["a"])
    ['loc', 'scale']
    """
    out = {}
    for name, _ in guide.prototype_trace.iter_stochastic_nodes():
        loc, scale = guide._get_loc_and_scale(name)
        out[name] = {"loc": loc.detach().clone(), "scale": scale.detach().clone()}
    return out


def _autonormal_parts(guide) -> list:
    """The AutoNormal guide itself, or the AutoNormal members of an AutoGuideList."""
    if isinstance(guide, AutoNormal):
        return [guide]
    if isinstance(guide, AutoGuideList):
        return [part for part in guide if isinstance(part, AutoNormal)]
    return []


def _set_locs(guide: AutoNormal, init: dict | None, warm: dict | None) -> None:
    """Overwrite AutoNormal starting locations (constrained values) or a previous fit's loc/scale."""
    store = pyro.get_param_store()
    nodes = dict(guide.prototype_trace.iter_stochastic_nodes())
    for name, value in (init or {}).items():
        if name not in nodes:
            continue
        loc, _ = guide._get_loc_and_scale(name)
        value = torch.as_tensor(value, dtype=loc.dtype, device=loc.device)
        with torch.no_grad():
            unconstrained = biject_to(nodes[name]["fn"].support).inv(value).expand(loc.shape)
        store[guide.locs._pyro_get_fullname(name)] = unconstrained.detach().clone()
    for name, params in (warm or {}).items():
        if name not in nodes:
            raise InputError(f"warm start: the previous fit has site {name!r}, which this model lacks")
        loc, _ = guide._get_loc_and_scale(name)
        if tuple(params["loc"].shape) != tuple(loc.shape):
            raise InputError(
                f"warm start: site {name!r} has shape {tuple(params['loc'].shape)} in the previous fit but "
                f"{tuple(loc.shape)} here (different cells or features?)"
            )
        store[guide.locs._pyro_get_fullname(name)] = params["loc"].to(loc).clone()
        store[guide.scales._pyro_get_fullname(name)] = params["scale"].to(loc).clone()


def run_inference(model: Callable, n_cells: int, config: OptimConfig, *, batch_size="auto",
                  guide: Callable | None = None, init_values: dict | None = None, warm_start: dict | None = None,
                  step_kwargs: Callable | None = None, n_samples: int = 500, exclude_sites=(), seed: int = 0,
                  device=None, budget=None, validate: bool = False, desc: str = "SVI") -> InferenceResult:
    """Plan batches, fit a guide by SVI and draw latent sites, reproducibly.

    Parameters
    ----------
    model : callable
        Pyro model taking ``subsample_size=`` (and whatever ``step_kwargs`` gives).
    n_cells : int
        Size of the model's cells plate.
    config : OptimConfig
        Optimiser settings.
    batch_size : "auto", int or None
        ``"auto"`` plans from measured memory; None uses every cell each step.
    guide : None, str or callable
        ``"autonormal"`` (default), ``"structured"`` (see :mod:`~torchgenetics.dream.guides`)
        or ``guide(model) -> guide``.
    init_values : dict, optional
        Starting values (constrained) of AutoNormal locations.
    warm_start : dict, optional
        ``autonormal_params`` of a previous fit of the same model.
    step_kwargs : callable, optional
        Per-step model arguments (e.g. the gate temperature).
    n_samples : int
        Posterior draws.
    exclude_sites : sequence of str
        Latent sites not to draw (e.g. per-cell latents nobody summarises).
    seed : int
        Seed of initialisation, subsampling and draws.
    device : torch.device or str, optional
        Device for memory planning.
    budget : int or str, optional
        Memory budget (default :func:`torchgenetics.memory.available_bytes`).
    validate : bool, default False
        Pyro's distribution argument checks during the fit (data are checked up
        front; a NaN loss still raises). Off saves about a third of each step.
    desc : str
        Progress-bar label.

    Returns
    -------
    InferenceResult

    Examples
    --------
    >>> import pyro.distributions as dist
    >>> y = torch.randn(200, dtype=torch.float64) + 3
    >>> def model(subsample_size=None):
    ...     m = pyro.sample("m", dist.Normal(torch.tensor(0.0, dtype=torch.float64), 10.0))
    ...     with pyro.plate("cells", 200, subsample_size=subsample_size) as ind:
    ...         pyro.sample("y", dist.Normal(m, 1.0), obs=y[ind])
    >>> res = run_inference(model, 200, OptimConfig(n_steps=300, lr=0.1, early_stopping=False),
    ...                     batch_size=50, n_samples=100)
    >>> abs(float(res.draws["m"].mean()) - 3) < 0.3, res.batch_size
    (True, 50)
    """
    factory, takes_init = guide_factory(guide)

    def make_guide(m):
        return factory(m, init_values if takes_init else None)

    first = step_kwargs(0) if step_kwargs is not None else {}
    last = step_kwargs(config.n_steps - 1) if step_kwargs is not None else {}
    devices = [torch.device(device)] if device is not None and torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices), pyro.validation_enabled(validate):
        torch.manual_seed(int(seed))
        bytes_per_cell = 0
        if isinstance(batch_size, str):
            if batch_size != "auto":
                raise InputError(f"batch_size must be 'auto', a positive int or None, got {batch_size!r}")
            bytes_per_cell = measure_bytes_per_cell(model, make_guide, n_cells, model_kwargs=first)
            size = plan_batch_size(n_cells, bytes_per_cell, budget=budget, device=device)
        elif batch_size is None:
            size = None
        else:
            if int(batch_size) < 1:
                raise InputError(f"batch_size must be positive, got {batch_size}")
            size = None if int(batch_size) >= n_cells else int(batch_size)
        with pyro.get_param_store().scope():
            g = make_guide(model)
            g(subsample_size=size, **first)
            if warm_start and not isinstance(g, AutoNormal):
                raise InputError("warm starts need an AutoNormal guide (the default)")
            for part in _autonormal_parts(g):
                _set_locs(part, init_values, warm_start)
            run = fit_svi(model, g, config, kwargs={"subsample_size": size}, step_kwargs=step_kwargs, desc=desc)
            full = {"subsample_size": None, **last}
            keep = [name for name in latent_sites(g, full) if name not in set(exclude_sites)]
            draws = sample_posterior(g, n_samples, sites=keep, model_kwargs=full,
                                     seed=int(seed) + 1, budget=budget, device=device)
            params = autonormal_params(g) if isinstance(g, AutoNormal) else {}
    return InferenceResult(run, draws, params, size, bytes_per_cell)
