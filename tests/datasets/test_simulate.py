"""Tests of the genotype and phenotype simulators and the PLINK writer."""

import numpy as np
import pandas as pd
import pytest
from bed_reader import open_bed

from torchgenetics.datasets import (
    SimulatedGenotypes,
    simulate_genotypes,
    simulate_phenotype,
    write_plink,
)
from torchgenetics.errors import ComponentSpecError, InputError


def _standardize(X):
    mu, sd = np.nanmean(X, 0), np.nanstd(X, 0)
    keep = sd > 0
    Z = (X[:, keep] - mu[keep]) / sd[keep]
    Z[np.isnan(Z)] = 0.0
    return Z


def _lag_r2(Z, lag):
    r = (Z[:, :-lag] * Z[:, lag:]).mean(0)
    return float((r**2).mean())


@pytest.fixture(scope="module")
def ld_sim():
    return simulate_genotypes(2000, 2000, chromosomes=2, seed=11)


# ----------------------------------------------------------------------------- genotypes


def test_shapes_tables_and_values():
    sim = simulate_genotypes(300, 500, chromosomes=[300, 200], seed=1)
    assert isinstance(sim, SimulatedGenotypes)
    assert sim.dosages.shape == (300, 500) and sim.dosages.dtype == np.float64
    assert set(np.unique(sim.dosages)) <= {0.0, 1.0, 2.0}
    v, s = sim.variants, sim.samples
    assert list(v.columns) == ["chrom", "id", "cm", "pos", "a1", "a2"]
    assert list(s.columns) == ["fid", "iid", "father", "mother", "sex", "phenotype"]
    assert v["chrom"].value_counts().to_dict() == {"1": 300, "2": 200}
    assert v["id"].is_unique and s["iid"].is_unique
    assert (v["a1"] != v["a2"]).all()
    for _, grp in v.groupby("chrom"):
        assert np.all(np.diff(grp["pos"].to_numpy()) > 0)
        assert np.all(np.diff(grp["cm"].to_numpy()) >= 0)
    # Default map: 0.02 cM per SNP.
    assert v.loc[v.chrom == "1", "cm"].max() == pytest.approx(6.0, rel=1e-6)
    assert set(s["sex"]) <= {1, 2} and s["phenotype"].isna().all()
    assert sim.allele_freq.shape == (500,) and sim.allele_freq.max() <= 0.5
    assert "n=300, m=500" in repr(sim)


def test_chromosome_int_splits_evenly_and_dtype():
    sim = simulate_genotypes(50, 10, chromosomes=3, seed=2, dtype=np.float32)
    assert sim.variants["chrom"].tolist() == ["1"] * 4 + ["2"] * 3 + ["3"] * 3
    assert sim.dosages.dtype == np.float32


def test_ld_decays_with_distance(ld_sim):
    Z = _standardize(ld_sim.dosages)
    chr1 = Z[:, :1000]
    adjacent = _lag_r2(chr1, 1)
    assert adjacent > 0.2
    assert adjacent > _lag_r2(chr1, 5) > _lag_r2(chr1, 50)
    # Far apart on one chromosome (>= 10 cM): only sampling noise (E r^2 = 1/n = 0.0005).
    assert _lag_r2(chr1, 500) < 0.01
    # Different chromosomes.
    cross = (Z[:, :1000].T @ Z[:, 1000:]) / Z.shape[0]
    assert float((cross**2).mean()) < 0.01
    assert float((cross**2).mean()) == pytest.approx(1 / 2000, rel=0.2)


def test_ld_strength_follows_segment_length():
    short = simulate_genotypes(1000, 1000, seed=3, segment_cm=0.05)
    long = simulate_genotypes(1000, 1000, seed=3, segment_cm=1.0)
    assert _lag_r2(_standardize(long.dosages), 10) > 2 * _lag_r2(_standardize(short.dosages), 10)


