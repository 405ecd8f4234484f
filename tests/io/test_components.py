"""Tests of component-spec reading, writing, building and validation."""

import json

import numpy as np
import pandas as pd
import pytest

from torchgenetics.errors import ComponentSpecError, FileFormatError, InputError, MissingFileError
from torchgenetics.io.components import ComponentSpec, read_components, write_components

SEED_SPEC = {
    "components": [
        {"name": "maf_0_01", "variant_indices": [0, 4, 9], "annotation": {"maf_bin": "0-1%"}},
        {"name": "maf_01_05", "variant_indices": [1, 2, 8], "annotation": {"maf_bin": "1-5%"}},
    ]
}


def write_json(tmp_path, payload, name="c.json"):
    path = tmp_path / name
    path.write_text(json.dumps(payload))
    return path


@pytest.fixture
def variants():
    return pd.DataFrame(
        {
            "chrom": ["1", "1", "2", "2", "10", "X"],
            "id": ["rs1", "rs2", "rs3", "rs4", "rs5", "rs6"],
            "pos": [10, 20, 5, 8, 1, 3],
        }
    )


def test_read_seed_json(tmp_path):
    spec = read_components(write_json(tmp_path, SEED_SPEC), variants=10)
    assert spec.names == ["maf_0_01", "maf_01_05"]
    assert [ix.tolist() for ix in spec.indices] == [[0, 4, 9], [1, 2, 8]]
    assert spec.annotations == [{"maf_bin": "0-1%"}, {"maf_bin": "1-5%"}]
    assert spec.n_variants == 10
    assert spec.sizes == [3, 3]
    assert spec.indices[0].dtype == np.int64
    assert spec.labels().tolist() == [0, 1, 1, -1, 0, -1, -1, -1, 1, 0]
    assert spec.unassigned().tolist() == [3, 5, 6, 7]
    assert spec["maf_01_05"].tolist() == [1, 2, 8]
    assert "maf_0_01: 3" in repr(spec)
    with pytest.raises(KeyError, match="no component named"):
        spec["nope"]


def test_json_list_default_names_and_sorting(tmp_path):
    payload = [{"variant_indices": [3, 1]}, {"variant_indices": [0]}]
    spec = read_components(write_json(tmp_path, payload))
    assert spec.names == ["component_000", "component_001"]
    assert spec.indices[0].tolist() == [1, 3]
    assert spec.n_variants is None


def test_json_variant_ids(tmp_path, variants):
    payload = {"components": [{"name": "a", "variant_ids": ["rs3", "rs1"]}, {"name": "b", "variant_indices": [1]}]}
    path = write_json(tmp_path, payload)
    spec = read_components(path, variants=variants)
    assert spec["a"].tolist() == [0, 2]
    assert spec.n_variants == 6

    class FakeGenotypes:
        pass

    g = FakeGenotypes()
    g.variants = variants
    assert read_components(path, variants=g)["a"].tolist() == [0, 2]
    with pytest.raises(ComponentSpecError, match="pass variants="):
        read_components(path)
    with pytest.raises(ComponentSpecError, match="pass variants="):
        read_components(path, variants=6)


def test_unknown_id(tmp_path, variants):
    path = write_json(tmp_path, {"components": [{"name": "a", "variant_ids": ["rs1", "rs99", "rs98"]}]})
    with pytest.raises(ComponentSpecError) as info:
        read_components(path, variants=variants)
    message = str(info.value)
    assert "'a'" in message and "'rs99'" in message and "2 variant id(s)" in message and str(path) in message


def test_ambiguous_id(tmp_path, variants):
    variants.loc[3, "id"] = "rs1"
    path = write_json(tmp_path, {"components": [{"name": "a", "variant_ids": ["rs2", "rs1"]}]})
    with pytest.raises(ComponentSpecError, match="'rs1', which occurs 2 times"):
        read_components(path, variants=variants)
    ok = write_json(tmp_path, {"components": [{"name": "a", "variant_ids": ["rs2", "rs5"]}]}, "ok.json")
    assert read_components(ok, variants=variants)["a"].tolist() == [1, 4]


def test_index_out_of_range_message(tmp_path):
    path = write_json(tmp_path, SEED_SPEC)
    with pytest.raises(ComponentSpecError) as info:
        read_components(path, variants=9)
    message = str(info.value)
    assert "'maf_0_01'" in message and "index 9" in message and "0..8" in message and "9 variants" in message
    neg = write_json(tmp_path, {"components": [{"name": "n", "variant_indices": [-1, 2]}]}, "neg.json")
    with pytest.raises(ComponentSpecError, match="negative variant index -1"):
        read_components(neg)
    with pytest.raises(ComponentSpecError, match="index -1 out of range"):
        read_components(neg, variants=5)


def test_empty_component(tmp_path):
    path = write_json(tmp_path, {"components": [{"name": "e", "variant_indices": []}]})
    with pytest.raises(ComponentSpecError, match="'e' has no variants"):
        read_components(path)
    with pytest.raises(ComponentSpecError, match="no components"):
        read_components(write_json(tmp_path, {"components": []}, "none.json"))


