"""Variational guides of the bayesDREAM models.

* ``"autonormal"`` (default): Pyro's :class:`~pyro.infer.autoguide.AutoNormal`,
  mean-field, scales to any number of cells and features and supports
  subsampled local latents (the cis model's per-cell x_true).
* ``"structured"``: Pyro's :class:`~pyro.infer.autoguide.AutoStructured` with a
  full covariance *within* each feature (per-feature linear shears between the
  curve parameters, e.g. ``K`` and ``n`` and ``A``) and independence across
  features. Mean-field intervals of correlated curve parameters are too narrow;
  this guide restores most of their coverage at memory ``O(features x pairs)``.
  Gates and global sites stay mean-field. For models without per-cell latents
  (trans, technical).
"""

from __future__ import annotations

from typing import Callable

import torch
from pyro import poutine
from pyro.distributions.transforms import biject_to
from pyro.infer.autoguide import (
    AutoGuideList,
    AutoNormal,
    AutoStructured,
    init_to_median,
    init_to_value,
)
from pyro.poutine.util import site_is_subsample

from ..errors import InputError

__all__ = ["GUIDES", "FeatureShear", "default_guide", "structured_guide", "guide_factory"]

GUIDES = ("autonormal", "structured")


def default_guide(model: Callable, init_values: dict | None = None) -> AutoNormal:
    """AutoNormal guide started at prior medians with small scales.

    Starting values are applied after the guide's first call (they may be full-size
    values of subsampled local sites), see :func:`~torchgenetics.dream.inference.run_inference`.

    Examples
    --------
    >>> import pyro, pyro.distributions as dist
    >>> type(default_guide(lambda: pyro.sample("a", dist.Normal(0.0, 1.0)))).__name__
    'AutoNormal'
    """
    return AutoNormal(model, init_loc_fn=init_to_median(num_samples=15), init_scale=0.05)


class FeatureShear(torch.nn.Module):
    """Per-feature linear map between two per-feature sites' flattened perturbations.

    ``out[..., f, :] = W[f] @ x[..., f, :]`` with ``W`` of shape
    ``(features, out_width, in_width)``, started at zero (independence).

    Parameters
    ----------
    n_features : int
        Features (the plate size).
    in_width, out_width : int
        Unconstrained values per feature of the upstream and downstream sites.
    dtype : torch.dtype
        Weight dtype.

    Examples
    --------
    >>> shear = FeatureShear(3, 1, 2)
    >>> shear(torch.ones(3, dtype=torch.float64)).shape
    torch.Size([6])
    """

    def __init__(self, n_features: int, in_width: int, out_width: int, dtype=torch.float64, device=None):
        super().__init__()
        self.n_features, self.in_width, self.out_width = int(n_features), int(in_width), int(out_width)
        self.weight = torch.nn.Parameter(torch.zeros(n_features, out_width, in_width, dtype=dtype, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[:-1] + (self.n_features, self.in_width))
        out = torch.einsum("fou,...fu->...fo", self.weight, x)
        return out.reshape(out.shape[:-2] + (self.n_features * self.out_width,))


def structured_guide(model: Callable, init_values: dict | None = None, *, plate: str = "features",
                     local_plate: str = "cells", mean_field: tuple = ("gate",), model_kwargs: dict | None = None):
    """AutoStructured guide with a full covariance within each feature.

    Every latent site inside the ``plate`` plate depends on the earlier ones of the
    same feature through a :class:`FeatureShear`; sites whose names start with one
    of ``mean_field`` and other global sites are independent normals. Per-cell
    sites (inside ``local_plate``, possibly subsampled) get their own
    :class:`~pyro.infer.autoguide.AutoNormal` in an
    :class:`~pyro.infer.autoguide.AutoGuideList`.

    Parameters
    ----------
    model : callable
        Pyro model taking ``subsample_size=`` (traced once on 2 cells).
    init_values : dict, optional
        Starting values (constrained) of sites; others start at prior medians.
    plate : str
        Name of the per-feature plate.
    mean_field : tuple of str
        Name prefixes of sites kept independent.
    model_kwargs : dict, optional
        Extra arguments for tracing the model.

    Returns
    -------
    pyro.infer.autoguide.AutoStructured or AutoGuideList

    Examples
    --------
    >>> import pyro, pyro.distributions as dist
    >>> def model(subsample_size=None):
    ...     with pyro.plate("features", 4):
    ...         a = pyro.sample("a", dist.Normal(torch.zeros(4, dtype=torch.float64), 1.0))
    ...         pyro.sample("b", dist.Normal(a, 1.0))
    >>> g = structured_guide(model)
    >>> sorted(g.dependencies["b"])
    ['a']
    """
    kwargs = {"subsample_size": 2, **(model_kwargs or {})}
    trace = poutine.block(poutine.trace(model).get_trace)(**kwargs)
    sites = [(name, site) for name, site in trace.iter_stochastic_nodes() if not site_is_subsample(site)]
    local = [name for name, site in sites if any(f.name == local_plate for f in site["cond_indep_stack"])]
    sites = [(name, site) for name, site in sites if name not in local]
    chain = []
    for name, site in sites:
        frames = [f for f in site["cond_indep_stack"] if f.name == plate]
        if not frames or name.startswith(tuple(mean_field)):
            continue
        unconstrained = biject_to(site["fn"].support).inv(site["value"].detach())
        n_features = frames[0].size
        chain.append((name, unconstrained.numel() // n_features, n_features, unconstrained))
    dependencies = {
        down: {up: FeatureShear(n, up_width, down_width, dtype=value.dtype, device=value.device)
               for up, up_width, _, _ in chain[:i]}
        for i, (down, down_width, n, value) in enumerate(chain)
    }
    init = init_to_median(num_samples=15)
    if init_values:
        init = init_to_value(values={k: v for k, v in init_values.items() if k not in local}, fallback=init)
    body = poutine.block(model, hide=local) if local else model
    structured = AutoStructured(body, conditionals={name: "normal" for name, _ in sites}, dependencies=dependencies,
                                init_loc_fn=init, init_scale=0.05)
    if not local:
        return structured
    guide = AutoGuideList(model)
    guide.append(structured)
    guide.append(default_guide(poutine.block(model, expose=local)))
    return guide


def guide_factory(guide) -> tuple[Callable, bool]:
    """A ``(model, init_values) -> guide`` factory from a name or a user callable.

    Parameters
    ----------
    guide : None, str or callable
        None or ``"autonormal"``, ``"structured"``, or ``guide(model) -> guide``.

    Returns
    -------
    factory : callable
    takes_init : bool
        Whether the factory applies starting values itself.

    Examples
    --------
    >>> guide_factory("structured")[0] is structured_guide
    True
    """
    if guide is None or guide == "autonormal":
        return default_guide, False
    if guide == "structured":
        return structured_guide, True
    if isinstance(guide, str):
        raise InputError(f"unknown guide {guide!r}; choose from {GUIDES} or pass guide(model) -> guide")
    if not callable(guide):
        raise InputError(f"guide must be a name or a callable, got {type(guide).__name__}")
    return (lambda model, init_values=None: guide(model)), False
