"""Tests of torchgenetics.memory against faked cgroup, proc and SLURM environments."""

from pathlib import Path

import numpy as np
import pytest
import torch

from torchgenetics import memory
from torchgenetics.errors import InputError, MemoryBudgetError
from torchgenetics.memory import (
    available_bytes,
    dtype_bytes,
    format_bytes,
    memory_sources,
    parse_bytes,
    plan_block,
)

GiB = 1024**3
MiB = 1024**2


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def roots(tmp_path):
    """Empty fake /sys/fs/cgroup and /proc trees."""
    cg, proc = tmp_path / "cgroup", tmp_path / "proc"
    cg.mkdir()
    proc.mkdir()
    return cg, proc


def meminfo(proc: Path, available_kb: int) -> None:
    write(
        proc / "meminfo",
        f"MemTotal:       {4 * available_kb} kB\nMemFree:        1000 kB\n"
        f"MemAvailable:   {available_kb} kB\nCached:         5000 kB\n",
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        ("4GiB", 4 * GiB),
        ("4gib", 4 * GiB),
        ("512MB", 512 * 10**6),
        ("512 MiB", 512 * MiB),
        ("1e9", 10**9),
        ("1.5G", int(1.5 * GiB)),
        ("100", 100),
        ("100B", 100),
        ("2k", 2048),
        ("3TB", 3 * 10**12),
        (12345, 12345),
        (2.5e3, 2500),
        (np.int64(7), 7),
    ],
)
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "4 parsecs", "-1GB", "1.2.3", "inf", True, None, [1]])
def test_parse_bytes_rejects(text):
    with pytest.raises(InputError):
        parse_bytes(text)


def test_format_bytes():
    assert format_bytes(0) == "0 B"
    assert format_bytes(1023) == "1023 B"
    assert format_bytes(1536) == "1.50 KiB"
    assert format_bytes(4 * GiB) == "4.00 GiB"
    assert format_bytes(5 * 1024**5) == "5120.00 TiB"
    assert format_bytes(-2 * MiB) == "-2.00 MiB"
    # round trip within the printed precision
    assert parse_bytes(format_bytes(3 * GiB).replace(" ", "")) == 3 * GiB


def test_dtype_bytes():
    assert dtype_bytes(torch.float64) == 8
    assert dtype_bytes(torch.float16) == 2
    assert dtype_bytes(np.float32) == 4
    assert dtype_bytes("int8") == 1


def test_meminfo_only(roots):
    cg, proc = roots
    meminfo(proc, 1_000_000)
    assert memory_sources(env={}, cgroup_root=cg, proc_root=proc) == {"meminfo": 1_000_000 * 1024}
    assert available_bytes(safety=0.5, env={}, cgroup_root=cg, proc_root=proc) == 500_000 * 1024
    assert available_bytes(safety=1.0, env={}, cgroup_root=cg, proc_root=proc) == 1_000_000 * 1024


def test_meminfo_without_memavailable(roots):
    cg, proc = roots
    write(proc / "meminfo", "MemTotal: 100 kB\nMemFree: 10 kB\nCached: 5 kB\n")
    assert memory_sources(env={}, cgroup_root=cg, proc_root=proc) == {"meminfo": 15 * 1024}


def test_cgroup_v2_root_limit(roots):
    cg, proc = roots
    meminfo(proc, 64 * MiB)  # 64 GiB available on the host (in kB)
    write(cg / "cgroup.controllers", "cpu memory\n")
    write(cg / "memory.max", f"{4 * GiB}\n")
    write(cg / "memory.current", f"{1 * GiB}\n")
    write(cg / "memory.stat", f"anon 123\ninactive_file {GiB // 2}\nactive_file 7\n")
    sources = memory_sources(env={}, cgroup_root=cg, proc_root=proc)
    # 4 GiB limit - (1 GiB used - 0.5 GiB reclaimable cache)
    assert sources["cgroup_v2"] == 4 * GiB - GiB // 2
    assert available_bytes(safety=1.0, env={}, cgroup_root=cg, proc_root=proc) == 4 * GiB - GiB // 2


def test_cgroup_v2_unlimited_is_ignored(roots):
    cg, proc = roots
    meminfo(proc, 2 * MiB)  # 2 GiB
    write(cg / "cgroup.controllers", "memory\n")
    write(cg / "memory.max", "max\n")
    write(cg / "memory.current", "100\n")
    assert memory_sources(env={}, cgroup_root=cg, proc_root=proc) == {"meminfo": 2 * GiB}


