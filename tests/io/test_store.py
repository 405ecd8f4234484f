"""Tests of the HDF5 store: round trips of every supported kind and clear errors."""

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from torchgenetics.errors import FileFormatError, InputError, MissingFileError
from torchgenetics.io import store
from torchgenetics.io.store import FORMAT_VERSION, h5_format, load_h5, save_h5


def round_trip(tmp_path, obj, **kwargs):
    path = tmp_path / "x.h5"
    save_h5(path, obj, **kwargs)
    return load_h5(path)


@pytest.mark.parametrize(
    "dtype",
    [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int8,
     torch.uint8, torch.bool, torch.complex64],
)
def test_tensor_dtypes_round_trip(tmp_path, dtype):
    g = torch.Generator().manual_seed(0)
    t = (torch.randn(3, 4, generator=g) * 10).to(dtype)
    out = round_trip(tmp_path, {"t": t})["t"]
    assert isinstance(out, torch.Tensor)
    assert out.dtype == dtype and out.shape == (3, 4)
    assert torch.equal(out, t)


def test_tensor_shapes_grad_and_views(tmp_path):
    leaf = torch.ones(2, 3, requires_grad=True)
    obj = {
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 5),
        "grad": leaf * 2,
        "transposed": torch.arange(6.0).reshape(2, 3).T,
        "conj": torch.tensor([1 + 2j]).conj(),
    }
    out = round_trip(tmp_path, obj)
    assert out["scalar"].shape == () and out["scalar"].item() == 2.5
    assert out["empty"].shape == (0, 5)
    assert not out["grad"].requires_grad and torch.equal(out["grad"], torch.full((2, 3), 2.0))
    assert torch.equal(out["transposed"], torch.arange(6.0).reshape(2, 3).T)
    assert out["conj"].item() == 1 - 2j


def test_numpy_arrays_stay_numpy(tmp_path):
    obj = {
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3),
        "i16": np.array([1, -2], dtype=np.int16),
        "b": np.array([True, False]),
        "s": np.array(["a", "héllo", ""]),
        "obj_str": np.array(["x", "yz"], dtype=object),
        "zero_d": np.array(3.0),
    }
    out = round_trip(tmp_path, obj)
    for key, value in obj.items():
        assert isinstance(out[key], np.ndarray), key
        np.testing.assert_array_equal(out[key], value)
    assert out["f32"].dtype == np.float32 and out["i16"].dtype == np.int16
    assert out["s"].dtype.kind == "U"
    assert out["zero_d"].shape == ()


def test_scalars_and_strings(tmp_path):
    obj = {
        "i": 7,
        "big": -(2**62),
        "f": 0.1,
        "nan": float("nan"),
        "b": False,
        "c": 1 + 2j,
        "none": None,
        "s": "ünïcode text",
        "empty_s": "",
        "np_f32": np.float32(1.5),
        "np_i": np.int64(3),
        "np_b": np.bool_(True),
    }
    out = round_trip(tmp_path, obj)
    for key in ("i", "big", "f", "b", "c", "s", "empty_s"):
        assert type(out[key]) is type(obj[key]) and out[key] == obj[key], key
    assert np.isnan(out["nan"]) and type(out["nan"]) is float
    assert out["none"] is None
    assert out["np_f32"] == 1.5 and out["np_f32"].dtype == np.float32
    assert out["np_i"].dtype == np.int64 and bool(out["np_b"]) is True


def test_lists_and_tuples(tmp_path):
    obj = {
        "names": ["g1", "g2"],
        "ints": [1, 2, 3],
        "floats": [0.5, 1.0],
        "bools": [True, False],
        "empty": [],
        "tuple_ints": (4, 5),
        "tuple_str": ("a",),
        "mixed": [1, "a", None, 2.5, {"t": torch.ones(1)}, [1, 2]],
        "int_and_float": [1, 2.5],
        "huge_ints": [2**70],
    }
    with pytest.raises(InputError, match=r"/huge_ints\[0\]"):
        round_trip(tmp_path, obj)
    del obj["huge_ints"]
    out = round_trip(tmp_path, obj)
    assert out["names"] == ["g1", "g2"]
    assert out["ints"] == [1, 2, 3] and all(type(v) is int for v in out["ints"])
    assert out["floats"] == [0.5, 1.0]
    assert out["bools"] == [True, False] and all(type(v) is bool for v in out["bools"])
    assert out["empty"] == []
    assert out["tuple_ints"] == (4, 5) and out["tuple_str"] == ("a",)
    mixed = out["mixed"]
    assert mixed[:4] == [1, "a", None, 2.5] and torch.equal(mixed[4]["t"], torch.ones(1)) and mixed[5] == [1, 2]
    assert out["int_and_float"] == [1, 2.5] and type(out["int_and_float"][0]) is int


def test_nested_dicts_keep_order(tmp_path):
    obj = {"z": 1, "a": {"y": {"deep": torch.zeros(2)}, "b": 2}, "m": {}}
    out = round_trip(tmp_path, obj)
    assert list(out) == ["z", "a", "m"]
    assert list(out["a"]) == ["y", "b"]
    assert torch.equal(out["a"]["y"]["deep"], torch.zeros(2))
    assert out["m"] == {}