def test_duplicate_names(tmp_path):
    payload = {"components": [{"name": "a", "variant_indices": [0]}, {"name": "a", "variant_indices": [1]}]}
    with pytest.raises(ComponentSpecError, match="'a' is used twice"):
        read_components(write_json(tmp_path, payload))


def test_repeated_index_within_component(tmp_path):
    path = write_json(tmp_path, {"components": [{"name": "a", "variant_indices": [2, 0, 2]}]})
    with pytest.raises(ComponentSpecError, match="lists variant index 2 more than once"):
        read_components(path)


def test_overlap_raises_unless_allowed(tmp_path):
    payload = {"components": [{"name": "a", "variant_indices": [0, 1, 5]}, {"name": "b", "variant_indices": [5, 1, 7]}]}
    path = write_json(tmp_path, payload)
    with pytest.raises(ComponentSpecError) as info:
        read_components(path, variants=8)
    message = str(info.value)
    assert "'a' and 'b' overlap" in message and "variant index 1" in message and "allow_overlap=True" in message
    spec = read_components(path, variants=8, allow_overlap=True)
    assert spec.sizes == [3, 3]


def test_non_integer_indices(tmp_path):
    for bad in ([0, 1.5], [0, "a"], [True, 1]):
        path = write_json(tmp_path, {"components": [{"name": "x", "variant_indices": bad}]})
        with pytest.raises(ComponentSpecError, match="not an integer"):
            read_components(path)
    ok = write_json(tmp_path, {"components": [{"name": "x", "variant_indices": [0, 2.0]}]}, "ok.json")
    assert read_components(ok)["x"].tolist() == [0, 2]


@pytest.mark.parametrize(
    "payload, match",
    [
        ({"components": [{"name": "a"}]}, "exactly one of"),
        ({"components": [{"name": "a", "variant_indices": [0], "variant_ids": ["x"]}]}, "exactly one of"),
        ({"components": [{"name": "a", "variant_indices": 3}]}, "list of variants"),
        ({"components": [{"name": "a", "variant_indices": [0], "annotation": "x"}]}, "'annotation' must be"),
        ({"components": ["a"]}, "must be a JSON object"),
        ({"parts": []}, "expected"),
    ],
)
def test_json_format_errors(tmp_path, payload, match):
    with pytest.raises(FileFormatError, match=match):
        read_components(write_json(tmp_path, payload))


def test_invalid_json_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"components": [\n  {"name": "a",,}\n]}')
    with pytest.raises(FileFormatError, match="line 2"):
        read_components(path)


def test_missing_and_unknown_extension(tmp_path):
    with pytest.raises(MissingFileError):
        read_components(tmp_path / "nope.json")
    other = tmp_path / "c.yaml"
    other.write_text("x")
    with pytest.raises(FileFormatError, match="use .json or .npz"):
        read_components(other)
    with pytest.raises(InputError, match=".json or .npz"):
        write_components(ComponentSpec(["a"], [[0]]), tmp_path / "c.txt")


def test_npz_gpu_reml_layout(tmp_path):
    path = tmp_path / "c.npz"
    np.savez(
        path,
        arr_1=np.array([3, 4, 5], dtype=np.int64),
        arr_0=np.array([2, 0, 1], dtype=np.int64),
        arr_10=np.array([6]),
        component_names=np.array(["component_a", "component_b", "late"]),
        component_annotations_json=np.array(['{"kind": "example"}', "null", ""]),
    )
    spec = read_components(path, variants=7)
    # arr_<i> keys are ordered by number, not lexically
    assert spec.names == ["component_a", "component_b", "late"]
    assert [ix.tolist() for ix in spec.indices] == [[0, 1, 2], [3, 4, 5], [6]]
    assert spec.annotations == [{"kind": "example"}, None, None]


def test_npz_named_keys_and_ids(tmp_path, variants):
    path = tmp_path / "c.npz"
    np.savez(path, coding=np.array([0, 1]), regulatory=np.array(["rs5", "rs6"]))
    spec = read_components(path, variants=variants)
    assert spec.names == ["coding", "regulatory"]
    assert spec["regulatory"].tolist() == [4, 5]
    unnamed = tmp_path / "u.npz"
    np.savez(unnamed, np.array([0]), np.array([1]))
    assert read_components(unnamed).names == ["component_000", "component_001"]


