"""Per-variant inputs of DeepWAS: GWAS summary statistics and annotation features.

:class:`SumStats` holds z-scores (or beta-hat / SE turned into z) with each variant's
GWAS sample size. :class:`Annotations` holds one feature vector per variant, either a
matrix ``(m, K)`` or windowed feature tracks ``(m, C, L)`` (``C`` tracks read over a
window of ``L`` positions around the variant) for a convolutional prior.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from torchgenetics.errors import FileFormatError, InputError, MissingFileError

__all__ = ["SumStats", "Annotations", "window_tracks", "read_ld"]

_ID_COLUMNS = ("id", "snp", "variant", "variant_id", "rsid", "marker", "snpid")
_Z_COLUMNS = ("z", "zscore", "z_score", "zstat")
_BETA_COLUMNS = ("beta", "b", "bhat", "beta_hat", "effect")
_SE_COLUMNS = ("se", "stderr", "standard_error", "shat")
_N_COLUMNS = ("n", "n_eff", "neff", "obs_ct", "nobs")
_CHROM_COLUMNS = ("chrom", "chr", "chromosome")
_POS_COLUMNS = ("pos", "bp", "position")
# Columns of an annotation table that are never features.
_META_COLUMNS = set(_ID_COLUMNS) | set(_CHROM_COLUMNS) | set(_POS_COLUMNS) | {"cm", "a1", "a2"}


def _lower_map(columns) -> dict:
    return {str(c).lower().lstrip("#"): c for c in columns}


def _pick(cols: dict, names, what: str, where, required: bool = True):
    for name in names:
        if name in cols:
            return cols[name]
    if required:
        raise FileFormatError(where, f"no {what} column (expected one of {', '.join(names)})")
    return None


def _read_frame(path, what: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path, what)
    try:
        return pd.read_csv(path, sep=r"\s+", comment=None)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise FileFormatError(path, f"cannot parse as a whitespace-separated table ({err})") from None


def _numeric(frame, column, where, what) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        r = int(bad[0])
        raise FileFormatError(
            where, f"{what} column {column!r} has a non-finite or non-numeric value "
                   f"{frame[column].iloc[r]!r} ({bad.size} such rows); expected a finite number",
            line=r + 2 if where != "<table>" else None)
    return values


def _unique_ids(ids: np.ndarray, where) -> None:
    dup = pd.Index(ids).duplicated()
    if dup.any():
        raise FileFormatError(where, f"variant ids repeat: {list(ids[dup][:5])}; each variant "
                                     "must appear once")


@dataclass
class SumStats:
    """GWAS summary statistics: one z-score and sample size per variant.

    Attributes
    ----------
    ids : numpy.ndarray
        Variant ids (strings, unique).
    z : numpy.ndarray
        z-scores ``bhat / se`` (``sqrt(N) bhat`` on the standardized-genotype scale).
    n : numpy.ndarray
        GWAS sample size of each variant.
    chrom : numpy.ndarray or None
        Chromosome names (strings), when given.
    pos : numpy.ndarray or None
        Base-pair positions, when given.

    Examples
    --------
    >>> s = SumStats.from_frame(pd.DataFrame({"SNP": ["a", "b"], "Z": [1.5, -0.2]}), n=1000)
    >>> len(s), s.n.tolist()
    (2, [1000.0, 1000.0])
    """

    ids: np.ndarray
    z: np.ndarray
    n: np.ndarray
    chrom: np.ndarray | None = None
    pos: np.ndarray | None = None

    def __post_init__(self):
        self.ids = np.asarray(self.ids, dtype=object).astype(str).astype(object)
        self.z = np.asarray(self.z, dtype=np.float64).reshape(-1)
        self.n = np.broadcast_to(np.asarray(self.n, dtype=np.float64), self.z.shape).copy()
        m = self.ids.shape[0]
        if self.z.shape[0] != m:
            raise InputError(f"SumStats: {m} ids but {self.z.shape[0]} z-scores")
        if not np.isfinite(self.z).all():
            raise InputError("SumStats: z-scores must be finite")
        if not (np.isfinite(self.n).all() and (self.n > 0).all()):
            raise InputError("SumStats: sample sizes must be positive and finite")
        if self.chrom is not None:
            self.chrom = np.asarray(self.chrom).astype(str).astype(object)
        if self.pos is not None:
            self.pos = np.asarray(self.pos, dtype=np.int64)
        _unique_ids(self.ids, "<sumstats>")

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, n=None, where="<table>") -> "SumStats":
        """Summary statistics from a table (column names matched case-insensitively).

        Parameters
        ----------
        frame : pandas.DataFrame
            A variant id column (``id``, ``SNP``, ``rsid``, ...), ``z`` or ``beta`` and
            ``se``, optionally ``n``, ``chrom``, ``pos``.
        n : float, optional
            Sample size for every variant (overrides an ``n`` column; needed without one).
        where : str
            Name used in error messages (the file).

        Returns
        -------
        SumStats

        Examples
        --------
        >>> t = pd.DataFrame({"id": ["a"], "beta": [0.2], "se": [0.1], "n": [500]})
        >>> SumStats.from_frame(t).z.tolist()
        [2.0]
        """
        cols = _lower_map(frame.columns)
        ids = frame[_pick(cols, _ID_COLUMNS, "variant id", where)].astype(str).to_numpy(dtype=object)
        z_col = _pick(cols, _Z_COLUMNS, "z", where, required=False)
        if z_col is not None:
            z = _numeric(frame, z_col, where, "z")
        else:
            beta = _numeric(frame, _pick(cols, _BETA_COLUMNS, "z or beta", where), where, "beta")
            se = _numeric(frame, _pick(cols, _SE_COLUMNS, "se (with beta)", where), where, "se")
            if (se <= 0).any():
                r = int(np.flatnonzero(se <= 0)[0])
                raise FileFormatError(where, f"se must be > 0, got {se[r]}",
                                      line=r + 2 if where != "<table>" else None)
            z = beta / se
        if n is None:
            n_col = _pick(cols, _N_COLUMNS, "n (or pass n=)", where)
            n = _numeric(frame, n_col, where, "n")
        chrom_col = _pick(cols, _CHROM_COLUMNS, "chrom", where, required=False)
        pos_col = _pick(cols, _POS_COLUMNS, "pos", where, required=False)
        chrom = None if chrom_col is None else frame[chrom_col].astype(str).to_numpy(dtype=object)
        pos = None if pos_col is None else _numeric(frame, pos_col, where, "pos").astype(np.int64)
        try:
            return cls(ids, z, n, chrom, pos)
        except InputError as err:
            raise FileFormatError(where, str(err)) from None

    @classmethod
    def read(cls, path, n=None) -> "SumStats":
        """Read a whitespace-separated summary-statistics file with a header.

        Parameters
        ----------
        path : str or path-like
        n : float, optional
            Sample size when the file has no ``n`` column.

        Returns
        -------
        SumStats

        Examples
        --------
        >>> import tempfile
        >>> f = os.path.join(tempfile.mkdtemp(), "s.tsv")
        >>> _ = open(f, "w").write("SNP Z N\\na 1.0 100\\n")
        >>> SumStats.read(f).ids.tolist()
        ['a']
        """
        return cls.from_frame(_read_frame(path, "summary statistics"), n=n, where=str(path))

    def to_frame(self) -> pd.DataFrame:
        """The statistics as a table (``id``, ``z``, ``n`` and ``chrom``/``pos`` when known).

        Examples
        --------
        >>> list(SumStats(["a"], [1.0], 10).to_frame().columns)
        ['id', 'z', 'n']
        """
        out = pd.DataFrame({"id": self.ids.astype(str), "z": self.z, "n": self.n})
        if self.chrom is not None:
            out["chrom"] = self.chrom.astype(str)
        if self.pos is not None:
            out["pos"] = self.pos
        return out

    def write(self, path) -> None:
        """Write a tab-separated file that :meth:`read` reads back.

        Examples
        --------
        >>> import tempfile
        >>> f = os.path.join(tempfile.mkdtemp(), "s.tsv")
        >>> SumStats(["a"], [1.0], 10).write(f); SumStats.read(f).z.tolist()
        [1.0]
        """
        self.to_frame().to_csv(path, sep="\t", index=False)


def window_tracks(values: np.ndarray, half_width: int, chrom=None) -> np.ndarray:
    """Feature tracks read over a window of neighbouring variants, for a convolutional prior.

    Variant ``j``'s window holds the features of variants ``j - h .. j + h`` (in table
    order) on the same chromosome; positions past a chromosome end are zero.

    Parameters
    ----------
    values : numpy.ndarray, shape (m, C)
        One value per variant and track.
    half_width : int
        ``h``; the window has ``L = 2 h + 1`` positions.
    chrom : array-like, optional
        Chromosome of each variant (variants grouped by chromosome).

    Returns
    -------
    numpy.ndarray, shape (m, C, 2 h + 1)

    Examples
    --------
    >>> window_tracks(np.arange(3.0)[:, None], 1)[:, 0].tolist()
    [[0.0, 0.0, 1.0], [0.0, 1.0, 2.0], [1.0, 2.0, 0.0]]
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise InputError(f"track values must be (m, C), got shape {values.shape}")
    h = int(half_width)
    if h < 0:
        raise InputError(f"half_width must be >= 0, got {half_width}")
    m, c = values.shape
    labels = np.zeros(m, dtype=np.int64) if chrom is None else pd.factorize(np.asarray(chrom))[0]
    out = np.zeros((m, c, 2 * h + 1), dtype=np.float64)
    idx = np.arange(m)
    for k, shift in enumerate(range(-h, h + 1)):
        src = idx + shift
        ok = (src >= 0) & (src < m)
        ok[ok] &= labels[src[ok]] == labels[ok]
        out[ok, :, k] = values[src[ok]]
    return out


