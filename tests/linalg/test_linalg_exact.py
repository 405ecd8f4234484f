"""Exact paths (Cholesky, eigendecomposition, Woodbury) and the exact/iterative switch."""

from __future__ import annotations

import pytest
import torch
from linear_operator.operators import DenseLinearOperator

from torchgenetics.errors import InputError
from torchgenetics.linalg import (
    EXACT_CROSSOVER_N,
    EigenKernel,
    choose_method,
    exact_max_n,
    exact_solve_logdet,
    woodbury_solve_logdet,
)

DT = torch.float64


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("form", ["tensor", "linear_operator", "callable"])
def test_exact_solve_logdet_forms(form, lh):
    V, _, _ = lh.lowrank_cov(60, 30, seed=1)
    A = {"tensor": V, "linear_operator": DenseLinearOperator(V), "callable": lambda X: V @ X}[form]
    B = torch.randn(60, 3, generator=gen(2), dtype=DT)
    X, ld = exact_solve_logdet(A, B)
    assert lh.rel_err(X, torch.linalg.solve(V, B)) < 1e-12
    assert float(ld) == pytest.approx(float(torch.logdet(V)), rel=1e-12)
    x, _ = exact_solve_logdet(A, B[:, 0], logdet=False)
    assert x.shape == (60,)
    none, ld2 = exact_solve_logdet(A, size=60)
    assert none is None and float(ld2) == pytest.approx(float(ld), rel=1e-14)


def test_exact_jitter_fallback_and_error():
    Z = torch.randn(20, 5, generator=gen(3), dtype=DT)
    singular = Z @ Z.T  # PSD, rank 5
    with pytest.warns(RuntimeWarning, match="jitter"):
        _, ld = exact_solve_logdet(singular)
    assert torch.isfinite(ld)
    indefinite = torch.diag(torch.tensor([1.0, -1.0, 2.0], dtype=DT))
    with pytest.raises(InputError, match="not positive definite"):
        exact_solve_logdet(indefinite)


def test_exact_path_is_differentiable(lh):
    V, _, _ = lh.lowrank_cov(30, 10, seed=4)
    A = V.clone().requires_grad_(True)
    _, ld = exact_solve_logdet(A)
    ld.backward()
    assert lh.rel_err(A.grad, torch.linalg.inv(V)) < 1e-10


@pytest.mark.parametrize("build", ["eigh", "svd_m_lt_n", "svd_m_gt_n"])
def test_eigen_kernel_matches_dense(build, lh):
    n = 50
    m = {"eigh": 80, "svd_m_lt_n": 20, "svd_m_gt_n": 80}[build]
    _, K, Z = lh.lowrank_cov(n, m, seed=5)
    ek = EigenKernel.from_kernel(K) if build == "eigh" else EigenKernel.from_factor(Z)
    assert ek.q == (n if build == "eigh" else min(n, m))
    B = torch.randn(n, 3, generator=gen(6), dtype=DT)
    for s2g, s2e in ((0.5, 0.5), (2.0, 0.1), (0.0, 1.3)):
        V = s2g * K + s2e * torch.eye(n, dtype=DT)
        assert lh.rel_err(ek.to_dense(s2g, s2e), V) < 1e-10
        assert lh.rel_err(ek.solve(B, s2g, s2e), torch.linalg.solve(V, B)) < 1e-9
        assert lh.rel_err(ek.solve(B[:, 0], s2g, s2e), torch.linalg.solve(V, B[:, 0])) < 1e-9
        assert float(ek.logdet(s2g, s2e)) == pytest.approx(
            float(torch.logdet(V)), rel=1e-10, abs=1e-10
        )
        inv = torch.linalg.inv(V)
        assert float(ek.trace_inv(s2g, s2e)) == pytest.approx(float(inv.trace()), rel=1e-10)
        assert float(ek.trace_inv_kernel(s2g, s2e)) == pytest.approx(
            float((inv @ K).trace()), rel=1e-9
        )


def test_eigen_kernel_gradients(lh):
    _, K, Z = lh.lowrank_cov(40, 15, seed=7)
    y = torch.randn(40, generator=gen(8), dtype=DT)
    ek = EigenKernel.from_factor(Z)
    grads = []
    for exact in (False, True):
        s2g = torch.tensor(0.7, dtype=DT, requires_grad=True)
        s2e = torch.tensor(0.3, dtype=DT, requires_grad=True)
        if exact:
            V = s2g * K + s2e * torch.eye(40, dtype=DT)
            loss = y @ torch.linalg.solve(V, y) + torch.logdet(V)
        else:
            loss = y @ ek.solve(y, s2g, s2e) + ek.logdet(s2g, s2e)
        loss.backward()
        grads.append(torch.stack([s2g.grad, s2e.grad]))
    assert lh.rel_err(grads[0], grads[1]) < 1e-9


def test_woodbury_matches_dense_and_differentiates(lh):
    _, K, Z = lh.lowrank_cov(70, 12, seed=9)
    B = torch.randn(70, 2, generator=gen(10), dtype=DT)
    V = 0.4 * K + 0.6 * torch.eye(70, dtype=DT)
    X, ld = woodbury_solve_logdet(Z, 0.4, 0.6, B)
    assert lh.rel_err(X, torch.linalg.solve(V, B)) < 1e-10
    assert float(ld) == pytest.approx(float(torch.logdet(V)), rel=1e-12)
    X2, ld2 = woodbury_solve_logdet(Z * 2.0, 0.4, 0.6, B, scale=48)  # Z Z^T / scale is unchanged
    assert lh.rel_err(X2, X) < 1e-10 and float(ld2) == pytest.approx(float(ld), rel=1e-12)
    s2g = torch.tensor(0.4, dtype=DT, requires_grad=True)
    _, ldg = woodbury_solve_logdet(Z, s2g, 0.6)
    ldg.backward()
    assert float(s2g.grad) == pytest.approx(float(torch.linalg.solve(V, K).trace()), rel=1e-10)
    with pytest.raises(InputError, match="s2e"):
        woodbury_solve_logdet(Z, 0.4, 0.0, B)


def test_choose_method_and_env_override(monkeypatch):
    monkeypatch.delenv("TORCHGEN_EXACT_MAX_N", raising=False)
    assert exact_max_n() == EXACT_CROSSOVER_N
    assert choose_method(EXACT_CROSSOVER_N) == "exact"
    assert choose_method(EXACT_CROSSOVER_N + 1) == "iterative"
    assert choose_method(100, exact_max=50) == "iterative"
    assert (
        choose_method(1000, budget_bytes=1000 * 1000 * 8) == "iterative"
    )  # three n x n do not fit
    monkeypatch.setenv("TORCHGEN_EXACT_MAX_N", "20000")
    assert exact_max_n() == 20000 and choose_method(15000) == "exact"
    monkeypatch.setenv("TORCHGEN_EXACT_MAX_N", "lots")
    with pytest.raises(InputError, match="TORCHGEN_EXACT_MAX_N"):
        choose_method(10)
