"""Calibration on simulations: no credible sets under the null, nominal coverage of causal variants."""

from __future__ import annotations

import torch
from susie_helpers import simulate

from torchgenetics.susie import susie


def test_null_data_gives_no_credible_set_in_95_percent_of_replicates():
    empty = 0
    for rep in range(100):
        gen = torch.Generator().manual_seed(1000 + rep)
        X = torch.randn(100, 20, generator=gen, dtype=torch.float64)
        y = torch.randn(100, generator=gen, dtype=torch.float64)
        empty += len(susie(X, y, L=5).sets["cs"]) == 0
    assert empty >= 95


def test_credible_sets_cover_the_causal_variants():
    n_sets = n_covering = 0
    found = 0
    for rep in range(40):
        gen = torch.Generator().manual_seed(rep)
        causal = torch.randperm(60, generator=gen)[:3].tolist()
        X, y = simulate(n=200, p=60, causal=causal, effect=0.35, rho=0.8, seed=500 + rep)
        fit = susie(X, y, L=5)
        for cs in fit.sets["cs"]:
            n_sets += 1
            n_covering += bool(set(cs.tolist()) & set(causal))
        found += sum(any(c in cs.tolist() for cs in fit.sets["cs"]) for c in causal)
    assert n_sets >= 60  # the simulation has power: most causal variants are found
    assert n_covering / n_sets >= 0.9
    assert found >= 60
