"""Functional and multi-outcome SuSiE (mfsusieR's model) in PyTorch.

:func:`mfsusie` fine-maps M outcomes at once, each a curve over positions (an
n x T_m matrix: coverage, methylation, an expression curve) or a scalar: one set of
L single effects is shared by all outcomes, and each effect's curve is modelled
in the wavelet domain (:func:`dwt`) with per-coefficient priors fitted by
empirical Bayes. :func:`fsusie` is the one-outcome case. Results are
:class:`MfsusieFit` objects with susie's PIPs and credible sets, effect curves
with pointwise credible bands, warm starts (``init=fit``) and HDF5 storage
(:func:`load_mfsusie`). Functional loci run in :func:`torchgenetics.susie.scan`.

Examples
--------
>>> import torch
>>> from torchgenetics.susie.functional import mfsusie
>>> g = torch.Generator().manual_seed(0)
>>> X = torch.randn(100, 12, generator=g, dtype=torch.float64)
>>> Y = X[:, [3]] * torch.ones(8, dtype=torch.float64) + torch.randn(100, 8, generator=g, dtype=torch.float64)
>>> mfsusie(X, [Y], L=3).sets["cs"][0].tolist()
[3]
"""

from .api import fsusie, mfsusie
from .fit import MfsusieFit, load_mfsusie
from .grid import to_grid
from .wavelets import dwt, idwt, scale_index, wavelet_matrix

__all__ = [
    "mfsusie",
    "fsusie",
    "MfsusieFit",
    "load_mfsusie",
    "dwt",
    "idwt",
    "wavelet_matrix",
    "scale_index",
    "to_grid",
]
