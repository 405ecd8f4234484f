"""simulate_sumstats: moments of z through genotypes and LD operators; checks; the example."""

import numpy as np
import pytest
import torch

from torchgenetics.datasets import simulate_genotypes
from torchgenetics.deepwas.data import Annotations
from torchgenetics.deepwas.simulate import nonlinear_prior, simulate_example, simulate_sumstats
from torchgenetics.errors import InputError
from torchgenetics.operators import BandedLD, BlockLD


@pytest.fixture(scope="module")
def panel():
    sim = simulate_genotypes(150, 24, seed=4)
    ann = Annotations(sim.variants["id"], np.random.default_rng(1).normal(size=(24, 4)), list("abcd"))
    return sim, ann


def _expected_chi2(R, f, N, sigma):
    return N * np.diag(R @ np.diag(f) @ R) + sigma * np.diag(R)


@pytest.mark.parametrize("kind", ["genotypes", "block", "banded"])
def test_z_moments_match_the_model(panel, kind):
    sim, ann = panel
    G = sim.to_genotypes()
    R = BlockLD.from_genotypes(G, [12])
    if kind == "genotypes":
        source, Rd = sim, None
    elif kind == "block":
        source, Rd = R, R.to_dense().numpy()
    else:
        source = BandedLD.from_genotypes(G, window=23)
        Rd = source.to_dense().numpy()
    if Rd is None:
        Z = G.standardized().numpy()
        Rd = Z.T @ Z / Z.shape[0]
    draws = [simulate_sumstats(source, ann, nonlinear_prior, N=2000, sigma=0.8, h2=0.2, seed=s)
             for s in range(300)]
    f = draws[0].variance
    z2 = np.mean([d.sumstats.z ** 2 for d in draws], axis=0)
    exp = _expected_chi2(Rd, f, 2000, 0.8)
    assert abs(z2.mean() / exp.mean() - 1) < 0.1
    assert np.corrcoef(z2, exp)[0, 1] > 0.8


def test_simulate_sumstats_truth_and_reproducibility(panel):
    sim, ann = panel
    a = simulate_sumstats(sim, ann, nonlinear_prior, N=[1000.0] * 24, h2=0.3, seed=7)
    b = simulate_sumstats(sim, ann, nonlinear_prior, N=1000.0, h2=0.3, seed=7)
    assert np.array_equal(a.sumstats.z, b.sumstats.z)
    assert a.variance.sum() == pytest.approx(0.3)
    assert np.allclose(a.variance / a.variance[0], (nonlinear_prior(ann.values) / nonlinear_prior(ann.values)[0]).numpy())
    assert a.sumstats.chrom is not None and len(a.beta) == 24


def test_simulate_sumstats_checks(panel):
    sim, ann = panel
    with pytest.raises(InputError, match="non-negative"):
        simulate_sumstats(sim, ann, lambda x: -torch.ones(x.shape[0]), N=100)
    with pytest.raises(InputError, match="no annotations"):
        simulate_sumstats(sim, ann.subset(np.arange(10)), nonlinear_prior, N=100)
    with pytest.raises(InputError, match="sigma"):
        simulate_sumstats(sim, ann, nonlinear_prior, N=100, sigma=0.0)


def test_example_is_well_specified():
    ex = simulate_example(n_variants=300, n_reference=200, block_size=100, chromosomes=3, seed=2)
    assert ex.regions.chromosomes == ["1", "2", "3"]
    assert [r.n_variants for r in ex.regions] == [100] * 3
    assert ex.regions.report["n_scored"] == 300
