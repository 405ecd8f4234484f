"""The ``--distributed`` flag shared by ``reml``, ``gwas``, ``scan`` and ``deepwas train``.

Under ``torchrun`` or ``srun`` every rank runs the same command; with
``--distributed`` the command joins the process group the launcher describes
(:func:`torchgenetics.distributed.init_from_env`), calls the distributed API, and
only rank 0 prints and writes the outputs (other ranks' standard output is
discarded; their warnings and errors still reach standard error).
"""

from __future__ import annotations

import contextlib
import os
import sys

__all__ = ["add_distributed_argument", "distributed_session", "DISTRIBUTED_HELP"]

#: Help text of ``--distributed``.
DISTRIBUTED_HELP = ("run on every rank of a torchrun / srun job (torchrun --nproc-per-node N -m torchgenetics "
         "...): work is split over the ranks, rank 0 prints and writes the outputs")


def add_distributed_argument(parser) -> None:
    """Add ``--distributed`` to a subcommand's parser.

    Examples
    --------
    >>> import argparse
    >>> p = argparse.ArgumentParser(); add_distributed_argument(p)
    >>> p.parse_args(["--distributed"]).distributed
    True
    """
    parser.add_argument("--distributed", action="store_true", help=DISTRIBUTED_HELP)


@contextlib.contextmanager
def distributed_session(enabled: bool):
    """Join the launcher's process group when ``enabled``; silence stdout off rank 0.

    Parameters
    ----------
    enabled : bool
        The command's ``--distributed`` flag.

    Yields
    ------
    bool
        True when the command runs distributed (a process group of more than one
        rank); False otherwise (no ``--distributed``, or not started by a launcher:
        then a note goes to standard error and the command runs as one process).

    Examples
    --------
    >>> with distributed_session(False) as on:
    ...     on
    False
    """
    import torch.distributed as dist

    from torchgenetics.distributed import init_from_env, is_distributed, is_main, world_size

    if not enabled:
        yield False
        return
    created = not is_distributed()
    if not init_from_env():
        print("torchgen: --distributed but not started by torchrun or srun (no RANK/WORLD_SIZE or "
              "SLURM_PROCID); running as one process", file=sys.stderr)
        yield False
        return
    finished = False
    try:
        if is_main():
            yield world_size() > 1
        else:
            with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
                yield world_size() > 1
        finished = True
    finally:
        if created and dist.is_initialized():
            if finished:
                dist.barrier()  # every rank done with its collectives before the group goes away
            dist.destroy_process_group()
