"""REMLFit: trace-weighted h2, delta-method SEs, tables, HDF5 round trip, warm start, reports."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from torchgenetics.datasets import example
from torchgenetics.io import align, read_plink
from torchgenetics.reml import REMLFit, grm_stack, reml
from torchgenetics.reml.aireml import optimize
from torchgenetics.reml.exact import DenseREML


@pytest.fixture(scope="module")
def two(rh):
    Z = rh.standardize(rh.sim(300, 300, seed=31).dosages)
    Z1, Z2 = Z[:, :150], Z[:, 150:]
    y = rh.model_phenotype([Z1, Z2], [0.4, 0.2], 0.4, seed=4)
    return y, [Z1 @ Z1.T / Z1.shape[1], Z2 @ Z2.T / Z2.shape[1]]


def test_h2_uses_trace_weighted_denominators(two):
    """Scaling a kernel by c divides its variance by c and leaves h2 unchanged."""
    y, (K1, K2) = two
    a = reml(y, [K1, K2], tol=1e-12, param_tol=1e-10)
    b = reml(y, [3.0 * K1, K2], tol=1e-12, param_tol=1e-10)
    assert torch.allclose(b.trace_scale, a.trace_scale * torch.tensor([3.0, 1.0], dtype=torch.float64))
    assert abs(float(b.variances[0]) * 3 - float(a.variances[0])) < 1e-7
    assert torch.allclose(a.h2, b.h2, atol=1e-8) and abs(a.h2_total - b.h2_total) < 1e-8
    assert torch.allclose(a.h2_se, b.h2_se, atol=1e-6)
    t = b.trace_scale
    vp = float((b.variances[:2] * t).sum() + b.variances[2])
    assert abs(b.vp - vp) < 1e-12
    assert torch.allclose(b.h2, b.variances[:2] * t / vp)


def test_delta_method_standard_errors(two):
    """h2 and Vp SEs equal J cov J' with J from central differences of the definitions."""
    y, Ks = two
    fit = reml(y, Ks)
    theta, t, cov = fit.variances, fit.trace_scale, fit.cov

    def quantities(th):
        gen = th[:2] * t
        vp = gen.sum() + th[2]
        return torch.cat([gen / vp, (gen.sum() / vp).reshape(1), vp.reshape(1)])

    eps = 1e-7
    J = torch.stack([(quantities(theta + eps * e) - quantities(theta - eps * e)) / (2 * eps)
                     for e in torch.eye(3, dtype=torch.float64)], 1)
    se = (J @ cov @ J.T).diagonal().sqrt()
    assert torch.allclose(fit.h2_se, se[:2], rtol=1e-5)
    assert abs(fit.h2_total_se - float(se[2])) < 1e-6 and abs(fit.vp_se - float(se[3])) < 1e-6
    assert torch.allclose(fit.se, cov.diagonal().sqrt())
    assert torch.allclose(fit.cov @ fit.ai, torch.eye(3, dtype=torch.float64), atol=1e-8)


def test_tables_and_summary(two):
    y, Ks = two
    fit = reml(y, {"chr1": Ks[0], "chr2": Ks[1]})
    hsq = fit.hsq_table()
    assert hsq["Source"].tolist() == ["V(G1)", "V(G2)", "V(e)", "Vp", "V(G1)/Vp", "V(G2)/Vp",
                                      "Sum of V(G)/Vp", "logL", "n"]
    row = dict(zip(hsq["Source"], hsq["Variance"], strict=True))
    assert row["n"] == 300 and row["logL"] == fit.loglik
    assert abs(row["Sum of V(G)/Vp"] - fit.h2_total) < 1e-15
    assert math.isnan(hsq["SE"].iloc[-1]) and math.isnan(hsq["SE"].iloc[-2])  # exact logL: no MC SE
    frame = fit.to_frame()
    assert frame.index.tolist() == ["chr1", "chr2", "residual"]
    assert frame.loc["chr2", "variance"] == float(fit.variances[1])
    hist = fit.history_frame()
    assert hist["step"].iloc[0] == "init" and set(hist["step"].iloc[1:]) <= {"AI", "EM"}
    assert len(hist) == fit.n_iter + 1 and "theta_residual" in hist
    text = fit.summary()
    assert "exact-cholesky" in text and "chr2" in text and "converged" in text
    data = json.loads(json.dumps(fit.to_dict()))
    assert data["names"] == ["chr1", "chr2"] and data["h2"] == fit.h2.tolist()
    assert data["variances"] == fit.variances.tolist() and data["n"] == 300


