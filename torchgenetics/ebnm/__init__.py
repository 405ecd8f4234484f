"""Empirical Bayes normal means (EBNM), batched in torch: the priors flash and functional SuSiE share.

Given ``x_i ~ N(theta_i, s_i^2)`` and ``theta_i ~ g``, :func:`ebnm` fits ``g`` in a
family by maximum marginal likelihood and returns the posterior mean, second
moment, lfsr, the fitted ``g``, the log marginal likelihood and ``KL(q || g)``.
A 2-D ``x`` solves many problems at once (one prior per row), on CPU or CUDA.

Families (as in the R package ebnm): ``point_normal``, ``point_laplace``,
``point_exponential``, ``normal``, ``normal_scale_mixture`` (ebnm's default grid,
weights by the batched mix-SQP solver :func:`mixsqp`) and ``unimodal_symmetric``.

Examples
--------
>>> import torch
>>> from torchgenetics.ebnm import ebnm
>>> res = ebnm(torch.tensor([0.1, -0.3, 6.0, 0.2]), 1.0, "point_laplace")
>>> res.posterior_mean.shape, res.prior.family
(torch.Size([4]), 'point_laplace')
"""

from .api import ebnm, solve
from .families import (
    FAMILIES,
    Family,
    Normal,
    NormalScaleMixture,
    PointExponential,
    PointLaplace,
    PointNormal,
    UnimodalSymmetric,
    get_family,
)
from .grids import ashr_scale_grid, smn_grid_multiplier, smn_kl_bound, smn_scale_grid
from .mixsqp import MixSQPResult, mixsqp, mixture_objective
from .normal_means import normal_means_loglik
from .priors import (
    NormalMixturePrior,
    NormalPrior,
    PointExponentialPrior,
    PointLaplacePrior,
    PointNormalPrior,
    Prior,
    UniformMixturePrior,
    concat_priors,
    prior_from_dict,
)
from .result import EBNMResult

__all__ = [
    "ebnm",
    "solve",
    "EBNMResult",
    "Family",
    "FAMILIES",
    "get_family",
    "PointNormal",
    "PointLaplace",
    "PointExponential",
    "Normal",
    "NormalScaleMixture",
    "UnimodalSymmetric",
    "Prior",
    "PointNormalPrior",
    "PointLaplacePrior",
    "PointExponentialPrior",
    "NormalPrior",
    "NormalMixturePrior",
    "UniformMixturePrior",
    "prior_from_dict",
    "concat_priors",
    "mixsqp",
    "MixSQPResult",
    "mixture_objective",
    "smn_scale_grid",
    "ashr_scale_grid",
    "smn_grid_multiplier",
    "smn_kl_bound",
    "normal_means_loglik",
]
