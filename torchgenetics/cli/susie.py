"""``torchgen susie``: fine-map one region (genotypes) or one LD matrix (summary statistics)."""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "add_input_arguments", "add_fit_arguments", "fit_options", "run"]


def add_input_arguments(parser: argparse.ArgumentParser, many: bool) -> None:
    """Input options shared by ``torchgen susie`` and ``torchgen scan``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser.
    many : bool
        Regions from a file (``--regions``, scan) instead of one ``--region``.

    Examples
    --------
    >>> p = argparse.ArgumentParser(); add_input_arguments(p, many=False)
    >>> p.parse_args(["--bfile", "x", "--pheno", "y", "--region", "1:1-9"]).region
    '1:1-9'
    """
    geno = parser.add_argument_group("genotype input")
    source = geno.add_mutually_exclusive_group()
    source.add_argument("--bfile", metavar="PREFIX", help="PLINK 1 .bed/.bim/.fam prefix")
    source.add_argument("--pfile", metavar="PREFIX", help="PLINK 2 .pgen/.pvar/.psam prefix")
    geno.add_argument("--pheno", metavar="FILE", help="phenotype table (FID IID columns...)")
    geno.add_argument("--pheno-name", metavar="NAME", help="phenotype column (if several)")
    geno.add_argument("--covar", metavar="FILE",
                      help="covariate table; y and genotypes are residualised on it")
    if many:
        geno.add_argument("--regions", metavar="FILE",
                          help="regions file: chrom:start-end per line, or a chrom/start/end table")
    else:
        geno.add_argument("--region", metavar="CHR:START-END", help="region to fine-map (inclusive)")
    summ = parser.add_argument_group("summary-statistic input")
    summ.add_argument("--sumstats", metavar="FILE", help="table with variant id and z (or beta and se)")
    summ.add_argument("--ld", metavar="LD.h5", help="LD matrix saved by BlockLD/BandedLD.save")
    summ.add_argument("--n", type=int, metavar="N", help="GWAS sample size (default: median of an n column)")


def add_fit_arguments(parser: argparse.ArgumentParser) -> None:
    """SuSiE options shared by ``torchgen susie`` and ``torchgen scan``.

    Examples
    --------
    >>> p = argparse.ArgumentParser(); add_fit_arguments(p)
    >>> p.parse_args(["--L", "5", "--out", "o"]).L
    5
    """
    fit = parser.add_argument_group("model")
    fit.add_argument("--L", type=int, default=10, help="maximum number of effects (default 10)")
    fit.add_argument("--coverage", type=float, default=0.95, help="credible-set coverage (0.95)")
    fit.add_argument("--min-abs-corr", type=float, default=0.5, help="credible-set purity (0.5)")
    fit.add_argument("--estimate-prior-method", choices=("optim", "EM", "simple"), default="optim")
    fit.add_argument("--max-iter", type=int, default=100, help="IBSS iterations (100)")
    fit.add_argument("--tol", type=float, default=1e-4, help="ELBO tolerance (1e-4)")
    fit.add_argument("--seed", type=int, default=0, help="seed of the purity subsample")
    parser.add_argument("--out", required=True, metavar="PREFIX", help="output prefix")


def fit_options(args) -> dict:
    """SuSiE keyword options from parsed arguments.

    Examples
    --------
    >>> fit_options(argparse.Namespace(coverage=0.9, min_abs_corr=0.5, estimate_prior_method="EM",
    ...                                tol=1e-4, seed=0))["coverage"]
    0.9
    """
    return {"coverage": args.coverage, "min_abs_corr": args.min_abs_corr,
            "estimate_prior_method": args.estimate_prior_method, "tol": args.tol, "seed": args.seed}


def add_parser(subparsers) -> None:
    """Register ``torchgen susie``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The top-level parser's subcommand registry.

    Examples
    --------
    >>> root = argparse.ArgumentParser(); sub = root.add_subparsers(dest="command")
    >>> add_parser(sub)
    >>> root.parse_args(["susie", "--bfile", "x", "--pheno", "p", "--region", "1:1-2", "--out", "o"]).L
    10
    """
    parser = subparsers.add_parser(
        "susie",
        help="fine-map one region with SuSiE (genotypes or summary statistics)",
        description="Fine-map one region with SuSiE: --bfile/--pfile with --pheno and --region "
                    "(covariates regressed out), or --sumstats with --ld. Writes PREFIX.susie.tsv "
                    "(per variant: PIP, credible set, lbf, posterior mean and sd), PREFIX.cs.tsv "
                    "(credible sets: variants, coverage, purity) and PREFIX.fit.h5.",
    )
    add_input_arguments(parser, many=False)
    add_fit_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    """Fine-map, print the credible sets and write the three outputs.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments.

    Returns
    -------
    int
        Exit status 0.

    Examples
    --------
    >>> from torchgenetics.cli.main import main
    >>> main(["susie", "--bfile", "data/x", "--pheno", "p", "--region", "1:1-9", "--out", "o"])  # doctest: +SKIP
    """
    from torchgenetics.errors import InputError
    from torchgenetics.susie import loci_from_files

    loci, report = loci_from_files(bfile=args.bfile, pfile=args.pfile, pheno=args.pheno,
                                   pheno_name=args.pheno_name, covar=args.covar, regions=args.region,
                                   sumstats=args.sumstats, ld=args.ld, n=args.n)
    if len(loci) != 1:
        raise InputError(f"torchgen susie fine-maps one locus, the input gives {len(loci)}; "
                         "use torchgen scan for several")
    locus = loci[0]
    fit = locus.fit(L=min(args.L, locus.n_variables), max_iter=args.max_iter, **fit_options(args))
    print(report)
    print(f"locus {locus.name}: {locus.n_variables} variants; {fit!r}")
    sets = fit.summary()
    for row in sets.itertuples():
        print(f"  {row.cs}: {row.size} variant(s), coverage {row.coverage:.3f}, min |r| "
              f"{row.min_abs_corr:.3f}, lead {row.lead_variable} (PIP {row.lead_pip:.3f})")
    locus.annotate(fit).to_csv(f"{args.out}.susie.tsv", sep="\t", index=False, na_rep="NA")
    sets.to_csv(f"{args.out}.cs.tsv", sep="\t", index=False, na_rep="NA")
    fit.save(f"{args.out}.fit.h5")
    print(f"wrote {args.out}.susie.tsv, {args.out}.cs.tsv, {args.out}.fit.h5")
    return 0
