"""How many bytes may a step use, and how many columns fit in them.

Every step whose size grows with n x m asks :func:`available_bytes` for a budget
and :func:`plan_block` for the largest block of columns that fits it.

Sources of the CPU budget, smallest wins:

* ``TORCHGEN_MEMORY_BUDGET`` (e.g. ``4GiB``, ``512MB``, ``1e9``): when set it
  replaces every other source and is used as given (no safety factor);
* cgroup v2: ``memory.max`` minus usage of this process's cgroup and its ancestors;
* cgroup v1: ``memory.limit_in_bytes`` minus ``memory.usage_in_bytes``;
* SLURM: ``SLURM_MEM_PER_NODE`` (MB), or ``SLURM_MEM_PER_CPU`` (MB) times
  ``SLURM_CPUS_ON_NODE``;
* ``/proc/meminfo`` ``MemAvailable``.

cgroup usage counts reclaimable page cache (``inactive_file`` in ``memory.stat``)
as free, as container runtimes do. On CUDA the budget is the free device memory
plus the memory PyTorch's caching allocator holds but does not use.

Budgets are per process. When several ranks of a distributed job share a node
(``LOCAL_WORLD_SIZE`` from torchrun, or SLURM's tasks per node), the node-wide
sources (cgroup, SLURM, ``/proc/meminfo``) are divided by that number, and a
GPU's free memory by the number of ranks sharing it.
``TORCHGEN_MEMORY_BUDGET`` is already per process and is never divided.
Inside :func:`pinned_budget` every detected source is replaced by one fixed
value (distributed fits pin the smallest budget of all ranks, so that every rank
takes the same memory-dependent decisions).
"""

from __future__ import annotations

import math
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from .errors import InputError, MemoryBudgetError

__all__ = [
    "ENV_BUDGET",
    "parse_bytes",
    "format_bytes",
    "dtype_bytes",
    "memory_sources",
    "available_bytes",
    "plan_block",
    "pinned_budget",
]

ENV_BUDGET = "TORCHGEN_MEMORY_BUDGET"
DEFAULT_CGROUP_ROOT = "/sys/fs/cgroup"
DEFAULT_PROC_ROOT = "/proc"
# Fallback when no source applies (no cgroup, no /proc, no sysconf).
_FALLBACK_BYTES = 2 * 1024**3
# cgroup v1 reports "no limit" as a page-rounded 2**63 - 1.
_UNLIMITED = 2**60
# Budgets fixed by pinned_budget (innermost last).
_PINNED: list[int] = []

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1000**4,
    "tib": 1024**4,
}
_BYTES_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def parse_bytes(text) -> int:
    """Parse a memory size such as ``"4GiB"``, ``"512MB"`` or ``"1e9"``.

    ``KB/MB/GB/TB`` are powers of 1000, ``KiB/MiB/GiB/TiB`` powers of 1024, and
    the bare letters ``K/M/G/T`` (as in SLURM and ``ulimit``) powers of 1024.
    Case does not matter. Numbers (int or float) are taken as bytes.

    Parameters
    ----------
    text : str or int or float
        The size.

    Returns
    -------
    int
        Number of bytes (rounded down).

    Raises
    ------
    InputError
        If the text is not a non-negative number with a known unit.

    Examples
    --------
    >>> parse_bytes("4GiB")
    4294967296
    >>> parse_bytes("512MB")
    512000000
    >>> parse_bytes("1e9")
    1000000000
    """
    if isinstance(text, bool):
        raise InputError(f"memory size must be a number or a string like '4GiB', got {text!r}")
    if isinstance(text, (int, np.integer)):
        value, unit = float(text), ""
    elif isinstance(text, (float, np.floating)):
        value, unit = float(text), ""
    elif isinstance(text, str):
        match = _BYTES_RE.match(text)
        if match is None:
            raise InputError(
                f"cannot read memory size {text!r}: expected a number with an optional unit "
                "such as '4GiB', '512MB', '8G' or '1e9'"
            )
        value, unit = float(match.group(1)), match.group(2).lower()
    else:
        raise InputError(f"memory size must be a number or a string like '4GiB', got {text!r}")
    if unit not in _UNITS:
        raise InputError(
            f"unknown memory unit {unit!r} in {text!r}: use B, KB, MB, GB, TB, KiB, MiB, GiB, TiB"
        )
    if not math.isfinite(value) or value < 0:
        raise InputError(f"memory size must be finite and non-negative, got {text!r}")
    return int(value * _UNITS[unit])


