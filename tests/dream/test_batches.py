"""Cell batches: sparse rows, measured bytes per cell, batch sizes from the (cgroup) memory budget."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from torchgenetics.dream import (
    CellRows,
    measure_bytes_per_cell,
    plan_batch_size,
    prepare_data,
    simulate_screen,
)
from torchgenetics.dream.guides import default_guide
from torchgenetics.dream.trans import trans_model
from torchgenetics.errors import MemoryBudgetError
from torchgenetics.memory import available_bytes


def test_sparse_rows_stay_sparse_when_a_dense_copy_does_not_fit():
    dense = np.random.default_rng(0).poisson(0.3, (50, 8)).astype(float)
    rows = CellRows(sp.csr_matrix(dense), budget=100)
    assert not rows.is_dense
    ind = torch.tensor([7, 3, 41])
    np.testing.assert_array_equal(rows(ind).numpy(), dense[[7, 3, 41]])
    assert CellRows(sp.csr_matrix(dense)).is_dense


def test_bytes_per_cell_grow_with_the_features():
    def bytes_for(n_features):
        sim = simulate_screen(n_cells=200, n_features=n_features, n_groups=1, seed=0)
        model, _ = trans_model(prepare_data(sim.counts, sim.cells, sim.cis_gene), "counts", sim.truth["x_true"])
        return measure_bytes_per_cell(model, default_guide, 200)

    small, large = bytes_for(10), bytes_for(40)
    assert small >= 10 * 8
    assert 2.5 < large / small < 5.0


def test_batch_size_from_a_cgroup_limit(tmp_path):
    cgroup, proc = tmp_path / "cgroup", tmp_path / "proc"
    cgroup.mkdir()
    (proc / "self").mkdir(parents=True)
    (cgroup / "cgroup.controllers").write_text("memory\n")
    (cgroup / "memory.max").write_text(str(100 * 2**20))
    (cgroup / "memory.current").write_text(str(20 * 2**20))
    (proc / "self" / "cgroup").write_text("0::/\n")
    (proc / "meminfo").write_text("MemAvailable: 64000000 kB\n")
    budget = available_bytes(env={}, cgroup_root=cgroup, proc_root=proc, safety=0.5)
    assert budget == 40 * 2**20
    assert plan_batch_size(1_000_000, 4096, budget=budget) == 40 * 2**20 // 4096
    assert plan_batch_size(5_000, 4096, budget=budget) is None          # everything fits: full batch
    with pytest.raises(MemoryBudgetError, match="TORCHGEN_MEMORY_BUDGET"):
        plan_batch_size(1_000_000, 2**20, budget=budget)
