"""DeepWAS: neural functional priors trained on the full GWAS marginal likelihood over LD.

A prior network maps each variant's annotations to its effect variance ``f_j``; the
z-scores of an LD region's scored window are ``N(0, D R_{w,:} F R_{:,w} D + sigma R_ww)``.
"""

from .data import Annotations, SumStats, window_tracks
from .datamodule import RegionDataModule
from .ldsc import LDSCObjective, ld_scores
from .likelihood import EXACT_MAX_VARIANTS, RegionLikelihood, RegionNLL
from .module import DeepWASModule, summarize_validation
from .priors import ConvPrior, LinearPrior, MLPPrior, build_prior
from .regions import Region, RegionSet, build_regions
from .simulate import DeepWASExample, nonlinear_prior, simulate_example, simulate_sumstats
from .trainer import Trainer, TrainingHistory
