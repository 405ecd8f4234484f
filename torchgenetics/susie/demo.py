"""The fine-mapping step of ``torchgen demo``: SuSiE on one region of the bundled example."""

from __future__ import annotations

__all__ = ["DEMO_REGION", "demo_susie"]

#: Region of the example fine-mapped by the demo (chromosome 1, 122 variants).
DEMO_REGION = "1:22000000-24000000"


def demo_susie(region: str = DEMO_REGION):
    """Fine-map a region of the bundled example and print its credible sets against the truth.

    The phenotype and the genotypes are residualised on the example's covariates,
    SuSiE (L = 10) is fitted, and each credible set is listed with its coverage,
    purity and members (simulated causal variants marked).

    Parameters
    ----------
    region : str
        ``chrom:start-end`` of the example to fine-map.

    Returns
    -------
    SusieFit
        The fit.

    Examples
    --------
    >>> fit = demo_susie()  # doctest: +SKIP
    """
    from torchgenetics.datasets import example

    from .loci import loci_from_files

    ex = example()
    loci, _ = loci_from_files(bfile=ex.bfile, pheno=ex.pheno, covar=ex.covar, regions=[region])
    locus = loci[0]
    fit = locus.fit(L=10)
    truth = ex.load_truth()
    effects = dict(zip(truth["causal_ids"], truth["effects_standardized"], strict=True))
    ids = locus.variants["id"].tolist()
    n = locus.load()["y"].shape[0]
    print(f"region {region}: {locus.n_variables} variants, {n} samples, covariates regressed out")
    print(f"IBSS: {fit.n_iter} iterations, {'converged' if fit.converged else 'NOT converged'}, "
          f"{len(fit.sets['cs'])} credible set(s) at coverage {fit.sets['requested_coverage']}")
    for row in fit.summary().itertuples():
        members = ", ".join(
            f"{v} (PIP {float(fit.pip[ids.index(v)]):.2f}{', causal' if v in effects else ''})"
            for v in row.variables.split(","))
        print(f"  {row.cs}: coverage {row.coverage:.3f}, min |r| {row.min_abs_corr:.2f}: {members}")
    causal = sorted((v for v in ids if v in effects), key=lambda v: -abs(effects[v]))
    in_cs = {ids[j] for idx in fit.sets["cs"] for j in idx.tolist()}
    largest = f" (largest: {causal[0]}, effect {effects[causal[0]]:+.3f})" if causal else ""
    print(f"{len(causal)} simulated causal variant(s) in the region{largest}; "
          f"{sum(v in in_cs for v in causal)} of them in a credible set")
    return fit
