import numpy as np
import pytest
import torch

from torchgenetics.errors import InputError
from torchgenetics.operators import WeightedBlockGRM


def random_blocks(rng, sets):
    blocks = []
    for idx in sets:
        A = rng.normal(size=(idx.size, idx.size))
        blocks.append((idx, A @ A.T / idx.size + np.eye(idx.size)))
    return blocks


def dense_kernel(Z, poly, blocks, n):
    """X W X^T / c by hand: monomorphic variants have zero columns in X."""
    K = np.zeros((n, n))
    for idx, W in blocks:
        X = Z[:, idx] * poly[idx]
        K += X @ W @ X.T
    return K / (np.trace(K) / n)


SETS = [np.arange(0, 12), np.array([12, 14, 16, 18, 11, 2]), np.arange(30, 45)]


@pytest.mark.parametrize("resident", [True, False])
def test_weighted_matches_dense(geno, hand_z, dense_twin, resident):
    Z, poly = hand_z
    blocks = random_blocks(np.random.default_rng(3), SETS)
    K = WeightedBlockGRM(geno, blocks, resident=resident)
    dense = dense_kernel(Z, poly, blocks, geno.n_samples)
    dense_twin(K, dense)
    assert abs(float(K.diagonal().mean()) - 1.0) < 1e-12
    assert K.n_monomorphic == int(sum((~poly[idx]).sum() for idx in SETS))


def test_scale_is_trace_over_n_from_w_and_gram(geno, hand_z):
    Z, poly = hand_z
    blocks = random_blocks(np.random.default_rng(4), SETS[:2])
    K = WeightedBlockGRM(geno, blocks)
    c = sum((W * ((Z[:, idx] * poly[idx]).T @ (Z[:, idx] * poly[idx]))).sum() for idx, W in blocks)
    assert K.scale == pytest.approx(c / geno.n_samples, rel=1e-12)


def test_identity_weights_give_the_grm_of_the_set(geno, hand_z):
    Z, poly = hand_z
    idx = np.arange(0, 30)
    K = WeightedBlockGRM(geno, [(idx, np.eye(idx.size))])
    keep = idx[poly[idx]]
    G = Z[:, keep] @ Z[:, keep].T
    np.testing.assert_allclose(K.to_dense().numpy(), G / (np.trace(G) / geno.n_samples), rtol=0, atol=1e-12)


def test_passes(geno):
    blocks = random_blocks(np.random.default_rng(5), SETS)
    V = torch.randn(geno.n_samples, 4, dtype=torch.float64)
    streamed = WeightedBlockGRM(geno, blocks, resident=False)
    streamed.matmul(V)
    streamed.matmul(V)
    assert streamed.passes == 3  # scale c, then one pass per product
    kept = WeightedBlockGRM(geno, blocks, resident=True)
    kept.matmul(V)
    kept.matmul(V)
    assert kept.passes == 1
    assert torch.allclose(streamed.matmul(V), kept.matmul(V), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.ones((3, 4)), "block 1: expected a square matrix"),
        (np.eye(5), "block 1: matrix is 5 x 5 but it lists 4 variants"),
        (np.array([[1.0, 0.2, 0, 0], [0.0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]), "block 1: matrix is not symmetric"),
        (np.diag([1.0, np.nan, 1.0, 1.0]), "block 1: matrix has non-finite"),
    ],
)
def test_block_validation_names_the_block(geno, bad, message):
    good = (np.arange(4), np.eye(4))
    with pytest.raises(InputError, match=message):
        WeightedBlockGRM(geno, [good, (np.arange(10, 14), bad)])


def test_other_errors(geno):
    with pytest.raises(InputError, match="pair"):
        WeightedBlockGRM(geno, [np.eye(3)])
    with pytest.raises(InputError, match="no block has a polymorphic"):
        WeightedBlockGRM(geno, [(np.array([2, 11]), np.eye(2))])
    K = WeightedBlockGRM(geno, [(np.arange(4), -np.eye(4))])
    with pytest.raises(InputError, match="not positive"):
        K.diagonal()
