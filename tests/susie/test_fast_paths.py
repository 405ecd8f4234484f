"""The fast paths of the SuSiE engine give the answers of the plain algorithm.

* IBSS with cached effect products, skipped zero effects and copied regressions
  against a textbook IBSS written out here (every residual recomputed from scratch).
* The Newton prior-variance search against Brent's; Brent in lock step against
  Brent one row at a time (bit for bit, also through ``susie_batch``).
* Column statistics, the finiteness check, the cache-sized CPU batches.
* BandedLD products (BLAS band product, the loop-free torch product, gradients).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from susie_helpers import simulate

from torchgenetics.errors import InputError
from torchgenetics.operators import BandedLD
from torchgenetics.operators import ld as ld_module
from torchgenetics.susie import batch as batch_module
from torchgenetics.susie import data as data_module
from torchgenetics.susie import ser, susie, susie_batch
from torchgenetics.susie.data import IndividualData, all_finite, column_moments
from torchgenetics.susie.ser import log_prior_weights, single_effect_regression

F64 = torch.float64


def textbook_ibss(X, y, L, method, n_iter, null_weight=0.0):
    """IBSS as in susieR's papers: each effect against ``y - X (b - b_l)`` recomputed in full,
    ELBO from the residual, sigma2 after the ELBO."""
    n, p = X.shape
    Xs = (X - X.mean(0)) / X.std(0)
    yc = y - y.mean()
    d = (Xs * Xs).sum(0)
    pi = torch.full((p,), 1.0 / p, dtype=F64)
    if null_weight > 0:
        Xs = torch.cat([Xs, torch.zeros(n, 1, dtype=F64)], dim=1)
        d = torch.cat([d, torch.zeros(1, dtype=F64)])
        pi = torch.cat([pi * (1 - null_weight), torch.tensor([null_weight], dtype=F64)])
    lp = log_prior_weights(pi / pi.sum())
    P = Xs.shape[1]
    sigma2, V = float(yc.var()), [0.2 * float(yc.var())] * L
    alpha = torch.full((L, P), 1.0 / P, dtype=F64)
    mu, mu2, KL = torch.zeros(L, P, dtype=F64), torch.zeros(L, P, dtype=F64), [0.0] * L
    elbos = []
    for _ in range(n_iter):
        for k in range(L):
            b = alpha * mu
            r = yc - Xs @ (b.sum(0) - b[k])
            res = single_effect_regression(Xs.T @ r, d, V[k], sigma2, lp, method)
            alpha[k], mu[k], mu2[k], V[k], KL[k] = res.alpha, res.mu, res.mu2, res.V, res.KL
        b = alpha * mu
        fits = Xs @ b.T
        er2 = float(((yc - fits.sum(1)) ** 2).sum() - (fits**2).sum() + ((alpha * mu2) @ d).sum())
        elbos.append(-0.5 * n * math.log(2 * math.pi * sigma2) - er2 / (2 * sigma2) - sum(KL))
        sigma2 = er2 / n
    return alpha, torch.tensor(elbos, dtype=F64)


@pytest.mark.filterwarnings("ignore:IBSS did not converge")
@pytest.mark.parametrize("method,null_weight", [("optim", 0.0), ("EM", 0.0), ("optim", 0.1)])
def test_engine_matches_textbook_ibss(method, null_weight):
    X, y = simulate(n=150, p=40, causal=(5, 30), effect=0.5, seed=3)
    fit = susie(X, y, L=6, estimate_prior_method=method, null_weight=null_weight, max_iter=6,
                tol=0.0, prior_tol=0.0, residual_variance_lowerbound=0.0)
    alpha, elbo = textbook_ibss(X, y, 6, method, 6, null_weight)
    assert float((fit.elbo - elbo).abs().max()) < 1e-8
    assert float((fit.alpha - alpha).abs().max()) < 1e-8
    assert bool((fit.V == 0).any())  # the zero-effect shortcuts were exercised


def test_zero_effects_cost_no_products(monkeypatch):
    """On null data every effect ends at V = 0 and later sweeps need no product with X."""
    X, _ = simulate(n=200, p=50, effect=0.0, seed=5)
    y = torch.randn(200, generator=torch.Generator().manual_seed(9), dtype=F64)
    calls = []
    original = IndividualData.products
    monkeypatch.setattr(IndividualData, "products",
                        lambda self, b: calls.append(1) or original(self, b))
    fit = susie(X, y, L=10)
    assert float(fit.V.max()) == 0.0 and not fit.sets["cs"]
    assert len(calls) < fit.L  # far fewer than L per iteration


def test_newton_finds_brents_optimum_on_unimodal_likelihoods():
    g = torch.Generator().manual_seed(1)
    lp = log_prior_weights(torch.full((300,), 1 / 300, dtype=F64))
    d = torch.full((300,), 299.0, dtype=F64)
    for trial in range(20):
        xtr = torch.randn(300, generator=g, dtype=F64) * 299**0.5
        xtr[trial] += (4 + trial) * 299**0.5  # one strong variable: a single mode
        for V0 in (0.0, 0.2):
            a = single_effect_regression(xtr, d, V0, 1.0, lp, "optim", optimizer="brent")
            b = single_effect_regression(xtr, d, V0, 1.0, lp, "optim", optimizer="newton")
            # Brent stops within its tolerance (~1e-7 in log V here); Newton converges
            # further, so its likelihood is at least Brent's.
            assert a.V > 0 and abs(math.log(a.V / b.V)) < 1e-6
            assert b.lbf_model >= a.lbf_model - 1e-12
            assert float((a.alpha - b.alpha).abs().max()) < 1e-8


def test_newton_starts_and_stops_at_bounds():
    lp = log_prior_weights(torch.full((3,), 1 / 3, dtype=F64))
    d = torch.full((3,), 100.0, dtype=F64)
    null = torch.tensor([0.1, -0.2, 0.05], dtype=F64)  # every z^2 < 1: maximum at V -> 0
    assert single_effect_regression(null, d, 0.0, 1.0, lp, "optim", optimizer="newton").V == 0.0
    assert ser.newton_maximize_batch(lambda xs, rows: [(1.0, -1.0, False)] * len(rows),
                                     [0.0], -3.0, 2.0) == [2.0]


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("rows_n", [ser._DRIVEN_MIN_ROWS + 2, ser._LOCK_STEP_MIN_ROWS + 2])
def test_driven_and_lock_step_brent_equal_scalar_brent_bit_for_bit(rows_n, compiled, monkeypatch):
    """Searches driven together (one batched evaluation per step) and in lock step take the
    steps of the scalar search, also on rows that leave the one-s fast evaluation; with the
    compiled search the fast rows search one by one and the others still together."""
    monkeypatch.setattr(ser, "USE_COMPILED", compiled)
    rng = np.random.default_rng(0)
    W, p = 64, 50
    d = np.zeros((rows_n, W))
    d[:, :p] = 49.0
    lp = np.full((rows_n, W), -np.inf)
    lp[:, :p] = math.log(1 / p)
    lp[1::3, :p] = np.log(rng.dirichlet(np.ones(p), size=len(range(1, rows_n, 3))))  # not fast
    x = np.zeros((rows_n, W))
    x[:, :p] = rng.standard_normal((rows_n, p)) * 7.0
    x[:, 3] += rng.uniform(0, 40, rows_n)
    V = np.full(rows_n, 0.3)
    batched = ser._ser_rows(ser._Rows(d, lp, np.ones(rows_n)), x, V, "optim", 0.0, "brent")
    for i in (0, 1, 4, 7, rows_n - 1):
        one = ser._ser_rows(ser._Rows(d[i:i + 1], lp[i:i + 1], np.ones(1)), x[i:i + 1], V[i:i + 1],
                            "optim", 0.0, "brent")
        assert batched.V[i] == one.V[0]
        assert np.array_equal(batched.alpha[i], one.alpha[0])


def test_prior_rows_reused_across_sweeps_give_the_same_constants():
    """The sigma2-free row constants computed once per batch equal a fresh computation."""
    rng = np.random.default_rng(3)
    d = np.zeros((3, 64))
    d[:, :50] = 49.0
    d[1:, :50] += rng.uniform(0, 10, (2, 50))  # rows 1, 2: unequal 1/shat^2
    d[1, 7] = 0.0  # an uninformative variable
    lp = np.full((3, 64), -np.inf)
    lp[:, :50] = math.log(1 / 50)
    lp[2, :50] = np.log(rng.dirichlet(np.ones(50)))
    prior = ser._PriorRows(d, lp)
    for sigma2 in (np.array([1.0, 0.5, 2.0]), np.array([0.3, 0.3, 0.9])):
        fresh, reused = ser._Rows(d, lp, sigma2), ser._Rows(d, lp, sigma2, prior)
        for name in ("s", "c", "inv_s2", "ll0", "real", "pad", "s_bar", "lp_max"):
            assert np.array_equal(getattr(fresh, name), getattr(reused, name))
        assert fresh.fast == reused.fast == [True, False, False]


def test_many_loci_batch_equals_one_by_one():
    """Enough loci for the lock-step searches; still the one-locus fits bit for bit."""
    loci = [simulate(n=60, p=12, causal=(2,), effect=0.8 * (i % 3), seed=200 + i)
            for i in range(ser._LOCK_STEP_MIN_ROWS + 4)]
    batch = susie_batch(loci, L=3, batch_size=len(loci))
    for i in (0, 1, 50, len(loci) - 1):
        one = susie(*loci[i], L=3)
        assert torch.equal(batch[i].alpha, one.alpha) and torch.equal(batch[i].elbo, one.elbo)


def test_prior_optimizer_is_checked():
    X, y = simulate(n=50, p=10, causal=(2,), seed=1)
    with pytest.raises(InputError, match="prior_optimizer"):
        susie(X, y, L=2, prior_optimizer="golden")


def test_column_moments_and_finiteness():
    X = torch.randn(300, 7, dtype=F64) * 3 + 1e4  # large mean, small spread
    mean, sd = column_moments(X)
    assert float((mean - X.mean(0)).abs().max()) < 1e-9
    assert float((sd - X.std(0)).abs().max() / float(X.std(0).min())) < 1e-12
    assert all_finite(X)
    bad = X.clone()
    bad[17, 3] = math.nan
    assert not all_finite(bad)
    bad[17, 3] = math.inf
    assert not all_finite(bad)
    huge = torch.full((4, 2), 1e308, dtype=F64)  # sums overflow, entries are finite
    with np.errstate(over="ignore"):
        assert all_finite(huge)
    with pytest.raises(InputError, match="row, column 17, 3"):
        susie(bad, torch.randn(300, dtype=F64), L=2)


def test_cpu_batches_hold_what_fits_in_cache(monkeypatch):
    loci = [simulate(n=100, p=20, causal=(3,), seed=i) for i in range(6)]
    sizes = []
    original = batch_module.ibss_batch
    monkeypatch.setattr(batch_module, "ibss_batch",
                        lambda backends, *a, **k: sizes.append(len(backends)) or original(backends, *a, **k))
    monkeypatch.setattr(batch_module, "_CPU_CACHE_BYTES", 4 * 100 * 20 * 8)
    fits = susie_batch(loci, L=2)
    assert sizes == [4, 2]
    assert torch.equal(fits[3].alpha, susie(*loci[3], L=2).alpha)
    # fewer than _CPU_MIN_SHARED loci in cache: one at a time
    sizes.clear()
    monkeypatch.setattr(batch_module, "_CPU_CACHE_BYTES", 3 * 100 * 20 * 8)
    susie_batch(loci, L=2)
    assert sizes == [1] * 6
    assert data_module.IndividualData(*loci[0]).data_bytes() == 100 * 20 * 8


@pytest.mark.parametrize("m,w", [(9, 3), (60, 59), (400, 12)])
def test_banded_products_equal_dense(m, w):
    g = torch.Generator().manual_seed(m)
    B = BandedLD(torch.rand(w + 1, m, generator=g, dtype=F64))
    D = B.to_dense()
    x = torch.randn(m, 3, generator=g, dtype=F64)
    assert float((B.matmul(x) - D @ x).abs().max()) < 1e-12                 # BLAS band product
    assert float((ld_module._band_unfold(B.bands, x) - D @ x).abs().max()) < 1e-12  # torch
    v = torch.randn(m, 1, generator=g, dtype=F64, requires_grad=True)
    (B.matmul(v) ** 2).sum().backward()
    expected = 2 * D @ (D @ v.detach())
    assert float((v.grad - expected).abs().max()) < 1e-10
    bands = B.bands.clone().requires_grad_(True)  # gradients for the bands: the torch product
    (ld_module._band_unfold(bands, x) ** 2).sum().backward()
    assert bands.grad is not None and bool(torch.isfinite(bands.grad).all())
    assert float((BandedLD(B.bands.float()).matmul(x.float()) - (D @ x).float()).abs().max()) < 1e-4
