"""Entry point of the ``torchgen`` console script.

Each subcommand lives in its own module exposing ``add_parser(subparsers)``, which
registers its arguments and sets ``func`` to the function that runs it.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from torchgenetics import __version__
from torchgenetics.errors import TorchgenError

# Subcommand modules, in the order ``torchgen --help`` lists them.
SUBCOMMANDS = ("info", "demo", "reml", "gwas", "sparse_reml", "susie", "mfsusie", "scan", "flash", "deepwas", "dream")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand registered.

    Returns
    -------
    argparse.ArgumentParser
        The top-level parser.

    Examples
    --------
    >>> parser = build_parser()
    >>> parser.parse_args(["info", "--bfile", "data/cohort"]).bfile
    'data/cohort'
    """
    parser = argparse.ArgumentParser(
        prog="torchgen",
        description="torchgen: differentiable statistical-genetics models on PLINK data.",
    )
    parser.add_argument("--version", action="version", version=f"torchgen {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"torchgenetics.cli.{name}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``torchgen`` command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name; defaults to ``sys.argv[1:]``.

    Returns
    -------
    int
        Process exit status: 0 on success, 2 on bad input.

    Examples
    --------
    >>> main(["--version"])  # doctest: +SKIP
    torchgen 0.1.0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except TorchgenError as err:
        print(f"torchgen {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
