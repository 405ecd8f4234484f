import numpy as np
import pandas as pd
import pytest
import torch

from torchgenetics.errors import FileFormatError, InputError
from torchgenetics.genotypes import Genotypes
from torchgenetics.operators import BandedLD, BlockLD, load_ld, repair_psd


def random_corr(rng, p):
    A = rng.normal(size=(p, p + 3))
    C = A @ A.T
    d = np.sqrt(np.diag(C))
    return C / np.outer(d, d)


def not_psd(p=6, seed=0):
    """A symmetric unit-diagonal matrix with a negative eigenvalue (truncated correlations)."""
    R = random_corr(np.random.default_rng(seed), p)
    i, j = np.indices(R.shape)
    R[np.abs(i - j) > 1] = 0.0
    R[0, 1] = R[1, 0] = 0.99
    R[1, 2] = R[2, 1] = -0.99
    assert np.linalg.eigvalsh(R).min() < -0.1
    return R


def test_block_ld_from_matrices_dense_twin(dense_twin):
    rng = np.random.default_rng(0)
    mats = [random_corr(rng, p) for p in (3, 5, 1, 4)]
    op = BlockLD(mats)
    D = np.zeros((13, 13))
    a = 0
    for M in mats:
        D[a:a + M.shape[0], a:a + M.shape[0]] = M
        a += M.shape[0]
    dense_twin(op, D)
    # permuted (non-contiguous) blocks
    perm = rng.permutation(13)
    index = [perm[:3], perm[3:8], perm[8:9], perm[9:]]
    op = BlockLD(mats, index=index)
    P = np.zeros((13, 13))
    for M, idx in zip(mats, index, strict=True):
        P[np.ix_(idx, idx)] = M
    dense_twin(op, P)
    assert [b.tolist() for b in op.block_index] == [i.tolist() for i in index]


def test_block_ld_from_genotypes(geno, hand_z, dense_twin):
    Z, _ = hand_z
    n, m = Z.shape
    op = BlockLD.from_genotypes(geno, [0, 10, 25, 50])
    D = np.zeros((m, m))
    for a, b in [(0, 10), (10, 25), (25, 50), (50, 60)]:
        D[a:b, a:b] = Z[:, a:b].T @ Z[:, a:b] / n
    dense_twin(op, D)
    assert op.variant_ids[0] == "v0"
    # index sets, in any order
    sets = [np.arange(0, 60, 2), np.arange(1, 60, 2)]
    op2 = BlockLD.from_genotypes(geno, sets)
    D2 = np.zeros((m, m))
    for idx in sets:
        D2[np.ix_(idx, idx)] = Z[:, idx].T @ Z[:, idx] / n
    dense_twin(op2, D2)


def test_block_ld_from_region_table(hand_z, dosages):
    Z, _ = hand_z
    n, m = Z.shape
    variants = pd.DataFrame({"chrom": ["1"] * 30 + ["2"] * 30,
                             "pos": np.r_[np.arange(30) * 100, np.arange(30) * 100]})
    G = Genotypes.from_array(dosages, variants=variants)
    regions = pd.DataFrame({"chrom": ["1", "1", "2"], "start": [0, 1200, 0], "stop": [1200, 10**6, 10**6]})
    op = BlockLD.from_genotypes(G, regions)
    assert [len(i) for i in op.block_index] == [12, 18, 30]
    D = np.zeros((m, m))
    for a, b in [(0, 12), (12, 30), (30, 60)]:
        D[a:b, a:b] = Z[:, a:b].T @ Z[:, a:b] / n
    np.testing.assert_allclose(op.to_dense().numpy(), D, atol=1e-13)
    with pytest.raises(InputError, match="fall in no LD region"):
        BlockLD.from_genotypes(G, regions.iloc[:2])


@pytest.mark.parametrize("unit", ["snp", "bp", "cm"])
def test_banded_ld_from_genotypes(hand_z, dosages, dense_twin, unit):
    Z, _ = hand_z
    n, m = Z.shape
    rng = np.random.default_rng(2)
    pos = np.r_[np.sort(rng.choice(5000, 35, replace=False)), np.sort(rng.choice(5000, 25, replace=False))]
    chrom = np.array(["1"] * 35 + ["2"] * 25)
    variants = pd.DataFrame({"chrom": chrom, "pos": pos, "cm": pos / 1000.0})
    G = Genotypes.from_array(dosages, variants=variants)
    window = {"snp": 3, "bp": 400, "cm": 0.4}[unit]
    op = BandedLD.from_genotypes(G, window=window, unit=unit)
    i, j = np.indices((m, m))
    coord = {"snp": np.arange(m), "bp": pos, "cm": pos / 1000.0}[unit]
    keep = (np.abs(coord[i] - coord[j]) <= window + 1e-12) & (chrom[i] == chrom[j])
    D = np.where(keep, Z.T @ Z / n, 0.0)
    dense_twin(op, D)
    assert op.bandwidth == int(np.abs(i - j)[keep].max())


