"""DeepWAS: neural functional priors trained on the full GWAS marginal likelihood over LD.

A prior network maps each variant's annotations to its effect variance ``f_j``; the
z-scores of an LD region's scored window ``w`` are

    z_w ~ N(0, D R_{w,:} F R_{:,w} D + sigma R_ww),   F = diag(f),  D = diag(sqrt(N_w)).

* data: :class:`SumStats`, :class:`Annotations` (matrix or windowed tracks),
  :func:`build_regions` (regions from BlockLD / BandedLD), :class:`RegionDataModule`;
* likelihood: :class:`RegionLikelihood` (exact whitened Cholesky, or iterative PCG + SLQ
  with an unbiased gradient), :class:`LDSCObjective` (the LDSC-style baseline);
* priors: :class:`LinearPrior`, :class:`MLPPrior`, :class:`ConvPrior`, or any ``nn.Module``;
* training: :class:`DeepWASModule` + :class:`Trainer` (or Lightning through
  :mod:`torchgenetics.deepwas.lightning`), one call: :func:`fit_deepwas` -> :class:`DeepWASFit`;
* simulation: :func:`simulate_sumstats`, :func:`simulate_example`.

Examples
--------
>>> from torchgenetics import deepwas
>>> ex = deepwas.simulate_example(n_variants=400, n_reference=300, block_size=100, chromosomes=2, seed=0)
>>> fit = deepwas.fit_deepwas(ex.sumstats, ex.annotations, ex.ld,
...                           {"prior": {"kind": "mlp", "hidden": [8]}, "training": {"epochs": 10},
...                            "data": {"batch_size": 1, "val_chromosomes": ["2"]}})
>>> fit.metrics["val"]["delta"] < 0          # held-out NLL below the F -> 0 null
True
>>> fit.predict(ex.annotations).shape[0]
400
"""

from .config import DeepWASConfig
from .data import Annotations, SumStats, read_ld, window_tracks
from .datamodule import RegionDataModule
from .fit import DeepWASFit, fit_deepwas
from .ldsc import LDSCObjective, ld_scores
from .likelihood import BANDED_EXACT_MAX, EXACT_MAX_VARIANTS, RegionLikelihood, RegionNLL
from .module import DeepWASModule, summarize_validation
from .predict import predict_variance, write_predictions
from .priors import ConvPrior, LinearPrior, MLPPrior, build_prior
from .regions import Region, RegionSet, build_regions
from .simulate import (
    DeepWASExample,
    SimulatedSumstats,
    nonlinear_prior,
    simulate_example,
    simulate_sumstats,
)
from .trainer import Trainer, TrainingHistory

__all__ = [
    "SumStats",
    "Annotations",
    "window_tracks",
    "read_ld",
    "Region",
    "RegionSet",
    "build_regions",
    "RegionDataModule",
    "RegionLikelihood",
    "RegionNLL",
    "EXACT_MAX_VARIANTS",
    "BANDED_EXACT_MAX",
    "LDSCObjective",
    "ld_scores",
    "LinearPrior",
    "MLPPrior",
    "ConvPrior",
    "build_prior",
    "DeepWASModule",
    "summarize_validation",
    "Trainer",
    "TrainingHistory",
    "DeepWASConfig",
    "DeepWASFit",
    "fit_deepwas",
    "predict_variance",
    "write_predictions",
    "simulate_sumstats",
    "simulate_example",
    "nonlinear_prior",
    "SimulatedSumstats",
    "DeepWASExample",
]
