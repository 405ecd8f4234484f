"""A one-screen summary of a genotype dataset (what ``torchgen info`` prints)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["DatasetSummary", "describe", "MAF_BINS"]

# Minor-allele-frequency bin edges of the histogram, as the field reports them.
MAF_BINS = (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5)


@dataclass
class DatasetSummary:
    """Counts and distributions that describe a genotype dataset.

    Attributes
    ----------
    n_samples, n_variants : int
        Dataset dimensions.
    n_monomorphic : int
        Variants with no variation among non-missing calls.
    chromosomes : pandas.Series
        Variant count per chromosome.
    sample_missing_rate, variant_missing_rate : numpy.ndarray
        Fraction of missing calls per sample and per variant.
    maf_histogram : pandas.Series
        Variant count per minor-allele-frequency bin (``MAF_BINS``).

    Examples
    --------
    >>> import torchgenetics as tg
    >>> s = describe(tg.Genotypes.from_array([[0, 1], [2, 1], [1, 1]]))
    >>> s.n_monomorphic
    1
    """

    n_samples: int
    n_variants: int
    n_monomorphic: int
    chromosomes: pd.Series
    sample_missing_rate: np.ndarray
    variant_missing_rate: np.ndarray
    maf_histogram: pd.Series
    source: str = field(default="")

    def to_text(self) -> str:
        """Render the summary as aligned plain text.

        Returns
        -------
        str
            Several lines fit for a terminal.

        Examples
        --------
        >>> import torchgenetics as tg
        >>> print(describe(tg.Genotypes.from_array([[0, 1], [2, 1]])).to_text())  # doctest: +ELLIPSIS
        samples ...
        """
        lines = [
            f"samples            {self.n_samples:,}",
            f"variants           {self.n_variants:,} ({self.n_monomorphic:,} monomorphic)",
            "chromosomes        "
            + ", ".join(f"{c}: {k:,}" for c, k in self.chromosomes.items()),
            f"missing calls      {_overall_missing(self):.4%}",
            f"samples missing>5% {int((self.sample_missing_rate > 0.05).sum()):,}",
            f"variants missing>5% {int((self.variant_missing_rate > 0.05).sum()):,}",
            "MAF histogram",
        ]
        width = max(int(self.maf_histogram.max()), 1)
        for label, count in self.maf_histogram.items():
            bar = "#" * int(round(40 * count / width))
            lines.append(f"  {label:<12} {count:>9,} {bar}")
        if self.source:
            lines.insert(0, f"dataset            {self.source}")
        return "\n".join(lines)


def _overall_missing(summary: DatasetSummary) -> float:
    if summary.n_variants == 0:
        return 0.0
    return float(summary.variant_missing_rate.mean())


def describe(genotypes, source: str = "") -> DatasetSummary:
    """Summarise a genotype dataset in one streaming pass.

    Parameters
    ----------
    genotypes : Genotypes
        The dataset; its cached per-variant statistics are reused.
    source : str, optional
        Where the data came from, printed on the first line.

    Returns
    -------
    DatasetSummary
        Dimensions, missingness and the MAF histogram.

    Examples
    --------
    >>> import torchgenetics as tg
    >>> describe(tg.Genotypes.from_array([[0, 1], [2, 1]])).n_variants
    2
    """
    stats = genotypes.stats
    n, m = genotypes.shape
    sample_missing = np.zeros(n)
    for _, block in genotypes.blocks(standardize=False):
        sample_missing += np.isnan(block.cpu().numpy()).sum(axis=1)
    sample_missing_rate = sample_missing / max(m, 1)
    freq = np.asarray(stats.allele_freq, dtype=float)
    maf = np.minimum(freq, 1.0 - freq)
    observed = np.isfinite(maf)
    labels = [f"{lo:g}-{hi:g}" for lo, hi in zip(MAF_BINS[:-1], MAF_BINS[1:], strict=True)]
    counts, _ = np.histogram(maf[observed], bins=np.asarray(MAF_BINS))
    histogram = pd.Series(counts, index=labels, name="variants")
    if (~observed).any():
        histogram["no calls"] = int((~observed).sum())
    chromosomes = genotypes.variants["chrom"].astype(str).value_counts(sort=False)
    return DatasetSummary(
        n_samples=n,
        n_variants=m,
        n_monomorphic=int(stats.n_monomorphic),
        chromosomes=chromosomes,
        sample_missing_rate=sample_missing_rate,
        variant_missing_rate=np.asarray(stats.missing_rate, dtype=float),
        maf_histogram=histogram,
        source=source,
    )
