"""Read and write the files of a screen: count matrices and cell tables.

Counts are either a delimited text table (``.csv``, ``.tsv``, ``.txt``, optionally
``.gz``) with a header of feature names and the cell id in the first column, or a
``.npz`` archive written by :func:`write_counts` (a scipy CSR matrix with its cell
ids and feature names). Cell tables are delimited text with a header.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import FileFormatError, MissingFileError

__all__ = ["read_counts", "write_counts", "read_cells", "write_cells"]


def _sep(path: Path) -> str | None:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return ","
    if name.endswith(".tsv"):
        return "\t"
    return None


def _read_table(path: Path, what: str, index_col=None) -> pd.DataFrame:
    if not path.is_file():
        raise MissingFileError(path, what)
    sep = _sep(path)
    try:
        return pd.read_csv(path, sep=sep if sep else r"\s+", engine="c" if sep else "python", index_col=index_col,
                           dtype={0: str} if index_col == 0 else None)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise FileFormatError(path, f"cannot read as a delimited table with a header ({err})") from None


def read_counts(path):
    """Read a cells x features count matrix.

    Parameters
    ----------
    path : str or path-like
        ``.npz`` from :func:`write_counts`, or a delimited table (cell id first column).

    Returns
    -------
    pandas.DataFrame or tuple
        A DataFrame (cells x features) for text tables; ``(csr_matrix, cells, features)``
        for ``.npz`` archives. Both are accepted by :class:`~torchgenetics.dream.BayesDream`
        (pass the tuple's parts as ``counts, cell_ids=, features=``).

    Raises
    ------
    MissingFileError, FileFormatError
        Absent file, non-numeric value (line and column named), bad archive.

    Examples
    --------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "c.csv")
    >>> write_counts(f, pd.DataFrame({"g1": [1, 2]}, index=["a", "b"]))
    >>> read_counts(f).loc["b", "g1"]
    np.float64(2.0)
    """
    path = Path(path)
    if path.suffix == ".npz":
        if not path.is_file():
            raise MissingFileError(path, "counts")
        try:
            with np.load(path, allow_pickle=False) as z:
                matrix = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
                return matrix, [str(c) for c in z["cells"]], [str(f) for f in z["features"]]
        except (KeyError, ValueError, OSError) as err:
            raise FileFormatError(path, f"not a counts archive written by write_counts ({err})") from None
    table = _read_table(path, "counts", index_col=0)
    table.index = table.index.astype(str)
    numeric = table.apply(pd.to_numeric, errors="coerce")
    bad = numeric.isna() & table.notna()
    if bad.to_numpy().any():
        i, j = np.argwhere(bad.to_numpy())[0]
        raise FileFormatError(path, f"value {table.iat[i, j]!r} in column {table.columns[j]!r} is not a number",
                              line=int(i) + 2)
    if numeric.isna().to_numpy().any():
        i, j = np.argwhere(numeric.isna().to_numpy())[0]
        raise FileFormatError(path, f"missing value in column {table.columns[j]!r}", line=int(i) + 2)
    return numeric.astype(np.float64)


def write_counts(path, counts, cells=None, features=None) -> None:
    """Write a count matrix as ``.npz`` (sparse) or a delimited table.

    Parameters
    ----------
    path : str or path-like
        ``.npz`` or ``.csv``/``.tsv``/``.txt``.
    counts : pandas.DataFrame, numpy.ndarray or scipy sparse
        cells x features.
    cells, features : sequence of str, optional
        Names (taken from a DataFrame when omitted).

    Examples
    --------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "c.npz")
    >>> write_counts(f, np.eye(2), cells=["a", "b"], features=["x", "y"])
    >>> read_counts(f)[2]
    ['x', 'y']
    """
    path = Path(path)
    if isinstance(counts, pd.DataFrame):
        cells = list(counts.index) if cells is None else cells
        features = list(counts.columns) if features is None else features
        counts = counts.to_numpy()
    cells = [str(c) for c in cells]
    features = [str(f) for f in features]
    if path.suffix == ".npz":
        m = sp.csr_matrix(counts, dtype=np.float64)
        np.savez_compressed(path, data=m.data, indices=m.indices, indptr=m.indptr, shape=np.array(m.shape),
                            cells=np.array(cells), features=np.array(features))
        return
    dense = counts.toarray() if sp.issparse(counts) else np.asarray(counts)
    frame = pd.DataFrame(dense, index=pd.Index(cells, name="cell"), columns=features)
    frame.to_csv(path, sep=_sep(path) or "\t")


def read_cells(path) -> pd.DataFrame:
    """Read a cell table (``cell``, ``guide``, ``target``, optional ``size_factor``, ``group``).

    Examples
    --------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "cells.tsv")
    >>> _ = open(f, "w").write("cell\\tguide\\ttarget\\na\\tg1\\tntc\\n")
    >>> read_cells(f)["target"].tolist()
    ['ntc']
    """
    path = Path(path)
    table = _read_table(path, "cell table")
    if "cell" in table.columns:
        table["cell"] = table["cell"].astype(str)
    for col in ("guide", "target", "group"):
        if col in table.columns:
            table[col] = table[col].astype("string").astype(object).where(table[col].notna(), None)
    return table


def write_cells(path, cells: pd.DataFrame) -> None:
    """Write a cell table as delimited text.

    Examples
    --------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "cells.csv")
    >>> write_cells(f, pd.DataFrame({"cell": ["a"], "guide": ["g"], "target": ["ntc"]}))
    >>> read_cells(f).shape
    (1, 3)
    """
    path = Path(path)
    cells.to_csv(path, sep=_sep(path) or "\t", index=False)
