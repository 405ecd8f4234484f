"""PLINK 1 (.bed/.bim/.fam) and PLINK 2 (.pgen/.pvar/.psam) readers."""

import sys

import numpy as np
import pandas as pd
import pytest
import torch
from bed_reader import to_bed

from torchgenetics.errors import FileFormatError, MissingExtraError, MissingFileError, SampleError
from torchgenetics.genotypes import Genotypes
from torchgenetics.io.plink import BedSource, read_bim, read_fam, read_pgen, read_plink

N, M = 11, 9  # 11 samples: the last .bed byte of each variant is partly padding


def dosages(n=N, m=M, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, size=(n, m)).astype(np.float32)
    x[rng.random((n, m)) < 0.15] = np.nan
    x[:, 2] = 2.0  # monomorphic
    return x


PROPERTIES = {
    "fid": [f"fam{i // 2}" for i in range(N)],
    "iid": [f"ind{i}" for i in range(N)],
    "father": ["0"] * (N - 1) + ["ind0"],
    "mother": ["0"] * (N - 1) + ["ind1"],
    "sex": [1, 2, 0, 1, 2, 1, 2, 0, 1, 2, 1],
    "pheno": [str(0.5 * i) for i in range(N)],
    "chromosome": ["1"] * 5 + ["22"] * (M - 5),
    "sid": [f"rs{j}" for j in range(M)],
    "cm_position": [0.1 * j for j in range(M)],
    "bp_position": [1000 + 10 * j for j in range(M)],
    "allele_1": ["A"] * M,
    "allele_2": ["G"] * M,
}


@pytest.fixture
def fileset(tmp_path):
    x = dosages()
    to_bed(tmp_path / "toy.bed", x, properties=PROPERTIES)
    return tmp_path / "toy", x


def lines_of(path):
    return path.read_text().splitlines(keepends=True)


# ---------------------------------------------------------------------- PLINK 1 round trip
def test_round_trip_values_tables_and_missing_calls(fileset):
    prefix, x = fileset
    for given in (prefix, str(prefix) + ".bed", prefix.with_suffix(".bed")):
        G = read_plink(given)
        assert isinstance(G, Genotypes) and G.shape == (N, M)
        np.testing.assert_array_equal(G.read(), x)  # NaN where missing
    s, v = G.samples, G.variants
    assert s["fid"].tolist() == PROPERTIES["fid"]
    assert s["iid"].tolist() == PROPERTIES["iid"]
    assert s["father"].tolist() == PROPERTIES["father"]
    assert s["mother"].tolist() == PROPERTIES["mother"]
    assert s["sex"].tolist() == PROPERTIES["sex"]
    np.testing.assert_allclose(s["phenotype"], [0.5 * i for i in range(N)])
    assert v["chrom"].tolist() == PROPERTIES["chromosome"]
    assert v["id"].tolist() == PROPERTIES["sid"]
    np.testing.assert_allclose(v["cm"], PROPERTIES["cm_position"])
    assert v["pos"].tolist() == PROPERTIES["bp_position"] and v["pos"].dtype == np.int64
    assert v["a1"].tolist() == ["A"] * M and v["a2"].tolist() == ["G"] * M