def test_dataframes(tmp_path):
    frame = pd.DataFrame(
        {
            "chrom": ["1", "1", "2"],
            "pos": np.array([10, 20, 5], dtype=np.int64),
            "beta": [0.1, np.nan, -0.3],
            "significant": [True, False, False],
            "note": ["a", None, "c"],
            "level": pd.Categorical(["lo", "hi", "lo"], categories=["lo", "hi"], ordered=True),
            "f32": np.array([1, 2, 3], dtype=np.float32),
            "nullable": pd.array([1, None, 3], dtype="Int64"),
        }
    )
    indexed = frame.set_index(["chrom", "pos"])
    by_name = pd.DataFrame({"x": [1.0, 2.0]}, index=pd.Index(["s1", "s2"], name="iid"))
    offset = pd.DataFrame({"x": [1, 2]}, index=pd.RangeIndex(5, 7))
    empty = pd.DataFrame(index=pd.RangeIndex(4))
    out = round_trip(tmp_path, {"plain": frame, "indexed": indexed, "by_name": by_name, "offset": offset, "empty": empty})
    pd.testing.assert_frame_equal(out["plain"], frame)
    pd.testing.assert_frame_equal(out["indexed"], indexed)
    pd.testing.assert_frame_equal(out["by_name"], by_name)
    pd.testing.assert_frame_equal(out["offset"], offset, check_index_type=False)
    assert out["empty"].shape == (4, 0)


def test_series_and_odd_column_labels(tmp_path):
    series = pd.Series([1.5, 2.5], index=["a", "b"], name="h2")
    frame = pd.DataFrame({0: [1], "x y": [2]})
    out = round_trip(tmp_path, {"s": series, "f": frame, "unnamed": pd.Series([1, 2])})
    pd.testing.assert_series_equal(out["s"], series)
    pd.testing.assert_frame_equal(out["f"], frame)
    assert out["unnamed"].name is None and out["unnamed"].tolist() == [1, 2]


def test_format_name_and_version(tmp_path):
    path = tmp_path / "fit.h5"
    save_h5(path, {"a": 1}, format_name="REMLFit")
    assert h5_format(path) == ("REMLFit", FORMAT_VERSION)
    assert load_h5(path, format_name="REMLFit") == {"a": 1}
    with pytest.raises(FileFormatError, match="holds a REMLFit result, expected a SusieFit"):
        load_h5(path, format_name="SusieFit")
    with h5py.File(path, "r") as handle:
        assert handle.attrs["torchgenetics_format_version"] == FORMAT_VERSION


def test_newer_format_version_is_rejected(tmp_path):
    path = tmp_path / "new.h5"
    save_h5(path, {"a": 1})
    with h5py.File(path, "a") as handle:
        handle.attrs["torchgenetics_format_version"] = FORMAT_VERSION + 1
    with pytest.raises(FileFormatError, match=f"format version {FORMAT_VERSION + 1}.*upgrade torchgenetics"):
        load_h5(path)


def test_non_torchgenetics_and_non_hdf5_files(tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as handle:
        handle["x"] = np.arange(3)
    with pytest.raises(FileFormatError, match="not a torchgenetics file"):
        load_h5(foreign)
    text = tmp_path / "text.h5"
    text.write_text("hello")
    with pytest.raises(FileFormatError, match="not a readable HDF5 file"):
        load_h5(text)
    with pytest.raises(MissingFileError):
        load_h5(tmp_path / "absent.h5")
    with pytest.raises(MissingFileError):
        save_h5(tmp_path / "no_dir" / "x.h5", {})


def test_unknown_kind_in_file(tmp_path):
    path = tmp_path / "x.h5"
    save_h5(path, {"a": 1})
    with h5py.File(path, "a") as handle:
        handle["a"].attrs["kind"] = "martian"
    with pytest.raises(FileFormatError, match="unknown kind 'martian'"):
        load_h5(path)


@pytest.mark.parametrize(
    "obj, match",
    [
        ({"a": {1: 2}}, "keys must be strings"),
        ({"a/b": 1}, "cannot be an HDF5 name"),
        ({".": 1}, "cannot be an HDF5 name"),
        ({"x": {"y": object()}}, "type object at '/x/y'"),
        ({"x": np.array([object()], dtype=object)}, "'/x'"),
        ({"x": 2**64}, "does not fit in 64 bits"),
        ({"df": pd.DataFrame({"m": [1, "a"]})}, "mixes types"),
    ],
)
def test_unsupported_values_name_their_key(tmp_path, obj, match):
    with pytest.raises(InputError, match=match):
        save_h5(tmp_path / "x.h5", obj)


def test_top_level_must_be_dict(tmp_path):
    with pytest.raises(InputError, match="dict at the top level"):
        save_h5(tmp_path / "x.h5", [1, 2])


def test_compression_option(tmp_path):
    big = torch.zeros(1000, 100)
    out = round_trip(tmp_path, {"big": big, "arr": np.zeros(5)}, compression="gzip")
    assert torch.equal(out["big"], big)
    with h5py.File(tmp_path / "x.h5", "r") as handle:
        assert handle["big"].compression == "gzip"


def test_overwrite_existing_file(tmp_path):
    path = tmp_path / "x.h5"
    save_h5(path, {"a": 1, "b": 2})
    save_h5(path, {"c": 3})
    assert load_h5(path) == {"c": 3}


def test_package_version_recorded(tmp_path):
    path = tmp_path / "x.h5"
    save_h5(path, {})
    with h5py.File(path, "r") as handle:
        assert handle.attrs["torchgenetics_version"] == store._package_version() != ""
