"""Lanczos and stochastic Lanczos quadrature against dense eigendecompositions."""

from __future__ import annotations

import pytest
import torch

from torchgenetics.errors import InputError
from torchgenetics.linalg import (
    PivotedCholeskyPreconditioner,
    ProjectedCorePreconditioner,
    estimate_from_samples,
    lanczos,
    make_probes,
    slq_logdet,
    slq_trace,
)

DT = torch.float64


def gen(seed):
    return torch.Generator().manual_seed(seed)


def dense_fn(A, fn):
    lam, Q = torch.linalg.eigh(A)
    return (Q * fn(lam)) @ Q.T


def test_lanczos_full_steps_recovers_spectrum(lh):
    V, _, _ = lh.lowrank_cov(60, 100, seed=1)
    res = lanczos(V, torch.randn(60, 3, generator=gen(2), dtype=DT), steps=60)
    assert res.steps.tolist() == [60, 60, 60]
    ritz = torch.linalg.eigvalsh(res.tridiagonal())
    exact = torch.linalg.eigvalsh(V)
    for j in range(3):
        assert lh.rel_err(ritz[j], exact) < 1e-9


def test_preconditioned_lanczos_is_lanczos_of_split_matrix(lh):
    V, K, _ = lh.lowrank_cov(60, 100, seed=3)
    P = ProjectedCorePreconditioner.from_kernels([K], [0.5], 0.5, rank=8, generator=0)
    M = P.to_dense()
    Mh_inv = dense_fn(M, lambda t: t.rsqrt())
    z = P.sample(2, generator=4)
    res = lanczos(V, z, steps=15, preconditioner=P)
    ref = lanczos(Mh_inv @ V @ Mh_inv, Mh_inv @ z, steps=15)
    assert lh.rel_err(res.tridiagonal(), ref.tridiagonal()) < 1e-8
    assert lh.rel_err(res.start_norms, ref.start_norms) < 1e-12


def test_quadrature_exact_when_krylov_space_exhausted():
    n = 50
    u = torch.randn(n, 1, generator=gen(5), dtype=DT)
    A = torch.eye(n, dtype=DT) * 2.0 + u @ u.T  # two distinct eigenvalues
    Z = make_probes(n, 4, generator=6, distribution="gaussian")
    res = lanczos(A, Z, steps=10)
    assert res.steps.tolist() == [2, 2, 2, 2]
    samples = res.quadrature(torch.log)
    exact = (Z * (dense_fn(A, torch.log) @ Z)).sum(0)
    assert torch.allclose(samples, exact, rtol=1e-10)


def test_slq_trace_inverse_matches_dense_per_probe(lh):
    V, _, _ = lh.lowrank_cov(40, 20, seed=7)
    P = make_probes(40, 5, generator=8)
    est = slq_trace(V, lambda t: 1.0 / t, probes=P, lanczos_steps=40)
    exact = (P * torch.linalg.solve(V, P)).sum(0)
    assert torch.allclose(est.samples, exact, rtol=1e-9)


@pytest.mark.parametrize("distribution", ["rademacher", "gaussian"])
def test_slq_logdet_within_three_se(distribution, lh):
    V, _, _ = lh.lowrank_cov(150, 300, seed=9)
    est = slq_logdet(V, num_probes=40, lanczos_steps=25, generator=10, distribution=distribution)
    truth = float(torch.logdet(V))
    assert est.n == 40
    assert abs(float(est.value) - truth) < 3 * float(est.se)


def test_slq_logdet_callable_and_linear_operator(lh):
    from linear_operator.operators import DenseLinearOperator

    V, _, _ = lh.lowrank_cov(80, 40, seed=11)
    a = slq_logdet(V, num_probes=10, lanczos_steps=20, generator=12)
    b = slq_logdet(lambda X: V @ X, num_probes=10, lanczos_steps=20, generator=12, size=80)
    c = slq_logdet(DenseLinearOperator(V), num_probes=10, lanczos_steps=20, generator=12)
    assert torch.allclose(a.value, b.value) and torch.allclose(a.value, c.value)


@pytest.mark.parametrize("kind", ["plain", "projected_core", "pivoted_cholesky"])
def test_slq_standard_error_is_honest(kind, lh):
    """Over 200 replicates about 95% of the 2-SE intervals cover log|V| (quadrature bias negligible).

    Each replicate is an independent set of 30 probes; the replicates are run as
    column blocks of a few large calls (same estimator, far fewer Python steps).
    """
    V, K, _ = lh.lowrank_cov(100, 300, seed=13)
    truth = float(torch.logdet(V))
    if kind == "plain":
        P = None
    elif kind == "projected_core":
        P = ProjectedCorePreconditioner.from_kernels([K], [0.5], 0.5, rank=10, generator=0)
    else:
        P = PivotedCholeskyPreconditioner(K, noise=0.5, rank=10, scale=0.5)
    rows = 100 if P is None else P.root_size
    k, reps, per_call = 30, 200, 50
    hits = 0
    for call in range(reps // per_call):
        base = make_probes(rows, k * per_call, generator=gen(3000 + call))
        big = slq_logdet(V, lanczos_steps=15, preconditioner=P, probes=base)
        offset = big.value - big.samples.mean()
        for r in range(per_call):
            est = estimate_from_samples(big.samples[r * k : (r + 1) * k], offset)
            lo, hi = est.interval(2.0)
            hits += lo <= truth <= hi
    assert 0.88 <= hits / reps <= 0.99


def test_preconditioning_reduces_slq_variance(lh):
    n = 150
    K = lh.structured_kernel(n, seed=14)
    V = 0.5 * K + 0.5 * torch.eye(n, dtype=DT)
    truth = float(torch.logdet(V))
    P = ProjectedCorePreconditioner.from_kernels([K], [0.5], 0.5, rank=20, generator=1)
    plain = slq_logdet(V, num_probes=30, lanczos_steps=30, generator=15)
    pre = slq_logdet(V, num_probes=30, lanczos_steps=30, preconditioner=P, generator=15)
    assert abs(float(pre.value) - truth) < 3 * float(pre.se)
    assert float(pre.se) * 2 < float(plain.se)
    # fixed base probes make the estimate a deterministic function of the inputs
    base = make_probes(P.root_size, 30, generator=15)
    again = slq_logdet(V, lanczos_steps=30, preconditioner=P, probes=base)
    assert float(again.value) == pytest.approx(float(pre.value), rel=1e-12)


def test_slq_errors():
    A = torch.diag(torch.tensor([1.0, -2.0, 3.0], dtype=DT))
    with pytest.raises(InputError, match="not positive definite"):
        slq_logdet(A, num_probes=3, lanczos_steps=3, generator=0)
    with pytest.raises(InputError, match="rows"):
        P = PivotedCholeskyPreconditioner(torch.eye(3, dtype=DT), 1.0, rank=2)
        slq_logdet(torch.eye(3, dtype=DT), preconditioner=P, probes=torch.ones(3, 2, dtype=DT))
    with pytest.raises(InputError, match="preconditioner"):
        slq_logdet(torch.eye(3, dtype=DT), num_probes=2, preconditioner=lambda R: R)
    with pytest.raises(InputError, match="zero"):
        lanczos(torch.eye(3, dtype=DT), torch.zeros(3, 1, dtype=DT), 2)
