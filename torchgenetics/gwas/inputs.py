"""Genotypes, phenotypes and covariates of an association run, matched from files.

Each phenotype column is matched to the genotypes with :func:`torchgenetics.io.align`
(so its samples are exactly those a ``torchgen reml`` run on that phenotype keeps);
the union of the kept samples carries an ``n x k`` phenotype matrix with NaN where a
phenotype is missing, which :func:`~torchgenetics.gwas.gwas` tests in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError

__all__ = ["AssociationData", "association_data"]


@dataclass
class AssociationData:
    """Matched inputs of an association run.

    Attributes
    ----------
    genotypes : Genotypes
        Restricted to the samples kept for at least one phenotype.
    y : numpy.ndarray
        ``n x k`` phenotypes, NaN where a sample is not used for that phenotype.
    phenotype_names : list of str
    covariates : torch.Tensor
        ``n x p`` covariates, intercept first.
    covariate_names : list of str
    reports : dict
        Phenotype -> :class:`~torchgenetics.io.AlignmentReport`.

    Examples
    --------
    >>> from torchgenetics.datasets import example
    >>> ex = example()
    >>> data = association_data(bfile=ex.bfile, pheno=ex.pheno, covar=ex.covar)
    >>> data.y.shape, data.covariate_names[0]
    ((990, 1), 'intercept')
    """

    genotypes: object
    y: np.ndarray
    phenotype_names: list
    covariates: torch.Tensor
    covariate_names: list
    reports: dict

    def phenotype(self, name) -> tuple:
        """Genotypes, phenotype and covariates of the samples with phenotype ``name``.

        Returns
        -------
        tuple
            ``(genotypes, y (n_j,), covariates (n_j, p))``.

        Examples
        --------
        >>> from torchgenetics.datasets import example
        >>> ex = example()
        >>> G, y, C = association_data(bfile=ex.bfile, pheno=ex.pheno).phenotype("pheno")
        >>> G.n_samples == y.shape[0] == C.shape[0]
        True
        """
        if name not in self.phenotype_names:
            raise InputError(f"unknown phenotype {name!r}; loaded {self.phenotype_names}")
        column = self.y[:, self.phenotype_names.index(name)]
        rows = np.flatnonzero(~np.isnan(column))
        if rows.size == column.size:
            return self.genotypes, column, self.covariates
        return self.genotypes.subset(samples=rows), column[rows], self.covariates[torch.as_tensor(rows)]


def association_data(bfile=None, pfile=None, pheno=None, covar=None, *, pheno_names=None,
                     covar_names=None, keep=None, remove=None) -> AssociationData:
    """Read genotypes and match every phenotype (and the covariates) to them.

    Parameters
    ----------
    bfile, pfile : str, optional
        PLINK 1 or PLINK 2 prefix (exactly one).
    pheno : str
        Phenotype table (``FID IID`` then one column per phenotype).
    covar : str, optional
        Covariate table (categorical columns dummy-coded by :func:`~torchgenetics.io.read_table`).
    pheno_names : list of str, optional
        Phenotype columns to use (default all).
    covar_names : list of str, optional
        Covariate columns to use (default all).
    keep, remove : str, optional
        Sample lists.

    Returns
    -------
    AssociationData

    Raises
    ------
    InputError
        Neither or both of ``bfile``/``pfile``, or no ``pheno``.

    Examples
    --------
    See :class:`AssociationData`.
    """
    from ..io import align, read_pgen, read_plink, read_table

    if (bfile is None) == (pfile is None):
        raise InputError("give exactly one genotype input: bfile (PLINK 1) or pfile (PLINK 2)")
    if pheno is None:
        raise InputError("a phenotype file is needed")
    genotypes = read_plink(bfile) if bfile is not None else read_pgen(pfile)
    names = list(pheno_names) if pheno_names else [str(c) for c in read_table(pheno).columns]
    aligned = [align(genotypes, pheno=pheno, covar=covar, keep=keep, remove=remove,
                     pheno_column=name, covar_columns=covar_names) for name in names]
    kept = np.unique(np.concatenate([a.sample_index for a in aligned]))
    y = np.full((kept.size, len(names)), np.nan)
    first = aligned[0]
    covariates = torch.zeros(kept.size, first.covariates.shape[1], dtype=first.covariates.dtype)
    for j, a in enumerate(aligned):
        rows = np.searchsorted(kept, a.sample_index)
        y[rows, j] = a.y.cpu().numpy()
        if a.covariate_names != first.covariate_names:
            raise InputError(f"covariates differ between phenotypes {names[0]!r} ({first.covariate_names}) "
                             f"and {names[j]!r} ({a.covariate_names}): a covariate is constant among the "
                             "samples of one of them; run them separately")
        covariates[torch.as_tensor(rows)] = a.covariates.cpu()
    subset = genotypes if kept.size == genotypes.n_samples else genotypes.subset(samples=kept)
    return AssociationData(genotypes=subset, y=y, phenotype_names=names, covariates=covariates,
                           covariate_names=list(first.covariate_names),
                           reports={name: a.report for name, a in zip(names, aligned, strict=True)})
