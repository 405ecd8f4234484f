"""Shared fixtures of the bayesDREAM tests: one thread, simulated screens, fitted pipelines."""

import warnings

import pytest
import torch

from torchgenetics.dream import BayesDream, simulate_screen


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny Pyro models run fastest on one intra-op thread (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def screen():
    """300 cells, 12 trans genes (5 activators, 4 repressors, 3 flat), 2 cell lines."""
    return simulate_screen(n_cells=300, n_features=12, frac_activator=5 / 12, frac_repressor=4 / 12, seed=0)


@pytest.fixture(scope="session")
def pipeline(screen):
    """technical -> cis -> trans on ``screen`` with the default AutoNormal guide."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    dm = BayesDream(screen.counts, screen.cells, screen.cis_gene, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dm.fit_technical(n_steps=300, lr=0.05, n_samples=200)
        dm.fit_cis(n_steps=500, lr=0.05, n_samples=200)
        dm.fit_trans(n_steps=600, lr=0.05, n_samples=300)
    dm.caught_warnings = [str(w.message) for w in caught]
    torch.set_num_threads(before)
    return dm
