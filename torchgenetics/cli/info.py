"""``torchgen info``: summarise a PLINK dataset."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    """Register ``torchgen info``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The top-level parser's subcommand registry.

    Examples
    --------
    >>> from torchgenetics.cli.main import build_parser
    >>> build_parser().parse_args(["info", "--bfile", "x"]).command
    'info'
    """
    parser = subparsers.add_parser(
        "info",
        help="summarise a genotype dataset (samples, variants, missingness, MAF)",
        description="Summarise a PLINK dataset: samples, variants, missingness, MAF histogram.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--bfile", metavar="PREFIX", help="PLINK 1 .bed/.bim/.fam prefix")
    source.add_argument("--pfile", metavar="PREFIX", help="PLINK 2 .pgen/.pvar/.psam prefix")
    parser.set_defaults(func=run)


def run(args) -> int:
    """Print the dataset summary.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments with ``bfile`` or ``pfile``.

    Returns
    -------
    int
        Exit status 0.

    Examples
    --------
    >>> from torchgenetics.cli.main import main
    >>> main(["info", "--bfile", tg_example().bfile])  # doctest: +SKIP
    """
    from torchgenetics.describe import describe
    from torchgenetics.io import read_pgen, read_plink

    if args.bfile:
        genotypes, source = read_plink(args.bfile), args.bfile
    else:
        genotypes, source = read_pgen(args.pfile), args.pfile
    print(describe(genotypes, source=source).to_text())
    return 0