def test_bed_statistics_and_blocks_equal_the_in_memory_twin(fileset):
    prefix, x = fileset
    G, twin = read_plink(prefix), Genotypes.from_array(x)
    np.testing.assert_array_equal(G.stats.call_count, twin.stats.call_count)
    np.testing.assert_allclose(G.stats.var, twin.stats.var, rtol=1e-12)
    assert G.stats.n_monomorphic == 1
    for scale in ("empirical", "hwe"):
        Z = torch.cat([b for _, b in G.blocks(block_size=2, scale=scale)], dim=1)
        torch.testing.assert_close(Z, twin.standardized(scale=scale), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(G.sample_sq_norms(), twin.sample_sq_norms())
    Z32 = torch.cat([b for _, b in G.blocks(dtype=torch.float32)], dim=1)
    torch.testing.assert_close(Z32, twin.standardized(dtype=torch.float32))


def test_sample_subset_reads_from_the_bed(fileset):
    prefix, x = fileset
    rows, cols = [10, 0, 4], [8, 1, 5]
    H = read_plink(prefix).subset(samples=rows, variants=cols)
    np.testing.assert_array_equal(H.read(), x[rows][:, cols])
    assert H.samples["iid"].tolist() == ["ind10", "ind0", "ind4"]
    torch.testing.assert_close(H.standardized(),
                               Genotypes.from_array(x[rows][:, cols]).standardized())


def test_read_plink_is_lazy(fileset, monkeypatch):
    prefix, _ = fileset
    calls = []
    original = BedSource.read

    def spy(self, samples, variants, dtype):
        calls.append(variants)
        return original(self, samples, variants, dtype)

    monkeypatch.setattr(BedSource, "read", spy)
    G = read_plink(prefix)
    assert calls == []
    list(G.blocks(standardize=False, variants=[6, 7]))
    assert len(calls) == 1 and list(range(9))[calls[0]] == [6, 7]


def test_num_threads_is_passed_to_bed_reader(fileset):
    prefix, x = fileset
    G = read_plink(prefix, num_threads=1)
    assert G.source.num_threads == 1
    np.testing.assert_array_equal(G.read(), x)


def test_phenotype_and_sex_codes(tmp_path):
    fam = tmp_path / "p.fam"
    fam.write_text("f a 0 0 1 2\nf b 0 0 2 1\nf c 0 0 0 0\nf d 0 0 x -9\n")
    s = read_fam(fam)
    assert s["sex"].tolist() == [1, 2, 0, 0]
    np.testing.assert_array_equal(s["phenotype"], [2, 1, np.nan, np.nan])  # case/control: 0 missing
    fam.write_text("f a 0 0 1 0\nf b 0 0 2 3.5\nf c 0 0 0 NA\n")
    np.testing.assert_array_equal(read_fam(fam)["phenotype"], [0, 3.5, np.nan])  # quantitative


def test_blank_lines_are_skipped_and_line_numbers_kept(tmp_path):
    bim = tmp_path / "b.bim"
    bim.write_text("1 rs1 0 10 A G\n\n1 rs2 0 20 A G\n1 rs3 0 x A G\n")
    with pytest.raises(FileFormatError, match="line 4"):
        read_bim(bim)
    bim.write_text("1 rs1 0 10 A G\n\n1 rs2 0 20 A G\n\n")
    assert read_bim(bim)["id"].tolist() == ["rs1", "rs2"]


# ---------------------------------------------------------------------- PLINK 1 errors
@pytest.mark.parametrize("ext", [".bed", ".bim", ".fam"])
def test_missing_file_names_which(fileset, ext):
    prefix, _ = fileset
    target = prefix.with_suffix(ext)
    target.unlink()
    with pytest.raises(MissingFileError, match=rf"PLINK \{ext} file not found: .*toy\{ext}") as err:
        read_plink(prefix)
    assert err.value.path == str(target)
    assert isinstance(err.value, FileNotFoundError)


def test_wrong_magic_bytes(fileset):
    prefix, _ = fileset
    bed = prefix.with_suffix(".bed")
    data = bytearray(bed.read_bytes())
    data[:2] = b"BM"
    bed.write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match=r"toy\.bed: does not start with the PLINK \.bed magic bytes 6c 1b \(found 42 4d\)"):
        read_plink(prefix)


def test_sample_major_bed_is_refused(fileset):
    prefix, _ = fileset
    bed = prefix.with_suffix(".bed")
    data = bytearray(bed.read_bytes())
    data[2] = 0
    bed.write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match="mode byte is 0x00; expected 0x01"):
        read_plink(prefix)