def test_cgroup_v2_nested_takes_tightest_ancestor(roots):
    cg, proc = roots
    meminfo(proc, 64 * MiB)
    write(proc / "self" / "cgroup", "0::/user.slice/job42/step0\n")
    write(cg / "cgroup.controllers", "memory\n")
    write(cg / "user.slice" / "memory.max", "max\n")
    write(cg / "user.slice" / "job42" / "memory.max", f"{3 * GiB}\n")
    write(cg / "user.slice" / "job42" / "memory.current", f"{2 * GiB}\n")
    write(cg / "user.slice" / "job42" / "step0" / "memory.max", f"{8 * GiB}\n")
    write(cg / "user.slice" / "job42" / "step0" / "memory.current", f"{1 * GiB}\n")
    sources = memory_sources(env={}, cgroup_root=cg, proc_root=proc)
    assert sources["cgroup_v2"] == 1 * GiB  # parent: 3 GiB - 2 GiB
    assert available_bytes(safety=0.5, env={}, cgroup_root=cg, proc_root=proc) == GiB // 2


def test_cgroup_v2_over_limit_gives_zero(roots):
    cg, proc = roots
    meminfo(proc, 64 * MiB)
    write(cg / "memory.max", "1000\n")
    write(cg / "memory.current", "5000\n")
    assert memory_sources(env={}, cgroup_root=cg, proc_root=proc)["cgroup_v2"] == 0
    with pytest.raises(MemoryBudgetError):
        plan_block(10, 8, budget=available_bytes(env={}, cgroup_root=cg, proc_root=proc))


def test_cgroup_v1_limit(roots):
    cg, proc = roots
    meminfo(proc, 64 * MiB)
    write(proc / "self" / "cgroup", "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n")
    # container view: the host path does not exist, the mount root is our cgroup
    write(cg / "memory" / "memory.limit_in_bytes", f"{6 * GiB}\n")
    write(cg / "memory" / "memory.usage_in_bytes", f"{2 * GiB}\n")
    write(cg / "memory" / "memory.stat", f"cache 1\ntotal_inactive_file {GiB}\n")
    sources = memory_sources(env={}, cgroup_root=cg, proc_root=proc)
    assert sources["cgroup_v1"] == 5 * GiB
    assert "cgroup_v2" not in sources
    assert available_bytes(safety=1.0, env={}, cgroup_root=cg, proc_root=proc) == 5 * GiB


def test_cgroup_v1_nested_path(roots):
    cg, proc = roots
    meminfo(proc, 64 * MiB)
    write(proc / "self" / "cgroup", "4:memory:/slurm/uid_1/job_9\n")
    write(cg / "memory" / "memory.limit_in_bytes", "9223372036854771712\n")
    write(cg / "memory" / "slurm" / "uid_1" / "job_9" / "memory.limit_in_bytes", f"{GiB}\n")
    write(cg / "memory" / "slurm" / "uid_1" / "job_9" / "memory.usage_in_bytes", f"{GiB // 4}\n")
    assert memory_sources(env={}, cgroup_root=cg, proc_root=proc)["cgroup_v1"] == 3 * GiB // 4


def test_cgroup_v1_unlimited_is_ignored(roots):
    cg, proc = roots
    meminfo(proc, MiB)
    write(cg / "memory" / "memory.limit_in_bytes", "9223372036854771712\n")
    write(cg / "memory" / "memory.usage_in_bytes", "1000\n")
    assert memory_sources(env={}, cgroup_root=cg, proc_root=proc) == {"meminfo": GiB}


def test_slurm_mem_per_node(roots):
    cg, proc = roots
    meminfo(proc, 64 * MiB)
    env = {"SLURM_MEM_PER_NODE": "2048"}
    assert memory_sources(env=env, cgroup_root=cg, proc_root=proc)["slurm"] == 2 * GiB
    assert available_bytes(safety=0.5, env=env, cgroup_root=cg, proc_root=proc) == GiB
    assert memory_sources(env={"SLURM_MEM_PER_NODE": "3G"}, cgroup_root=cg, proc_root=proc)["slurm"] == 3 * GiB


def test_slurm_mem_per_cpu(roots):
    cg, proc = roots
    meminfo(proc, 64 * MiB)
    env = {"SLURM_MEM_PER_CPU": "1000", "SLURM_CPUS_ON_NODE": "4"}
    assert memory_sources(env=env, cgroup_root=cg, proc_root=proc)["slurm"] == 4000 * MiB
    # without a CPU count one CPU is assumed
    only = memory_sources(env={"SLURM_MEM_PER_CPU": "1000"}, cgroup_root=cg, proc_root=proc)
    assert only["slurm"] == 1000 * MiB


def test_minimum_of_all_sources(roots):
    cg, proc = roots
    meminfo(proc, 3 * MiB)  # 3 GiB
    write(cg / "memory.max", f"{5 * GiB}\n")
    write(cg / "memory.current", "0\n")
    env = {"SLURM_MEM_PER_NODE": "4096"}
    sources = memory_sources(env=env, cgroup_root=cg, proc_root=proc)
    assert sources == {"cgroup_v2": 5 * GiB, "slurm": 4 * GiB, "meminfo": 3 * GiB}
    assert available_bytes(safety=1.0, env=env, cgroup_root=cg, proc_root=proc) == 3 * GiB


