"""Rank helpers: single-process behaviour, environment parsing, and 2 Gloo ranks."""

from __future__ import annotations

import logging

import pytest
import torch

from torchgenetics.distributed import context as ctx
from torchgenetics.distributed import launch
from torchgenetics.errors import InputError


# -------------------------------------------------------------- single process
def test_single_process_defaults():
    assert not ctx.is_distributed()
    assert (ctx.rank(), ctx.world_size(), ctx.is_main()) == (0, 1, True)
    t = torch.tensor([1.0, 2.0])
    assert ctx.all_reduce_sum(t) is t and t.tolist() == [1.0, 2.0]
    assert ctx.broadcast_object({"a": 1}) == {"a": 1}
    assert ctx.gather_objects(5) == [5]
    assert ctx.all_gather_objects(5) == [5]
    ctx.barrier()
    assert ctx.rank_zero_only(lambda: 7)() == 7
    assert ctx.progress(range(3)).disable is False
    with pytest.raises(InputError):
        ctx.all_reduce(t, "mean")


@pytest.mark.parametrize("n,world", [(0, 1), (1, 3), (10, 3), (7, 7), (5, 8), (1000, 6)])
def test_shard_range_covers_every_item_once(n, world):
    shares = [ctx.shard_range(n, r, world) for r in range(world)]
    seen = [i for s in shares for i in range(n)[s]]
    assert seen == list(range(n))
    sizes = [s.stop - s.start for s in shares]
    assert max(sizes) - min(sizes) <= 1
    with pytest.raises(InputError):
        ctx.shard_range(n, world, world)


def test_launch_env_torchrun_and_slurm():
    tr = ctx.launch_env({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                         "MASTER_ADDR": "h1", "MASTER_PORT": "1234"})
    assert tr == {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                  "MASTER_ADDR": "h1", "MASTER_PORT": "1234"}
    sl = ctx.launch_env({"SLURM_PROCID": "5", "SLURM_NTASKS": "6", "SLURM_LOCALID": "2",
                         "SLURM_JOB_NODELIST": "gpu[07-09]", "SLURM_JOB_ID": "123456",
                         "SLURM_TASKS_PER_NODE": "3(x2)", "SLURM_NODEID": "1"})
    assert sl["RANK"] == "5" and sl["WORLD_SIZE"] == "6" and sl["LOCAL_RANK"] == "2"
    assert sl["MASTER_ADDR"] == "gpu07" and sl["LOCAL_WORLD_SIZE"] == "3"
    assert sl["MASTER_PORT"] == str(15000 + 123456 % 20000)
    # the step's own task count wins over the allocation's; one task is not distributed
    assert ctx.launch_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "4",
                           "SLURM_STEP_NUM_TASKS": "1"}) is None
    assert ctx.launch_env({}) is None
    with pytest.raises(InputError, match="MASTER_ADDR"):
        ctx.launch_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "2"})
    assert ctx.first_host("a-1,b") == "a-1" and ctx.first_host("x[3,5-6]") == "x3"
    assert ctx.local_world_size({"SLURM_STEP_TASKS_PER_NODE": "4,2(x2)", "SLURM_NODEID": "2"}) == 2
    with pytest.raises(InputError, match="SLURM_TASKS_PER_NODE"):
        ctx.local_world_size({"SLURM_TASKS_PER_NODE": "two"})


def test_run_local_rejects_nested_functions():
    with pytest.raises(InputError, match="module-level"):
        launch.run_local(lambda: 1)


# -------------------------------------------------------------- two ranks
def _helpers_on_rank(n_items):
    r, w = ctx.rank(), ctx.world_size()
    share = ctx.shard_range(n_items)
    t = torch.arange(3, dtype=torch.float64) * (r + 1)
    summed = ctx.all_reduce_sum(t.clone()).tolist()
    biggest = ctx.all_reduce(torch.tensor([float(r)]), "max").item()
    got = ctx.broadcast_object({"from": r} if r == 0 else None)
    gathered = ctx.gather_objects((r, share))
    everyone = ctx.all_gather_objects(r * 10)
    ctx.barrier()
    log = ctx.get_logger(f"torchgenetics.test.rank{r}")
    passes = [log.handlers[0].filters[0].filter(logging.LogRecord("x", lvl, "", 0, "m", None, None))
              for lvl in (logging.INFO, logging.WARNING)]
    bar_disabled = ctx.progress(range(2)).disable
    zero_only = ctx.rank_zero_only(ctx.rank)()
    return dict(rank=r, world=w, main=ctx.is_main(), dist=ctx.is_distributed(), summed=summed,
                biggest=biggest, got=got, gathered=gathered, everyone=everyone, passes=passes,
                bar_disabled=bar_disabled, zero_only=zero_only,
                local=(ctx.local_rank(), ctx.local_world_size()))


def _fails_on_rank_one():
    if ctx.rank() == 1:
        raise ValueError("boom on rank one")
    ctx.barrier()


def test_two_ranks_helpers(cluster):
    out = cluster.run(_helpers_on_rank, (11,))
    assert [o["rank"] for o in out] == [0, 1]
    for o in out:
        assert o["world"] == 2 and o["dist"] and o["summed"] == [0.0, 3.0, 6.0]
        assert o["biggest"] == 1.0 and o["got"] == {"from": 0} and o["everyone"] == [0, 10]
        assert o["local"] == (o["rank"], 2)
    assert out[0]["gathered"] == [(0, slice(0, 6)), (1, slice(6, 11))]
    assert out[1]["gathered"] is None
    assert [o["main"] for o in out] == [True, False]
    assert out[0]["passes"] == [True, True] and out[1]["passes"] == [False, True]
    assert [o["bar_disabled"] for o in out] == [False, True]
    assert [o["zero_only"] for o in out] == [0, None]


def test_run_local_reports_the_failing_rank():
    with pytest.raises(launch.RankError, match="boom on rank one") as err:
        launch.run_local(_fails_on_rank_one, nprocs=2, timeout=60)
    assert err.value.rank == 1
