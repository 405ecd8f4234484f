"""PLINK 1 (.bed/.bim/.fam) and PLINK 2 (.pgen/.pvar/.psam) genotype files.

The text tables are read and checked here with pandas (every error names the
file and line); the binary genotypes are decoded lazily, block by block: a
``.bed`` by bed-reader (raw dosages) or, for statistics and standardized blocks,
from its packed bytes mapped into memory (:class:`BedSource`); a ``.pgen`` by
pgenlib (optional extra ``pgen``).
Dosages count allele ``a1``: the .bim's fifth column, or the .pvar's ALT allele
(``a2`` is then REF), as plink2 does.
"""

from __future__ import annotations

import csv
import threading
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import FileFormatError, MissingExtraError, MissingFileError, SampleError
from ..genotypes import Genotypes, default_num_threads

__all__ = [
    "read_plink", "read_pgen", "read_fam", "read_bim", "read_psam", "read_pvar", "BedSource", "PgenSource",
]

_FAM_LAYOUT = "FID, IID, father, mother, sex, phenotype"
_BIM_LAYOUT = "chromosome, variant ID, cM position, bp position, allele 1, allele 2"
_BED_MAGIC = b"\x6c\x1b"
_BED_VARIANT_MAJOR = 0x01
# Phenotype value PLINK reads as missing (besides non-numeric text such as NA).
_MISSING_PHENOTYPE = -9.0


# ---------------------------------------------------------------------- PLINK 1
def read_plink(prefix, *, num_threads: int | None = None) -> Genotypes:
    """Open a PLINK 1 binary fileset (.bed/.bim/.fam) lazily.

    The .fam and .bim tables are read and validated now; genotypes are decoded
    by bed-reader only when blocks are asked for.

    Parameters
    ----------
    prefix : str or path
        Path without extension (``data/cohort``) or of the .bed file
        (``data/cohort.bed``).
    num_threads : int, optional
        Threads bed-reader decodes with (default: the cores this process may use).

    Returns
    -------
    Genotypes
        ``n x m`` dosages of allele ``a1`` (the .bim's fifth column), NaN missing.

    Raises
    ------
    MissingFileError
        If the .bed, .bim or .fam file does not exist (the message names it).
    FileFormatError
        If the .bed does not start with the PLINK magic bytes, its size does not
        match the .fam and .bim line counts, a .fam/.bim line does not have six
        columns, or a .bim position is not a number (the message names the line).
    SampleError
        If a (FID, IID) pair appears twice in the .fam.

    Examples
    --------
    >>> import tempfile, numpy as np, bed_reader
    >>> path = tempfile.mkdtemp() + "/toy.bed"
    >>> bed_reader.to_bed(path, np.array([[0, 1], [2, np.nan]], dtype=np.float32))
    >>> G = read_plink(path)
    >>> G.shape, G.read().tolist()
    ((2, 2), [[0.0, 1.0], [2.0, nan]])
    """
    base = _strip_suffix(prefix, ".bed")
    bed, bim, fam = (Path(base + ext) for ext in (".bed", ".bim", ".fam"))
    for path, what in ((bed, "PLINK .bed"), (bim, "PLINK .bim"), (fam, "PLINK .fam")):
        if not path.is_file():
            raise MissingFileError(path, what)
    samples = read_fam(fam)
    variants = read_bim(bim)
    return Genotypes(BedSource(bed, len(samples), len(variants), num_threads), samples, variants)


