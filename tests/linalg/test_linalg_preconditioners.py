"""Projected-core and pivoted-Cholesky preconditioners against dense algebra."""

from __future__ import annotations

import math

import pytest
import torch
from linear_operator.operators import LinearOperator

from torchgenetics.errors import InputError
from torchgenetics.linalg import (
    PivotedCholeskyPreconditioner,
    ProjectedCorePreconditioner,
    block_cg,
    pivoted_cholesky,
    randomized_range_finder,
)

DT = torch.float64


def gen(seed):
    return torch.Generator().manual_seed(seed)


def check_exact_algebra(P, lh, tol=1e-10):
    """solve, logdet and root agree with the dense matrix P represents."""
    M = P.to_dense()
    assert torch.allclose(M, M.T, atol=1e-12)
    R = torch.randn(P.n, 4, generator=gen(99), dtype=DT)
    assert lh.rel_err(P.solve(R), torch.linalg.solve(M, R)) < tol
    assert lh.rel_err(P(R[:, 0]), torch.linalg.solve(M, R[:, 0])) < tol  # vectors and __call__
    assert lh.rel_err(P.matmul(P.solve(R)), R) < tol
    assert abs(float(P.logdet() - torch.logdet(M))) < tol * max(1.0, abs(float(torch.logdet(M))))
    F = P.root_matmul(torch.eye(P.root_size, dtype=DT))
    assert lh.rel_err(F @ F.T, M) < tol
    assert lh.rel_err(P.diagonal(), M.diagonal()) < tol
    assert lh.rel_err(P.as_linear_operator().diagonal(), M.diagonal()) < tol


def test_range_finder_exact_for_low_rank_kernels(lh):
    Z1 = torch.randn(80, 4, generator=gen(1), dtype=DT)
    Z2 = torch.randn(80, 3, generator=gen(2), dtype=DT)
    K1, K2 = Z1 @ Z1.T, Z2 @ Z2.T
    U, cores = randomized_range_finder([K1, K2], rank=7, generator=3, return_cores=True)
    assert U.shape == (80, 7)
    assert torch.allclose(U.T @ U, torch.eye(7, dtype=DT), atol=1e-12)
    for K, C in ((K1, cores[0]), (K2, cores[1])):
        assert lh.rel_err(U @ (U.T @ K @ U) @ U.T, K) < 1e-10
        assert lh.rel_err(C, U.T @ K @ U) < 1e-10
    # callables work the same way (size given)
    Uc = randomized_range_finder(lambda X: K1 @ X, rank=4, size=80, generator=3)
    assert lh.rel_err(Uc @ (Uc.T @ Z1), Z1) < 1e-10


def test_projected_core_exact_algebra_and_form(lh):
    V, K, _ = lh.lowrank_cov(120, 200, seed=4)
    P = ProjectedCorePreconditioner.from_kernels([K], [0.5], 0.5, rank=15, generator=5)
    check_exact_algebra(P, lh)
    # M = d (I - U U^T) + U (C + s2e I) U^T with C = U^T (0.5 K) U
    U = P.U
    S = 0.5 * U.T @ K @ U + 0.5 * torch.eye(15, dtype=DT)
    M = P.d * (torch.eye(120, dtype=DT) - U @ U.T) + U @ S @ U.T
    assert lh.rel_err(P.to_dense(), M) < 1e-12
    # d = s2e + theta * mean discarded eigenvalue (exact trace for a dense kernel)
    delta = (K.trace() - (U.T @ K @ U).trace()) / (120 - 15)
    assert P.d == pytest.approx(0.5 + 0.5 * float(delta), rel=1e-12)
    plain = ProjectedCorePreconditioner.from_kernels(
        [K], [0.5], 0.5, rank=15, generator=5, include_discarded=False
    )
    assert plain.d == 0.5
    check_exact_algebra(plain, lh)


def test_projected_core_update_equals_rebuild(lh):
    _, K1, _ = lh.lowrank_cov(100, 150, seed=6)
    K2 = lh.structured_kernel(100, seed=7)
    P = ProjectedCorePreconditioner.from_kernels([K1, K2], [0.3, 0.2], 0.5, rank=12, generator=8)
    P.update([0.1, 0.7], 0.25)
    fresh = ProjectedCorePreconditioner(P.U, list(P.cores), [0.1, 0.7], 0.25, discarded=P.discarded)
    assert lh.rel_err(P.to_dense(), fresh.to_dense()) < 1e-12
    assert float(P.logdet()) == pytest.approx(float(fresh.logdet()), rel=1e-12)
    check_exact_algebra(P, lh)
    # the same basis rebuilt from scratch with the same seed gives the same preconditioner
    again = ProjectedCorePreconditioner.from_kernels(
        [K1, K2], [0.1, 0.7], 0.25, rank=12, generator=8
    )
    assert lh.rel_err(again.to_dense(), P.to_dense()) < 1e-10
    with pytest.raises(InputError, match="variances"):
        P.update([1.0], 0.5)
    with pytest.raises(InputError, match="residual"):
        P.update([1.0, 1.0], 0.0)


def test_projected_core_negative_variance_stays_positive_definite(lh):
    _, K, _ = lh.lowrank_cov(60, 100, seed=9)
    P = ProjectedCorePreconditioner.from_kernels([K], [-5.0], 0.5, rank=5, generator=1)
    assert bool((torch.linalg.eigvalsh(P.to_dense()) > 0).all())
    assert math.isfinite(float(P.logdet()))


