"""susie_batch: many loci in one batched program give the one-by-one fits exactly."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from linear_operator.operators import BlockDiagLinearOperator, DenseLinearOperator
from susie_helpers import simulate, suff_stats, z_and_R

from torchgenetics.errors import InputError
from torchgenetics.susie import susie, susie_batch, susie_rss, susie_ss
from torchgenetics.susie.ser import brent_minimize, brent_minimize_batch

TENSORS = ("alpha", "mu", "mu2", "lbf", "lbf_variable", "KL", "V", "elbo", "pip")


def assert_same_fit(a, b):
    """Bit-for-bit equal fits (CPU)."""
    for name in TENSORS:
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert a.sigma2 == b.sigma2 and a.n_iter == b.n_iter and a.converged == b.converged
    assert [c.tolist() for c in a.sets["cs"]] == [c.tolist() for c in b.sets["cs"]]
    assert torch.equal(a.sets["purity"], b.sets["purity"])
    assert a.intercept == b.intercept or (math.isnan(a.intercept) and math.isnan(b.intercept))


@pytest.fixture(scope="module")
def loci():
    """Six individual-data loci of different n and p, some null, some with 1-2 signals."""
    out = []
    for i in range(6):
        effect = 0.0 if i in (1, 4) else 0.4 + 0.1 * i
        out.append(simulate(n=150 + 25 * i, p=30 + 9 * i, causal=(4, 20 + i), effect=effect,
                            rho=0.7, seed=100 + i))
    return out


@pytest.mark.parametrize("method", ["optim", "EM", "simple"])
def test_individual_loci_equal_one_by_one(loci, method):
    one = [susie(X, y, L=5, estimate_prior_method=method) for X, y in loci]
    batch = susie_batch(loci, L=5, estimate_prior_method=method)
    for a, b in zip(one, batch, strict=True):
        assert_same_fit(a, b)
    assert len({f.n_iter for f in batch}) > 1  # each locus stopped on its own convergence
    assert any(f.sets["cs"] for f in batch) and not all(f.sets["cs"] for f in batch)


def test_options_greedy_null_weight_tracking(loci):
    opts = dict(L=6, L_greedy=2, null_weight=0.05, track_fit=True, convergence="pip",
                estimate_residual_variance=False, residual_variance=1.0)
    one = [susie(X, y, **opts) for X, y in loci]
    batch = susie_batch(loci, **opts)
    for a, b in zip(one, batch, strict=True):
        assert_same_fit(a, b)
        assert a.greedy_history == b.greedy_history
        assert len(a.trace) == len(b.trace)
        assert all(torch.equal(s["alpha"], t["alpha"]) for s, t in zip(a.trace, b.trace, strict=True))


def test_warm_start_list_and_per_locus_L(loci):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        short = susie_batch(loci, L=[3, 4, 3, 4, 3, 4], max_iter=2)
    assert not all(f.converged for f in short)
    one = [susie(X, y, L=5, init=f) for (X, y), f in zip(loci, short, strict=True)]
    batch = susie_batch(loci, L=5, init=short)
    for a, b in zip(one, batch, strict=True):
        assert_same_fit(a, b)


def test_unconverged_loci_warn_once(loci):
    with pytest.warns(RuntimeWarning, match=r"did not converge in 2 iterations for \d+ of 6 loci"):
        fits = susie_batch(loci, L=5, max_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for (X, y), f in zip(loci, fits, strict=True):
            assert_same_fit(susie(X, y, L=5, max_iter=2), f)


def test_summary_loci_dense_and_operator_equal_one_by_one(loci):
    rss, ss, expected = [], [], []
    for i, (X, y) in enumerate(loci[:4]):
        z, R = z_and_R(X, y)
        if i == 3:  # an LD operator (two blocks), used through products only
            half = R.shape[0] // 2
            R = BlockDiagLinearOperator(DenseLinearOperator(
                torch.stack([R[:half, :half], R[half: 2 * half, half: 2 * half]])))
            z = z[: 2 * half]
        rss.append((z, R, X.shape[0]))
        expected.append(susie_rss(z, R, n=X.shape[0], L=4))
        XtX, Xty, yty = suff_stats(X, y)
        ss.append((XtX, Xty, yty, X.shape[0]))
    for a, b in zip(expected, susie_batch(rss, L=4), strict=True):
        assert_same_fit(a, b)
    for args, b in zip(ss, susie_batch(ss, L=4, estimate_prior_method="EM"), strict=True):
        assert_same_fit(susie_ss(*args, L=4, estimate_prior_method="EM"), b)


def test_mixed_kinds_and_dict_loci(loci):
    (X0, y0), (X1, y1) = loci[0], loci[2]
    z, R = z_and_R(X1, y1)
    names = [f"rs{j}" for j in range(X0.shape[1])]
    fits = susie_batch([{"X": X0, "y": y0, "variable_names": names},
                        {"z": z, "R": R, "n": X1.shape[0], "max_iter": 50}], L=4)
    assert_same_fit(fits[0], susie(X0, y0, L=4, variable_names=names))
    assert_same_fit(fits[1], susie_rss(z, R, n=X1.shape[0], L=4, max_iter=50))
    assert fits[0].variable_names == names


def test_refine_per_locus(loci):
    X, y = loci[3]
    assert_same_fit(susie_batch([(X, y)], L=5, refine=True)[0], susie(X, y, L=5, refine=True))


def test_bad_loci_raise_or_return(loci):
    X, y = loci[0]
    bad = (X, torch.ones_like(y))
    with pytest.raises(InputError, match="locus 1: y is constant"):
        susie_batch([(X, y), bad], L=3)
    fits = susie_batch([(X, y), bad, (X[:, :2], y)], L=3, on_error="return")
    assert isinstance(fits[1], InputError) and isinstance(fits[2], InputError)  # L > p
    assert_same_fit(fits[0], susie(X, y, L=3))
    with pytest.raises(InputError, match="locus 0"):
        susie_batch([(X, y)], L=3, no_such_option=1)
    with pytest.raises(InputError, match="expected"):
        susie_batch([X], L=3)


def test_prior_check_error_stays_with_its_locus(loci):
    X, y = loci[0]
    z, R = z_and_R(X, y)
    z_bad, R_bad = z.clone(), R.clone()
    z_bad[2], z_bad[3] = 40.0, -40.0
    R_bad[2, 3] = R_bad[3, 2] = 0.99
    fits = susie_batch([(z, R, X.shape[0]), (z_bad, R_bad, X.shape[0])], L=3, max_iter=200,
                       on_error="return")
    assert isinstance(fits[1], InputError) and "do not match" in str(fits[1])
    assert_same_fit(fits[0], susie_rss(z, R, n=X.shape[0], L=3, max_iter=200))


def test_batched_brent_takes_the_scalar_steps():
    rng = np.random.default_rng(0)
    centres, scales = rng.uniform(-35, 20, 40), rng.uniform(0.1, 5, 40)

    def f(x, c, k):
        return math.cosh(k * (x - c)) + 0.1 * math.sin(3 * x)

    scalar = [brent_minimize(lambda x, c=c, k=k: f(x, c, k), -30.0, 15.0)
              for c, k in zip(centres, scales, strict=True)]
    batch = brent_minimize_batch(
        lambda x, rows: np.array([f(*v) for v in zip(x, centres[rows], scales[rows], strict=True)]),
        -30.0, 15.0, 40)
    assert batch.tolist() == scalar


def test_torch_engine_used_off_cpu(loci, monkeypatch):
    """Off the CPU the arithmetic runs in torch (numpy on it): forcing torch on the CPU gives
    the same fits up to rounding, and batched still equals one by one."""
    from torchgenetics.susie import ser

    numpy_fits = [susie(X, y, L=5) for X, y in loci[:3]]
    monkeypatch.setattr(ser, "USE_NUMPY_ON_CPU", False)
    one = [susie(X, y, L=5) for X, y in loci[:3]]
    for a, b, c in zip(one, susie_batch(loci[:3], L=5), numpy_fits, strict=True):
        assert_same_fit(a, b)
        assert float((a.pip - c.pip).abs().max()) < 1e-6
        assert [s.tolist() for s in a.sets["cs"]] == [s.tolist() for s in c.sets["cs"]]


def test_batch_leaves_the_collector_as_it_found_it(loci):
    import gc

    assert gc.get_freeze_count() == 0
    susie_batch(loci[:2], L=3)
    assert gc.get_freeze_count() == 0 and gc.isenabled()
    sentinel = [[] for _ in range(10)]  # tracked containers, kept alive
    gc.freeze()
    try:
        susie_batch(loci[:2], L=3)
        assert gc.get_freeze_count() >= len(sentinel)  # the caller's freeze is untouched
    finally:
        gc.unfreeze()
    del sentinel