def test_neutral_spectrum_has_many_rare_variants():
    neutral = simulate_genotypes(2000, 3000, seed=4, spectrum="neutral", maf_min=0.0)
    uniform = simulate_genotypes(2000, 3000, seed=4, spectrum="uniform", maf_min=0.0)

    def maf(X):
        f = np.nanmean(X, 0) / 2
        return np.minimum(f, 1 - f)

    rare_neutral = float((maf(neutral.dosages) < 0.01).mean())
    rare_uniform = float((maf(uniform.dosages) < 0.01).mean())
    assert rare_neutral > 0.3
    assert rare_neutral > 5 * rare_uniform
    # Sample frequencies are binomial draws around the panel frequencies.
    err = np.abs(np.nanmean(neutral.dosages, 0) / 2 - neutral.allele_freq)
    assert float(err.mean()) < 0.005


def test_beta_spectrum_is_u_shaped_and_maf_floor_holds():
    sim = simulate_genotypes(1000, 4000, seed=5, spectrum="beta", beta=(0.3, 0.3), maf_min=0.05)
    p = sim.allele_freq
    assert p.min() >= 0.05 and p.max() <= 0.5
    low, high = (p < 0.1).mean(), ((p >= 0.25) & (p < 0.3)).mean()
    assert low > 1.5 * high  # more mass near the floor than in the middle


def test_reproducible_and_seed_sensitive():
    a = simulate_genotypes(200, 300, chromosomes=2, seed=42, missing_rate=0.02)
    b = simulate_genotypes(200, 300, chromosomes=2, seed=42, missing_rate=0.02)
    c = simulate_genotypes(200, 300, chromosomes=2, seed=43, missing_rate=0.02)
    assert np.array_equal(a.dosages, b.dosages, equal_nan=True)
    pd.testing.assert_frame_equal(a.variants, b.variants)
    pd.testing.assert_frame_equal(a.samples, b.samples)
    assert not np.array_equal(a.dosages, c.dosages, equal_nan=True)
    assert a.seed == 42


def test_unseeded_draw_is_reproduced_from_its_seed():
    a = simulate_genotypes(50, 80, seed=None)
    b = simulate_genotypes(50, 80, seed=a.seed)
    assert np.array_equal(a.dosages, b.dosages)


def test_seed_sequence_is_not_consumed():
    ss = np.random.SeedSequence(7).spawn(1)[0]
    a = simulate_genotypes(40, 60, seed=ss)
    b = simulate_genotypes(40, 60, seed=ss)
    c = simulate_genotypes(40, 60, seed=a.seed)
    assert np.array_equal(a.dosages, b.dosages) and np.array_equal(a.dosages, c.dosages)


def test_missingness_only_masks_calls():
    full = simulate_genotypes(500, 400, seed=9)
    holed = simulate_genotypes(500, 400, seed=9, missing_rate=0.05)
    miss = np.isnan(holed.dosages)
    assert not np.isnan(full.dosages).any()
    assert miss.mean() == pytest.approx(0.05, abs=0.005)
    assert np.array_equal(full.dosages[~miss], holed.dosages[~miss])
    pd.testing.assert_frame_equal(full.samples, holed.samples)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n=0, m=10),
        dict(n=10, m=10, chromosomes=0),
        dict(n=10, m=10, chromosomes=[5, 6]),
        dict(n=10, m=10, chromosomes="two"),
        dict(n=10, m=10, n_founders=1),
        dict(n=10, m=10, spectrum="flat"),
        dict(n=10, m=10, maf_min=0.5),
        dict(n=10, m=10, missing_rate=1.0),
        dict(n=10, m=10, segment_cm=0),
        dict(n=10, m=10, length_cm=[1.0, 2.0]),
        dict(n=10, m=10, dtype=np.int8),
        dict(n=10, m=10, seed=-1),
        dict(n=10, m=10, seed=1.5),
    ],
)
def test_genotype_argument_errors(kwargs):
    with pytest.raises(InputError):
        simulate_genotypes(**kwargs)


# ----------------------------------------------------------------------------- phenotypes


