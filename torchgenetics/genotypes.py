"""Lazy genotype matrices and their standardized blocks.

A :class:`Genotypes` is an ``n x m`` matrix of allele dosages (samples x
variants; 0, 1 or 2 copies of the counted allele ``a1``, NaN for a missing call)
that is never held in memory whole. It reads the blocks of variants asked for
from its *source* (a PLINK .bed, a .pgen through pgenlib, or an in-memory
array), standardizes them on the requested device and hands them out one at a
time, decoding the next block in a background thread while the caller works on
the current one. Sources that hold hard calls as packed 2-bit codes (PLINK .bed)
are decoded and standardized in one pass through a per-variant table of the four
codes' values.

Per-variant statistics (call count, mean, variance, polymorphism) are computed
in one streaming pass the first time they are needed and cached on the object.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator, Protocol

import numpy as np
import pandas as pd
import torch

from .errors import InputError, SampleError

__all__ = ["Genotypes", "VariantStats", "GenotypeSource", "ArraySource", "SCALES", "PACKED_DOSAGES"]

# Ways to scale a centred dosage column: by its empirical standard deviation over
# non-missing calls, or by sqrt(2p(1-p)) as GCTA and plink2 --make-rel do.
SCALES = ("empirical", "hwe")
# Target bytes of one streamed block: it stays in cache while it is standardized,
# and its buffers are recycled by the allocator instead of being page-faulted in
# afresh (which costs more than decoding). Blocks keep at least _MIN_BLOCK_COLUMNS
# columns, memory permitting, so the consumer's matrix products stay efficient.
_TARGET_BLOCK_BYTES = 8 * 1024**2
_MIN_BLOCK_COLUMNS = 16
# Live copies per column while computing statistics (raw block, float64 work, mask).
_STATS_LIVE_COPIES = 3


def default_num_threads() -> int:
    """Cores this process may run on (CPU affinity aware).

    Returns
    -------
    int
        At least 1.

    Examples
    --------
    >>> default_num_threads() >= 1
    True
    """
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


class GenotypeSource(Protocol):
    """What :class:`Genotypes` needs from a storage backend.

    A source is an ``n x m`` dosage matrix in some file or array. It must be
    safe to call :meth:`read` from a worker thread.

    Attributes
    ----------
    shape : tuple of int
        ``(n_samples, n_variants)`` of the whole source.
    dtype : numpy.dtype
        A dtype in which :meth:`read` is exact (float32 for hard calls).
    num_threads : int, optional
        Threads the source decodes with; when present, standardization uses as
        many (default: the cores this process may use).

    A source may also offer ``read_packed(samples, variants)``: the hard calls
    of the given samples (None: all) at the given variants as a C-ordered
    ``uint8`` array ``b x ceil(n_sel / 4)``, one row per variant, four samples
    to a byte, first sample in the lowest two bits, codes as in
    :data:`PACKED_DOSAGES` (the PLINK .bed layout). Statistics and
    standardized blocks are then decoded from these bytes directly.

    Examples
    --------
    >>> src = ArraySource(np.array([[0.0, 1.0], [2.0, np.nan]]))
    >>> src.read(None, slice(0, 2), np.float64)[1]
    array([ 2., nan])
    """

    shape: tuple[int, int]
    dtype: np.dtype

    def read(self, samples, variants, dtype) -> np.ndarray:
        """Dosages of the given samples at the given variants.

        ``samples`` is None (all, in order) or an int64 array of positions;
        ``variants`` a slice or an int64 array of positions. Returns a *new*
        array (the caller may modify it) of shape ``(n_sel, b)``, in Fortran
        order, NaN for missing calls.
        """

    def describe(self) -> str:
        """One line naming where the data lives."""


class ArraySource:
    """An in-memory dosage matrix used as a :class:`GenotypeSource`.

    Parameters
    ----------
    values : numpy.ndarray
        ``n x m`` float32 or float64 dosages, NaN for missing. Kept by
        reference; :meth:`Genotypes.from_array` passes a private copy.

    Examples
    --------
    >>> ArraySource(np.zeros((3, 2))).shape
    (3, 2)
    """

    def __init__(self, values: np.ndarray):
        self._values = values
        self.shape = (int(values.shape[0]), int(values.shape[1]))
        self.dtype = values.dtype

    def read(self, samples, variants, dtype) -> np.ndarray:
        """Copy of the selected dosages, Fortran order (see :class:`GenotypeSource`).

        Examples
        --------
        >>> ArraySource(np.eye(2)).read(np.array([1]), slice(0, 2), np.float32)
        array([[0., 1.]], dtype=float32)
        """
        block = self._values[:, variants]
        if samples is not None:
            block = block[samples]
        return np.array(block, dtype=dtype, order="F", copy=True)

    def describe(self) -> str:
        """Where the data lives.

        Examples
        --------
        >>> ArraySource(np.zeros((3, 2))).describe()
        'in-memory array (3 x 2, float64)'
        """
        return f"in-memory array ({self.shape[0]} x {self.shape[1]}, {self.dtype})"


@dataclass(frozen=True)
class VariantStats:
    """Per-variant statistics of non-missing calls.

    Attributes
    ----------
    n_samples : int
        Samples the statistics were computed over.
    call_count : numpy.ndarray of int64
        Non-missing calls per variant.
    mean : numpy.ndarray of float64
        Mean dosage of the non-missing calls (NaN when there are none).
    var : numpy.ndarray of float64
        Variance of the non-missing calls, divisor ``call_count`` (0 for a
        monomorphic variant, NaN when there are no calls).
    polymorphic : numpy.ndarray of bool
        True when the non-missing calls take at least two distinct values
        (so ``var > 0`` and ``call_count > 1``).

    Examples
    --------
    >>> G = Genotypes.from_array([[0, 1], [2, 1], [np.nan, 1]])
    >>> s = G.stats
    >>> s.call_count.tolist(), s.mean.tolist(), s.var.tolist(), s.n_monomorphic
    ([2, 3], [1.0, 1.0], [1.0, 0.0], 1)
    """

    n_samples: int
    call_count: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    polymorphic: np.ndarray

    @property
    def n_variants(self) -> int:
        """Number of variants described.

        Examples
        --------
        >>> Genotypes.from_array([[0, 1, 2]]).stats.n_variants
        3
        """
        return int(self.call_count.shape[0])

    @property
    def allele_freq(self) -> np.ndarray:
        """Frequency of the counted allele ``a1`` (``mean / 2``).

        Examples
        --------
        >>> Genotypes.from_array([[0, 2], [1, 2]]).stats.allele_freq.tolist()
        [0.25, 1.0]
        """
        return self.mean / 2.0

    @property
    def n_monomorphic(self) -> int:
        """Number of variants that are not polymorphic (excluded from standardized blocks).

        Examples
        --------
        >>> Genotypes.from_array([[0, 2], [1, 2]]).stats.n_monomorphic
        1
        """
        return int(self.polymorphic.shape[0] - np.count_nonzero(self.polymorphic))

    @property
    def missing_rate(self) -> np.ndarray:
        """Fraction of missing calls per variant.

        Examples
        --------
        >>> Genotypes.from_array([[0, 2], [np.nan, 2]]).stats.missing_rate.tolist()
        [0.5, 0.0]
        """
        if self.n_samples == 0:
            return np.zeros(self.n_variants)
        return 1.0 - self.call_count / self.n_samples

    def sd(self, scale: str = "empirical") -> np.ndarray:
        """Standard deviation used to scale each variant.

        Parameters
        ----------
        scale : {"empirical", "hwe"}
            ``"empirical"``: ``sqrt(var)`` of the non-missing calls;
            ``"hwe"``: ``sqrt(2 p (1 - p))`` with ``p`` the allele frequency,
            the Hardy-Weinberg expectation used by GCTA and plink2 ``--make-rel``.

        Returns
        -------
        numpy.ndarray of float64
            Positive for polymorphic variants.

        Examples
        --------
        >>> s = Genotypes.from_array([[0.0], [2.0]]).stats
        >>> s.sd("empirical").tolist(), s.sd("hwe").tolist()
        ([1.0], [0.7071067811865476])
        """
        _check_scale(scale)
        if scale == "empirical":
            return np.sqrt(self.var)
        p = self.allele_freq
        return np.sqrt(2.0 * p * (1.0 - p))

    def take(self, index) -> "VariantStats":
        """Statistics of a subset of the variants.

        Parameters
        ----------
        index : array-like of int or slice
            Variant positions.

        Returns
        -------
        VariantStats

        Examples
        --------
        >>> Genotypes.from_array([[0, 1, 2], [2, 1, 1]]).stats.take([0, 2]).mean.tolist()
        [1.0, 1.5]
        """
        return VariantStats(
            n_samples=self.n_samples,
            call_count=self.call_count[index],
            mean=self.mean[index],
            var=self.var[index],
            polymorphic=self.polymorphic[index],
        )

    def to_frame(self) -> pd.DataFrame:
        """The statistics as a table, one row per variant.

        Returns
        -------
        pandas.DataFrame
            Columns ``call_count, missing_rate, mean, allele_freq, var, polymorphic``.

        Examples
        --------
        >>> Genotypes.from_array([[0, 1], [2, 1]]).stats.to_frame()["polymorphic"].tolist()
        [True, False]
        """
        return pd.DataFrame(
            {
                "call_count": self.call_count,
                "missing_rate": self.missing_rate,
                "mean": self.mean,
                "allele_freq": self.allele_freq,
                "var": self.var,
                "polymorphic": self.polymorphic,
            }
        )


class Genotypes:
    """A lazy ``n x m`` genotype matrix (samples x variants).

    Values are dosages of the counted allele ``a1`` (0, 1, 2 for hard calls,
    fractional for imputed dosages), NaN for missing calls. Nothing is read
    until asked for: :meth:`blocks` streams variant blocks, standardized by
    default, on any device; :meth:`subset` makes lazy views.

    Usually made by :func:`torchgenetics.io.read_plink`,
    :func:`torchgenetics.io.read_pgen` or :meth:`from_array`.

    Parameters
    ----------
    source : GenotypeSource
        Where the dosages live.
    samples : pandas.DataFrame
        One row per source sample; columns ``fid, iid, father, mother, sex,
        phenotype``. ``(fid, iid)`` pairs must be unique.
    variants : pandas.DataFrame
        One row per source variant; columns ``chrom, id, cm, pos, a1, a2``.

    Examples
    --------
    >>> G = Genotypes.from_array([[0, 1, 2], [2, 1, 0], [1, 1, 1]])
    >>> G.shape
    (3, 3)
    >>> [idx.tolist() for idx, Z in G.blocks(block_size=1)]
    [[0], [2]]
    """

    def __init__(self, source: GenotypeSource, samples: pd.DataFrame, variants: pd.DataFrame):
        n, m = source.shape
        samples = _complete_samples(samples, n)
        variants = _complete_variants(variants, m)
        _check_unique_samples(samples, source.describe())
        self._source = source
        self._sample_index: np.ndarray | None = None  # None: all source samples, in order
        self._variant_index = np.arange(m, dtype=np.int64)
        self._samples = samples
        self._variants = variants
        self._stats: VariantStats | None = None
        # (parent, positions): stats may be sliced from the parent's cache.
        self._stats_parent: tuple[Genotypes, np.ndarray] | None = None
        self._sq_norms: dict[tuple, torch.Tensor] = {}

    # ------------------------------------------------------------------ creation
    @classmethod
    def from_array(cls, dosages, samples: pd.DataFrame | None = None,
                   variants: pd.DataFrame | None = None) -> "Genotypes":
        """Genotypes from an in-memory ``n x m`` dosage matrix.

        Parameters
        ----------
        dosages : array-like or torch.Tensor
            ``n x m`` values in ``[0, 2]``, NaN for missing. Copied (float32
            input stays float32, anything else becomes float64).
        samples : pandas.DataFrame, optional
            Sample table; missing columns get defaults (``iid`` ``"s0", "s1", ...``,
            ``fid`` ``"0"``, parents ``"0"``, ``sex`` 0, ``phenotype`` NaN).
        variants : pandas.DataFrame, optional
            Variant table; missing columns get defaults (``id`` ``"v0", "v1", ...``,
            ``chrom`` ``"0"``, ``cm`` 0, ``pos`` 0, ``a1`` ``"A1"``, ``a2`` ``"A2"``).

        Returns
        -------
        Genotypes

        Raises
        ------
        InputError
            If the matrix is not 2-D or holds a value outside ``[0, 2]``, or a
            table has the wrong number of rows.
        SampleError
            If ``(fid, iid)`` pairs repeat.

        Examples
        --------
        >>> G = Genotypes.from_array(np.array([[0, 1], [2, np.nan]]))
        >>> G.samples["iid"].tolist(), G.variants["id"].tolist()
        (['s0', 's1'], ['v0', 'v1'])
        """
        if isinstance(dosages, torch.Tensor):
            dosages = dosages.detach().cpu().numpy()
        values = np.asarray(dosages)
        if values.ndim != 2:
            raise InputError(f"dosages must be a 2-D samples x variants matrix, got shape {values.shape}")
        if not (np.issubdtype(values.dtype, np.number) or values.dtype == bool):
            raise InputError(f"dosages must be numeric (0, 1, 2, NaN for missing), got dtype {values.dtype}")
        dtype = np.float32 if values.dtype == np.float32 else np.float64
        values = np.array(values, dtype=dtype, order="F", copy=True)
        samples = _complete_samples(samples, values.shape[0])
        variants = _complete_variants(variants, values.shape[1])
        _check_dosage_range(values, samples, variants)
        return cls(ArraySource(values), samples, variants)

    # ------------------------------------------------------------------ shape and tables
    @property
    def n_samples(self) -> int:
        """Number of samples (rows).

        Examples
        --------
        >>> Genotypes.from_array([[0, 1], [2, 1], [1, 1]]).n_samples
        3
        """
        return len(self._samples)

    @property
    def n_variants(self) -> int:
        """Number of variants (columns).

        Examples
        --------
        >>> Genotypes.from_array([[0, 1], [2, 1], [1, 1]]).n_variants
        2
        """
        return int(self._variant_index.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_samples, n_variants)``.

        Examples
        --------
        >>> Genotypes.from_array([[0, 1, 2]]).shape
        (1, 3)
        """
        return (self.n_samples, self.n_variants)

    @property
    def samples(self) -> pd.DataFrame:
        """Sample table (``fid, iid, father, mother, sex, phenotype``), one row per row.

        Examples
        --------
        >>> list(Genotypes.from_array([[0, 1]]).samples.columns)
        ['fid', 'iid', 'father', 'mother', 'sex', 'phenotype']
        """
        return self._samples

    @property
    def variants(self) -> pd.DataFrame:
        """Variant table (``chrom, id, cm, pos, a1, a2``), one row per column.

        Examples
        --------
        >>> list(Genotypes.from_array([[0, 1]]).variants.columns)
        ['chrom', 'id', 'cm', 'pos', 'a1', 'a2']
        """
        return self._variants

    @property
    def source(self) -> GenotypeSource:
        """The storage backend (shared by every view of the same data).

        Examples
        --------
        >>> Genotypes.from_array([[0, 1]]).source.describe()
        'in-memory array (1 x 2, float64)'
        """
        return self._source

    def __repr__(self) -> str:
        return (
            f"Genotypes(n_samples={self.n_samples}, n_variants={self.n_variants}, "
            f"source={self._source.describe()!r})"
        )

    # ------------------------------------------------------------------ raw reads
    def read(self, variants=None, samples=None, dtype=np.float64) -> np.ndarray:
        """Raw dosages of selected samples and variants.

        Parameters
        ----------
        variants : slice, array-like of int or bool mask, optional
            Variant positions in this object (default all).
        samples : slice, array-like of int or bool mask, optional
            Sample positions in this object (default all).
        dtype : numpy dtype, default float64
            Output type (float32 or float64).

        Returns
        -------
        numpy.ndarray
            ``n_sel x b`` dosages, NaN for missing, Fortran order.

        Examples
        --------
        >>> G = Genotypes.from_array([[0, 1, 2], [2, np.nan, 0]])
        >>> G.read(variants=[1, 2])
        array([[ 1.,  2.],
               [nan,  0.]])
        """
        dtype = _numpy_float(dtype)
        vpos = _positions(variants, self.n_variants, "variant")
        spos = None if samples is None else _positions(samples, self.n_samples, "sample")
        return self._read_positions(vpos, dtype, spos)

    def _source_samples(self, spos: np.ndarray | None) -> np.ndarray | None:
        """Source positions of this object's samples ``spos`` (None: all of them)."""
        if spos is None:
            return self._sample_index
        return spos if self._sample_index is None else self._sample_index[spos]

    def _read_positions(self, vpos: np.ndarray, dtype, spos: np.ndarray | None = None) -> np.ndarray:
        source_variants = _compact(self._variant_index[vpos])
        return self._source.read(self._source_samples(spos), source_variants, dtype)

    def _decode_packed(self, vpos: np.ndarray, table: np.ndarray, out: np.ndarray) -> None:
        """``out[j] = table[j, code]`` for the variants ``vpos`` of a packed source.

        ``out`` is ``len(vpos) x n_samples`` (C order: one row per variant); ``table``
        maps each variant's four 2-bit codes (see :data:`PACKED_DOSAGES`) to values.
        """
        packed = self._source.read_packed(self._sample_index, _compact(self._variant_index[vpos]))
        _decode_codes(packed, table, out)

    # ------------------------------------------------------------------ views
    def subset(self, samples=None, variants=None) -> "Genotypes":
        """A lazy view on some samples and/or variants.

        Nothing is read. A view on the same samples reuses (slices) this
        object's statistics; a view on other samples computes its own on first
        use.

        Parameters
        ----------
        samples : slice, array-like of int or bool mask, optional
            Sample positions to keep, in the order given (default all).
        variants : slice, array-like of int or bool mask, optional
            Variant positions to keep, in the order given (default all).

        Returns
        -------
        Genotypes

        Raises
        ------
        InputError
            If an index is out of range or a mask has the wrong length.
        SampleError
            If a sample is selected twice.

        Examples
        --------
        >>> G = Genotypes.from_array([[0, 1, 2], [2, 1, 0], [1, 0, 1]])
        >>> H = G.subset(samples=[2, 0], variants=slice(1, 3))
        >>> H.shape, H.samples["iid"].tolist()
        ((2, 2), ['s2', 's0'])
        """
        view = object.__new__(Genotypes)
        view._source = self._source
        view._stats = None
        view._stats_parent = None
        view._sq_norms = {}
        vpos = None if variants is None else _positions(variants, self.n_variants, "variant")
        if vpos is None:
            view._variant_index = self._variant_index
            view._variants = self._variants
        else:
            view._variant_index = self._variant_index[vpos]
            view._variants = self._variants.iloc[vpos].reset_index(drop=True)
        if samples is None:
            view._sample_index = self._sample_index
            view._samples = self._samples
            view._stats_parent = (self, np.arange(self.n_variants) if vpos is None else vpos)
        else:
            spos = _positions(samples, self.n_samples, "sample")
            if np.unique(spos).shape[0] != spos.shape[0]:
                values, counts = np.unique(spos, return_counts=True)
                dup = int(values[counts > 1][0])
                raise SampleError(
                    f"sample {dup} (FID {self._samples['fid'].iloc[dup]!r}, IID "
                    f"{self._samples['iid'].iloc[dup]!r}) is selected more than once; "
                    "a subset must name each sample at most once"
                )
            view._sample_index = self._source_samples(spos)
            view._samples = self._samples.iloc[spos].reset_index(drop=True)
        return view

    # ------------------------------------------------------------------ statistics
    @property
    def stats(self) -> VariantStats:
        """Per-variant statistics, computed in one streaming pass on first access.

        Examples
        --------
        >>> G = Genotypes.from_array([[0, 1], [2, 1], [1, np.nan]])
        >>> G.stats.allele_freq.tolist(), G.stats.polymorphic.tolist()
        ([0.5, 0.5], [True, False])
        """
        cached = self._cached_stats()
        if cached is None:
            cached = self._compute_stats()
            self._stats = cached
        return cached

    def _cached_stats(self) -> VariantStats | None:
        if self._stats is None and self._stats_parent is not None:
            parent, positions = self._stats_parent
            parent_stats = parent._cached_stats()
            if parent_stats is not None:
                self._stats = parent_stats.take(positions)
        return self._stats

    def _compute_stats(self) -> VariantStats:
        n, m = self.shape
        call_count = np.zeros(m, dtype=np.int64)
        mean = np.full(m, np.nan)
        var = np.full(m, np.nan)
        polymorphic = np.zeros(m, dtype=bool)
        if n == 0 or m == 0:
            return VariantStats(n_samples=n, call_count=call_count, mean=mean, var=var,
                                polymorphic=polymorphic)
        block = self._plan(m, n * 8, _STATS_LIVE_COPIES, None)
        lanes = _Lanes(self._lane_count(block))
        if hasattr(self._source, "read_packed"):
            # Decoded straight to float64 dosages by each lane (NaN for missing calls).
            dosages = np.broadcast_to(PACKED_DOSAGES, (block, 4))

            def work(offset, positions):
                def part(a, b):
                    raw = np.empty((b - a, n))
                    self._decode_packed(positions[a:b], dosages[:b - a], raw)
                    return _column_stats(raw.T)
                return lanes.split(part, len(positions))
        else:
            native = np.dtype(self._source.dtype)

            def work(offset, positions):
                raw = self._read_positions(positions, native)
                return lanes.split(lambda a, b: _column_stats(raw[:, a:b]), raw.shape[1])

        everything = np.arange(m, dtype=np.int64)
        try:
            for pos, parts in self._pipeline(everything, block, work, True):
                columns = (np.concatenate(field) for field in zip(*parts, strict=True))
                (call_count[pos], mean[pos], var[pos], polymorphic[pos]) = columns
        finally:
            lanes.close()
        return VariantStats(n_samples=n, call_count=call_count, mean=mean, var=var,
                            polymorphic=polymorphic)

    def polymorphic_index(self, variants=None) -> np.ndarray:
        """Positions of the polymorphic variants among a selection.

        Parameters
        ----------
        variants : slice, array-like of int or bool mask, optional
            Variant positions to consider (default all), in this object.

        Returns
        -------
        numpy.ndarray of int64
            Positions in this object, in selection order; these are the
            columns :meth:`blocks` and :meth:`standardized` return.

        Examples
        --------
        >>> Genotypes.from_array([[0, 1, 2], [2, 1, 0]]).polymorphic_index()
        array([0, 2])
        """
        vpos = _positions(variants, self.n_variants, "variant")
        return vpos[self.stats.polymorphic[vpos]]

    # ------------------------------------------------------------------ streaming
    def blocks(self, block_size: int | None = None, device=None, dtype=torch.float64,
               standardize: bool = True, variants=None, prefetch: bool = True, *,
               scale: str = "empirical", verbose: bool = False
               ) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """Stream blocks of variant columns as tensors.

        With ``standardize=True`` each column is ``(x - mean) / sd`` using the
        cached statistics of its non-missing calls, missing calls become 0
        (mean imputation) and monomorphic variants are skipped (counted in
        ``stats.n_monomorphic``). With ``standardize=False`` the raw dosages of
        every selected variant are returned, NaN for missing.

        While the caller uses one block the next is decoded and standardized
        in a background thread (``prefetch=True``), so that work overlaps the
        caller's torch operations. For a packed source (PLINK .bed) decoding and
        standardizing are one pass, split between as many threads as the source
        decodes with, in numpy passes that release the GIL.

        Parameters
        ----------
        block_size : int, optional
            Columns per block; default the largest that
            :func:`torchgenetics.memory.plan_block` allows on ``device`` for two
            live blocks, capped near 8 MiB per block (at least 16 columns).
        device : torch.device or str, optional
            Device of the tensors (default CPU).
        dtype : torch.dtype, default torch.float64
            Floating type of the tensors.
        standardize : bool, default True
            Standardize and skip monomorphic variants, or return raw dosages.
        variants : slice, array-like of int or bool mask, optional
            Variant positions to stream (default all), in the order given.
        prefetch : bool, default True
            Decode the next block in a background thread.
        scale : {"empirical", "hwe"}, default "empirical"
            Divisor of the centred column: the sd of the non-missing calls, or
            ``sqrt(2p(1-p))`` (GCTA, plink2 ``--make-rel``).
        verbose : bool, default False
            Show a progress bar.

        Yields
        ------
        index : numpy.ndarray of int64
            Positions (in this object) of the block's variants.
        block : torch.Tensor
            ``n x len(index)`` on ``device``, column-major (each variant's
            column is contiguous), freshly allocated for each block.

        Examples
        --------
        >>> G = Genotypes.from_array([[0, 1, 2], [2, 1, 1]])
        >>> [(i.tolist(), Z.tolist()) for i, Z in G.blocks()]
        [([0, 2], [[-1.0, 1.0], [1.0, -1.0]])]
        >>> [i.tolist() for i, X in G.blocks(block_size=2, standardize=False)]
        [[0, 1], [2]]
        """
        _check_scale(scale)
        device = torch.device("cpu" if device is None else device)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise InputError(f"dtype must be a floating torch dtype, got {dtype}")
        vpos = _positions(variants, self.n_variants, "variant")
        if standardize:
            vpos = vpos[self.stats.polymorphic[vpos]]
        if block_size is None:
            live = 2 if prefetch else 1
            block_size = self._plan(len(vpos), self.n_samples * _itemsize(dtype), live, device)
        elif isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
            raise InputError(f"block_size must be a positive integer, got {block_size!r}")
        affine = None
        if standardize:
            stats = self.stats
            affine = (stats.mean[vpos], 1.0 / stats.sd(scale)[vpos])
        return self._stream(vpos, int(block_size), device, dtype, affine, prefetch, verbose)

    def _stream(self, vpos, block_size, device, dtype, affine, prefetch, verbose):
        """Generator behind :meth:`blocks` (arguments already checked)."""
        np_dtype = np.dtype(np.float64 if dtype == torch.float64 else np.float32)
        lanes = None
        if affine is None:
            def work(offset, positions):
                return self._read_positions(positions, np_dtype)
        else:
            # Standardized on the host by the decoding thread and helper lanes (one
            # per core), then moved to the device.
            mean, inv_sd = (a.astype(np_dtype) for a in affine)
            lanes = _Lanes(self._lane_count(block_size))
            if hasattr(self._source, "read_packed"):
                # One fused pass: packed 2-bit codes -> standardized values, through a
                # per-variant table of the four codes' values.
                table = _affine_table(mean, inv_sd)

                def work(offset, positions):
                    out = np.empty((len(positions), self.n_samples), dtype=np_dtype)

                    def part(a, b):
                        self._decode_packed(positions[a:b], table[offset + a:offset + b], out[a:b])
                    lanes.split(part, len(positions))
                    return out.T  # n x b, column-major
            else:
                def work(offset, positions):
                    raw = self._read_positions(positions, np_dtype)

                    def part(a, b):
                        _standardize(raw[:, a:b], mean[offset + a:offset + b],
                                     inv_sd[offset + a:offset + b])
                    lanes.split(part, raw.shape[1])
                    return raw

        bar = _progress(len(vpos), verbose)
        decoded = self._pipeline(vpos, block_size, work, prefetch)
        try:
            for pos, raw in decoded:
                if bar is not None:
                    bar.update(len(pos))
                yield pos, torch.from_numpy(raw).to(device=device, dtype=dtype)
        finally:
            decoded.close()  # stops the decoding thread before its helper lanes
            if lanes is not None:
                lanes.close()
            if bar is not None:
                bar.close()

    def _pipeline(self, vpos: np.ndarray, block_size: int, work, prefetch: bool
                  ) -> Iterator[tuple[np.ndarray, object]]:
        """Run ``work(offset, positions)`` on the blocks of the variants ``vpos``.

        Yields ``(positions, result)``; ``offset`` is the place of the block's first
        column in ``vpos``. With ``prefetch`` the work of the next block runs in one
        worker thread while the caller holds the current one.
        """
        offsets = range(0, len(vpos), block_size)

        def job(offset):
            return work(offset, vpos[offset:offset + block_size])

        if not prefetch or len(offsets) < 2:
            for offset in offsets:
                yield vpos[offset:offset + block_size], job(offset)
            return
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="torchgenetics-decode")
        try:
            pending = pool.submit(job, offsets[0])
            for i, offset in enumerate(offsets):
                current = pending
                if i + 1 < len(offsets):
                    pending = pool.submit(job, offsets[i + 1])
                yield vpos[offset:offset + block_size], current.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _lane_count(self, block_size: int) -> int:
        """Threads that share a block's columns: one per decoding thread of the source
        (default one per core), but at least ``_MIN_BLOCK_COLUMNS`` columns each."""
        threads = getattr(self._source, "num_threads", None) or default_num_threads()
        return max(min(threads, block_size // _MIN_BLOCK_COLUMNS), 1)

    def _plan(self, n_columns: int, bytes_per_column: int, live_copies: int, device) -> int:
        from . import memory

        bytes_per_column = max(int(bytes_per_column), 1)
        cap = max(_TARGET_BLOCK_BYTES // bytes_per_column, _MIN_BLOCK_COLUMNS)
        return memory.plan_block(n_columns, bytes_per_column, live_copies=live_copies,
                                 device=device, max_block=cap)

    def standardized(self, variants=None, device=None, dtype=torch.float64, *,
                     scale: str = "empirical") -> torch.Tensor:
        """The whole standardized matrix ``Z`` (n x polymorphic variants).

        For small data; large data should stream :meth:`blocks`. Columns are in
        the order of :meth:`polymorphic_index`.

        Parameters
        ----------
        variants : slice, array-like of int or bool mask, optional
            Variant positions (default all).
        device : torch.device or str, optional
            Device of the result (default CPU).
        dtype : torch.dtype, default torch.float64
            Floating type of the result.
        scale : {"empirical", "hwe"}, default "empirical"
            See :meth:`blocks`.

        Returns
        -------
        torch.Tensor
            ``n x m_poly``, contiguous.

        Examples
        --------
        >>> G = Genotypes.from_array([[0, 1], [2, 1]])
        >>> G.standardized()
        tensor([[-1.],
                [ 1.]], dtype=torch.float64)
        """
        device = torch.device("cpu" if device is None else device)
        index = self.polymorphic_index(variants)
        out = torch.empty((self.n_samples, len(index)), dtype=dtype, device=device)
        start = 0
        for pos, block in self.blocks(device=device, dtype=dtype, variants=index,
                                      standardize=True, scale=scale):
            out[:, start:start + len(pos)] = block
            start += len(pos)
        return out

    def sample_sq_norms(self, variants=None, device=None, dtype=torch.float64, *,
                        scale: str = "empirical") -> torch.Tensor:
        """Per-sample sum of squared standardized genotypes over polymorphic variants.

        ``sum_j z_ij^2``: the exact diagonal of the GRM ``Z Z^T / m`` times ``m``.
        Computed in float64 in one streaming pass and cached per variant set
        and scale.

        Parameters
        ----------
        variants : slice, array-like of int or bool mask, optional
            Variant positions (default all).
        device : torch.device or str, optional
            Device of the result (default CPU).
        dtype : torch.dtype, default torch.float64
            Floating type of the result.
        scale : {"empirical", "hwe"}, default "empirical"
            See :meth:`blocks`.

        Returns
        -------
        torch.Tensor
            Shape ``(n_samples,)``.

        Examples
        --------
        >>> G = Genotypes.from_array([[0, 1], [2, 1]])
        >>> G.sample_sq_norms()
        tensor([1., 1.], dtype=torch.float64)
        """
        _check_scale(scale)
        vpos = _positions(variants, self.n_variants, "variant")
        key = (_digest(vpos) if variants is not None else "all", scale)
        if key not in self._sq_norms:
            total = np.zeros(self.n_samples)
            for _, block in self.blocks(variants=vpos, dtype=torch.float64, scale=scale):
                z = block.numpy()  # our own fresh block: square it in place
                total += np.square(z, out=z).sum(axis=1)
            self._sq_norms[key] = torch.from_numpy(total)
        device = torch.device("cpu" if device is None else device)
        return self._sq_norms[key].to(device=device, dtype=dtype)


# ---------------------------------------------------------------------- helpers
#: Dosage of the counted allele ``a1`` for each 2-bit code of a packed genotype
#: byte (the PLINK .bed encoding, as bed-reader reads it with ``count_A1=True``):
#: 0b00 two copies, 0b01 missing, 0b10 one copy, 0b11 none.
PACKED_DOSAGES = np.array([2.0, np.nan, 1.0, 0.0])
# The four codes of each byte value, lowest bits (first sample) first.
_BYTE_CODES = ((np.arange(256)[:, None] >> np.arange(0, 8, 2)) & 3).astype(np.intp)
# Working set of one chunk of variants in _decode_codes (their 256-entry tables
# and byte indices stay in cache while they are used).
_DECODE_CHUNK_BYTES = 2 * 1024**2


class _Lanes:
    """The calling thread plus ``count - 1`` helper threads sharing a block's columns.

    numpy releases the GIL in the passes used here, so the lanes run in parallel;
    each pass itself is single-threaded (torch's intra-op threads stall badly when
    the cores are shared with other work).
    """

    def __init__(self, count: int):
        self.count = max(int(count), 1)
        self._pool = (ThreadPoolExecutor(self.count - 1, thread_name_prefix="torchgenetics-lane")
                      if self.count > 1 else None)

    def split(self, part, size: int) -> list:
        """``[part(a, b), ...]`` over consecutive ranges covering ``range(size)``, one per lane."""
        edges = np.unique(np.linspace(0, size, min(self.count, max(size, 1)) + 1).astype(int))
        ranges = list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))
        if self._pool is None or len(ranges) < 2:
            return [part(a, b) for a, b in ranges]
        pending = [self._pool.submit(part, a, b) for a, b in ranges[1:]]
        first = part(*ranges[0])
        return [first] + [future.result() for future in pending]

    def close(self) -> None:
        """Stop the helper threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _affine_table(mean: np.ndarray, inv_sd: np.ndarray) -> np.ndarray:
    """Standardized value of each 2-bit code, per variant (``n_variants x 4``).

    ``dosage * inv_sd + (-mean * inv_sd)`` in the dtype of ``inv_sd``, rounded
    step by step exactly as a column of dosages would be; 0 for a missing call.
    """
    shift = -mean * inv_sd
    table = np.zeros((len(inv_sd), 4), dtype=inv_sd.dtype)
    for code, dosage in enumerate(PACKED_DOSAGES):
        if not np.isnan(dosage):
            np.add(np.multiply(inv_sd.dtype.type(dosage), inv_sd), shift, out=table[:, code])
    return table


def _decode_codes(packed: np.ndarray, table: np.ndarray, out: np.ndarray) -> None:
    """Decode packed genotypes through a per-variant table of the four codes' values.

    ``packed`` is ``k x ceil(n / 4)`` bytes (row ``j``: the 2-bit codes of variant
    ``j``'s ``n`` samples, four to a byte, first sample in the lowest bits), ``table``
    ``k x 4`` and ``out`` a C-ordered ``k x n`` array of ``table``'s dtype:
    ``out[j, i] = table[j, code of sample i]``.

    One gather per byte: each variant's table is expanded to the four values of
    each of the 256 byte values, and ``np.take`` copies those four values (as one
    16- or 32-byte item) for every byte, with the GIL released.
    """
    k, width = packed.shape
    n = out.shape[1]
    if k == 0 or n == 0:
        return
    quad = np.dtype((np.void, 4 * out.itemsize))  # four values of one byte, as one item
    per_variant = 256 * quad.itemsize + width * (np.dtype(np.intp).itemsize + quad.itemsize)
    step = max(_DECODE_CHUNK_BYTES // per_variant, 1)
    rows = np.arange(min(step, k), dtype=np.intp)[:, None] * 256
    for a in range(0, k, step):
        b = min(a + step, k)
        values = np.take(table[a:b].astype(out.dtype, copy=False), _BYTE_CODES, axis=1)
        index = np.add(packed[a:b], rows[:b - a], dtype=np.intp)
        flat = values.view(quad).reshape(-1)
        if n == 4 * width:
            np.take(flat, index, out=out[a:b].view(quad), mode="clip")
        else:  # the last byte of each variant is partly padding
            out[a:b] = np.take(flat, index, mode="clip").view(out.dtype)[:, :n]


def _standardize(block: np.ndarray, mean: np.ndarray, inv_sd: np.ndarray) -> np.ndarray:
    """``block = block * inv_sd + (-mean * inv_sd)`` per column, NaN -> 0, in place.

    Rounded as :func:`_affine_table` rounds, so every source gives the same values.
    Single-threaded numpy; parallelism comes from :class:`_Lanes`.
    """
    missing = np.isnan(block)
    np.multiply(block, inv_sd, out=block)
    np.add(block, -mean * inv_sd, out=block)
    np.copyto(block, 0.0, where=missing)
    return block


def _column_stats(raw: np.ndarray):
    """Call count, mean, variance and polymorphism of each column of a block (NaN missing).

    Single-threaded numpy (see :class:`_Lanes`); ``raw`` (Fortran order, each
    column contiguous) may be overwritten.
    """
    n = raw.shape[0]
    missing = np.isnan(raw)
    count = n - missing.sum(axis=0)
    # NaN-skipping column extremes: polymorphic iff they differ (exact, no rounding).
    polymorphic = np.fmax.reduce(raw, axis=0) > np.fmin.reduce(raw, axis=0)
    work = raw if raw.dtype == np.float64 else raw.astype(np.float64, order="F")
    np.copyto(work, 0.0, where=missing)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = work.sum(axis=0) / count  # NaN where there are no calls
        # Centred second pass while the block is in memory: accurate variances.
        np.subtract(work, mean, out=work)
        np.copyto(work, 0.0, where=missing)
        var = np.square(work, out=work).sum(axis=0) / count
    var = np.where(polymorphic, var, np.where(count > 0, 0.0, np.nan))
    return count, mean, var, polymorphic


def _check_scale(scale: str) -> None:
    if scale not in SCALES:
        raise InputError(f"scale must be one of {SCALES}, got {scale!r}")


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def _numpy_float(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise InputError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def _positions(selection, size: int, what: str) -> np.ndarray:
    """Normalise a slice / int array / bool mask to int64 positions in ``range(size)``."""
    everything = np.arange(size, dtype=np.int64)
    if selection is None:
        return everything
    if isinstance(selection, slice):
        return everything[selection]
    if isinstance(selection, torch.Tensor):
        selection = selection.detach().cpu().numpy()
    arr = np.asarray(selection)
    if arr.dtype == bool:
        if arr.shape != (size,):
            raise InputError(f"{what} mask has shape {arr.shape}; expected ({size},), one entry per {what}")
        return np.flatnonzero(arr).astype(np.int64)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    arr = arr.reshape(-1) if arr.ndim == 0 else arr
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise InputError(
            f"{what} selection must be a slice, a 1-D array of integer positions or a boolean "
            f"mask, got an array of dtype {arr.dtype} and shape {arr.shape}"
        )
    bad = (arr < -size) | (arr >= size)
    if bad.any():
        raise InputError(
            f"{what} position {int(arr[bad][0])} is out of range: there are {size} {what}s "
            f"(valid positions 0..{size - 1})"
        )
    return everything[arr]


def _compact(positions: np.ndarray):
    """A slice when positions are consecutive and increasing (cheaper for every source)."""
    if len(positions) and positions[-1] - positions[0] + 1 == len(positions) and (
        len(positions) == 1 or bool(np.all(np.diff(positions) == 1))
    ):
        return slice(int(positions[0]), int(positions[-1]) + 1)
    return positions


def _digest(positions: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(positions, dtype=np.int64).tobytes()).hexdigest()


def _progress(total: int, verbose: bool):
    if not verbose:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="variant", desc="genotype blocks")


def _complete_samples(samples: pd.DataFrame | None, n: int) -> pd.DataFrame:
    """Sample table with every standard column, defaults filled in."""
    samples = pd.DataFrame() if samples is None else samples
    if len(samples.columns) and len(samples) != n:
        raise InputError(f"sample table has {len(samples)} rows but the genotypes have {n} samples")
    defaults = {
        "fid": lambda: np.full(n, "0", dtype=object),
        "iid": lambda: np.array([f"s{i}" for i in range(n)], dtype=object),
        "father": lambda: np.full(n, "0", dtype=object),
        "mother": lambda: np.full(n, "0", dtype=object),
        "sex": lambda: np.zeros(n, dtype=np.int64),
        "phenotype": lambda: np.full(n, np.nan),
    }
    return _complete(samples, defaults, n)


def _complete_variants(variants: pd.DataFrame | None, m: int) -> pd.DataFrame:
    """Variant table with every standard column, defaults filled in."""
    variants = pd.DataFrame() if variants is None else variants
    if len(variants.columns) and len(variants) != m:
        raise InputError(f"variant table has {len(variants)} rows but the genotypes have {m} variants")
    defaults = {
        "chrom": lambda: np.full(m, "0", dtype=object),
        "id": lambda: np.array([f"v{j}" for j in range(m)], dtype=object),
        "cm": lambda: np.zeros(m),
        "pos": lambda: np.zeros(m, dtype=np.int64),
        "a1": lambda: np.full(m, "A1", dtype=object),
        "a2": lambda: np.full(m, "A2", dtype=object),
    }
    return _complete(variants, defaults, m)


def _complete(table: pd.DataFrame, defaults: dict, length: int) -> pd.DataFrame:
    out = {}
    for name, make in defaults.items():
        column = table[name].to_numpy() if name in table.columns else make()
        kind = _COLUMN_KINDS[name]
        if kind is str:
            column = np.array([str(v) for v in column], dtype=object)
        else:
            column = np.asarray(column, dtype=kind)
        out[name] = column
    extra = {c: table[c].to_numpy() for c in table.columns if c not in defaults}
    return pd.DataFrame({**out, **extra}, index=pd.RangeIndex(length))


_COLUMN_KINDS = {
    "fid": str, "iid": str, "father": str, "mother": str, "sex": np.int64,
    "phenotype": np.float64, "chrom": str, "id": str, "cm": np.float64, "pos": np.int64,
    "a1": str, "a2": str,
}


def _check_unique_samples(samples: pd.DataFrame, where: str) -> None:
    pairs = samples[["fid", "iid"]].astype(str)
    dup = pairs.duplicated(keep=False).to_numpy()
    if dup.any():
        first = int(np.flatnonzero(dup)[0])
        fid, iid = pairs.iloc[first]
        rows = np.flatnonzero(dup & (pairs["fid"] == fid).to_numpy() & (pairs["iid"] == iid).to_numpy())
        raise SampleError(
            f"{where}: sample FID {fid!r} IID {iid!r} appears {len(rows)} times (rows "
            f"{', '.join(str(r + 1) for r in rows)}); each (FID, IID) pair must be unique"
        )


def _check_dosage_range(values: np.ndarray, samples: pd.DataFrame, variants: pd.DataFrame) -> None:
    valid = np.isnan(values) | ((values >= 0) & (values <= 2))
    if not valid.all():
        i, j = (int(k[0]) for k in np.nonzero(~valid))
        raise InputError(
            f"dosage at sample {i} (IID {samples['iid'].iloc[i]!r}), variant {j} (ID "
            f"{variants['id'].iloc[j]!r}) is {float(values[i, j])}; expected a value in [0, 2] "
            "(copies of the counted allele) or NaN for a missing call"
        )
