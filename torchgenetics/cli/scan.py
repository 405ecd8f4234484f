"""``torchgen scan``: two-pass SuSiE scan of many regions (or LD blocks), resumable."""

from __future__ import annotations

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    """Register ``torchgen scan``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The top-level parser's subcommand registry.

    Examples
    --------
    >>> import argparse
    >>> root = argparse.ArgumentParser(); sub = root.add_subparsers(dest="command")
    >>> add_parser(sub)
    >>> root.parse_args(["scan", "--sumstats", "s", "--ld", "l.h5", "--out", "o"]).first_max_iter
    5
    """
    from torchgenetics.cli._distributed import add_distributed_argument
    from torchgenetics.cli.susie import add_fit_arguments, add_input_arguments

    parser = subparsers.add_parser(
        "scan",
        help="fine-map many regions in two passes (triage, warm-started follow-up, checkpoint)",
        description="Two-pass SuSiE scan: every region (or LD block) with a short first pass, "
                    "converged loci and loci with flat PIPs are done, the others are refitted "
                    "warm-started. A checkpoint (PREFIX.scan.h5 by default) is written after "
                    "each chunk; running the same command again resumes. Writes PREFIX.scan.tsv "
                    "(one row per locus), PREFIX.cs.tsv and PREFIX.pip.tsv (loci with signal).",
    )
    add_input_arguments(parser, many=True)
    add_fit_arguments(parser)
    scan = parser.add_argument_group("scan")
    scan.add_argument("--first-max-iter", type=int, default=5, help="first-pass iterations (5)")
    scan.add_argument("--flat-pip", type=float, default=0.5,
                      help="drop unconverged loci without CS whose PIPs are all below this (0.5)")
    scan.add_argument("--chunk-size", type=int, default=64, help="loci per batch and checkpoint (64)")
    scan.add_argument("--checkpoint", metavar="FILE",
                      help="checkpoint file (PREFIX.scan.h5; with --distributed one per rank, "
                           "PREFIX.scan.rank{r}-of-{R}.h5)")
    add_distributed_argument(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    """Run the scan, print the outcome counts and write the tables.

    With ``--distributed`` (under torchrun / srun) the loci are split over the ranks,
    each rank checkpoints its own loci, and rank 0 merges the results and writes
    the tables (the same tables as one process).

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
    >>> main(["scan", "--bfile", "x", "--pheno", "p", "--regions", "r.txt", "--out", "o"])  # doctest: +SKIP
    """
    from torchgenetics.cli._distributed import distributed_session

    with distributed_session(args.distributed) as distributed:
        return _run(args, distributed)


def _run(args, distributed: bool) -> int:
    from pathlib import Path

    from torchgenetics.cli.susie import fit_options
    from torchgenetics.susie import loci_from_files, scan

    loci, report = loci_from_files(bfile=args.bfile, pfile=args.pfile, pheno=args.pheno,
                                   pheno_name=args.pheno_name, covar=args.covar, regions=args.regions,
                                   sumstats=args.sumstats, ld=args.ld, n=args.n)
    print(report)
    checkpoint = args.checkpoint or f"{args.out}.scan.h5"
    options = dict(L=args.L, first_max_iter=args.first_max_iter, max_iter=args.max_iter,
                   flat_pip=args.flat_pip, chunk_size=args.chunk_size, verbose=True, **fit_options(args))
    if distributed:
        from torchgenetics.distributed import world_size
        from torchgenetics.distributed.scan import distributed_scan, rank_checkpoint

        world = world_size()
        first = rank_checkpoint(checkpoint, 0, world)
        if first.exists():
            print(f"resuming from {first} (and the other ranks' checkpoints)")
        print(f"{len(loci)} loci over {world} ranks")
        result = distributed_scan(loci, checkpoint=checkpoint, **options)
        checkpoint = str(first).replace(".rank0-of-", ".rank*-of-")
        if result is None:  # not rank 0: rank 0 writes the merged tables
            return 0
    else:
        if Path(checkpoint).exists():
            print(f"resuming from {checkpoint}")
        result = scan(loci, checkpoint=checkpoint, **options)
    counts = ", ".join(f"{k} {v}" for k, v in result.summary().items())
    print(f"{len(loci)} loci: {counts}")
    result.table.to_csv(f"{args.out}.scan.tsv", sep="\t", index=False, na_rep="NA")
    result.cs_frame().to_csv(f"{args.out}.cs.tsv", sep="\t", index=False, na_rep="NA")
    result.pip_frame().to_csv(f"{args.out}.pip.tsv", sep="\t", index=False, na_rep="NA")
    print(f"wrote {args.out}.scan.tsv, {args.out}.cs.tsv, {args.out}.pip.tsv ({checkpoint})")
    return 0