@pytest.fixture(scope="module")
def pheno_sim():
    return simulate_genotypes(1000, 1000, chromosomes=2, seed=21, missing_rate=0.01)


def test_phenotype_decomposition_and_realized_h2(pheno_sim):
    ph = simulate_phenotype(pheno_sim, h2=0.4, n_causal=50, seed=1)
    assert ph.causal.shape == (50,) and np.all(np.diff(ph.causal) > 0)
    np.testing.assert_allclose(ph.y, ph.genetic_value + ph.residual)
    assert ph.realized_h2 == pytest.approx(np.var(ph.genetic_value) / np.var(ph.y))
    # Genetic value recomputed by hand from standardized dosages (missing -> 0).
    X = pheno_sim.dosages[:, ph.causal]
    Z = (X - np.nanmean(X, 0)) / np.nanstd(X, 0)
    Z[np.isnan(Z)] = 0.0
    np.testing.assert_allclose(Z @ ph.effects, ph.genetic_value, atol=1e-10)
    np.testing.assert_allclose(ph.allele_effects, ph.effects / np.nanstd(X, 0))
    assert "n_causal=50" in repr(ph)


def test_realized_h2_is_unbiased_over_replicates(pheno_sim):
    reps = [simulate_phenotype(pheno_sim, h2=0.5, n_causal=100, seed=s) for s in range(40)]
    realized = np.array([r.realized_h2 for r in reps])
    # Closed form per replicate: var(g) / var(y).
    closed = np.array([np.var(r.genetic_value) / np.var(r.y) for r in reps])
    np.testing.assert_allclose(realized, closed)
    assert realized.mean() == pytest.approx(0.5, abs=0.03)
    assert 0.01 < realized.std() < 0.15
    effects = np.concatenate([r.effects for r in reps])
    assert effects.var() == pytest.approx(0.5 / 100, rel=0.15)


def test_infinitesimal_default_uses_all_polymorphic(pheno_sim):
    ph = simulate_phenotype(pheno_sim, h2=0.3, seed=2)
    assert ph.causal.size == int((np.nanstd(pheno_sim.dosages, 0) > 0).sum())


def test_component_h2_targets(pheno_sim):
    comps = [np.arange(0, 500), np.arange(500, 1000)]
    reps = [
        simulate_phenotype(pheno_sim, h2=[0.35, 0.15], n_causal=[60, 40], components=comps, seed=s)
        for s in range(40)
    ]
    for r in reps:
        assert np.all(r.causal[r.causal_component == 0] < 500)
        assert np.all(r.causal[r.causal_component == 1] >= 500)
        assert np.bincount(r.causal_component).tolist() == [60, 40]
        np.testing.assert_allclose(r.genetic_components.sum(1), r.genetic_value)
    mean_c = np.mean([r.realized_h2_components for r in reps], axis=0)
    np.testing.assert_allclose(mean_c, [0.35, 0.15], atol=0.04)
    assert reps[0].h2 == pytest.approx(0.5)


def test_total_n_causal_split_by_component_size(pheno_sim):
    ph = simulate_phenotype(
        pheno_sim,
        h2=[0.2, 0.2],
        n_causal=40,
        components=[np.arange(800), np.arange(800, 1000)],
        seed=3,
    )
    assert np.bincount(ph.causal_component).tolist() == [32, 8]


def test_explicit_causal_and_realized_residual(pheno_sim):
    idx = np.array([5, 500, 900])
    ph = simulate_phenotype(pheno_sim, h2=0.6, causal=idx, residual="realized", seed=4)
    assert ph.causal.tolist() == [5, 500, 900]
    assert ph.realized_h2 == pytest.approx(0.6, abs=1e-12)
    mask = np.zeros(1000, bool)
    mask[idx] = True
    assert (
        simulate_phenotype(pheno_sim, h2=0.6, causal=mask, seed=4).causal.tolist() == idx.tolist()
    )


