"""SusieFit: coefficients, predictions, posterior summaries, tables, HDF5 round trip."""

from __future__ import annotations

import math
from dataclasses import fields

import pytest
import torch
from susie_helpers import simulate, suff_stats

from torchgenetics.errors import InputError
from torchgenetics.susie import SusieFit, susie, susie_ss

F64 = torch.float64


@pytest.fixture(scope="module")
def fitted():
    X, y = simulate(n=250, p=40, causal=(3, 25), effect=0.8, seed=4)
    return X, y, susie(X * 3.0 + 1.0, y + 5.0, L=4, track_fit=True, L_greedy=2,
                          variable_names=[f"rs{j}" for j in range(40)])


def _equal(a, b):
    if torch.is_tensor(a):
        return torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, z) for x, z in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def test_hdf5_round_trip_is_exact(tmp_path, fitted):
    fit = fitted[2]
    path = tmp_path / "fit.h5"
    fit.save(path)
    back = SusieFit.load(path)
    for f in fields(SusieFit):
        assert _equal(getattr(fit, f.name), getattr(back, f.name)), f.name
    assert back.to_frame().equals(fit.to_frame())


def test_round_trip_of_a_summary_data_fit(tmp_path):
    X, y = simulate(n=200, p=30, causal=(5, 20), seed=2)
    XtX, Xty, yty = suff_stats(X, y)
    fit = susie_ss(XtX, Xty, yty, n=200, L=3)
    fit.save(tmp_path / "ss.h5")
    back = SusieFit.load(tmp_path / "ss.h5")
    assert back.fitted is None and math.isnan(back.intercept) and back.data_kind == "ss"
    assert torch.equal(back.pip, fit.pip)


def test_coef_predict_and_posterior_summaries(fitted):
    X, y, fit = fitted
    Xo, yo = X * 3.0 + 1.0, y + 5.0
    assert torch.allclose(fit.predict(Xo), fit.predict(), atol=1e-10)
    assert torch.allclose(fit.predict(), fit.fitted)
    resid = yo - fit.predict()
    assert abs(float(resid.mean())) < 1e-8  # the intercept centres the residuals
    coef = fit.coef()
    assert coef.shape == (41,)
    assert torch.allclose(coef[1:], fit.posterior_mean(prior_tol=-1.0))
    mean, sd = fit.posterior_mean(), fit.posterior_sd()
    for j in (3, 25):
        assert float(mean[j]) == pytest.approx(0.8 / 3.0, abs=4 * float(sd[j]) + 0.05)
    assert bool((sd >= 0).all())
    lfsr = fit.lfsr()
    assert lfsr.shape == (fit.L,) and bool(((lfsr >= 0) & (lfsr <= 1)).all())
    strong = [int(k) for k in fit.sets["cs_index"]]
    assert all(float(lfsr[k]) < 1e-3 for k in strong)
    assert all(float(lfsr[k]) == 1.0 for k in range(fit.L) if float(fit.V[k]) == 0.0)


def test_tables(fitted):
    fit = fitted[2]
    frame = fit.to_frame()
    assert list(frame.columns) == ["variable", "pip", "cs", "lbf", "posterior_mean", "posterior_sd"]
    assert len(frame) == 40 and frame["variable"][3] == "rs3"
    in_sets = frame.dropna(subset=["cs"])
    assert {"rs3", "rs25"} <= set(in_sets["variable"])
    summary = fit.summary()
    assert len(summary) == len(fit.sets["cs"])
    assert set(summary["lead_variable"]) == {"rs3", "rs25"}
    assert (summary["log10bf"] > 2).all() and (summary["min_abs_corr"] >= 0.5).all()
    assert "n_cs=2" in repr(fit)


def test_predict_needs_newx_for_summary_data():
    X, y = simulate(n=200, p=30, causal=(5, 20), seed=2)
    XtX, Xty, yty = suff_stats(X, y)
    fit = susie_ss(XtX, Xty, yty, n=200, L=3)
    with pytest.raises(InputError, match="newx"):
        fit.predict()
    with pytest.warns(RuntimeWarning, match="intercept"):
        assert fit.predict(X).shape == (200,)
    with_means = susie_ss(XtX, Xty, yty, n=200, L=3, X_colmeans=X.mean(0), y_mean=float(y.mean()))
    ind = susie(X, y, L=3)
    assert torch.allclose(with_means.predict(X), ind.predict(), atol=1e-8)
    with pytest.raises(InputError, match="shape"):
        fit.predict(X[:, :5])
