"""block_cg and solve against torch.linalg.solve."""

from __future__ import annotations

import pytest
import torch
from linear_operator.operators import (
    AddedDiagLinearOperator,
    DenseLinearOperator,
    DiagLinearOperator,
    RootLinearOperator,
)

from torchgenetics.errors import ConvergenceError, InputError
from torchgenetics.linalg import (
    ConvergenceWarning,
    ProjectedCorePreconditioner,
    block_cg,
    solve,
)

DT = torch.float64


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("form", ["tensor", "linear_operator", "callable"])
def test_block_cg_matches_dense_solve(form, lh):
    V, _, _ = lh.lowrank_cov(150, 300, seed=2)
    B = torch.randn(150, 7, generator=gen(3), dtype=DT)
    A = {"tensor": V, "linear_operator": DenseLinearOperator(V), "callable": lambda X: V @ X}[form]
    res = block_cg(A, B, tol=1e-10)
    exact = torch.linalg.solve(V, B)
    assert res.all_converged
    assert res.solution.shape == B.shape and res.solution.dtype == DT
    assert lh.rel_err(res.solution, exact) < 1e-8
    # reported residuals are honest: recompute them
    true_rel = (B - V @ res.solution).norm(dim=0) / B.norm(dim=0)
    assert bool((true_rel < 1e-9).all())
    assert bool((res.relative_residuals <= 1e-10).all())


def test_per_column_convergence_and_freezing(lh):
    n = 120
    K = lh.structured_kernel(n, seed=4)
    V = 0.5 * K + 0.5 * torch.eye(n, dtype=DT)
    evecs = torch.linalg.eigh(V).eigenvectors
    B = torch.randn(n, 4, generator=gen(5), dtype=DT)
    B[:, 1] = evecs[:, -1]  # an eigenvector converges in one step
    B[:, 2] = 0.0  # zero right-hand side: no iterations, zero solution
    res = block_cg(V, B, tol=1e-9)
    assert res.all_converged
    assert int(res.iterations[1]) == 1
    assert int(res.iterations[2]) == 0
    assert bool((res.solution[:, 2] == 0).all())
    assert int(res.iterations[0]) > 5 and int(res.iterations[3]) > 5
    exact = torch.linalg.solve(V, B)
    assert lh.rel_err(res.solution, exact) < 1e-7
    # a column solved alone gets exactly the same iterate as inside the block
    alone = block_cg(V, B[:, [1]], tol=1e-9)
    assert torch.allclose(alone.solution[:, 0], res.solution[:, 1], atol=1e-14)


def test_vector_rhs_and_warm_start(lh):
    V, _, _ = lh.lowrank_cov(80, 40, seed=6)
    b = torch.randn(80, generator=gen(7), dtype=DT)
    res = block_cg(V, b, tol=1e-10)
    assert res.solution.shape == (80,)
    exact = torch.linalg.solve(V, b)
    assert lh.rel_err(res.solution, exact) < 1e-8
    warm = block_cg(V, b, tol=1e-10, x0=exact)
    assert warm.n_iter <= 1
    near = block_cg(V, b, tol=1e-10, x0=exact + 1e-6 * torch.randn(80, generator=gen(8), dtype=DT))
    assert near.n_iter < res.n_iter


def test_preconditioned_cg_matches_and_is_faster(lh):
    n = 200
    K = lh.structured_kernel(n, seed=9)
    V = 0.5 * K + 0.5 * torch.eye(n, dtype=DT)
    P = ProjectedCorePreconditioner.from_kernels([K], [0.5], 0.5, rank=30, generator=1)
    B = torch.randn(n, 5, generator=gen(10), dtype=DT)
    plain = block_cg(V, B, tol=1e-10)
    pre = block_cg(V, B, preconditioner=P, tol=1e-10)
    fn = block_cg(V, B, preconditioner=P.solve, tol=1e-10)  # a bare callable works too
    exact = torch.linalg.solve(V, B)
    assert pre.all_converged and lh.rel_err(pre.solution, exact) < 1e-8
    assert torch.equal(fn.iterations, pre.iterations)
    assert pre.n_iter * 2 <= plain.n_iter


