"""``torchgen demo``: run the library's main jobs on the bundled example dataset."""

from __future__ import annotations

import time


def add_parser(subparsers) -> None:
    """Register ``torchgen demo``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The top-level parser's subcommand registry.

    Examples
    --------
    >>> from torchgenetics.cli.main import build_parser
    >>> build_parser().parse_args(["demo"]).command
    'demo'
    """
    parser = subparsers.add_parser(
        "demo",
        help="run the main jobs on the bundled example dataset",
        description="Run each torchgen step on the bundled example (1,000 samples x 5,000 SNPs).",
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    """Run every demo step in order, printing what each found.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments (none are used).

    Returns
    -------
    int
        Exit status 0.

    Examples
    --------
    >>> from torchgenetics.cli.main import main
    >>> main(["demo"])  # doctest: +SKIP
    """
    from torchgenetics.demo import DEMO_STEPS

    for title, step in DEMO_STEPS:
        print(f"\n== {title}")
        start = time.perf_counter()
        step()
        print(f"   ({time.perf_counter() - start:.2f} s)")
    return 0
