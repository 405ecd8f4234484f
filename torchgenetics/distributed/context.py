"""Who am I in a ``torch.distributed`` job, and the few collectives torchgen needs.

Every helper works without a process group: then there is one rank (rank 0 of a
world of 1), collectives are no-ops and ``gather_objects`` returns ``[obj]``, so
code written once runs the same in a single process, under ``torchrun`` or under
SLURM ``srun``. All helpers take an optional ``group`` (``None``: the default,
world group), as ``torch.distributed`` does.

:func:`init_from_env` creates the process group from the environment a launcher
sets: ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``) or ``srun`` (``SLURM_PROCID``, ``SLURM_STEP_NUM_TASKS`` /
``SLURM_NTASKS``, ``SLURM_LOCALID``, the master being the first host of the step's
node list).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pickle
import re
import sys
from contextlib import contextmanager
from datetime import timedelta
from typing import Mapping

import numpy as np
import torch
import torch.distributed as dist

from ..errors import InputError

__all__ = [
    "is_distributed",
    "rank",
    "world_size",
    "local_rank",
    "local_world_size",
    "is_main",
    "init_from_env",
    "launch_env",
    "first_host",
    "device_for_rank",
    "shard_range",
    "all_reduce",
    "all_reduce_sum",
    "broadcast_object",
    "gather_objects",
    "all_gather_objects",
    "barrier",
    "agreed_budget",
    "digest",
    "check_same",
    "rank_zero_only",
    "progress",
    "get_logger",
]

_REDUCE_OPS = {"sum": "SUM", "min": "MIN", "max": "MAX", "product": "PRODUCT"}
# Port derived from the SLURM job id when MASTER_PORT is not set (same on every task).
_SLURM_PORT_BASE, _SLURM_PORT_SPAN = 15000, 20000


# ---------------------------------------------------------------------------- who am I
def is_distributed(group=None) -> bool:
    """Whether a process group is initialised (``torch.distributed`` is usable).

    Parameters
    ----------
    group : ProcessGroup, optional
        Unused beyond documentation symmetry: a group exists only inside an
        initialised default group.

    Returns
    -------
    bool

    Examples
    --------
    >>> is_distributed()
    False
    """
    return dist.is_available() and dist.is_initialized()


def rank(group=None) -> int:
    """This process's rank in ``group`` (0 without a process group).

    Examples
    --------
    >>> rank()
    0
    """
    return dist.get_rank(group) if is_distributed() else 0


_rank = rank  # for functions whose ``rank`` argument shadows it


def world_size(group=None) -> int:
    """Number of ranks in ``group`` (1 without a process group).

    Examples
    --------
    >>> world_size()
    1
    """
    return dist.get_world_size(group) if is_distributed() else 1


def is_main(group=None) -> bool:
    """Whether this is rank 0 of ``group`` (always True in a single process).

    Examples
    --------
    >>> is_main()
    True
    """
    return rank(group) == 0


def local_rank(env: Mapping[str, str] | None = None) -> int:
    """Rank of this process on its node: ``LOCAL_RANK`` (torchrun) or ``SLURM_LOCALID``, else 0.

    Parameters
    ----------
    env : mapping, optional
        Environment to read (default ``os.environ``).

    Examples
    --------
    >>> local_rank({"SLURM_LOCALID": "3"}), local_rank({})
    (3, 0)
    """
    env = os.environ if env is None else env
    for name in ("LOCAL_RANK", "SLURM_LOCALID"):
        value = env.get(name, "").strip()
        if value:
            return _int(value, name)
    return 0


def local_world_size(env: Mapping[str, str] | None = None) -> int:
    """Number of ranks sharing this node.

    ``LOCAL_WORLD_SIZE`` (torchrun), else the entry of ``SLURM_STEP_TASKS_PER_NODE``
    (or ``SLURM_TASKS_PER_NODE``, format ``"2(x3),1"``) for this node
    (``SLURM_NODEID``), else ``SLURM_NTASKS_PER_NODE``, else 1.

    Parameters
    ----------
    env : mapping, optional
        Environment to read (default ``os.environ``).

    Returns
    -------
    int
        At least 1.

    Examples
    --------
    >>> local_world_size({"LOCAL_WORLD_SIZE": "4"})
    4
    >>> local_world_size({"SLURM_TASKS_PER_NODE": "2(x3),1", "SLURM_NODEID": "3"})
    1
    >>> local_world_size({})
    1
    """
    env = os.environ if env is None else env
    value = env.get("LOCAL_WORLD_SIZE", "").strip()
    if value:
        return max(_int(value, "LOCAL_WORLD_SIZE"), 1)
    for name in ("SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE"):
        spec = env.get(name, "").strip()
        if spec:
            counts = _tasks_per_node(spec, name)
            node = _int(env.get("SLURM_NODEID", "0").strip() or "0", "SLURM_NODEID")
            if 0 <= node < len(counts):
                return max(counts[node], 1)
    value = env.get("SLURM_NTASKS_PER_NODE", "").strip()
    return max(_int(value, "SLURM_NTASKS_PER_NODE"), 1) if value else 1


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InputError(f"environment variable {name}={text!r}: expected an integer") from None


def _tasks_per_node(spec: str, name: str) -> list[int]:
    """``"2(x3),1"`` -> ``[2, 2, 2, 1]`` (SLURM's compressed tasks-per-node list)."""
    counts = []
    for part in spec.split(","):
        match = re.fullmatch(r"\s*(\d+)(?:\(x(\d+)\))?\s*", part)
        if match is None:
            raise InputError(f"environment variable {name}={spec!r}: cannot read {part!r}; "
                             "expected entries like '4' or '2(x3)'")
        counts += [int(match.group(1))] * int(match.group(2) or 1)
    return counts


def first_host(nodelist: str) -> str:
    """First host name of a SLURM host list such as ``"gpu[07-09,12],cpu3"``.

    Parameters
    ----------
    nodelist : str
        ``SLURM_JOB_NODELIST`` / ``SLURM_STEP_NODELIST``.

    Returns
    -------
    str

    Examples
    --------
    >>> first_host("gpu[07-09,12],cpu3")
    'gpu07'
    >>> first_host("node1,node2")
    'node1'
    """
    text = nodelist.strip()
    match = re.match(r"([^,\[]*)(?:\[([^\]]*)\])?", text)
    if not text or match is None or not (match.group(1) or match.group(2)):
        raise InputError(f"cannot read the first host of the SLURM node list {nodelist!r}")
    prefix, ranges = match.group(1), match.group(2)
    if ranges is None:
        return prefix
    first = ranges.split(",")[0].split("-")[0]
    return prefix + first


def launch_env(env: Mapping[str, str] | None = None) -> dict | None:
    """The torchrun-style settings of this process, or None when not launched distributed.

    Reads torchrun's variables first, then SLURM's (``srun``; a batch script run
    without ``srun``, i.e. one task, is not a distributed launch).

    Parameters
    ----------
    env : mapping, optional
        Environment to read (default ``os.environ``).

    Returns
    -------
    dict or None
        ``RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT``
        as strings.

    Examples
    --------
    >>> launch_env({"SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "4", "SLURM_LOCALID": "1",
    ...             "SLURM_STEP_NODELIST": "n[3-4]", "SLURM_JOB_ID": "77",
    ...             "SLURM_STEP_TASKS_PER_NODE": "2(x2)"})["MASTER_ADDR"]
    'n3'
    >>> launch_env({}) is None
    True
    """
    env = os.environ if env is None else env
    if env.get("RANK", "").strip() and env.get("WORLD_SIZE", "").strip():
        out = {k: env[k].strip() for k in ("RANK", "WORLD_SIZE")}
        out["LOCAL_RANK"] = str(local_rank(env))
        out["LOCAL_WORLD_SIZE"] = str(local_world_size(env))
        out["MASTER_ADDR"] = env.get("MASTER_ADDR", "").strip() or "127.0.0.1"
        out["MASTER_PORT"] = env.get("MASTER_PORT", "").strip() or "29500"
        return out
    procid = env.get("SLURM_PROCID", "").strip()
    ntasks = (env.get("SLURM_STEP_NUM_TASKS", "") or env.get("SLURM_NTASKS", "")).strip()
    if not procid or not ntasks or _int(ntasks, "SLURM_NTASKS") < 2:
        return None
    addr = env.get("MASTER_ADDR", "").strip()
    if not addr:
        nodes = (env.get("SLURM_STEP_NODELIST", "") or env.get("SLURM_JOB_NODELIST", "")
                 or env.get("SLURM_NODELIST", ""))
        if not nodes.strip():
            raise InputError("launched by SLURM with several tasks but neither MASTER_ADDR nor "
                             "SLURM_JOB_NODELIST is set; export MASTER_ADDR=<first node>")
        addr = first_host(nodes)
    port = env.get("MASTER_PORT", "").strip()
    if not port:
        job = _int(env.get("SLURM_JOB_ID", "0").strip() or "0", "SLURM_JOB_ID")
        port = str(_SLURM_PORT_BASE + job % _SLURM_PORT_SPAN)
    return {"RANK": procid, "WORLD_SIZE": ntasks, "LOCAL_RANK": str(local_rank(env)),
            "LOCAL_WORLD_SIZE": str(local_world_size(env)), "MASTER_ADDR": addr,
            "MASTER_PORT": port}


def device_for_rank(local: int | None = None) -> torch.device:
    """The device this rank should compute on: ``cuda:<local rank mod GPUs>``, else CPU.

    Parameters
    ----------
    local : int, optional
        Local rank (default :func:`local_rank`).

    Returns
    -------
    torch.device

    Examples
    --------
    >>> device_for_rank(0).type in ("cpu", "cuda")
    True
    """
    if not torch.cuda.is_available():
        return torch.device("cpu")
    local = local_rank() if local is None else int(local)
    return torch.device("cuda", local % torch.cuda.device_count())


def init_from_env(backend: str | None = None, timeout: float | timedelta | None = None) -> bool:
    """Initialise the default process group from the launcher's environment.

    Parameters
    ----------
    backend : {"nccl", "gloo"}, optional
        Default ``"nccl"`` when CUDA is available, else ``"gloo"``.
    timeout : float (seconds) or timedelta, optional
        Collective timeout (default: torch's).

    Returns
    -------
    bool
        True when a process group is initialised (already, or by this call);
        False when the process was not launched distributed (then nothing changes).

    Notes
    -----
    Under SLURM the torchrun variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
    ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) are exported, so code
    that reads them (Lightning, :mod:`torchgenetics.memory`) sees one convention.
    With CUDA the current device becomes ``cuda:<local rank>``.

    Examples
    --------
    >>> import os
    >>> init_from_env() if "RANK" not in os.environ and "SLURM_PROCID" not in os.environ else False
    False
    """
    if is_distributed():
        return True
    settings = launch_env()
    if settings is None:
        return False
    os.environ.update(settings)
    cuda = torch.cuda.is_available()
    if backend is None:
        backend = "nccl" if cuda and dist.is_nccl_available() else "gloo"
    if cuda:
        torch.cuda.set_device(device_for_rank(int(settings["LOCAL_RANK"])))
    kwargs = {}
    if timeout is not None:
        kwargs["timeout"] = timeout if isinstance(timeout, timedelta) else timedelta(seconds=float(timeout))
    dist.init_process_group(backend=backend, init_method="env://", rank=int(settings["RANK"]),
                            world_size=int(settings["WORLD_SIZE"]), **kwargs)
    return True


# ---------------------------------------------------------------------------- sharding
def shard_range(n_items: int, rank: int | None = None, world: int | None = None, group=None) -> slice:
    """This rank's contiguous, balanced share of ``n_items`` items.

    The first ``n_items % world`` ranks get one item more; shares are in rank
    order and cover every item exactly once (a rank may get none).

    Parameters
    ----------
    n_items : int
    rank, world : int, optional
        Default: this process's rank and the size of ``group``.
    group : ProcessGroup, optional

    Returns
    -------
    slice

    Examples
    --------
    >>> [shard_range(10, r, 3) for r in range(3)]
    [slice(0, 4, None), slice(4, 7, None), slice(7, 10, None)]
    """
    world = world_size(group) if world is None else int(world)
    r = _rank(group) if rank is None else int(rank)
    if world < 1 or not 0 <= r < world or n_items < 0:
        raise InputError(f"shard_range: need n_items >= 0 and 0 <= rank < world, got "
                         f"n_items={n_items}, rank={r}, world={world}")
    base, extra = divmod(int(n_items), world)
    start = r * base + min(r, extra)
    return slice(start, start + base + (1 if r < extra else 0))


# ---------------------------------------------------------------------------- collectives
def _active(group) -> bool:
    return is_distributed() and world_size(group) > 1


def all_reduce(tensor: torch.Tensor, op: str = "sum", group=None) -> torch.Tensor:
    """Reduce ``tensor`` over the ranks of ``group``, in place (no-op in one process).

    Every rank ends with the same bits (the reduced value is computed once and
    shared), which keeps replicated computations identical across ranks.

    Parameters
    ----------
    tensor : torch.Tensor
        Same shape, dtype and device kind on every rank.
    op : {"sum", "min", "max", "product"}
    group : ProcessGroup, optional

    Returns
    -------
    torch.Tensor
        ``tensor`` itself.

    Examples
    --------
    >>> all_reduce(torch.ones(2), "max").tolist()
    [1.0, 1.0]
    """
    if op not in _REDUCE_OPS:
        raise InputError(f"reduce op must be one of {sorted(_REDUCE_OPS)}, got {op!r}")
    if not _active(group):
        return tensor
    reduce_op = getattr(dist.ReduceOp, _REDUCE_OPS[op])
    if tensor.is_contiguous():
        dist.all_reduce(tensor, op=reduce_op, group=group)
    else:
        buf = tensor.contiguous()
        dist.all_reduce(buf, op=reduce_op, group=group)
        tensor.copy_(buf)
    return tensor


def all_reduce_sum(tensor: torch.Tensor, group=None) -> torch.Tensor:
    """Sum ``tensor`` over the ranks of ``group`` in place; returns it (no-op in one process).

    Examples
    --------
    >>> all_reduce_sum(torch.tensor([1.0, 2.0])).tolist()
    [1.0, 2.0]
    """
    return all_reduce(tensor, "sum", group)


def broadcast_object(obj, src: int = 0, group=None):
    """Rank ``src``'s picklable ``obj`` on every rank (``obj`` itself in one process).

    Parameters
    ----------
    obj : object
        Ignored on ranks other than ``src``.
    src : int
        Global rank of the sender.
    group : ProcessGroup, optional

    Examples
    --------
    >>> broadcast_object({"a": 1})
    {'a': 1}
    """
    if not _active(group):
        return obj
    box = [obj if rank() == src else None]
    dist.broadcast_object_list(box, src=src, group=group)
    return box[0]


def gather_objects(obj, dst: int = 0, group=None) -> list | None:
    """Every rank's ``obj``, in rank order, on rank ``dst`` (None elsewhere).

    Examples
    --------
    >>> gather_objects(3)
    [3]
    """
    if not _active(group):
        return [obj]
    out = [None] * world_size(group) if rank() == dst else None
    dist.gather_object(obj, out, dst=dst, group=group)
    return out


def all_gather_objects(obj, group=None) -> list:
    """Every rank's ``obj``, in rank order, on every rank.

    Examples
    --------
    >>> all_gather_objects("x")
    ['x']
    """
    if not _active(group):
        return [obj]
    out = [None] * world_size(group)
    dist.all_gather_object(out, obj, group=group)
    return out


def barrier(group=None) -> None:
    """Wait until every rank of ``group`` gets here (no-op in one process).

    Examples
    --------
    >>> barrier()
    """
    if _active(group):
        dist.barrier(group=group)


@contextmanager
def agreed_budget(device=None, group=None):
    """Run a block with the smallest memory budget of all ranks pinned on every rank.

    Memory-dependent choices (exact or stochastic REML, caching probe products)
    then come out the same on every rank, so the ranks keep calling the same
    collectives. Outside a process group nothing changes.

    Parameters
    ----------
    device : torch.device or str, optional
        Device whose budget is agreed (default CPU).
    group : ProcessGroup, optional

    Examples
    --------
    >>> with agreed_budget():
    ...     pass
    """
    from ..memory import _FALLBACK_BYTES, memory_sources, pinned_budget

    if not _active(group):
        yield
        return
    sources = memory_sources(device)
    mine = min(sources.values()) if sources else _FALLBACK_BYTES
    dev = device_for_rank() if dist.get_backend(group) == "nccl" else torch.device("cpu")
    least = all_reduce(torch.tensor([float(mine)], dtype=torch.float64, device=dev), "min", group)
    with pinned_budget(int(least.item())):
        yield


def digest(obj) -> str:
    """A short fingerprint of data (tensors, arrays, DataFrames, Series, scalars, None).

    Equal data give equal fingerprints on every rank (values, shapes and dtypes,
    and labels of pandas objects).

    Examples
    --------
    >>> digest(torch.ones(3, dtype=torch.float64)) == digest(np.ones(3))
    True
    """
    h = hashlib.sha1()

    def feed(x):
        if x is None:
            h.update(b"None")
        elif torch.is_tensor(x):
            feed(x.detach().cpu().numpy())
        elif isinstance(x, np.ndarray) and x.dtype != object:
            h.update(f"{x.dtype.str}{x.shape}".encode())
            h.update(np.ascontiguousarray(x).tobytes())
        elif hasattr(x, "to_numpy") and hasattr(x, "index"):  # pandas
            feed(np.asarray(x.index.astype(str)).astype(object))
            cols = getattr(x, "columns", None)
            if cols is not None:
                feed(np.asarray(cols.astype(str)).astype(object))
            feed(x.to_numpy())
        elif isinstance(x, (list, tuple)) and not all(isinstance(v, (int, float, bool)) for v in x):
            for v in x:
                feed(v)
        else:
            arr = np.asarray(x)
            if arr.dtype == object:
                h.update(pickle.dumps(arr.tolist()))
            else:
                feed(arr)

    feed(obj)
    return h.hexdigest()


def check_same(obj, what: str, group=None) -> None:
    """Raise unless ``obj`` holds the same data on every rank (one small all-gather).

    Replicated computations (every rank holding the phenotype, covariates,
    probes) only agree, and only call the same collectives, when their inputs do.

    Parameters
    ----------
    obj : tensor, array, DataFrame, ...
    what : str
        Name used in the message (e.g. ``"the phenotype"``).
    group : ProcessGroup, optional

    Raises
    ------
    InputError
        Naming the first rank whose data differ from rank 0's.

    Examples
    --------
    >>> check_same(np.arange(3), "the phenotype")
    """
    if not _active(group):
        return
    prints = all_gather_objects(digest(obj), group)
    bad = [r for r, p in enumerate(prints) if p != prints[0]]
    if bad:
        raise InputError(f"{what} differs between ranks (rank {bad[0]} differs from rank 0); "
                         "every rank must load the same data in the same order")


# ---------------------------------------------------------------------------- output
def rank_zero_only(fn=None, *, group=None):
    """Decorator: run ``fn`` on rank 0 only (other ranks get None).

    Usable bare (``@rank_zero_only``) or with a group (``@rank_zero_only(group=g)``).

    Examples
    --------
    >>> @rank_zero_only
    ... def hello():
    ...     return "hi"
    >>> hello()
    'hi'
    """
    def wrap(f):
        @functools.wraps(f)
        def inner(*args, **kwargs):
            return f(*args, **kwargs) if is_main(group) else None
        return inner

    return wrap if fn is None else wrap(fn)


def progress(iterable=None, *, group=None, **tqdm_kwargs):
    """A tqdm bar shown on rank 0 only (``disable=True`` elsewhere).

    Parameters
    ----------
    iterable : iterable, optional
    group : ProcessGroup, optional
    **tqdm_kwargs
        Passed to ``tqdm.auto.tqdm``; ``disable=True`` still disables rank 0's bar.

    Returns
    -------
    tqdm

    Examples
    --------
    >>> sum(progress(range(3), disable=True))
    3
    """
    from tqdm.auto import tqdm

    tqdm_kwargs["disable"] = bool(tqdm_kwargs.get("disable", False)) or not is_main(group)
    return tqdm(iterable, **tqdm_kwargs)


class _RankFilter(logging.Filter):
    """Let everything through on rank 0 and warnings or worse elsewhere; tag the rank."""

    def __init__(self, group=None):
        super().__init__()
        self.group = group

    def filter(self, record):
        r = rank(self.group)
        record.rank = r
        record.rank_tag = f"[rank {r}] " if world_size(self.group) > 1 else ""
        return r == 0 or record.levelno >= logging.WARNING


def get_logger(name: str, group=None, level: int = logging.INFO) -> logging.Logger:
    """A logger that prints on rank 0, and only warnings and errors on other ranks.

    The first call for ``name`` gives the logger a stderr handler (format
    ``[rank r] LEVEL name: message``, the rank tag only when there are several
    ranks) and sets its level; the rank is read when a record is emitted, so the
    logger may be made before the process group.

    Parameters
    ----------
    name : str
    group : ProcessGroup, optional
    level : int
        Logger level set on the first call (default INFO).

    Returns
    -------
    logging.Logger

    Examples
    --------
    >>> get_logger("torchgenetics.example").name
    'torchgenetics.example'
    """
    logger = logging.getLogger(name)
    if not getattr(logger, "_torchgenetics_rank_aware", False):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(rank_tag)s%(levelname)s %(name)s: %(message)s"))
        handler.addFilter(_RankFilter(group))
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
        logger._torchgenetics_rank_aware = True
    return logger