def test_npz_format_errors(tmp_path):
    path = tmp_path / "c.npz"
    np.savez(path, arr_0=np.array([0]), component_names=np.array(["a", "b"]))
    with pytest.raises(FileFormatError, match="'component_names' has 2 entries"):
        read_components(path)
    np.savez(path, arr_0=np.array([0]), component_annotations_json=np.array(["[1]"]))
    with pytest.raises(FileFormatError, match="JSON object or null"):
        read_components(path)
    np.savez(path, arr_0=np.array([0]), component_annotations_json=np.array(["{oops"]))
    with pytest.raises(FileFormatError, match="not JSON"):
        read_components(path)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(FileFormatError, match="not a readable .npz"):
        read_components(junk)


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_write_read_round_trip(tmp_path, suffix):
    spec = ComponentSpec(
        ["a", "b", "c"],
        [np.array([5, 0]), [1, 2], np.array([9])],
        [{"maf_bin": [0.0, 0.01]}, None, {"note": "x"}],
    ).validate(10)
    path = tmp_path / f"spec{suffix}"
    write_components(spec, path)
    back = read_components(path, variants=10)
    assert back.names == spec.names
    assert [ix.tolist() for ix in back.indices] == [[0, 5], [1, 2], [9]]
    assert back.annotations == spec.annotations


def test_from_dict_and_validation_errors():
    spec = ComponentSpec.from_dict({"x": [2, 0], "y": np.array([1])}, n_variants=3)
    assert spec.indices[0].tolist() == [0, 2]
    with pytest.raises(ComponentSpecError, match="2 component names but 1"):
        ComponentSpec(["a", "b"], [[0]])
    with pytest.raises(ComponentSpecError, match="annotations"):
        ComponentSpec(["a"], [[0]], [None, None])
    with pytest.raises(ComponentSpecError, match="must be a dict"):
        ComponentSpec(["a"], [[0]], ["text"])
    with pytest.raises(ComponentSpecError, match="overlap"):
        ComponentSpec.from_dict({"x": [0, 1], "y": [1]})


def test_by_chromosome(variants):
    spec = ComponentSpec.by_chromosome(variants)
    assert spec.names == ["chr1", "chr2", "chr10", "chrX"]
    assert [ix.tolist() for ix in spec.indices] == [[0, 1], [2, 3], [4], [5]]
    assert spec.annotations[2] == {"chrom": "10"}
    assert spec.unassigned(6).size == 0

    class FakeGenotypes:
        pass

    g = FakeGenotypes()
    g.variants = variants
    assert ComponentSpec.by_chromosome(g).names == spec.names
    with pytest.raises(InputError, match="chrom"):
        ComponentSpec.by_chromosome(6)


def test_by_maf():
    freq = np.array([0.0, 0.005, 0.01, 0.03, 0.2, 0.5, 0.98, np.nan])
    spec = ComponentSpec.by_maf(freq, bins=(0, 0.01, 0.05, 0.5))
    assert spec.names == ["maf_0_0.01", "maf_0.01_0.05", "maf_0.05_0.5"]
    # 0.98 folds to 0.02; NaN stays unassigned; bin edges are (lo, hi], first bin closed
    assert [ix.tolist() for ix in spec.indices] == [[0, 1, 2], [3, 6], [4, 5]]
    assert spec.unassigned().tolist() == [7]
    assert spec.annotations[0] == {"maf_bin": [0.0, 0.01]}

    class Stats:
        allele_freq = np.array([0.3, 0.001])

    assert ComponentSpec.by_maf(Stats()).names == ["maf_0_0.01", "maf_0.05_0.5"]
    with pytest.raises(ComponentSpecError, match="no variants"):
        ComponentSpec.by_maf(Stats(), drop_empty=False)
    with pytest.raises(InputError, match="increasing"):
        ComponentSpec.by_maf(freq, bins=(0.1, 0.05))


def test_from_labels():
    spec = ComponentSpec.from_labels(["coding", "intron", None, "coding"], prefix="ann_", annotation_key="class")
    assert spec.names == ["ann_coding", "ann_intron"]
    assert [ix.tolist() for ix in spec.indices] == [[0, 3], [1]]
    assert spec.annotations == [{"class": "coding"}, {"class": "intron"}]
    assert spec.unassigned().tolist() == [2]
    skipped = ComponentSpec.from_labels([1, 2, 1, 3], skip={3})
    assert skipped.names == ["1", "2"] and skipped.unassigned().tolist() == [3]


def test_merged():
    spec = ComponentSpec(["a", "b", "c"], [[0, 1], [2], [3, 4]], [{"k": 1}, None, None]).validate(5)
    merged = spec.merged(["a", "c"])
    assert merged.names == ["b", "background"]
    assert merged["background"].tolist() == [0, 1, 3, 4]
    assert merged.annotations[-1] == {"merged_from": ["a", "c"]}
    assert merged.n_variants == 5
    assert spec.names == ["a", "b", "c"]  # original unchanged
    with pytest.raises(ComponentSpecError, match="unknown components"):
        spec.merged(["zz"])
    with pytest.raises(ComponentSpecError, match="already used"):
        spec.merged(["a"], into="b")


def test_to_dict_is_seed_layout():
    spec = ComponentSpec(["maf_0_01"], [[0, 4, 9]], [{"maf_bin": "0-1%"}])
    assert spec.to_dict() == {"components": [SEED_SPEC["components"][0]]}
