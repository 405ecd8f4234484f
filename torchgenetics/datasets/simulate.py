"""Simulate genotypes with linkage disequilibrium and phenotypes with known heritability.

Genotypes are haplotype mosaics copied from a small founder panel (Li-Stephens-like):
every haplotype copies one founder haplotype and jumps to a uniformly drawn founder
with a probability that rises with the genetic distance to the previous SNP, so nearby
SNPs are correlated and distant SNPs, or SNPs on different chromosomes, are not.
Founder haplotypes themselves carry short-range LD (carriers are chosen by ranking a
latent autoregressive score along the chromosome), and the counted allele's frequency
follows a neutral (1/x) or Beta spectrum with a MAF floor.

Phenotypes are ``y = sum_c Z_c beta_c + X gamma + e`` on standardized genotypes ``Z``,
with per-SNP effect variance ``h2_c / n_causal_c`` per component ``c``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special

from torchgenetics.errors import ComponentSpecError, InputError

__all__ = [
    "SimulatedGenotypes",
    "SimulatedPhenotype",
    "simulate_genotypes",
    "simulate_phenotype",
    "write_plink",
    "SAMPLE_COLUMNS",
    "VARIANT_COLUMNS",
]

#: Column names of a sample table (as in ``Genotypes.samples``).
SAMPLE_COLUMNS = ("fid", "iid", "father", "mother", "sex", "phenotype")
#: Column names of a variant table (as in ``Genotypes.variants``).
VARIANT_COLUMNS = ("chrom", "id", "cm", "pos", "a1", "a2")

_SPECTRA = ("neutral", "beta", "uniform")
# Allele pairs drawn for a1/a2 (no strand-ambiguous A/T, C/G pairs).
_ALLELE_PAIRS = np.array(
    [("A", "C"), ("A", "G"), ("C", "A"), ("C", "T"), ("G", "A"), ("G", "T"), ("T", "C"), ("T", "G")]
)
# Haplotype x SNP entries handled per chunk (fixed, so results never depend on memory).
_CHUNK_ENTRIES = 1 << 22


# ----------------------------------------------------------------------------- results


@dataclass
class SimulatedGenotypes:
    """Simulated genotypes with their sample and variant tables.

    Attributes
    ----------
    dosages : numpy.ndarray
        ``n x m`` counts (0/1/2) of allele ``a1``; ``NaN`` marks a missing call.
    variants : pandas.DataFrame
        Columns ``chrom, id, cm, pos, a1, a2`` (``a1`` is the counted allele).
    samples : pandas.DataFrame
        Columns ``fid, iid, father, mother, sex, phenotype`` (phenotype ``NaN`` = missing,
        written as ``-9`` to a .fam).
    allele_freq : numpy.ndarray
        Population (founder-panel) frequency of ``a1`` per variant; the sample frequency
        is a binomial draw around it.
    seed : int or numpy.random.SeedSequence
        What reproduces this draw exactly (``simulate_genotypes(..., seed=seed)``): the
        entropy int, or the SeedSequence when a spawned one was passed.

    Examples
    --------
    >>> sim = simulate_genotypes(20, 50, seed=1)
    >>> sim.shape
    (20, 50)
    >>> list(sim.variants.columns)
    ['chrom', 'id', 'cm', 'pos', 'a1', 'a2']
    """

    dosages: np.ndarray
    variants: pd.DataFrame
    samples: pd.DataFrame
    allele_freq: np.ndarray
    seed: int | np.random.SeedSequence

    def __repr__(self) -> str:
        chroms = self.variants["chrom"].nunique()
        miss = float(np.isnan(self.dosages).mean()) if self.dosages.size else 0.0
        return (
            f"SimulatedGenotypes(n={self.n_samples}, m={self.n_variants}, chromosomes={chroms}, "
            f"missing={miss:.4f}, seed={self.seed})"
        )

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_samples, n_variants)``."""
        return self.dosages.shape

    @property
    def n_samples(self) -> int:
        """Number of samples (rows)."""
        return self.dosages.shape[0]

    @property
    def n_variants(self) -> int:
        """Number of variants (columns)."""
        return self.dosages.shape[1]

    def write_plink(self, prefix) -> Path:
        """Write ``prefix.bed/.bim/.fam``; see :func:`write_plink`.

        Examples
        --------
        >>> import tempfile, os
        >>> sim = simulate_genotypes(10, 20, seed=0)
        >>> d = tempfile.mkdtemp()
        >>> sim.write_plink(os.path.join(d, "toy")).name
        'toy'
        """
        return write_plink(prefix, self.dosages, self.samples, self.variants)

    def to_genotypes(self):
        """Wrap the dosages in an in-memory :class:`torchgenetics.genotypes.Genotypes`.

        Examples
        --------
        >>> G = simulate_genotypes(10, 20, seed=0).to_genotypes()
        >>> G.shape
        (10, 20)
        """
        from torchgenetics.genotypes import Genotypes

        return Genotypes.from_array(self.dosages, samples=self.samples, variants=self.variants)


