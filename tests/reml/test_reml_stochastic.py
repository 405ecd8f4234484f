"""The stochastic (matrix-free) path against the exact path, and its genotype-pass budget."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from torchgenetics.datasets import simulate_phenotype
from torchgenetics.operators import GRM, GRMStack
from torchgenetics.reml import reml


@pytest.fixture(scope="module")
def big(rh):
    """n = 2000 samples, one GRM over 1500 SNPs with LD, h2 = 0.5 plus two covariates."""
    sim = rh.sim(2000, 1500, seed=1, chromosomes=2)
    g = rh.gen(7)
    C = torch.randn(2000, 2, generator=g, dtype=rh.DT)
    ph = simulate_phenotype(sim, h2=0.5, covariates=C.numpy(), covariate_effects=[0.3, -0.2], seed=2)
    return sim.to_genotypes(), torch.as_tensor(ph.y), C


def test_stochastic_matches_exact_within_its_monte_carlo_error(big):
    G, y, C = big
    K = GRM(G, resident=True)
    exact = reml(y, K, C, method="exact")
    stoch = reml(y, K, C, method="stochastic")  # default probes, preconditioner, tolerances
    assert exact.converged and stoch.converged
    assert stoch.method == "stochastic" and math.isnan(exact.loglik_se)
    z_var = ((stoch.variances - exact.variances) / stoch.mc_se).abs()
    assert bool((z_var <= 3).all()), z_var
    assert abs(stoch.h2_total - exact.h2_total) <= 3 * stoch.h2_total_mc_se
    assert abs(stoch.h2_total - exact.h2_total) <= 0.02
    assert abs(stoch.loglik - exact.loglik) <= 3 * stoch.loglik_se
    # standard errors (inverse AI from exact solves) agree closely; MC error is much smaller
    assert torch.allclose(stoch.se, exact.se, rtol=0.05)
    assert bool((stoch.mc_se < 0.25 * stoch.se).all())
    assert stoch.settings["cg_failures"] == 0


def test_same_seed_same_trajectory(rh):
    sim = rh.sim(400, 300, seed=4)
    Z = rh.standardize(sim.dosages)
    y = rh.model_phenotype([Z], [0.5], 0.5, seed=8)
    K = Z @ Z.T / Z.shape[1]
    kw = dict(method="stochastic", num_probes=40, precond_rank=20)
    a, b = reml(y, K, seed=3, **kw), reml(y, K, seed=3, **kw)
    pd.testing.assert_frame_equal(a.history_frame(), b.history_frame())
    assert torch.equal(a.variances, b.variances)
    c = reml(y, K, seed=4, **kw)
    assert not torch.equal(a.variances, c.variances)
    assert float(((a.variances - c.variances).abs() / (a.mc_se**2 + c.mc_se**2).sqrt()).max()) < 4


def test_grm_stack_takes_one_genotype_pass_per_product(rh):
    """Three streamed components: each kernel product of the fit is one genotype pass."""
    sim = rh.sim(500, 600, seed=5)
    G = sim.to_genotypes()
    parts = [np.arange(0, 200), np.arange(200, 400), np.arange(400, 600)]
    stack = GRMStack(G, parts, resident=False, block_size=128, names=["a", "b", "c"])
    Zs = [rh.standardize(sim.dosages[:, p]) for p in parts]
    y = rh.model_phenotype(Zs, [0.3, 0.1, 0.1], 0.5, seed=9)
    fit = reml(y, stack, method="stochastic", num_probes=30, precond_rank=30)
    assert fit.names == ["a", "b", "c"] and fit.converged
    products, passes = fit.settings["kernel_products"], fit.settings["genotype_passes"]
    assert passes == products + 1  # + the one pass that computes all three diagonals
    # and the stacked estimate agrees with the exact three-kernel fit
    exact = reml(y, [K.to_dense() for K in stack.components])
    assert bool((((fit.variances - exact.variances) / fit.mc_se).abs() <= 3).all())
