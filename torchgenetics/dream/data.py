"""Inputs of a bayesDREAM screen, checked: counts, modalities, cell table, guides.

:func:`prepare_data` turns user inputs into a :class:`DreamData`: the primary
count matrix (cells x features, dense, scipy sparse, a DataFrame or an
AnnData-like object with ``X``, ``obs_names``, ``var_names``), optional extra
:class:`Modality` blocks (binomial splicing, multinomial categories, normal or
Student-t continuous features), the cell table (guide, target, size factor,
technical group) and, for high-MOI designs, a cells x guides assignment matrix.
Every problem raises :class:`~torchgenetics.errors.InputError` naming the cell,
feature or column and what was expected.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import InputError, SampleError

__all__ = [
    "FAMILIES",
    "COLUMNS",
    "Modality",
    "DreamData",
    "as_matrix",
    "make_modality",
    "prepare_data",
]

FAMILIES = ("negbinom", "normal", "studentt", "binomial", "multinomial")
# Default column names of the cell table (override with ``columns=``).
COLUMNS = {
    "cell": "cell",
    "guide": "guide",
    "target": "target",
    "size_factor": "size_factor",
    "group": "group",
}
_COUNT_FAMILIES = ("negbinom", "binomial", "multinomial")


def _names(values, n: int, prefix: str) -> list[str]:
    if values is None:
        return [f"{prefix}{i}" for i in range(n)]
    out = [str(v) for v in values]
    if len(out) != n:
        raise InputError(f"{len(out)} {prefix} names given for {n} {prefix}s")
    return out


def as_matrix(values, cell_ids=None, features=None, what: str = "counts"):
    """Cells x features matrix, cell ids and feature names from any supported input.

    Parameters
    ----------
    values : numpy.ndarray, scipy.sparse matrix, pandas.DataFrame, torch.Tensor or AnnData-like
        A DataFrame gives cell ids (index) and features (columns); an AnnData-like
        object (``X``, ``obs_names``, ``var_names``) likewise.
    cell_ids, features : sequence of str, optional
        Names for plain arrays (cells default to ``cell0, cell1, ...``).
    what : str
        Name used in error messages.

    Returns
    -------
    matrix : numpy.ndarray or scipy.sparse.csr_matrix
        float64 values.
    cells : list of str
    features : list of str

    Examples
    --------
    >>> m, cells, feats = as_matrix(pd.DataFrame({"g1": [1, 2]}, index=["a", "b"]))
    >>> cells, feats, m.shape
    (['a', 'b'], ['g1'], (2, 1))
    """
    if isinstance(values, pd.DataFrame):
        cells = [str(c) for c in values.index] if cell_ids is None else cell_ids
        feats = [str(c) for c in values.columns] if features is None else features
        try:
            matrix = values.to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"{what}: every column must be numeric") from None
    elif hasattr(values, "X") and hasattr(values, "obs_names") and hasattr(values, "var_names"):
        cells = [str(c) for c in values.obs_names] if cell_ids is None else cell_ids
        feats = [str(c) for c in values.var_names] if features is None else features
        matrix = values.X
    else:
        matrix, cells, feats = values, cell_ids, features
    if sp.issparse(matrix):
        matrix = sp.csr_matrix(matrix, dtype=np.float64)
    else:
        if hasattr(matrix, "detach"):
            matrix = matrix.detach().cpu().numpy()
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.ndim != 2:
            raise InputError(f"{what} must be a cells x features matrix, got shape {matrix.shape}")
    cells = _names(cells, matrix.shape[0], "cell")
    if feats is None:
        raise InputError(f"{what}: feature names are needed for a plain array (pass features=)")
    feats = _names(feats, matrix.shape[1], "feature")
    _check_unique(cells, f"{what} cell ids")
    _check_unique(feats, f"{what} feature names")
    return matrix, cells, feats


def _check_unique(names, what: str) -> None:
    index = pd.Index(names)
    if index.has_duplicates:
        dup = index[index.duplicated()].unique()[:5].tolist()
        raise InputError(f"{what} must be unique; repeated: {dup}")


def _first_bad(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


@dataclass
class Modality:
    """One block of features measured in the same cells, with its likelihood family.

    Parameters
    ----------
    name : str
        Name (e.g. ``"counts"``, ``"splicing"``).
    family : {"negbinom", "normal", "studentt", "binomial", "multinomial"}
        Observation model.
    values : numpy.ndarray or scipy.sparse.csr_matrix
        cells x features (cells x features x categories for multinomial).
    features : list of str
        Feature names.
    cells : list of str
        Cell ids, in row order.
    denominator : numpy.ndarray, optional
        Binomial totals, same shape as ``values``.
    categories : list of str, optional
        Multinomial category names.

    Examples
    --------
    >>> m = Modality("psi", "binomial", np.array([[1.0], [2.0]]), ["j1"], ["a", "b"],
    ...              denominator=np.array([[3.0], [4.0]]))
    >>> m.n_cells, m.n_features
    (2, 1)
    """

    name: str
    family: str
    values: object
    features: list
    cells: list
    denominator: np.ndarray | None = None
    categories: list | None = None

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise InputError(f"modality {self.name!r}: family must be one of {FAMILIES}, got {self.family!r}")
        n, f = self.values.shape[:2]
        if len(self.cells) != n or len(self.features) != f:
            raise InputError(
                f"modality {self.name!r}: values are {n} x {f} but {len(self.cells)} cell ids and "
                f"{len(self.features)} feature names were given"
            )
        if self.family == "multinomial":
            if sp.issparse(self.values) or np.ndim(self.values) != 3 or self.values.shape[2] < 2:
                raise InputError(
                    f"modality {self.name!r}: multinomial values must be a dense cells x features x "
                    f"categories array with at least 2 categories, got shape {np.shape(self.values)}"
                )
            k = self.values.shape[2]
            self.categories = _names(self.categories, k, "category")
        elif np.ndim(self.values) != 2:
            raise InputError(f"modality {self.name!r}: values must be cells x features, got {np.shape(self.values)}")
        self._check_values()

    def _check_values(self) -> None:
        data = self.values.data if sp.issparse(self.values) else np.asarray(self.values)
        if not np.all(np.isfinite(data)):
            bad = self._where(~np.isfinite(self._dense()))
            raise InputError(f"modality {self.name!r}: non-finite value at {bad}; values must be finite")
        if self.family in _COUNT_FAMILIES and data.size and data.min() < 0:
            bad = self._where(self._dense() < 0)
            raise InputError(f"modality {self.name!r}: negative count at {bad}; counts must be >= 0")
        if self.family == "binomial":
            if self.denominator is None:
                raise InputError(f"modality {self.name!r}: binomial features need a denominator matrix")
            den = np.asarray(self.denominator.toarray() if sp.issparse(self.denominator) else self.denominator,
                             dtype=np.float64)
            if den.shape != self.values.shape:
                raise InputError(
                    f"modality {self.name!r}: denominator shape {den.shape} differs from values {self.values.shape}"
                )
            if not np.all(np.isfinite(den)) or den.min() < 0:
                raise InputError(f"modality {self.name!r}: denominators must be finite and >= 0")
            short = den < self._dense()
            if short.any():
                i, j = _first_bad(short)
                raise InputError(
                    f"modality {self.name!r}: denominator smaller than the count for cell "
                    f"{self.cells[i]!r}, feature {self.features[j]!r} ({den[i, j]:g} < {self._dense()[i, j]:g}); "
                    f"{int(short.sum())} entries in all. Denominators must be >= counts"
                )
            self.denominator = den

    def _dense(self) -> np.ndarray:
        return self.values.toarray() if sp.issparse(self.values) else np.asarray(self.values)

    def _where(self, mask: np.ndarray) -> str:
        idx = _first_bad(mask)
        return f"cell {self.cells[idx[0]]!r}, feature {self.features[idx[1]]!r}"

    @property
    def n_cells(self) -> int:
        """Number of cells (rows)."""
        return self.values.shape[0]

    @property
    def n_features(self) -> int:
        """Number of features (columns)."""
        return self.values.shape[1]

    def dense(self, rows=None, columns=None) -> np.ndarray:
        """Values as a dense float64 array, optionally a subset of rows and columns.

        Parameters
        ----------
        rows, columns : array-like of int, optional
            Positions to keep.

        Returns
        -------
        numpy.ndarray

        Examples
        --------
        >>> Modality("x", "normal", np.eye(2), ["f", "g"], ["a", "b"]).dense(columns=[1]).ravel().tolist()
        [0.0, 1.0]
        """
        v = self.values
        if rows is not None:
            v = v[np.asarray(rows)]
        if columns is not None:
            v = v[:, np.asarray(columns)]
        return np.asarray(v.toarray() if sp.issparse(v) else v, dtype=np.float64)

    def subset_cells(self, rows: np.ndarray) -> "Modality":
        """The same modality restricted to some cells, in the given order.

        Examples
        --------
        >>> Modality("x", "normal", np.eye(2), ["f", "g"], ["a", "b"]).subset_cells(np.array([1])).cells
        ['b']
        """
        return Modality(
            self.name,
            self.family,
            self.values[rows],
            list(self.features),
            [self.cells[i] for i in rows],
            None if self.denominator is None else self.denominator[rows],
            None if self.categories is None else list(self.categories),
        )


def make_modality(name: str, family: str, values, *, features=None, cell_ids=None, denominator=None,
                  categories=None) -> Modality:
    """Build a :class:`Modality` from a DataFrame, sparse or dense matrix or 3-D array.

    Parameters
    ----------
    name, family : str
        As in :class:`Modality`.
    values : array-like
        cells x features (or cells x features x categories for multinomial).
    features, cell_ids : sequence of str, optional
        Names for plain arrays.
    denominator : array-like, optional
        Binomial totals (DataFrames are aligned to ``values``).
    categories : sequence of str, optional
        Multinomial category names.

    Returns
    -------
    Modality

    Examples
    --------
    >>> m = make_modality("z", "normal", np.zeros((3, 2)), features=["a", "b"])
    >>> m.cells
    ['cell0', 'cell1', 'cell2']
    """
    if family == "multinomial":
        array = np.asarray(values, dtype=np.float64)
        if array.ndim != 3:
            raise InputError(f"modality {name!r}: multinomial values must be cells x features x categories")
        if features is None:
            raise InputError(f"modality {name!r}: feature names are needed (pass features=)")
        cells = _names(cell_ids, array.shape[0], "cell")
        return Modality(name, family, array, _names(features, array.shape[1], "feature"), cells,
                        categories=None if categories is None else list(categories))
    matrix, cells, feats = as_matrix(values, cell_ids, features, what=f"modality {name!r}")
    den = None
    if denominator is not None:
        if isinstance(denominator, pd.DataFrame):
            denominator = denominator.reindex(index=cells, columns=feats)
            if denominator.isna().to_numpy().any():
                raise InputError(f"modality {name!r}: the denominator table lacks some cells or features of the values")
        den = denominator.toarray() if sp.issparse(denominator) else np.asarray(denominator, dtype=np.float64)
    return Modality(name, family, matrix, feats, cells, denominator=den)


@dataclass
class DreamData:
    """A checked screen: modalities, cells, guides, technical groups and the cis feature.

    Build it with :func:`prepare_data`.

    Attributes
    ----------
    cells : pandas.DataFrame
        Indexed by cell id: ``target``, ``size_factor``, ``group``, ``group_code``,
        ``is_ntc``, ``n_guides`` and (low MOI) ``guide``, ``guide_code``.
    guides : pandas.DataFrame
        Indexed by guide name: ``target``, ``is_ntc``, ``n_cells``.
    assignment : scipy.sparse.csr_matrix
        cells x guides 0/1 matrix (one-hot for low MOI).
    high_moi : bool
        Whether cells may carry several guides.
    groups : list of str
        Technical groups; ``groups[0]`` is the baseline.
    modalities : dict of str to Modality
        The primary modality is ``"counts"`` (negative binomial, holds the cis feature).
    cis_gene : str
        The cis feature.
    report : dict
        What was filtered or derived (dropped cell-table rows, size-factor source).

    Examples
    --------
    >>> from torchgenetics.dream.simulate import simulate_screen
    >>> sim = simulate_screen(n_cells=60, n_features=3, seed=1)
    >>> data = prepare_data(sim.counts, sim.cells, cis_gene=sim.cis_gene)
    >>> data.n_cells, data.trans_features()[:2]
    (60, ['gene0', 'gene1'])
    """

    cells: pd.DataFrame
    guides: pd.DataFrame
    assignment: sp.csr_matrix
    high_moi: bool
    groups: list
    modalities: dict
    cis_gene: str
    report: dict = field(default_factory=dict)

    primary = "counts"

    @property
    def n_cells(self) -> int:
        """Number of cells."""
        return len(self.cells)

    @property
    def n_guides(self) -> int:
        """Number of guides."""
        return len(self.guides)

    @property
    def n_groups(self) -> int:
        """Number of technical groups."""
        return len(self.groups)

    @property
    def ntc_mask(self) -> np.ndarray:
        """Boolean mask of non-targeting-control cells."""
        return self.cells["is_ntc"].to_numpy(dtype=bool, copy=True)

    @property
    def group_code(self) -> np.ndarray:
        """Technical group of each cell (0 = baseline)."""
        return self.cells["group_code"].to_numpy(dtype=np.int64, copy=True)

    @property
    def size_factor(self) -> np.ndarray:
        """Size factor of each cell."""
        return self.cells["size_factor"].to_numpy(dtype=np.float64, copy=True)

    def modality(self, name: str) -> Modality:
        """The named modality, with a clear error for an unknown name.

        Examples
        --------
        >>> from torchgenetics.dream.simulate import simulate_screen
        >>> sim = simulate_screen(n_cells=40, n_features=2, seed=0)
        >>> prepare_data(sim.counts, sim.cells, cis_gene=sim.cis_gene).modality("counts").family
        'negbinom'
        """
        if name not in self.modalities:
            raise InputError(f"unknown modality {name!r}; available: {sorted(self.modalities)}")
        return self.modalities[name]

    @property
    def cis_index(self) -> int:
        """Column of the cis feature in the primary modality."""
        return self.modalities[self.primary].features.index(self.cis_gene)

    def cis_counts(self) -> np.ndarray:
        """Counts of the cis feature in every cell.

        Examples
        --------
        >>> from torchgenetics.dream.simulate import simulate_screen
        >>> sim = simulate_screen(n_cells=40, n_features=2, seed=0)
        >>> prepare_data(sim.counts, sim.cells, cis_gene=sim.cis_gene).cis_counts().shape
        (40,)
        """
        return self.modalities[self.primary].dense(columns=[self.cis_index])[:, 0]

    def trans_index(self, name: str | None = None) -> np.ndarray:
        """Columns of a modality that are trans features (all but the cis feature in the primary).

        Examples
        --------
        >>> from torchgenetics.dream.simulate import simulate_screen
        >>> sim = simulate_screen(n_cells=40, n_features=2, seed=0)
        >>> prepare_data(sim.counts, sim.cells, cis_gene=sim.cis_gene).trans_index().tolist()
        [1, 2]
        """
        name = self.primary if name is None else name
        mod = self.modality(name)
        index = np.arange(mod.n_features)
        if name == self.primary:
            index = index[index != self.cis_index]
        return index

    def trans_features(self, name: str | None = None) -> list:
        """Names of the trans features of a modality.

        Examples
        --------
        >>> from torchgenetics.dream.simulate import simulate_screen
        >>> sim = simulate_screen(n_cells=40, n_features=2, seed=0)
        >>> prepare_data(sim.counts, sim.cells, cis_gene=sim.cis_gene).trans_features()
        ['gene0', 'gene1']
        """
        mod = self.modality(self.primary if name is None else name)
        return [mod.features[i] for i in self.trans_index(name)]

    def guide_code(self) -> np.ndarray:
        """Guide of each cell (low MOI only).

        Examples
        --------
        >>> from torchgenetics.dream.simulate import simulate_screen
        >>> sim = simulate_screen(n_cells=40, n_features=2, seed=0)
        >>> prepare_data(sim.counts, sim.cells, cis_gene=sim.cis_gene).guide_code().shape
        (40,)
        """
        if self.high_moi:
            raise InputError("cells carry several guides (high MOI): use the assignment matrix")
        return self.cells["guide_code"].to_numpy(dtype=np.int64, copy=True)


def _cell_table(cells: pd.DataFrame, columns: dict) -> pd.DataFrame:
    if not isinstance(cells, pd.DataFrame):
        raise InputError(f"the cell table must be a pandas DataFrame, got {type(cells).__name__}")
    table = cells.copy()
    col = columns["cell"]
    if col in table.columns:
        table.index = table[col].astype(str)
    else:
        table.index = table.index.astype(str)
    table.index.name = "cell"
    if table.index.has_duplicates:
        dup = table.index[table.index.duplicated()].unique()[:5].tolist()
        raise SampleError(f"the cell table repeats cell ids: {dup}")
    return table


def _align_cells(table: pd.DataFrame, cells: list, report: dict) -> pd.DataFrame:
    missing = pd.Index(cells).difference(table.index)
    if len(missing):
        raise SampleError(
            f"{len(missing)} cell(s) of the counts are not in the cell table, e.g. {missing[:5].tolist()}; "
            "every counted cell needs a row (guide, target)"
        )
    report["cells_in_table_not_counted"] = int(len(table.index.difference(pd.Index(cells))))
    return table.loc[list(cells)]


def _is_ntc(values, ntc_label: str) -> np.ndarray:
    return np.array([str(v).strip().lower() == ntc_label.lower() for v in values], dtype=bool)


def _low_moi_guides(table: pd.DataFrame, columns: dict, ntc_label: str):
    gcol, tcol = columns["guide"], columns["target"]
    for col in (gcol, tcol):
        if col not in table.columns:
            raise InputError(
                f"the cell table has no {col!r} column; expected columns {gcol!r} and {tcol!r} "
                f"(or pass guide_assignment= for high-MOI designs); found {list(table.columns)}"
            )
    guide = table[gcol]
    empty = guide.isna() | (guide.astype(str).str.strip() == "")
    if empty.any():
        bad = table.index[empty.to_numpy()][:5].tolist()
        raise InputError(
            f"{int(empty.sum())} cell(s) have no guide, e.g. {bad}; every cell needs a guide "
            f"(column {gcol!r}); remove unassigned cells first"
        )
    guide = guide.astype(str)
    target = table[tcol].astype(str)
    per_guide = pd.DataFrame({"guide": guide.to_numpy(), "target": target.to_numpy()}).drop_duplicates()
    clash = per_guide["guide"].duplicated(keep=False)
    if clash.any():
        g = per_guide.loc[clash, "guide"].iloc[0]
        raise InputError(f"guide {g!r} is listed with several targets in the cell table: "
                         f"{per_guide.loc[per_guide.guide == g, 'target'].tolist()}")
    names = sorted(per_guide["guide"])
    code = pd.Categorical(guide, categories=names).codes.astype(np.int64)
    guides = per_guide.set_index("guide").loc[names]
    n = len(table)
    assignment = sp.csr_matrix((np.ones(n), (np.arange(n), code)), shape=(n, len(names)))
    return guides, assignment, code


def _high_moi_guides(table, assignment, guides, ntc_label, columns):
    if guides is None:
        raise InputError("a guide assignment matrix needs a guide table (guides=) with columns 'guide' and 'target'")
    if not isinstance(guides, pd.DataFrame) or not {"guide", "target"} <= set(guides.columns):
        raise InputError("the guide table must be a DataFrame with columns 'guide' and 'target'")
    gtab = guides.assign(guide=guides["guide"].astype(str), target=guides["target"].astype(str))
    _check_unique(gtab["guide"].tolist(), "guide names")
    if isinstance(assignment, pd.DataFrame):
        assignment = assignment.reindex(index=table.index, columns=gtab["guide"].tolist())
        if assignment.isna().to_numpy().any():
            raise InputError("the assignment table lacks some cells or guides of the cell/guide tables")
        assignment = assignment.to_numpy(dtype=np.float64)
    matrix = sp.csr_matrix(assignment, dtype=np.float64)
    if matrix.shape != (len(table), len(gtab)):
        raise InputError(
            f"guide assignment is {matrix.shape[0]} x {matrix.shape[1]} but there are {len(table)} cells "
            f"and {len(gtab)} guides"
        )
    if matrix.data.size and (matrix.data < 0).any():
        raise InputError("guide assignment entries must be 0 or 1")
    matrix.data = (matrix.data > 0).astype(np.float64)
    matrix.eliminate_zeros()
    none = np.asarray(matrix.sum(axis=1)).ravel() == 0
    if none.any():
        bad = table.index[none][:5].tolist()
        raise InputError(
            f"{int(none.sum())} cell(s) have no guide in the assignment matrix, e.g. {bad}; "
            "every cell needs at least one guide"
        )
    return gtab.set_index("guide")[["target"]], matrix


def _size_factors(table: pd.DataFrame, primary: Modality, column: str, report: dict) -> np.ndarray:
    if column in table.columns:
        sf = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(sf) | (sf <= 0)
        if bad.any():
            cell = table.index[bad][0]
            raise InputError(f"size factor of cell {cell!r} is {table[column].iloc[int(np.argmax(bad))]!r}; "
                             "size factors must be positive numbers")
        report["size_factor_source"] = f"cell table column {column!r}"
        return sf
    totals = np.asarray(primary.values.sum(axis=1)).ravel()
    if (totals <= 0).any():
        cell = table.index[totals <= 0][0]
        raise InputError(f"cell {cell!r} has no counts, so no size factor can be derived; remove it "
                         f"or give a {column!r} column")
    report["size_factor_source"] = "library size / median library size"
    return totals / np.median(totals)


def prepare_data(
    counts,
    cells: pd.DataFrame,
    cis_gene: str,
    *,
    features=None,
    cell_ids=None,
    modalities=None,
    guide_assignment=None,
    guides: pd.DataFrame | None = None,
    ntc_label: str = "ntc",
    baseline_group: str | None = None,
    columns: dict | None = None,
) -> DreamData:
    """Check and assemble the inputs of a screen.

    Parameters
    ----------
    counts : array-like, scipy sparse, DataFrame or AnnData-like
        cells x features counts of the primary modality (negative binomial); must
        contain ``cis_gene``.
    cells : pandas.DataFrame
        Cell table: a cell id column (``columns["cell"]``, else the index), ``guide``
        (low MOI), ``target`` (``ntc_label`` for non-targeting guides), optional
        ``size_factor`` (default library size / median) and ``group`` (technical group).
    cis_gene : str
        The perturbed cis feature (gene or peak).
    features, cell_ids : sequence of str, optional
        Names for a plain ``counts`` array.
    modalities : dict or list of Modality, optional
        Extra modalities over the same cells (any cell order: aligned by id).
    guide_assignment : array-like, scipy sparse or DataFrame, optional
        High-MOI cells x guides 0/1 matrix (rows in cell-table order for arrays).
    guides : pandas.DataFrame, optional
        Guide table (``guide``, ``target``) for ``guide_assignment``.
    ntc_label : str, default "ntc"
        Target label of non-targeting guides (case-insensitive).
    baseline_group : str, optional
        Technical group whose effects are fixed (default: first in sorted order).
    columns : dict, optional
        Column-name overrides, keys of :data:`COLUMNS`.

    Returns
    -------
    DreamData

    Raises
    ------
    InputError
        Unknown cis gene, cells without a guide, negative counts, denominators
        smaller than counts, missing columns, bad size factors.
    SampleError
        Counted cells missing from the cell table.

    Examples
    --------
    >>> from torchgenetics.dream.simulate import simulate_screen
    >>> sim = simulate_screen(n_cells=50, n_features=2, seed=0)
    >>> d = prepare_data(sim.counts, sim.cells, cis_gene=sim.cis_gene)
    >>> d.n_guides > 1, d.groups[0]
    (True, 'line0')
    """
    columns = {**COLUMNS, **(columns or {})}
    unknown = set(columns) - set(COLUMNS)
    if unknown:
        raise InputError(f"unknown column role(s) {sorted(unknown)}; known: {sorted(COLUMNS)}")
    matrix, cell_names, feats = as_matrix(counts, cell_ids, features, what="counts")
    table = _cell_table(cells, columns)
    if cell_ids is None and not isinstance(counts, pd.DataFrame) and not hasattr(counts, "obs_names"):
        if len(table) != matrix.shape[0]:
            raise SampleError(f"counts have {matrix.shape[0]} rows but the cell table has {len(table)} cells; "
                              "pass cell_ids= or a DataFrame indexed by cell id")
        cell_names = list(table.index)
    primary = Modality(DreamData.primary, "negbinom", matrix, feats, cell_names)
    if cis_gene not in feats:
        close = difflib.get_close_matches(str(cis_gene), feats, n=3)
        hint = f"; did you mean {close}?" if close else ""
        raise InputError(f"cis gene {cis_gene!r} is not a feature of the counts ({len(feats)} features){hint}")
    report: dict = {}
    table = _align_cells(table, cell_names, report)
    tcol = columns["target"]
    if guide_assignment is None:
        gtab, assignment, code = _low_moi_guides(table, columns, ntc_label)
        table = table.assign(guide_code=code)
        high_moi = False
    else:
        gtab, assignment = _high_moi_guides(table, guide_assignment, guides, ntc_label, columns)
        high_moi = True
    gtab = gtab.assign(is_ntc=_is_ntc(gtab["target"], ntc_label),
                       n_cells=np.asarray(assignment.sum(axis=0)).ravel().astype(np.int64))
    n_guides = np.asarray(assignment.sum(axis=1)).ravel().astype(np.int64)
    ntc_guides = gtab["is_ntc"].to_numpy()
    is_ntc = np.asarray(assignment @ (~ntc_guides).astype(np.float64)).ravel() == 0
    if high_moi:
        target = ["ntc" if n else "+".join(sorted({gtab["target"].iloc[j] for j in assignment[i].indices}))
                  for i, n in enumerate(is_ntc)]
    else:
        target = table[tcol].astype(str).to_numpy()
    sf = _size_factors(table, primary, columns["size_factor"], report)
    gcol = columns["group"]
    group = table[gcol].astype(str).to_numpy() if gcol in table.columns else np.array(["all"] * len(table))
    names = sorted(set(group))
    if baseline_group is not None:
        if str(baseline_group) not in names:
            raise InputError(f"baseline group {baseline_group!r} is not a technical group; groups: {names}")
        names.remove(str(baseline_group))
        names.insert(0, str(baseline_group))
    group_code = pd.Categorical(group, categories=names).codes.astype(np.int64)
    table = table.assign(target=target, size_factor=sf, group=group, group_code=group_code,
                         is_ntc=is_ntc, n_guides=n_guides)
    if not high_moi:
        table = table.assign(guide=table[columns["guide"]].astype(str))
    mods = {DreamData.primary: primary}
    extra = modalities.values() if isinstance(modalities, dict) else (modalities or [])
    for mod in extra:
        if not isinstance(mod, Modality):
            raise InputError(f"extra modalities must be Modality objects (see make_modality), got {type(mod).__name__}")
        if mod.name in mods:
            raise InputError(f"modality name {mod.name!r} is used twice")
        pos = pd.Index(mod.cells).get_indexer(cell_names)
        if (pos < 0).any():
            missing = [c for c, p in zip(cell_names, pos, strict=True) if p < 0][:5]
            raise SampleError(f"modality {mod.name!r} lacks {int((pos < 0).sum())} cell(s) of the counts, e.g. {missing}")
        mods[mod.name] = mod if np.array_equal(pos, np.arange(len(pos))) and len(mod.cells) == len(pos) \
            else mod.subset_cells(pos)
    return DreamData(
        cells=table, guides=gtab, assignment=assignment.tocsr(), high_moi=high_moi, groups=names,
        modalities=mods, cis_gene=str(cis_gene), report=report,
    )
