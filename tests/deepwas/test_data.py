"""Summary statistics, annotations and LD files: parsing, checks, round trips."""

import numpy as np
import pandas as pd
import pytest
import torch

from torchgenetics.deepwas.data import Annotations, SumStats, read_ld, window_tracks
from torchgenetics.errors import FileFormatError, InputError, MissingFileError
from torchgenetics.operators import BandedLD, BlockLD


def test_sumstats_beta_se_and_columns():
    t = pd.DataFrame({"RSID": ["a", "b"], "BETA": [0.2, -0.3], "SE": [0.1, 0.1], "N": [100, 200],
                      "CHR": [1, 2], "BP": [10, 20]})
    s = SumStats.from_frame(t)
    assert s.z.tolist() == pytest.approx([2.0, -3.0])
    assert s.n.tolist() == [100.0, 200.0]
    assert s.chrom.tolist() == ["1", "2"] and s.pos.tolist() == [10, 20]


def test_sumstats_file_errors_name_the_line(tmp_path):
    f = tmp_path / "s.tsv"
    f.write_text("SNP Z N\na 1.0 100\nb oops 100\n")
    with pytest.raises(FileFormatError, match=r"s.tsv, line 3.*'oops'"):
        SumStats.read(f)
    f.write_text("SNP Z\na 1.0\n")
    with pytest.raises(FileFormatError, match="no n"):
        SumStats.read(f)
    assert SumStats.read(f, n=50).n.tolist() == [50.0]
    f.write_text("SNP Z N\na 1 10\na 2 10\n")
    with pytest.raises(FileFormatError, match="repeat"):
        SumStats.read(f)
    with pytest.raises(MissingFileError):
        SumStats.read(tmp_path / "none.tsv")


def test_sumstats_round_trip(tmp_path):
    s = SumStats(["a", "b"], [1.5, -0.5], [10, 20], ["1", "1"], [5, 9])
    s.write(tmp_path / "s.tsv")
    back = SumStats.read(tmp_path / "s.tsv")
    assert back.ids.tolist() == ["a", "b"] and back.z.tolist() == [1.5, -0.5]
    assert back.chrom.tolist() == ["1", "1"] and back.pos.tolist() == [5, 9]


def test_annotations_table_and_h5(tmp_path):
    t = pd.DataFrame({"id": ["a", "b", "c"], "chrom": [1, 1, 2], "pos": [1, 2, 3],
                      "dnase": [0.1, 0.2, 0.3], "cons": [1.0, 0.0, 1.0]})
    a = Annotations.from_frame(t)
    assert a.names == ["dnase", "cons"] and a.feature_shape == (2,)
    a.write(tmp_path / "a.tsv")
    assert np.allclose(Annotations.read(tmp_path / "a.tsv").values, a.values)
    w = a.windowed(1)
    assert w.feature_shape == (2, 3)
    # chromosome edges are zero-padded: variant c (chrom 2) sees nothing of b
    assert w.values[2, 0].tolist() == [0.0, 0.3, 0.0]
    w.save(tmp_path / "w.h5")
    back = Annotations.read(tmp_path / "w.h5")
    assert back.values.shape == (3, 2, 3) and back.chrom.tolist() == ["1", "1", "2"]
    assert a.positions_of(["c", "zz"]).tolist() == [2, -1]


def test_annotations_reject_bad_values():
    with pytest.raises(InputError, match="finite"):
        Annotations(["a"], np.array([[np.nan]]), ["x"])
    with pytest.raises(InputError, match="names"):
        Annotations(["a"], np.ones((1, 2)), ["x"])


def test_window_tracks_shifts():
    out = window_tracks(np.arange(5.0)[:, None], 2)
    assert out.shape == (5, 1, 5)
    assert out[2, 0].tolist() == [0, 1, 2, 3, 4]
    assert out[0, 0].tolist() == [0, 0, 0, 1, 2]


def test_read_ld_directory(tmp_path):
    R = BlockLD([torch.eye(2, dtype=torch.float64)])
    R.variant_ids = np.array(["a", "b"])
    B = BandedLD(torch.ones(1, 3, dtype=torch.float64))
    B.variant_ids = np.array(["c", "d", "e"])
    R.save(tmp_path / "chr10.h5")
    B.save(tmp_path / "chr2.h5")
    ops = read_ld(tmp_path)
    assert [type(o).__name__ for o in ops] == ["BandedLD", "BlockLD"]  # natural order: 2 before 10
    with pytest.raises(MissingFileError):
        read_ld(tmp_path / "missing")
