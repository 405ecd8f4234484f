"""PLINK-style sample tables (phenotypes, covariates, keep/remove lists) and sample alignment.

File format (as plink reads them): whitespace-separated, one sample per line,
``FID IID`` then value columns. An optional header line starts with ``FID`` or
``#FID``; a header starting with ``IID`` or ``#IID`` (or, for keep/remove files,
a single column) means the file has no family IDs and samples are matched on IID
alone. Blank lines and lines starting with ``##`` are skipped. Files ending in
``.gz`` are decompressed.

Missing values, as in plink2:

* phenotypes: ``NA``, ``-9``, ``.``, ``nan`` (any letter case; ``-9`` also as ``-9.0``);
* covariates: ``NA``, ``.``, ``nan`` only; ``-9`` is a real covariate value.

Binary phenotypes are returned as written (no 1/2 -> 0/1 recoding).

:func:`read_table` returns a pandas DataFrame indexed by a ``(fid, iid)``
MultiIndex of strings with float64 columns (for keep/remove files: no columns).
``DataFrame.attrs`` records ``path``, ``kind``, ``iid_only`` (file without FIDs;
then ``fid`` repeats the IID) and ``categorical`` (levels of expanded columns).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ..errors import FileFormatError, InputError, MissingFileError, PhenotypeError, SampleError

__all__ = [
    "PHENOTYPE_MISSING",
    "COVARIATE_MISSING",
    "read_table",
    "align",
    "Alignment",
    "AlignmentReport",
]

PHENOTYPE_MISSING = ("NA", "-9", ".", "nan")
COVARIATE_MISSING = ("NA", ".", "nan")
_KINDS = ("phenotype", "covariate", "keep", "remove")
_SHOW = 5  # how many offending IDs/lines an error message lists


def _open_lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            return handle.read().splitlines()
    except (UnicodeDecodeError, OSError) as err:
        raise FileFormatError(path, f"cannot read as a text table ({err})") from None


def _parse_lines(path: Path, kind: str):
    """Split the file into header (or None), iid_only flag, rows of tokens and their 1-based line numbers."""
    header, iid_only = None, False
    rows, line_numbers = [], []
    seen_data = False
    for number, line in enumerate(_open_lines(path), start=1):
        tokens = line.split()
        if not tokens or tokens[0].startswith("##"):
            continue
        first = tokens[0].upper()
        if not seen_data and header is None and first in ("FID", "#FID", "IID", "#IID"):
            header = tokens
            iid_only = first in ("IID", "#IID")
            seen_data = True
            continue
        if not seen_data and tokens[0].startswith("#"):
            continue  # comment lines before the header
        seen_data = True
        rows.append(tokens)
        line_numbers.append(number)
    if header is None and kind in ("keep", "remove") and rows and len(rows[0]) == 1:
        iid_only = True
    return header, iid_only, rows, line_numbers


def _check_fields(path: Path, kind: str, header, iid_only: bool, rows, line_numbers) -> int:
    """Number of fields per line; raises FileFormatError on a line that differs."""
    n_id = 1 if iid_only else 2
    if header is not None:
        expected, what = len(header), "the header"
    elif rows:
        expected, what = len(rows[0]), f"line {line_numbers[0]}"
    else:
        expected, what = n_id, ""
    if kind in ("keep", "remove"):
        for tokens, number in zip(rows, line_numbers, strict=True):
            if len(tokens) < n_id:
                raise FileFormatError(path, f"expected {'IID' if iid_only else 'FID and IID'}, found {len(tokens)} field(s)", line=number)
        return expected
    if expected < n_id + 1:
        raise FileFormatError(
            path,
            f"expected {'IID' if iid_only else 'FID IID'} followed by at least one value column, "
            f"found {expected} column(s)",
            line=line_numbers[0] if header is None and rows else None,
        )
    for tokens, number in zip(rows, line_numbers, strict=True):
        if len(tokens) != expected:
            raise FileFormatError(path, f"expected {expected} fields (as on {what}), found {len(tokens)}", line=number)
    return expected


def _check_duplicates(path: Path, keys: pd.Index, line_numbers) -> None:
    duplicated = keys.duplicated(keep=False)
    if not duplicated.any():
        return
    lines = np.asarray(line_numbers)
    groups = pd.Series(lines[duplicated], index=keys[duplicated]).groupby(level=list(range(keys.nlevels)), sort=False)
    parts = []
    for key, group in list(groups)[:_SHOW]:
        label = key if isinstance(key, str) else " ".join(map(str, key if isinstance(key, tuple) else (key,)))
        parts.append(f"{label!s} (lines {', '.join(map(str, group.tolist()))})")
    n = groups.ngroups
    raise SampleError(
        f"{path}: {n} sample ID(s) appear more than once: {'; '.join(parts)}" + ("; ..." if n > _SHOW else "")
    )


def _select_columns(path: Path, names: list[str], column, columns) -> list[int]:
    """Positions (0-based among value columns) of the requested columns."""
    if column is not None and columns is not None:
        raise InputError("pass either column= (one column) or columns= (a list), not both")
    wanted = [column] if column is not None else columns
    if wanted is None:
        return list(range(len(names)))
    if isinstance(wanted, (str, int)):
        wanted = [wanted]
    positions = []
    for item in wanted:
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            if not 1 <= item <= len(names):
                raise InputError(
                    f"{path}: column number {item} is out of range; the file has {len(names)} value "
                    f"column(s) after FID/IID, numbered from 1: {names}"
                )
            positions.append(int(item) - 1)
        elif isinstance(item, str):
            if item not in names:
                raise InputError(f"{path}: no column named {item!r}; columns are {names}")
            positions.append(names.index(item))
        else:
            raise InputError(f"columns are chosen by name or 1-based number, got {item!r}")
    return positions


def _missing_mask(values: np.ndarray, missing: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(missing mask, float values with NaN where missing or not numeric)."""
    tokens = {m.lower() for m in missing}
    numeric_codes = []
    for m in missing:
        try:
            numeric_codes.append(float(m))
        except ValueError:
            pass
    lowered = np.char.lower(values.astype(str))
    is_missing = np.isin(lowered, list(tokens))
    numbers = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64)
    for code in numeric_codes:
        if not np.isnan(code):
            is_missing |= numbers == code
    numbers = np.where(is_missing, np.nan, numbers)
    return is_missing, numbers


