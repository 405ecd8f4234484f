"""Variance-component specifications: which variants make up each GRM component.

Two file formats, compatible with GPU_REML's:

**JSON** ::

    {"components": [
        {"name": "maf_0_01", "variant_indices": [0, 4, 9], "annotation": {"maf_bin": "0-1%"}},
        {"name": "coding",   "variant_ids": ["rs1", "rs7"]}
    ]}

Each component gives ``variant_indices`` (0-based positions in the genotype
file's variant order) or ``variant_ids`` (looked up in the ``id`` column of the
variant table), an optional ``name`` (default ``component_000``, ...) and an
optional ``annotation`` object. A bare list of components is accepted too.

**NPZ** (``numpy.savez``): one 1-D array per component, in file order, holding
0-based variant indices (integer arrays) or variant ids (string arrays). The
arrays are named ``arr_0``, ``arr_1``, ... (ordered by number) or by any other
non-reserved key. Reserved optional keys:

* ``component_names``: string array, one name per component (default: the
  array keys, or ``component_000``, ... for ``arr_<i>`` keys);
* ``component_annotations_json``: string array, one JSON object or ``null`` per component.

:func:`write_components` writes ``arr_<i>`` + both reserved keys.
Components are sets: indices are returned sorted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import ComponentSpecError, FileFormatError, InputError, MissingFileError

__all__ = ["ComponentSpec", "read_components", "write_components"]

_RESERVED = ("component_names", "component_annotations_json", "component_provenance_json")
_ARR = re.compile(r"arr_(\d+)")


def _default_name(i: int) -> str:
    return f"component_{i:03d}"


def _variant_table(variants) -> tuple[int | None, pd.DataFrame | None]:
    """(count, table) from a variant DataFrame, a Genotypes-like object, a count or None."""
    if variants is None:
        return None, None
    if hasattr(variants, "variants") and isinstance(variants.variants, pd.DataFrame):
        variants = variants.variants
    if isinstance(variants, pd.DataFrame):
        return len(variants), variants
    if isinstance(variants, (int, np.integer)) and not isinstance(variants, bool):
        if variants < 0:
            raise InputError(f"number of variants must be >= 0, got {variants}")
        return int(variants), None
    raise InputError(
        "variants must be a variant table (DataFrame with an 'id' column), a Genotypes, "
        f"or the number of variants; got {type(variants).__name__}"
    )


@dataclass
class ComponentSpec:
    """A list of named variant sets, one per variance component.

    Parameters
    ----------
    names : list of str
        Component names (unique).
    indices : list of numpy.ndarray
        0-based variant positions of each component (int64, sorted on validation).
    annotations : list of dict or None, optional
        Free metadata per component (default ``None`` for each).
    n_variants : int, optional
        Number of variants the indices refer to, when known (set by validation).

    Examples
    --------
    >>> spec = ComponentSpec(["a", "b"], [[0, 2], [1]])
    >>> spec.sizes
    [2, 1]
    >>> spec.labels(4).tolist()
    [0, 1, 0, -1]
    """

    names: list[str]
    indices: list[np.ndarray]
    annotations: list[dict | None] = field(default=None)
    n_variants: int | None = None

    def __post_init__(self):
        self.names = [str(n) for n in self.names]
        if len(self.indices) != len(self.names):
            raise ComponentSpecError(
                f"{len(self.names)} component names but {len(self.indices)} index arrays"
            )
        self.indices = [_as_index_array(ix, name) for ix, name in zip(self.indices, self.names, strict=True)]
        if self.annotations is None:
            self.annotations = [None] * len(self.names)
        self.annotations = list(self.annotations)
        if len(self.annotations) != len(self.names):
            raise ComponentSpecError(
                f"{len(self.names)} components but {len(self.annotations)} annotations"
            )
        for name, ann in zip(self.names, self.annotations, strict=True):
            if ann is not None and not isinstance(ann, dict):
                raise ComponentSpecError(f"annotation of component {name!r} must be a dict or None")

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}: {s}" for n, s in zip(self.names[:6], self.sizes[:6], strict=True))
        more = ", ..." if len(self) > 6 else ""
        return f"ComponentSpec({len(self)} components; {parts}{more})"

    @property
    def sizes(self) -> list[int]:
        """Number of variants in each component."""
        return [int(ix.size) for ix in self.indices]

    def __getitem__(self, name: str) -> np.ndarray:
        """Indices of the component called ``name``."""
        try:
            return self.indices[self.names.index(name)]
        except ValueError:
            raise KeyError(f"no component named {name!r}; components: {self.names}") from None

    def validate(self, n_variants: int | None = None, allow_overlap: bool = False, source=None) -> "ComponentSpec":
        """Check the spec and return it with sorted indices.

        Parameters
        ----------
        n_variants : int, optional
            Number of variants; indices must lie in ``[0, n_variants)``.
            Defaults to ``self.n_variants``.
        allow_overlap : bool, default False
            Whether a variant may belong to several components (GPU_REML
            partitions, so overlap is an error by default).
        source : str, optional
            File name used in error messages.

        Returns
        -------
        ComponentSpec
            ``self``, indices sorted, ``n_variants`` set.

        Raises
        ------
        ComponentSpecError
            On no components, duplicate names, an empty component, a repeated
            index, an index out of range, or overlap (unless allowed).

        Examples
        --------
        >>> ComponentSpec(["a"], [[3, 1]]).validate(4).indices[0].tolist()
        [1, 3]
        """
        where = f"{source}: " if source else ""
        n_variants = self.n_variants if n_variants is None else int(n_variants)
        if len(self) == 0:
            raise ComponentSpecError(f"{where}the component spec has no components")
        seen: dict[str, int] = {}
        for i, name in enumerate(self.names):
            if name in seen:
                raise ComponentSpecError(
                    f"{where}component name {name!r} is used twice (components {seen[name]} and {i}); names must be unique"
                )
            seen[name] = i
        for name, ix in zip(self.names, self.indices, strict=True):
            if ix.size == 0:
                raise ComponentSpecError(f"{where}component {name!r} has no variants")
            if n_variants is not None:
                bad = ix[(ix < 0) | (ix >= n_variants)]
                if bad.size:
                    raise ComponentSpecError(
                        f"{where}component {name!r} has variant index {int(bad[0])} out of range: valid indices "
                        f"are 0..{n_variants - 1} ({n_variants} variants)"
                        + (f"; {bad.size} indices are out of range" if bad.size > 1 else "")
                    )
            elif (ix < 0).any():
                raise ComponentSpecError(
                    f"{where}component {name!r} has negative variant index {int(ix[ix < 0][0])}"
                )
            ix.sort()
            repeated = ix[1:][ix[1:] == ix[:-1]]
            if repeated.size:
                raise ComponentSpecError(
                    f"{where}component {name!r} lists variant index {int(repeated[0])} more than once"
                )
        if not allow_overlap and len(self) > 1:
            self._check_overlap(where)
        self.n_variants = n_variants
        return self

    def _check_overlap(self, where: str) -> None:
        all_ix = np.concatenate(self.indices)
        owner = np.repeat(np.arange(len(self)), self.sizes)
        order = np.argsort(all_ix, kind="stable")
        sorted_ix = all_ix[order]
        dup = np.flatnonzero(sorted_ix[1:] == sorted_ix[:-1])
        if dup.size:
            k = dup[0]
            a, b = owner[order[k]], owner[order[k + 1]]
            raise ComponentSpecError(
                f"{where}components {self.names[a]!r} and {self.names[b]!r} overlap: variant index "
                f"{int(sorted_ix[k])} is in both ({dup.size} shared memberships in all); components must "
                "partition the variants, or pass allow_overlap=True"
            )

    def labels(self, n_variants: int | None = None) -> np.ndarray:
        """Component number of each variant, ``-1`` where a variant is in none.

        Parameters
        ----------
        n_variants : int, optional
            Length of the result (default ``self.n_variants``, else max index + 1).

        Returns
        -------
        numpy.ndarray
            int64 array of length ``n_variants``. With overlap, the last component wins.

        Examples
        --------
        >>> ComponentSpec(["a", "b"], [[1], [0]]).labels(3).tolist()
        [1, 0, -1]
        """
        if n_variants is None:
            n_variants = self.n_variants
        if n_variants is None:
            n_variants = max((int(ix.max()) + 1 for ix in self.indices if ix.size), default=0)
        out = np.full(int(n_variants), -1, dtype=np.int64)
        for k, ix in enumerate(self.indices):
            out[ix] = k
        return out

    def unassigned(self, n_variants: int | None = None) -> np.ndarray:
        """Variant indices that belong to no component.

        Examples
        --------
        >>> ComponentSpec(["a"], [[0, 2]]).unassigned(4).tolist()
        [1, 3]
        """
        return np.flatnonzero(self.labels(n_variants) < 0)

    def merged(self, names: Sequence[str], into: str = "background") -> "ComponentSpec":
        """A new spec where the components ``names`` are merged into one called ``into``.

        The merged component comes last; the others keep their order.

        Examples
        --------
        >>> s = ComponentSpec(["a", "b", "c"], [[0], [1], [2]]).merged(["a", "c"], into="rest")
        >>> s.names, s["rest"].tolist()
        (['b', 'rest'], [0, 2])
        """
        names = list(names)
        unknown = [n for n in names if n not in self.names]
        if unknown:
            raise ComponentSpecError(f"cannot merge unknown components {unknown}; components: {self.names}")
        keep = [i for i, n in enumerate(self.names) if n not in names]
        if into in (self.names[i] for i in keep):
            raise ComponentSpecError(f"merged component name {into!r} is already used by another component")
        merged_ix = np.unique(np.concatenate([self[n] for n in names])) if names else np.zeros(0, np.int64)
        return ComponentSpec(
            [self.names[i] for i in keep] + [into],
            [self.indices[i].copy() for i in keep] + [merged_ix],
            [self.annotations[i] for i in keep] + [{"merged_from": names}],
            n_variants=self.n_variants,
        )

    def to_dict(self) -> dict:
        """The JSON form: ``{"components": [{"name", "variant_indices", "annotation"}]}``.

        Examples
        --------
        >>> ComponentSpec(["a"], [[0, 1]]).to_dict()
        {'components': [{'name': 'a', 'variant_indices': [0, 1]}]}
        """
        comps = []
        for name, ix, ann in zip(self.names, self.indices, self.annotations, strict=True):
            item: dict[str, Any] = {"name": name, "variant_indices": [int(v) for v in ix]}
            if ann is not None:
                item["annotation"] = ann
            comps.append(item)
        return {"components": comps}

    @classmethod
    def from_dict(cls, components: dict, n_variants: int | None = None, allow_overlap: bool = False) -> "ComponentSpec":
        """Build and validate a spec from ``{name: indices}``.

        Examples
        --------
        >>> ComponentSpec.from_dict({"chr1": [0, 1], "chr2": [2]}, n_variants=3).names
        ['chr1', 'chr2']
        """
        spec = cls(list(components.keys()), [np.asarray(v) for v in components.values()])
        return spec.validate(n_variants, allow_overlap=allow_overlap)

    @classmethod
    def from_labels(cls, labels, prefix: str = "", annotation_key: str | None = None, skip=()) -> "ComponentSpec":
        """One component per distinct label (sorted), e.g. chromosome or annotation class.

        Parameters
        ----------
        labels : array-like
            One label per variant.
        prefix : str, optional
            Prepended to each label to make the component name.
        annotation_key : str, optional
            If given, each component's annotation is ``{annotation_key: label}``.
        skip : collection, optional
            Labels that form no component (their variants stay unassigned).

        Examples
        --------
        >>> ComponentSpec.from_labels(["b", "a", "b"]).names
        ['a', 'b']
        """
        labels = pd.Series(np.asarray(labels))
        missing = labels.isna()
        codes, uniques = pd.factorize(labels[~missing], sort=True)
        rows = np.flatnonzero(~missing.to_numpy())
        skip = set(skip)
        names, indices, annotations = [], [], []
        for k, level in enumerate(uniques):
            level = level.item() if isinstance(level, np.generic) else level
            if level in skip:
                continue
            names.append(f"{prefix}{level}")
            indices.append(rows[codes == k])
            annotations.append(None if annotation_key is None else {annotation_key: level})
        return cls(names, indices, annotations, n_variants=len(labels)).validate()

    @classmethod
    def by_chromosome(cls, variants) -> "ComponentSpec":
        """One component per chromosome, named ``chr<chrom>``, in natural chromosome order.

        Parameters
        ----------
        variants : pandas.DataFrame or Genotypes
            Variant table with a ``chrom`` column.

        Examples
        --------
        >>> v = pd.DataFrame({"chrom": ["1", "2", "10", "2"], "id": list("abcd")})
        >>> ComponentSpec.by_chromosome(v).names
        ['chr1', 'chr2', 'chr10']
        """
        _, table = _variant_table(variants)
        if table is None or "chrom" not in table.columns:
            raise InputError("by_chromosome needs a variant table with a 'chrom' column")
        chrom = table["chrom"].astype(str).to_numpy()
        levels = sorted(set(chrom), key=lambda c: (0, int(c), "") if c.isdigit() else (1, 0, c))
        names = [f"chr{c}" for c in levels]
        indices = [np.flatnonzero(chrom == c) for c in levels]
        annotations = [{"chrom": c} for c in levels]
        return cls(names, indices, annotations, n_variants=len(chrom)).validate()

    @classmethod
    def by_maf(cls, maf, bins: Sequence[float] = (0.0, 0.01, 0.05, 0.5), drop_empty: bool = True) -> "ComponentSpec":
        """One component per minor-allele-frequency bin ``(lo, hi]`` (first bin ``[lo, hi]``).

        Parameters
        ----------
        maf : array-like or VariantStats
            Minor allele frequencies in [0, 0.5], or allele frequencies (folded
            to minor), or an object with ``allele_freq`` (e.g. ``Genotypes.stats``).
            NaN (no calls) stays unassigned.
        bins : sequence of float
            Increasing bin edges.
        drop_empty : bool, default True
            Leave out bins with no variant (else raise on them in validation).

        Examples
        --------
        >>> s = ComponentSpec.by_maf([0.005, 0.2, 0.03, 0.45], bins=(0, 0.01, 0.05, 0.5))
        >>> s.names, s.sizes
        (['maf_0_0.01', 'maf_0.01_0.05', 'maf_0.05_0.5'], [1, 1, 2])
        """
        if hasattr(maf, "allele_freq"):
            maf = maf.allele_freq
        freq = np.asarray(maf, dtype=np.float64)
        freq = np.minimum(freq, 1.0 - freq)
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise InputError(f"bins must be at least two increasing edges, got {list(bins)}")
        names, indices, annotations = [], [], []
        for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
            low_ok = freq >= lo if k == 0 else freq > lo
            ix = np.flatnonzero(low_ok & (freq <= hi))
            if drop_empty and ix.size == 0:
                continue
            names.append(f"maf_{lo:g}_{hi:g}")
            indices.append(ix)
            annotations.append({"maf_bin": [float(lo), float(hi)]})
        return cls(names, indices, annotations, n_variants=freq.size).validate()


def _as_index_array(values, name) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        array = array.reshape(-1)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.dtype.kind in "iu":
        return array.astype(np.int64, copy=True)
    if array.dtype.kind == "b":
        raise ComponentSpecError(f"component {name!r}: variant indices must be integers, got booleans")
    if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
        return array.astype(np.int64)
    bad = next((v for v in array.ravel() if not _is_integral(v)), array.ravel()[0])
    raise ComponentSpecError(f"component {name!r}: variant index {bad!r} is not an integer")


def _is_integral(v) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return False
    if isinstance(v, (int, np.integer)):
        return True
    return isinstance(v, (float, np.floating)) and np.isfinite(v) and float(v).is_integer()


def _ids_to_indices(ids, name: str, table: pd.DataFrame | None, path) -> np.ndarray:
    if table is None or "id" not in table.columns:
        raise ComponentSpecError(
            f"{path}: component {name!r} lists variant ids; pass variants= (the variant table with an 'id' column) "
            "to read_components"
        )
    ids = [str(v) for v in ids]
    column = table["id"].astype(str)
    lookup = pd.Index(column)
    positions = lookup.get_indexer(ids) if lookup.is_unique else None
    if positions is None:
        counts = column.value_counts()
        ambiguous = [i for i in ids if counts.get(i, 0) > 1]
        if ambiguous:
            raise ComponentSpecError(
                f"{path}: component {name!r} names variant id {ambiguous[0]!r}, which occurs "
                f"{counts[ambiguous[0]]} times in the variant table; use variant_indices instead"
            )
        first = pd.Series(np.arange(len(column)), index=column).groupby(level=0).first()
        positions = first.reindex(ids).fillna(-1).to_numpy(dtype=np.int64)
    unknown = [i for i, p in zip(ids, positions, strict=True) if p < 0]
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5])
        raise ComponentSpecError(
            f"{path}: component {name!r} has {len(unknown)} variant id(s) not in the variant table: {shown}"
            + (", ..." if len(unknown) > 5 else "")
        )
    return np.asarray(positions, dtype=np.int64)


def _read_json(path: Path, table) -> ComponentSpec:
    try:
        payload = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise FileFormatError(path, f"invalid JSON: {err.msg}", line=err.lineno) from None
    components = payload.get("components") if isinstance(payload, dict) else payload
    if not isinstance(components, list):
        raise FileFormatError(path, 'expected {"components": [ ... ]} or a list of components')
    names, indices, annotations = [], [], []
    for i, comp in enumerate(components):
        if not isinstance(comp, dict):
            raise FileFormatError(path, f"component {i} must be a JSON object, got {type(comp).__name__}")
        name = str(comp.get("name") or _default_name(i))
        has_ix, has_ids = "variant_indices" in comp, "variant_ids" in comp
        if has_ix == has_ids:
            raise FileFormatError(
                path, f"component {name!r} must have exactly one of 'variant_indices' or 'variant_ids'"
            )
        values = comp["variant_indices" if has_ix else "variant_ids"]
        if not isinstance(values, list):
            raise FileFormatError(path, f"component {name!r}: expected a list of variants")
        if has_ix:
            bad = next((v for v in values if not _is_integral(v)), None)
            if bad is not None:
                raise ComponentSpecError(f"{path}: component {name!r}: variant index {bad!r} is not an integer")
        annotation = comp.get("annotation")
        if annotation is not None and not isinstance(annotation, dict):
            raise FileFormatError(path, f"component {name!r}: 'annotation' must be an object")
        names.append(name)
        indices.append(
            _as_index_array(values, name) if has_ix else _ids_to_indices(values, name, table, path)
        )
        annotations.append(annotation)
    return ComponentSpec(names, indices, annotations)


def _npz_strings(data, key: str, n: int, path) -> list[str]:
    raw = np.asarray(data[key]).reshape(-1)
    if raw.size != n:
        raise FileFormatError(path, f"'{key}' has {raw.size} entries but the file has {n} component arrays")
    return [str(v) for v in raw.tolist()]


def _read_npz(path: Path, table) -> ComponentSpec:
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise FileFormatError(path, f"not a readable .npz file ({err})") from None
    with data:
        keys = [k for k in data.files if k not in _RESERVED]
        numbered = [_ARR.fullmatch(k) for k in keys]
        is_arr = bool(keys) and all(m is not None for m in numbered)
        if is_arr:
            keys = [k for _, k in sorted((int(m.group(1)), k) for m, k in zip(numbered, keys, strict=True))]
        if "component_names" in data.files:
            names = _npz_strings(data, "component_names", len(keys), path)
        else:
            names = [_default_name(i) for i in range(len(keys))] if is_arr else list(keys)
        annotations = [None] * len(keys)
        if "component_annotations_json" in data.files:
            for i, text in enumerate(_npz_strings(data, "component_annotations_json", len(keys), path)):
                try:
                    value = json.loads(text) if text.strip() else None
                except json.JSONDecodeError as err:
                    raise FileFormatError(path, f"annotation of component {names[i]!r} is not JSON: {err.msg}") from None
                if value is not None and not isinstance(value, dict):
                    raise FileFormatError(path, f"annotation of component {names[i]!r} must be a JSON object or null")
                annotations[i] = value
        indices = []
        for key, name in zip(keys, names, strict=True):
            array = np.asarray(data[key]).reshape(-1)
            if array.dtype.kind in "US":
                indices.append(_ids_to_indices(array.astype(str).tolist(), name, table, path))
            else:
                indices.append(_as_index_array(array, name))
    return ComponentSpec(names, indices, annotations)


def read_components(path, variants=None, allow_overlap: bool = False) -> ComponentSpec:
    """Read and validate a component spec from a ``.json`` or ``.npz`` file.

    Parameters
    ----------
    path : str or path-like
        The spec file (format by extension; see the module docstring).
    variants : pandas.DataFrame or Genotypes or int, optional
        The variant table (needed for ``variant_ids``), a Genotypes, or the number
        of variants. Without it indices are not range-checked.
    allow_overlap : bool, default False
        Accept variants in several components.

    Returns
    -------
    ComponentSpec
        Validated, indices sorted.

    Raises
    ------
    MissingFileError
        If the file does not exist.
    FileFormatError
        If it is not valid JSON/NPZ of the expected layout.
    ComponentSpecError
        On an index out of range, an unknown id, an empty component, duplicate
        names or (by default) overlapping components.

    Examples
    --------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "c.json")
    >>> write_components(ComponentSpec(["a", "b"], [[0, 2], [1]]), f)
    >>> read_components(f, variants=3).sizes
    [2, 1]
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path, "component spec")
    n_variants, table = _variant_table(variants)
    suffix = path.suffix.lower()
    if suffix == ".json":
        spec = _read_json(path, table)
    elif suffix == ".npz":
        spec = _read_npz(path, table)
    else:
        raise FileFormatError(path, f"unknown component spec extension {suffix!r}; use .json or .npz")
    return spec.validate(n_variants, allow_overlap=allow_overlap, source=str(path))


def write_components(spec: ComponentSpec, path) -> None:
    """Write a spec as ``.json`` or ``.npz`` (by extension), readable by :func:`read_components`.

    Parameters
    ----------
    spec : ComponentSpec
        The spec.
    path : str or path-like
        Output file ending in ``.json`` or ``.npz``.

    Examples
    --------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "c.npz")
    >>> write_components(ComponentSpec(["x"], [[0, 1]], [{"k": 1}]), f)
    >>> read_components(f).annotations
    [{'k': 1}]
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        path.write_text(json.dumps(spec.to_dict(), indent=2) + "\n")
    elif suffix == ".npz":
        arrays = {f"arr_{i}": np.asarray(ix, dtype=np.int64) for i, ix in enumerate(spec.indices)}
        arrays["component_names"] = np.array(spec.names, dtype=str)
        arrays["component_annotations_json"] = np.array([json.dumps(a) for a in spec.annotations], dtype=str)
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)
    else:
        raise InputError(f"component spec file must end in .json or .npz, got {path}")