@dataclass
class Annotations:
    """Per-variant annotation features: a matrix ``(m, K)`` or windowed tracks ``(m, C, L)``.

    Attributes
    ----------
    ids : numpy.ndarray
        Variant ids (unique strings).
    values : numpy.ndarray
        Features, float64, first axis the variants.
    names : list of str
        Feature (or track) names, one per column of ``values.shape[1]``.
    chrom, pos : numpy.ndarray or None
        Chromosome and position of each variant, when known.

    Examples
    --------
    >>> a = Annotations(["v1", "v2"], np.array([[0.0, 1.0], [1.0, 0.0]]), ["dnase", "cons"])
    >>> a.feature_shape, a.n_variants
    ((2,), 2)
    """

    ids: np.ndarray
    values: np.ndarray
    names: list
    chrom: np.ndarray | None = None
    pos: np.ndarray | None = None

    def __post_init__(self):
        self.ids = np.asarray(self.ids, dtype=object).astype(str).astype(object)
        self.values = np.asarray(self.values, dtype=np.float64)
        if self.values.ndim not in (2, 3) or self.values.shape[0] != self.ids.shape[0]:
            raise InputError(f"annotation values must be (m, K) or (m, C, L) with m = "
                             f"{self.ids.shape[0]} ids, got shape {self.values.shape}")
        self.names = [str(n) for n in self.names]
        if len(self.names) != self.values.shape[1]:
            raise InputError(f"{len(self.names)} feature names for {self.values.shape[1]} features")
        if not np.isfinite(self.values).all():
            row = int(np.flatnonzero(~np.isfinite(self.values.reshape(len(self.ids), -1)).all(1))[0])
            raise InputError(f"annotation features must be finite; variant {self.ids[row]} has "
                             "NaN or infinite values (impute or drop it)")
        if self.chrom is not None:
            self.chrom = np.asarray(self.chrom).astype(str).astype(object)
        if self.pos is not None:
            self.pos = np.asarray(self.pos, dtype=np.int64)
        _unique_ids(self.ids, "<annotations>")

    @property
    def n_variants(self) -> int:
        """Number of variants ``m``."""
        return int(self.ids.shape[0])

    @property
    def feature_shape(self) -> tuple:
        """Shape of one variant's features: ``(K,)`` or ``(C, L)``."""
        return tuple(self.values.shape[1:])

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, features=None, where="<table>") -> "Annotations":
        """Annotations from a table: an id column, optional ``chrom``/``pos``, numeric features.

        Parameters
        ----------
        frame : pandas.DataFrame
        features : list of str, optional
            Feature columns (default: every column that is not id/chrom/pos/cm/a1/a2).
        where : str
            Name used in error messages.

        Returns
        -------
        Annotations

        Examples
        --------
        >>> t = pd.DataFrame({"SNP": ["a", "b"], "chr": [1, 1], "dnase": [0.5, 1.0]})
        >>> Annotations.from_frame(t).names
        ['dnase']
        """
        cols = _lower_map(frame.columns)
        id_col = _pick(cols, _ID_COLUMNS, "variant id", where)
        chrom_col = _pick(cols, _CHROM_COLUMNS, "chrom", where, required=False)
        pos_col = _pick(cols, _POS_COLUMNS, "pos", where, required=False)
        if features is None:
            features = [c for c in frame.columns if str(c).lower().lstrip("#") not in _META_COLUMNS]
        if not features:
            raise FileFormatError(where, "no feature columns besides the variant id/chrom/pos")
        values = np.column_stack([_numeric(frame, c, where, "feature") for c in features])
        chrom = None if chrom_col is None else frame[chrom_col].astype(str).to_numpy(dtype=object)
        pos = None if pos_col is None else _numeric(frame, pos_col, where, "pos").astype(np.int64)
        try:
            return cls(frame[id_col].astype(str).to_numpy(dtype=object), values,
                       [str(c) for c in features], chrom, pos)
        except InputError as err:
            raise FileFormatError(where, str(err)) from None

    @classmethod
    def read(cls, path) -> "Annotations":
        """Read annotations from a table (TSV/whitespace) or an HDF5 file written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like
            ``.h5``/``.hdf5`` files hold ``ids``, ``values`` (2-D or 3-D), ``names``
            and optionally ``chrom``/``pos``; any other file is read as a table.

        Returns
        -------
        Annotations

        Examples
        --------
        >>> import tempfile
        >>> f = os.path.join(tempfile.mkdtemp(), "a.tsv")
        >>> _ = open(f, "w").write("SNP f1 f2\\na 0.1 1\\nb 0.2 0\\n")
        >>> Annotations.read(f).values.shape
        (2, 2)
        """
        if str(path).lower().endswith((".h5", ".hdf5")):
            from torchgenetics.io import load_h5

            if not os.path.exists(path):
                raise MissingFileError(path, "annotations")
            data = load_h5(path, format_name="DeepWASAnnotations")
            try:
                return cls(data["ids"], np.asarray(data["values"]), list(data["names"]),
                           data.get("chrom"), data.get("pos"))
            except (KeyError, InputError) as err:
                raise FileFormatError(path, f"not a valid annotation file ({err})") from None
        return cls.from_frame(_read_frame(path, "annotations"), where=str(path))

    def save(self, path) -> None:
        """Write to HDF5 (keeps 3-D windowed tracks); :meth:`read` loads it back.

        Examples
        --------
        >>> import tempfile
        >>> f = os.path.join(tempfile.mkdtemp(), "a.h5")
        >>> Annotations(["a"], np.ones((1, 2, 3)), ["t1", "t2"]).save(f)
        >>> Annotations.read(f).feature_shape
        (2, 3)
        """
        from torchgenetics.io import save_h5

        data = {"ids": list(self.ids.astype(str)), "values": self.values, "names": list(self.names)}
        if self.chrom is not None:
            data["chrom"] = np.asarray(self.chrom.astype(str))
        if self.pos is not None:
            data["pos"] = self.pos
        save_h5(path, data, format_name="DeepWASAnnotations")

    def to_frame(self) -> pd.DataFrame:
        """A table with ``id`` (``chrom``, ``pos``) and one column per feature (2-D features only).

        Examples
        --------
        >>> list(Annotations(["a"], np.ones((1, 1)), ["f"]).to_frame().columns)
        ['id', 'f']
        """
        if self.values.ndim != 2:
            raise InputError("windowed (3-D) annotations have no table form; use save() (HDF5)")
        out = pd.DataFrame({"id": self.ids.astype(str)})
        if self.chrom is not None:
            out["chrom"] = self.chrom.astype(str)
        if self.pos is not None:
            out["pos"] = self.pos
        for k, name in enumerate(self.names):
            out[name] = self.values[:, k]
        return out

    def write(self, path) -> None:
        """Write a tab-separated table (2-D features) that :meth:`read` reads back.

        Examples
        --------
        >>> import tempfile
        >>> f = os.path.join(tempfile.mkdtemp(), "a.tsv")
        >>> Annotations(["a"], np.ones((1, 1)), ["f"]).write(f); Annotations.read(f).names
        ['f']
        """
        self.to_frame().to_csv(path, sep="\t", index=False)

    def subset(self, index) -> "Annotations":
        """The annotations of the variants at integer positions ``index``.

        Examples
        --------
        >>> Annotations(["a", "b"], np.eye(2), ["x", "y"]).subset([1]).ids.tolist()
        ['b']
        """
        index = np.asarray(index, dtype=np.int64)
        return Annotations(self.ids[index], self.values[index], list(self.names),
                           None if self.chrom is None else self.chrom[index],
                           None if self.pos is None else self.pos[index])

    def windowed(self, half_width: int) -> "Annotations":
        """Windowed tracks ``(m, K, 2 h + 1)`` over neighbouring variants (see :func:`window_tracks`).

        Examples
        --------
        >>> Annotations(["a", "b", "c"], np.eye(3), ["x", "y", "z"]).windowed(2).feature_shape
        (3, 5)
        """
        if self.values.ndim != 2:
            raise InputError("annotations are already windowed tracks")
        return Annotations(self.ids, window_tracks(self.values, half_width, self.chrom),
                           list(self.names), self.chrom, self.pos)

    def positions_of(self, ids) -> np.ndarray:
        """Row of each id in this table (-1 where absent).

        Examples
        --------
        >>> Annotations(["a", "b"], np.eye(2), ["x", "y"]).positions_of(["b", "q"]).tolist()
        [1, -1]
        """
        index = pd.Index(self.ids)
        return index.get_indexer(pd.Index(np.asarray(ids, dtype=object).astype(str)))


