"""GWASResult tables, files and persistence."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from torchgenetics.errors import InputError
from torchgenetics.gwas import GWASResult, gwas


@pytest.fixture(scope="module")
def result(small_missing):
    d = small_missing
    return gwas(d["G"], d["Y"], d["C"], phenotype_names=["a", "b"])


def test_frame_has_plink2_columns(result, small_missing):
    frame = result.to_frame("a")
    assert list(frame.columns) == ["#CHROM", "POS", "ID", "REF", "ALT", "A1", "A1_FREQ", "OBS_CT", "BETA",
                                   "SE", "T_STAT", "P", "LOG10_P", "ERRCODE"]
    v = small_missing["sim"].variants
    assert (frame["A1"] == v["a1"]).all() and (frame["REF"] == v["a2"]).all()
    both = result.to_frame()
    assert both["PHENO"].tolist() == ["a"] * 60 + ["b"] * 60
    with pytest.raises(InputError, match="unknown phenotype"):
        result.to_frame("c")


def test_write_tables_plain_and_gzip(result, tmp_path):
    paths = result.write(tmp_path / "run")
    assert [p.name for p in paths] == ["run.a.glm.tsv", "run.b.glm.tsv"]
    table = pd.read_csv(paths[1], sep="\t")
    np.testing.assert_allclose(table["BETA"], result.beta[:, 1], rtol=1e-5)
    np.testing.assert_allclose(table["P"], result.p[:, 1], rtol=1e-5)
    gz = result.write(tmp_path / "run", compress=True)
    with gzip.open(gz[0], "rt") as handle:
        assert handle.readline().startswith("#CHROM\tPOS\tID")


def test_save_load_roundtrip(result, tmp_path):
    result.save(tmp_path / "r.h5")
    back = GWASResult.load(tmp_path / "r.h5")
    assert back.phenotypes == ["a", "b"] and back.method == "linear"
    for name in ("beta", "se", "stat", "p", "log10_p", "obs_ct", "a1_freq"):
        np.testing.assert_array_equal(getattr(back, name), getattr(result, name))
    assert back.errcode.tolist() == result.errcode.tolist()
    pd.testing.assert_frame_equal(back.to_frame("b"), result.to_frame("b"))


def test_lambda_gc_and_summary(result):
    assert 0.5 < result.lambda_gc("b") < 2.0
    text = result.summary()
    assert "a: n = 300" in text and "b: n = 275" in text
