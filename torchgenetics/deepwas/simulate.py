"""Simulate GWAS summary statistics whose effect variances follow a known functional prior.

:func:`simulate_sumstats` draws ``beta_j ~ N(0, f_j)`` with ``f = prior_fn(annotations)``
and produces ``z = sqrt(N) R beta + sqrt(sigma) e``, ``e ~ N(0, R)``, through the LD of
a reference panel: from genotypes (streamed, exact: ``R beta = Z^T Z beta / n`` and
``e = Z^T u / sqrt(n)``) or from an LD operator (a root per block).
:func:`simulate_example` builds a complete small data set (genotypes, annotations,
block LD, statistics, regions) for tests, the notebook, the demo and the benchmark.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from torchgenetics.errors import InputError
from torchgenetics.operators import BandedLD, BlockLD

from .data import Annotations, SumStats
from .regions import RegionSet, build_regions

__all__ = ["SimulatedSumstats", "simulate_sumstats", "nonlinear_prior", "DeepWASExample",
           "simulate_example"]

# Dense roots of a BandedLD are taken only up to this many variants.
_BANDED_DENSE_MAX = 20000


@dataclass
class SimulatedSumstats:
    """Simulated statistics and the truth behind them.

    Attributes
    ----------
    sumstats : SumStats
    beta : numpy.ndarray
        True effects (standardized genotypes, unit phenotype variance).
    variance : numpy.ndarray
        True prior variance ``f_j`` of each variant.
    sigma : float
        Noise scale used.

    Examples
    --------
    >>> ex = simulate_example(n_variants=200, n_reference=200, block_size=100, seed=0)
    >>> ex.truth.variance.shape == ex.truth.beta.shape
    True
    """

    sumstats: SumStats
    beta: np.ndarray
    variance: np.ndarray
    sigma: float


def nonlinear_prior(features, scale: float = 1.0) -> torch.Tensor:
    """A prior variance that no log-linear model captures (interaction, threshold, curvature).

    ``f = scale * exp(2 tanh(a_0 a_1) + 1.5 * 1[a_2 > 0.5] - 0.5 a_3^2)``: features 0 and
    1 matter only jointly, feature 2 through a threshold and feature 3 through its
    magnitude. Needs at least 4 features (further ones are ignored).

    Parameters
    ----------
    features : array-like (m, K)
    scale : float

    Returns
    -------
    torch.Tensor (m,)

    Examples
    --------
    >>> a = torch.zeros(2, 4, dtype=torch.float64); a[1, 2] = 1.0
    >>> round((nonlinear_prior(a)[1] / nonlinear_prior(a)[0]).item(), 12) == round(math.exp(1.5), 12)
    True
    """
    a = torch.as_tensor(features, dtype=torch.float64)
    a = a.reshape(a.shape[0], -1)
    if a.shape[1] < 4:
        raise InputError(f"nonlinear_prior needs at least 4 features, got {a.shape[1]}")
    log_f = (2.0 * torch.tanh(a[:, 0] * a[:, 1]) + 1.5 * (a[:, 2] > 0.5).to(a.dtype)
             - 0.5 * a[:, 3].square())
    return scale * log_f.exp()


def _variances(prior_fn, annotations: Annotations, index, h2) -> np.ndarray:
    feats = torch.as_tensor(annotations.values[index], dtype=torch.float64)
    f = torch.as_tensor(prior_fn(feats), dtype=torch.float64).reshape(-1).numpy().copy()
    if f.shape[0] != len(index):
        raise InputError(f"prior_fn returned {f.shape[0]} variances for {len(index)} variants")
    if not (np.isfinite(f).all() and (f >= 0).all()):
        raise InputError("prior_fn must return finite, non-negative variances")
    if h2 is not None:
        if f.sum() <= 0:
            raise InputError("prior_fn returned all-zero variances; cannot scale them to h2")
        f *= float(h2) / f.sum()
    return f


def _through_genotypes(genotypes, beta, rng_t):
    """``R beta`` and ``e ~ N(0, R)`` for ``R = Z^T Z / n`` by two streaming passes."""
    n, m = genotypes.n_samples, genotypes.n_variants
    g = torch.zeros(n, dtype=torch.float64)
    b = torch.as_tensor(beta, dtype=torch.float64)
    for idx, Z in genotypes.blocks(standardize=True):
        g += Z @ b[torch.as_tensor(idx)]
    u = torch.randn(n, generator=rng_t, dtype=torch.float64)
    r_beta, noise = np.zeros(m), np.zeros(m)
    for idx, Z in genotypes.blocks(standardize=True):
        r_beta[idx] = (Z.mT @ g / n).numpy()
        noise[idx] = (Z.mT @ u / math.sqrt(n)).numpy()
    return r_beta, noise


def _root_noise(block: torch.Tensor, rng_t) -> torch.Tensor:
    lam, U = torch.linalg.eigh(0.5 * (block + block.mT))
    xi = torch.randn(block.shape[0], generator=rng_t, dtype=block.dtype)
    return U @ (lam.clamp_min(0.0).sqrt() * xi)


def _through_ld(ld, beta, rng_t):
    b = torch.as_tensor(beta, dtype=torch.float64)
    if isinstance(ld, BlockLD):
        r_beta = ld._matmul(b.unsqueeze(-1).to(ld.dtype)).squeeze(-1).double()
        noise = torch.zeros_like(b)
        for block, rows in zip(ld.blocks, ld.block_index, strict=True):
            noise[torch.as_tensor(rows)] = _root_noise(block.double(), rng_t)
        return r_beta.numpy(), noise.numpy()
    if ld.shape[0] > _BANDED_DENSE_MAX:
        raise InputError(f"simulating through a {ld.shape[0]}-variant BandedLD needs a dense root; "
                         "pass the reference genotypes instead (exact and streamed)")
    R = ld.to_dense().double()
    return (R @ b).numpy(), _root_noise(R, rng_t).numpy()


def simulate_sumstats(source, annotations: Annotations, prior_fn: Callable, N, sigma: float = 1.0,
                      h2: float | None = None, seed: int = 0) -> SimulatedSumstats:
    """Summary statistics from a functional prior, through the LD of a reference panel.

    Parameters
    ----------
    source : Genotypes, SimulatedGenotypes, BlockLD or BandedLD
        The reference panel (its standardized genotypes define ``R``) or an LD
        operator with ``variant_ids``.
    annotations : Annotations
        Features of (at least) the source's variants, matched by id.
    prior_fn : callable
        Maps a float64 tensor of features ``(m, ...)`` to variances ``(m,)``.
    N : float or array-like
        GWAS sample size (one, or one per variant).
    sigma : float
        Noise scale (1 for a well-calibrated GWAS).
    h2 : float, optional
        Rescale the variances to sum to ``h2`` (the SNP heritability).
    seed : int

    Returns
    -------
    SimulatedSumstats

    Examples
    --------
    >>> from torchgenetics.datasets import simulate_genotypes
    >>> sim = simulate_genotypes(200, 50, seed=0)
    >>> ann = Annotations(sim.variants["id"], np.random.default_rng(0).normal(size=(50, 4)), list("abcd"))
    >>> out = simulate_sumstats(sim, ann, nonlinear_prior, N=10_000, h2=0.1, seed=1)
    >>> len(out.sumstats), round(float(out.variance.sum()), 6)
    (50, 0.1)
    """
    from torchgenetics.datasets.simulate import SimulatedGenotypes
    from torchgenetics.genotypes import Genotypes

    if isinstance(source, SimulatedGenotypes):
        source = source.to_genotypes()
    if isinstance(source, Genotypes):
        ids = source.variants["id"].astype(str).to_numpy(dtype=object)
        chrom = source.variants["chrom"].astype(str).to_numpy(dtype=object)
        pos = source.variants["pos"].to_numpy(dtype=np.int64)
    elif isinstance(source, (BlockLD, BandedLD)):
        if source.variant_ids is None:
            raise InputError("the LD operator has no variant_ids to match the annotations")
        ids = np.asarray(source.variant_ids, dtype=object).astype(str)
        chrom = pos = None
    else:
        raise InputError(f"source must be Genotypes or an LD operator, got {type(source).__name__}")
    index = annotations.positions_of(ids)
    if (index < 0).any():
        raise InputError(f"{int((index < 0).sum())} variant(s) of the source have no annotations, "
                         f"first {ids[np.flatnonzero(index < 0)[0]]}")
    if chrom is None and annotations.chrom is not None:
        chrom = annotations.chrom[index]
        pos = None if annotations.pos is None else annotations.pos[index]
    if float(sigma) <= 0:
        raise InputError(f"sigma must be > 0, got {sigma}")
    f = _variances(prior_fn, annotations, index, h2)
    rng = np.random.default_rng(seed)
    rng_t = torch.Generator().manual_seed(int(rng.integers(2**62)))
    beta = rng.normal(size=f.shape[0]) * np.sqrt(f)
    if isinstance(source, Genotypes):
        r_beta, noise = _through_genotypes(source, beta, rng_t)
    else:
        r_beta, noise = _through_ld(source, beta, rng_t)
    n = np.broadcast_to(np.asarray(N, dtype=np.float64), f.shape).copy()
    z = np.sqrt(n) * r_beta + math.sqrt(float(sigma)) * noise
    return SimulatedSumstats(SumStats(ids, z, n, chrom, pos), beta, f, float(sigma))


@dataclass
class DeepWASExample:
    """A complete simulated DeepWAS data set.

    Attributes
    ----------
    genotypes : SimulatedGenotypes
        The reference panel.
    annotations : Annotations
        Standard-normal features (``n_features`` columns).
    ld : BlockLD
        Block LD of the panel (blocks never cross chromosomes).
    sumstats : SumStats
    truth : SimulatedSumstats
    regions : RegionSet
        One region per LD block.
    prior_fn : callable
        The true prior.

    Examples
    --------
    >>> ex = simulate_example(n_variants=200, n_reference=200, block_size=100, seed=0)
    >>> ex.variance.shape, len(ex.regions)
    ((200,), 2)
    """

    genotypes: object
    annotations: Annotations
    ld: BlockLD
    sumstats: SumStats
    truth: SimulatedSumstats
    regions: RegionSet
    prior_fn: Callable

    @property
    def variance(self) -> np.ndarray:
        """True prior variance of every variant."""
        return self.truth.variance


def simulate_example(n_variants: int = 2000, n_reference: int = 500, n_features: int = 6,
                     block_size: int = 100, chromosomes: int = 2, N: float = 50_000,
                     h2: float = 0.5, prior_fn: Callable | None = None, n_founders: int = 32,
                     seed: int = 0, dtype=torch.float64) -> DeepWASExample:
    """Genotypes, annotations, block LD, statistics and regions, all simulated.

    Parameters
    ----------
    n_variants, n_reference : int
        Variants, and samples of the LD reference panel.
    n_features : int
        Standard-normal annotation columns (at least 4 for the default prior).
    block_size : int
        Variants per LD block (blocks restart at each chromosome).
    chromosomes : int
        Chromosomes (variants split evenly).
    N : float
        GWAS sample size.
    h2 : float
        SNP heritability (sum of the variances).
    prior_fn : callable, optional
        True prior (default :func:`nonlinear_prior`).
    n_founders : int
        Founder haplotypes of the genotype simulator (fewer: stronger LD).
    seed : int
    dtype : torch.dtype
        Of the regions.

    Returns
    -------
    DeepWASExample

    Examples
    --------
    >>> ex = simulate_example(n_variants=300, n_reference=200, block_size=100, chromosomes=3, seed=1)
    >>> ex.regions.chromosomes
    ['1', '2', '3']
    """
    from torchgenetics.datasets import simulate_genotypes

    prior_fn = nonlinear_prior if prior_fn is None else prior_fn
    ss = np.random.SeedSequence(seed)
    s_geno, s_ann, s_stats = (int(s.generate_state(1)[0]) for s in ss.spawn(3))
    sim = simulate_genotypes(n_reference, n_variants, chromosomes, seed=s_geno, n_founders=n_founders)
    table = sim.variants
    ann = Annotations(table["id"], np.random.default_rng(s_ann).normal(size=(n_variants, n_features)),
                      [f"a{k}" for k in range(n_features)], table["chrom"], table["pos"])
    codes = table["chrom"].astype(str).to_numpy()
    starts = np.concatenate([[0], np.flatnonzero(codes[1:] != codes[:-1]) + 1, [n_variants]])
    cuts = np.concatenate([np.arange(a, e, block_size) for a, e in zip(starts[:-1], starts[1:], strict=True)])
    G = sim.to_genotypes()
    ld = BlockLD.from_genotypes(G, cuts[1:] if cuts.size > 1 else [])
    # statistics through the block LD itself, so the fitted model is well specified
    truth = simulate_sumstats(ld, ann, prior_fn, N, h2=h2, seed=s_stats)
    regions = build_regions(truth.sumstats, ann, ld, dtype=dtype)
    return DeepWASExample(sim, ann, ld, truth.sumstats, truth, regions, prior_fn)