@dataclass
class SimulatedPhenotype:
    """A simulated phenotype and the truth behind it.

    Attributes
    ----------
    y : numpy.ndarray
        ``(n,)`` phenotype: genetic value + covariate term + residual.
    genetic_value : numpy.ndarray
        ``(n,)`` total genetic value ``g = sum_c g_c``.
    genetic_components : numpy.ndarray
        ``(n, C)`` genetic value of each component (``C = 1`` without components).
    residual : numpy.ndarray
        ``(n,)`` environmental residual ``e``.
    causal : numpy.ndarray
        Sorted int64 indices of the causal variants.
    effects : numpy.ndarray
        Effect of each causal variant on the standardized-genotype scale.
    allele_effects : numpy.ndarray
        Effect per copy of the counted allele (``effects / sd``).
    causal_component : numpy.ndarray
        Component index of each causal variant.
    h2 : float
        Target total heritability (sum of ``h2_components``).
    h2_components : numpy.ndarray
        Target heritability of each component.
    realized_h2 : float
        ``var(g) / var(g + e)`` in this sample.
    realized_h2_components : numpy.ndarray
        ``var(g_c) / var(g + e)`` per component.
    covariate_effects : numpy.ndarray or None
        Effects of the covariate columns (``None`` without covariates).
    seed : int or numpy.random.SeedSequence
        What reproduces this draw exactly (as for :class:`SimulatedGenotypes`).

    Examples
    --------
    >>> X = simulate_genotypes(200, 100, seed=0).dosages
    >>> ph = simulate_phenotype(X, h2=0.5, n_causal=10, seed=1)
    >>> ph.causal.shape, ph.y.shape
    ((10,), (200,))
    """

    y: np.ndarray
    genetic_value: np.ndarray
    genetic_components: np.ndarray
    residual: np.ndarray
    causal: np.ndarray
    effects: np.ndarray
    allele_effects: np.ndarray
    causal_component: np.ndarray
    h2: float
    h2_components: np.ndarray
    realized_h2: float
    realized_h2_components: np.ndarray
    covariate_effects: np.ndarray | None = None
    seed: int | np.random.SeedSequence = 0

    def __repr__(self) -> str:
        comps = ", ".join(f"{v:.3f}" for v in self.h2_components)
        return (
            f"SimulatedPhenotype(n={self.y.size}, n_causal={self.causal.size}, h2={self.h2:.3f} "
            f"[{comps}], realized_h2={self.realized_h2:.3f}, seed={self.seed})"
        )


# ----------------------------------------------------------------------------- seeding


def _seed_sequence(seed) -> np.random.SeedSequence:
    """A SeedSequence from an int, None, SeedSequence or Generator."""
    if isinstance(seed, np.random.SeedSequence):
        # A fresh copy: spawning children must not change the caller's sequence.
        return np.random.SeedSequence(
            seed.entropy, spawn_key=seed.spawn_key, pool_size=seed.pool_size
        )
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence(int(seed.integers(2**63)))
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise InputError(f"seed must be an int, None, SeedSequence or Generator, got {seed!r}")
    if seed is not None and seed < 0:
        raise InputError(f"seed must be non-negative, got {seed}")
    return np.random.SeedSequence(None if seed is None else int(seed))


def _entropy(ss: np.random.SeedSequence):
    """What reproduces ``ss``: its entropy int, or the sequence itself when spawned."""
    if ss.spawn_key or not isinstance(ss.entropy, (int, np.integer)):
        return np.random.SeedSequence(ss.entropy, spawn_key=ss.spawn_key, pool_size=ss.pool_size)
    return int(ss.entropy)


# ----------------------------------------------------------------------------- genotypes


def _chromosome_counts(m: int, chromosomes) -> list[int]:
    if isinstance(chromosomes, (int, np.integer)) and not isinstance(chromosomes, bool):
        k = int(chromosomes)
        if k < 1 or k > m:
            raise InputError(f"chromosomes must be between 1 and m={m}, got {k}")
        base, rest = divmod(m, k)
        return [base + (i < rest) for i in range(k)]
    try:
        counts = [int(c) for c in chromosomes]
    except (TypeError, ValueError):
        raise InputError(
            f"chromosomes must be an int or a list of per-chromosome SNP counts, got {chromosomes!r}"
        ) from None
    if not counts or min(counts) < 1:
        raise InputError(f"every chromosome needs at least one SNP, got counts {counts}")
    if sum(counts) != m:
        raise InputError(f"per-chromosome counts {counts} sum to {sum(counts)}, not m={m}")
    return counts


def _per_chromosome(value, counts, name, default_per_snp):
    """Broadcast a scalar/None/list argument to one positive float per chromosome."""
    if value is None:
        return [c * default_per_snp for c in counts]
    if np.ndim(value) == 0:
        vals = [float(value)] * len(counts)
    else:
        vals = [float(v) for v in value]
        if len(vals) != len(counts):
            raise InputError(f"{name} has {len(vals)} values for {len(counts)} chromosomes")
    if not all(v > 0 and math.isfinite(v) for v in vals):
        raise InputError(f"{name} must be positive and finite, got {value!r}")
    return vals


