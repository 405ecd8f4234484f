"""Bundled example data and simulators.

Examples
--------
>>> from torchgenetics.datasets import simulate_genotypes, simulate_phenotype, example
>>> sim = simulate_genotypes(100, 200, chromosomes=2, seed=0)
>>> ph = simulate_phenotype(sim, h2=0.4, n_causal=5, seed=1)
>>> ph.y.shape
(100,)
"""

from torchgenetics.datasets.example import ExampleData, example
from torchgenetics.datasets.simulate import (
    SimulatedGenotypes,
    SimulatedPhenotype,
    simulate_genotypes,
    simulate_phenotype,
    write_plink,
)

__all__ = [
    "ExampleData",
    "SimulatedGenotypes",
    "SimulatedPhenotype",
    "example",
    "simulate_genotypes",
    "simulate_phenotype",
    "write_plink",
]
