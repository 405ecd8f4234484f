"""SuSiE fine-mapping (Sum of Single Effects regression) in PyTorch.

Same model, defaults and answers as susieR: :func:`susie` for individual data,
:func:`susie_ss` for sufficient statistics and :func:`susie_rss` for z-scores with
an LD matrix that may be any ``linear_operator.LinearOperator``. Results are
:class:`SusieFit` objects (susieR's field names) that warm-start new fits
(``init=fit``) and save to HDF5.

Genome scans: :func:`susie_batch` fits many loci as one batched program (each
fit equal to the one-locus fit), :func:`scan` runs the two-pass scan with triage,
warm-started follow-up and a resumable checkpoint, on loci from
:func:`loci_from_regions` (genotypes, covariates regressed out by
:func:`residualize`) or :func:`loci_from_sumstats` (z-scores and LD blocks).
:func:`susie_plot` and :func:`elbo_plot` draw a fit.

Examples
--------
>>> import torch
>>> from torchgenetics.susie import susie
>>> g = torch.Generator().manual_seed(0)
>>> X = torch.randn(150, 30, generator=g, dtype=torch.float64)
>>> y = X[:, 5] + torch.randn(150, generator=g, dtype=torch.float64)
>>> fit = susie(X, y, L=5)
>>> fit.sets["cs"][0].tolist()
[5]
"""

from .api import susie, susie_rss, susie_ss
from .batch import susie_batch
from .covariates import residualize
from .fit import SusieFit
from .functional import MfsusieFit, fsusie, load_mfsusie, mfsusie
from .loci import (
    Locus,
    loci_from_files,
    loci_from_regions,
    loci_from_sumstats,
    parse_regions,
    read_regions,
    read_sumstats,
)
from .plots import elbo_plot, susie_plot
from .scan import ScanResult, load_scan, scan
from .ser import SERResult, single_effect_regression
from .sets import credible_sets, pip

__all__ = [
    "susie",
    "susie_ss",
    "susie_rss",
    "susie_batch",
    "mfsusie",
    "fsusie",
    "MfsusieFit",
    "load_mfsusie",
    "scan",
    "load_scan",
    "ScanResult",
    "Locus",
    "loci_from_regions",
    "loci_from_sumstats",
    "loci_from_files",
    "parse_regions",
    "read_regions",
    "read_sumstats",
    "residualize",
    "susie_plot",
    "elbo_plot",
    "SusieFit",
    "SERResult",
    "single_effect_regression",
    "credible_sets",
    "pip",
]
