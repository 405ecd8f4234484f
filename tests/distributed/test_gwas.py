"""Marginal GWAS on 2 Gloo ranks: the merged tables are byte-identical to one process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from torchgenetics.datasets import example
from torchgenetics.distributed.gwas import gwas as dist_gwas
from torchgenetics.distributed.gwas import merge_results, variant_share
from torchgenetics.errors import InputError
from torchgenetics.gwas import gwas
from torchgenetics.io import read_plink

VARIANTS = np.arange(200, 1700)


def _inputs():
    """PLINK genotypes (with missing calls), two phenotypes with missing values, covariates."""
    G = read_plink(example().bfile)
    rng = np.random.default_rng(0)
    y = pd.DataFrame({"P1": rng.normal(size=G.n_samples), "P2": rng.normal(size=G.n_samples)})
    y.loc[rng.random(G.n_samples) < 0.05, "P2"] = np.nan
    C = pd.DataFrame({"age": rng.normal(size=G.n_samples), "sex": rng.integers(0, 2, G.n_samples)})
    return G, y, C


def _frames(res):
    return None if res is None else res.to_frame()


def _on_rank(tmp):
    G, y, C = _inputs()
    from torchgenetics.distributed import rank

    in_memory = dist_gwas(G, y, C, variants=VARIANTS, out=f"{tmp}/dist")
    parts_dir = Path(tmp) / "parts"
    if rank() == 0:
        parts_dir.mkdir()
    from torchgenetics.distributed import barrier

    barrier()
    on_disk = dist_gwas(G, y, C, variants=VARIANTS, block_size=400, parts_dir=parts_dir,
                        keep_parts=True)
    # one block: rank 1 has nothing to test and still takes part
    lopsided = dist_gwas(G, y, C, variants=VARIANTS[:300], block_size=1000)
    share = variant_share(G, VARIANTS, block_size=400)[0]
    return _frames(in_memory), _frames(on_disk), _frames(lopsided), share


def test_distributed_gwas_identical_to_single_process(cluster, tmp_path):
    G, y, C = _inputs()
    single = gwas(G, y, C, variants=VARIANTS)
    written = single.write(tmp_path / "single")
    ranks = cluster.run(_on_rank, (str(tmp_path),))
    (mem0, disk0, lop0, share0), (mem1, disk1, lop1, share1) = ranks
    assert mem1 is None and disk1 is None and lop1 is None
    expected = single.to_frame()
    assert mem0.equals(expected) and disk0.equals(expected)
    assert lop0.equals(gwas(G, y, C, variants=VARIANTS[:300]).to_frame())
    for path in written:  # the tables rank 0 wrote are the same bytes
        twin = tmp_path / path.name.replace("single", "dist")
        assert twin.read_bytes() == path.read_bytes()
    # whole blocks of 400: 1500 variants = 4 blocks, 2 per rank
    assert np.array_equal(share0, VARIANTS[:800]) and np.array_equal(share1, VARIANTS[800:])
    parts = sorted(p.name for p in (tmp_path / "parts").iterdir())
    assert parts == ["gwas.part-00000-of-00002.h5", "gwas.part-00001-of-00002.h5"]


def test_merge_results_checks_parts_belong_together():
    G, y, C = _inputs()
    a = gwas(G, y, C, variants=np.arange(10))
    b = gwas(G, y["P1"], C, variants=np.arange(10, 20))
    with pytest.raises(InputError, match="part 1 is not of the same scan"):
        merge_results([a, b])
    with pytest.raises(InputError):
        merge_results([])


def test_single_process_is_plain_gwas(tmp_path):
    G, y, C = _inputs()
    res = dist_gwas(G, y, C, variants=np.arange(50), out=tmp_path / "one", block_size=7)
    # the same blocks as one process (block width changes results in the last bits)
    assert res.to_frame().equals(gwas(G, y, C, variants=np.arange(50), block_size=7).to_frame())
    assert (tmp_path / "one.P1.glm.tsv").is_file()