def _draw_maf(rng, m, spectrum, beta, lo):
    """Minor-allele frequencies on ``[lo, 0.5]`` from the requested spectrum."""
    u = rng.random(m)
    if spectrum == "neutral":
        # Derived-allele density proportional to 1/x on [lo, 1-lo], then folded.
        x = lo * ((1.0 - lo) / lo) ** u
    elif spectrum == "beta":
        a, b = beta
        f_lo, f_hi = special.betainc(a, b, lo), special.betainc(a, b, 1.0 - lo)
        x = special.betaincinv(a, b, f_lo + u * (f_hi - f_lo))
    else:
        x = lo + u * (0.5 - lo)
    return np.clip(np.minimum(x, 1.0 - x), lo, 0.5)


def _genetic_map(rng, m_c, length_cm, shape):
    """Increasing bp positions and cM positions with Gamma-distributed local rates."""
    mean_gap = length_cm * 1e6 / m_c  # ~1 cM per Mb on average
    gaps = 1 + np.floor(rng.exponential(mean_gap, m_c)).astype(np.int64)
    pos = np.cumsum(gaps)
    rate = rng.gamma(shape, 1.0 / shape, m_c) if np.isfinite(shape) else np.ones(m_c)
    inc = gaps * rate
    cm = np.cumsum(inc) * (length_cm / inc.sum())
    return pos, np.round(cm, 6)


def _founder_panel(rng, maf, cm, n_founders, founder_ld_cm):
    """Hard carrier table (K x m), fractional founder and its allele probability.

    Founders are ranked at every SNP by a latent AR(1) score that decorrelates with
    genetic distance; the ``floor(pK)`` lowest-ranked founders carry the allele and the
    next one carries it with probability ``pK - floor(pK)``, so the panel frequency is
    exactly ``p`` and nearby SNPs have nested carrier sets (LD).
    """
    K, m_c = n_founders, len(maf)
    d = np.diff(cm, prepend=cm[0])
    phi = np.exp(-d / founder_ld_cm)
    root = np.sqrt(1.0 - phi**2)
    eps = rng.standard_normal((m_c, K))
    z = np.empty((m_c, K))
    z[0] = eps[0]
    for j in range(1, m_c):
        z[j] = phi[j] * z[j - 1] + root[j] * eps[j]
    rank = np.argsort(np.argsort(z, axis=1, kind="stable"), axis=1, kind="stable").T  # K x m
    pk = maf * K
    n_hard = np.floor(pk).astype(np.int64)
    frac = pk - n_hard
    hard = rank < n_hard[None, :]
    frac_founder = np.argmax(rank == n_hard[None, :], axis=0)  # maf <= 0.5: n_hard < K
    return hard, frac_founder, frac