class BedSource:
    """A PLINK .bed file (a :class:`GenotypeSource` with ``read_packed``).

    Raw dosages (:meth:`read`) are decoded by ``bed_reader.open_bed``, given the
    sample and variant counts so that it never reads the .fam/.bim itself.
    :meth:`read_packed` hands out the file's own bytes, mapped into memory, from
    which :class:`Genotypes` computes statistics and standardized blocks in one
    pass (same dosages as bed-reader's ``count_A1=True``: the .bim's fifth column
    is counted).

    Parameters
    ----------
    path : str or path
        The .bed file.
    n_samples, n_variants : int
        Counts from the .fam and .bim.
    num_threads : int, optional
        Decoding threads (default: the cores this process may use).

    Raises
    ------
    FileFormatError
        If the file does not start with the PLINK magic bytes and the
        variant-major mode byte, or its size is not ``3 + n_variants *
        ceil(n_samples / 4)`` bytes (names the sibling .fam and .bim).

    Examples
    --------
    >>> import tempfile, numpy as np, bed_reader
    >>> path = tempfile.mkdtemp() + "/toy.bed"
    >>> bed_reader.to_bed(path, np.array([[0, 1], [2, 1]], dtype=np.float32))
    >>> BedSource(path, 2, 2).read(None, slice(1, 2), np.float64).tolist()
    [[1.0], [1.0]]
    """

    def __init__(self, path, n_samples: int, n_variants: int, num_threads: int | None = None):
        self.path = Path(path)
        self.shape = (int(n_samples), int(n_variants))
        self.dtype = np.dtype(np.float32)  # hard calls are exact in float32
        self.num_threads = default_num_threads() if num_threads is None else max(int(num_threads), 1)
        _check_bed(self.path, *self.shape)
        self._open()

    def _open(self) -> None:
        from bed_reader import open_bed

        n, m = self.shape
        self._bed = open_bed(self.path, iid_count=n, sid_count=m, num_threads=self.num_threads,
                             skip_format_check=True)
        width = (n + 3) // 4
        if n and m:  # variant j's bytes: 3 + j * width .. 3 + (j + 1) * width
            self._bytes = np.asarray(np.memmap(self.path, dtype=np.uint8, mode="r", offset=3,
                                               shape=(m, width)))
        else:
            self._bytes = np.zeros((m, width), dtype=np.uint8)

    def __getstate__(self) -> dict:
        # The mapping is reopened, not copied, when the source is pickled.
        return {"path": self.path, "shape": self.shape, "num_threads": self.num_threads}

    def __setstate__(self, state: dict) -> None:
        self.path, self.shape, self.num_threads = state["path"], state["shape"], state["num_threads"]
        self.dtype = np.dtype(np.float32)
        self._open()

    def read(self, samples, variants, dtype) -> np.ndarray:
        """Decode a block (see :class:`torchgenetics.genotypes.GenotypeSource`).

        Examples
        --------
        >>> import tempfile, numpy as np, bed_reader
        >>> path = tempfile.mkdtemp() + "/toy.bed"
        >>> bed_reader.to_bed(path, np.array([[0, 1], [2, 1]], dtype=np.float32))
        >>> BedSource(path, 2, 2).read(np.array([1]), np.array([0]), np.float32).tolist()
        [[2.0]]
        """
        rows = slice(None) if samples is None else samples
        return self._bed.read(index=(rows, variants), dtype=dtype, order="F",
                              num_threads=self.num_threads)

    def read_packed(self, samples, variants) -> np.ndarray:
        """The .bed bytes of a block: 2-bit codes, four samples to a byte.

        Parameters
        ----------
        samples : numpy.ndarray of int64 or None
            Sample positions, in the order wanted (None: all, in file order).
        variants : slice or numpy.ndarray of int64
            Variant positions.

        Returns
        -------
        numpy.ndarray of uint8
            ``b x ceil(n_sel / 4)``, one row per variant, first sample in the
            lowest two bits; codes 0b00 (two copies of ``a1``), 0b01 (missing),
            0b10 (one copy), 0b11 (none), as in
            :data:`torchgenetics.genotypes.PACKED_DOSAGES`. For all samples and a
            slice of variants this is a read-only view of the mapped file.

        Examples
        --------
        >>> import tempfile, numpy as np, bed_reader
        >>> path = tempfile.mkdtemp() + "/toy.bed"
        >>> bed_reader.to_bed(path, np.array([[0, 2], [np.nan, 1], [2, 0]], dtype=np.float32))
        >>> [f"{byte:08b}" for byte in BedSource(path, 3, 2).read_packed(None, slice(0, 2))[:, 0]]
        ['00000111', '00111000']
        >>> [f"{byte:08b}" for byte in BedSource(path, 3, 2).read_packed(np.array([2, 0]), [0])[0]]
        ['00001100']
        """
        rows = self._bytes[variants]
        if samples is None:
            return rows
        samples = np.asarray(samples, dtype=np.int64)
        if len(samples) == self.shape[0] and np.array_equal(samples, np.arange(self.shape[0])):
            return rows  # every sample, in file order
        return _pack_samples(rows, samples)

    def describe(self) -> str:
        """Where the data lives.

        Examples
        --------
        >>> import tempfile, numpy as np, bed_reader
        >>> path = tempfile.mkdtemp() + "/toy.bed"
        >>> bed_reader.to_bed(path, np.zeros((2, 3), dtype=np.float32))
        >>> BedSource(path, 2, 3).describe().endswith("toy.bed (2 samples x 3 variants)")
        True
        """
        return f"PLINK .bed {self.path} ({self.shape[0]} samples x {self.shape[1]} variants)"