def test_projected_core_equals_v_for_low_rank_kernel(lh):
    V, K, Z = lh.lowrank_cov(150, 20, seed=10)  # rank(K) <= 20
    P = ProjectedCorePreconditioner.from_kernels([K], [0.5], 0.5, rank=25, generator=2)
    assert lh.rel_err(P.to_dense(), V) < 1e-9
    res = block_cg(V, torch.randn(150, 3, generator=gen(3), dtype=DT), P, tol=1e-10)
    assert res.n_iter <= 2


def test_projected_core_cuts_pcg_iterations(lh):
    n = 300
    K = lh.structured_kernel(n, seed=11)
    V = 0.5 * K + 0.5 * torch.eye(n, dtype=DT)
    B = torch.randn(n, 4, generator=gen(12), dtype=DT)
    plain = block_cg(V, B, tol=1e-8)
    P = ProjectedCorePreconditioner.from_kernels([K], [0.5], 0.5, rank=60, generator=13)
    pre = block_cg(V, B, P, tol=1e-8)
    assert pre.all_converged and plain.all_converged
    assert pre.n_iter * 3 <= plain.n_iter


def test_projected_core_traces_from_sketch_for_callables(lh):
    _, K, _ = lh.lowrank_cov(200, 400, seed=14)
    exact = ProjectedCorePreconditioner.from_kernels([K], [0.5], 0.5, rank=10, generator=15)
    sketch = ProjectedCorePreconditioner.from_kernels(
        [lambda X: K @ X], [0.5], 0.5, rank=10, generator=15, size=200
    )
    given = ProjectedCorePreconditioner.from_kernels(
        [lambda X: K @ X], [0.5], 0.5, rank=10, generator=15, size=200, traces=[float(K.trace())]
    )
    assert given.d == pytest.approx(exact.d, rel=1e-12)
    assert sketch.d == pytest.approx(exact.d, rel=0.1)  # Hutchinson estimate from the sketch
    check_exact_algebra(sketch, lh)


def test_pivoted_cholesky_factor(lh):
    Z = torch.randn(60, 5, generator=gen(16), dtype=DT)
    K = Z @ Z.T
    L = pivoted_cholesky(K, rank=20)
    assert L.shape == (60, 5)  # stops when the residual is exhausted
    assert lh.rel_err(L @ L.T, K) < 1e-10
    Lc = pivoted_cholesky(lambda X: K @ X, rank=3, diagonal=K.diagonal(), size=60)
    Lt = pivoted_cholesky(K, rank=3)
    assert lh.rel_err(Lc @ Lc.T, Lt @ Lt.T) < 1e-10
    with pytest.raises(InputError, match="diagonal"):
        pivoted_cholesky(lambda X: K @ X, rank=3, size=60)


class _MatmulOnly(LinearOperator):
    """A LinearOperator with matmul and diagonal but no row indexing."""

    def __init__(self, dense):
        super().__init__(dense)
        self._dense = dense

    def _matmul(self, rhs):
        return self._dense @ rhs

    def _size(self):
        return self._dense.shape

    def _transpose_nonbatch(self):
        return self

    def _diagonal(self):
        return self._dense.diagonal()

    def _get_indices(self, row_index, col_index, *batch_indices):
        raise NotImplementedError("no indexing")


def test_pivoted_cholesky_falls_back_to_matvecs(lh):
    _, K, _ = lh.lowrank_cov(50, 30, seed=17)
    L = pivoted_cholesky(_MatmulOnly(K), rank=8)
    Lt = pivoted_cholesky(K, rank=8)
    assert lh.rel_err(L @ L.T, Lt @ Lt.T) < 1e-10


def test_pivoted_cholesky_preconditioner_algebra_and_update(lh):
    V, K, _ = lh.lowrank_cov(100, 150, seed=18)
    P = PivotedCholeskyPreconditioner(K, noise=0.5, rank=15, scale=0.5)
    check_exact_algebra(P, lh)
    M = 0.5 * P.L @ P.L.T + 0.5 * torch.eye(100, dtype=DT)
    assert lh.rel_err(P.to_dense(), M) < 1e-12
    noise = torch.linspace(0.2, 1.0, 100, dtype=DT)
    P.update(scale=0.8, noise=noise)
    fresh = PivotedCholeskyPreconditioner(K, noise=noise, rank=15, scale=0.8)
    assert lh.rel_err(P.to_dense(), fresh.to_dense()) < 1e-12
    check_exact_algebra(P, lh)
    assert P.root_size == 115
    with pytest.raises(InputError, match="noise"):
        P.update(noise=0.0)


def test_pivoted_cholesky_cuts_pcg_iterations(lh):
    n = 300
    K = lh.structured_kernel(n, seed=19)
    V = 0.5 * K + 0.5 * torch.eye(n, dtype=DT)
    B = torch.randn(n, 4, generator=gen(20), dtype=DT)
    plain = block_cg(V, B, tol=1e-8)
    pre = block_cg(V, B, PivotedCholeskyPreconditioner(K, 0.5, rank=60, scale=0.5), tol=1e-8)
    assert pre.all_converged
    assert pre.n_iter < plain.n_iter
