"""IBSS across data kinds and operators, warm starts, greedy L, refinement, tracking."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from linear_operator.operators import BlockDiagLinearOperator, DenseLinearOperator
from susie_helpers import simulate, suff_stats, z_and_R

from torchgenetics.errors import InputError
from torchgenetics.susie import SusieFit, susie, susie_rss, susie_ss

F64 = torch.float64


@pytest.fixture(scope="module")
def sim():
    X, y = simulate(n=300, p=60, causal=(8, 40), effect=0.6, seed=11)
    return X, y


def _close(a, b, tol):
    return float((a - b).abs().max()) < tol


@pytest.mark.parametrize("method", ["optim", "EM"])
def test_susie_ss_equals_susie(sim, method):
    X, y = sim
    ind = susie(X, y, L=5, estimate_prior_method=method)
    XtX, Xty, yty = suff_stats(X, y)
    ss = susie_ss(XtX, Xty, yty, n=X.shape[0], L=5, estimate_prior_method=method,
                     X_colmeans=X.mean(0), y_mean=float(y.mean()))
    assert _close(ind.alpha, ss.alpha, 1e-8) and _close(ind.pip, ss.pip, 1e-8)
    assert abs(float(ind.elbo[-1] - ss.elbo[-1])) < 1e-8
    assert abs(ind.sigma2 - ss.sigma2) < 1e-10 and ind.n_iter == ss.n_iter
    assert ss.intercept == pytest.approx(ind.intercept, abs=1e-10)
    assert [c.tolist() for c in ind.sets["cs"]] == [c.tolist() for c in ss.sets["cs"]]


def test_susie_rss_with_n_and_in_sample_R_equals_susie(sim):
    X, y = sim
    z, R = z_and_R(X, y)
    rss = susie_rss(z, R, n=X.shape[0], L=5, estimate_residual_variance=True)
    # RSS works on standardised y: same alpha for any scale of y, same ELBO for y / sd(y).
    ind = susie(X, y / y.std(), L=5)
    assert _close(rss.alpha, ind.alpha, 1e-8) and _close(rss.pip, ind.pip, 1e-8)
    assert abs(float(rss.elbo[-1] - ind.elbo[-1])) < 1e-7
    assert _close(susie(X, y, L=5).pip, rss.pip, 1e-8)
    assert [c.tolist() for c in rss.sets["cs"]] == [c.tolist() for c in ind.sets["cs"]]
    assert torch.allclose(rss.sets["purity"], ind.sets["purity"], atol=1e-10)


def test_rss_from_bhat_shat_matches_z(sim):
    X, y = sim
    z, R = z_and_R(X, y)
    shat = torch.full_like(z, 0.05)
    a = susie_rss(z, R, n=X.shape[0], L=5)
    b = susie_rss(bhat=z * shat, shat=shat, R=R, n=X.shape[0], L=5)
    assert _close(a.alpha, b.alpha, 1e-10)
    # With var_y the effects are on the original scale; the PIPs do not change.
    c = susie_rss(bhat=z * shat, shat=shat, R=R, n=X.shape[0], var_y=2.0, L=5)
    assert _close(a.pip, c.pip, 1e-6)


def test_rss_accepts_linear_operators_without_densifying(sim):
    X, y = sim
    z, R = z_and_R(X, y)
    # Reference-panel style LD: two independent blocks of 30 variants.
    blocks = torch.stack([R[:30, :30], R[30:, 30:]])
    dense = torch.block_diag(blocks[0], blocks[1])
    op = BlockDiagLinearOperator(DenseLinearOperator(blocks))
    fa = susie_rss(z, dense, n=X.shape[0], L=5)
    fb = susie_rss(z, op, n=X.shape[0], L=5)
    assert _close(fa.alpha, fb.alpha, 1e-10) and abs(float(fa.elbo[-1] - fb.elbo[-1])) < 1e-8
    assert [c.tolist() for c in fa.sets["cs"]] == [c.tolist() for c in fb.sets["cs"]]
    assert torch.allclose(fa.sets["purity"], fb.sets["purity"], atol=1e-12)
    fc = susie_rss(z, DenseLinearOperator(R), n=X.shape[0], L=5)
    assert _close(fc.alpha, susie_rss(z, R, n=X.shape[0], L=5).alpha, 1e-10)


def test_rss_without_n_uses_fixed_residual_and_prior(sim):
    X, y = sim
    z, R = z_and_R(X, y)
    with pytest.warns(RuntimeWarning, match="sample size"):
        fit = susie_rss(z, R, L=5, estimate_prior_method="simple")
    assert fit.sigma2 == 1.0
    assert set(fit.V.tolist()) <= {0.0, 50.0}
    assert {8, 40} <= {int(c[fit.pip[c].argmax()]) for c in fit.sets["cs"]}


def test_warm_start_continues_the_cold_trajectory(n3):
    X, y = torch.from_numpy(n3["X"]), torch.from_numpy(n3["y"])
    cold = susie(X, y, L=10)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        partial = susie(X, y, L=10, max_iter=5)
    assert not partial.converged and cold.n_iter > 5
    warm = susie(X, y, L=10, init=partial)
    assert warm.converged
    assert abs(float(warm.elbo[-1] - cold.elbo[-1])) < 1e-8
    assert _close(warm.pip, cold.pip, 1e-6)
    assert partial.n_iter + warm.n_iter == cold.n_iter
    assert torch.allclose(torch.cat([partial.elbo, warm.elbo]), cold.elbo, rtol=0, atol=1e-8)


def test_warm_start_from_saved_fit(tmp_path, sim):
    X, y = sim
    with pytest.warns(RuntimeWarning):
        partial = susie(X, y, L=5, max_iter=2)
    path = tmp_path / "partial.h5"
    partial.save(path)
    a = susie(X, y, L=5, init=partial)
    b = susie(X, y, L=5, init=SusieFit.load(path))
    assert torch.equal(a.alpha, b.alpha) and torch.equal(a.elbo, b.elbo)


def test_warm_start_pads_fewer_effects_and_rejects_more(sim):
    X, y = sim
    small = susie(X, y, L=2)
    grown = susie(X, y, L=5, init=small)
    assert grown.L == 5
    assert _close(grown.pip, susie(X, y, L=5).pip, 1e-3)
    with pytest.raises(InputError, match="init has 5 effects but L = 3"):
        susie(X, y, L=3, init=grown)


def test_greedy_L_grows_until_saturated(sim):
    X, y = sim
    fit = susie(X, y, L=10, L_greedy=1)
    hist = fit.greedy_history
    assert [h["L"] for h in hist] == list(range(1, len(hist) + 1))
    assert hist[-1]["action"] == "saturated" and fit.L == hist[-1]["L"] < 10
    assert all(h["min_lbf"] >= 0.1 for h in hist[:-1])
    assert {8, 40} <= {int(c[fit.pip[c].argmax()]) for c in fit.sets["cs"]}
    assert sum(h["n_iter"] for h in hist) == len(susie(X, y, L=10, L_greedy=1, track_fit=True).trace)
    capped = susie(X, y, L=2, L_greedy=1)
    assert capped.L == 2 and capped.greedy_history[-1]["action"] == "L reached"


def test_track_fit_records_every_iteration(sim):
    X, y = sim
    fit = susie(X, y, L=4, track_fit=True)
    assert len(fit.trace) == fit.n_iter
    assert [t["elbo"] for t in fit.trace] == fit.elbo.tolist()
    assert torch.equal(fit.trace[-1]["V"], fit.V) or bool((fit.V == 0).any())
    assert fit.trace[0]["alpha"].shape == (4, 60)
    assert susie(X, y, L=4).trace is None


def test_verbose_shows_progress(sim, capsys):
    X, y = sim
    fit = susie(X, y, L=3, verbose=True)
    assert "IBSS" in capsys.readouterr().err and fit.converged


def test_deterministic(sim):
    X, y = sim
    a = susie(X, y, L=5, track_fit=True)
    b = susie(X, y, L=5, track_fit=True)
    assert torch.equal(a.alpha, b.alpha) and torch.equal(a.elbo, b.elbo)
    assert all(torch.equal(s["alpha"], t["alpha"]) for s, t in zip(a.trace, b.trace, strict=True))


def test_non_convergence_is_reported(sim):
    X, y = sim
    with pytest.warns(RuntimeWarning, match="did not converge in 1 iterations"):
        fit = susie(X, y, L=5, max_iter=1)
    assert not fit.converged and fit.n_iter == 1


def test_pip_convergence(sim):
    X, y = sim
    fit = susie(X, y, L=5, convergence="pip", tol=1e-6)
    ref = susie(X, y, L=5, tol=1e-10)
    assert fit.converged and _close(fit.pip, ref.pip, 1e-4)


def test_refine_never_lowers_the_elbo(sim):
    X, y = sim
    plain = susie(X, y, L=5)
    refined = susie(X, y, L=5, refine=True)
    assert float(refined.elbo[-1]) >= float(plain.elbo[-1]) - 1e-9
    assert {8, 40} <= {int(c[refined.pip[c].argmax()]) for c in refined.sets["cs"]}


def test_refine_escapes_a_local_optimum():
    # y depends on x1 and x2; x3 = x1 + x2 + noise is the best single predictor, so IBSS
    # from a cold start takes x3 and stays there (the example of the SuSiE paper).
    gen = torch.Generator().manual_seed(0)
    n = 100
    x1 = torch.randn(n, generator=gen, dtype=F64)
    x2 = torch.randn(n, generator=gen, dtype=F64)
    x3 = x1 + x2 + 0.5 * torch.randn(n, generator=gen, dtype=F64)
    X = torch.stack([x1, x2, x3] + [torch.randn(n, generator=gen, dtype=F64) for _ in range(7)], 1)
    y = x1 + x2 + 0.8 * torch.randn(n, generator=gen, dtype=F64)
    plain = susie(X, y, L=2)
    refined = susie(X, y, L=2, refine=True)
    assert [c.tolist() for c in plain.sets["cs"]] == [[2]]
    assert sorted(c.tolist() for c in refined.sets["cs"]) == [[0], [1]]
    assert float(refined.elbo[-1]) > float(plain.elbo[-1]) + 10


def test_null_weight_adds_a_virtual_null_variable(sim):
    X, y = sim
    fit = susie(X, y, L=5, null_weight=0.5)
    assert fit.alpha.shape == (5, 61) and fit.pip.shape == (60,) and fit.null_index == 60
    assert float(fit.pi[-1]) == pytest.approx(0.5)
    assert {8, 40} <= {int(c[fit.pip[c].argmax()]) for c in fit.sets["cs"]}
    XtX, Xty, yty = suff_stats(X, y)
    ss = susie_ss(XtX, Xty, yty, n=300, L=5, null_weight=0.5)
    assert _close(ss.alpha, fit.alpha, 1e-8)


def test_prior_weights_enter_as_log_pi_plus_sqrt_eps(sim):
    X, y = sim
    w = torch.linspace(0.0, 2.0, 60, dtype=F64)
    var_y = float(y.var())
    fit = susie(X, y, L=1, prior_weights=w, estimate_prior_variance=False,
                   estimate_residual_variance=False)
    Xs = (X - X.mean(0)) / X.std(0)
    xty = Xs.T @ (y - y.mean())
    s2, V = var_y / (X.shape[0] - 1), 0.2 * var_y
    lbf = 0.5 * math.log(s2 / (V + s2)) + 0.5 * (xty / (X.shape[0] - 1)) ** 2 * V / (s2 * (V + s2))
    expected = torch.softmax(lbf + torch.log(w / w.sum() + 2.220446049250313e-16 ** 0.5), 0)
    assert _close(fit.alpha[0], expected, 1e-10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(sim):
    X, y = sim
    cpu = susie(X, y, L=5)
    gpu = susie(X.cuda(), y.cuda(), L=5)
    assert gpu.alpha.is_cuda and _close(gpu.alpha.cpu(), cpu.alpha, 1e-8)


def test_float32_gives_the_same_sets(sim):
    X, y = sim
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f32 = susie(X, y, L=5, dtype=torch.float32)
    f64 = susie(X, y, L=5)
    assert f32.alpha.dtype == torch.float32
    assert [c.tolist() for c in f32.sets["cs"]] == [c.tolist() for c in f64.sets["cs"]]
    assert _close(f32.pip.double(), f64.pip, 1e-3)
