"""HDF5 store for results: nested dicts of tensors, arrays, scalars, strings and tables.

Every fit result saves itself with :func:`save_h5` and loads with :func:`load_h5`.
Each stored object carries a ``kind`` attribute so that it loads back as the same
Python type:

===============  =====================================================
kind             stored as
===============  =====================================================
``dict``         group (keys kept in insertion order)
``list/tuple``   group with members ``"0"``, ``"1"``, ... (mixed items)
``torch``        dataset + ``torch_dtype`` attribute (CPU on load)
``numpy``        dataset (dtype kept; unicode arrays as UTF-8 strings)
``int/float/…``  scalar dataset (``int``, ``float``, ``bool``, ``complex``,
                 ``str``, ``none``, ``numpy_scalar``)
``list_str``     1-D dataset of UTF-8 strings
``list_int/…``   1-D numeric dataset (``list_int``, ``list_float``,
                 ``list_bool``; ``tuple_*`` for tuples)
``dataframe``    group: ``columns/<i>`` and ``index/<i>`` datasets with
                 names and dtypes in attributes (``series`` likewise)
===============  =====================================================

The file root holds ``torchgenetics_format_version`` (this module writes
:data:`FORMAT_VERSION`) and ``torchgenetics_format`` (a free name such as
``"REMLFit"``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import torch

from ..errors import FileFormatError, InputError, MissingFileError

__all__ = ["FORMAT_VERSION", "save_h5", "load_h5", "h5_format", "StoredDataclass"]

FORMAT_VERSION = 1
_VERSION_ATTR = "torchgenetics_format_version"
_FORMAT_ATTR = "torchgenetics_format"
_STR = h5py.string_dtype(encoding="utf-8")
# torch dtypes numpy cannot hold: stored widened, restored on load.
_WIDEN = {torch.bfloat16: torch.float32}


def _package_version() -> str:
    try:
        from .. import __version__

        return str(__version__)
    except ImportError:
        return "unknown"


def save_h5(path, obj: dict, format_name: str | None = None, compression: str | None = None) -> None:
    """Write a nested dict to an HDF5 file that :func:`load_h5` reads back unchanged.

    Supported values: dicts with string keys, torch tensors (dtype kept,
    moved to CPU, gradients dropped), numpy arrays (numeric, bool or unicode),
    Python and numpy scalars, ``None``, strings, lists/tuples (of strings,
    of numbers, or of any supported values), pandas DataFrames and Series.

    Parameters
    ----------
    path : str or path-like
        File to create (overwritten if it exists).
    obj : dict
        The content. Keys may not contain ``"/"`` or be ``"."``.
    format_name : str, optional
        What the file holds (e.g. ``"SusieFit"``), checked by ``load_h5(..., format_name=)``.
    compression : str, optional
        h5py compression filter for arrays (e.g. ``"gzip"``).

    Raises
    ------
    InputError
        On a value of unsupported type or a bad key; the message gives the key path.

    Examples
    --------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "fit.h5")
    >>> save_h5(f, {"h2": torch.tensor([0.5]), "n_iter": 12, "names": ["g1"]}, format_name="Demo")
    >>> load_h5(f)["n_iter"]
    12
    """
    if not isinstance(obj, dict):
        raise InputError(f"save_h5 stores a dict at the top level, got {type(obj).__name__}")
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise MissingFileError(path.parent, "output directory")
    with h5py.File(path, "w", track_order=True) as handle:
        handle.attrs[_VERSION_ATTR] = FORMAT_VERSION
        handle.attrs[_FORMAT_ATTR] = "" if format_name is None else str(format_name)
        handle.attrs["torchgenetics_version"] = _package_version()
        _write_dict_members(handle, obj, "", compression)


def _check_key(key, where: str) -> str:
    if not isinstance(key, str):
        raise InputError(f"save_h5: dict keys must be strings, got {key!r} at '{where or '/'}'")
    if key in ("", ".") or "/" in key:
        raise InputError(f"save_h5: key {key!r} at '{where or '/'}' cannot be an HDF5 name (no '/', not empty or '.')")
    return key


def _write_dict_members(group: h5py.Group, obj: dict, where: str, compression) -> None:
    for key, value in obj.items():
        _write(group, _check_key(key, where), value, f"{where}/{key}", compression)


def _write(group: h5py.Group, name: str, value: Any, where: str, compression) -> None:
    if isinstance(value, dict):
        sub = group.create_group(name, track_order=True)
        sub.attrs["kind"] = "dict"
        _write_dict_members(sub, value, where, compression)
    elif isinstance(value, torch.Tensor):
        _write_tensor(group, name, value, compression)
    elif isinstance(value, np.ndarray):
        _write_array(group, name, value, where, compression)
    elif isinstance(value, pd.DataFrame):
        _write_frame(group.create_group(name, track_order=True), value, where, "dataframe")
    elif isinstance(value, pd.Series):
        frame = value.to_frame(name=0 if value.name is None else value.name)
        sub = group.create_group(name, track_order=True)
        _write_frame(sub, frame, where, "series")
        sub.attrs["series_name"] = json.dumps(_json_label(value.name, where))
    elif isinstance(value, (list, tuple)):
        _write_sequence(group, name, value, where, compression)
    elif value is None:
        group.create_dataset(name, data=h5py.Empty("f")).attrs["kind"] = "none"
    elif type(value) is bool:
        group.create_dataset(name, data=np.bool_(value)).attrs["kind"] = "bool"
    elif type(value) is int:
        if not -(2**63) <= value < 2**63:
            raise InputError(f"save_h5: integer at '{where}' does not fit in 64 bits: {value}")
        group.create_dataset(name, data=np.int64(value)).attrs["kind"] = "int"
    elif type(value) is float:
        group.create_dataset(name, data=np.float64(value)).attrs["kind"] = "float"
    elif type(value) is complex:
        group.create_dataset(name, data=np.complex128(value)).attrs["kind"] = "complex"
    elif isinstance(value, str):
        group.create_dataset(name, data=value, dtype=_STR).attrs["kind"] = "str"
    elif isinstance(value, np.generic) and value.dtype.kind in "biufc":
        group.create_dataset(name, data=value).attrs["kind"] = "numpy_scalar"
    else:
        raise InputError(
            f"save_h5: cannot store a value of type {type(value).__name__} at '{where}'; supported: dict, "
            "torch.Tensor, numpy array, int, float, bool, complex, None, str, list/tuple, pandas DataFrame/Series"
        )


def _write_tensor(group: h5py.Group, name: str, tensor: torch.Tensor, compression) -> None:
    tensor = tensor.detach().cpu()
    dtype = tensor.dtype
    if dtype in _WIDEN:
        tensor = tensor.to(_WIDEN[dtype])
    data = tensor.resolve_conj().resolve_neg().numpy()
    ds = group.create_dataset(name, data=data, compression=compression if data.ndim else None)
    ds.attrs["kind"] = "torch"
    ds.attrs["torch_dtype"] = str(dtype).removeprefix("torch.")


def _write_array(group: h5py.Group, name: str, array: np.ndarray, where: str, compression) -> None:
    kind = array.dtype.kind
    if kind == "U" or (kind == "O" and all(isinstance(v, str) for v in array.ravel())):
        ds = group.create_dataset(name, data=array.astype(object), dtype=_STR)
        ds.attrs["kind"] = "numpy_str"
        return
    if kind not in "biufc":
        raise InputError(
            f"save_h5: numpy array at '{where}' has dtype {array.dtype}; only numeric, bool and string arrays are stored"
        )
    ds = group.create_dataset(name, data=array, compression=compression if array.ndim else None)
    ds.attrs["kind"] = "numpy"


def _number_kind(values) -> str | None:
    """'bool', 'int' or 'float' when every item is of that exact Python type."""
    for kind, typ in (("bool", bool), ("int", int), ("float", float)):
        if all(type(v) is typ for v in values):
            return kind
    return None


def _write_sequence(group: h5py.Group, name: str, values, where: str, compression) -> None:
    prefix = "tuple" if isinstance(values, tuple) else "list"
    values = list(values)
    if values and all(isinstance(v, str) for v in values):
        ds = group.create_dataset(name, data=np.array(values, dtype=object), dtype=_STR)
        ds.attrs["kind"] = f"{prefix}_str"
        return
    number = _number_kind(values) if values else None
    if number == "int" and not all(-(2**63) <= v < 2**63 for v in values):
        number = None
    if number is not None:
        dtype = {"bool": np.bool_, "int": np.int64, "float": np.float64}[number]
        ds = group.create_dataset(name, data=np.asarray(values, dtype=dtype), compression=compression)
        ds.attrs["kind"] = f"{prefix}_{number}"
        return
    sub = group.create_group(name, track_order=True)
    sub.attrs["kind"] = prefix
    for i, item in enumerate(values):
        _write(sub, str(i), item, f"{where}[{i}]", compression)


def _json_label(label, where: str):
    """Column/index labels as JSON values (str, int, float, bool, None)."""
    if isinstance(label, (np.integer, np.floating, np.bool_)):
        label = label.item()
    if label is None or isinstance(label, (str, int, float, bool)):
        return label
    if isinstance(label, tuple):
        return [_json_label(v, where) for v in label]
    raise InputError(f"save_h5: DataFrame at '{where}' has a column or index label of type {type(label).__name__}")


def _write_column(group: h5py.Group, name: str, column: pd.Series, where: str) -> None:
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        ds = group.create_dataset(name, data=column.cat.codes.to_numpy())
        cats = column.cat.categories
        ds.attrs["categories"] = json.dumps([_json_label(c, where) for c in cats])
        ds.attrs["ordered"] = bool(dtype.ordered)
        ds.attrs["dtype"] = "category"
        return
    if dtype.kind in "biufcmM" and not pd.api.types.is_extension_array_dtype(dtype):
        data = column.to_numpy()
        if dtype.kind in "mM":
            data = data.view(np.int64)
        ds = group.create_dataset(name, data=data)
        ds.attrs["dtype"] = str(dtype)
        return
    values = column.to_numpy(dtype=object)
    missing = pd.isna(values)
    if not all(isinstance(v, str) for v, m in zip(values, missing, strict=True) if not m):
        if pd.api.types.is_extension_array_dtype(dtype) and dtype.kind in "biufc":
            ds = group.create_dataset(name, data=column.to_numpy(dtype="float64", na_value=np.nan))
            ds.attrs["dtype"] = str(dtype)
            return
        raise InputError(
            f"save_h5: DataFrame column {column.name!r} at '{where}' mixes types ({dtype}); "
            "store numbers, bools, strings or categoricals"
        )
    ds = group.create_dataset(name, data=np.where(missing, "", values).astype(object), dtype=_STR)
    ds.attrs["dtype"] = str(dtype)
    if missing.any():
        ds.attrs["missing"] = np.flatnonzero(missing)


def _write_frame(group: h5py.Group, frame: pd.DataFrame, where: str, kind: str) -> None:
    group.attrs["kind"] = kind
    group.attrs["n_rows"] = int(frame.shape[0])
    group.attrs["column_names"] = json.dumps([_json_label(c, where) for c in frame.columns])
    columns = group.create_group("columns", track_order=True)
    for i in range(frame.shape[1]):
        _write_column(columns, str(i), frame.iloc[:, i], where)
    index = frame.index
    if isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1:
        group.attrs["index_names"] = json.dumps(None)
        return
    group.attrs["index_names"] = json.dumps([_json_label(n, where) for n in index.names])
    levels = group.create_group("index", track_order=True)
    for i in range(index.nlevels):
        level = index.get_level_values(i)
        _write_column(levels, str(i), pd.Series(level, name=level.name), where)


def h5_format(path) -> tuple[str, int]:
    """The format name and version of a torchgenetics HDF5 file, without loading it.

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    (str, int)
        ``format_name`` given to :func:`save_h5` (``""`` if none) and the format version.

    Raises
    ------
    MissingFileError, FileFormatError
        If the file is absent, not HDF5, or not written by torchgenetics.

    Examples
    --------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "x.h5")
    >>> save_h5(f, {}, format_name="REMLFit")
    >>> h5_format(f)
    ('REMLFit', 1)
    """
    with _open(path) as handle:
        return _check_header(handle, path)


def _open(path) -> h5py.File:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path, "HDF5")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise FileFormatError(path, f"not a readable HDF5 file ({err})") from None


def _check_header(handle: h5py.File, path) -> tuple[str, int]:
    if _VERSION_ATTR not in handle.attrs:
        raise FileFormatError(
            path, f"not a torchgenetics file: the HDF5 root has no '{_VERSION_ATTR}' attribute"
        )
    version = int(handle.attrs[_VERSION_ATTR])
    if version > FORMAT_VERSION:
        raise FileFormatError(
            path,
            f"written with store format version {version} by torchgenetics "
            f"{handle.attrs.get('torchgenetics_version', '?')}, but this version reads up to "
            f"format {FORMAT_VERSION}; upgrade torchgenetics to load it",
        )
    name = handle.attrs.get(_FORMAT_ATTR, "")
    return (name.decode() if isinstance(name, bytes) else str(name)), version


def load_h5(path, format_name: str | None = None) -> dict:
    """Read a file written by :func:`save_h5`.

    Tensors come back as CPU tensors of their saved dtype, numpy arrays as numpy
    arrays, scalars, strings and lists as Python objects, DataFrames as DataFrames.

    Parameters
    ----------
    path : str or path-like
        The file.
    format_name : str, optional
        Expected format name; a file saved under another name raises.

    Returns
    -------
    dict
        The nested content, keys in saved order.

    Raises
    ------
    MissingFileError
        If the file does not exist.
    FileFormatError
        If it is not HDF5, not a torchgenetics file, of a newer format version,
        or holds another format than ``format_name``.

    Examples
    --------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "a.h5")
    >>> save_h5(f, {"beta": torch.zeros(2, dtype=torch.float32), "note": None})
    >>> out = load_h5(f)
    >>> out["beta"].dtype, out["note"]
    (torch.float32, None)
    """
    with _open(path) as handle:
        stored_name, _ = _check_header(handle, path)
        if format_name is not None and stored_name != format_name:
            raise FileFormatError(
                path, f"holds a {stored_name or 'unnamed'!s} result, expected a {format_name}"
            )
        return _read_dict_members(handle, path)


def _kind(obj) -> str:
    kind = obj.attrs.get("kind", None)
    if kind is None:
        return "dict" if isinstance(obj, h5py.Group) else "numpy"
    return kind.decode() if isinstance(kind, bytes) else str(kind)


def _read_dict_members(group: h5py.Group, path) -> dict:
    return {name: _read(group[name], path) for name in group.keys()}


def _read(obj, path):
    kind = _kind(obj)
    if kind == "dict":
        return _read_dict_members(obj, path)
    if kind in ("list", "tuple"):
        items = [_read(obj[str(i)], path) for i in range(len(obj))]
        return tuple(items) if kind == "tuple" else items
    if kind in ("dataframe", "series"):
        frame = _read_frame(obj)
        if kind == "series":
            series = frame.iloc[:, 0]
            series.name = json.loads(obj.attrs["series_name"])
            return series
        return frame
    if kind == "none":
        return None
    if kind == "torch":
        dtype = getattr(torch, str(obj.attrs["torch_dtype"]))
        return torch.from_numpy(np.array(obj[()])).to(dtype)
    if kind == "numpy":
        return np.array(obj[()])
    if kind == "numpy_str":
        return np.array(obj.asstr()[()], dtype=str)
    if kind == "numpy_scalar":
        return obj[()]
    if kind in ("int", "float", "bool", "complex"):
        return {"int": int, "float": float, "bool": bool, "complex": complex}[kind](obj[()])
    if kind == "str":
        return obj.asstr()[()]
    prefix, _, item = kind.partition("_")
    if prefix in ("list", "tuple") and item in ("str", "int", "float", "bool"):
        values = obj.asstr()[()].tolist() if item == "str" else np.array(obj[()]).tolist()
        return tuple(values) if prefix == "tuple" else values
    raise FileFormatError(path, f"object '{obj.name}' has unknown kind {kind!r}")


def _read_column(ds: h5py.Dataset) -> pd.Series | pd.Index:
    dtype = ds.attrs.get("dtype", "")
    dtype = dtype.decode() if isinstance(dtype, bytes) else str(dtype)
    if dtype == "category":
        categories = json.loads(ds.attrs["categories"])
        return pd.Categorical.from_codes(
            np.array(ds[()]), categories=categories, ordered=bool(ds.attrs["ordered"])
        )
    if h5py.check_string_dtype(ds.dtype) is not None:
        values = ds.asstr()[()].astype(object)
        if "missing" in ds.attrs:
            values[np.asarray(ds.attrs["missing"], dtype=np.int64)] = None
        return pd.array(values, dtype=dtype if dtype not in ("", "object") else object)
    data = np.array(ds[()])
    if dtype.startswith(("datetime64", "timedelta64")):
        return data.view(dtype)
    return pd.array(data, dtype=dtype) if dtype else data


def _read_frame(group: h5py.Group) -> pd.DataFrame:
    names = json.loads(group.attrs["column_names"])
    columns = group["columns"]
    data = {i: _read_column(columns[str(i)]) for i in range(len(names))}
    index_names = json.loads(group.attrs["index_names"])
    index = None
    if index_names is not None:
        levels = [_read_column(group["index"][str(i)]) for i in range(len(index_names))]
        if len(levels) == 1:
            index = pd.Index(levels[0], name=index_names[0])
        else:
            index = pd.MultiIndex.from_arrays(levels, names=index_names)
    if index is None:
        index = pd.RangeIndex(int(group.attrs["n_rows"]))
    frame = pd.DataFrame(data, index=index)
    frame.columns = pd.Index([tuple(n) if isinstance(n, list) else n for n in names])
    return frame


class StoredDataclass:
    """Mixin giving a dataclass ``to_dict``, ``save`` and ``load`` through :func:`save_h5`.

    The subclass sets ``h5_format_name`` (the format written in the file header and
    checked on load) and defines ``from_dict(content, source=...)``.

    Examples
    --------
    >>> import os, tempfile
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Point(StoredDataclass):
    ...     x: float
    ...     h5_format_name = "Point"
    ...     @classmethod
    ...     def from_dict(cls, content, source="dict"):
    ...         return cls(**content)
    >>> path = os.path.join(tempfile.mkdtemp(), "p.h5")
    >>> Point(1.5).save(path)
    >>> Point.load(path).x
    1.5
    """

    h5_format_name: str = ""

    def to_dict(self) -> dict:
        """Plain nested dict of the dataclass fields (the HDF5 layout)."""
        from dataclasses import fields

        return {f.name: getattr(self, f.name) for f in fields(self)}

    def save(self, path) -> None:
        """Write the object to HDF5 (:func:`save_h5`); :meth:`load` restores it exactly."""
        save_h5(path, self.to_dict(), format_name=self.h5_format_name)

    @classmethod
    def load(cls, path):
        """Read an object written by :meth:`save` (tensors on CPU)."""
        return cls.from_dict(load_h5(path, format_name=cls.h5_format_name), source=path)