def test_env_override_replaces_everything(roots):
    cg, proc = roots
    meminfo(proc, MiB)
    write(cg / "memory.max", "1000\n")
    env = {"TORCHGEN_MEMORY_BUDGET": "4GiB", "SLURM_MEM_PER_NODE": "1"}
    assert memory_sources(env=env, cgroup_root=cg, proc_root=proc) == {"env": 4 * GiB}
    # the user's budget is used as given, not scaled by the safety factor
    assert available_bytes(safety=0.5, env=env, cgroup_root=cg, proc_root=proc) == 4 * GiB
    assert available_bytes(env={"TORCHGEN_MEMORY_BUDGET": "1e9"}) == 10**9
    assert available_bytes("cuda", env={"TORCHGEN_MEMORY_BUDGET": "512MB"}) == 512 * 10**6


def test_env_override_read_from_os_environ(monkeypatch):
    monkeypatch.setenv("TORCHGEN_MEMORY_BUDGET", "512MB")
    assert available_bytes() == 512 * 10**6
    assert plan_block(10**6, 8 * 1000) == 64_000


def test_bad_env_override_names_variable():
    with pytest.raises(InputError, match="TORCHGEN_MEMORY_BUDGET='lots'"):
        available_bytes(env={"TORCHGEN_MEMORY_BUDGET": "lots"})


def test_no_source_uses_fallback(roots):
    cg, proc = roots
    assert memory_sources(env={}, cgroup_root=cg, proc_root=proc) == {}
    assert available_bytes(safety=1.0, env={}, cgroup_root=cg, proc_root=proc) == memory._FALLBACK_BYTES


def test_real_machine_budget_is_positive(monkeypatch):
    monkeypatch.delenv("TORCHGEN_MEMORY_BUDGET", raising=False)
    assert available_bytes() > 0


@pytest.mark.parametrize("safety", [0, -0.1, 1.5])
def test_bad_safety(safety):
    with pytest.raises(InputError, match="safety"):
        available_bytes(safety=safety, env={"TORCHGEN_MEMORY_BUDGET": "1GB"})


def test_cuda_budget_uses_mem_get_info(monkeypatch):
    calls = []

    def fake_mem_get_info(index):
        calls.append(index)
        return 3 * GiB, 16 * GiB

    monkeypatch.setattr(torch.cuda, "mem_get_info", fake_mem_get_info)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda index: 2 * GiB)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda index: GiB)
    # cached-but-unused allocator memory (1 GiB) counts as free
    assert memory_sources("cuda:1", env={}) == {"cuda": 4 * GiB}
    assert available_bytes(torch.device("cuda", 1), safety=0.5, env={}) == 2 * GiB
    assert calls == [1, 1]


def test_plan_block_basic():
    # 1 MB / (8 kB per column) = 125 columns
    assert plan_block(10_000, 8_000, budget="1MB") == 125
    assert plan_block(10_000, 8_000, live_copies=2, budget="1MB") == 62
    assert plan_block(100, 8_000, budget="1MB") == 100
    assert plan_block(10_000, 8_000, budget=10**6, max_block=50) == 50
    assert plan_block(10_000, 8_000, budget=8_000) == 1


def test_plan_block_working_set_fits():
    for n_total, per, copies, budget in [(997, 123, 3, 10**5), (10, 1, 1, 7), (5000, 4096, 2, 3 * MiB)]:
        b = plan_block(n_total, per, live_copies=copies, budget=budget)
        assert b * per * copies <= budget
        assert b == n_total or (b + 1) * per * copies > budget


def test_plan_block_zero_columns():
    assert plan_block(0, 8, budget=100) == 1


def test_plan_block_min_block_capped_by_total():
    # only 3 columns exist, so min_block=10 asks for 3
    assert plan_block(3, 10, budget=30, min_block=10) == 3


def test_plan_block_raises_with_clear_message():
    with pytest.raises(MemoryBudgetError) as info:
        plan_block(1000, 8 * 1024**2, live_copies=2, budget="10MiB")
    message = str(info.value)
    assert "10.00 MiB" in message  # budget
    assert "16.00 MiB" in message  # bytes per column times live copies
    assert "TORCHGEN_MEMORY_BUDGET" in message
    assert isinstance(info.value, MemoryError)
    with pytest.raises(MemoryBudgetError, match="cannot hold 20 column"):
        plan_block(1000, 100, budget=1000, min_block=20)


def test_plan_block_uses_device_budget(monkeypatch):
    monkeypatch.setenv("TORCHGEN_MEMORY_BUDGET", "800")
    assert plan_block(1000, 8) == 100


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n_columns_total=-1, bytes_per_column=8),
        dict(n_columns_total=10, bytes_per_column=0),
        dict(n_columns_total=10, bytes_per_column=8, live_copies=0),
        dict(n_columns_total=10, bytes_per_column=8, min_block=0),
        dict(n_columns_total=10, bytes_per_column=8, max_block=0),
    ],
)
def test_plan_block_bad_arguments(kwargs):
    with pytest.raises(InputError):
        plan_block(budget=1000, **kwargs)
