"""Genotypes: statistics, standardized blocks, subsets, laziness (in-memory sources)."""

import threading

import numpy as np
import pandas as pd
import pytest
import torch

from torchgenetics.errors import InputError, MemoryBudgetError, SampleError
from torchgenetics.genotypes import ArraySource, Genotypes, VariantStats


def random_dosages(n=30, m=25, missing=0.1, seed=0):
    """Hard calls with missing entries plus three special columns:
    monomorphic (all 1), all missing, and a single non-missing call."""
    rng = np.random.default_rng(seed)
    x = rng.binomial(2, rng.uniform(0.05, 0.6, m), size=(n, m)).astype(float)
    x[rng.random((n, m)) < missing] = np.nan
    if m > 11:
        x[:, 3] = 1.0
        x[:, 7] = np.nan
        x[:, 11] = np.nan
        x[5, 11] = 2.0
    return x


def hand_standardized(x, scale="empirical"):
    """Reference standardization written out column by column."""
    columns, kept = [], []
    for j in range(x.shape[1]):
        calls = x[:, j][~np.isnan(x[:, j])]
        if calls.size < 2 or np.all(calls == calls[0]):
            continue
        mean = calls.mean()
        if scale == "empirical":
            sd = np.sqrt(((calls - mean) ** 2).mean())
        else:
            p = mean / 2
            sd = np.sqrt(2 * p * (1 - p))
        z = (x[:, j] - mean) / sd
        columns.append(np.where(np.isnan(x[:, j]), 0.0, z))
        kept.append(j)
    return np.column_stack(columns), np.array(kept)


class CountingSource(ArraySource):
    """ArraySource that records every block it is asked to read."""

    def __init__(self, values):
        super().__init__(values)
        self.calls = []

    def read(self, samples, variants, dtype):
        self.calls.append((samples, variants))
        return super().read(samples, variants, dtype)

    def variants_read(self):
        out = []
        for _, v in self.calls:
            out.extend(range(v.start, v.stop) if isinstance(v, slice) else list(v))
        return out


