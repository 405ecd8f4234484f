"""The compiled Brent search (``torchgenetics.susie._brent``) against the Python one.

The compiled module runs the step logic of ``ser._brent_steps`` on the one-scale SER
log-likelihood. Driven by the compiled likelihood, the Python search must visit the
same points (so the same minimiser, bit for bit); the compiled row sum must agree with
an exactly rounded sum; whole fits must agree with fits searched in Python.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from susie_helpers import simulate

from torchgenetics.susie import ser, susie, susie_batch

_compiled = ser._compiled


def test_the_compiled_module_was_built():
    """A failed build would silently leave every search in Python."""
    assert _compiled is not None, "torchgenetics.susie._brent missing: reinstall (pip install -e .)"
    assert _compiled.use_sum_exp() in ("avx512", "avx2", "scalar")


def test_every_row_sum_this_processor_has_agrees():
    """The vector row sums and the C library's exp give the same sums to rounding and the
    same searches to Brent's tolerance."""
    rng = np.random.default_rng(9)
    rows = [_fast_row(rng, 997, signal) for signal in (0.0, 9.0, 60.0)]
    chosen = _compiled.use_sum_exp()
    kinds = [k for k in ("avx512", "avx2", "scalar") if _available(k)]
    assert "scalar" in kinds
    try:
        found = {}
        for kind in kinds:
            _compiled.use_sum_exp(kind)
            found[kind] = [(_compiled.sum_exp(dz, 0.37), _compiled.brent(dz, s, lp0, z2max, -30.0, 15.0, 500, 1e-8))
                           for dz, s, lp0, z2max in rows]
    finally:
        _compiled.use_sum_exp(chosen)
    for kind in kinds:
        for (total, (u, ll)), (total0, (u0, ll0)) in zip(found[kind], found["scalar"], strict=True):
            assert total == pytest.approx(total0, rel=1e-14)
            assert abs(u - u0) < 1e-6 and ll == pytest.approx(ll0, rel=1e-13)
    with pytest.raises(ValueError, match="not available"):
        _compiled.use_sum_exp("sse9")


def _available(kind):
    before = _compiled.use_sum_exp()
    try:
        _compiled.use_sum_exp(kind)
        return True
    except ValueError:
        return False
    finally:
        _compiled.use_sum_exp(before)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 1000, 1003])
def test_row_sum_matches_an_exactly_rounded_sum(n):
    rng = np.random.default_rng(n)
    z2 = rng.chisquare(1, n) * 3.0
    dz = z2 - z2.max()
    if n > 2:
        dz[1] = -np.inf  # padding
        dz[2] = -5000.0  # underflows to 0
    for c in (1e-12, 1e-3, 0.17, 0.5):
        ref = math.fsum(np.exp(c * dz).tolist())
        assert _compiled.sum_exp(dz, c) == pytest.approx(ref, rel=4e-15)


def test_row_sum_rejects_wrong_arrays():
    with pytest.raises(TypeError, match="float64"):
        _compiled.sum_exp(np.zeros(4, dtype=np.float32), 0.5)
    with pytest.raises(TypeError, match="float64"):
        _compiled.sum_exp(np.zeros((2, 4)), 0.5)


def _fast_row(rng, p, signal):
    z2 = rng.chisquare(1, p)
    if signal:
        z2[rng.integers(p)] += signal
    s, lp0 = float(rng.uniform(50, 2000)), math.log(1.0 / p)
    return z2 - z2.max(), s, lp0, float(z2.max())


@pytest.mark.parametrize("signal", [0.0, 4.0, 12.0, 80.0])
def test_compiled_steps_are_the_python_steps(signal):
    """Python's Brent on the compiled likelihood visits the points the compiled search
    visits: the same minimiser and value, bit for bit."""
    rng = np.random.default_rng(int(signal))
    for _ in range(20):
        dz, s, lp0, z2max = _fast_row(rng, 300, signal)
        u, ll = _compiled.brent(dz, s, lp0, z2max, -30.0, 15.0, 500, 1e-8)
        row = (dz, s, lp0, z2max)
        u_py, neg = ser._brent(lambda v, row=row: -_compiled.loglik(*row, v), -30.0, 15.0)
        assert (u, ll) == (u_py, -neg)


def test_compiled_likelihood_equals_the_python_formula():
    rng = np.random.default_rng(5)
    dz, s, lp0, z2max = _fast_row(rng, 500, 30.0)
    for u in (-30.0, -8.0, -1.5, 0.0, 4.0, 15.0):
        t = math.exp(u) * s
        g = t / (1 + t)
        ref = lp0 + 0.5 * g * z2max + math.log(math.fsum(np.exp(0.5 * g * dz))) - 0.5 * math.log1p(t)
        assert _compiled.loglik(dz, s, lp0, z2max, u) == pytest.approx(ref, rel=1e-14, abs=1e-13)


def test_fits_searched_compiled_and_in_python_agree(monkeypatch):
    X, y = simulate(n=400, p=300, causal=(20, 150, 260), effect=0.3, seed=11)
    fast = susie(X, y, L=10)
    monkeypatch.setattr(ser, "USE_COMPILED", False)
    slow = susie(X, y, L=10)
    assert torch.allclose(fast.pip, slow.pip, rtol=0, atol=1e-8)
    assert torch.allclose(fast.V, slow.V, rtol=1e-6, atol=1e-12)
    assert abs(float(fast.elbo[-1] - slow.elbo[-1])) < 1e-8
    assert len(fast.sets["cs"]) == 3
    assert [c.tolist() for c in fast.sets["cs"]] == [c.tolist() for c in slow.sets["cs"]]


def test_batched_fits_use_the_same_compiled_search():
    loci = [simulate(n=300, p=p, causal=(10, 90), effect=0.4, seed=s) for s, p in ((1, 120), (2, 200))]
    batch = susie_batch(loci, L=5)
    for (X, y), fit in zip(loci, batch, strict=True):
        one = susie(X, y, L=5)
        assert torch.equal(one.alpha, fit.alpha)
        assert torch.equal(one.elbo, fit.elbo)
