"""LDSC-style objective: expected chi^2, dense and banded, and its minimum at the truth."""

import numpy as np
import pytest
import torch

from torchgenetics.deepwas.ldsc import LDSCObjective, ld_scores
from torchgenetics.deepwas.regions import Region
from torchgenetics.operators import BandedLD

DT = torch.float64


def test_expected_chi2_dense_and_banded(region_factory):
    reg = region_factory(p=50, window=np.arange(10, 30))
    reg.sqrt_n = reg.sqrt_n * torch.linspace(0.5, 1.5, 20, dtype=DT)
    f = torch.rand(50, generator=torch.Generator().manual_seed(0), dtype=DT) * 1e-4
    R = reg.ld
    w = reg.window
    ref = reg.sqrt_n.square() * (R[w].square() @ f) + 0.8 * R.diagonal()[w]
    got = LDSCObjective().expected_chi2(reg, f, 0.8)
    assert torch.allclose(got, ref)
    band = BandedLD.from_dense(R, window=6)
    breg = Region("b", "1", reg.variant_ids, band, w, reg.z, reg.sqrt_n, reg.features)
    Rb = band.to_dense()
    ref_b = reg.sqrt_n.square() * (Rb[w].square() @ f) + 0.8 * Rb.diagonal()[w]
    assert torch.allclose(LDSCObjective().expected_chi2(breg, f, 0.8), ref_b)
    assert torch.allclose(ld_scores(breg), Rb[w].square().sum(1))
    # the weights use LD scores among the scored variants, floored at 1
    loss = LDSCObjective()(reg, f, 0.8)
    scores = R[w][:, w].square().sum(1).clamp_min(1.0)
    chi2 = reg.z.square()
    manual = ((chi2 - ref).square() / (2 * ref.square() * scores)).sum()
    assert loss.value == pytest.approx(float(manual), rel=1e-12)
    assert loss.method == "ldsc" and loss.n_scored == 20


def test_ldsc_objective_is_smallest_near_the_true_scale(small_example):
    ex = small_example
    obj = LDSCObjective()

    def total(c):
        out = 0.0
        for r in ex.regions:
            f = torch.as_tensor(c * ex.variance[ex.annotations.positions_of(r.variant_ids)])
            out += obj(r, f).value
        return out

    scales = [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
    best = scales[int(np.argmin([total(c) for c in scales]))]
    assert 0.25 <= best <= 4.0