def read_ld(path, device=None, dtype=None) -> list:
    """LD operators from one HDF5 file or every ``*.h5`` file of a directory (natural order).

    Parameters
    ----------
    path : str or path-like
        A file written by ``BlockLD.save`` / ``BandedLD.save``, or a directory of them
        (e.g. one per chromosome).
    device, dtype : optional
        Where to load the matrices.

    Returns
    -------
    list of BlockLD or BandedLD

    Examples
    --------
    >>> import tempfile, torch
    >>> from torchgenetics.operators import BlockLD
    >>> d = tempfile.mkdtemp(); R = BlockLD([torch.eye(2, dtype=torch.float64)])
    >>> R.variant_ids = np.array(["a", "b"]); R.save(os.path.join(d, "chr1.h5"))
    >>> [op.shape[0] for op in read_ld(d)]
    [2]
    """
    import re

    from torchgenetics.operators import load_ld

    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.h5"), key=lambda p: [int(t) if t.isdigit() else t
                                                        for t in re.split(r"(\d+)", p.name)])
        if not files:
            raise MissingFileError(path / "*.h5", "LD HDF5 (directory has none)")
    elif path.is_file():
        files = [path]
    else:
        raise MissingFileError(path, "LD HDF5")
    return [load_ld(f, device=device, dtype=dtype) for f in files]
