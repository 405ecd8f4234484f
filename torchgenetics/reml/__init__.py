"""REML heritability: multi-component, exact or matrix-free, differentiable.

``reml(y, kernels, covariates)`` fits ``V = sum_g s2_g K_g + s2_e I`` by AI-REML and
returns a :class:`REMLFit`. Kernels are torchgen operators (GRM, GRMStack components,
WeightedBlockGRM), any LinearOperator or dense matrix. The exact path (eigh /
Woodbury for one kernel, Cholesky for several) and the stochastic path (block PCG,
Hutchinson, SLQ; never an n x n matrix) share one optimizer.

Building kernels: :func:`grms_from_prefixes` (several genotype files),
:func:`grm_stack` (a component spec), :func:`smile_kernels` (SMILE W groups).
Variants: :func:`reml_merge` (z-score merge of weak components),
:func:`reml_loglik` / :func:`combine_kernels` (differentiable likelihood).

Examples
--------
>>> import torch
>>> from torchgenetics.reml import reml
>>> g = torch.Generator().manual_seed(0)
>>> Z = torch.randn(200, 100, generator=g, dtype=torch.float64)
>>> y = Z @ torch.randn(100, generator=g, dtype=torch.float64) / 10 + torch.randn(200, generator=g, dtype=torch.float64)
>>> reml(y, Z @ Z.T / 100).converged
True
"""

from .fit import REMLFit
from .kernels import (
    check_same_samples,
    grm_stack,
    grms_from_prefixes,
    read_genotypes,
    smile_kernels,
)
from .loglik import combine_kernels, reml_loglik
from .merge import Z_THRESHOLD, MergeResult, reml_merge, z_scores
from .model import METHODS, reml, resolve_method

__all__ = [
    "reml",
    "REMLFit",
    "METHODS",
    "resolve_method",
    "reml_loglik",
    "combine_kernels",
    "reml_merge",
    "MergeResult",
    "Z_THRESHOLD",
    "z_scores",
    "grms_from_prefixes",
    "grm_stack",
    "smile_kernels",
    "check_same_samples",
    "read_genotypes",
]
