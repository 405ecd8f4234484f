"""Distributed SuSiE / mfsusie scans: loci over 2 Gloo ranks, per-rank checkpoints, interrupted and resumed."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from torchgenetics.distributed.balance import balanced_split, round_robin_split
from torchgenetics.distributed.scan import (
    RankFailedError,
    distributed_scan,
    rank_checkpoint,
    scan_assignment,
)
from torchgenetics.errors import InputError
from torchgenetics.susie import Locus, load_scan, scan

OPTS = dict(L=5, first_max_iter=3, chunk_size=2)


def _loci():
    """Nine loci of different sizes: strong, weak and no signal (rebuilt in every rank)."""
    out = []
    for i in range(9):
        g = torch.Generator().manual_seed(300 + i)
        n, p = 200, 20 + 4 * i
        X = torch.randn(n, p, generator=g, dtype=torch.float64).cumsum(1) / 3
        y = (0.0, 0.3, 0.8)[i % 3] * X[:, p // 2] + torch.randn(n, generator=g, dtype=torch.float64)
        out.append(Locus.from_data(f"L{i}", (X, y)))
    return out


class Stop(Exception):
    pass


def _scan_once(prefix, stop_rank):
    """Scan (rank ``stop_rank`` raising after its first chunk); what happened on this rank."""
    from torchgenetics.distributed import rank

    chunks = []

    def callback(phase, names):
        chunks.append((phase, list(names)))
        if rank() == stop_rank:
            raise Stop("stopped after the first chunk")

    try:
        out = distributed_scan(_loci(), checkpoint=prefix, callback=callback, **OPTS)
    except (Stop, RankFailedError) as err:
        return {"error": type(err).__name__, "chunks": chunks}
    return {"error": None, "chunks": chunks, "result": out}


def _equal(a, b):
    pd.testing.assert_frame_equal(a.table, b.table)
    assert list(a.fits) == list(b.fits)
    for name in a.fits:
        for f in ("alpha", "mu", "mu2", "V", "elbo", "pip"):
            assert torch.equal(getattr(a.fits[name], f), getattr(b.fits[name], f)), (name, f)


@pytest.fixture(scope="module")
def reference():
    return scan(_loci(), **OPTS)


def test_interrupted_two_rank_scan_resumes_to_the_single_process_result(cluster, tmp_path, reference):
    prefix = str(tmp_path / "scan")
    # the job stops (rank 1 fails after one chunk), then the same call runs again: the
    # second run shares nothing with the first but the checkpoint files
    first0, first1 = cluster.run(_scan_once, args=(prefix, 1))
    second0, second1 = cluster.run(_scan_once, args=(prefix, -1))
    assert first1["error"] == "Stop" and len(first1["chunks"]) == 1
    assert first0["error"] == "RankFailedError"  # rank 0 finished its loci, then learnt of rank 1
    assert second0["error"] is None and second1["error"] is None and second1["result"] is None
    assert second0["chunks"] == []  # rank 0 had finished: nothing is redone
    phase, done = first1["chunks"][0]
    assert phase == "first"
    redone = [names for ph, names in second1["chunks"] if ph == "first" and set(names) & set(done)]
    assert redone == [] and len(second1["chunks"]) >= 1
    merged = second0["result"]
    _equal(merged, reference)
    assert merged.table["locus"].tolist() == [f"L{i}" for i in range(9)]
    assert {"null", "refit"} <= set(merged.table["status"])
    # each rank's checkpoint holds exactly its own loci, finished
    parts = scan_assignment(_loci(), 2)
    assert all(parts)
    for r in range(2):
        part = load_scan(rank_checkpoint(prefix, r, 2))
        assert part.table["locus"].tolist() == [f"L{i}" for i in parts[r]]


def _functional_loci():
    """Four mfsusie loci (one functional outcome of 16 positions), signal in every other one."""
    out = []
    for i in range(4):
        g = torch.Generator().manual_seed(40 + i)
        X = torch.randn(100, 15, generator=g, dtype=torch.float64)
        Y = torch.randn(100, 16, generator=g, dtype=torch.float64) + (i % 2) * X[:, 3:4]
        out.append(Locus.from_data(f"F{i}", {"X": X, "Y": [Y]}))
    return out


def _functional_scan():
    return distributed_scan(_functional_loci(), L=3, first_max_iter=3, chunk_size=1)


def test_functional_loci_scan_on_two_ranks(cluster):
    reference = scan(_functional_loci(), L=3, first_max_iter=3, chunk_size=1)
    merged, other = cluster.run(_functional_scan)
    assert other is None
    pd.testing.assert_frame_equal(merged.table, reference.table)
    assert set(merged.table["kind"]) == {"functional"} and merged.table["n_cs"].sum() >= 1
    assert list(merged.fits) == list(reference.fits)
    for name, fit in merged.fits.items():
        assert torch.equal(fit.alpha, reference.fits[name].alpha)


def test_single_process_call_is_the_plain_scan(tmp_path, reference):
    out = distributed_scan(_loci(), checkpoint=tmp_path / "one.h5", assignment="round_robin", **OPTS)
    _equal(out, reference)
    assert rank_checkpoint(tmp_path / "one.h5", 0, 1).name == "one.rank0-of-1.h5"
    assert (tmp_path / "one.rank0-of-1.h5").exists()


def test_assignments_are_deterministic_and_cover_every_locus():
    loci = _loci()
    for world in (1, 2, 3, 5, 12):
        for how in ("balanced", "round_robin"):
            parts = scan_assignment(loci, world, how)
            assert sorted(i for p in parts for i in p) == list(range(len(loci)))
            assert parts == scan_assignment(loci, world, how)
    sizes = [loc.n_variables for loc in loci]
    loads = [sum(sizes[i] for i in p) for p in balanced_split(sizes, 2)]
    assert abs(loads[0] - loads[1]) <= max(sizes)
    assert round_robin_split(3, 2) == [[0, 2], [1]]
    with pytest.raises(InputError, match="assignment"):
        scan_assignment(loci, 2, "random")
    with pytest.raises(InputError, match="positive integer"):
        balanced_split([1.0], 0)
    with pytest.raises(InputError, match="cost"):
        balanced_split([1.0, -2.0], 2)