def read_fam(path) -> pd.DataFrame:
    """Read and check a PLINK .fam file.

    Parameters
    ----------
    path : str or path
        Six whitespace-separated columns per line: FID, IID, father, mother,
        sex (1 male, 2 female, anything else unknown), phenotype. Blank lines
        are skipped.

    Returns
    -------
    pandas.DataFrame
        Columns ``fid, iid, father, mother`` (str), ``sex`` (int, 0 unknown),
        ``phenotype`` (float; NaN for -9, non-numeric text, and 0 when the
        column is case/control, i.e. holds only 0, 1 and 2, as in PLINK).

    Raises
    ------
    FileFormatError
        If a line does not have six columns (names the line).
    SampleError
        If a (FID, IID) pair repeats (names the pair and its lines).

    Examples
    --------
    >>> import tempfile
    >>> path = tempfile.mkdtemp() + "/toy.fam"
    >>> _ = open(path, "w").write("f1 s1 0 0 1 -9\\nf1 s2 0 0 2 1.5\\n")
    >>> read_fam(path)[["iid", "sex", "phenotype"]].values.tolist()
    [['s1', 1, nan], ['s2', 2, 1.5]]
    """
    table, lines = _read_columns(path, 6, _FAM_LAYOUT)
    samples = pd.DataFrame({
        "fid": table[0].to_numpy(dtype=object),
        "iid": table[1].to_numpy(dtype=object),
        "father": table[2].to_numpy(dtype=object),
        "mother": table[3].to_numpy(dtype=object),
        "sex": _sex_codes(table[4]),
        "phenotype": _phenotype(table[5]),
    })
    _check_unique_pairs(path, samples, lines)
    return samples


def read_bim(path) -> pd.DataFrame:
    """Read and check a PLINK .bim file.

    Parameters
    ----------
    path : str or path
        Six whitespace-separated columns per line: chromosome, variant ID,
        position in centimorgans, base-pair position, allele 1, allele 2.
        Blank lines are skipped.

    Returns
    -------
    pandas.DataFrame
        Columns ``chrom, id`` (str), ``cm`` (float), ``pos`` (int), ``a1, a2`` (str).

    Raises
    ------
    FileFormatError
        If a line does not have six columns, or a position is not a number
        (names the line).

    Examples
    --------
    >>> import tempfile
    >>> path = tempfile.mkdtemp() + "/toy.bim"
    >>> _ = open(path, "w").write("1\\trs1\\t0\\t1000\\tA\\tG\\n")
    >>> read_bim(path).values.tolist()
    [['1', 'rs1', 0.0, 1000, 'A', 'G']]
    """
    table, lines = _read_columns(path, 6, _BIM_LAYOUT)
    return pd.DataFrame({
        "chrom": table[0].to_numpy(dtype=object),
        "id": table[1].to_numpy(dtype=object),
        "cm": _numbers(path, table[2], lines, "centimorgan position (column 3)", integer=False),
        "pos": _numbers(path, table[3], lines, "base-pair position (column 4)", integer=True),
        "a1": table[4].to_numpy(dtype=object),
        "a2": table[5].to_numpy(dtype=object),
    })


