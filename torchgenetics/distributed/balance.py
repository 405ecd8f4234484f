"""Deterministic assignment of work items (loci, LD regions) to ranks.

Every rank computes the same assignment from the same inputs, so no message is
needed to agree on it: :func:`balanced_split` is the longest-processing-time rule
(largest item first, to the least loaded rank, ties to the lower rank),
:func:`round_robin_split` deals items out in turn.
"""

from __future__ import annotations

import heapq

from torchgenetics.errors import InputError

__all__ = ["balanced_split", "round_robin_split", "split_items", "SPLITS"]

#: Assignment rules understood by :func:`split_items`.
SPLITS = ("balanced", "round_robin")


def _check_parts(parts) -> int:
    if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
        raise InputError(f"the number of ranks must be a positive integer, got {parts!r}")
    return parts


def balanced_split(costs, parts: int) -> list[list[int]]:
    """Item indices per rank, balancing the summed cost (largest first, to the least loaded).

    Parameters
    ----------
    costs : sequence of float
        Non-negative cost of each item (e.g. variables of a locus).
    parts : int
        Number of ranks.

    Returns
    -------
    list of list of int
        ``parts`` lists of item indices, each in increasing order; together they are
        ``0 .. len(costs) - 1`` once each.

    Raises
    ------
    InputError
        On a negative or non-finite cost, or ``parts < 1``.

    Examples
    --------
    >>> balanced_split([5, 1, 1, 3, 2], 2)
    [[0, 1], [2, 3, 4]]
    """
    parts = _check_parts(parts)
    costs = [float(c) for c in costs]
    bad = [i for i, c in enumerate(costs) if not 0.0 <= c < float("inf")]
    if bad:
        raise InputError(f"item {bad[0]} has cost {costs[bad[0]]}; costs must be finite and >= 0")
    heap = [(0.0, r) for r in range(parts)]
    out: list[list[int]] = [[] for _ in range(parts)]
    for i in sorted(range(len(costs)), key=lambda j: (-costs[j], j)):
        load, r = heapq.heappop(heap)
        out[r].append(i)
        heapq.heappush(heap, (load + costs[i], r))
    return [sorted(items) for items in out]


def round_robin_split(n_items: int, parts: int) -> list[list[int]]:
    """Item indices per rank, dealt out in turn (item ``i`` to rank ``i % parts``).

    Examples
    --------
    >>> round_robin_split(5, 2)
    [[0, 2, 4], [1, 3]]
    """
    parts = _check_parts(parts)
    return [list(range(r, int(n_items), parts)) for r in range(parts)]


def split_items(costs, parts: int, how: str = "balanced") -> list[list[int]]:
    """Item indices per rank by the rule ``how`` (see :data:`SPLITS`).

    Parameters
    ----------
    costs : sequence of float
        Cost of each item (only its length matters for ``"round_robin"``).
    parts : int
        Number of ranks.
    how : {"balanced", "round_robin"}

    Returns
    -------
    list of list of int

    Examples
    --------
    >>> split_items([1, 1, 1], 2, "round_robin")
    [[0, 2], [1]]
    """
    if how == "balanced":
        return balanced_split(costs, parts)
    if how == "round_robin":
        return round_robin_split(len(costs), parts)
    raise InputError(f"assignment must be one of {SPLITS}, got {how!r}")
