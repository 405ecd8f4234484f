"""Posterior sampling keeps latent sites only: memory grows with samples x parameters.

Pyro's Predictive reruns the model per draw and builds the observation
distribution, [samples x cells x features] when vectorised, even with
``return_sites``; ``sample_posterior`` samples the guide alone.
"""

import pyro
import pytest
import torch
from pyro.infer import Predictive

from torchgenetics.dream import (
    TensorMemoryTracker,
    latent_sites,
    prepare_data,
    sample_posterior,
    simulate_screen,
)
from torchgenetics.dream.guides import default_guide, structured_guide
from torchgenetics.dream.trans import trans_model

F = 20


def _peak(n_cells: int, n_samples: int, predictive: bool = False) -> int:
    sim = simulate_screen(n_cells=n_cells, n_features=F, n_groups=1, seed=0)
    model, _ = trans_model(prepare_data(sim.counts, sim.cells, sim.cis_gene), "counts", sim.truth["x_true"])
    with pyro.get_param_store().scope():
        guide = default_guide(model)
        guide(subsample_size=None)
        sites = latent_sites(guide)
        with TensorMemoryTracker() as mem:
            if predictive:
                out = Predictive(model, guide=guide, num_samples=n_samples, return_sites=sites,
                                 parallel=True)(subsample_size=None)
            else:
                out = sample_posterior(guide, n_samples)
            del out
    return mem.peak


def test_sampling_memory_grows_with_samples_times_parameters_not_cells():
    base = _peak(200, 100)
    more_cells = _peak(1600, 100)
    more_samples = _peak(200, 400)
    assert more_cells == pytest.approx(base, rel=0.05)          # 8x cells: same memory
    assert 3.5 < more_samples / base < 4.5                       # 4x samples: 4x memory
    n_params = 5 * F                                             # A, Vmax, K, n, gate per feature (o too)
    assert base < 4 * 100 * (n_params + F) * 8                   # a few copies of samples x parameters
    assert base < 100 * 200 * F * 8 / 10                         # far below samples x cells x features


def test_predictive_with_return_sites_still_builds_the_observation_tensor():
    peak = _peak(200, 100, predictive=True)
    assert peak > 100 * 200 * F * 8                              # at least one [S, N, F] float64 tensor


def test_autonormal_draws_follow_the_guide():
    sim = simulate_screen(n_cells=50, n_features=3, n_groups=1, seed=0)
    model, _ = trans_model(prepare_data(sim.counts, sim.cells, sim.cis_gene), "counts", sim.truth["x_true"])
    with pyro.get_param_store().scope():
        guide = default_guide(model)
        guide(subsample_size=None)
        draws = sample_posterior(guide, 4000, seed=3, budget=200_000)   # small budget: many chunks
        loc, scale = guide._get_loc_and_scale("K")
        again = sample_posterior(guide, 10, seed=3)
        same = sample_posterior(guide, 10, seed=3)
        other = sample_posterior(guide, 10, seed=4)
    assert draws["K"].shape == (4000, 3)
    torch.testing.assert_close(draws["K"].log().mean(0), loc.detach(), atol=0.01, rtol=0)
    torch.testing.assert_close(draws["K"].log().std(0), scale.detach(), atol=0.01, rtol=0)
    assert torch.equal(again["K"], same["K"])
    assert not torch.equal(again["K"], other["K"])


def test_traced_guides_give_latent_sites_only():
    sim = simulate_screen(n_cells=50, n_features=3, n_groups=1, seed=0)
    model, _ = trans_model(prepare_data(sim.counts, sim.cells, sim.cis_gene), "counts", sim.truth["x_true"])
    with pyro.get_param_store().scope():
        guide = structured_guide(model)
        guide(subsample_size=None)
        draws = sample_posterior(guide, 7, model_kwargs={"subsample_size": None})
    assert set(draws) == {"A", "Vmax", "K", "n", "gate", "o", "beta_o"}
    assert all(v.shape[0] == 7 for v in draws.values())