def format_bytes(n: int | float) -> str:
    """Format a byte count for people, with binary units.

    Parameters
    ----------
    n : int or float
        Number of bytes.

    Returns
    -------
    str
        E.g. ``"4.00 GiB"``; counts below 1 KiB are shown as ``"512 B"``.

    Examples
    --------
    >>> format_bytes(4 * 1024**3)
    '4.00 GiB'
    >>> format_bytes(512)
    '512 B'
    """
    n = float(n)
    sign = "-" if n < 0 else ""
    n = abs(n)
    if n < 1024:
        return f"{sign}{int(n)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024.0
        if n < 1024 or unit == "TiB":
            return f"{sign}{n:.2f} {unit}"
    raise AssertionError("unreachable")


def dtype_bytes(dtype) -> int:
    """Bytes per element of a torch or numpy dtype.

    Parameters
    ----------
    dtype : torch.dtype or numpy dtype-like
        The element type.

    Returns
    -------
    int
        Size of one element in bytes.

    Examples
    --------
    >>> dtype_bytes(torch.float32), dtype_bytes("float64")
    (4, 8)
    """
    if isinstance(dtype, torch.dtype):
        return torch.empty((), dtype=dtype).element_size()
    return int(np.dtype(dtype).itemsize)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _read_int(path: Path) -> int | None:
    text = _read_text(path)
    if text is None:
        return None
    text = text.strip()
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _inactive_file(directory: Path) -> int:
    """Reclaimable page cache of a cgroup, from its memory.stat (0 if unknown)."""
    text = _read_text(directory / "memory.stat")
    if text is None:
        return 0
    stats = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            stats[parts[0]] = int(parts[1])
    # cgroup v1 names it total_inactive_file for the hierarchy.
    return stats.get("inactive_file", stats.get("total_inactive_file", 0))


def _own_cgroup_paths(proc_root: Path) -> tuple[str | None, str | None]:
    """This process's cgroup v2 path and cgroup v1 memory path, from /proc/self/cgroup."""
    text = _read_text(proc_root / "self" / "cgroup")
    v2 = v1 = None
    if text is None:
        return v2, v1
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            v2 = path
        elif "memory" in controllers.split(","):
            v1 = path
    return v2, v1


def _candidate_dirs(base: Path, rel: str | None) -> list[Path]:
    """The cgroup directory of this process under ``base`` and its ancestors up to ``base``.

    Inside a container the path in /proc/self/cgroup may name the host hierarchy
    while ``base`` is already the container's own cgroup; then only ``base`` exists.
    """
    dirs = []
    if rel:
        current = base / rel.strip("/")
        while current != base and base in current.parents:
            if current.is_dir():
                dirs.append(current)
            current = current.parent
    dirs.append(base)
    return dirs


def _cgroup_v2(cgroup_root: Path, proc_root: Path) -> int | None:
    if not (cgroup_root / "cgroup.controllers").exists() and not (cgroup_root / "memory.max").exists():
        return None
    rel, _ = _own_cgroup_paths(proc_root)
    best = None
    for directory in _candidate_dirs(cgroup_root, rel):
        limit = _read_int(directory / "memory.max")
        if limit is None or limit >= _UNLIMITED:
            continue
        used = _read_int(directory / "memory.current") or 0
        used = max(used - _inactive_file(directory), 0)
        free = max(limit - used, 0)
        best = free if best is None else min(best, free)
    return best


def _cgroup_v1(cgroup_root: Path, proc_root: Path) -> int | None:
    base = cgroup_root / "memory"
    if not base.is_dir():
        return None
    _, rel = _own_cgroup_paths(proc_root)
    best = None
    for directory in _candidate_dirs(base, rel):
        limit = _read_int(directory / "memory.limit_in_bytes")
        if limit is None or limit >= _UNLIMITED:
            continue
        used = _read_int(directory / "memory.usage_in_bytes") or 0
        used = max(used - _inactive_file(directory), 0)
        free = max(limit - used, 0)
        best = free if best is None else min(best, free)
    return best


def _slurm(env: Mapping[str, str]) -> int | None:
    # SLURM gives megabytes (MiB), optionally with a unit suffix.
    def mb(name):
        value = env.get(name)
        if value is None or value.strip() == "":
            return None
        value = value.strip()
        try:
            return parse_bytes(value if value[-1].isalpha() else value + "M")
        except InputError:
            return None

    per_node = mb("SLURM_MEM_PER_NODE")
    if per_node:
        return per_node
    per_cpu = mb("SLURM_MEM_PER_CPU")
    if per_cpu:
        # a node-wide total: CPUs on the node, else CPUs per task times tasks on the node
        on_node = env.get("SLURM_CPUS_ON_NODE")
        cpus = on_node or env.get("SLURM_CPUS_PER_TASK") or "1"
        try:
            n_cpus = max(int(cpus.split("(")[0].split(",")[0]), 1)
        except ValueError:
            n_cpus = 1
        return per_cpu * n_cpus * (1 if on_node else _ranks_per_node(env))
    return None


