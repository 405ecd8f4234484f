"""Mixed-model (LOCO) GWAS on 2 Gloo ranks: the merged result equals one process."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from torchgenetics.datasets import simulate_genotypes, simulate_phenotype
from torchgenetics.distributed.lmm import ShardedLocoCovariance
from torchgenetics.distributed.lmm import lmm_gwas as dist_lmm
from torchgenetics.gwas import LocoCovariance, lmm_gwas

VARIANTS = np.arange(60, 840)
OPTIONS = dict(precond_rank=20, n_calibration=12, block_size=100)


def _inputs():
    """Three chromosomes with missing calls, a polygenic phenotype, two covariates."""
    sim = simulate_genotypes(240, 900, chromosomes=[400, 300, 200], missing_rate=0.01, seed=0)
    y = simulate_phenotype(sim, h2=0.5, n_causal=30, seed=1).y
    rng = np.random.default_rng(2)
    C = pd.DataFrame({"age": rng.normal(size=240), "sex": rng.integers(0, 2, 240)})
    return sim.to_genotypes(), y, C


def _frame(res):
    return None if res is None else (res.to_frame(), res.info)


def _on_rank(tmp):
    G, y, C = _inputs()
    exact = dist_lmm(G, y, C, variants=VARIANTS, out=f"{tmp}/dist", **OPTIONS)
    sharded = dist_lmm(G, y, C, variants=VARIANTS, shard_grm=True, **OPTIONS)
    # one block of tests (rank 1 tests nothing), whole-genome kernel
    lopsided = dist_lmm(G, y, C, variants=VARIANTS[:80], loco=False, **OPTIONS)
    cov = ShardedLocoCovariance(G)
    local = [K.local_variant_index.size for K in cov.stack.components]
    return _frame(exact), _frame(sharded), _frame(lopsided), local, torch.get_num_threads()


def test_distributed_lmm_identical_to_single_process(cluster, tmp_path):
    G, y, C = _inputs()
    single = lmm_gwas(G, y, C, variants=VARIANTS, **OPTIONS)
    written = single.write(tmp_path / "single")
    (exact0, shard0, lop0, local0, threads), (exact1, shard1, lop1, local1, _) = \
        cluster.run(_on_rank, (str(tmp_path),))
    assert threads == torch.get_num_threads() == 1
    assert exact1 is None and shard1 is None and lop1 is None
    expected = single.to_frame()
    # every bit as in one process, info included, and the same bytes written
    assert exact0[0].equals(expected) and exact0[1] == single.info
    for path in written:
        twin = tmp_path / path.name.replace("single", "dist")
        assert twin.read_bytes() == path.read_bytes()
    # a rank without a block of tests
    assert lop0[0].equals(lmm_gwas(G, y, C, variants=VARIANTS[:80], loco=False, **OPTIONS).to_frame())
    # sharded GRM: equal to rounding; each rank streams half the variants, so rank 1
    # holds no variant of chromosome 1 and rank 0 none of chromosome 3
    frame, info = shard0
    pd.testing.assert_frame_equal(frame, expected, check_exact=False, rtol=1e-8, atol=1e-12)
    assert info["grm_shards"] == 2 and info["kernels"] == single.info["kernels"]
    assert info["n_model_variants"] == single.info["n_model_variants"]
    for k, g in single.info["gamma"].items():
        assert abs(info["gamma"][k] - g) <= 1e-8 * abs(g)
    assert [K.m_eff for K in LocoCovariance(G).stack.components] == [400, 300, 200]
    assert local0 == [400, 50, 0] and local1 == [0, 250, 200]


def test_one_process_is_lmm_gwas(tmp_path):
    G, y, C = _inputs()
    options = dict(OPTIONS, variants=np.arange(0, 900, 3))
    single = lmm_gwas(G, y, C, **options)
    res = dist_lmm(G, y, C, out=tmp_path / "one", **options)
    assert res.to_frame().equals(single.to_frame()) and res.info == single.info
    assert (tmp_path / f"one.{single.phenotypes[0]}.glm.tsv").is_file()
    sharded = dist_lmm(G, y, C, shard_grm=True, **options)  # a world of one rank
    pd.testing.assert_frame_equal(sharded.to_frame(), single.to_frame(), check_exact=False, rtol=1e-8)
