"""Genotype, phenotype and sample options shared by ``gwas`` and ``sparse-reml``."""

from __future__ import annotations

__all__ = ["add_sample_arguments", "add_run_arguments"]


def add_sample_arguments(parser, pheno_name_help: str, covar_help: str, several_phenotypes: bool) -> None:
    """Add ``--bfile | --pfile``, ``--pheno``, ``--pheno-name``, ``--covar``, ``--covar-name``,
    ``--keep`` and ``--remove`` (the inputs of :func:`torchgenetics.gwas.inputs.association_data`).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        A subcommand's parser.
    pheno_name_help, covar_help : str
        Help of ``--pheno-name`` and ``--covar``.
    several_phenotypes : bool
        ``--pheno-name`` takes several names (else one).

    Examples
    --------
    >>> import argparse
    >>> p = argparse.ArgumentParser()
    >>> add_sample_arguments(p, "phenotype", "covariates", several_phenotypes=False)
    >>> p.parse_args(["--bfile", "x", "--pheno", "y.txt"]).pheno_name is None
    True
    """
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--bfile", metavar="PREFIX", help="PLINK 1 .bed/.bim/.fam prefix")
    source.add_argument("--pfile", metavar="PREFIX", help="PLINK 2 .pgen/.pvar/.psam prefix")
    parser.add_argument("--pheno", required=True, metavar="FILE", help="phenotype table (FID IID columns...)")
    parser.add_argument("--pheno-name", nargs="+" if several_phenotypes else None, metavar="NAME",
                        help=pheno_name_help)
    parser.add_argument("--covar", metavar="FILE", help=covar_help)
    parser.add_argument("--covar-name", nargs="+", metavar="NAME", help="covariate columns to use (default all)")
    parser.add_argument("--keep", metavar="FILE", help="keep only these samples (FID IID)")
    parser.add_argument("--remove", metavar="FILE", help="drop these samples (FID IID)")


def add_run_arguments(parser, seed_help: str, verbose_help: str) -> None:
    """Add ``--device``, ``--seed``, ``--verbose`` and the required ``--out PREFIX``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        A subcommand's parser.
    seed_help, verbose_help : str
        What the seed seeds and what ``--verbose`` prints.

    Examples
    --------
    >>> import argparse
    >>> p = argparse.ArgumentParser(); add_run_arguments(p, "seed", "progress")
    >>> vars(p.parse_args(["--out", "o"]))
    {'device': 'cpu', 'seed': 0, 'verbose': False, 'out': 'o'}
    """
    parser.add_argument("--device", default="cpu", metavar="cpu|cuda", help="torch device (default cpu)")
    parser.add_argument("--seed", type=int, default=0, help=seed_help)
    parser.add_argument("--verbose", action="store_true", help=verbose_help)
    parser.add_argument("--out", required=True, metavar="PREFIX", help="output prefix")