def _pack_samples(rows: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """Packed codes of ``samples`` (in that order) from packed rows of all samples.

    Sample ``s`` sits in byte ``s // 4`` at bits ``2 (s % 4)``; the ``i``-th selected
    sample goes to byte ``i // 4`` at bits ``2 (i % 4)``: one gather per bit pair.
    """
    width = (len(samples) + 3) // 4
    packed = np.zeros((rows.shape[0], width), dtype=np.uint8)
    for pair in range(4):
        chosen = samples[pair::4]
        codes = np.take(rows, chosen >> 2, axis=1)
        np.right_shift(codes, ((chosen & 3) << 1).astype(np.uint8), out=codes)
        np.bitwise_and(codes, np.uint8(3), out=codes)
        np.left_shift(codes, np.uint8(2 * pair), out=codes)
        np.bitwise_or(packed[:, :len(chosen)], codes, out=packed[:, :len(chosen)])
    return packed


def _check_bed(bed: Path, n: int, m: int) -> None:
    """Magic bytes, variant-major mode and exact size of a .bed file (``n`` samples
    listed by the sibling .fam, ``m`` variants by the .bim)."""
    fam, bim = bed.with_suffix(".fam"), bed.with_suffix(".bim")
    with open(bed, "rb") as handle:
        head = handle.read(3)
    if head[:2] != _BED_MAGIC:
        found = head[:2].hex(" ") or "nothing (empty file)"
        raise FileFormatError(
            bed, f"does not start with the PLINK .bed magic bytes 6c 1b (found {found}); "
            "expected a PLINK 1 binary genotype file"
        )
    if len(head) < 3 or head[2] != _BED_VARIANT_MAJOR:
        mode = f"0x{head[2]:02x}" if len(head) == 3 else "missing"
        raise FileFormatError(
            bed, f"mode byte is {mode}; expected 0x01 (variant-major). Sample-major .bed "
            "files are not supported: rewrite the fileset with plink --make-bed"
        )
    size = bed.stat().st_size
    expected = 3 + m * ((n + 3) // 4)
    if size != expected:
        raise FileFormatError(
            bed, f"has {size} bytes, but {fam.name} lists {n} samples and {bim.name} lists "
            f"{m} variants, so it should have 3 + {m} x ceil({n}/4) = {expected} bytes "
            "(truncated, or .fam/.bim from another fileset)"
        )


# ---------------------------------------------------------------------- PLINK 2
def read_pgen(prefix) -> Genotypes:
    """Open a PLINK 2 fileset (.pgen + .pvar/.bim + .psam/.fam) lazily through pgenlib.

    Needs the optional package pgenlib (``pip install 'torchgenetics[pgen]'``).

    Parameters
    ----------
    prefix : str or path
        Path without extension or of the .pgen file. The variant table is
        ``prefix.pvar`` (or ``prefix.bim``), the sample table ``prefix.psam``
        (or ``prefix.fam``).

    Returns
    -------
    Genotypes
        ``n x m`` dosages of the ALT allele (``a1`` = ALT, ``a2`` = REF), NaN missing.

    Raises
    ------
    MissingExtraError
        If pgenlib is not installed.
    MissingFileError
        If the .pgen, variant or sample file does not exist.
    FileFormatError
        If a .pvar/.psam line is malformed or multi-allelic, or the .pgen's
        counts differ from the tables'.
    SampleError
        If a (FID, IID) pair repeats.

    Examples
    --------
    >>> import tempfile, numpy as np, pgenlib
    >>> base = tempfile.mkdtemp() + "/toy"
    >>> _ = open(base + ".psam", "w").write("#IID\\ns1\\ns2\\n")
    >>> _ = open(base + ".pvar", "w").write("#CHROM\\tPOS\\tID\\tREF\\tALT\\n1\\t10\\tv1\\tA\\tG\\n")
    >>> with pgenlib.PgenWriter(f"{base}.pgen".encode(), 2, variant_ct=1, nonref_flags=False) as w:
    ...     w.append_biallelic(np.array([0, 2], dtype=np.int8))
    >>> read_pgen(base).read().tolist()
    [[0.0], [2.0]]
    """
    try:
        import pgenlib  # noqa: F401
    except ImportError:
        raise MissingExtraError("pgenlib", "pgen") from None
    base = _strip_suffix(prefix, ".pgen")
    pgen = Path(base + ".pgen")
    if not pgen.is_file():
        raise MissingFileError(pgen, "PLINK 2 .pgen")
    psam = _first_existing(base, (".psam", ".fam"), "PLINK 2 .psam (or .fam)")
    pvar = _first_existing(base, (".pvar", ".bim"), "PLINK 2 .pvar (or .bim)")
    samples = read_psam(psam) if psam.suffix == ".psam" else read_fam(psam)
    variants = read_pvar(pvar) if pvar.suffix == ".pvar" else read_bim(pvar)
    return Genotypes(PgenSource(pgen, len(samples), len(variants)), samples, variants)


class PgenSource:
    """A PLINK 2 .pgen file decoded by ``pgenlib.PgenReader`` (a :class:`GenotypeSource`).

    Reads dosages of the first ALT allele; one reader is shared under a lock.

    Parameters
    ----------
    path : str or path
        The .pgen file.
    n_samples, n_variants : int
        Counts from the .psam and .pvar; checked against the .pgen header.

    Raises
    ------
    FileFormatError
        If pgenlib cannot open the file or its counts differ.

    Examples
    --------
    >>> import tempfile, numpy as np, pgenlib
    >>> path = tempfile.mkdtemp() + "/toy.pgen"
    >>> with pgenlib.PgenWriter(path.encode(), 2, variant_ct=1, nonref_flags=False) as w:
    ...     w.append_biallelic(np.array([1, -9], dtype=np.int8))
    >>> PgenSource(path, 2, 1).read(None, slice(0, 1), np.float64).tolist()
    [[1.0], [nan]]
    """

    def __init__(self, path, n_samples: int, n_variants: int):
        import pgenlib

        self.path = Path(path)
        self.shape = (int(n_samples), int(n_variants))
        self.dtype = np.dtype(np.float32)  # pgen dosages are multiples of 2^-14
        try:
            self._reader = pgenlib.PgenReader(str(self.path).encode())
        except RuntimeError as err:
            reason = err.args[0] if err.args else err
            reason = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
            raise FileFormatError(self.path, f"pgenlib cannot open it: {reason.strip()}") from None
        found = (self._reader.get_raw_sample_ct(), self._reader.get_variant_ct())
        if found != self.shape:
            raise FileFormatError(
                self.path, f"holds {found[0]} samples x {found[1]} variants but the sample and "
                f"variant tables list {self.shape[0]} x {self.shape[1]}"
            )
        self._lock = threading.Lock()
        self._subset: np.ndarray | None = None  # samples the reader is set to (None: all)

    def read(self, samples, variants, dtype) -> np.ndarray:
        """Decode a block (see :class:`torchgenetics.genotypes.GenotypeSource`).

        Examples
        --------
        >>> import tempfile, numpy as np, pgenlib
        >>> path = tempfile.mkdtemp() + "/toy.pgen"
        >>> with pgenlib.PgenWriter(path.encode(), 3, variant_ct=1, nonref_flags=False) as w:
        ...     w.append_biallelic(np.array([0, 1, 2], dtype=np.int8))
        >>> PgenSource(path, 3, 1).read(np.array([2, 0]), np.array([0]), np.float32).tolist()
        [[2.0], [0.0]]
        """
        if isinstance(variants, slice) and variants.step not in (None, 1):
            variants = np.arange(self.shape[1])[variants]
        if isinstance(variants, slice):
            start, stop, _ = variants.indices(self.shape[1])
            n_variants = max(stop - start, 0)
        else:
            n_variants = len(variants)
        wanted = None if samples is None else np.unique(samples)
        n_rows = self.shape[0] if wanted is None else len(wanted)
        out = np.empty((n_variants, n_rows), dtype=dtype)
        if n_variants and n_rows:
            with self._lock:
                self._set_subset(wanted)
                if isinstance(variants, slice):
                    self._reader.read_dosages_range(start, stop, out)
                else:
                    self._reader.read_dosages_list(np.asarray(variants, dtype=np.uint32), out)
        out[out == -9] = np.nan
        block = out.T  # samples x variants, Fortran order
        if wanted is not None and not np.array_equal(wanted, samples):
            block = np.asfortranarray(block[np.searchsorted(wanted, samples)])
        return block

    def _set_subset(self, wanted: np.ndarray | None) -> None:
        same = (wanted is None and self._subset is None) or (
            wanted is not None and self._subset is not None and np.array_equal(wanted, self._subset)
        )
        if not same:
            subset = None if wanted is None else np.asarray(wanted, dtype=np.uint32)
            self._reader.change_sample_subset(subset)
            self._subset = wanted

    def describe(self) -> str:
        """Where the data lives.

        Examples
        --------
        >>> import tempfile, numpy as np, pgenlib
        >>> path = tempfile.mkdtemp() + "/toy.pgen"
        >>> with pgenlib.PgenWriter(path.encode(), 2, variant_ct=1, nonref_flags=False) as w:
        ...     w.append_biallelic(np.array([0, 1], dtype=np.int8))
        >>> PgenSource(path, 2, 1).describe().endswith("toy.pgen (2 samples x 1 variants)")
        True
        """
        return f"PLINK 2 .pgen {self.path} ({self.shape[0]} samples x {self.shape[1]} variants)"


def read_psam(path) -> pd.DataFrame:
    """Read and check a PLINK 2 .psam file.

    A header line starting ``#FID`` or ``#IID`` names the columns (``IID``
    required; ``FID``, ``PAT``, ``MAT``, ``SEX``, ``PHENO1`` used when present).
    Without a header the file is read as a .fam.

    Parameters
    ----------
    path : str or path
        The .psam file.

    Returns
    -------
    pandas.DataFrame
        Columns ``fid, iid, father, mother, sex, phenotype`` as :func:`read_fam`
        (``fid`` ``"0"`` when absent).

    Raises
    ------
    FileFormatError
        If the header lacks IID or a line has the wrong number of columns.
    SampleError
        If a (FID, IID) pair repeats.

    Examples
    --------
    >>> import tempfile
    >>> path = tempfile.mkdtemp() + "/toy.psam"
    >>> _ = open(path, "w").write("#IID\\tSEX\\tPHENO1\\ns1\\t2\\t0.5\\ns2\\tNA\\t-9\\n")
    >>> read_psam(path)[["fid", "iid", "sex", "phenotype"]].values.tolist()
    [['0', 's1', 2, 0.5], ['0', 's2', 0, nan]]
    """
    path = Path(path)
    skip, header = _header(path, ("#FID", "#IID"))
    if header is None:
        return read_fam(path)
    if "IID" not in header:
        raise FileFormatError(path, f"header names no IID column (found {' '.join(header)})",
                              line=skip)
    table, lines = _read_columns(path, len(header), " ".join(header), skiprows=skip)
    n = len(table)

    def column(name, default):
        return table[header.index(name)].to_numpy(dtype=object) if name in header else np.full(n, default, dtype=object)

    samples = pd.DataFrame({
        "fid": column("FID", "0"),
        "iid": column("IID", ""),
        "father": column("PAT", "0"),
        "mother": column("MAT", "0"),
        "sex": _sex_codes(pd.Series(column("SEX", "0"))),
        "phenotype": _phenotype(pd.Series(column("PHENO1", "NA"))),
    })
    _check_unique_pairs(path, samples, lines)
    return samples


def read_pvar(path) -> pd.DataFrame:
    """Read and check a PLINK 2 .pvar file (biallelic variants).

    ``##`` meta lines are skipped; a ``#CHROM`` header names the columns
    (``CHROM, POS, ID, REF, ALT`` required, ``CM`` optional). Without a header
    the columns follow the .bim order.

    Parameters
    ----------
    path : str or path
        The .pvar file.

    Returns
    -------
    pandas.DataFrame
        Columns ``chrom, id, cm, pos, a1, a2`` with ``a1`` = ALT (the counted
        allele) and ``a2`` = REF.

    Raises
    ------
    FileFormatError
        If a required column is missing, a line has the wrong number of
        columns, a position is not a number, or a variant is multi-allelic
        (names the line).

    Examples
    --------
    >>> import tempfile
    >>> path = tempfile.mkdtemp() + "/toy.pvar"
    >>> _ = open(path, "w").write("##fileformat=PVARv1.0\\n#CHROM\\tPOS\\tID\\tREF\\tALT\\n2\\t55\\trs9\\tC\\tT\\n")
    >>> read_pvar(path).values.tolist()
    [['2', 'rs9', 0.0, 55, 'T', 'C']]
    """
    path = Path(path)
    skip, header = _header(path, ("#CHROM",))
    if header is None:
        bim = read_bim(path)
        _check_biallelic(path, bim["a1"], np.arange(len(bim)) + 1 + skip)
        return bim
    required = ("CHROM", "POS", "ID", "REF", "ALT")
    absent = [c for c in required if c not in header]
    if absent:
        raise FileFormatError(path, f"header lacks column(s) {', '.join(absent)}; expected "
                              "#CHROM POS ID REF ALT", line=skip)
    table, lines = _read_columns(path, len(header), " ".join(header), skiprows=skip)
    col = {name: table[header.index(name)] for name in header}
    cm = (_numbers(path, col["CM"], lines, "CM", integer=False) if "CM" in col
          else np.zeros(len(table)))
    _check_biallelic(path, col["ALT"], lines)
    return pd.DataFrame({
        "chrom": col["CHROM"].to_numpy(dtype=object),
        "id": col["ID"].to_numpy(dtype=object),
        "cm": cm,
        "pos": _numbers(path, col["POS"], lines, "POS", integer=True),
        "a1": col["ALT"].to_numpy(dtype=object),
        "a2": col["REF"].to_numpy(dtype=object),
    })


# ---------------------------------------------------------------------- text helpers
def _strip_suffix(prefix, suffix: str) -> str:
    text = str(prefix)
    return text[: -len(suffix)] if text.endswith(suffix) else text


def _first_existing(base: str, suffixes, what: str) -> Path:
    for suffix in suffixes:
        path = Path(base + suffix)
        if path.is_file():
            return path
    raise MissingFileError(Path(base + suffixes[0]), what)


def _header(path: Path, starts) -> tuple[int, list[str] | None]:
    """Lines to skip (``##`` meta lines and the header) and the header's column names."""
    skip = 0
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("##"):
                skip += 1
                continue
            if line.startswith(tuple(starts)):
                return skip + 1, line[1:].split()
            break
    return skip, None


def _read_columns(path, n_columns: int, layout: str, skiprows: int = 0
                  ) -> tuple[pd.DataFrame, np.ndarray]:
    """Whitespace-separated text as strings, checked for ``n_columns`` per line.

    Returns the table (blank lines dropped) and the 1-based file line of each row.
    """
    path = Path(path)
    try:
        table = pd.read_csv(
            path, sep=r"\s+", header=None, dtype=str, skip_blank_lines=False, na_filter=False,
            skiprows=skiprows, quoting=csv.QUOTE_NONE, engine="c", encoding="utf-8",
        )
    except pd.errors.EmptyDataError:
        return pd.DataFrame({k: pd.Series(dtype=object) for k in range(n_columns)}), np.zeros(0, np.int64)
    except pd.errors.ParserError:
        _raise_bad_line(path, n_columns, layout, skiprows)
    except UnicodeDecodeError as err:
        raise FileFormatError(path, f"is not UTF-8 text ({err.reason} at byte {err.start})") from None
    if table.shape[1] != n_columns:
        _raise_bad_line(path, n_columns, layout, skiprows)
    empty = table == ""
    blank = empty.all(axis=1).to_numpy()
    if (empty.any(axis=1).to_numpy() & ~blank).any():
        _raise_bad_line(path, n_columns, layout, skiprows)
    lines = np.arange(len(table), dtype=np.int64) + 1 + skiprows
    if blank.any():
        table, lines = table[~blank].reset_index(drop=True), lines[~blank]
    return table, lines


def _raise_bad_line(path: Path, n_columns: int, layout: str, skiprows: int):
    """Find the first line without ``n_columns`` fields and raise naming it."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            fields = line.split()
            if number <= skiprows or not fields:
                continue
            if len(fields) != n_columns:
                raise FileFormatError(
                    path, f"expected {n_columns} columns ({layout}), found {len(fields)}", line=number
                )
    raise FileFormatError(path, f"cannot be read as {n_columns} whitespace-separated columns ({layout})")


def _numbers(path, column: pd.Series, lines: np.ndarray, what: str, integer: bool) -> np.ndarray:
    """Parse a text column as numbers; the first bad entry raises naming its line."""
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if integer:
        bad |= np.isfinite(values) & (values != np.round(values))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        kind = "an integer" if integer else "a number"
        raise FileFormatError(path, f"{what} is {column.iloc[row]!r}; expected {kind}",
                              line=int(lines[row]))
    return values.astype(np.int64) if integer else values


def _sex_codes(column: pd.Series) -> np.ndarray:
    codes = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    return np.where((codes == 1) | (codes == 2), codes, 0).astype(np.int64)


def _phenotype(column: pd.Series) -> np.ndarray:
    """PLINK phenotype codes: -9 and text are missing; so is 0 when the column is case/control."""
    values = np.array(pd.to_numeric(column, errors="coerce"), dtype=np.float64)
    values[values == _MISSING_PHENOTYPE] = np.nan
    observed = values[~np.isnan(values)]
    if np.isin(observed, (0.0, 1.0, 2.0)).all():  # 1 control, 2 case, 0 missing
        values[values == 0] = np.nan
    return values


def _check_unique_pairs(path, samples: pd.DataFrame, lines: np.ndarray) -> None:
    dup = samples.duplicated(["fid", "iid"], keep=False).to_numpy()
    if dup.any():
        first = int(np.flatnonzero(dup)[0])
        fid, iid = samples["fid"].iloc[first], samples["iid"].iloc[first]
        same = dup & (samples["fid"] == fid).to_numpy() & (samples["iid"] == iid).to_numpy()
        where = " and ".join(str(int(k)) for k in lines[same])
        raise SampleError(
            f"{path}: sample FID {fid!r} IID {iid!r} appears on lines {where}; "
            "each (FID, IID) pair must be unique"
        )


def _check_biallelic(path, alt: pd.Series, lines: np.ndarray) -> None:
    multi = alt.str.contains(",", regex=False).to_numpy(dtype=bool)
    if multi.any():
        row = int(np.flatnonzero(multi)[0])
        raise FileFormatError(
            path, f"variant has several ALT alleles ({alt.iloc[row]!r}); only biallelic variants "
            "are supported: split them first (plink2 --make-pgen multiallelics=-)",
            line=int(lines[row]),
        )
