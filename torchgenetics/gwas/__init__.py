"""Association tests: marginal GWAS, mixed-model GWAS, sparse REML + LASSO.

Examples
--------
>>> from torchgenetics.gwas import gwas
"""

from .marginal import gwas, variant_table
from .pvalues import chi2_log10_pvalue, chi2_pvalue, format_pvalue, t_log10_pvalue, t_pvalue
from .result import GWASResult

__all__ = [
    "gwas",
    "variant_table",
    "GWASResult",
    "t_pvalue",
    "t_log10_pvalue",
    "chi2_pvalue",
    "chi2_log10_pvalue",
    "format_pvalue",
]
