"""Credible sets, purity and PIPs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from susie_helpers import simulate

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


def test_pip_numpy_path_equals_the_torch_formula_bit_for_bit():
    """PIPs of CPU tensors come from numpy; they equal torch's product over the kept effects."""
    g = torch.Generator().manual_seed(4)
    alpha = torch.softmax(5 * torch.randn(7, 40, generator=g, dtype=F64), dim=1)
    V = torch.tensor([1.0, 0.0, 0.3, 1e-12, 2.0, 0.5, 0.1], dtype=F64)
    for null_index in (-1, 39):
        keep = torch.ones(40, dtype=torch.bool)
        if null_index >= 0:
            keep[null_index] = False
        kept = alpha[V > 1e-9][:, keep]
        assert torch.equal(pip(alpha, V, 1e-9, null_index), 1.0 - torch.prod(1.0 - kept, dim=0))
        assert torch.equal(pip(alpha, None, 1e-9, null_index),
                           1.0 - torch.prod(1.0 - alpha[:, keep], dim=0))
    assert pip(alpha, torch.zeros(7, dtype=F64), null_index=39).shape == (39,)


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


def _reference_sets(alpha, V, correlations, coverage, min_abs_corr, n_purity, prior_tol,
                    null_index, dedup, squared, generator):
    """The plain algorithm (one torch sort per call, every set's full correlation block,
    torch.quantile for the median): what credible_sets must reproduce bit for bit."""
    order = torch.sort(alpha, dim=1, descending=True, stable=True)
    size = torch.clamp((torch.cumsum(order.values, dim=1) < coverage).sum(dim=1) + 1,
                       max=alpha.shape[1])
    seen, rows = set(), []
    for eff in range(alpha.shape[0]):
        idx = torch.sort(order.indices[eff, : int(size[eff])]).values
        key = tuple(idx.tolist())
        if not V[eff] > prior_tol or (dedup and key in seen):
            continue
        seen.add(key)
        claimed = float(alpha[eff, idx].sum())
        if null_index >= 0 and null_index in key:
            continue
        if idx.numel() == 1:
            pur = torch.ones(3, dtype=F64)
        else:
            sub = idx
            if idx.numel() > n_purity:
                sub = idx[torch.randperm(idx.numel(), generator=generator)[:n_purity]]
            c = correlations(sub)
            k = sub.numel()
            upper = torch.triu_indices(k, k, offset=1)
            values = c[upper[0], upper[1]].abs().to(F64)
            values = values**2 if squared else values
            pur = torch.stack([values.min(), values.mean(), torch.quantile(values, 0.5)])
        if bool(pur[0] >= (min_abs_corr**2 if squared else min_abs_corr)):
            rows.append((eff, idx, claimed, pur))
    rows.sort(key=lambda r: -float(r[3][0]))
    return rows


