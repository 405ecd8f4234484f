"""Tests of phenotype/covariate/keep table reading and sample alignment."""

import gzip
import math
import re

import numpy as np
import pandas as pd
import pytest
import torch

from torchgenetics.errors import (
    FileFormatError,
    InputError,
    MissingFileError,
    PhenotypeError,
    SampleError,
)
from torchgenetics.io.tables import Alignment, AlignmentReport, align, read_table


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


class FakeGenotypes:
    """Stand-in with the two attributes align() uses."""

    def __init__(self, fid, iid):
        self.samples = pd.DataFrame({"fid": fid, "iid": iid, "sex": 0})

    def subset(self, samples):
        return ("subset", list(samples))


@pytest.fixture
def geno():
    return FakeGenotypes([f"F{i}" for i in range(6)], [f"S{i}" for i in range(6)])


# ---------------------------------------------------------------- read_table


def test_read_phenotype_with_header(tmp_path):
    path = write(tmp_path, "p.txt", "FID IID height bmi\nF0 S0 1.5 20\nF1 S1 NA 21.5\nF2 S2 -9 .\n")
    table = read_table(path)
    assert list(table.columns) == ["height", "bmi"]
    assert list(table.index.names) == ["fid", "iid"]
    assert table.index.tolist() == [("F0", "S0"), ("F1", "S1"), ("F2", "S2")]
    assert table.loc[("F0", "S0"), "height"] == 1.5
    assert np.isnan(table["height"].iloc[1]) and np.isnan(table["height"].iloc[2])
    assert np.isnan(table["bmi"].iloc[2])
    assert table.dtypes.tolist() == [np.float64, np.float64]
    assert table.attrs["path"] == str(path)
    assert table.attrs["kind"] == "phenotype"
    assert table.attrs["iid_only"] is False


def test_read_phenotype_hash_header_and_comments(tmp_path):
    text = "## written by a tool\n#FID\tIID\ty\n\nF0\tS0\t3\n  F1  S1   4.5e1 \n"
    table = read_table(write(tmp_path, "p.txt", text))
    assert table["y"].tolist() == [3.0, 45.0]


def test_read_phenotype_without_header_and_column_choice(tmp_path):
    path = write(tmp_path, "p.txt", "F0 S0 1 10\nF1 S1 2 20\n")
    table = read_table(path)
    assert list(table.columns) == ["PHENO1", "PHENO2"]
    assert read_table(path, column=2)["PHENO2"].tolist() == [10.0, 20.0]
    assert list(read_table(path, column="PHENO1").columns) == ["PHENO1"]
    with pytest.raises(InputError, match="column number 3 is out of range"):
        read_table(path, column=3)
    with pytest.raises(InputError, match="no column named 'height'"):
        read_table(path, column="height")
    with pytest.raises(InputError, match="not both"):
        read_table(path, column=1, columns=[1])


def test_missing_codes_case_insensitive_and_numeric(tmp_path):
    path = write(tmp_path, "p.txt", "FID IID y\nA a na\nB b NaN\nC c -9.0\nD d -9.5\nE e 0\n")
    y = read_table(path)["y"].to_numpy()
    assert np.isnan(y[:3]).all()
    assert y[3:].tolist() == [-9.5, 0.0]
    custom = read_table(path, missing=("NA", "nan", "0"))["y"].to_numpy()
    assert custom[2] == -9.0 and np.isnan(custom[4])


def test_gzip_table(tmp_path):
    path = tmp_path / "p.txt.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("FID IID y\nF0 S0 1\n")
    assert read_table(path)["y"].tolist() == [1.0]


def test_non_numeric_phenotype_names_file_line_value(tmp_path):
    path = write(tmp_path, "p.txt", "FID IID y\nF0 S0 1\nF1 S1 tall\n")
    with pytest.raises(PhenotypeError) as info:
        read_table(path)
    message = str(info.value)
    assert str(path) in message and "line 3" in message and "'tall'" in message and "'y'" in message


def test_wrong_field_count_names_line(tmp_path):
    path = write(tmp_path, "p.txt", "FID IID y z\nF0 S0 1 2\nF1 S1 3\n")
    with pytest.raises(FileFormatError, match=r"line 3: expected 4 fields \(as on the header\), found 3"):
        read_table(path)
    path = write(tmp_path, "q.txt", "F0 S0 1\nF1 S1 3 4\n")
    with pytest.raises(FileFormatError, match=r"line 2: expected 3 fields \(as on line 1\), found 4"):
        read_table(path)
    path = write(tmp_path, "r.txt", "F0 S0\nF1 S1\n")
    with pytest.raises(FileFormatError, match="at least one value column"):
        read_table(path)