def test_banded_from_dense_and_cost(dense_twin):
    rng = np.random.default_rng(1)
    R = random_corr(rng, 30)
    op = BandedLD.from_dense(R, window=4)
    i, j = np.indices(R.shape)
    dense_twin(op, np.where(np.abs(i - j) <= 4, R, 0.0))
    assert op.bands.shape == (5, 30)  # (w + 1) x m storage


def test_repairs_make_blocks_psd():
    R = not_psd()
    fixed, info = repair_psd(torch.as_tensor(R), "eigen_floor", 1e-3)
    ev = torch.linalg.eigvalsh(fixed)
    assert ev.min() >= 1e-3 - 1e-10 and info["n_clipped"] >= 1
    fixed, info = repair_psd(torch.as_tensor(R), "ridge")
    assert torch.linalg.eigvalsh(fixed).min() >= -1e-10
    assert torch.allclose(fixed.diagonal(), torch.ones(6, dtype=torch.float64))
    assert 0 < info["lam"] < 1
    fixed, info = repair_psd(torch.as_tensor(R), "ridge", 0.5)
    assert torch.allclose(fixed, 0.5 * torch.as_tensor(R) + 0.5 * torch.eye(6, dtype=torch.float64))
    good = random_corr(np.random.default_rng(9), 4)
    same, info = repair_psd(torch.as_tensor(good), "eigen_floor")
    assert info["n_clipped"] == 0 and torch.equal(same, torch.as_tensor(good))
    # per block: only the bad block changes
    op = BlockLD([good, R], repair="eigen_floor", repair_value=0.0)
    assert torch.equal(op.blocks[0], torch.as_tensor(good))
    assert torch.linalg.eigvalsh(op.to_dense()).min() > -1e-10
    assert [r["n_clipped"] for r in op.repair_info][0] == 0


def test_banded_ridge_repair():
    R = not_psd(8)
    op = BandedLD.from_dense(R, window=1)
    assert torch.linalg.eigvalsh(op.to_dense()).min() < 0
    fixed = op.repaired()
    lam = fixed.repair_info[0]["lam"]
    assert lam > 0
    assert torch.linalg.eigvalsh(fixed.to_dense()).min() >= -1e-10
    assert np.isclose(fixed.repair_info[0]["min_eigenvalue"], np.linalg.eigvalsh(op.to_dense().numpy()).min())
    with pytest.raises(InputError, match="ridge"):
        op.repaired("eigen_floor")


def test_hdf5_round_trip(tmp_path, geno):
    op = BlockLD.from_genotypes(geno, [0, 17, 40], repair="ridge")
    op.save(tmp_path / "b.h5")
    back = load_ld(tmp_path / "b.h5")
    assert isinstance(back, BlockLD)
    assert torch.equal(back.to_dense(), op.to_dense())
    assert list(back.variant_ids) == list(geno.variants["id"])
    band = BandedLD.from_genotypes(geno, window=5)
    band.save(tmp_path / "w.h5")
    back = BandedLD.load(tmp_path / "w.h5", dtype=torch.float32)
    assert back.dtype == torch.float32 and back.bandwidth == 5
    assert torch.allclose(back.to_dense().double(), band.to_dense(), atol=1e-6)
    with pytest.raises(FileFormatError, match="torchgenetics.BlockLD"):
        BlockLD.load(tmp_path / "w.h5")


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.ones((2, 3)), "LD block 1: expected a square"),
        (np.array([[1.0, 0.5], [0.2, 1.0]]), "LD block 1: matrix is not symmetric"),
        (np.array([[1.0, np.inf], [np.inf, 1.0]]), "LD block 1: matrix has non-finite"),
    ],
)
def test_block_ld_errors(bad, message):
    with pytest.raises(InputError, match=message):
        BlockLD([np.eye(2), bad])


def test_block_ld_index_errors():
    with pytest.raises(InputError, match="partition"):
        BlockLD([np.eye(2), np.eye(2)], index=[[0, 1], [1, 2]])
    with pytest.raises(InputError, match="lists 3 variants"):
        BlockLD([np.eye(2), np.eye(2)], index=[[0, 1, 2], [3]])
    with pytest.raises(InputError, match="repair"):
        BlockLD([np.eye(2)], repair="clip")


def test_band_window_input_errors():
    R = np.eye(4)
    with pytest.raises(InputError, match="sorted within each chromosome"):
        BandedLD.from_dense(R, 10, unit="bp", positions=[0, 30, 20, 40])
    with pytest.raises(InputError, match="grouped by chromosome"):
        BandedLD.from_dense(R, 1, chrom=["1", "2", "1", "2"])
    with pytest.raises(InputError, match="unit"):
        BandedLD.from_dense(R, 1, unit="kb")
    with pytest.raises(InputError, match="needs variant positions"):
        BandedLD.from_dense(R, 1, unit="cm")
    # pairs on different chromosomes are zero even inside the window
    B = BandedLD.from_dense(np.ones((4, 4)), 3, chrom=["1", "1", "2", "2"])
    assert B.to_dense()[1, 2].item() == 0.0 and B.to_dense()[2, 3].item() == 1.0
