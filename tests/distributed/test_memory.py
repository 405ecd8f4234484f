"""Per-rank memory budgets: node-wide sources divided among the ranks of a node."""

from __future__ import annotations

import pytest
import torch

from torchgenetics import memory
from torchgenetics.distributed.context import local_world_size
from torchgenetics.memory import available_bytes, memory_sources, pinned_budget

GiB, MiB = 1024**3, 1024**2


@pytest.fixture
def roots(tmp_path):
    cg, proc = tmp_path / "cgroup", tmp_path / "proc"
    cg.mkdir()
    proc.mkdir()
    (proc / "meminfo").write_text(f"MemTotal: {32 * MiB} kB\nMemAvailable: {8 * MiB} kB\n")  # 8 GiB
    (cg / "memory.max").write_text(f"{12 * GiB}\n")
    (cg / "memory.current").write_text("0\n")
    return cg, proc


def test_node_sources_are_divided_among_local_ranks(roots):
    cg, proc = roots
    one = memory_sources(env={"SLURM_MEM_PER_NODE": "16G"}, cgroup_root=cg, proc_root=proc)
    assert one == {"cgroup_v2": 12 * GiB, "slurm": 16 * GiB, "meminfo": 8 * GiB}
    four = memory_sources(env={"SLURM_MEM_PER_NODE": "16G", "LOCAL_WORLD_SIZE": "4"},
                          cgroup_root=cg, proc_root=proc)
    assert four == {"cgroup_v2": 3 * GiB, "slurm": 4 * GiB, "meminfo": 2 * GiB}
    assert available_bytes(safety=0.5, env={"LOCAL_WORLD_SIZE": "4"}, cgroup_root=cg,
                           proc_root=proc) == GiB
    # srun: this node's entry of the compressed tasks-per-node list
    env = {"SLURM_TASKS_PER_NODE": "4,2(x2)", "SLURM_NODEID": "1"}
    assert local_world_size(env) == 2
    assert memory_sources(env=env, cgroup_root=cg, proc_root=proc)["meminfo"] == 4 * GiB


def test_slurm_per_cpu_memory_is_per_task_after_division(roots):
    cg, proc = roots
    # per task: 1000 MiB x 2 CPUs, whatever the number of tasks on the node
    env = {"SLURM_MEM_PER_CPU": "1000", "SLURM_CPUS_PER_TASK": "2", "SLURM_NTASKS_PER_NODE": "3"}
    assert memory_sources(env=env, cgroup_root=cg, proc_root=proc)["slurm"] == 2000 * MiB
    # node total: CPUs on the node, shared by the 3 tasks
    env = {"SLURM_MEM_PER_CPU": "1000", "SLURM_CPUS_ON_NODE": "6", "SLURM_NTASKS_PER_NODE": "3"}
    assert memory_sources(env=env, cgroup_root=cg, proc_root=proc)["slurm"] == 2000 * MiB


def test_env_override_is_per_process_and_never_divided(roots):
    cg, proc = roots
    env = {"TORCHGEN_MEMORY_BUDGET": "4GiB", "LOCAL_WORLD_SIZE": "8"}
    assert memory_sources(env=env, cgroup_root=cg, proc_root=proc) == {"env": 4 * GiB}
    assert available_bytes(safety=0.5, env=env, cgroup_root=cg, proc_root=proc) == 4 * GiB


def test_gpu_shared_by_ranks(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index: (8 * GiB, 16 * GiB))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda index: 0)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda index: 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert memory_sources("cuda:0", env={"LOCAL_WORLD_SIZE": "2"}) == {"cuda": 8 * GiB}  # one GPU each
    assert memory_sources("cuda:0", env={"LOCAL_WORLD_SIZE": "4"}) == {"cuda": 4 * GiB}  # two per GPU


def test_pinned_budget_replaces_detected_sources(roots, monkeypatch):
    monkeypatch.delenv("TORCHGEN_MEMORY_BUDGET", raising=False)
    cg, proc = roots
    with pinned_budget("1GiB"):
        assert memory_sources(env={"LOCAL_WORLD_SIZE": "4"}, cgroup_root=cg, proc_root=proc) == {"pinned": GiB}
        assert available_bytes(safety=0.5, env={}, cgroup_root=cg, proc_root=proc) == GiB // 2
        with pinned_budget(3 * MiB):
            assert memory.plan_block(10, MiB, budget=None, device="cpu") == 1  # 3 MiB x 0.5
        # the user's override still wins
        assert available_bytes(env={"TORCHGEN_MEMORY_BUDGET": "5MB"}) == 5 * 10**6
    assert "pinned" not in memory_sources(env={}, cgroup_root=cg, proc_root=proc)