def test_covariates_are_added_outside_h2(pheno_sim):
    rng = np.random.default_rng(0)
    C = rng.standard_normal((1000, 2))
    base = simulate_phenotype(pheno_sim, h2=0.5, n_causal=20, seed=5)
    withc = simulate_phenotype(
        pheno_sim, h2=0.5, n_causal=20, covariates=C, covariate_effects=[1.0, -2.0], seed=5
    )
    np.testing.assert_allclose(withc.y - base.y, C @ [1.0, -2.0])
    assert withc.realized_h2 == base.realized_h2
    np.testing.assert_array_equal(withc.covariate_effects, [1.0, -2.0])


def test_phenotype_reproducible_and_accepts_arrays_and_tensors(pheno_sim):
    torch = pytest.importorskip("torch")
    a = simulate_phenotype(pheno_sim, h2=0.5, n_causal=10, seed=7)
    b = simulate_phenotype(pheno_sim.dosages, h2=0.5, n_causal=10, seed=7)
    c = simulate_phenotype(torch.from_numpy(pheno_sim.dosages), h2=0.5, n_causal=10, seed=7)
    d = simulate_phenotype(pheno_sim, h2=0.5, n_causal=10, seed=8)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.y, c.y)
    assert not np.array_equal(a.y, d.y)


class _FakeStats:
    def __init__(self, X):
        self.mean = np.nanmean(X, 0)
        self.var = np.nanvar(X, 0)
        self.polymorphic = self.var > 0


class _FakeGenotypes:
    """The Genotypes interface of the contract: n_samples, n_variants, stats, read."""

    def __init__(self, X):
        self.X, self.stats = X, _FakeStats(X)
        self.n_samples, self.n_variants = X.shape
        self.reads = []

    def read(self, variants=None, samples=None, dtype=np.float64):
        self.reads.append(np.asarray(variants))
        return self.X[:, variants].astype(dtype)


def test_genotypes_source_reads_only_causal_columns(pheno_sim):
    G = _FakeGenotypes(pheno_sim.dosages)
    a = simulate_phenotype(G, h2=0.5, n_causal=10, seed=7)
    b = simulate_phenotype(pheno_sim, h2=0.5, n_causal=10, seed=7)
    np.testing.assert_allclose(a.y, b.y)
    assert np.concatenate(G.reads).tolist() == a.causal.tolist()


def test_real_genotypes_class_if_available():
    pytest.importorskip("torchgenetics.genotypes")
    sim = simulate_genotypes(200, 100, seed=1, missing_rate=0.01)
    G = sim.to_genotypes()
    assert G.shape == (200, 100)
    a = simulate_phenotype(G, h2=0.5, n_causal=10, seed=3)
    b = simulate_phenotype(sim, h2=0.5, n_causal=10, seed=3)
    np.testing.assert_allclose(a.y, b.y, atol=1e-10)


def test_monomorphic_variants_are_never_causal():
    X = simulate_genotypes(300, 200, seed=6).dosages.copy()
    X[:, ::2] = 1.0  # every other variant monomorphic
    ph = simulate_phenotype(X, h2=0.5, n_causal=100, seed=1)
    assert np.all(ph.causal % 2 == 1)
    with pytest.raises(InputError, match="monomorphic"):
        simulate_phenotype(X, h2=0.5, causal=[0, 1], seed=1)
    with pytest.raises(InputError, match="exceeds"):
        simulate_phenotype(X, h2=0.5, n_causal=101, seed=1)


