import numpy as np
import pytest
import torch
from linear_operator import settings
from linear_operator.operators import DenseLinearOperator

from torchgenetics.errors import InputError
from torchgenetics.operators import GRM, GRMStack, WeightedBlockGRM, covariance
from torchgenetics.operators.grm import _KernelState

PARTITION = [np.arange(0, 25), np.arange(25, 60)]


def kernels_and_dense(geno, hand_z, kind):
    Z, poly = hand_z
    if kind == "stack":
        S = GRMStack(geno, PARTITION, resident=False)
        ks = S.components
        dense = []
        for idx in PARTITION:
            keep = idx[poly[idx]]
            dense.append(Z[:, keep] @ Z[:, keep].T / keep.size)
        return ks, dense
    K1 = GRM(geno, resident=True)
    W = [(np.arange(10), np.eye(10) + 0.2)]
    K2 = WeightedBlockGRM(geno, W)
    X = Z[:, :10]
    D2 = X @ (np.eye(10) + 0.2) @ X.T
    return [K1, K2], [Z @ Z.T / poly.sum(), D2 / (np.trace(D2) / geno.n_samples)]


def dense_v(dense, s2, s2e):
    n = dense[0].shape[0]
    return sum(float(s) * torch.as_tensor(D) for s, D in zip(s2, dense, strict=True)) + float(s2e) * torch.eye(n, dtype=torch.float64)


@pytest.mark.parametrize("kind", ["stack", "mixed"])
def test_covariance_dense_twin(geno, hand_z, dense_twin, kind):
    ks, dense = kernels_and_dense(geno, hand_z, kind)
    s2 = torch.tensor([0.4, 0.7], dtype=torch.float64)
    V = covariance(ks, s2, 0.6)
    dense_twin(V, dense_v(dense, s2, 0.6))


def test_stack_covariance_is_one_pass_per_product(geno, hand_z):
    ks, _ = kernels_and_dense(geno, hand_z, "stack")
    S = ks[0].stack_component[0]
    V = covariance(ks, [0.4, 0.7], 0.6)
    before = S.passes
    V.matmul(torch.randn(geno.n_samples, 8, dtype=torch.float64))
    assert S.passes == before + 1
    # a subset of the stack's components still takes the one-pass path
    V1 = covariance(ks[1:], [0.7], 0.6)
    V1.matmul(torch.randn(geno.n_samples, 2, dtype=torch.float64))
    assert S.passes == before + 2


@pytest.mark.parametrize("kind", ["stack", "mixed"])
def test_gradcheck_inv_quad_logdet_cholesky(geno, hand_z, kind):
    ks, _ = kernels_and_dense(geno, hand_z, kind)
    y = torch.randn(geno.n_samples, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    s2 = torch.tensor([0.4, 0.7], dtype=torch.float64, requires_grad=True)
    s2e = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)

    def f(s2, s2e):
        q, ld = covariance(ks, s2, s2e).inv_quad_logdet(y, logdet=True)
        return q + ld

    with settings.max_cholesky_size(10_000):
        assert torch.autograd.gradcheck(f, (s2, s2e))


def test_cg_path_matches_dense_without_materialising(geno, hand_z, monkeypatch):
    ks, dense = kernels_and_dense(geno, hand_z, "stack")
    n = geno.n_samples
    y = torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    s2 = torch.tensor([0.5, 0.8], dtype=torch.float64, requires_grad=True)
    s2e = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    Vd = dense_v(dense, s2.detach(), s2e.detach())

    def no_dense(self):
        raise AssertionError("the n x n kernel was materialised")

    monkeypatch.setattr(_KernelState, "dense", no_dense)
    # linear_operator's CG zeroes steps below 1e-10 (squared residual), so it stalls
    # near 1e-5 relative residual: compare at that accuracy.
    with settings.max_cholesky_size(0), settings.cg_tolerance(1e-5), settings.max_cg_iterations(4 * n):
        V = covariance(ks, s2, s2e)
        x = V.solve(y)
        q, _ = V.inv_quad_logdet(y, logdet=False)
        q.backward()
        _, ld = covariance(ks, s2, s2e).inv_quad_logdet(logdet=True)
        assert torch.isfinite(ld)
    np.testing.assert_allclose(x.detach().numpy(), torch.linalg.solve(Vd, y).numpy(), rtol=1e-3, atol=1e-4)
    # exact gradient of y^T V^-1 y: -y^T V^-1 K_g V^-1 y
    Vinv_y = torch.linalg.solve(Vd, y)
    expected = [-(Vinv_y * (torch.as_tensor(D) @ Vinv_y)).sum() for D in dense]
    np.testing.assert_allclose(s2.grad.numpy(), torch.stack(expected).numpy(), rtol=1e-3)
    np.testing.assert_allclose(s2e.grad.item(), -(Vinv_y**2).sum().item(), rtol=1e-3)


def test_covariance_accepts_any_linear_operator_and_list_of_tensors():
    A = torch.randn(5, 5, dtype=torch.float64)
    K = DenseLinearOperator(A @ A.T)
    a = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    V = covariance([K, K], [a, 2.0 * a], 1.0)
    V.diagonal().sum().backward()
    assert a.grad.item() == pytest.approx(3.0 * float((A @ A.T).trace()))


def test_covariance_errors(geno):
    K = GRM(geno)
    with pytest.raises(InputError, match="2 variances for 1 kernels"):
        covariance([K], [1.0, 2.0], 1.0)
    with pytest.raises(InputError, match="at least one"):
        covariance([], [], 1.0)
    with pytest.raises(InputError, match="kernel 1 has shape"):
        covariance([K, DenseLinearOperator(torch.eye(3, dtype=torch.float64))], [1.0, 1.0], 1.0)
    with pytest.raises(InputError, match="expected a LinearOperator"):
        covariance([torch.eye(3)], [1.0], 1.0)


def test_gradients_reach_kernel_tensors_and_variances_in_matmul():
    # Matmul's backward goes through Covariance._bilinear_derivative: check its ordering
    gen = torch.Generator().manual_seed(2)
    A = torch.randn(6, 6, dtype=torch.float64, generator=gen)
    A = (A @ A.T).requires_grad_(True)
    B = torch.randn(6, 6, dtype=torch.float64, generator=gen)
    B = B @ B.T
    s2 = torch.tensor([0.3, 1.2], dtype=torch.float64, requires_grad=True)
    s2e = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    x = torch.randn(6, 3, dtype=torch.float64, generator=gen)
    w = torch.randn(6, 3, dtype=torch.float64, generator=gen)
    V = covariance([DenseLinearOperator(A), DenseLinearOperator(B)], s2, s2e)
    got = torch.autograd.grad((V.matmul(x) * w).sum(), (A, s2, s2e))
    dense = s2[0] * A + s2[1] * B + s2e * torch.eye(6, dtype=torch.float64)
    want = torch.autograd.grad(((dense @ x) * w).sum(), (A, s2, s2e))
    for g, e in zip(got, want, strict=True):
        assert torch.allclose(g, e, rtol=1e-12, atol=1e-12)