def test_save_load_and_warm_start(two, tmp_path):
    y, Ks = two
    fit = reml(y, Ks, tol=1e-10, param_tol=1e-9)
    path = tmp_path / "fit.h5"
    fit.save(path)
    back = REMLFit.load(path)
    for name in ("variances", "se", "cov", "h2", "beta", "trace_scale"):
        assert torch.equal(getattr(back, name), getattr(fit, name)), name
    pd.testing.assert_frame_equal(back.history_frame(), fit.history_frame())
    assert back.names == fit.names and back.settings == fit.settings
    assert back.loglik == fit.loglik and back.converged and back.method == fit.method
    # a loaded fit warm-starts exactly like the one in memory, and needs no further step
    warm_mem = reml(y, Ks, init=fit, tol=1e-10, param_tol=1e-9)
    warm_file = reml(y, Ks, init=back, tol=1e-10, param_tol=1e-9)
    pd.testing.assert_frame_equal(warm_mem.history_frame(), warm_file.history_frame())
    assert warm_mem.n_iter <= 1 < fit.n_iter
    assert torch.allclose(warm_mem.variances, fit.variances, atol=1e-8)
    # init as a dict of named variances
    named = reml(y, Ks, init={"G1": 0.3, "G2": 0.3, "residual": 0.3}, tol=1e-10, param_tol=1e-9)
    assert torch.allclose(named.variances, fit.variances, atol=1e-7)


def test_em_fallback_when_ai_is_not_positive_definite(two):
    """An evaluator whose AI is indefinite forces EM steps; the fit still reaches the optimum."""
    y, Ks = two
    X = torch.ones(300, 1, dtype=torch.float64)

    class BrokenAI(DenseREML):
        def evaluate(self, theta):
            ev = super().evaluate(theta)
            ev.ai = -ev.ai
            return ev

    start = torch.tensor([0.3, 0.3, 0.3], dtype=torch.float64)
    lower = torch.tensor([0.0, 0.0, 1e-6], dtype=torch.float64)
    res = optimize(BrokenAI(Ks, y, X), start, lower, n=300, max_iter=3000, tol=1e-9, param_tol=1e-6)
    assert {h["step"] for h in res.history[1:]} == {"EM"}
    ref = reml(y, Ks, tol=1e-12, param_tol=1e-10)
    assert res.converged
    assert torch.allclose(res.evaluation.theta, ref.variances, atol=2e-4)
    lls = [h["loglik"] for h in res.history]
    assert all(b >= a - 1e-9 for a, b in zip(lls, lls[1:], strict=False))  # monotone ascent


def test_example_data_with_alignment_report():
    """The bundled cohort end to end: align, two chromosome components, dropped samples reported."""
    ex = example()
    G = read_plink(ex.bfile)
    al = align(G, pheno=ex.pheno, covar=ex.covar)
    stack = grm_stack(al.subset(G), ex.components)
    fit = reml(al.y, stack, al.covariates, covariate_names=al.covariate_names, report=al)
    assert fit.n == 990 and fit.n_dropped == 10 and fit.dropped["missing phenotype"] == 10
    assert fit.covariate_names[0] == "intercept" and fit.covariate_names.count("intercept") == 1
    assert fit.names == stack.names and fit.converged
    truth = ex.load_truth()
    assert abs(fit.h2_total - truth["h2"]) < 3 * fit.h2_total_se
    assert "samples dropped" in fit.summary()
    np.testing.assert_allclose(float(fit.h2.sum()), fit.h2_total)