def _natural_levels(values) -> list[str]:
    levels = sorted(set(values))
    try:
        return sorted(levels, key=float)
    except ValueError:
        return levels


def read_table(
    path,
    column=None,
    columns=None,
    kind: str = "phenotype",
    missing: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Read a PLINK-style phenotype, covariate or keep/remove file.

    Parameters
    ----------
    path : str or path-like
        The file (see the module docstring for the format).
    column : str or int, optional
        One column to read, by header name or 1-based number counted after FID/IID
        (as plink's ``--mpheno``). Files without a header name their columns
        ``PHENO1``, ``PHENO2``, ... (phenotype) or ``COVAR1``, ... (covariate).
    columns : list of str or int, optional
        Several columns (default: all).
    kind : {"phenotype", "covariate", "keep", "remove"}
        How to read values. Phenotypes must be numeric. Covariate columns with
        any non-numeric value are categorical: each becomes indicator columns
        ``<col>=<level>`` for every level but the first (sorted; the reference).
        Keep/remove files return only the sample index; extra columns are ignored.
    missing : sequence of str, optional
        Missing-value codes (default :data:`PHENOTYPE_MISSING` for phenotypes,
        :data:`COVARIATE_MISSING` for covariates). Compared case-insensitively,
        numeric codes also by value.
    categorical : sequence of str, optional
        Covariate columns to treat as categorical even if numeric (e.g. a batch number).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``(fid, iid)`` strings, float64 columns (NaN = missing).

    Raises
    ------
    MissingFileError
        If the file does not exist.
    FileFormatError
        If a line has the wrong number of fields (the line is named).
    PhenotypeError
        If a phenotype value is not numeric (file, line and value are named).
    SampleError
        If a sample ID appears twice in a phenotype or covariate file (IDs and lines named).

    Examples
    --------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "pheno.txt")
    >>> _ = open(f, "w").write("FID IID height\\nf1 s1 1.70\\nf2 s2 NA\\n")
    >>> read_table(f, column="height")["height"].tolist()
    [1.7, nan]
    """
    if kind not in _KINDS:
        raise InputError(f"kind must be one of {_KINDS}, got {kind!r}")
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path, kind)
    if missing is None:
        missing = PHENOTYPE_MISSING if kind == "phenotype" else COVARIATE_MISSING
    header, iid_only, rows, line_numbers = _parse_lines(path, kind)
    n_fields = _check_fields(path, kind, header, iid_only, rows, line_numbers)
    n_id = 1 if iid_only else 2

    iid = [r[n_id - 1] for r in rows]
    fid = iid if iid_only else [r[0] for r in rows]
    index = pd.MultiIndex.from_arrays(
        [pd.Index(fid, dtype=object), pd.Index(iid, dtype=object)], names=["fid", "iid"]
    )
    attrs = {"path": str(path), "kind": kind, "iid_only": iid_only, "categorical": {}}
    if kind in ("keep", "remove"):
        frame = pd.DataFrame(index=index[~index.duplicated()])
        frame.attrs.update(attrs)
        return frame
    keys = pd.Index(iid, dtype=object) if iid_only else index
    _check_duplicates(path, keys, line_numbers)

    if header is not None:
        names = [str(h) for h in header[n_id:]]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise FileFormatError(path, f"the header repeats column name(s) {dup}")
    else:
        stem = "PHENO" if kind == "phenotype" else "COVAR"
        names = [f"{stem}{k}" for k in range(1, n_fields - n_id + 1)]
    positions = _select_columns(path, names, column, columns)
    categorical = set(categorical or ())
    unknown = categorical - set(names[p] for p in positions)
    if unknown:
        raise InputError(f"{path}: categorical column(s) {sorted(unknown)} are not among the columns read")

    raw = np.array([r[n_id:] for r in rows], dtype=object).reshape(len(rows), n_fields - n_id)
    data: dict[str, np.ndarray] = {}
    for p in positions:
        name = names[p]
        values = raw[:, p].astype(str)
        is_missing, numbers = _missing_mask(values, missing)
        bad = np.flatnonzero(~is_missing & np.isnan(numbers))
        if kind == "phenotype":
            if bad.size:
                r = bad[0]
                raise PhenotypeError(
                    f"{path}, line {line_numbers[r]}: phenotype column {name!r} has non-numeric value "
                    f"{values[r]!r}; expected a number or a missing code ({', '.join(missing)})"
                )
            data[name] = numbers
        elif bad.size or name in categorical:
            levels = _natural_levels(values[~is_missing])
            attrs["categorical"][name] = levels
            for level in levels[1:]:
                indicator = (values == level).astype(np.float64)
                indicator[is_missing] = np.nan
                data[f"{name}={level}"] = indicator
        else:
            data[name] = numbers
    frame = pd.DataFrame(data, index=index, dtype=np.float64)
    frame.attrs.update(attrs)
    return frame


@dataclass
class AlignmentReport:
    """How many genotyped samples were kept, and why the others were dropped.

    Attributes
    ----------
    n_genotyped : int
        Samples in the genotypes.
    n_used : int
        Samples kept.
    dropped : dict of str to int
        Samples dropped per reason, in the order the filters apply (each sample
        counted once, under the first reason that drops it).
    dropped_covariates : list of str
        Covariate columns dropped for being constant among the kept samples.
    sources : dict of str to str
        File (or ``"<table>"``) and column for each input.

    Examples
    --------
    >>> print(AlignmentReport(3, 2, {"missing phenotype": 1}))
    samples: 3 genotyped, 2 used, 1 dropped
      missing phenotype: 1
    """

    n_genotyped: int
    n_used: int
    dropped: dict = field(default_factory=dict)
    dropped_covariates: list = field(default_factory=list)
    sources: dict = field(default_factory=dict)

    @property
    def n_dropped(self) -> int:
        """Total number of genotyped samples not used."""
        return self.n_genotyped - self.n_used

    def __str__(self) -> str:
        lines = [f"samples: {self.n_genotyped} genotyped, {self.n_used} used, {self.n_dropped} dropped"]
        width = max((len(r) for r in self.dropped), default=0)
        for reason, count in self.dropped.items():
            lines.append(f"  {reason + ':':<{width + 1}} {count}")
        if self.dropped_covariates:
            lines.append(f"  constant covariate columns dropped: {', '.join(self.dropped_covariates)}")
        return "\n".join(lines)


@dataclass
class Alignment:
    """Samples usable for an analysis, in genotype order, with their phenotype and covariates.

    Attributes
    ----------
    sample_index : numpy.ndarray
        int64 positions (increasing) of the kept samples in the genotypes.
    samples : pandas.DataFrame
        ``fid``, ``iid`` of the kept samples.
    y : torch.Tensor or None
        Phenotype of the kept samples, shape (n,).
    covariates : torch.Tensor or None
        Covariate matrix (n, p); first column is the intercept when requested.
    covariate_names : list of str
        Column names of ``covariates``.
    phenotype_name : str or None
        Name of the phenotype column.
    report : AlignmentReport
        Counts of dropped samples by reason; ``print(alignment)`` shows it.

    Examples
    --------
    >>> import pandas as pd
    >>> samples = pd.DataFrame({"fid": ["a", "b"], "iid": ["a", "b"]})
    >>> al = align(samples)
    >>> al.sample_index.tolist(), al.covariate_names
    ([0, 1], ['intercept'])
    """

    sample_index: np.ndarray
    samples: pd.DataFrame
    y: torch.Tensor | None
    covariates: torch.Tensor | None
    covariate_names: list
    phenotype_name: str | None
    report: AlignmentReport

    @property
    def n_samples(self) -> int:
        """Number of samples kept."""
        return int(self.sample_index.size)

    def subset(self, genotypes):
        """The genotypes restricted to the kept samples (``genotypes.subset(samples=...)``).

        Examples
        --------
        >>> class G:  # any object with .samples and .subset(samples=...)
        ...     samples = pd.DataFrame({"fid": ["a", "b"], "iid": ["a", "b"]})
        ...     def subset(self, samples):
        ...         return samples.tolist()
        >>> align(G()).subset(G())
        [0, 1]
        """
        return genotypes.subset(samples=self.sample_index)

    def __str__(self) -> str:
        return str(self.report)


def _genotype_samples(genotypes) -> pd.DataFrame:
    samples = genotypes if isinstance(genotypes, pd.DataFrame) else getattr(genotypes, "samples", None)
    if not isinstance(samples, pd.DataFrame) or not {"fid", "iid"} <= set(samples.columns):
        raise InputError("genotypes must have .samples, a DataFrame with 'fid' and 'iid' columns")
    return pd.DataFrame({"fid": samples["fid"].astype(str).to_numpy(), "iid": samples["iid"].astype(str).to_numpy()})


def _source(table: pd.DataFrame) -> str:
    return str(table.attrs.get("path", "<table>"))


def _as_table(value, kind: str, **read_kwargs) -> pd.DataFrame | None:
    if value is None:
        return None
    if isinstance(value, pd.DataFrame):
        if value.index.nlevels != 2:
            raise InputError(f"a {kind} DataFrame must be indexed by (fid, iid), as read_table returns")
        return value
    if isinstance(value, (str, Path)):
        return read_table(value, kind=kind, **read_kwargs)
    raise InputError(f"{kind} must be a file path or a DataFrame from read_table, got {type(value).__name__}")


def _positions(table: pd.DataFrame, geno: pd.DataFrame, what: str, require_overlap: bool = True) -> np.ndarray:
    """Row of ``table`` for each genotyped sample (-1 if absent); raises when none match (if required)."""
    iid_only = bool(table.attrs.get("iid_only", False))
    if iid_only:
        if geno["iid"].duplicated().any():
            dup = geno["iid"][geno["iid"].duplicated()].iloc[0]
            raise SampleError(
                f"{_source(table)} identifies samples by IID only, but IID {dup!r} occurs in several "
                "families in the genotypes; add an FID column"
            )
        keys = pd.Index(table.index.get_level_values("iid" if "iid" in table.index.names else 1))
        pos = keys.get_indexer(pd.Index(geno["iid"]))
    else:
        table_index = pd.MultiIndex.from_arrays(
            [table.index.get_level_values(0).astype(str), table.index.get_level_values(1).astype(str)]
        )
        pos = table_index.get_indexer(pd.MultiIndex.from_frame(geno[["fid", "iid"]]))
    if (pos >= 0).any() or len(geno) == 0 or not require_overlap:
        return pos
    table_ids = [f"{f} {i}" for f, i in table.index[:3]]
    geno_ids = [f"{f} {i}" for f, i in zip(geno["fid"][:3], geno["iid"][:3], strict=True)]
    hint = ""
    if not iid_only and pd.Index(table.index.get_level_values(1).astype(str)).isin(geno["iid"]).any():
        hint = " The IIDs match but the FIDs differ: check the FID column (e.g. 0 versus IID)."
    raise SampleError(
        f"no sample in common between the genotypes and the {what} file {_source(table)}. "
        f"Genotype samples (FID IID) start {geno_ids}; the {what} file starts {table_ids}.{hint}"
    )


def align(
    genotypes,
    pheno=None,
    covar=None,
    keep=None,
    remove=None,
    *,
    pheno_column=None,
    covar_columns=None,
    categorical: Sequence[str] | None = None,
    intercept: bool = True,
    dtype: torch.dtype = torch.float64,
    device=None,
) -> Alignment:
    """Match phenotype, covariates and sample filters to the genotypes' samples.

    A genotyped sample is kept when it is in ``keep`` (if given), not in
    ``remove``, has a non-missing phenotype (if ``pheno`` is given) and
    non-missing values for every covariate (if ``covar`` is given). Kept samples
    stay in genotype order. Samples are matched on (FID, IID), or on IID alone
    for files without FIDs.

    Parameters
    ----------
    genotypes : Genotypes or pandas.DataFrame
        Anything with ``.samples`` (DataFrame with ``fid``, ``iid``), or that DataFrame.
    pheno, covar, keep, remove : path or DataFrame, optional
        Files (read with :func:`read_table`) or DataFrames from it.
    pheno_column : str or int, optional
        Phenotype column by name or 1-based number; needed if there are several.
    covar_columns : list of str or int, optional
        Covariate columns to use (default all).
    categorical : list of str, optional
        Covariate columns to treat as categorical even if numeric.
    intercept : bool, default True
        Put a column of ones first in ``covariates`` (named ``"intercept"``); then
        covariate columns constant over the kept samples are dropped (and reported).
    dtype : torch.dtype, default torch.float64
        dtype of ``y`` and ``covariates``.
    device : torch.device or str, optional
        Device of ``y`` and ``covariates`` (default CPU).

    Returns
    -------
    Alignment
        Kept sample positions, ``y``, covariate matrix and a printable report.

    Raises
    ------
    SampleError
        If a file shares no sample with the genotypes (a few IDs of each are
        shown), genotype IDs repeat, or no sample is left.
    PhenotypeError
        If the phenotype is missing for every genotyped sample.

    Examples
    --------
    >>> import pandas as pd
    >>> samples = pd.DataFrame({"fid": ["f1", "f2", "f3"], "iid": ["s1", "s2", "s3"]})
    >>> idx = pd.MultiIndex.from_tuples([("f3", "s3"), ("f1", "s1")], names=["fid", "iid"])
    >>> y = pd.DataFrame({"bmi": [30.0, 22.0]}, index=idx)
    >>> al = align(samples, pheno=y)
    >>> al.sample_index.tolist(), al.y.tolist()
    ([0, 2], [22.0, 30.0])
    >>> al.report.dropped
    {'not in phenotype file': 1, 'missing phenotype': 0}
    """
    geno = _genotype_samples(genotypes)
    dup = pd.MultiIndex.from_frame(geno).duplicated(keep=False)
    if dup.any():
        shown = [f"{f} {i}" for f, i in geno[dup].drop_duplicates().head(_SHOW).itertuples(index=False)]
        raise SampleError(f"genotype sample IDs (FID IID) are repeated: {shown}")
    device = torch.device("cpu" if device is None else device)
    pheno_table = _as_table(pheno, "phenotype", column=pheno_column)
    covar_table = _as_table(
        covar, "covariate", columns=covar_columns, categorical=categorical
    )
    keep_table = _as_table(keep, "keep")
    remove_table = _as_table(remove, "remove")

    n = len(geno)
    alive = np.ones(n, dtype=bool)
    dropped: dict[str, int] = {}
    sources: dict[str, str] = {}

    def drop(reason: str, mask: np.ndarray) -> None:
        dropped[reason] = int((alive & mask).sum())
        alive[mask] = False

    if keep_table is not None:
        sources["keep"] = _source(keep_table)
        drop("not in keep file", _positions(keep_table, geno, "keep") < 0)
    if remove_table is not None:
        sources["remove"] = _source(remove_table)
        # a remove list sharing no sample with the genotypes removes nothing
        pos = _positions(remove_table, geno, "remove", require_overlap=False)
        drop("in remove file", pos >= 0)

    y_values, phenotype_name = None, None
    if pheno_table is not None:
        if pheno_column is not None and not isinstance(pheno, (str, Path)):
            pheno_table = pheno_table.iloc[:, _select_columns(Path(_source(pheno_table)), list(map(str, pheno_table.columns)), pheno_column, None)]
        if pheno_table.shape[1] != 1:
            raise InputError(
                f"{_source(pheno_table)} has {pheno_table.shape[1]} phenotype columns "
                f"{list(pheno_table.columns)}; choose one with pheno_column="
            )
        phenotype_name = str(pheno_table.columns[0])
        sources["phenotype"] = f"{_source(pheno_table)} [{phenotype_name}]"
        pos = _positions(pheno_table, geno, "phenotype")
        values = np.full(n, np.nan)
        values[pos >= 0] = pheno_table.iloc[:, 0].to_numpy(dtype=np.float64)[pos[pos >= 0]]
        drop("not in phenotype file", pos < 0)
        if alive.any() and np.isnan(values[alive]).all():
            raise PhenotypeError(
                f"{_source(pheno_table)}: phenotype {phenotype_name!r} is missing for all "
                f"{int(alive.sum())} genotyped samples found in the file"
            )
        drop("missing phenotype", np.isnan(values))
        y_values = values

    covar_values, covar_names = None, []
    if covar_table is not None:
        if covar_columns is not None and not isinstance(covar, (str, Path)):
            covar_table = covar_table.iloc[:, _select_columns(Path(_source(covar_table)), list(map(str, covar_table.columns)), None, covar_columns)]
        try:
            matrix = covar_table.to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise PhenotypeError(
                f"{_source(covar_table)}: covariate columns must be numeric; read the file with read_table(kind='covariate')"
            ) from None
        covar_names = [str(c) for c in covar_table.columns]
        sources["covariates"] = _source(covar_table)
        pos = _positions(covar_table, geno, "covariate")
        covar_values = np.full((n, matrix.shape[1]), np.nan)
        covar_values[pos >= 0] = matrix[pos[pos >= 0]]
        drop("not in covariate file", pos < 0)
        drop("missing covariate", np.isnan(covar_values).any(axis=1))

    sample_index = np.flatnonzero(alive).astype(np.int64)
    report = AlignmentReport(n, int(sample_index.size), dropped, [], sources)
    if sample_index.size == 0 and n > 0:
        raise SampleError(f"no sample is left after matching the inputs to the genotypes:\n{report}")

    y = None if y_values is None else torch.as_tensor(y_values[sample_index], dtype=dtype, device=device)
    covariates, names = None, []
    columns = []
    if intercept:
        columns.append(np.ones(sample_index.size))
        names.append("intercept")
    if covar_values is not None:
        kept = covar_values[sample_index]
        for j, name in enumerate(covar_names):
            col = kept[:, j]
            if intercept and col.size and np.all(col == col[0]):
                report.dropped_covariates.append(name)
                continue
            columns.append(col)
            names.append(name)
    if columns:
        covariates = torch.as_tensor(np.column_stack(columns), dtype=dtype, device=device)
    return Alignment(
        sample_index=sample_index,
        samples=geno.iloc[sample_index].reset_index(drop=True),
        y=y,
        covariates=covariates,
        covariate_names=names,
        phenotype_name=phenotype_name,
        report=report,
    )

