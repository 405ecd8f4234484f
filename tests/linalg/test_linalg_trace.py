"""Hutchinson, Hutch++ and tr(A^-1 K): accuracy within their standard errors, honest SEs."""

from __future__ import annotations

import pytest
import torch

from torchgenetics.errors import InputError
from torchgenetics.linalg import (
    Estimate,
    hutch_plus_plus,
    hutchinson,
    make_probes,
    trace_of_inverse_product,
)

DT = torch.float64


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_make_probes_shapes_and_reproducibility():
    R = make_probes(50, 7, generator=gen(1))
    assert R.shape == (50, 7) and R.dtype == DT
    assert bool((R.abs() == 1).all())
    assert torch.equal(R, make_probes(50, 7, generator=1))  # int seed == seeded generator
    G = make_probes(2000, 3, generator=2, distribution="gaussian", dtype=torch.float32)
    assert G.dtype == torch.float32 and abs(float(G.std()) - 1) < 0.05
    with pytest.raises(InputError, match="distribution"):
        make_probes(3, 3, distribution="uniform")
    with pytest.raises(InputError, match="generator"):
        make_probes(3, 3, generator="seed")


@pytest.mark.parametrize("distribution", ["rademacher", "gaussian"])
@pytest.mark.parametrize("form", ["tensor", "callable"])
def test_hutchinson_within_three_se(distribution, form, lh):
    V, _, _ = lh.lowrank_cov(100, 50, seed=3)
    A = V if form == "tensor" else (lambda X: V @ X)
    est = hutchinson(A, num_probes=60, generator=4, distribution=distribution, size=100)
    assert isinstance(est, Estimate) and est.n == 60
    assert abs(float(est.value - V.trace())) < 3 * float(est.se)
    blocked = hutchinson(
        A, num_probes=60, generator=4, distribution=distribution, size=100, block_size=7
    )
    assert torch.allclose(blocked.value, est.value)


def test_hutchinson_fixed_probes_and_gradient():
    Z = torch.randn(30, 10, generator=gen(5), dtype=DT)
    s2 = torch.tensor(0.7, dtype=DT, requires_grad=True)
    P = make_probes(30, 20, generator=6)
    est = hutchinson(s2 * (Z @ Z.T), probes=P)
    est.value.backward()
    exact_grad = (P * (Z @ (Z.T @ P))).sum(0).mean()  # d/ds2 of the same estimator
    assert torch.allclose(s2.grad, exact_grad)
    with pytest.raises(InputError, match="probes"):
        hutchinson(Z @ Z.T, probes=torch.ones(29, 3, dtype=DT))
    with pytest.raises(InputError, match="size"):
        hutchinson(lambda X: X, num_probes=3)


def test_hutchinson_standard_error_is_honest(lh):
    V, _, _ = lh.lowrank_cov(100, 50, seed=7)
    truth = float(V.trace())
    hits = 0
    for seed in range(200):
        est = hutchinson(V, num_probes=30, generator=gen(1000 + seed))
        lo, hi = est.interval(2.0)
        hits += lo <= truth <= hi
    assert 0.88 <= hits / 200 <= 0.99


def test_hutch_plus_plus_beats_hutchinson_on_low_rank(lh):
    n = 150
    U = torch.randn(n, 6, generator=gen(8), dtype=DT)
    A = 50.0 * U @ U.T + torch.eye(n, dtype=DT)  # low-rank dominated
    truth = float(A.trace())
    hpp, hut = [], []
    for seed in range(40):
        e1 = hutch_plus_plus(A, num_matvecs=30, generator=gen(seed))
        e2 = hutchinson(A, num_probes=30, generator=gen(500 + seed))
        hpp.append(float(e1.value))
        hut.append(float(e2.value))
        assert abs(float(e1.value) - truth) < 4 * float(e1.se) + 1e-8 * truth
    var_hpp = torch.tensor(hpp).sub(truth).square().mean()
    var_hut = torch.tensor(hut).sub(truth).square().mean()
    assert var_hpp * 20 < var_hut
    est = hutch_plus_plus(A, num_matvecs=30, generator=0)
    assert est.n == 10 and est.samples.shape == (10,)
    with pytest.raises(InputError, match="num_matvecs"):
        hutch_plus_plus(A, num_matvecs=3)


def test_trace_of_inverse_product(lh):
    V, K, _ = lh.lowrank_cov(100, 60, seed=9)
    inv = torch.linalg.inv(V)
    truths = [float((inv @ K).trace()), float(inv.trace())]
    ests = trace_of_inverse_product(V, [K, lambda X: X], num_probes=60, generator=10)
    assert isinstance(ests, list) and len(ests) == 2
    for est, truth in zip(ests, truths, strict=True):
        assert abs(float(est.value) - truth) < 3 * float(est.se)
    # same probes -> same value (deterministic objective); precomputed solves give the same answer
    P = make_probes(100, 60, generator=10)
    single = trace_of_inverse_product(V, K, probes=P)
    assert float(single.value) == pytest.approx(float(ests[0].value), rel=1e-9)
    again = trace_of_inverse_product(V, K, probes=P, solves=torch.linalg.solve(V, P))
    assert float(again.value) == pytest.approx(float(single.value), rel=1e-9)
    with pytest.raises(InputError, match="solves"):
        trace_of_inverse_product(V, K, probes=P, solves=P[:, :3])


def test_trace_of_inverse_product_standard_error_is_honest(lh):
    V, K, _ = lh.lowrank_cov(100, 60, seed=11)
    truth = float(torch.linalg.solve(V, K).trace())
    hits = 0
    for seed in range(200):
        est = trace_of_inverse_product(V, K, num_probes=30, generator=gen(2000 + seed), tol=1e-10)
        lo, hi = est.interval(2.0)
        hits += lo <= truth <= hi
    assert 0.88 <= hits / 200 <= 0.99