def test_duplicate_ids_named_with_lines(tmp_path):
    path = write(tmp_path, "p.txt", "FID IID y\nF0 S0 1\nF1 S1 2\nF0 S0 3\n")
    with pytest.raises(SampleError) as info:
        read_table(path)
    assert "F0 S0" in str(info.value) and "lines 2, 4" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(MissingFileError) as info:
        read_table(tmp_path / "nope.txt")
    assert info.value.args[0] == f"phenotype file not found: {tmp_path / 'nope.txt'}"
    with pytest.raises(FileNotFoundError):
        read_table(tmp_path / "nope.txt", kind="covariate")


def test_bad_kind(tmp_path):
    with pytest.raises(InputError, match="kind"):
        read_table(write(tmp_path, "p.txt", "a b 1\n"), kind="pheno")


def test_duplicate_header_names(tmp_path):
    with pytest.raises(FileFormatError, match="repeats column"):
        read_table(write(tmp_path, "p.txt", "FID IID y y\nA a 1 2\n"))


def test_covariates_keep_minus_nine_and_expand_categorical(tmp_path):
    text = (
        "FID IID age sex site\n"
        "F0 S0 -9 M north\n"
        "F1 S1 40 F south\n"
        "F2 S2 NA F east\n"
        "F3 S3 50 . north\n"
    )
    table = read_table(write(tmp_path, "c.txt", text), kind="covariate")
    # -9 is a value for covariates; NA and . are missing
    assert table["age"].iloc[0] == -9.0 and np.isnan(table["age"].iloc[2])
    assert list(table.columns) == ["age", "sex=M", "site=north", "site=south"]
    assert table["sex=M"].iloc[:3].tolist() == [1.0, 0.0, 0.0] and np.isnan(table["sex=M"].iloc[3])
    assert table["site=north"].tolist() == [1.0, 0.0, 0.0, 1.0]
    assert table["site=south"].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert table.attrs["categorical"] == {"sex": ["F", "M"], "site": ["east", "north", "south"]}


def test_covariate_explicit_categorical_numeric_levels(tmp_path):
    text = "FID IID batch pc1\nA a 2\t0.1\nB b 10 0.2\nC c 1 0.3\nD d 2 0.4\n"
    path = write(tmp_path, "c.txt", text)
    table = read_table(path, kind="covariate", categorical=["batch"])
    # levels sorted numerically: 1 (reference), 2, 10
    assert list(table.columns) == ["batch=2", "batch=10", "pc1"]
    assert table["batch=10"].tolist() == [0.0, 1.0, 0.0, 0.0]
    plain = read_table(path, kind="covariate")
    assert plain["batch"].tolist() == [2.0, 10.0, 1.0, 2.0]
    with pytest.raises(InputError, match="categorical column"):
        read_table(path, kind="covariate", categorical=["nope"])


def test_covariate_columns_selection(tmp_path):
    path = write(tmp_path, "c.txt", "FID IID a b c\nA a 1 2 3\n")
    assert list(read_table(path, kind="covariate", columns=["c", 1]).columns) == ["c", "a"]


def test_keep_file_variants(tmp_path):
    keep = read_table(write(tmp_path, "k.txt", "F0 S0\nF1 S1 extra\nF0 S0\n"), kind="keep")
    assert keep.shape == (2, 0)
    assert keep.index.tolist() == [("F0", "S0"), ("F1", "S1")]
    iid_only = read_table(write(tmp_path, "k2.txt", "S1\nS2\n"), kind="keep")
    assert iid_only.attrs["iid_only"] is True
    assert iid_only.index.get_level_values("iid").tolist() == ["S1", "S2"]
    header = read_table(write(tmp_path, "k3.txt", "#IID\nS3\n"), kind="remove")
    assert header.attrs["iid_only"] is True and header.attrs["kind"] == "remove"
    with pytest.raises(FileFormatError, match="line 2"):
        read_table(write(tmp_path, "k4.txt", "F0 S0\nS1\n"), kind="keep")


