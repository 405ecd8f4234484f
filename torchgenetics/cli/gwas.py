"""``torchgen gwas``: marginal (plink2 ``--glm``) or mixed-model (LOCO) association scan.

Writes ``PREFIX.<phenotype>.glm.tsv`` (``.gz`` with ``--gz``) per phenotype, with
plink2's column names, and with ``--plot`` the Manhattan and QQ plots
``PREFIX.<phenotype>.manhattan.png`` / ``.qq.png``.

With ``--distributed`` (every rank of a ``torchrun`` / ``srun`` job runs the same
command) the variant blocks of the scan are split over the ranks
(:func:`torchgenetics.distributed.gwas.gwas`; for ``--lmm``
:func:`torchgenetics.distributed.lmm.lmm_gwas`, where every rank also runs REML
and the LOCO solves as one process does, unless ``--shard-grm`` splits the GRM's
variants over the ranks); rank 0 merges the parts and writes the same tables as
one process (``--shard-grm``: equal to rounding).
"""

from __future__ import annotations

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    """Register ``torchgen gwas``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The top-level parser's subcommand registry.

    Examples
    --------
    >>> from torchgenetics.cli.main import build_parser
    >>> args = build_parser().parse_args(["gwas", "--bfile", "x", "--pheno", "p", "--out", "o"])
    >>> args.command, args.lmm
    ('gwas', False)
    """
    from torchgenetics.cli._distributed import add_distributed_argument
    from torchgenetics.cli._samples import add_run_arguments, add_sample_arguments

    parser = subparsers.add_parser(
        "gwas",
        help="association scan: linear regression (plink2 --glm) or mixed model (LOCO)",
        description="Test every variant for association with every phenotype. Default: per-variant "
                    "linear regression with covariates, identical to plink2 --glm (complete cases per "
                    "variant). --lmm: mixed-model score test with leave-one-chromosome-out GRMs, variance "
                    "components from --reml-fit (a torchgen reml PREFIX.fit.h5) or fitted here. Writes "
                    "PREFIX.<pheno>.glm.tsv per phenotype.",
    )
    add_sample_arguments(parser, "phenotype columns to test (default all)",
                         "covariate table (categorical columns dummy-coded)", several_phenotypes=True)
    lmm = parser.add_argument_group("mixed model")
    lmm.add_argument("--lmm", action="store_true", help="mixed-model score test (BOLT-LMM-inf style, LOCO)")
    lmm.add_argument("--reml-fit", metavar="FIT.h5", help="variance components from torchgen reml (implies --lmm)")
    lmm.add_argument("--no-loco", action="store_true", help="whole-genome GRM instead of leave-one-chromosome-out")
    lmm.add_argument("--n-calibration", type=int, default=30, metavar="K",
                     help="random variants for the calibration ratio (default 30)")
    lmm.add_argument("--precond-rank", type=int, default=64, metavar="R", help="PCG preconditioner rank (64)")
    lmm.add_argument("--shard-grm", action="store_true",
                     help="with --distributed: split the GRM's variants over the ranks, so that REML, the "
                          "preconditioner and the LOCO solves scale with the ranks (results equal one process "
                          "to rounding); default: those run on every rank and the tables are byte-identical")
    parser.add_argument("--plot", action="store_true", help="write Manhattan and QQ plots (PNG)")
    parser.add_argument("--gz", action="store_true", help="gzip the result tables")
    parser.add_argument("--block-size", type=int, metavar="B", help="variants per genotype block")
    add_run_arguments(parser, "seed of the calibration subset and preconditioner",
                      "progress bar over variant blocks")
    add_distributed_argument(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    """Match the inputs, run the scan for each phenotype and write the tables (and plots).

    With ``--distributed`` the variant blocks of the scan (marginal or ``--lmm``) are
    split over the ranks and rank 0 writes the merged tables.

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
    >>> main(["gwas", "--bfile", "data/x", "--pheno", "p.txt", "--out", "o"])  # doctest: +SKIP
    """
    from torchgenetics.cli._distributed import distributed_session

    lmm = args.lmm or args.reml_fit is not None
    with distributed_session(args.distributed) as distributed:
        return _run(args, distributed, lmm)


def _run(args, distributed: bool, lmm: bool) -> int:
    from torchgenetics.errors import InputError
    from torchgenetics.gwas import gwas, lmm_gwas
    from torchgenetics.gwas.inputs import association_data

    data = association_data(bfile=args.bfile, pfile=args.pfile, pheno=args.pheno, covar=args.covar,
                            pheno_names=args.pheno_name, covar_names=args.covar_name,
                            keep=args.keep, remove=args.remove)
    for name, report in data.reports.items():
        print(f"phenotype {name}: {report}")
    print(f"covariates: {', '.join(data.covariate_names)}")
    if not lmm:
        scan = gwas
        if distributed:
            from torchgenetics.distributed.gwas import gwas as scan
        result = scan(data.genotypes, data.y, data.covariates, phenotype_names=data.phenotype_names,
                      covariate_names=data.covariate_names, block_size=args.block_size,
                      device=args.device, verbose=args.verbose)
        if result is None:  # not rank 0: rank 0 merges the parts and writes the tables
            return 0
        results = [result]
    else:
        fit = None
        if args.reml_fit is not None:
            from torchgenetics.reml import REMLFit

            if len(data.phenotype_names) > 1:
                raise InputError("--reml-fit holds the variance components of one phenotype; choose it "
                                 "with --pheno-name")
            fit = REMLFit.load(args.reml_fit)
        scan, extra = lmm_gwas, {}
        if distributed:
            from torchgenetics.distributed.lmm import lmm_gwas as scan

            extra = {"shard_grm": args.shard_grm}
        results = []
        for name in data.phenotype_names:
            G, y, C = data.phenotype(name)
            res = scan(G, y, C, fit=fit, loco=not args.no_loco, phenotype_name=name,
                       covariate_names=data.covariate_names, n_calibration=args.n_calibration,
                       precond_rank=args.precond_rank, block_size=args.block_size,
                       seed=args.seed, device=args.device, verbose=args.verbose, **extra)
            if res is not None:  # None off rank 0: rank 0 merges the parts and writes the tables
                results.append(res)
        if not results:
            return 0
    written = []
    for res in results:
        print(res.summary())
        if res.method == "lmm":
            gammas = ", ".join(f"{g} {v:.4f}" for g, v in res.info["gamma"].items())
            print(f"  h2 = {res.info['h2']:.4f}; calibration gamma per kernel: {gammas}")
        written += res.write(args.out, compress=args.gz)
        if args.plot:
            from torchgenetics.plot import gwas_plots

            written += gwas_plots(res, args.out)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