def _copy_haplotypes(rng, out, col0, hard, frac_founder, frac, switch):
    """Fill ``out[:, col0:col0+m_c]`` with diploid dosages of mosaic haplotypes."""
    n = out.shape[0]
    H, K, m_c = 2 * n, hard.shape[0], hard.shape[1]
    b = max(1, _CHUNK_ENTRIES // H)
    carry = np.zeros(H, dtype=np.int32)
    for start in range(0, m_c, b):
        stop = min(start + b, m_c)
        w = stop - start
        s = switch[start:stop].astype(np.float32)
        u = rng.random((H, w), dtype=np.float32)
        jump = u < s
        # Given a jump, u / s is uniform on [0, 1): adding a uniform offset mod K
        # moves to a uniformly drawn founder, independent of the current one.
        offset = np.divide(u, s, out=np.zeros_like(u), where=jump)
        offset *= K
        offset = np.minimum(offset.astype(np.int32), K - 1)
        np.cumsum(offset, axis=1, out=offset)
        offset += carry[:, None]
        founder = offset % K
        carry = founder[:, -1].copy()
        cols = np.arange(w)
        allele = hard[:, start:stop][founder, cols[None, :]]
        on_frac = founder == frac_founder[start:stop][None, :]
        p = np.broadcast_to(frac[start:stop][None, :], (H, w))[on_frac]
        allele[on_frac] = rng.random(p.size) < p
        dos = allele[0::2].view(np.int8) + allele[1::2].view(np.int8)
        out[:, col0 + start : col0 + stop] = dos


def _add_missing(rng, out, rate):
    """Set each entry to NaN independently with probability ``rate`` (geometric gaps)."""
    total = out.size
    flat = out.reshape(-1)
    expected = rate * total
    pos, last = [], -1
    while True:
        k = int(expected + 6 * math.sqrt(expected + 1) + 16)
        idx = last + np.cumsum(rng.geometric(rate, k))
        pos.append(idx[idx < total])
        if idx[-1] >= total:
            break
        last = int(idx[-1])
    idx = np.concatenate(pos)
    flat[idx] = np.nan
    return idx.size


def simulate_genotypes(
    n: int,
    m: int,
    chromosomes=1,
    *,
    seed=None,
    n_founders: int = 32,
    length_cm=None,
    segment_cm: float = 0.3,
    founder_ld_cm: float = 2.0,
    recombination_shape: float = 0.5,
    spectrum: str = "neutral",
    beta: tuple[float, float] = (0.5, 0.5),
    maf_min: float = 0.01,
    missing_rate: float = 0.0,
    dtype=np.float64,
) -> SimulatedGenotypes:
    """Simulate diploid genotypes with realistic LD and allele-frequency spectrum.

    Each of the ``2n`` haplotypes is a mosaic of ``n_founders`` founder haplotypes:
    at every SNP it jumps to a uniformly drawn founder with probability
    ``1 - exp(-d / segment_cm)`` (``d``: cM from the previous SNP), and restarts at each
    chromosome. The founder panel has short-range LD of its own and allele ``a1`` has
    panel frequency drawn from ``spectrum``. The result is fully determined by ``seed``
    (and the other arguments), and ``missing_rate`` only masks calls: the same seed with
    and without missingness gives the same non-missing dosages.

    Parameters
    ----------
    n, m : int
        Number of samples and of SNPs.
    chromosomes : int or sequence of int
        Number of chromosomes (SNPs split evenly) or the SNP count of each chromosome
        (must sum to ``m``). Chromosomes are named ``"1"``, ``"2"``, ...
    seed : int, SeedSequence, Generator or None
        Randomness; the entropy actually used is stored in ``result.seed``.
    n_founders : int
        Size of the founder panel (2 to 255). Fewer founders give stronger LD.
    length_cm : float, sequence of float or None
        Genetic length of each chromosome; ``None`` gives 0.02 cM per SNP (about one
        SNP every 20 kb, an array-like density), so LD per SNP does not depend on ``m``.
    segment_cm : float
        Mean length (cM) of a copied founder segment; controls how fast LD decays.
    founder_ld_cm : float
        Distance (cM) over which the founders' latent carrier ranking decorrelates.
    recombination_shape : float
        Gamma shape of the per-interval recombination rates (mean 1); small values
        concentrate recombination in hotspots (block-like LD), ``inf`` gives a uniform map.
    spectrum : {"neutral", "beta", "uniform"}
        Allele-frequency spectrum: neutral density ``1/x``, ``Beta(*beta)`` (U-shaped for
        shapes < 1), or uniform MAF, each folded and truncated to ``[floor, 0.5]``.
    beta : tuple of float
        Beta shapes for ``spectrum="beta"``.
    maf_min : float
        MAF floor of the panel frequencies; the floor used is ``max(maf_min, 1/(2n))``.
    missing_rate : float
        Probability that each call is missing (``NaN``), independently.
    dtype : numpy dtype
        Floating dtype of the dosages.

    Returns
    -------
    SimulatedGenotypes
        ``dosages`` (``n x m``), ``variants``, ``samples``, ``allele_freq``, ``seed``.

    Examples
    --------
    >>> sim = simulate_genotypes(500, 300, chromosomes=[200, 100], seed=7)
    >>> sim.dosages.shape
    (500, 300)
    >>> sim.variants["chrom"].unique().tolist()
    ['1', '2']
    >>> import numpy as np
    >>> bool(np.isin(sim.dosages, [0, 1, 2]).all())
    True
    """
    n, m = _positive_int(n, "n"), _positive_int(m, "m")
    counts = _chromosome_counts(m, chromosomes)
    n_founders = _positive_int(n_founders, "n_founders")
    if not 2 <= n_founders <= 255:
        raise InputError(f"n_founders must be between 2 and 255, got {n_founders}")
    lengths = _per_chromosome(length_cm, counts, "length_cm", 0.02)
    for name, v in (("segment_cm", segment_cm), ("founder_ld_cm", founder_ld_cm)):
        if not (isinstance(v, (int, float, np.floating, np.integer)) and 0 < v < math.inf):
            raise InputError(f"{name} must be a positive finite number, got {v!r}")
    if not recombination_shape > 0:
        raise InputError(f"recombination_shape must be positive, got {recombination_shape!r}")
    if spectrum not in _SPECTRA:
        raise InputError(f"spectrum must be one of {_SPECTRA}, got {spectrum!r}")
    if spectrum == "beta" and (len(beta) != 2 or not min(beta) > 0):
        raise InputError(f"beta must be two positive shapes, got {beta!r}")
    if not 0 <= maf_min < 0.5:
        raise InputError(f"maf_min must be in [0, 0.5), got {maf_min!r}")
    if not 0 <= missing_rate < 1:
        raise InputError(f"missing_rate must be in [0, 1), got {missing_rate!r}")
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise InputError(f"dtype must be a floating dtype (NaN marks missing), got {dtype}")

    ss = _seed_sequence(seed)
    r_freq, r_map, r_founder, r_hap, r_missing, r_sample = (
        np.random.default_rng(s) for s in ss.spawn(6)
    )
    lo = max(maf_min, 1.0 / (2 * n))
    out = np.empty((n, m), dtype=dtype)
    maf = np.empty(m)
    chrom, pos, cm = [], np.empty(m, np.int64), np.empty(m)
    col = 0
    for c, (m_c, length) in enumerate(zip(counts, lengths, strict=True)):
        sl = slice(col, col + m_c)
        maf[sl] = _draw_maf(r_freq, m_c, spectrum, beta, lo)
        pos[sl], cm[sl] = _genetic_map(r_map, m_c, length, recombination_shape)
        chrom.extend([str(c + 1)] * m_c)
        hard, frac_founder, frac = _founder_panel(
            r_founder, maf[sl], cm[sl], n_founders, founder_ld_cm
        )
        d = np.diff(cm[sl], prepend=-np.inf)  # first SNP of a chromosome: fresh founder
        switch = -np.expm1(-d / segment_cm)
        _copy_haplotypes(r_hap, out, col, hard, frac_founder, frac, switch)
        col += m_c
    if missing_rate > 0:
        _add_missing(r_missing, out, missing_rate)

    pairs = _ALLELE_PAIRS[r_freq.integers(len(_ALLELE_PAIRS), size=m)]
    chrom = np.asarray(chrom)
    variants = pd.DataFrame(
        {
            "chrom": chrom,
            "id": [f"{c}:{p}" for c, p in zip(chrom, pos, strict=True)],
            "cm": cm,
            "pos": pos,
            "a1": pairs[:, 0],
            "a2": pairs[:, 1],
        }
    )
    width = len(str(n))
    samples = pd.DataFrame(
        {
            "fid": [f"fam{i + 1:0{width}d}" for i in range(n)],
            "iid": [f"ind{i + 1:0{width}d}" for i in range(n)],
            "father": "0",
            "mother": "0",
            "sex": r_sample.integers(1, 3, size=n).astype(np.int32),
            "phenotype": np.nan,
        }
    )
    return SimulatedGenotypes(out, variants, samples, maf, _entropy(ss))


# ----------------------------------------------------------------------------- phenotypes


def _positive_int(v, name) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise InputError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


class _ArraySource:
    """Column statistics and standardized column reads for an in-memory dosage array."""

    def __init__(self, X: np.ndarray):
        if X.ndim != 2:
            raise InputError(f"genotypes must be a 2-D n x m array, got shape {X.shape}")
        if X.dtype.kind not in "fiub":
            raise InputError(f"genotypes must be numeric, got dtype {X.dtype}")
        self.X = X
        self.n, self.m = X.shape
        mean, var = np.empty(self.m), np.empty(self.m)
        count = np.empty(self.m, np.int64)
        b = max(1, (1 << 22) // max(self.n, 1))
        for s in range(0, self.m, b):
            blk = np.asarray(X[:, s : s + b], dtype=np.float64)
            ok = ~np.isnan(blk)
            cnt = ok.sum(0)
            blk = np.where(ok, blk, 0.0)
            mu = blk.sum(0) / np.maximum(cnt, 1)
            dev = np.where(ok, blk - mu, 0.0)
            count[s : s + b], mean[s : s + b] = cnt, mu
            var[s : s + b] = (dev**2).sum(0) / np.maximum(cnt, 1)
        self.mean, self.var = mean, var
        self.polymorphic = (var > 0) & (count > 1)

    def read(self, idx):
        return np.asarray(self.X[:, idx], dtype=np.float64)


class _GenotypesSource:
    """The same interface over a lazy :class:`Genotypes` (uses its cached stats)."""

    def __init__(self, G):
        self.G = G
        self.n, self.m = int(G.n_samples), int(G.n_variants)
        st = G.stats
        self.mean = np.asarray(st.mean, dtype=np.float64)
        self.var = np.asarray(st.var, dtype=np.float64)
        self.polymorphic = np.asarray(st.polymorphic, dtype=bool)

    def read(self, idx):
        return np.asarray(self.G.read(variants=np.asarray(idx, dtype=np.int64)), dtype=np.float64)


def _source(genotypes):
    if isinstance(genotypes, SimulatedGenotypes):
        return _ArraySource(genotypes.dosages)
    if (
        hasattr(genotypes, "read")
        and hasattr(genotypes, "stats")
        and hasattr(genotypes, "n_variants")
    ):
        return _GenotypesSource(genotypes)
    if hasattr(genotypes, "detach") and hasattr(genotypes, "cpu"):  # torch.Tensor
        return _ArraySource(genotypes.detach().cpu().numpy())
    if isinstance(genotypes, pd.DataFrame):
        return _ArraySource(genotypes.to_numpy())
    if isinstance(genotypes, np.ndarray):
        return _ArraySource(genotypes)
    raise InputError(
        "genotypes must be a numpy array, torch tensor, SimulatedGenotypes or Genotypes, "
        f"got {type(genotypes).__name__}"
    )


def _index_array(v, m, what) -> np.ndarray:
    a = np.asarray(v)
    if a.dtype == bool:
        if a.shape != (m,):
            raise ComponentSpecError(f"{what}: boolean mask has shape {a.shape}, expected ({m},)")
        return np.flatnonzero(a)
    if a.ndim != 1 or (a.size and a.dtype.kind not in "iu"):
        raise ComponentSpecError(f"{what}: expected a 1-D array of integer variant indices")
    a = a.astype(np.int64)
    if a.size and (a.min() < 0 or a.max() >= m):
        bad = a[(a < 0) | (a >= m)][0]
        raise ComponentSpecError(f"{what}: variant index {bad} is outside 0..{m - 1}")
    if np.unique(a).size != a.size:
        raise ComponentSpecError(f"{what}: variant indices are repeated")
    return np.sort(a)


def _allocate(total, weights):
    """Split ``total`` into integers proportional to ``weights`` (largest remainder)."""
    w = np.asarray(weights, dtype=np.float64)
    share = total * w / w.sum()
    k = np.floor(share).astype(np.int64)
    k[np.argsort(-(share - k), kind="stable")[: total - k.sum()]] += 1
    return k


def simulate_phenotype(
    genotypes,
    h2=0.5,
    n_causal=None,
    causal=None,
    components=None,
    covariates=None,
    covariate_effects=None,
    residual: str = "expected",
    seed=None,
) -> SimulatedPhenotype:
    """Simulate a quantitative phenotype with known (per-component) heritability.

    Genotypes are standardized per variant (mean and variance over non-missing calls,
    missing calls set to 0, the convention of ``Genotypes.blocks``). Each causal variant
    in component ``c`` gets an effect ``N(0, h2_c / n_causal_c)`` on that scale, so
    ``E var(g_c) = h2_c``; the residual is ``N(0, 1 - h2)`` (``residual="expected"``)
    or scaled so ``var(g) / var(g + e) = h2`` exactly in the sample (``"realized"``,
    with ``e`` centred and orthogonal to ``g``; GCTA scales the same way up to that
    sampling noise). Covariates add ``covariates @ covariate_effects`` to ``y``; they
    are not part of the heritability denominator.

    Parameters
    ----------
    genotypes : array (n x m), torch.Tensor, SimulatedGenotypes or Genotypes
        Dosages; ``NaN`` marks missing calls. A ``Genotypes`` is read lazily (only the
        causal columns) and its cached ``stats`` give the standardization.
    h2 : float or sequence of float
        Total heritability, or one value per component when ``components`` is given.
    n_causal : int, sequence of int or None
        Number of causal variants (total, split over components in proportion to their
        polymorphic variant counts, or one per component). ``None``: every polymorphic
        variant (of every component) is causal, the infinitesimal model.
    causal : None, "random", or array of variant indices / boolean mask
        Explicit causal variants; must be polymorphic and, with components, inside one.
    components : sequence of index arrays (or boolean masks), optional
        Disjoint variant sets, each with its own ``h2`` value. Variants outside every
        component have no effect.
    covariates : array (n x c), optional
        Numeric covariates (no missing values).
    covariate_effects : sequence of float, optional
        One effect per covariate column (required with ``covariates``).
    residual : {"expected", "realized"}
        How the residual variance is set (see above).
    seed : int, SeedSequence, Generator or None
        Randomness; the entropy used is stored in ``result.seed``.

    Returns
    -------
    SimulatedPhenotype
        ``y``, ``genetic_value``, ``causal``, ``effects``, ``realized_h2`` and more.

    Examples
    --------
    >>> sim = simulate_genotypes(1000, 400, chromosomes=2, seed=3)
    >>> ph = simulate_phenotype(sim, h2=[0.3, 0.2], n_causal=40,
    ...                         components=[range(0, 200), range(200, 400)], seed=4)
    >>> ph.h2, ph.causal.size
    (0.5, 40)
    >>> bool(abs(ph.realized_h2 - 0.5) < 0.2)
    True
    """
    src = _source(genotypes)
    n, m = src.n, src.m
    if residual not in ("expected", "realized"):
        raise InputError(f"residual must be 'expected' or 'realized', got {residual!r}")

    # Components and their target heritabilities.
    if components is None:
        if np.ndim(h2) != 0:
            raise InputError("h2 is a sequence but no components were given; pass components=")
        comps = [np.arange(m)]
        h2c = np.array([float(h2)])
    else:
        comps = [
            _index_array(np.asarray(list(c) if isinstance(c, range) else c), m, f"component {i}")
            for i, c in enumerate(components)
        ]
        if not comps:
            raise ComponentSpecError("components is empty; give at least one index array")
        h2c = np.atleast_1d(np.asarray(h2, dtype=np.float64))
        if h2c.shape != (len(comps),):
            raise InputError(
                f"h2 must have one value per component ({len(comps)}), got {np.asarray(h2).tolist()!r}"
            )
        member = np.full(m, -1, dtype=np.int64)
        for i, c in enumerate(comps):
            clash = c[member[c] >= 0]
            if clash.size:
                raise ComponentSpecError(
                    f"component {i} overlaps component {member[clash[0]]} at variant {clash[0]}; "
                    "components must be disjoint"
                )
            member[c] = i
    if not (np.all(np.isfinite(h2c)) and np.all(h2c >= 0) and h2c.sum() <= 1 + 1e-12):
        raise InputError(f"h2 values must be >= 0 and sum to at most 1, got {h2c.tolist()}")
    C = len(comps)
    poly_in = [c[src.polymorphic[c]] for c in comps]

    # Causal variants per component.
    ss = _seed_sequence(seed)
    r_causal, r_effect, r_resid = (np.random.default_rng(s) for s in ss.spawn(3))
    if causal is None or (isinstance(causal, str) and causal == "random"):
        if n_causal is None:
            k = np.array([p.size for p in poly_in])
        elif np.ndim(n_causal) == 0:
            total = _positive_int(n_causal, "n_causal")
            avail = sum(p.size for p in poly_in)
            if total > avail:
                raise InputError(f"n_causal={total} exceeds the {avail} polymorphic variants")
            k = _allocate(total, [p.size for p in poly_in]) if C > 1 else np.array([total])
        else:
            k = np.asarray([int(v) for v in n_causal], dtype=np.int64)
            if k.shape != (C,) or np.any(k < 0):
                raise InputError(
                    f"n_causal must have {C} non-negative values, got {list(n_causal)}"
                )
        chosen = []
        for i, (p, ki) in enumerate(zip(poly_in, k, strict=True)):
            if ki > p.size:
                raise InputError(
                    f"component {i} has {p.size} polymorphic variants, cannot pick {ki} causal"
                )
            chosen.append(np.sort(r_causal.choice(p, size=int(ki), replace=False)))
    elif isinstance(causal, str):
        raise InputError(f"causal must be None, 'random' or variant indices, got {causal!r}")
    else:
        idx = _index_array(causal, m, "causal")
        mono = idx[~src.polymorphic[idx]]
        if mono.size:
            raise InputError(f"causal variant {mono[0]} is monomorphic (no genotype variance)")
        if n_causal is not None and np.ndim(n_causal) == 0 and int(n_causal) != idx.size:
            raise InputError(f"n_causal={n_causal} but {idx.size} causal indices were given")
        if C == 1:
            if components is not None:
                outside = np.setdiff1d(idx, comps[0])
                if outside.size:
                    raise ComponentSpecError(f"causal variant {outside[0]} is in no component")
            chosen = [idx]
        else:
            which = member[idx]
            if np.any(which < 0):
                raise ComponentSpecError(f"causal variant {idx[which < 0][0]} is in no component")
            chosen = [idx[which == i] for i in range(C)]
    for i in range(C):
        if h2c[i] > 0 and chosen[i].size == 0:
            raise InputError(f"component {i} has h2={h2c[i]} but no causal variants")

    # Effects and genetic values on the standardized scale.
    causal_all = np.concatenate(chosen) if chosen else np.empty(0, np.int64)
    comp_of = np.concatenate([np.full(c.size, i) for i, c in enumerate(chosen)]).astype(np.int64)
    effects = np.concatenate(
        [
            r_effect.standard_normal(c.size) * math.sqrt(h2c[i] / c.size) if c.size else np.empty(0)
            for i, c in enumerate(chosen)
        ]
    )
    order = np.argsort(causal_all, kind="stable")
    causal_all, comp_of, effects = causal_all[order], comp_of[order], effects[order]
    sd = np.sqrt(src.var[causal_all])
    gcomp = np.zeros((n, C))
    b = max(1, (1 << 22) // max(n, 1))
    for s in range(0, causal_all.size, b):
        sl = slice(s, s + b)
        Z = (src.read(causal_all[sl]) - src.mean[causal_all[sl]]) / sd[sl]
        Z[np.isnan(Z)] = 0.0
        for i in range(C):
            sel = comp_of[sl] == i
            if sel.any():
                gcomp[:, i] += Z[:, sel] @ effects[sl][sel]
    g = gcomp.sum(1)

    # Residual.
    h2_total = float(h2c.sum())
    if residual == "expected":
        var_e = 1.0 - h2_total
    elif h2_total == 0:
        var_e = 1.0
    else:
        vg = g.var()
        if vg == 0:
            raise InputError(
                "the genetic value has zero variance; cannot scale residual='realized'"
            )
        var_e = vg * (1.0 - h2_total) / h2_total
    e = r_resid.standard_normal(n)
    if residual == "realized" and 0 < h2_total < 1:
        # Centre e, make it orthogonal to g and give it the exact sample variance, so
        # var(g) / var(g + e) equals h2 in this sample.
        e -= e.mean()
        gc = g - g.mean()
        e -= gc * (gc @ e) / (gc @ gc)
        e *= math.sqrt(var_e / e.var())
    else:
        e *= math.sqrt(var_e)

    # Covariates.
    y = g + e
    gamma = None
    if covariates is not None or covariate_effects is not None:
        if covariates is None or covariate_effects is None:
            raise InputError("covariates and covariate_effects must be given together")
        Xc = np.asarray(covariates, dtype=np.float64)
        Xc = Xc[:, None] if Xc.ndim == 1 else Xc
        gamma = np.atleast_1d(np.asarray(covariate_effects, dtype=np.float64))
        if Xc.ndim != 2 or Xc.shape[0] != n:
            raise InputError(
                f"covariates must have {n} rows (one per sample), got shape {Xc.shape}"
            )
        if gamma.shape != (Xc.shape[1],):
            raise InputError(
                f"covariate_effects has {gamma.size} values for {Xc.shape[1]} covariate columns"
            )
        if not np.all(np.isfinite(Xc)):
            r, c = np.argwhere(~np.isfinite(Xc))[0]
            raise InputError(f"covariates: missing or infinite value at sample {r}, column {c}")
        y = y + Xc @ gamma

    vy = (g + e).var()
    realized = float(g.var() / vy) if vy > 0 else 0.0
    realized_c = gcomp.var(0) / vy if vy > 0 else np.zeros(C)
    return SimulatedPhenotype(
        y=y,
        genetic_value=g,
        genetic_components=gcomp,
        residual=e,
        causal=causal_all,
        effects=effects,
        allele_effects=effects / sd,
        causal_component=comp_of,
        h2=h2_total,
        h2_components=h2c,
        realized_h2=realized,
        realized_h2_components=realized_c,
        covariate_effects=gamma,
        seed=_entropy(ss),
    )


# ----------------------------------------------------------------------------- PLINK output


def _fmt_number(v) -> str:
    """PLINK text of a .fam phenotype: NaN -> -9, integral values without a decimal point."""
    f = float(v)
    if math.isnan(f):
        return "-9"
    return str(int(f)) if f.is_integer() else repr(f)


def write_plink(prefix, dosages, samples=None, variants=None) -> Path:
    """Write dosages as PLINK 1 ``prefix.bed``, ``prefix.bim`` and ``prefix.fam``.

    Uses ``bed_reader.to_bed`` with ``count_A1=True``: each dosage counts allele ``a1``,
    and ``NaN`` is written as a missing call.

    Parameters
    ----------
    prefix : str or Path
        Output path without extension; parent folders must exist.
    dosages : array (n x m)
        Values 0, 1, 2 or ``NaN``.
    samples : pandas.DataFrame, optional
        Columns ``fid, iid, father, mother, sex, phenotype`` (``NaN`` phenotype is written
        as ``-9``); defaults from bed_reader.
    variants : pandas.DataFrame, optional
        Columns ``chrom, id, cm, pos, a1, a2``; defaults from bed_reader.

    Returns
    -------
    pathlib.Path
        The prefix.

    Examples
    --------
    >>> import tempfile, os
    >>> import numpy as np
    >>> from bed_reader import open_bed
    >>> prefix = os.path.join(tempfile.mkdtemp(), "tiny")
    >>> _ = write_plink(prefix, np.array([[0, 1.0], [2, np.nan]]))
    >>> open_bed(prefix + ".bed").read().tolist()
    [[0.0, 1.0], [2.0, nan]]
    """
    from bed_reader import to_bed

    X = np.asarray(dosages)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise InputError(f"dosages must be a non-empty 2-D n x m array, got shape {X.shape}")
    X = np.ascontiguousarray(X, dtype=np.float64 if X.dtype.kind != "f" else X.dtype)
    ok = np.isnan(X) | (X == 0) | (X == 1) | (X == 2)
    if not ok.all():
        r, c = np.argwhere(~ok)[0]
        raise InputError(
            f"dosages must be 0, 1, 2 or NaN for PLINK .bed; sample {r}, variant {c} is {X[r, c]!r}"
        )
    n, m = X.shape
    props: dict = {}
    if samples is not None:
        _check_table(samples, SAMPLE_COLUMNS, n, "samples")
        props.update(
            fid=samples["fid"].astype(str).tolist(),
            iid=samples["iid"].astype(str).tolist(),
            father=samples["father"].astype(str).tolist(),
            mother=samples["mother"].astype(str).tolist(),
            sex=samples["sex"].astype(np.int32).tolist(),
            pheno=[_fmt_number(v) if _is_number(v) else str(v) for v in samples["phenotype"]],
        )
    if variants is not None:
        _check_table(variants, VARIANT_COLUMNS, m, "variants")
        props.update(
            chromosome=variants["chrom"].astype(str).tolist(),
            sid=variants["id"].astype(str).tolist(),
            cm_position=variants["cm"].astype(np.float64).to_numpy(),
            bp_position=variants["pos"].astype(np.int64).to_numpy(),
            allele_1=variants["a1"].astype(str).tolist(),
            allele_2=variants["a2"].astype(str).tolist(),
        )
    prefix = Path(prefix)
    if not prefix.parent.is_dir():
        raise InputError(f"output folder does not exist: {prefix.parent}")
    to_bed(
        prefix.with_name(prefix.name + ".bed"), X, properties=props, count_A1=True, num_threads=1
    )
    return prefix


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _check_table(df, columns, rows, what):
    if not isinstance(df, pd.DataFrame):
        raise InputError(f"{what} must be a pandas DataFrame with columns {list(columns)}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"{what} table lacks columns {missing}; expected {list(columns)}")
    if len(df) != rows:
        raise InputError(f"{what} table has {len(df)} rows but the dosages have {rows}")
