"""Bad input gives clear errors naming the outcome, row or position."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import mf_data  # noqa: E402

from torchgenetics.errors import InputError  # noqa: E402
from torchgenetics.susie.functional import fsusie, mfsusie  # noqa: E402


@pytest.fixture(scope="module")
def small():
    return mf_data.small()


def test_outcomes_with_a_different_sample_count(small):
    X, Y, _ = small
    with pytest.raises(InputError, match=r"outcome 'Y2' \(Y\[1\]\) has 299 rows but X has n = 300"):
        mfsusie(X, [Y[0], Y[1][:-1]])


def test_missing_values_name_the_row(small):
    X, Y, y3 = small
    bad = Y[1].clone()
    bad[7, 3] = float("nan")
    bad[42, 0] = float("inf")
    with pytest.raises(InputError, match=r"Y\[1\]\) has missing or infinite values in row 7, 42"):
        mfsusie(X, [Y[0], bad])
    scalar = y3.clone()
    scalar[11] = float("nan")
    with pytest.raises(InputError, match="row 11"):
        mfsusie(X, {"expr": scalar})
    Xbad = X.clone()
    Xbad[3, 5] = float("nan")
    with pytest.raises(InputError, match="row 3, column 5"):
        mfsusie(Xbad, Y)


def test_positions_not_increasing(small):
    X, Y, _ = small
    pos = torch.arange(16, dtype=torch.float64)
    pos[9] = pos[8]
    with pytest.raises(InputError, match="not strictly increasing: pos\\[9\\]"):
        mfsusie(X, Y, pos=[None, pos])
    with pytest.raises(InputError, match="expected 16 positions"):
        mfsusie(X, Y, pos=[torch.arange(15.0), None])
    with pytest.raises(InputError, match="pos has 3 entries but there are 2 outcomes"):
        mfsusie(X, Y, pos=[None, None, None])


def test_bad_options(small):
    X, Y, _ = small
    cases = [
        (dict(L=31), "L = 31 exceeds the number of variables p = 30"),
        (dict(L=0), "L must be a positive integer"),
        (dict(prior="horseshoe"), "prior must be one of"),
        (dict(prior_variance_scope="per_position"), "prior_variance_scope must be one of"),
        (dict(residual_variance_scope="global"), "residual_variance_scope must be one of"),
        (dict(convergence="cs"), "convergence must be 'pip' or 'elbo'"),
        (dict(prior_variance_grid=[0.1, -1.0]), "positive, finite variances"),
        (dict(prior="point_normal", prior_variance_grid=[0.1, 0.2]), "one slab variance"),
        (dict(residual_variance=[1.0]), "one positive value per outcome"),
        (dict(outcome_names=["a"]), "outcome_names has 1 entries for 2 outcomes"),
        (dict(wavelet="morlet"), "morlet"),
    ]
    for options, message in cases:
        with pytest.raises(InputError, match=message):
            mfsusie(X, Y, **options)


def test_constant_outcome_and_bad_init(small):
    X, Y, _ = small
    with pytest.raises(InputError, match="is constant"):
        mfsusie(X, [Y[0], torch.ones(300, 4, dtype=torch.float64)])
    fit = mfsusie(X[:, :20], Y, L=2)
    with pytest.raises(InputError, match="p = 30 variables"):
        mfsusie(X, Y, L=2, init=fit)
    other = mfsusie(X[:, :20], [Y[0]], L=2)
    with pytest.raises(InputError, match="wavelet coefficients"):
        mfsusie(X[:, :20], Y, L=2, init=other)
    with pytest.raises(InputError, match="'point_normal' prior"):
        mfsusie(X[:, :20], Y, L=2, init=mfsusie(X[:, :20], Y, L=2, prior="point_normal"))
    with pytest.raises(InputError, match="fsusie takes one"):
        fsusie(X, Y)