@pytest.mark.parametrize(
    "kwargs, err",
    [
        (dict(h2=1.2), InputError),
        (dict(h2=-0.1), InputError),
        (dict(h2=[0.2, 0.3]), InputError),  # sequence without components
        (dict(h2=0.5, components=[np.arange(10), np.arange(10, 20)]), InputError),  # one h2 each
        (dict(h2=[0.3, 0.3], components=[np.arange(10), np.arange(5, 20)]), ComponentSpecError),
        (dict(h2=[0.3], components=[np.array([0, 500])]), ComponentSpecError),
        (dict(h2=[0.3], components=[np.array([0.5, 1.5])]), ComponentSpecError),
        (dict(h2=[0.3], components=[np.arange(10)], causal=[50]), ComponentSpecError),
        (dict(h2=0.5, causal=[1, 1]), ComponentSpecError),
        (dict(h2=0.5, causal="all"), InputError),
        (dict(h2=0.5, n_causal=0), InputError),
        (dict(h2=0.5, n_causal=3, causal=[1, 2]), InputError),
        (dict(h2=0.5, covariates=np.ones((50, 1))), InputError),
        (dict(h2=0.5, covariates=np.ones((49, 1)), covariate_effects=[1.0]), InputError),
        (dict(h2=0.5, covariates=np.ones((50, 2)), covariate_effects=[1.0]), InputError),
        (dict(h2=0.5, covariates=np.full((50, 1), np.nan), covariate_effects=[1.0]), InputError),
        (dict(h2=0.5, residual="exact"), InputError),
        (
            dict(h2=[0.3, 0.1], components=[np.arange(10), np.arange(10, 20)], n_causal=[1]),
            InputError,
        ),
    ],
)
def test_phenotype_argument_errors(kwargs, err):
    X = simulate_genotypes(50, 100, seed=0).dosages
    with pytest.raises(err):
        simulate_phenotype(X, seed=0, **kwargs)


def test_phenotype_rejects_bad_genotypes():
    with pytest.raises(InputError, match="2-D"):
        simulate_phenotype(np.ones(5), h2=0.5)
    with pytest.raises(InputError, match="numpy array"):
        simulate_phenotype([[0, 1], [1, 2]], h2=0.5)


# ----------------------------------------------------------------------------- PLINK


def test_write_plink_round_trip(tmp_path):
    sim = simulate_genotypes(120, 90, chromosomes=[50, 40], seed=8, missing_rate=0.03)
    prefix = sim.write_plink(tmp_path / "toy")
    assert prefix == tmp_path / "toy"
    with open_bed(tmp_path / "toy.bed") as bed:
        np.testing.assert_array_equal(bed.read(), sim.dosages)
        assert bed.iid.tolist() == sim.samples["iid"].tolist()
        assert bed.fid.tolist() == sim.samples["fid"].tolist()
        assert bed.sex.tolist() == sim.samples["sex"].tolist()
        assert bed.chromosome.tolist() == sim.variants["chrom"].tolist()
        assert bed.sid.tolist() == sim.variants["id"].tolist()
        assert bed.bp_position.tolist() == sim.variants["pos"].tolist()
        assert bed.allele_1.tolist() == sim.variants["a1"].tolist()
        assert bed.allele_2.tolist() == sim.variants["a2"].tolist()
        np.testing.assert_allclose(bed.cm_position, sim.variants["cm"], rtol=1e-6)
    fam = (tmp_path / "toy.fam").read_text().splitlines()
    assert fam[0].split() == ["fam001", "ind001", "0", "0", str(sim.samples["sex"][0]), "-9"]


def test_write_plink_without_tables_and_errors(tmp_path):
    X = np.array([[0.0, 1.0, 2.0], [np.nan, 2.0, 0.0]])
    write_plink(tmp_path / "bare", X)
    with open_bed(tmp_path / "bare.bed") as bed:
        np.testing.assert_array_equal(bed.read(), X)
    with pytest.raises(InputError, match="sample 0, variant 1"):
        write_plink(tmp_path / "bad", np.array([[0.0, 3.0]]))
    with pytest.raises(InputError, match="2-D"):
        write_plink(tmp_path / "bad", np.zeros(3))
    with pytest.raises(InputError, match="lacks columns"):
        write_plink(tmp_path / "bad", X, samples=pd.DataFrame({"iid": ["a", "b"]}))
    sim = simulate_genotypes(3, 3, seed=0)
    with pytest.raises(InputError, match="rows"):
        write_plink(tmp_path / "bad", X, samples=sim.samples)
    with pytest.raises(InputError, match="folder does not exist"):
        write_plink(tmp_path / "nope" / "x", X)
