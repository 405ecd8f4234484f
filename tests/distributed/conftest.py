"""Distributed tests: CPU, Gloo, ranks started by the test with ``run_local``.

Torch is pinned to one thread here; ``run_local`` gives each spawned rank
``max(threads // nprocs, 1)`` = 1 thread as well. Each test module starts its
ranks once: the session-scoped ``cluster`` (a ``LocalCluster`` of 2 ranks) runs
every two-rank check, as spawning ranks costs seconds (interpreter, torch import,
process group).
"""

from __future__ import annotations

import pytest
import torch

from torchgenetics.distributed.launch import LocalCluster


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def cluster():
    """Two Gloo ranks on this machine, one intra-op thread each, shared by the session."""
    c = LocalCluster(2, backend="gloo", timeout=120, threads=1)
    yield c
    c.close()
