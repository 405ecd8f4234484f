"""Our preconditioners inside linear_operator's inv_quad_logdet (iterative path forced).

linear_operator 0.6.1's ``linear_cg`` zeroes its step once ``r^T M^{-1} r < 1e-10``
for unit-normalised right-hand sides, so its relative residual stalls near 1e-5;
the CG tolerance below is set where it can actually stop.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from linear_operator import settings
from linear_operator.operators import (
    AddedDiagLinearOperator,
    DenseLinearOperator,
    DiagLinearOperator,
    RootLinearOperator,
)

from torchgenetics.errors import InputError
from torchgenetics.linalg import (
    PivotedCholeskyPreconditioner,
    ProjectedCorePreconditioner,
    make_probes,
    preconditioner_override,
    slq_logdet,
    with_preconditioner,
)

DT = torch.float64


def gen(seed):
    return torch.Generator().manual_seed(seed)


def iterative():
    """Force linear_operator's CG + Lanczos path with explicit tolerances."""
    return (
        settings.max_cholesky_size(0),
        settings.cg_tolerance(1e-5),
        settings.max_cg_iterations(300),
        settings.max_lanczos_quadrature_iterations(40),
    )


class CountingCore(ProjectedCorePreconditioner):
    calls = 0

    def solve(self, R):
        CountingCore.calls += 1
        return super().solve(R)


def run(op, rhs):
    a, b, c, d = iterative()
    with a, b, c, d, warnings.catch_warnings():
        warnings.simplefilter("error")  # no "CG did not converge" warnings
        return op.inv_quad_logdet(rhs, logdet=True)


def test_inv_quad_logdet_with_projected_core_matches_our_slq(lh):
    V, K, _ = lh.lowrank_cov(200, 400, seed=1)
    y = torch.randn(200, generator=gen(2), dtype=DT)
    P = CountingCore.from_kernels([K], [0.5], 0.5, rank=20, generator=0)
    base = make_probes(P.root_size, 12, generator=3)
    CountingCore.calls = 0
    iq, ld = run(with_preconditioner(V, P, probes=base), y)
    assert CountingCore.calls > 10  # the preconditioner was really used by linear_cg
    assert float(iq) == pytest.approx(float(y @ torch.linalg.solve(V, y)), rel=1e-8)
    # same estimator as slq_logdet with the same base probes (symmetric root, Rademacher)
    ours = slq_logdet(V, preconditioner=P, probes=base, lanczos_steps=40)
    assert float(ld) == pytest.approx(float(ours.value), rel=1e-8)
    assert abs(float(ld - torch.logdet(V))) < 3 * float(ours.se)
    # a seeded generator gives a reproducible log-determinant
    a = run(with_preconditioner(V, P, generator=4, num_probes=12), y)[1]
    b = run(with_preconditioner(V, P, generator=4, num_probes=12), y)[1]
    assert float(a) == float(b)


def test_inv_quad_logdet_near_exact_preconditioner(lh):
    V, K, _ = lh.lowrank_cov(150, 30, seed=5)  # rank(K) <= 30: a rank-40 core is exact
    y = torch.randn(150, 2, generator=gen(6), dtype=DT)
    P = ProjectedCorePreconditioner.from_kernels([K], [0.5], 0.5, rank=40, generator=7)
    torch.manual_seed(8)  # linear_operator draws N(0, M) probes from the global RNG
    iq, ld = run(with_preconditioner(DenseLinearOperator(V), P), y)
    exact_iq = (y * torch.linalg.solve(V, y)).sum()
    assert float(iq) == pytest.approx(float(exact_iq), rel=1e-8)
    assert float(ld) == pytest.approx(float(torch.logdet(V)), rel=1e-8)


def test_preconditioner_override_on_added_diag_with_gradients(lh):
    _, K, Z = lh.lowrank_cov(150, 30, seed=9)
    y = torch.randn(150, generator=gen(10), dtype=DT)
    P = PivotedCholeskyPreconditioner(K, noise=0.4, rank=30, scale=0.6)
    grads = {}
    for mode in ("lazy", "dense"):
        s2g = torch.tensor(0.6, dtype=DT, requires_grad=True)
        s2e = torch.tensor(0.4, dtype=DT, requires_grad=True)
        if mode == "lazy":
            V = AddedDiagLinearOperator(
                RootLinearOperator(Z * (s2g / 30).sqrt()),
                DiagLinearOperator(s2e.expand(150)),
                preconditioner_override=preconditioner_override(P),
            )
            torch.manual_seed(11)
            a, b, c, d = iterative()
            with a, b, c, d, settings.num_trace_samples(300):
                iq, ld = V.inv_quad_logdet(y, logdet=True)
        else:
            V = s2g * K + s2e * torch.eye(150, dtype=DT)
            iq, ld = y @ torch.linalg.solve(V, y), torch.logdet(V)
        (iq + ld).backward()
        grads[mode] = (iq.detach(), ld.detach(), s2g.grad, s2e.grad)
    lazy, dense = grads["lazy"], grads["dense"]
    assert float(lazy[0]) == pytest.approx(float(dense[0]), rel=1e-8)
    assert float(lazy[1]) == pytest.approx(
        float(dense[1]), rel=1e-6
    )  # M = V exactly (rank 30 >= rank K)
    # the logdet gradient is a Gaussian Hutchinson trace (300 probes: relative SE ~1.5%)
    assert float(lazy[2]) == pytest.approx(float(dense[2]), rel=0.06)
    assert float(lazy[3]) == pytest.approx(float(dense[3]), rel=0.06)


def test_adapter_input_checks(lh):
    V, K, _ = lh.lowrank_cov(50, 20, seed=12)
    P = ProjectedCorePreconditioner.from_kernels([K], [0.5], 0.5, rank=5, generator=0)
    with pytest.raises(InputError, match="Preconditioner"):
        with_preconditioner(V, lambda R: R)
    with pytest.raises(InputError, match="probes"):
        with_preconditioner(V, P, probes=torch.ones(49, 3, dtype=DT))
    with pytest.raises(InputError, match="LinearOperator"):
        with_preconditioner(lambda X: X, P)
    small = ProjectedCorePreconditioner.from_kernels([K[:40, :40]], [0.5], 0.5, rank=5, generator=0)
    with pytest.raises(InputError, match="40 x 40"):
        with_preconditioner(V, small)
