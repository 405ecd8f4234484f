"""Prior families and scopes, residual-variance scopes, greedy growth, traces, storage, warm starts."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import mf_data  # noqa: E402

from torchgenetics.errors import InputError  # noqa: E402
from torchgenetics.susie import susie  # noqa: E402
from torchgenetics.susie.functional import MfsusieFit, fsusie, load_mfsusie, mfsusie  # noqa: E402

_one_thread = pytest.fixture(scope="module", autouse=True)(mf_data.one_thread)


@pytest.fixture(scope="module")
def small():
    return mf_data.small()


@pytest.fixture(scope="module")
def base(small):
    X, Y, y3 = small
    return mfsusie(X, Y + [y3], L=10, track_fit=True)


@pytest.mark.parametrize("prior, scope, groups", [
    ("mixture_normal", "per_scale", 5 + 5 + 1),
    ("point_normal", "per_scale", 11),
    ("point_laplace", "per_outcome", 3),
])
def test_prior_families_and_scopes(small, prior, scope, groups):
    X, Y, y3 = small
    fit = mfsusie(X, Y + [y3], L=10, prior=prior, prior_variance_scope=scope)
    assert [cs.tolist() for cs in fit.sets["cs"]] == [[4]]
    assert fit.prior_family == prior and fit.prior_scope == scope
    assert fit.prior_pi.shape[:2] == (fit.L, groups)
    torch.testing.assert_close(fit.prior_pi.sum(-1), torch.ones(fit.L, groups, dtype=torch.float64))
    lead = int(fit.sets["cs_index"][0])
    assert float(fit.V[lead]) > 0 and float(fit.V[lead]) == float(fit.V.max())
    if prior != "mixture_normal":
        assert fit.prior_pi.shape[2] == 2
        assert bool((fit.prior_scale[..., 0] == 0).all()) and bool((fit.prior_scale[lead, :, 1] > 0).all())
        assert bool((fit.prior_pi[lead, :, 0] < 1).any())  # some scales carry the effect


def test_per_scale_residual_variance(small):
    X, Y, y3 = small
    fit = mfsusie(X, Y + [y3], L=5, residual_variance_scope="per_scale", wavelet="haar")
    assert [s.shape[0] for s in fit.sigma2] == [5, 5, 1]  # log2(16) + 1 scales, and a scalar outcome
    assert [cs.tolist() for cs in fit.sets["cs"]] == [[4]]
    assert fit.residual_scope == "per_scale" and fit.wavelet == "haar"


def test_fixed_residual_variance(small):
    X, Y, y3 = small
    fit = mfsusie(X, Y, L=3, residual_variance=[0.4, 0.5], L_greedy=None)
    expected = torch.tensor([0.4, 0.5], dtype=torch.float64) / fit.outcome_scale**2
    torch.testing.assert_close(torch.cat(fit.sigma2), expected)


def test_greedy_growth():
    X, Y, y3 = mf_data.small(causal=(2, 9, 16, 25), sd=0.5)
    fit = mfsusie(X, Y, L=10, L_greedy=2)
    actions = [(h["L"], h["action"]) for h in fit.greedy_history]
    assert actions[:2] == [(2, "grow"), (4, "grow")] and actions[-1][1] == "saturated"
    assert fit.L == actions[-1][0] == 6
    assert sorted(int(cs[0]) for cs in fit.sets["cs"]) == [2, 9, 16, 25]
    flat = mfsusie(X, Y, L=6, L_greedy=None)
    assert flat.L == 6 and flat.greedy_history is None
    assert sorted(int(cs[0]) for cs in flat.sets["cs"]) == [2, 9, 16, 25]


def test_track_fit(base):
    trace = base.trace
    assert len(trace) == sum(h["n_iter"] for h in base.greedy_history)
    last = trace[-base.n_iter:]
    assert [t["elbo"] for t in last] == base.elbo.tolist()
    torch.testing.assert_close(last[-1]["alpha"], base.alpha)
    torch.testing.assert_close(last[-1]["prior_pi"], base.prior_pi)
    assert [s.shape for s in last[-1]["sigma2"]] == [s.shape for s in base.sigma2]
    assert trace[0]["alpha"].shape == (5, 30)


def test_save_load_round_trip_and_warm_start(small, base, tmp_path):
    X, Y, y3 = small
    path = tmp_path / "fit.h5"
    base.save(path)
    loaded = load_mfsusie(path)
    assert isinstance(loaded, MfsusieFit)
    for name, value in base.to_dict().items():
        other = getattr(loaded, name)
        if torch.is_tensor(value):
            assert torch.equal(other, value), name
        elif name in ("sigma2", "grid_pos", "outcome_center", "fitted"):
            assert all(torch.equal(a, b) for a, b in zip(other, value, strict=True)), name
    assert loaded.sets["cs"][0].tolist() == base.sets["cs"][0].tolist()
    assert len(loaded.trace) == len(base.trace) and loaded.greedy_history == base.greedy_history
    pd.testing.assert_frame_equal(loaded.effect_curve(0, 1), base.effect_curve(0, 1))
    # a warm start from the file is the warm start from memory
    with pytest.warns(RuntimeWarning):
        a = mfsusie(X, Y + [y3], L=10, init=base, max_iter=1, convergence="elbo", tol=0.0)
    with pytest.warns(RuntimeWarning):
        b = mfsusie(X, Y + [y3], L=10, init=loaded, max_iter=1, convergence="elbo", tol=0.0)
    assert torch.equal(a.alpha, b.alpha) and torch.equal(a.elbo, b.elbo)
    with pytest.raises(Exception, match="MfsusieFit"):
        MfsusieFit.load(_susie_file(X, y3, tmp_path))


def _susie_file(X, y, tmp_path):
    path = tmp_path / "susie.h5"
    susie(X, y, L=2).save(path)
    return path


def test_reproducible(small, base):
    X, Y, y3 = small
    again = mfsusie(X, Y + [y3], L=10, track_fit=True)
    for name in ("alpha", "mu", "mu2", "prior_pi", "elbo", "pip"):
        assert torch.equal(getattr(again, name), getattr(base, name)), name


def test_warm_start_pads_fewer_effects(small):
    X, Y, y3 = small
    two = mfsusie(X, Y, L=2, L_greedy=None)
    five = mfsusie(X, Y, L=5, L_greedy=None, init=two)
    assert five.L == 5 and [cs.tolist() for cs in five.sets["cs"]] == [[4]]
    with pytest.raises(InputError, match="init has 5 effects"):
        mfsusie(X, Y, L=3, L_greedy=None, init=five)


def test_scalar_and_functional_outcomes_together(small, base):
    X, Y, y3 = small
    assert base.n_coef == [16, 16, 1] and base.outcome_names == ["Y1", "Y2", "Y3"]
    assert base.coef_slice(2) == slice(32, 33)
    scalar = base.effect_curve(int(base.sets["cs_index"][0]), outcome="Y3")
    assert len(scalar) == 1 and float(scalar["mean"].iloc[0]) > 0.3  # simulated effect 0.5
    frame = base.to_frame()
    assert list(frame.columns) == ["variable", "pip", "cs", "lbf"] and frame["cs"].iloc[4] == "L1"
    summary = base.summary()
    assert summary["lead_variable"].tolist() == [4]


def test_fsusie_is_mfsusie_with_one_outcome(small):
    X, Y, _ = small
    pos = torch.arange(16, dtype=torch.float64) * 2.0
    one = fsusie(X, Y[0], pos=pos, L=3)
    same = mfsusie(X, [Y[0]], pos=[pos], L=3)
    assert torch.equal(one.alpha, same.alpha) and torch.equal(one.grid_pos[0], pos)


def test_prior_weights_split_identical_variables(small):
    X, Y, _ = small
    X2 = torch.cat([X, X[:, 4:5]], dim=1)  # variable 30 is a copy of variable 4
    w = torch.ones(31, dtype=torch.float64)
    w[30] = 3.0
    fit = mfsusie(X2, Y, L=3, prior_weights=w)
    torch.testing.assert_close(fit.pi, w / w.sum())
    k = int(fit.sets["cs_index"][0])
    assert fit.sets["cs"][0].tolist() == [4, 30]
    assert abs(float(fit.alpha[k, 30] / fit.alpha[k, 4]) - 3.0) < 1e-6


def test_variable_and_outcome_names_from_frames(small):
    X, Y, _ = small
    frame = pd.DataFrame(X.numpy(), columns=[f"rs{j}" for j in range(30)])
    fit = mfsusie(frame, {"atac": Y[0], "me": Y[1]}, L=3)
    assert fit.outcome_names == ["atac", "me"]
    assert fit.summary()["lead_variable"].tolist() == ["rs4"]
    assert fit.curves()["outcome"].unique().tolist() == ["atac", "me"]