# ---------------------------------------------------------------------- statistics
def test_stats_with_missing_calls_match_hand_computation():
    x = random_dosages()
    s = Genotypes.from_array(x).stats
    assert isinstance(s, VariantStats)
    observed = ~np.isnan(x)
    np.testing.assert_array_equal(s.call_count, observed.sum(0))
    with np.errstate(invalid="ignore"):
        mean = np.where(observed, x, 0).sum(0) / observed.sum(0)
    np.testing.assert_allclose(s.mean, mean, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(s.allele_freq, mean / 2, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(s.missing_rate, 1 - observed.mean(0), rtol=1e-12)
    for j in range(x.shape[1]):
        calls = x[observed[:, j], j]
        if j in (3, 11):  # constant, single call: variance 0, not polymorphic
            assert s.var[j] == 0.0 and not s.polymorphic[j]
        elif j == 7:  # no calls
            assert np.isnan(s.mean[j]) and np.isnan(s.var[j]) and not s.polymorphic[j]
        else:
            np.testing.assert_allclose(s.var[j], calls.var(), rtol=1e-12)
            assert s.polymorphic[j]
    assert s.n_monomorphic == 3
    frame = s.to_frame()
    assert list(frame.columns) == ["call_count", "missing_rate", "mean", "allele_freq", "var", "polymorphic"]
    assert len(frame) == x.shape[1]


def test_stats_are_computed_once_in_one_pass_and_cached():
    x = random_dosages(n=12, m=40)
    source = CountingSource(np.asfortranarray(x))
    G = Genotypes(source, None, None)
    first = G.stats
    assert sorted(G.source.variants_read()) == list(range(40))  # each variant read exactly once
    n_calls = len(source.calls)
    assert G.stats is first
    assert len(source.calls) == n_calls


def test_constant_non_integer_dosage_is_monomorphic():
    x = np.full((1001, 2), 0.3)
    x[0, 1] = 0.1
    s = Genotypes.from_array(x).stats
    assert s.polymorphic.tolist() == [False, True]
    assert s.var[0] == 0.0


# ---------------------------------------------------------------------- standardization
@pytest.mark.parametrize("scale", ["empirical", "hwe"])
def test_standardized_matches_hand_computation(scale):
    x = random_dosages()
    expected, kept = hand_standardized(x, scale)
    G = Genotypes.from_array(x)
    np.testing.assert_array_equal(G.polymorphic_index(), kept)
    Z = G.standardized(scale=scale)
    assert Z.dtype == torch.float64 and Z.shape == expected.shape
    np.testing.assert_allclose(Z.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_standardized_small_example_by_hand():
    # column 0: calls 0, 2 (mean 1, sd 1); missing call -> 0. column 1 monomorphic.
    G = Genotypes.from_array([[0, 1], [2, 1], [np.nan, 1]])
    assert G.standardized().tolist() == [[-1.0], [1.0], [0.0]]
    hwe = G.standardized(scale="hwe")  # p = 0.5, sd = sqrt(0.5)
    np.testing.assert_allclose(hwe.numpy().ravel(), [-np.sqrt(2), np.sqrt(2), 0.0])


@pytest.mark.parametrize("block_size", [1, 4, 7, 1000, None])
def test_blocks_cover_each_polymorphic_variant_once_in_order(block_size):
    x = random_dosages()
    G = Genotypes.from_array(x)
    pieces = list(G.blocks(block_size=block_size))
    index = np.concatenate([i for i, _ in pieces])
    np.testing.assert_array_equal(index, G.polymorphic_index())
    assert G.stats.n_monomorphic == x.shape[1] - len(index)
    for i, block in pieces:
        assert i.dtype == np.int64 and block.shape == (x.shape[0], len(i))
        if block_size is not None:
            assert len(i) <= block_size
    torch.testing.assert_close(torch.cat([b for _, b in pieces], dim=1), G.standardized(),
                               rtol=0, atol=0)
    if block_size == 1000:
        assert len(pieces) == 1


def test_blocks_over_a_variant_selection_keep_its_order():
    G = Genotypes.from_array(random_dosages())
    chosen = np.array([20, 3, 9, 0, 7, 15])
    index = np.concatenate([i for i, _ in G.blocks(block_size=2, variants=chosen)])
    np.testing.assert_array_equal(index, [20, 9, 0, 15])  # 3 and 7 monomorphic
    Z = torch.cat([b for _, b in G.blocks(variants=chosen)], dim=1)
    full = G.standardized()
    columns = [int(np.flatnonzero(G.polymorphic_index() == j)[0]) for j in index]
    torch.testing.assert_close(Z, full[:, columns], rtol=0, atol=0)


def test_raw_blocks_return_every_variant_with_nan():
    x = random_dosages()
    G = Genotypes.from_array(x)
    pieces = list(G.blocks(block_size=6, standardize=False))
    np.testing.assert_array_equal(np.concatenate([i for i, _ in pieces]), np.arange(x.shape[1]))
    raw = torch.cat([b for _, b in pieces], dim=1).numpy()
    np.testing.assert_array_equal(raw, x)  # NaN positions equal too (assert_array_equal treats NaN==NaN)


def test_prefetch_on_and_off_give_identical_blocks():
    G = Genotypes.from_array(random_dosages(n=50, m=60))
    on = list(G.blocks(block_size=5, prefetch=True))
    off = list(G.blocks(block_size=5, prefetch=False))
    assert len(on) == len(off) > 1
    for (i1, b1), (i2, b2) in zip(on, off, strict=True):
        np.testing.assert_array_equal(i1, i2)
        assert torch.equal(b1, b2)


def test_blocks_are_fresh_tensors_and_do_not_touch_the_source():
    x = random_dosages()
    G = Genotypes.from_array(x)
    (_, first), = G.blocks(block_size=100)
    first.fill_(99.0)
    np.testing.assert_array_equal(G.read(), x)
    (_, again), = G.blocks(block_size=100)
    torch.testing.assert_close(again, G.standardized())


def test_device_and_float32():
    x = random_dosages()
    G = Genotypes.from_array(x)
    for _, block in G.blocks(block_size=8, device="cpu", dtype=torch.float32):
        assert block.dtype == torch.float32 and block.device.type == "cpu"
    Z32 = G.standardized(device=torch.device("cpu"), dtype=torch.float32)
    assert Z32.dtype == torch.float32
    torch.testing.assert_close(Z32.double(), G.standardized(), rtol=1e-6, atol=1e-6)
    raw32 = torch.cat([b for _, b in G.blocks(dtype=torch.float32, standardize=False)], 1)
    np.testing.assert_array_equal(raw32.numpy(), x.astype(np.float32))


def test_sample_sq_norms_equal_row_sums_of_squares():
    G = Genotypes.from_array(random_dosages())
    Z = G.standardized()
    torch.testing.assert_close(G.sample_sq_norms(), (Z ** 2).sum(1))
    hwe = G.standardized(scale="hwe")
    torch.testing.assert_close(G.sample_sq_norms(scale="hwe"), (hwe ** 2).sum(1))
    chosen = [0, 1, 2, 4, 9]
    Zs = torch.cat([b for _, b in G.blocks(variants=chosen)], 1)
    torch.testing.assert_close(G.sample_sq_norms(variants=chosen), (Zs ** 2).sum(1))
    norms32 = G.sample_sq_norms(dtype=torch.float32)
    assert norms32.dtype == torch.float32 and norms32.shape == (G.n_samples,)


def test_sample_sq_norms_are_cached_per_variant_set():
    x = random_dosages()
    source = CountingSource(np.asfortranarray(x))
    G = Genotypes(source, None, None)
    _ = G.stats
    before = len(source.calls)
    a = G.sample_sq_norms()
    after_first = len(source.calls)
    assert after_first > before
    b = G.sample_sq_norms()
    assert len(source.calls) == after_first
    torch.testing.assert_close(a, b)
    G.sample_sq_norms(variants=[0, 1, 2])
    assert len(source.calls) > after_first  # another variant set: another pass


# ---------------------------------------------------------------------- laziness and memory
def test_blocks_read_only_the_variants_asked_for():
    x = random_dosages(n=10, m=50)
    source = CountingSource(np.asfortranarray(x))
    G = Genotypes(source, None, None)
    list(G.blocks(standardize=False, variants=[40, 41, 42, 10]))
    assert sorted(source.variants_read()) == [10, 40, 41, 42]


def test_default_block_size_follows_the_memory_budget(monkeypatch):
    G = Genotypes.from_array(random_dosages(n=100, m=40))
    _ = G.stats
    # 100 samples x 8 bytes x 2 live blocks = 1600 bytes per column.
    monkeypatch.setenv("TORCHGEN_MEMORY_BUDGET", str(1600 * 3))
    sizes = [len(i) for i, _ in G.blocks(standardize=False)]
    assert max(sizes) == 3 and sum(sizes) == 40
    sizes = [len(i) for i, _ in G.blocks(standardize=False, prefetch=False)]
    assert max(sizes) == 6  # one live block
    monkeypatch.setenv("TORCHGEN_MEMORY_BUDGET", "100")
    with pytest.raises(MemoryBudgetError):
        G.blocks(standardize=False)


@pytest.mark.parametrize("block_size", [2, 40])  # 40 columns: helper lanes standardize too
def test_abandoned_generator_stops_its_threads(block_size):
    G = Genotypes.from_array(random_dosages(n=20, m=200))
    _ = G.stats
    before = threading.active_count()
    gen = G.blocks(block_size=block_size)
    next(gen)
    assert threading.active_count() > before
    gen.close()
    assert threading.active_count() == before


def test_errors_in_the_worker_reach_the_caller():
    class Broken(ArraySource):
        def read(self, samples, variants, dtype):
            if isinstance(variants, slice) and variants.start >= 4:
                raise OSError("disk went away")
            return super().read(samples, variants, dtype)

    G = Genotypes(Broken(np.zeros((3, 10))), None, None)
    with pytest.raises(OSError, match="disk went away"):
        list(G.blocks(block_size=2, standardize=False))


# ---------------------------------------------------------------------- subsets
def test_subset_by_samples_recomputes_stats_for_its_samples():
    x = random_dosages()
    G = Genotypes.from_array(x)
    _ = G.stats
    rows = [25, 3, 17, 8, 0, 11, 5, 29]
    H = G.subset(samples=rows)
    reference = Genotypes.from_array(x[rows])
    np.testing.assert_array_equal(H.stats.call_count, reference.stats.call_count)
    np.testing.assert_allclose(H.stats.var, reference.stats.var, equal_nan=True)
    torch.testing.assert_close(H.standardized(), reference.standardized())
    torch.testing.assert_close(H.sample_sq_norms(), reference.sample_sq_norms())
    assert H.samples["iid"].tolist() == [f"s{r}" for r in rows]
    np.testing.assert_array_equal(H.read(), x[rows])


def test_subset_by_variants_slices_the_parents_cached_stats():
    x = random_dosages()
    source = CountingSource(np.asfortranarray(x))
    G = Genotypes(source, None, None)
    parent = G.stats
    n_calls = len(source.calls)
    cols = [24, 2, 3, 10, 11]
    H = G.subset(variants=cols)
    s = H.stats
    assert len(source.calls) == n_calls  # nothing read
    np.testing.assert_array_equal(s.mean, parent.mean[cols])
    np.testing.assert_array_equal(s.polymorphic, parent.polymorphic[cols])
    assert H.variants["id"].tolist() == [f"v{c}" for c in cols]
    # a variant view made before the parent's stats exist also reuses them later
    G2 = Genotypes.from_array(x)
    H2 = G2.subset(variants=slice(0, 5))
    _ = G2.stats
    np.testing.assert_array_equal(H2.stats.call_count, G2.stats.call_count[:5])


def test_subset_of_subset_with_masks_and_slices():
    x = random_dosages()
    G = Genotypes.from_array(x)
    mask = np.zeros(x.shape[0], dtype=bool)
    mask[[1, 4, 9, 16, 25]] = True
    H = G.subset(samples=mask, variants=slice(None, None, 2)).subset(samples=[4, 0], variants=[1, 0])
    np.testing.assert_array_equal(H.read(), x[[25, 1]][:, [2, 0]])
    assert H.shape == (2, 2)
    torch.testing.assert_close(H.standardized(), Genotypes.from_array(x[[25, 1]][:, [2, 0]]).standardized())


def test_subset_rejects_bad_selections():
    G = Genotypes.from_array(random_dosages(n=5, m=4))
    with pytest.raises(InputError, match="variant position 4 is out of range"):
        G.subset(variants=[4])
    with pytest.raises(InputError, match="sample mask has shape"):
        G.subset(samples=np.ones(3, dtype=bool))
    with pytest.raises(InputError, match="integer positions"):
        G.subset(samples=[0.5])
    with pytest.raises(SampleError, match="IID 's2'"):
        G.subset(samples=[2, 1, 2])


# ---------------------------------------------------------------------- from_array and read
def test_from_array_defaults_and_tables():
    G = Genotypes.from_array(torch.tensor([[0.0, 1.0, 2.0], [2.0, float("nan"), 0.0]]))
    assert G.shape == (2, 3) and G.n_samples == 2 and G.n_variants == 3
    assert list(G.samples.columns) == ["fid", "iid", "father", "mother", "sex", "phenotype"]
    assert G.samples["iid"].tolist() == ["s0", "s1"]
    assert list(G.variants.columns) == ["chrom", "id", "cm", "pos", "a1", "a2"]
    assert G.variants["id"].tolist() == ["v0", "v1", "v2"]
    samples = pd.DataFrame({"iid": ["a", "b"], "age": [30, 40]})
    variants = pd.DataFrame({"id": ["rs1", "rs2", "rs3"], "pos": [10, 20, 30]})
    H = Genotypes.from_array([[0, 1, 2], [2, 1, 0]], samples=samples, variants=variants)
    assert H.samples["iid"].tolist() == ["a", "b"] and H.samples["age"].tolist() == [30, 40]
    assert H.variants["pos"].tolist() == [10, 20, 30] and H.variants["chrom"].tolist() == ["0"] * 3
    assert "Genotypes(n_samples=2, n_variants=3" in repr(H)


def test_from_array_copies_its_input():
    x = np.array([[0.0, 1.0], [2.0, 1.0]])
    G = Genotypes.from_array(x)
    x[0, 0] = 2.0
    assert G.read()[0, 0] == 0.0


def test_from_array_rejects_bad_input():
    with pytest.raises(InputError, match=r"sample 1 \(IID .s1.\), variant 0 \(ID .v0.\) is 3.0"):
        Genotypes.from_array([[0, 1], [3, 1]])
    with pytest.raises(InputError, match=r"sample 0 \(IID .s0.\), variant 1 \(ID .v1.\) is -1.0"):
        Genotypes.from_array([[0, -1]])
    with pytest.raises(InputError, match="2-D"):
        Genotypes.from_array([0, 1, 2])
    with pytest.raises(InputError, match="sample table has 3 rows"):
        Genotypes.from_array([[0, 1]], samples=pd.DataFrame({"iid": ["a", "b", "c"]}))
    with pytest.raises(InputError, match="variant table has 1 rows"):
        Genotypes.from_array([[0, 1]], variants=pd.DataFrame({"id": ["a"]}))
    with pytest.raises(SampleError, match="IID 'a' appears 2 times"):
        Genotypes.from_array([[0], [1]], samples=pd.DataFrame({"iid": ["a", "a"]}))


def test_read_selects_and_converts():
    x = random_dosages(n=6, m=5)
    G = Genotypes.from_array(x)
    np.testing.assert_array_equal(G.read(), x)
    got = G.read(variants=[4, 0], samples=slice(1, 4), dtype=np.float32)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, x[1:4][:, [4, 0]].astype(np.float32))
    with pytest.raises(InputError, match="float32 or float64"):
        G.read(dtype=np.int8)


def test_blocks_argument_checks():
    G = Genotypes.from_array(random_dosages(n=5, m=4))
    with pytest.raises(InputError, match="block_size"):
        G.blocks(block_size=0)
    with pytest.raises(InputError, match="scale"):
        G.blocks(scale="gcta")
    with pytest.raises(InputError, match="floating"):
        G.blocks(dtype=torch.int64)


def test_verbose_progress_bar(capsys):
    G = Genotypes.from_array(random_dosages(n=5, m=4))
    assert len(list(G.blocks(verbose=True, standardize=False))) == 1
    assert "genotype blocks" in capsys.readouterr().err


def test_all_monomorphic_gives_no_blocks_and_an_empty_matrix():
    G = Genotypes.from_array([[1, 0, np.nan], [1, 0, 2], [1, 0, np.nan]])
    assert G.stats.n_monomorphic == 3
    assert list(G.blocks()) == []
    assert G.standardized().shape == (3, 0)
    torch.testing.assert_close(G.sample_sq_norms(), torch.zeros(3, dtype=torch.float64))
    assert [i.tolist() for i, _ in G.blocks(standardize=False)] == [[0, 1, 2]]


# ---------------------------------------------------------------------- PLINK .bed: packed decoding
def write_bed(path, n, m=23, seed=0):
    """Random hard calls with 10% missing, written by bed-reader; column 3 all missing,
    column 4 monomorphic, column 5 a single call. Returns bed-reader's own decode."""
    from bed_reader import open_bed, to_bed

    rng = np.random.default_rng(seed)
    x = rng.binomial(2, rng.uniform(0.05, 0.6, m), size=(n, m)).astype(np.float32)
    x[rng.random((n, m)) < 0.1] = np.nan
    x[:, 3] = np.nan
    x[:, 4] = 2.0
    x[:, 5] = np.nan
    x[n // 2, 5] = 1.0
    to_bed(path, x)
    decoded = open_bed(path).read(dtype="float64")  # count_A1=True, as read_plink
    np.testing.assert_array_equal(decoded, x)
    return decoded


def bed_reference(x, stats, dtype, scale="empirical"):
    """Standardized columns of bed-reader's decode ``x``, rounded step by step as
    ``x * inv_sd + (-mean * inv_sd)`` in ``dtype``; missing -> 0; polymorphic only."""
    keep = stats.polymorphic
    inv_sd = (1.0 / stats.sd(scale)[keep]).astype(dtype)
    shift = -stats.mean[keep].astype(dtype) * inv_sd
    calls = x[:, keep]
    z = np.nan_to_num(calls).astype(dtype) * inv_sd + shift
    return np.where(np.isnan(calls), dtype(0), z)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 401])  # 4 samples a byte: odd n leave padding
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bed_blocks_equal_bed_reader_decode_bit_for_bit(tmp_path, n, dtype):
    from torchgenetics.io.plink import read_plink

    x = write_bed(tmp_path / "g.bed", n, seed=n)
    G, twin = read_plink(tmp_path / "g.bed"), Genotypes.from_array(x)
    for field in ("call_count", "mean", "var", "polymorphic"):  # same pass, same rounding
        np.testing.assert_array_equal(getattr(G.stats, field), getattr(twin.stats, field))
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    for scale in ("empirical", "hwe"):
        expected = bed_reference(x, G.stats, np_dtype, scale)
        pieces = list(G.blocks(block_size=5, dtype=dtype, scale=scale))
        Z = torch.cat([b for _, b in pieces], dim=1) if pieces else torch.zeros((n, 0), dtype=dtype)
        assert Z.dtype == dtype
        np.testing.assert_array_equal(Z.numpy(), expected)
        assert not np.signbit(Z.numpy()[np.isnan(x[:, G.stats.polymorphic])]).any()  # +0.0
        torch.testing.assert_close(Z, twin.standardized(dtype=dtype, scale=scale))
    for _, block in G.blocks(block_size=4, dtype=dtype):  # layout: n x b, columns contiguous
        assert block.shape[0] == n and block.stride() == (1, n)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bed_sample_and_variant_subsets_equal_bed_reader_decode(tmp_path, dtype):
    from bed_reader import open_bed

    from torchgenetics.io.plink import read_plink

    n = 37
    write_bed(tmp_path / "g.bed", n, m=40, seed=7)
    rng = np.random.default_rng(3)
    rows = rng.permutation(n)[:17]  # shuffled, not a multiple of 4
    cols = rng.permutation(40)[:29]
    H = read_plink(tmp_path / "g.bed").subset(samples=rows, variants=cols)
    x = open_bed(tmp_path / "g.bed").read(index=np.s_[rows, cols], dtype="float64")
    twin = Genotypes.from_array(x)
    for field in ("call_count", "mean", "var", "polymorphic"):
        np.testing.assert_array_equal(getattr(H.stats, field), getattr(twin.stats, field))
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    Z = torch.cat([b for _, b in H.blocks(block_size=3, dtype=dtype, prefetch=True)], dim=1)
    np.testing.assert_array_equal(Z.numpy(), bed_reference(x, H.stats, np_dtype))
    np.testing.assert_array_equal(H.polymorphic_index(), twin.polymorphic_index())
    torch.testing.assert_close(H.sample_sq_norms(), twin.sample_sq_norms())


def test_bed_packed_bytes_decode_to_bed_reader_dosages(tmp_path):
    from bed_reader import open_bed

    from torchgenetics.genotypes import PACKED_DOSAGES
    from torchgenetics.io.plink import BedSource

    n, m = 11, 6
    x = write_bed(tmp_path / "g.bed", n, m=m, seed=2)
    source = BedSource(tmp_path / "g.bed", n, m)
    for samples, variants in ((None, slice(0, m)), (None, np.array([5, 0, 2])),
                              (np.array([10, 0, 3, 4, 9]), slice(1, 5)), (np.array([7]), np.array([3, 1]))):
        packed = source.read_packed(samples, variants)
        count = n if samples is None else len(samples)
        assert packed.dtype == np.uint8 and packed.shape[1] == (count + 3) // 4
        codes = (packed[:, :, None] >> np.arange(0, 8, 2, dtype=np.uint8)) & 3
        dosages = PACKED_DOSAGES[codes.reshape(len(packed), -1)[:, :count]].T
        rows = np.arange(n) if samples is None else samples
        expected = open_bed(tmp_path / "g.bed").read(index=np.s_[rows, variants], dtype="float64")
        np.testing.assert_array_equal(dosages, expected)
        np.testing.assert_array_equal(dosages, x[rows][:, variants])


def test_bed_decoding_in_small_chunks_and_single_lane(tmp_path, monkeypatch):
    import torchgenetics.genotypes as genotypes
    from torchgenetics.io.plink import read_plink

    x = write_bed(tmp_path / "g.bed", 30, m=50, seed=5)
    G = read_plink(tmp_path / "g.bed")
    whole = G.standardized(dtype=torch.float32)
    monkeypatch.setattr(genotypes, "_DECODE_CHUNK_BYTES", 1)  # one variant per chunk
    one_lane = read_plink(tmp_path / "g.bed", num_threads=1)
    chunked = torch.cat([b for _, b in one_lane.blocks(block_size=16, dtype=torch.float32)], 1)
    assert torch.equal(chunked, whole)
    np.testing.assert_array_equal(one_lane.stats.var, Genotypes.from_array(x).stats.var)


def test_bed_source_pickles_without_its_bytes_and_checks_the_file(tmp_path):
    import pickle

    from torchgenetics.errors import FileFormatError
    from torchgenetics.io.plink import BedSource

    x = write_bed(tmp_path / "g.bed", 40, m=200, seed=1)
    source = BedSource(tmp_path / "g.bed", 40, 200)
    payload = pickle.dumps(source)
    assert len(payload) < 1000  # the file is 2,003 bytes: reopened, not copied
    again = pickle.loads(payload)
    np.testing.assert_array_equal(again.read_packed(None, slice(0, 200)), source.read_packed(None, slice(0, 200)))
    np.testing.assert_array_equal(again.read(None, slice(0, 200), np.float64), x)
    with pytest.raises(FileFormatError, match=r"should have 3 \+ 200 x ceil\(41/4\)"):
        BedSource(tmp_path / "g.bed", 41, 200)
