"""Association tests: marginal GWAS, mixed-model GWAS (LOCO), sparse REML + LASSO.

* :func:`gwas` - per-variant linear regression, identical to plink2 ``--glm``.
* :func:`lmm_gwas` - BOLT-LMM-inf / GRAMMAR-gamma score test with leave-one-chromosome-out
  kernels, ``V^-1`` by block PCG.
* :func:`sparse_reml` - penalized GLS (LASSO under the REML covariance) with EBIC and
  outer REML refits.

Results: :class:`GWASResult` (plink2 column names, ``to_frame``/``write``/``save``/``load``)
and :class:`SparseREMLFit`. Plots: :mod:`torchgenetics.plot`.

Examples
--------
>>> from torchgenetics.datasets import simulate_genotypes, simulate_phenotype
>>> sim = simulate_genotypes(200, 40, seed=0)
>>> y = simulate_phenotype(sim, h2=0.3, causal=[5], seed=1).y
>>> res = gwas(sim.to_genotypes(), y)
>>> res.to_frame().columns[:3].tolist()
['#CHROM', 'POS', 'ID']
"""

from .covariance import LocoCovariance
from .lasso import LassoPath, ebic, lambda_grid, lasso_path, refit_rss
from .lmm import calibration_variants, lmm_gwas
from .marginal import gwas, variant_table
from .pvalues import chi2_log10_pvalue, chi2_pvalue, format_pvalue, t_log10_pvalue, t_pvalue
from .result import GWASResult
from .sparse import SparseREMLFit, sparse_reml

__all__ = [
    "gwas",
    "lmm_gwas",
    "sparse_reml",
    "GWASResult",
    "SparseREMLFit",
    "LocoCovariance",
    "LassoPath",
    "lasso_path",
    "lambda_grid",
    "ebic",
    "refit_rss",
    "calibration_variants",
    "variant_table",
    "t_pvalue",
    "t_log10_pvalue",
    "chi2_pvalue",
    "chi2_log10_pvalue",
    "format_pvalue",
]