def test_iid_only_phenotype(tmp_path):
    table = read_table(write(tmp_path, "p.txt", "#IID y\nS0 1\nS1 2\n"))
    assert table.attrs["iid_only"] is True
    assert table.index.tolist() == [("S0", "S0"), ("S1", "S1")]
    with pytest.raises(SampleError, match="S0"):
        read_table(write(tmp_path, "q.txt", "IID y\nS0 1\nS0 2\n"))


# ---------------------------------------------------------------- align


def test_align_full(tmp_path, geno):
    pheno = write(
        tmp_path,
        "p.txt",
        "FID IID y other\nF5 S5 5 0\nF0 S0 0 0\nF1 S1 NA 0\nF2 S2 2 0\nF3 S3 3 0\nX9 S9 9 0\n",
    )
    covar = write(
        tmp_path,
        "c.txt",
        "FID IID age sex\nF0 S0 30 M\nF2 S2 . F\nF3 S3 50 F\nF4 S4 60 M\nF5 S5 70 M\n",
    )
    keep = write(tmp_path, "k.txt", "F0 S0\nF1 S1\nF2 S2\nF3 S3\nF5 S5\n")
    remove = write(tmp_path, "r.txt", "F3 S3\n")
    al = align(geno, pheno=pheno, covar=covar, keep=keep, remove=remove, pheno_column="y")
    assert isinstance(al, Alignment)
    # S4 not in keep, S3 removed, S1 missing y, S2 missing age -> S0, S5 left, genotype order
    assert al.sample_index.tolist() == [0, 5]
    assert al.samples["iid"].tolist() == ["S0", "S5"]
    assert al.y.dtype == torch.float64 and al.y.tolist() == [0.0, 5.0]
    assert al.covariate_names == ["intercept", "age"]  # sex=M is constant (M, M) -> dropped
    assert al.covariates.tolist() == [[1.0, 30.0], [1.0, 70.0]]
    assert al.report.dropped == {
        "not in keep file": 1,
        "in remove file": 1,
        "not in phenotype file": 0,
        "missing phenotype": 1,
        "not in covariate file": 0,
        "missing covariate": 1,
    }
    assert al.report.dropped_covariates == ["sex=M"]
    assert al.report.n_genotyped == 6 and al.report.n_used == 2 and al.report.n_dropped == 4
    assert al.n_samples == 2 and al.phenotype_name == "y"
    text = str(al)
    assert "6 genotyped, 2 used, 4 dropped" in text
    assert re.search(r"missing covariate:\s+1", text) and "sex=M" in text
    assert al.subset(geno) == ("subset", [0, 5])


def test_align_counts_each_sample_once(geno):
    idx = pd.MultiIndex.from_tuples([(f"F{i}", f"S{i}") for i in range(3)], names=["fid", "iid"])
    pheno = pd.DataFrame({"y": [1.0, np.nan, 3.0]}, index=idx)
    covar = pd.DataFrame({"pc": [np.nan, np.nan, 0.5]}, index=idx)
    al = align(geno, pheno=pheno, covar=covar, intercept=False)
    # S3..S5 lack phenotype; S1 missing y (and covariate); S0 missing covariate
    assert al.report.dropped == {
        "not in phenotype file": 3,
        "missing phenotype": 1,
        "not in covariate file": 0,
        "missing covariate": 1,
    }
    assert sum(al.report.dropped.values()) == al.report.n_dropped
    assert al.sample_index.tolist() == [2]
    assert al.covariate_names == ["pc"] and al.covariates.shape == (1, 1)


def test_align_dtype_device_and_no_covariates(geno):
    al = align(geno, intercept=False, dtype=torch.float32)
    assert al.covariates is None and al.y is None and al.covariate_names == []
    assert al.sample_index.tolist() == list(range(6))
    al = align(geno.samples, dtype=torch.float32, device="cpu")
    assert al.covariates.dtype == torch.float32 and al.covariates.shape == (6, 1)


def test_align_iid_only_files(tmp_path, geno):
    pheno = write(tmp_path, "p.txt", "#IID y\nS1 1\nS4 4\n")
    keep = write(tmp_path, "k.txt", "S4\nS0\n")
    al = align(geno, pheno=pheno, keep=keep)
    assert al.sample_index.tolist() == [4]
    dup = FakeGenotypes(["A", "B"], ["S1", "S1"])
    with pytest.raises(SampleError, match="IID only"):
        align(dup, pheno=pheno)


