"""``torchgen sparse-reml``: large-effect variants by LASSO under the REML covariance.

Writes ``PREFIX.sparse.tsv`` (selected variants with LASSO and GLS effects),
``PREFIX.path.tsv`` (lambda path with EBIC) and ``PREFIX.sparse.h5`` (the fit).
"""

from __future__ import annotations

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    """Register ``torchgen sparse-reml``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The top-level parser's subcommand registry.

    Examples
    --------
    >>> from torchgenetics.cli.main import build_parser
    >>> args = build_parser().parse_args(["sparse-reml", "--bfile", "x", "--pheno", "p", "--out", "o"])
    >>> args.command, args.ebic_gamma
    ('sparse-reml', 0.5)
    """
    from torchgenetics.cli._samples import add_run_arguments, add_sample_arguments

    parser = subparsers.add_parser(
        "sparse-reml",
        help="sparse REML + LASSO: large-effect variants over a polygenic background",
        description="Penalized GLS: LASSO on variants screened by |Z'Py|, whitened by the REML "
                    "covariance V, lambda by EBIC, REML refitted with the selected variants as fixed "
                    "effects until the selection is stable. Writes PREFIX.sparse.tsv, PREFIX.path.tsv "
                    "and PREFIX.sparse.h5.",
    )
    add_sample_arguments(parser, "phenotype column (if the file has several)",
                         "covariate table (unpenalized fixed effects)", several_phenotypes=False)
    model = parser.add_argument_group("model")
    model.add_argument("--n-screen", type=int, default=200, metavar="K", help="variants kept by the screen (200)")
    model.add_argument("--n-lambda", type=int, default=40, metavar="L", help="penalties on the path (40)")
    model.add_argument("--lambda-min-ratio", type=float, default=0.01, metavar="R",
                       help="smallest penalty as a fraction of the largest (0.01)")
    model.add_argument("--ebic-gamma", type=float, default=0.5, metavar="G", help="EBIC gamma (0.5; 0 = BIC)")
    model.add_argument("--max-outer", type=int, default=5, metavar="N", help="REML/LASSO rounds (5)")
    model.add_argument("--max-support", type=int, default=100, metavar="N",
                       help="stop a path beyond this many selected variants (100)")
    model.add_argument("--no-whiten", action="store_true", help="plain LASSO (V = s2 I), for comparison")
    model.add_argument("--method", choices=("auto", "cg", "exact"), default="auto",
                       help="V^-1 by PCG, dense Cholesky, or by sample size (auto)")
    add_run_arguments(parser, "seed of the REML probes and preconditioner", "one line per round")
    parser.set_defaults(func=run)


def run(args) -> int:
    """Match the inputs, fit once and write the three outputs.

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
    >>> main(["sparse-reml", "--bfile", "data/x", "--pheno", "p.txt", "--out", "o"])  # doctest: +SKIP
    """
    from torchgenetics.errors import InputError
    from torchgenetics.gwas import sparse_reml
    from torchgenetics.gwas.inputs import association_data

    data = association_data(bfile=args.bfile, pfile=args.pfile, pheno=args.pheno, covar=args.covar,
                            pheno_names=None if args.pheno_name is None else [args.pheno_name],
                            covar_names=args.covar_name, keep=args.keep, remove=args.remove)
    if len(data.phenotype_names) != 1:
        raise InputError(f"{args.pheno} has phenotypes {data.phenotype_names}; choose one with --pheno-name")
    name = data.phenotype_names[0]
    print(f"phenotype {name}: {data.reports[name]}")
    G, y, C = data.phenotype(name)
    fit = sparse_reml(G, y, C, n_screen=args.n_screen, n_lambda=args.n_lambda,
                      lambda_min_ratio=args.lambda_min_ratio, ebic_gamma=args.ebic_gamma,
                      max_outer=args.max_outer, max_support=args.max_support, whiten=not args.no_whiten,
                      method=args.method, phenotype_name=name, covariate_names=data.covariate_names,
                      seed=args.seed, device=args.device, verbose=args.verbose)
    print(fit.summary())
    fit.to_frame().to_csv(f"{args.out}.sparse.tsv", sep="\t", index=False, na_rep="NA")
    fit.path_frame().to_csv(f"{args.out}.path.tsv", sep="\t", index=False, na_rep="NA")
    fit.save(f"{args.out}.sparse.h5")
    print(f"wrote {args.out}.sparse.tsv, {args.out}.path.tsv, {args.out}.sparse.h5")
    return 0