@pytest.mark.parametrize("case", range(40))
def test_credible_sets_reproduce_the_plain_algorithm_bit_for_bit(case):
    """One sort for all rows, the screening of large sets on a few members and the median
    without torch.quantile change nothing: same sets, order, coverage and purity bits."""
    from torchgenetics.susie.data import IndividualData

    rng = np.random.default_rng(case)
    p = int(rng.choice([8, 60, 300]))
    X, y = simulate(n=80, p=p, causal=(1,), rho=float(rng.choice([0.3, 0.95])), seed=case)
    if case % 5 == 0:
        X[:, p // 2] = 0.25  # a constant column: NaN correlations
    data = IndividualData(X, y)
    L = int(rng.integers(1, 9))
    alpha = np.stack([rng.dirichlet(np.full(p, c)) for c in rng.choice([0.02, 0.3, 3.0], size=L)])
    if case % 4 == 1:
        alpha = np.round(alpha, 2)  # ties, also across a set's edge
        alpha = alpha / alpha.sum(1, keepdims=True)
    if L > 2 and case % 3 == 0:
        alpha[2] = alpha[0]  # a duplicate set
    a = torch.from_numpy(alpha).to(F64 if case % 7 else torch.float32)
    V = torch.from_numpy(rng.choice([0.0, 1e-12, 0.5], size=L, p=[0.2, 0.1, 0.7]))
    opts = dict(coverage=float(rng.choice([0.5, 0.95, 0.99])),
                min_abs_corr=float(rng.choice([0.0, 0.3, 0.5])), n_purity=int(rng.choice([5, 100])),
                prior_tol=1e-9, null_index=p - 1 if case % 6 == 0 else -1, dedup=case % 8 != 0,
                squared=case % 9 == 0)
    out = credible_sets(a, V, data.correlations, generator=torch.Generator().manual_seed(case), **opts)
    ref = _reference_sets(a, V, data.correlations, generator=torch.Generator().manual_seed(case),
                          **opts)
    assert [c.tolist() for c in out["cs"]] == [r[1].tolist() for r in ref]
    assert out["cs_index"].tolist() == [r[0] for r in ref]
    assert out["coverage"].tolist() == [r[2] for r in ref]
    assert torch.equal(out["purity"], torch.stack([r[3] for r in ref]) if ref else
                       torch.zeros((0, 3), dtype=F64))
    member = in_credible_set(a, opts["coverage"])
    order = torch.sort(a, dim=1, descending=True, stable=True)
    size = torch.clamp((torch.cumsum(order.values, dim=1) < opts["coverage"]).sum(1) + 1, max=p)
    for eff in range(L):
        expected = sorted(order.indices[eff, : int(size[eff])].tolist())
        assert torch.nonzero(member[eff]).flatten().tolist() == expected


def test_ties_across_the_set_edge_take_the_lowest_indices():
    alpha = torch.tensor([[0.1, 0.2, 0.3, 0.2, 0.2]], dtype=F64)
    assert torch.nonzero(in_credible_set(alpha, 0.6)[0]).flatten().tolist() == [1, 2, 3]
    out = credible_sets(alpha, coverage=0.6)
    assert out["cs"][0].tolist() == [1, 2, 3]


def test_median_is_torch_quantile_bit_for_bit():
    from torchgenetics.susie.sets import _median

    # (lo + hi) / 2 would round this pair differently from torch's lerp
    pair = np.array([0.0009819426931267062, 8.893564024627199e-05, 0.5, 0.0])
    assert _median(pair) == float(torch.quantile(torch.from_numpy(pair), 0.5))
    rng = np.random.default_rng(3)
    for m in list(range(1, 40)) + [4950, 4951]:
        values = np.abs(rng.standard_normal(m)) * rng.choice([1e-3, 1.0, 1e4])
        if m % 3 == 0:
            values = np.round(values, 1)
        assert _median(values) == float(torch.quantile(torch.from_numpy(values), 0.5))


def test_sets_are_found_once_for_the_fit_returned(monkeypatch):
    """Greedy rounds and refinement steps skip the credible sets; the fit returned gets
    them once, equal to those computed from its final alpha and V."""
    from torchgenetics.susie import api, susie_batch
    from torchgenetics.susie.data import IndividualData

    calls = []
    original = api.credible_sets
    monkeypatch.setattr(api, "credible_sets", lambda *a, **k: calls.append(1) or original(*a, **k))
    X, y = simulate(n=150, p=40, causal=(5, 30), seed=4)
    fit = susie(X, y, L=6, L_greedy=2)
    assert len(calls) == 1 and len(fit.greedy_history) > 1
    again = credible_sets(fit.alpha, fit.V, IndividualData(X, y).correlations,
                          generator=torch.Generator().manual_seed(fit.seed))
    assert [c.tolist() for c in fit.sets["cs"]] == [c.tolist() for c in again["cs"]]
    assert torch.equal(fit.sets["purity"], again["purity"])
    calls.clear()
    batch = susie_batch([(X, y), simulate(n=100, p=30, causal=(3,), seed=5)], L=6, L_greedy=2)
    assert len(calls) == 2
    assert [c.tolist() for c in batch[0].sets["cs"]] == [c.tolist() for c in fit.sets["cs"]]
    calls.clear()
    refined = susie(X, y, L=6, refine=True)
    assert 1 <= len(calls) <= 1 + len(refined.sets["cs"]) * 4
    plain = susie(X, y, L=6)
    assert refined.elbo[-1] >= plain.elbo[-1] - 1e-9
