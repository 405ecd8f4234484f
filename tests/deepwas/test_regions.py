"""Regions from sumstats + annotations + LD; banded helpers."""

import numpy as np
import pytest
import torch

from torchgenetics.deepwas.banded import BlockTridiagonal, bands_from_matvec
from torchgenetics.deepwas.data import Annotations, SumStats
from torchgenetics.deepwas.regions import banded_subset, build_regions, ld_matmul
from torchgenetics.errors import InputError
from torchgenetics.operators import BandedLD, BlockLD


def _ld_matrix(p, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(300, p, generator=g, dtype=torch.float64).cumsum(1)
    X = (X - X.mean(0)) / X.std(0)
    return X.T @ X / 300


def _inputs(p=10, missing_ann=(), missing_ss=(), extra_ss=0, chrom=None):
    ids = np.array([f"v{i}" for i in range(p)], dtype=object)
    chrom = np.array(["1"] * p) if chrom is None else np.asarray(chrom)
    ss_ids = [i for k, i in enumerate(ids) if k not in missing_ss] + [f"x{k}" for k in range(extra_ss)]
    ss = SumStats(ss_ids, np.arange(len(ss_ids), dtype=float), 1000,
                  list(chrom[[k for k in range(p) if k not in missing_ss]]) + ["1"] * extra_ss)
    keep = [k for k in range(p) if k not in missing_ann]
    ann = Annotations(ids[keep], np.arange(len(keep), dtype=float)[:, None] * np.ones((1, 2)),
                      ["f1", "f2"], chrom[keep])
    return ids, ss, ann


def test_block_regions_match_by_id_and_count_drops():
    R = _ld_matrix(10)
    op = BlockLD([R[:6, :6], R[6:, 6:]])
    ids, ss, ann = _inputs(10, missing_ann=(2,), missing_ss=(7,), extra_ss=3)
    op.variant_ids = ids
    rs = build_regions(ss, ann, op)
    assert len(rs) == 2
    r0, r1 = rs
    assert r0.variant_ids.tolist() == ["v0", "v1", "v3", "v4", "v5"]  # v2 has no annotations
    assert r0.n_scored == 5 and r1.n_variants == 4 and r1.n_scored == 3  # v7 flank only
    keep = [0, 1, 3, 4, 5]
    assert torch.allclose(r0.ld, R[keep][:, keep])
    assert r1.variant_ids[r1.window.numpy()].tolist() == ["v6", "v8", "v9"]
    assert r1.z.tolist() == [6.0, 7.0, 8.0]  # statistics rows of v6, v8, v9
    assert r0.features[2].tolist() == [2.0, 2.0]  # annotation row of v3
    rep = rs.report
    assert (rep["n_no_annotation"], rep["n_flank_only"], rep["n_sumstats_not_in_ld"]) == (1, 1, 3)
    assert "1 LD variants without annotations" in rs.summary()


def test_block_windows_with_flank():
    R = _ld_matrix(12)
    op = BlockLD([R])
    ids, ss, ann = _inputs(12)
    op.variant_ids = ids
    rs = build_regions(ss, ann, op, window_size=4, flank=2)
    assert [r.n_scored for r in rs] == [4, 4, 4]
    mid = rs[1]
    assert mid.variant_ids.tolist() == [f"v{i}" for i in range(2, 10)]
    assert mid.variant_ids[mid.window.numpy()].tolist() == ["v4", "v5", "v6", "v7"]
    assert torch.allclose(mid.ld, R[2:10, 2:10])


def test_banded_regions_and_subset():
    R = _ld_matrix(40)
    op = BandedLD.from_dense(R, window=5)
    dense = op.to_dense()
    idx = np.array([0, 1, 3, 4, 9, 10, 11, 20])
    sub = banded_subset(op, idx)
    assert torch.allclose(sub.to_dense(), dense[idx][:, idx])
    ids, ss, ann = _inputs(40, missing_ann=(17,), chrom=["1"] * 20 + ["2"] * 20)
    op.variant_ids = ids
    rs = build_regions(ss, ann, op, window_size=8)
    assert rs.chromosomes == ["1", "2"]
    assert sum(r.n_scored for r in rs) == 39
    first = rs[0]
    assert isinstance(first.ld, BandedLD)
    # 19 scored on chromosome 1 -> balanced windows of 7, 6, 6; the first (v0..v6) gets a
    # flank of one bandwidth (5) on the right
    assert [r.n_scored for r in rs if r.chrom == "1"] == [7, 6, 6]
    assert first.variant_ids.tolist() == [f"v{i}" for i in range(12)]
    last_chr1 = [r for r in rs if r.chrom == "1"][-1]
    assert all(int(v[1:]) < 20 for v in last_chr1.variant_ids)
    keep = [int(v[1:]) for v in rs[2].variant_ids]
    assert torch.allclose(rs[2].ld.to_dense(), dense[keep][:, keep])


def test_build_regions_errors():
    R = BlockLD([torch.eye(2, dtype=torch.float64)])
    _, ss, ann = _inputs(2)
    with pytest.raises(InputError, match="variant_ids"):
        build_regions(ss, ann, R)
    R.variant_ids = np.array(["q1", "q2"])
    with pytest.raises(InputError, match="no region"):
        build_regions(ss, ann, R)
    op = BlockLD([torch.eye(4, dtype=torch.float64)])
    ids, ss, ann = _inputs(4, chrom=["1", "1", "2", "2"])
    op.variant_ids = ids
    with pytest.raises(InputError, match="spans chromosomes"):
        build_regions(ss, ann, op)


def test_block_tridiagonal_and_band_extraction():
    R = _ld_matrix(50)
    op = BandedLD.from_dense(R, window=7)
    dense = op.to_dense()
    X = torch.randn(50, 3, dtype=torch.float64)
    for block in (7, 10, 50):
        assert torch.allclose(BlockTridiagonal(op.bands, block=block).matmul(X), dense @ X)
    assert torch.allclose(ld_matmul(op, X), dense @ X)
    A = dense @ torch.diag(torch.rand(50, dtype=torch.float64)) @ dense  # bandwidth 14
    bands = bands_from_matvec(lambda Y: A @ Y, 50, 14)
    assert torch.allclose(BandedLD(bands).to_dense(), A)