def test_non_convergence_flagged_or_raised(lh):
    n = 100
    lam = torch.logspace(0, 6, n, dtype=DT)
    Q = torch.linalg.qr(torch.randn(n, n, generator=gen(11), dtype=DT)).Q
    A = (Q * lam) @ Q.T
    B = torch.randn(n, 3, generator=gen(12), dtype=DT)
    with pytest.warns(ConvergenceWarning, match="did not reach relative residual"):
        res = block_cg(A, B, tol=1e-10, max_iter=5)
    assert not res.all_converged
    assert res.n_iter == 5
    assert bool((res.relative_residuals > 1e-10).all())
    with pytest.raises(ConvergenceError, match="3 of 3 right-hand sides"):
        block_cg(A, B, tol=1e-10, max_iter=5, raise_on_fail=True)


def test_indefinite_matrix_breaks_down_without_nan(lh):
    A = torch.diag(torch.tensor([1.0, -1.0, 2.0], dtype=DT))
    b = torch.tensor([1.0, 1.0, 0.0], dtype=DT)  # p^T A p = 0 at the first step
    with pytest.warns(ConvergenceWarning):
        res = block_cg(A, b, tol=1e-10, max_iter=10)
    assert not res.all_converged
    assert bool(torch.isfinite(res.solution).all())
    with pytest.raises(ConvergenceError):
        block_cg(A, b, tol=1e-10, max_iter=10, raise_on_fail=True)


def test_dtype_follows_inputs_and_bad_inputs(lh):
    V, _, _ = lh.lowrank_cov(50, 30, seed=13)
    V32 = V.float()
    res = block_cg(V32, torch.ones(50, 2), tol=1e-5)
    assert res.solution.dtype == torch.float32 and res.all_converged
    with pytest.raises(InputError, match="rows"):
        block_cg(V, torch.ones(49, 2, dtype=DT))
    with pytest.raises(InputError, match="tol"):
        block_cg(V, torch.ones(50, dtype=DT), tol=0.0)
    with pytest.raises(InputError, match="preconditioner"):
        block_cg(V, torch.ones(50, dtype=DT), preconditioner=3)


def test_solve_gradients_tensor(lh):
    V, _, _ = lh.lowrank_cov(40, 20, seed=14)
    B = torch.randn(40, 3, generator=gen(15), dtype=DT)
    W = torch.randn(40, 3, generator=gen(16), dtype=DT)
    grads = {}
    for method in ("cg", "exact"):
        A = V.clone().requires_grad_(True)
        Bq = B.clone().requires_grad_(True)
        X = solve(A, Bq, method=method, tol=1e-12)
        (X * W).sum().backward()
        grads[method] = (X.detach(), A.grad, Bq.grad)
    A = V.clone().requires_grad_(True)
    Bq = B.clone().requires_grad_(True)
    (torch.linalg.solve(A, Bq) * W).sum().backward()
    for method, (X, gA, gB) in grads.items():
        assert lh.rel_err(X, torch.linalg.solve(V, B)) < 1e-9, method
        assert lh.rel_err(gB, Bq.grad) < 1e-8, method
        # the gradient of a symmetric matrix is defined up to symmetrisation
        assert lh.rel_err(0.5 * (gA + gA.T), 0.5 * (A.grad + A.grad.T)) < 1e-8, method


def test_solve_gradients_linear_operator_parameters(lh):
    _, _, Z = lh.lowrank_cov(60, 30, seed=17)
    y = torch.randn(60, generator=gen(18), dtype=DT)

    def loss(log_s2g, log_s2e, lazy):
        s2g, s2e = log_s2g.exp(), log_s2e.exp()
        if lazy:
            V = AddedDiagLinearOperator(
                RootLinearOperator(Z * (s2g / 30).sqrt()), DiagLinearOperator(s2e.expand(60))
            )
            x = solve(V, y, method="cg", tol=1e-12)
        else:
            V = s2g * Z @ Z.T / 30 + s2e * torch.eye(60, dtype=DT)
            x = torch.linalg.solve(V, y)
        return (x * y).sum()

    out = {}
    for lazy in (True, False):
        a = torch.tensor(0.2, dtype=DT, requires_grad=True)
        b = torch.tensor(-0.3, dtype=DT, requires_grad=True)
        val = loss(a, b, lazy)
        val.backward()
        out[lazy] = (val.detach(), a.grad, b.grad)
    for u, v in zip(out[True], out[False], strict=True):
        assert lh.rel_err(u, v) < 1e-8


def test_solve_auto_uses_exact_for_small_n(lh):
    V, _, _ = lh.lowrank_cov(30, 10, seed=19)
    b = torch.randn(30, generator=gen(20), dtype=DT)
    assert lh.rel_err(solve(V, b), torch.linalg.solve(V, b)) < 1e-12
    with pytest.raises(InputError, match="method"):
        solve(V, b, method="magic")
