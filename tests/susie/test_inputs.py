"""Bad input gives clear InputErrors; zero-variance columns are handled as susieR does."""

from __future__ import annotations

import pytest
import torch
from linear_operator.operators import DenseLinearOperator
from susie_helpers import simulate, suff_stats, z_and_R

from torchgenetics.errors import InputError
from torchgenetics.susie import susie, susie_rss, susie_ss

F64 = torch.float64


@pytest.fixture(scope="module")
def data():
    return simulate(n=120, p=15, causal=(2, 9), seed=8)


def test_X_with_nan(data):
    X, y = data
    X = X.clone()
    X[4, 7] = float("nan")
    with pytest.raises(InputError, match=r"X contains NaN.*4, 7"):
        susie(X, y)


def test_y_with_nan_or_constant_or_wrong_length(data):
    X, y = data
    y_nan = y.clone()
    y_nan[3] = float("nan")
    with pytest.raises(InputError, match="y contains NaN"):
        susie(X, y_nan)
    with pytest.raises(InputError, match="constant"):
        susie(X, torch.full_like(y, 2.5))
    with pytest.raises(InputError, match="length n = 120"):
        susie(X, y[:-1])
    XtX, Xty, _ = suff_stats(X, y)
    with pytest.raises(InputError, match="yty must be positive"):
        susie_ss(XtX, Xty, 0.0, n=120)


def test_L_larger_than_p(data):
    X, y = data
    with pytest.raises(InputError, match="L = 16 exceeds the number of variables p = 15"):
        susie(X, y, L=16)
    z, R = z_and_R(X, y)
    with pytest.raises(InputError, match="exceeds"):
        susie_rss(z, R, n=120, L=20)


def test_R_not_matching_z(data):
    X, y = data
    z, R = z_and_R(X, y)
    with pytest.raises(InputError, match=r"R is 15 x 15 but there are p = 14"):
        susie_rss(z[:14], R, n=120)
    with pytest.raises(InputError, match="square"):
        susie_rss(z, R[:, :14], n=120)


def test_R_not_symmetric(data):
    X, y = data
    z, R = z_and_R(X, y)
    bad = R.clone()
    bad[0, 5] += 0.2
    with pytest.raises(InputError, match="not symmetric"):
        susie_rss(z, bad, n=120)
    with pytest.raises(InputError, match="not symmetric"):
        susie_rss(z, DenseLinearOperator(bad), n=120)
    XtX, Xty, yty = suff_stats(X, y)
    XtX[1, 0] += 1.0
    with pytest.raises(InputError, match="XtX is not symmetric"):
        susie_ss(XtX, Xty, yty, n=120)


def test_other_bad_options(data):
    X, y = data
    z, R = z_and_R(X, y)
    cases = [
        (lambda: susie(X, y, estimate_prior_method="brent"), "estimate_prior_method"),
        (lambda: susie(X, y, convergence="alpha"), "convergence"),
        (lambda: susie(X, y, null_weight=1.0), "null_weight"),
        (lambda: susie(X, y, prior_weights=torch.ones(3)), "prior_weights has length 3"),
        (lambda: susie(X, y, prior_weights=torch.zeros(15)), "positive for at least one"),
        (lambda: susie(X, y, scaled_prior_variance=1.5), "at most 1"),
        (lambda: susie(X, y, L=3, scaled_prior_variance=[0.1, 1.2, 0.1]), "at most 1"),
        (lambda: susie(X, y, L=3, scaled_prior_variance=[0.1, 0.2]), "length L = 3"),
        (lambda: susie(X, y, scaled_prior_variance=float("nan")), "finite and non-negative"),
        (lambda: susie(X, y, scaled_prior_variance=torch.tensor([-0.1])), "finite and non-negative"),
        (lambda: susie(X, y, residual_variance=-1.0), "residual_variance must be positive"),
        (lambda: susie(X, y, L=0), "positive integer"),
        (lambda: susie(X, y, coverage=1.5), "coverage"),
        (lambda: susie(X[0], y), "2-D"),
        (lambda: susie_rss(z, None), "R"),
        (lambda: susie_rss(z, R, bhat=z), "not both"),
        (lambda: susie_rss(None, R, bhat=z), "bhat and shat"),
        (lambda: susie_rss(bhat=z, shat=-torch.ones(15), R=R), "shat must be positive"),
        (lambda: susie_rss(z, R, n=1), "n must be greater than 1"),
        (lambda: susie(X, y, variable_names=["a"]), "variable_names"),
    ]
    for call, message in cases:
        with pytest.raises(InputError, match=message):
            call()


def test_zero_variance_columns_carry_no_signal(data):
    X, y = data
    Xc = torch.cat([X[:, :6], torch.full((120, 1), 3.0, dtype=F64), X[:, 6:]], dim=1)
    fit = susie(Xc, y, L=3)
    ref = susie(X, y, L=3)
    for t in (fit.alpha, fit.mu, fit.mu2, fit.lbf_variable, fit.pip, fit.coef()):
        assert bool(torch.isfinite(t).all())
    assert float(fit.mu[:, 6].abs().max()) < 1e-12 and float(fit.lbf_variable[:, 6].abs().max()) == 0.0
    # its alpha is its prior weight times the effect's normaliser: tiny for a real signal
    assert float(fit.pip[6]) < 0.05 and abs(float(fit.coef()[7])) < 1e-12
    assert float(fit.X_column_scale_factors[6]) == 1.0
    moved = lambda j: j if j < 6 else j + 1  # noqa: E731
    assert [[moved(j) for j in c.tolist()] for c in ref.sets["cs"]] == [c.tolist() for c in fit.sets["cs"]]
    # the same through sufficient statistics (zero row and column of X'X)
    XtX, Xty, yty = suff_stats(Xc, y)
    ss = susie_ss(XtX, Xty, yty, n=120, L=3)
    assert torch.allclose(ss.alpha, fit.alpha, atol=1e-8)


def test_rss_nan_z_is_zero_and_mismatch_is_caught(data):
    X, y = data
    z, R = z_and_R(X, y)
    z_nan = z.clone()
    z_nan[0] = float("nan")
    z_zero = z.clone()
    z_zero[0] = 0.0
    assert torch.equal(susie_rss(z_nan, R, n=120, L=3).alpha, susie_rss(z_zero, R, n=120, L=3).alpha)
    # z-scores that R cannot produce blow up the prior variance: check_prior stops the fit
    z_bad = z.clone()
    z_bad[2], z_bad[3] = 40.0, -40.0
    R_bad = R.clone()
    R_bad[2, 3] = R_bad[3, 2] = 0.99
    with pytest.raises(InputError, match="LD matrix do not match"):
        susie_rss(z_bad, R_bad, n=120, L=3, max_iter=200)
