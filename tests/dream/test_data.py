"""Input validation and containers: every bad input is a clear InputError."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from torchgenetics.dream import BayesDream, make_modality, prepare_data, simulate_screen
from torchgenetics.errors import InputError, SampleError


@pytest.fixture(scope="module")
def small():
    return simulate_screen(n_cells=60, n_features=3, seed=3)


class AnnDataLike:
    def __init__(self, frame):
        self.X = sp.csr_matrix(frame.to_numpy())
        self.obs_names = frame.index
        self.var_names = frame.columns


def test_dense_sparse_frame_and_anndata_inputs_agree(small):
    frame = small.counts
    names = dict(features=list(frame.columns), cell_ids=list(frame.index))
    variants = [
        prepare_data(frame, small.cells, small.cis_gene),
        prepare_data(frame.to_numpy(), small.cells, small.cis_gene, **names),
        prepare_data(sp.csr_matrix(frame.to_numpy()), small.cells, small.cis_gene, **names),
        prepare_data(AnnDataLike(frame), small.cells, small.cis_gene),
    ]
    ref = variants[0].modality("counts").dense()
    for data in variants[1:]:
        np.testing.assert_array_equal(data.modality("counts").dense(), ref)
        np.testing.assert_array_equal(data.size_factor, variants[0].size_factor)
    assert variants[0].trans_features() == [f"gene{j}" for j in range(3)]
    assert variants[0].ntc_mask.sum() == (small.cells["target"] == "ntc").sum()


def test_cell_table_rows_are_aligned_by_cell_id(small):
    shuffled = small.cells.sample(frac=1.0, random_state=0)
    data = prepare_data(small.counts, shuffled, small.cis_gene)
    assert list(data.cells.index) == list(small.counts.index)
    np.testing.assert_allclose(data.size_factor, small.cells["size_factor"].to_numpy())


def test_missing_size_factors_are_derived_and_reported(small):
    data = prepare_data(small.counts, small.cells.drop(columns="size_factor"), small.cis_gene)
    totals = small.counts.sum(axis=1).to_numpy()
    np.testing.assert_allclose(data.size_factor, totals / np.median(totals))
    assert "library size" in data.report["size_factor_source"]


def test_unknown_cis_gene(small):
    with pytest.raises(InputError, match="cis gene 'CSI' is not a feature.*did you mean.*CIS"):
        prepare_data(small.counts, small.cells, "CSI")


def test_cells_without_a_guide(small):
    cells = small.cells.copy()
    cells.loc[[4, 9], "guide"] = np.nan
    with pytest.raises(InputError, match="2 cell\\(s\\) have no guide.*cell4"):
        prepare_data(small.counts, cells, small.cis_gene)


def test_high_moi_cells_without_a_guide():
    sim = simulate_screen(n_cells=40, n_features=2, high_moi=True, seed=0)
    assign = sim.guide_assignment.copy()
    assign.iloc[7] = 0.0
    with pytest.raises(InputError, match="no guide in the assignment matrix.*cell7"):
        prepare_data(sim.counts, sim.cells, sim.cis_gene, guide_assignment=assign, guides=sim.guides)


def test_negative_counts(small):
    counts = small.counts.copy()
    counts.iloc[5, 2] = -1
    with pytest.raises(InputError, match="negative count at cell 'cell5', feature 'gene1'"):
        prepare_data(counts, small.cells, small.cis_gene)


def test_denominators_smaller_than_counts():
    values = np.array([[1.0, 2.0], [3.0, 1.0]])
    den = np.array([[2.0, 2.0], [2.0, 5.0]])
    with pytest.raises(InputError, match="denominator smaller than the count for cell 'b', feature 'j1'"):
        make_modality("psi", "binomial", values, denominator=den, features=["j1", "j2"], cell_ids=["a", "b"])


def test_no_ntc_cells_for_the_technical_fit(small):
    cells = small.cells.assign(target=small.cells["target"].replace("ntc", "CIS"))
    dm = BayesDream(small.counts, cells, small.cis_gene)
    with pytest.raises(InputError, match="no NTC cells"):
        dm.fit_technical(n_steps=20)


def test_group_without_ntc_cells_is_named(small):
    cells = small.cells.copy()
    ntc = cells["target"] == "ntc"
    cells.loc[ntc, "group"] = "line0"
    dm = BayesDream(small.counts, cells, small.cis_gene)
    with pytest.raises(InputError, match="\\['line1'\\] have no cells"):
        dm.fit_technical(n_steps=20)


def test_counted_cells_missing_from_the_cell_table(small):
    with pytest.raises(SampleError, match="not in the cell table.*cell0"):
        prepare_data(small.counts, small.cells.iloc[1:], small.cis_gene)


def test_bad_size_factor_and_guide_with_two_targets(small):
    cells = small.cells.copy()
    cells.loc[3, "size_factor"] = 0.0
    with pytest.raises(InputError, match="size factor of cell 'cell3'"):
        prepare_data(small.counts, cells, small.cis_gene)
    cells = small.cells.copy()
    first = cells["guide"].iloc[0]
    cells.loc[cells.index[cells["guide"] == first][0], "target"] = "OTHER"
    with pytest.raises(InputError, match=f"guide '{first}' is listed with several targets"):
        prepare_data(small.counts, cells, small.cis_gene)


def test_missing_target_column_is_named(small):
    with pytest.raises(InputError, match="no 'target' column"):
        prepare_data(small.counts, small.cells.drop(columns="target"), small.cis_gene)


def test_extra_modality_is_aligned_by_cell_id():
    sim = simulate_screen(n_cells=50, n_features=2, family="binomial", seed=0)
    mod = sim.modality
    order = np.random.default_rng(0).permutation(50)
    shuffled = mod.subset_cells(order)
    data = prepare_data(sim.counts, sim.cells, sim.cis_gene, modalities=[shuffled])
    np.testing.assert_array_equal(data.modality("binomial").dense(), mod.dense())
    with pytest.raises(InputError, match="unknown modality 'splice'"):
        data.modality("splice")


def test_multinomial_needs_three_dimensions():
    with pytest.raises(InputError, match="cells x features x categories"):
        make_modality("iso", "multinomial", np.zeros((3, 2)), features=["a", "b"])


def test_high_moi_ntc_cells_and_targets():
    sim = simulate_screen(n_cells=80, n_features=2, high_moi=True, moi=2.0, seed=1)
    data = prepare_data(sim.counts, sim.cells.drop(columns="target"), sim.cis_gene,
                        guide_assignment=sim.guide_assignment, guides=sim.guides)
    assert data.high_moi
    assert data.assignment.shape == (80, 14)
    np.testing.assert_array_equal(data.ntc_mask, (sim.cells["target"] == "ntc").to_numpy())
    assert pd.Series(data.cells["n_guides"]).min() >= 1