def _ranks_per_node(env: Mapping[str, str] | None) -> int:
    """Ranks sharing this node (:func:`torchgenetics.distributed.context.local_world_size`)."""
    from .distributed.context import local_world_size

    return local_world_size(env)


def _ranks_per_device(env: Mapping[str, str]) -> int:
    """Ranks sharing one GPU: this node's ranks spread over its GPUs."""
    devices = torch.cuda.device_count()
    return max(math.ceil(_ranks_per_node(env) / devices), 1) if devices else 1


@contextmanager
def pinned_budget(nbytes: int):
    """Use ``nbytes`` instead of every detected source while the block runs.

    ``TORCHGEN_MEMORY_BUDGET`` still wins; the safety factor of
    :func:`available_bytes` still applies. Distributed fits pin the smallest
    budget over the ranks so that memory-dependent choices (exact or stochastic,
    caching) are the same on every rank.

    Parameters
    ----------
    nbytes : int or str
        Bytes (``"4GiB"`` accepted).

    Examples
    --------
    >>> with pinned_budget("1GiB"):
    ...     available_bytes(safety=0.5, env={})
    536870912
    """
    _PINNED.append(parse_bytes(nbytes))
    try:
        yield
    finally:
        _PINNED.pop()


def _meminfo(proc_root: Path) -> int | None:
    text = _read_text(proc_root / "meminfo")
    if text is None:
        return None
    fields = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            scale = 1024 if len(parts) > 1 and parts[1].lower() == "kb" else 1
            fields[name.strip()] = int(parts[0]) * scale
    if "MemAvailable" in fields:
        return fields["MemAvailable"]
    if "MemFree" in fields:
        return fields["MemFree"] + fields.get("Cached", 0)
    return None


