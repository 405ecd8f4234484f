"""Block tridiagonal reduction of a kernel against dense linear algebra."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchgenetics.errors import InputError
from torchgenetics.linalg import BlockTridiagonalKernel


def kernel(n, m, seed):
    Z = np.random.default_rng(seed).standard_normal((n, m))
    return torch.from_numpy(Z @ Z.T / m)


@pytest.mark.parametrize("n,block", [(1, 4), (7, 1), (50, 8), (203, 16), (130, 64), (40, 40), (30, 96)])
def test_reduction_is_exact(n, block):
    """logdet, solves, traces, T products and the rotation equal their dense forms."""
    K = kernel(n, max(n // 2, 1), seed=n)
    bt = BlockTridiagonalKernel.from_kernel(K, block=block)
    assert bt.edges[0] == 0 and bt.edges[-1] == n
    eye = torch.eye(n, dtype=torch.float64)
    B = np.random.default_rng(1).standard_normal((n, 3))
    # Q is orthogonal and Q' K Q = T
    assert np.allclose(bt.unrotate(bt.rotate(B)), B, atol=1e-12)
    assert np.allclose(bt.rotate(K.numpy() @ B), bt.matmul(bt.rotate(B)), atol=1e-10)
    # T is block tridiagonal: the reduction kept the spectrum
    dense_t = bt.matmul(np.eye(n))
    lo = np.subtract.outer(np.arange(n), np.arange(n))
    assert np.all(dense_t[np.abs(lo) >= 2 * block] == 0)
    assert np.allclose(np.linalg.eigvalsh(dense_t), np.linalg.eigvalsh(K.numpy()), atol=1e-10)
    for a, c in ((0.7, 0.3), (0.0, 1.5), (2.0, 1e-3)):
        V = a * K + c * eye
        f = bt.factor(a, c)
        assert abs(f.logdet - float(torch.logdet(V))) < 1e-9 * max(1.0, n)
        x = bt.unrotate(f.solve(bt.rotate(B)))
        assert np.allclose(x, np.linalg.solve(V.numpy(), B), rtol=1e-8, atol=1e-8)
        Vi = torch.linalg.inv(V)
        tr_inv, tr_inv_k = f.traces()
        assert abs(tr_inv - float(Vi.trace())) < 1e-8 * float(Vi.trace())
        assert abs(tr_inv_k - float((Vi * K).sum())) < 1e-8 * max(1.0, float((Vi * K).sum()))


def test_not_positive_definite_and_bad_input():
    K = kernel(30, 10, seed=0)
    bt = BlockTridiagonalKernel.from_kernel(K, block=8)
    assert bt.factor(1.0, -0.5) is None
    with pytest.raises(InputError, match="square float64"):
        BlockTridiagonalKernel.from_kernel(K[:, :5])
    with pytest.raises(InputError, match="square float64"):
        BlockTridiagonalKernel.from_kernel(K.float())
    with pytest.raises(InputError, match="block"):
        BlockTridiagonalKernel.from_kernel(K, block=0)


def test_overwrite_reuses_memory_and_input_is_kept_otherwise():
    K = kernel(60, 30, seed=2)
    kept = K.clone()
    a = BlockTridiagonalKernel.from_kernel(K, block=8)
    assert torch.equal(K, kept)
    b = BlockTridiagonalKernel.from_kernel(K, block=8, overwrite=True)
    assert not torch.equal(K, kept)
    B = np.ones((60, 1))
    assert np.allclose(a.matmul(a.rotate(B)), b.matmul(b.rotate(B)))


def test_band_reml_equals_dense_reml():
    """Likelihood, score, AI, traces and GLS pieces of the band evaluator equal the Cholesky evaluator's."""
    from torchgenetics.reml.exact import BandREML, DenseREML

    g = torch.Generator().manual_seed(3)
    K = kernel(150, 90, seed=4)
    y = torch.randn(150, generator=g, dtype=torch.float64)
    X = torch.cat([torch.ones(150, 1, dtype=torch.float64), torch.randn(150, 2, generator=g, dtype=torch.float64)], 1)
    band = BandREML(BlockTridiagonalKernel.from_kernel(K, block=16), y, X)
    dense = DenseREML([K], y, X)
    for theta in ([0.6, 0.4], [0.0, 1.2], [1.5, 0.05]):
        t = torch.tensor(theta, dtype=torch.float64)
        a, b = band.evaluate(t), dense.evaluate(t)
        assert abs(a.loglik - b.loglik) < 1e-9
        assert abs(band.objective(t).value - a.loglik) < 1e-12
        for name in ("score", "ai", "quad", "trace", "beta", "beta_cov"):
            assert torch.allclose(getattr(a, name), getattr(b, name), rtol=1e-9, atol=1e-9), name
    assert band.objective(torch.tensor([0.5, -1.0], dtype=torch.float64)).value == -np.inf
