"""Credible sets, purity and PIPs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchgenetics.susie import credible_sets, pip, susie
from torchgenetics.susie.sets import in_credible_set, purity

F64 = torch.float64


def test_pip_prunes_small_prior_variances_and_the_null_column():
    alpha = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.9, 0.05, 0.05]], dtype=F64)
    V = torch.tensor([1.0, 1e-12, 2.0], dtype=F64)
    expected = 1 - (1 - alpha[0]) * (1 - alpha[2])
    assert torch.allclose(pip(alpha, V, prior_tol=1e-9), expected)
    assert torch.allclose(pip(alpha, V, prior_tol=1e-9, null_index=2), expected[:2])
    assert torch.equal(pip(alpha, torch.zeros(3, dtype=F64)), torch.zeros(3, dtype=F64))


def test_smallest_set_reaching_coverage_with_ties_in_index_order():
    alpha = torch.tensor([[0.25, 0.5, 0.25, 0.0]], dtype=F64)
    assert in_credible_set(alpha, 0.7).tolist() == [[True, True, False, False]]  # tie: lower index
    assert in_credible_set(alpha, 0.5).tolist() == [[False, True, False, False]]
    assert in_credible_set(torch.full((1, 4), 0.25, dtype=F64), 0.95).sum() == 4


def test_credible_sets_drop_null_duplicate_and_impure_sets():
    alpha = torch.tensor([
        [0.96, 0.02, 0.01, 0.01],   # effect 1: {0}
        [0.50, 0.48, 0.01, 0.01],   # effect 2: {0, 1} with |corr| 0.1: impure
        [0.97, 0.01, 0.01, 0.01],   # effect 3: duplicate of effect 1
        [0.01, 0.01, 0.49, 0.49],   # effect 4: {2, 3} with |corr| 0.9
        [0.97, 0.01, 0.01, 0.01],   # effect 5: V = 0
    ], dtype=F64)
    V = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0], dtype=F64)
    R = torch.tensor([[1, 0.1, 0, 0], [0.1, 1, 0, 0], [0, 0, 1, -0.9], [0, 0, -0.9, 1]], dtype=F64)
    out = credible_sets(alpha, V, lambda i: R[i][:, i], coverage=0.95, min_abs_corr=0.5)
    assert [c.tolist() for c in out["cs"]] == [[0], [2, 3]]  # ordered by purity
    assert out["cs_index"].tolist() == [0, 3]
    assert out["coverage"].tolist() == pytest.approx([0.96, 0.98])
    assert out["purity"].flatten().tolist() == pytest.approx([1, 1, 1, 0.9, 0.9, 0.9])
    no_purity = credible_sets(alpha, V, None)
    assert [c.tolist() for c in no_purity["cs"]] == [[0], [0, 1], [2, 3]]
    assert bool(torch.isnan(no_purity["purity"]).all())


def test_purity_from_X_matches_numpy(n3):
    fit = susie(torch.from_numpy(n3["X"]), torch.from_numpy(n3["y"]), L=10)
    for cs, pur in zip(fit.sets["cs"], fit.sets["purity"], strict=True):
        idx = cs.numpy()
        if len(idx) == 1:
            assert pur.tolist() == [1.0, 1.0, 1.0]
            continue
        c = np.abs(np.corrcoef(n3["X"][:, idx], rowvar=False)[np.triu_indices(len(idx), 1)])
        assert pur.tolist() == pytest.approx([c.min(), c.mean(), np.median(c)], abs=1e-12)


def test_purity_subsample_is_seeded(n3):
    X, y = torch.from_numpy(n3["X"]), torch.from_numpy(n3["y"])
    full = susie(X, y, L=10)
    big = max(range(len(full.sets["cs"])), key=lambda k: len(full.sets["cs"][k]))
    assert len(full.sets["cs"][big]) > 8
    a = susie(X, y, L=10, n_purity=8, seed=1)
    b = susie(X, y, L=10, n_purity=8, seed=1)
    c = susie(X, y, L=10, n_purity=8, seed=2)
    assert torch.equal(a.sets["purity"], b.sets["purity"])
    k = [cs.tolist() for cs in a.sets["cs"]].index(full.sets["cs"][big].tolist())
    # a subsample's smallest correlation is never below the full set's
    assert float(a.sets["purity"][k, 0]) >= float(full.sets["purity"][big, 0]) - 1e-12
    assert not torch.equal(a.sets["purity"], c.sets["purity"])


def test_purity_of_a_constant_member_is_nan():
    X = torch.tensor([[1.0, 2.0, 5.0], [2.0, 4.0, 5.0], [3.0, 7.0, 5.0]], dtype=F64)

    def corr(i):
        cols = X[:, i] - X[:, i].mean(0)
        cols = cols / cols.norm(dim=0)
        return cols.T @ cols

    assert bool(torch.isnan(purity(torch.tensor([0, 2]), corr)).all())
    assert purity(torch.tensor([0, 1]), corr)[0] > 0.99
