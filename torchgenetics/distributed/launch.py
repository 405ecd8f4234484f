"""Start a small process group on this machine and run one function on every rank.

:func:`run_local` is ``torchrun --nproc-per-node N`` as a Python call: it spawns the
processes, sets the environment torchrun would set (free TCP port chosen
automatically), initialises the process group with
:func:`~torchgenetics.distributed.context.init_from_env`, runs ``fn(*args)`` on
every rank and returns the per-rank results in rank order. Tests and benchmarks
use it; production runs use ``torchrun`` or ``srun``.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import multiprocessing
import os
import pickle
import queue
import socket
import sys
import time
import traceback

import torch

from ..errors import InputError

__all__ = ["run_local", "LocalCluster", "free_port", "RankError"]

# Poll interval of the parent while it waits for results (seconds).
_POLL = 0.05


class RankError(RuntimeError):
    """A rank of :func:`run_local` raised; the message holds its traceback.

    Attributes
    ----------
    rank : int
        The failing rank.

    Examples
    --------
    >>> RankError(1, "Traceback ...").rank
    1
    """

    def __init__(self, rank: int, text: str):
        super().__init__(f"rank {rank} failed:\n{text}")
        self.rank = rank


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS picks it).

    Examples
    --------
    >>> 0 < free_port() < 65536
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _function_ref(fn):
    """``(module, qualname, file)`` naming a module-level function for a fresh process."""
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if module is None or "<" in qualname:
        raise InputError(
            f"run_local needs a module-level function (picklable by name), got {fn!r}; "
            "define it at the top level of a module (no lambda, no nested function)"
        )
    mod = sys.modules.get(module)
    path = getattr(mod, "__file__", None)
    return module, qualname, path


def _resolve(module: str, qualname: str, path: str | None):
    """Import the function in the child (by file when its module is not importable by name,
    e.g. a test module collected by pytest with ``--import-mode=importlib``)."""
    if module == "__main__":
        module = "__mp_main__"
    try:
        mod = sys.modules.get(module) or importlib.import_module(module)
    except ImportError:
        if path is None:
            raise
        spec = importlib.util.spec_from_file_location(module, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[module] = mod
        spec.loader.exec_module(mod)
    obj = mod
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _worker(rank, world, port, backend, timeout, threads, tasks, results):
    """One rank: environment and process group once, then ``fn(*args)`` per task.

    A task is ``(task_id, (module, qualname, file), pickled args)``; ``None`` stops
    the loop. Each result goes back pickled with a timestamp (so the parent can tell
    the first failure from the ones it caused on other ranks).
    """
    os.environ.update({
        "RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
        "LOCAL_WORLD_SIZE": str(world), "GROUP_RANK": "0", "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    })
    if threads is not None:
        torch.set_num_threads(int(threads))
    import torch.distributed as dist

    from .context import init_from_env

    try:
        init_from_env(backend=backend, timeout=timeout)
    except BaseException:  # noqa: BLE001 - reported to the parent
        results.put((None, rank, False, time.time(), traceback.format_exc()))
        return
    try:
        while True:
            task = tasks.get()
            if task is None:
                break
            task_id, ref, payload = task
            try:
                fn = _resolve(*ref)
                value = pickle.dumps(fn(*pickle.loads(payload)))
            except BaseException:  # noqa: BLE001 - everything goes back to the parent
                results.put((task_id, rank, False, time.time(), traceback.format_exc()))
                break
            results.put((task_id, rank, True, time.time(), value))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


class LocalCluster:
    """``nprocs`` local ranks of one process group that run several functions in turn.

    Spawning a rank costs an interpreter, ``import torch`` and the process group;
    a cluster pays that once for many :meth:`run` calls (a test session, a
    benchmark). The ranks are started on first use (or ``with``) and stopped by
    :meth:`close`; a failing task stops them too (the next :meth:`run` starts
    fresh ranks).

    Parameters
    ----------
    nprocs : int
        Number of ranks.
    backend : {"gloo", "nccl"}
        Process-group backend.
    timeout : float
        Default seconds allowed for each :meth:`run` (also the collective timeout).
    threads : int, optional
        Torch intra-op threads per rank (default: this process's thread count
        divided by ``nprocs``, at least 1).

    Examples
    --------
    >>> from torchgenetics.distributed.context import world_size
    >>> with LocalCluster(2) as cluster:  # doctest: +SKIP
    ...     cluster.run(world_size), cluster.run(world_size)
    ([2, 2], [2, 2])
    """

    def __init__(self, nprocs: int = 2, backend: str = "gloo", timeout: float = 120.0,
                 threads: int | None = None):
        if isinstance(nprocs, bool) or int(nprocs) < 1:
            raise InputError(f"nprocs must be >= 1, got {nprocs}")
        self.nprocs, self.backend, self.timeout = int(nprocs), backend, float(timeout)
        self.threads = max(torch.get_num_threads() // self.nprocs, 1) if threads is None else int(threads)
        self._procs = []
        self._tasks = []
        self._results = None
        self._next_id = 0

    @property
    def running(self) -> bool:
        """Whether the ranks are up."""
        return bool(self._procs) and all(p.is_alive() for p in self._procs)

    def start(self) -> "LocalCluster":
        """Spawn the ranks (no-op when they are up); returns self."""
        if self.running:
            return self
        self.close()
        ctx = multiprocessing.get_context("spawn")
        self._results = ctx.Queue()
        self._tasks = [ctx.Queue() for _ in range(self.nprocs)]
        port = free_port()
        self._procs = [ctx.Process(target=_worker, daemon=True, args=(
            r, self.nprocs, port, self.backend, self.timeout, self.threads, self._tasks[r],
            self._results)) for r in range(self.nprocs)]
        for p in self._procs:
            p.start()
        return self

    def run(self, fn, args=(), timeout: float | None = None) -> list:
        """``fn(*args)`` on every rank; the return values in rank order.

        Parameters
        ----------
        fn : callable
            A module-level function (imported by name in each rank).
        args : tuple
            Picklable arguments, the same on every rank.
        timeout : float, optional
            Seconds allowed (default the cluster's).

        Returns
        -------
        list

        Raises
        ------
        RankError
            When a rank raises (the first failure's traceback); the ranks are stopped.
        TimeoutError
            When the ranks do not all answer in time; the ranks are stopped.
        """
        ref = _function_ref(fn)
        payload = pickle.dumps(tuple(args))
        self.start()
        task_id, self._next_id = self._next_id, self._next_id + 1
        for q in self._tasks:
            q.put((task_id, ref, payload))
        try:
            return self._collect(task_id, self.timeout if timeout is None else float(timeout))
        except BaseException:
            self.close(force=True)
            raise

    def _collect(self, task_id, timeout):
        out, failures = {}, []
        deadline = time.monotonic() + timeout
        grace = None  # after a failure, collect the others' reports briefly
        while len(out) + len(failures) < self.nprocs:
            now = time.monotonic()
            if grace is not None and now > grace:
                break
            try:
                tid, r, ok, stamp, data = self._results.get(timeout=_POLL)
            except queue.Empty:
                silent = [r for r, p in enumerate(self._procs) if not p.is_alive()
                          and r not in out and r not in {f[1] for f in failures}]
                if silent and grace is None:
                    grace = now + 1.0
                    failures.append((math.inf, silent[0], "exited with code "
                                     f"{self._procs[silent[0]].exitcode} without reporting"))
                if now > deadline and grace is None:
                    missing = sorted(set(range(self.nprocs)) - set(out))
                    raise TimeoutError(f"ranks {missing} did not finish within {timeout} s") from None
                continue
            if tid not in (task_id, None):
                continue
            if ok:
                out[r] = pickle.loads(data)
            else:
                failures.append((stamp, r, data))
                grace = grace or time.monotonic() + 2.0
        if failures:
            _, r, text = min(failures)
            raise RankError(r, text)
        return [out[r] for r in range(self.nprocs)]

    def close(self, force: bool = False) -> None:
        """Stop the ranks (politely unless ``force``)."""
        if not force:
            for q, p in zip(self._tasks, self._procs, strict=True):
                if p.is_alive():
                    q.put(None)
            for p in self._procs:
                p.join(10.0)
        for p in self._procs:
            if p.is_alive():
                p.terminate()
                p.join(5.0)
        for q in self._tasks + ([self._results] if self._results is not None else []):
            q.close()
            q.join_thread()
        self._procs, self._tasks, self._results = [], [], None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if self._procs:
            try:
                self.close(force=True)
            except Exception:  # noqa: BLE001 - interpreter shutdown
                pass


def run_local(fn, nprocs: int = 2, args=(), backend: str = "gloo", timeout: float = 120.0,
              threads: int | None = None) -> list:
    """Run ``fn(*args)`` on ``nprocs`` freshly spawned ranks of one process group.

    Parameters
    ----------
    fn : callable
        A module-level function (it is imported by name in each process).
    nprocs : int
        Number of ranks.
    args : tuple
        Picklable arguments, the same on every rank.
    backend : {"gloo", "nccl"}
        Process-group backend.
    timeout : float
        Seconds allowed for the whole run (and for each collective).
    threads : int, optional
        Torch intra-op threads per rank (default: this process's thread count
        divided by ``nprocs``, at least 1).

    Returns
    -------
    list
        ``fn``'s return values, in rank order (they must be picklable).

    Raises
    ------
    RankError
        When a rank raises (its traceback is in the message); the other ranks are
        stopped.
    TimeoutError
        When the ranks do not all finish within ``timeout``.

    Examples
    --------
    >>> from torchgenetics.distributed.context import world_size
    >>> run_local(world_size, nprocs=2)  # doctest: +SKIP
    [2, 2]
    """
    _function_ref(fn)  # fail before spawning anything
    with LocalCluster(nprocs, backend=backend, timeout=timeout, threads=threads) as cluster:
        return cluster.run(fn, args)
