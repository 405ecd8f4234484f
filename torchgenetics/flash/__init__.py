"""flash: empirical Bayes matrix factorization (flashier's model) in torch.

``Y ~ L F^T + E`` with an EBNM prior on every column of ``L`` and ``F`` (shared
with :mod:`torchgenetics.ebnm`), fitted by variational empirical Bayes:
:func:`flash` adds factors greedily, optionally backfits them sequentially
(with flashier's extrapolation) or in parallel (all factors of a mode from one
matrix product and batched EBNM solves), and removes factors that do not help.
Missing values, given standard errors, row/column variances and intercept
factors are supported; every step is also available alone (:mod:`.steps`) and
returns a :class:`FlashFit` that warm-starts further steps and saves to HDF5.

Examples
--------
>>> import torch
>>> import torchgenetics.flash as fl
>>> g = torch.Generator().manual_seed(0)
>>> Y = torch.randn(50, 2, generator=g).double() @ torch.randn(2, 30, generator=g).double()
>>> fit = fl.flash(Y + 0.1 * torch.randn(50, 30, generator=g).double(), backfit="parallel")
>>> fit.n_factors, fit.backfit_info["method"]
(2, 'parallel')
"""

from .api import flash
from .data import FlashData
from .fit import FlashFit
from .plots import plot_elbo_trace, plot_heatmap, plot_scree
from .steps import (
    add_intercept,
    backfit,
    fix_factors,
    greedy,
    init,
    init_factors,
    nullcheck,
    remove,
)

__all__ = [
    "flash",
    "FlashFit",
    "FlashData",
    "init",
    "greedy",
    "backfit",
    "nullcheck",
    "fix_factors",
    "remove",
    "add_intercept",
    "init_factors",
    "plot_scree",
    "plot_heatmap",
    "plot_elbo_trace",
]
