"""The GWAS step of ``torchgen demo``: marginal and mixed-model scans of the bundled example."""

from __future__ import annotations

import numpy as np

__all__ = ["demo_gwas"]


def demo_gwas():
    """Scan the example phenotype by linear regression and by the LOCO mixed model.

    Prints each scan's summary and the mean chi-square at the 300 simulated causal
    variants, where the mixed model's conditioning on the polygenic background
    shows as extra power.

    Returns
    -------
    GWASResult
        The mixed-model scan.

    Examples
    --------
    >>> demo_gwas().method  # doctest: +SKIP
    'lmm'
    """
    from torchgenetics.datasets import example

    from .inputs import association_data
    from .lmm import lmm_gwas
    from .marginal import gwas

    paths = example()
    data = association_data(bfile=paths.bfile, pheno=paths.pheno, covar=paths.covar)
    linear = gwas(data.genotypes, data.y, data.covariates, phenotype_names=data.phenotype_names,
                  covariate_names=data.covariate_names)
    G, y, C = data.phenotype("pheno")
    mixed = lmm_gwas(G, y, C, phenotype_name="pheno", covariate_names=data.covariate_names)
    causal = np.asarray(paths.load_truth()["causal_indices"], dtype=np.int64)
    print(linear.summary())
    print(mixed.summary())
    print(f"  mixed model: h2 = {mixed.info['h2']:.3f}, calibration gamma "
          + ", ".join(f"chr{g} {v:.3f}" for g, v in mixed.info["gamma"].items()))
    print(f"mean chi-square at the {causal.size} causal variants: linear "
          f"{np.nanmean(linear.stat[causal, 0] ** 2):.3f}, mixed model {np.nanmean(mixed.stat[causal, 0]):.3f}")
    return mixed