def test_truncated_bed(fileset):
    prefix, _ = fileset
    bed = prefix.with_suffix(".bed")
    bed.write_bytes(bed.read_bytes()[:-5])
    expected = 3 + M * ((N + 3) // 4)
    with pytest.raises(FileFormatError, match=(
        rf"toy\.bed: has {expected - 5} bytes, but toy\.fam lists {N} samples and toy\.bim "
        rf"lists {M} variants, so it should have 3 \+ {M} x ceil\({N}/4\) = {expected} bytes"
    )):
        read_plink(prefix)


def test_bed_size_checked_against_table_line_counts(fileset):
    prefix, _ = fileset
    bim = prefix.with_suffix(".bim")
    bim.write_text("".join(lines_of(bim)[:-1]))  # one variant fewer than the .bed holds
    with pytest.raises(FileFormatError, match=f"lists {M - 1} variants"):
        read_plink(prefix)


@pytest.mark.parametrize("ext, line, edit, found", [
    (".fam", 4, lambda t: t.rsplit(" ", 1)[0], 5),
    (".fam", 1, lambda t: t.rstrip("\n") + " extra", 7),
    (".bim", 7, lambda t: t.replace("\t", " ", 1).split(" ", 1)[1], 5),
    (".bim", 9, lambda t: t.rstrip("\n") + "\tX", 7),
])
def test_wrong_column_count_names_the_line(fileset, ext, line, edit, found):
    prefix, _ = fileset
    path = prefix.with_suffix(ext)
    lines = lines_of(path)
    lines[line - 1] = edit(lines[line - 1]).rstrip("\n") + "\n"
    path.write_text("".join(lines))
    with pytest.raises(FileFormatError, match=rf"toy\{ext}, line {line}: expected 6 columns .*found {found}"):
        read_plink(prefix)


def test_duplicated_sample_ids_are_named(fileset):
    prefix, _ = fileset
    fam = prefix.with_suffix(".fam")
    lines = lines_of(fam)
    lines[6] = lines[2]  # ind2 of fam1 again on line 7
    fam.write_text("".join(lines))
    with pytest.raises(SampleError, match="FID 'fam1' IID 'ind2' appears on lines 3 and 7"):
        read_plink(prefix)


def test_same_iid_in_different_families_is_allowed(tmp_path):
    fam = tmp_path / "ok.fam"
    fam.write_text("f1 a 0 0 1 -9\nf2 a 0 0 1 -9\n")
    assert read_fam(fam)["iid"].tolist() == ["a", "a"]


@pytest.mark.parametrize("value, column, kind", [
    ("12kb", 3, "base-pair position .column 4. is '12kb'; expected an integer"),
    ("1.5", 3, "base-pair position .column 4. is '1.5'; expected an integer"),
    ("near", 2, "centimorgan position .column 3. is 'near'; expected a number"),
])
def test_non_numeric_positions_name_the_line(fileset, value, column, kind):
    prefix, _ = fileset
    bim = prefix.with_suffix(".bim")
    lines = lines_of(bim)
    fields = lines[5].rstrip("\n").split("\t")
    fields[column] = value
    lines[5] = "\t".join(fields) + "\n"
    bim.write_text("".join(lines))
    with pytest.raises(FileFormatError, match=rf"toy\.bim, line 6: {kind}"):
        read_plink(prefix)


# ---------------------------------------------------------------------- PLINK 2
def write_pgen(base, values, dosage=True, psam=None, pvar=None):
    """Write ``values`` (n x m, NaN missing) with pgenlib, plus .psam and .pvar."""
    import pgenlib

    n, m = values.shape
    psam = psam if psam is not None else "#FID\tIID\tPAT\tMAT\tSEX\tPHENO1\n" + "".join(
        f"F{i}\tI{i}\t0\t0\t{1 + i % 2}\t{i}.25\n" for i in range(n))
    pvar = pvar if pvar is not None else "##fileformat=PVARv1.0\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n" + "".join(
        f"3\t{500 + j}\tsnp{j}\tC\tT\t.\t.\t.\n" for j in range(m))
    (base.parent / (base.name + ".psam")).write_text(psam)
    (base.parent / (base.name + ".pvar")).write_text(pvar)
    variant_major = np.ascontiguousarray(values.T)
    with pgenlib.PgenWriter(str(base.parent / (base.name + ".pgen")).encode(), n, variant_ct=m,
                            nonref_flags=False, dosage_present=dosage) as writer:
        if dosage:
            writer.append_dosages_batch(np.where(np.isnan(variant_major), -9, variant_major).astype(np.float32))
        else:
            writer.append_biallelic_batch(np.where(np.isnan(variant_major), -9, variant_major).astype(np.int8))


def pgen_dosages(n=13, m=7, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 9, size=(n, m)) / 4.0  # multiples of 1/4: exact in a .pgen
    x[rng.random((n, m)) < 0.1] = np.nan
    return x


def test_read_pgen_dosages_equal_what_was_written(tmp_path):
    x = pgen_dosages()
    write_pgen(tmp_path / "d", x)
    for given in (tmp_path / "d", str(tmp_path / "d") + ".pgen"):
        G = read_pgen(given)
        assert G.shape == x.shape
        np.testing.assert_array_equal(G.read(), x)
    s, v = G.samples, G.variants
    assert s["fid"].tolist() == [f"F{i}" for i in range(13)]
    assert s["iid"].tolist() == [f"I{i}" for i in range(13)]
    assert s["sex"].tolist() == [1 + i % 2 for i in range(13)]
    np.testing.assert_allclose(s["phenotype"], [i + 0.25 for i in range(13)])
    assert v["id"].tolist() == [f"snp{j}" for j in range(7)]
    assert v["pos"].tolist() == list(range(500, 507))
    assert v["a1"].tolist() == ["T"] * 7 and v["a2"].tolist() == ["C"] * 7  # ALT counted
    rows = [12, 3, 0, 7]  # unsorted sample subset
    np.testing.assert_array_equal(G.read(samples=rows, variants=[6, 2, 3]), x[rows][:, [6, 2, 3]])
    twin = Genotypes.from_array(x)
    torch.testing.assert_close(G.standardized(), twin.standardized())
    torch.testing.assert_close(G.subset(samples=rows).standardized(),
                               twin.subset(samples=rows).standardized())


def test_read_pgen_hard_calls_with_fam_and_bim(tmp_path):
    x = dosages().astype(float)
    write_pgen(tmp_path / "h", x, dosage=False)
    to_bed(tmp_path / "plink1.bed", x.astype(np.float32), properties=PROPERTIES)
    for ext in (".psam", ".pvar"):
        (tmp_path / ("h" + ext)).unlink()
    for ext in (".fam", ".bim"):
        (tmp_path / ("h" + ext)).write_text((tmp_path / ("plink1" + ext)).read_text())
    G = read_pgen(tmp_path / "h")
    np.testing.assert_array_equal(G.read(), x)
    assert G.samples["iid"].tolist() == PROPERTIES["iid"]
    assert G.variants["id"].tolist() == PROPERTIES["sid"]


def test_psam_with_iid_only_and_headerless_pvar(tmp_path):
    x = pgen_dosages(n=4, m=2)
    write_pgen(tmp_path / "q", x, psam="#IID\tSEX\na\tNA\nb\t2\nc\t1\nd\t1\n",
               pvar="1\tv1\t0.5\t100\tT\tC\n1\tv2\t0.7\t200\tG\tA\n")
    G = read_pgen(tmp_path / "q")
    assert G.samples["fid"].tolist() == ["0"] * 4
    assert G.samples["sex"].tolist() == [0, 2, 1, 1]
    assert np.isnan(G.samples["phenotype"]).all()
    assert G.variants[["id", "cm", "pos", "a1", "a2"]].values.tolist() == [
        ["v1", 0.5, 100, "T", "C"], ["v2", 0.7, 200, "G", "A"]]


def test_pgen_errors(tmp_path):
    x = pgen_dosages(n=4, m=3)
    write_pgen(tmp_path / "e", x)
    with pytest.raises(MissingFileError, match=r"PLINK 2 \.pgen file not found: .*nothere\.pgen"):
        read_pgen(tmp_path / "nothere")
    pvar = tmp_path / "e.pvar"
    good = pvar.read_text()
    pvar.write_text(good.replace("snp1\tC\tT", "snp1\tC\tT,G"))
    with pytest.raises(FileFormatError, match=r"e\.pvar, line 4: variant has several ALT alleles \('T,G'\)"):
        read_pgen(tmp_path / "e")
    pvar.write_text(good.replace("3\t502\t", "3\tfar\t"))
    with pytest.raises(FileFormatError, match=r"e\.pvar, line 5: POS is 'far'; expected an integer"):
        read_pgen(tmp_path / "e")
    pvar.write_text(good + "3\t999\textra\tC\tT\t.\t.\t.\n")
    with pytest.raises(FileFormatError, match=r"e\.pgen: holds 4 samples x 3 variants but the sample and variant tables list 4 x 4"):
        read_pgen(tmp_path / "e")
    pvar.write_text(good)
    pgen = tmp_path / "e.pgen"
    kept = pgen.read_bytes()
    pgen.write_bytes(b"garbage!")
    with pytest.raises(FileFormatError, match=r"e\.pgen: pgenlib cannot open it: .*magic number"):
        read_pgen(tmp_path / "e")
    pgen.write_bytes(kept)
    psam = tmp_path / "e.psam"
    psam.write_text(psam.read_text() + "F1\tI1\t0\t0\t1\t1\n")
    with pytest.raises(SampleError, match="FID 'F1' IID 'I1' appears on lines 3 and 6"):
        read_pgen(tmp_path / "e")
    psam.write_text("#FID\tSEX\nF0\t1\n")
    with pytest.raises(FileFormatError, match=r"e\.psam, line 1: header names no IID column"):
        read_pgen(tmp_path / "e")
    psam.unlink()
    with pytest.raises(MissingFileError, match=r"\.psam \(or \.fam\) file not found"):
        read_pgen(tmp_path / "e")


def test_missing_pgenlib_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pgenlib", None)  # import pgenlib -> ImportError
    with pytest.raises(MissingExtraError, match=r"pgenlib.*pip install 'torchgenetics\[pgen\]'"):
        read_pgen(tmp_path / "anything")


def test_bed_and_pgen_tables_share_columns(fileset, tmp_path):
    prefix, x = fileset
    write_pgen(tmp_path / "t", pgen_dosages(n=3, m=2))
    for G in (read_plink(prefix), read_pgen(tmp_path / "t")):
        assert list(G.samples.columns) == ["fid", "iid", "father", "mother", "sex", "phenotype"]
        assert list(G.variants.columns) == ["chrom", "id", "cm", "pos", "a1", "a2"]
        assert isinstance(G.samples, pd.DataFrame)