def test_align_no_overlap_names_file_and_ids(tmp_path, geno):
    pheno = write(tmp_path, "p.txt", "FID IID y\nZ1 Q1 1\nZ2 Q2 2\n")
    with pytest.raises(SampleError) as info:
        align(geno, pheno=pheno)
    message = str(info.value)
    assert str(pheno) in message and "F0 S0" in message and "Z1 Q1" in message


def test_align_fid_mismatch_hint(tmp_path, geno):
    pheno = write(tmp_path, "p.txt", "FID IID y\n0 S0 1\n0 S1 2\n")
    with pytest.raises(SampleError, match="IIDs match but the FIDs differ"):
        align(geno, pheno=pheno)


def test_align_remove_without_overlap_is_fine(tmp_path, geno):
    remove = write(tmp_path, "r.txt", "Z Z\n")
    al = align(geno, remove=remove)
    assert al.n_samples == 6 and al.report.dropped == {"in remove file": 0}


def test_align_all_missing_phenotype(tmp_path, geno):
    pheno = write(tmp_path, "p.txt", "FID IID y\nF0 S0 NA\nF1 S1 -9\n")
    with pytest.raises(PhenotypeError, match="'y' is missing for all 2"):
        align(geno, pheno=pheno)


def test_align_nothing_left(tmp_path, geno):
    pheno = write(tmp_path, "p.txt", "FID IID y\nF0 S0 1\nF1 S1 2\n")
    covar = write(tmp_path, "c.txt", "FID IID a\nF0 S0 NA\nF1 S1 .\n")
    with pytest.raises(SampleError, match="no sample is left") as info:
        align(geno, pheno=pheno, covar=covar)
    assert re.search(r"missing covariate:\s+2", str(info.value))


def test_align_several_phenotypes_need_a_choice(tmp_path, geno):
    pheno = write(tmp_path, "p.txt", "FID IID a b\nF0 S0 1 2\n")
    with pytest.raises(InputError, match="choose one with pheno_column"):
        align(geno, pheno=pheno)
    assert align(geno, pheno=pheno, pheno_column=2).y.tolist() == [2.0]
    table = read_table(pheno)
    assert align(geno, pheno=table, pheno_column="b").phenotype_name == "b"


def test_align_covariate_columns_from_frame(tmp_path, geno):
    covar = write(tmp_path, "c.txt", "FID IID a b\nF0 S0 1 2\nF1 S1 3 5\n")
    table = read_table(covar, kind="covariate")
    al = align(geno, covar=table, covar_columns=["b"])
    assert al.covariate_names == ["intercept", "b"]
    assert al.covariates[:, 1].tolist() == [2.0, 5.0]
    al = align(geno, covar=covar, categorical=["a"])
    assert al.covariate_names == ["intercept", "a=3", "b"]


def test_align_rejects_non_numeric_frame(geno):
    idx = pd.MultiIndex.from_tuples([("F0", "S0")], names=["fid", "iid"])
    with pytest.raises(PhenotypeError, match="numeric"):
        align(geno, covar=pd.DataFrame({"sex": ["M"]}, index=idx))
    with pytest.raises(InputError, match=r"\(fid, iid\)"):
        align(geno, pheno=pd.DataFrame({"y": [1.0]}))


def test_align_repeated_genotype_ids():
    with pytest.raises(SampleError, match="repeated"):
        align(FakeGenotypes(["A", "A"], ["1", "1"]))


def test_align_bad_genotypes():
    with pytest.raises(InputError, match="fid"):
        align(object())


def test_report_printing():
    report = AlignmentReport(10, 7, {"missing phenotype": 2, "not in keep file": 1}, ["site=x"])
    text = str(report)
    assert text.splitlines()[0] == "samples: 10 genotyped, 7 used, 3 dropped"
    assert "missing phenotype: 2" in text and "site=x" in text


def test_align_with_real_genotypes_if_available(tmp_path):
    genotypes = pytest.importorskip("torchgenetics.genotypes")
    G = genotypes.Genotypes.from_array(np.array([[0, 1], [2, 1], [1, 1]], dtype=float))
    samples = G.samples
    lines = "".join(f"{f} {i} {k}\n" for k, (f, i) in enumerate(zip(samples["fid"], samples["iid"], strict=True)))
    pheno = write(tmp_path, "p.txt", "FID IID y\n" + lines)
    al = align(G, pheno=pheno)
    assert al.sample_index.tolist() == [0, 1, 2]
    assert al.y.tolist() == [0.0, 1.0, 2.0]
    assert al.subset(G).n_samples == 3
    assert not math.isnan(al.y.sum().item())