def _sysconf() -> int | None:
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def memory_sources(
    device=None,
    *,
    env: Mapping[str, str] | None = None,
    cgroup_root: str | os.PathLike = DEFAULT_CGROUP_ROOT,
    proc_root: str | os.PathLike = DEFAULT_PROC_ROOT,
) -> dict[str, int]:
    """Every memory limit that applies on ``device``, before the safety factor.

    Parameters
    ----------
    device : torch.device or str, optional
        ``None`` or ``"cpu"`` for host memory, ``"cuda[:i]"`` for a GPU.
    env : mapping, optional
        Environment variables to read (default ``os.environ``).
    cgroup_root, proc_root : path, optional
        Where cgroup and proc files live (for tests).

    Returns
    -------
    dict of str to int
        Keys among ``"env"``, ``"pinned"``, ``"cuda"``, ``"cgroup_v2"``, ``"cgroup_v1"``,
        ``"slurm"``, ``"meminfo"``, ``"sysconf"``; values in bytes, per process
        (node-wide values divided by the ranks sharing the node, see
        :func:`torchgenetics.distributed.context.local_world_size`; a GPU's by the
        ranks sharing it). When ``"env"`` or ``"pinned"`` is present it is the only key.

    Examples
    --------
    >>> memory_sources(env={"TORCHGEN_MEMORY_BUDGET": "1GiB"})
    {'env': 1073741824}
    """
    env = os.environ if env is None else env
    override = env.get(ENV_BUDGET)
    if override is not None and override.strip() != "":
        try:
            return {"env": parse_bytes(override)}
        except InputError as err:
            raise InputError(f"environment variable {ENV_BUDGET}={override!r}: {err}") from None
    if _PINNED:
        return {"pinned": _PINNED[-1]}
    device = torch.device("cpu" if device is None else device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        free, _total = torch.cuda.mem_get_info(index)
        cached = torch.cuda.memory_reserved(index) - torch.cuda.memory_allocated(index)
        return {"cuda": int(free + max(cached, 0)) // _ranks_per_device(env)}
    cgroup_root, proc_root = Path(cgroup_root), Path(proc_root)
    sources = {}
    for name, value in (
        ("cgroup_v2", _cgroup_v2(cgroup_root, proc_root)),
        ("cgroup_v1", _cgroup_v1(cgroup_root, proc_root)),
        ("slurm", _slurm(env)),
        ("meminfo", _meminfo(proc_root)),
    ):
        if value is not None:
            sources[name] = int(value)
    if "meminfo" not in sources:
        value = _sysconf() if proc_root == Path(DEFAULT_PROC_ROOT) else None
        if value is not None:
            sources["sysconf"] = value
    share = _ranks_per_node(env)
    return {name: value // share for name, value in sources.items()}


def available_bytes(
    device=None,
    safety: float = 0.5,
    *,
    env: Mapping[str, str] | None = None,
    cgroup_root: str | os.PathLike = DEFAULT_CGROUP_ROOT,
    proc_root: str | os.PathLike = DEFAULT_PROC_ROOT,
) -> int:
    """Bytes this process may use on ``device`` for one step.

    The smallest applicable limit (see the module docstring) times ``safety``.
    ``TORCHGEN_MEMORY_BUDGET``, when set, is returned exactly, on every device.
    When no source applies a fallback of 2 GiB is used.

    Parameters
    ----------
    device : torch.device or str, optional
        ``None``/``"cpu"`` or a CUDA device.
    safety : float, default 0.5
        Fraction in (0, 1] of the free memory to claim, leaving room for
        temporaries the planner does not count.
    env : mapping, optional
        Environment variables to read (default ``os.environ``).
    cgroup_root, proc_root : path, optional
        Roots of the cgroup and proc file systems (tests pass a fake tree).

    Returns
    -------
    int
        The budget in bytes.

    Examples
    --------
    >>> available_bytes(env={"TORCHGEN_MEMORY_BUDGET": "512MB"})
    512000000
    >>> available_bytes(safety=0.25) > 0
    True
    """
    if not (0 < safety <= 1):
        raise InputError(f"safety must be in (0, 1], got {safety}")
    sources = memory_sources(device, env=env, cgroup_root=cgroup_root, proc_root=proc_root)
    if "env" in sources:
        return sources["env"]
    free = min(sources.values()) if sources else _FALLBACK_BYTES
    return int(free * safety)


def plan_block(
    n_columns_total: int,
    bytes_per_column: int,
    live_copies: int = 1,
    budget=None,
    device=None,
    min_block: int = 1,
    max_block: int | None = None,
) -> int:
    """Largest number of columns whose working set fits the memory budget.

    The working set of a block of ``b`` columns is
    ``bytes_per_column * live_copies * b`` (e.g. ``live_copies=2`` when the next
    block is decoded while this one is used).

    Parameters
    ----------
    n_columns_total : int
        Columns to process in all; the block never exceeds it.
    bytes_per_column : int
        Bytes one column occupies (e.g. ``n_samples * 8`` for float64).
    live_copies : int, default 1
        How many blocks are alive at once.
    budget : int or str, optional
        Bytes available (``"4GiB"`` accepted); default :func:`available_bytes` on ``device``.
    device : torch.device or str, optional
        Device whose budget is used when ``budget`` is None.
    min_block : int, default 1
        Smallest useful block; fewer columns fitting raises.
    max_block : int, optional
        Upper cap on the block size.

    Returns
    -------
    int
        Block size, between ``min(min_block, n_columns_total)`` and
        ``min(n_columns_total, max_block)`` (at least 1).

    Raises
    ------
    MemoryBudgetError
        If not even ``min_block`` columns fit; the message gives the budget and
        the bytes needed per column.

    Examples
    --------
    >>> plan_block(10_000, bytes_per_column=8 * 1000, budget="1MB")
    125
    >>> plan_block(50, bytes_per_column=8, budget=10**9)
    50
    """
    if n_columns_total < 0:
        raise InputError(f"n_columns_total must be >= 0, got {n_columns_total}")
    if bytes_per_column <= 0 or live_copies < 1 or min_block < 1:
        raise InputError(
            "plan_block needs bytes_per_column > 0, live_copies >= 1 and min_block >= 1, got "
            f"bytes_per_column={bytes_per_column}, live_copies={live_copies}, min_block={min_block}"
        )
    if max_block is not None and max_block < 1:
        raise InputError(f"max_block must be >= 1, got {max_block}")
    budget = available_bytes(device) if budget is None else parse_bytes(budget)
    per_column = int(bytes_per_column) * int(live_copies)
    fits = budget // per_column
    needed = min(min_block, max(n_columns_total, 1))
    if fits < needed:
        raise MemoryBudgetError(
            f"memory budget of {format_bytes(budget)} cannot hold {needed} column(s): each "
            f"column needs {format_bytes(per_column)} ({format_bytes(bytes_per_column)} x "
            f"{live_copies} live copies). Free memory, use fewer samples, or raise the budget "
            f"with {ENV_BUDGET} (e.g. {ENV_BUDGET}=8GiB)"
        )
    block = min(fits, max(n_columns_total, 1))
    if max_block is not None:
        block = min(block, max_block)
    return int(max(block, 1))
