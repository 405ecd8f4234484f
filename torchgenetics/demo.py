"""The steps ``torchgen demo`` runs on the bundled example, one function each.

Each step prints what it found; later model steps (REML, GWAS, SuSiE, ...) append
themselves to ``DEMO_STEPS``.
"""

from __future__ import annotations

import torch

from torchgenetics.deepwas.demo import demo_deepwas
from torchgenetics.gwas.demo import demo_gwas
from torchgenetics.reml.demo import demo_reml
from torchgenetics.susie.demo import demo_susie

__all__ = ["DEMO_STEPS", "demo_dataset", "demo_alignment", "demo_engine"]


def _example_genotypes():
    from torchgenetics.datasets import example
    from torchgenetics.io import read_plink

    paths = example()
    return paths, read_plink(paths.bfile)


def demo_dataset() -> None:
    """Print the summary of the bundled example's genotypes.

    Examples
    --------
    >>> demo_dataset()  # doctest: +SKIP
    """
    from torchgenetics.describe import describe

    paths, genotypes = _example_genotypes()
    print(describe(genotypes, source=paths.bfile).to_text())


def demo_alignment():
    """Match the example's phenotype and covariates to its genotypes and print the report.

    Returns
    -------
    Alignment
        The kept samples with phenotype and covariates.

    Examples
    --------
    >>> demo_alignment().n_samples  # doctest: +SKIP
    990
    """
    from torchgenetics.io import align

    paths, genotypes = _example_genotypes()
    alignment = align(genotypes, pheno=paths.pheno, covar=paths.covar)
    print(alignment)
    print(f"covariates: {', '.join(alignment.covariate_names)}")
    return alignment


def demo_engine() -> None:
    """Solve with and take the log-determinant of V = 0.5 K + 0.5 I, matrix-free and exact.

    Examples
    --------
    >>> demo_engine()  # doctest: +SKIP
    """
    from torchgenetics import linalg, operators
    from torchgenetics.io import align

    paths, genotypes = _example_genotypes()
    kept = align(genotypes, pheno=paths.pheno, covar=paths.covar)
    K = operators.GRM(kept.subset(genotypes))
    V = operators.covariance([K], variances=[0.5], residual=0.5)
    precond = linalg.ProjectedCorePreconditioner.from_kernels(
        [K], [0.5], 0.5, rank=64, generator=torch.Generator().manual_seed(0)
    )
    rhs = kept.y.reshape(-1, 1) - kept.y.mean()
    plain = linalg.block_cg(V, rhs, tol=1e-8)
    fast = linalg.block_cg(V, rhs, precond, tol=1e-8)
    slq = linalg.slq_logdet(V, num_probes=32, lanczos_steps=30, preconditioner=precond,
                            generator=torch.Generator().manual_seed(1))
    dense = V.to_dense()
    exact = torch.linalg.slogdet(dense).logabsdet
    error = torch.linalg.norm(dense @ fast.solution - rhs) / torch.linalg.norm(rhs)
    print(f"GRM n = {K.shape[0]:,}, mean diagonal {float(K.diagonal().mean()):.4f}")
    print(f"PCG iterations: {int(plain.iterations.max())} plain, "
          f"{int(fast.iterations.max())} with the projected-core preconditioner; "
          f"relative residual {float(error):.1e}")
    print(f"log|V|: SLQ {float(slq.value):.3f} +/- {float(slq.se):.3f}, exact {float(exact):.3f}")


DEMO_STEPS = [
    ("Dataset (torchgen info)", demo_dataset),
    ("Samples with phenotype and covariates", demo_alignment),
    ("Engine: matrix-free GRM, PCG and SLQ", demo_engine),
    ("Heritability: REML, one GRM and two chromosome components", demo_reml),
    ("Association: linear regression (plink2 --glm) and LOCO mixed model", demo_gwas),
    ("Fine-mapping: SuSiE on one region", demo_susie),
    ("Functional priors: DeepWAS, linear vs MLP vs LDSC-style (simulated)", demo_deepwas),
]
