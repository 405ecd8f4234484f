"""Curve forms: signed Hill, additive, nested, polynomial, inflection point, derived parameters."""

import numpy as np
import pytest
import torch

from torchgenetics.dream import (
    CurveSpec,
    additive_hill,
    curve_mean,
    curve_params,
    get_family,
    hill,
    inflection_point,
    nested_hill,
    polynomial,
)

X = torch.logspace(-2, 3, 400, dtype=torch.float64)


def test_signed_hill_activates_and_represses_and_matches_the_classic_form():
    K, n = torch.tensor(10.0, dtype=torch.float64), torch.tensor(2.5, dtype=torch.float64)
    up = hill(X, 1.0, 3.0, K, n)
    down = hill(X, 1.0, 3.0, K, -n)
    assert torch.all(torch.diff(up) > 0) and torch.all(torch.diff(down) < 0)
    classic = 1.0 + 3.0 * X**n / (K**n + X**n)
    torch.testing.assert_close(up, classic)
    torch.testing.assert_close(up + down, torch.full_like(up, 5.0))
    assert float(hill(K, 1.0, 3.0, K, n)) == pytest.approx(2.5)


def test_inflection_point_is_where_the_second_derivative_changes_sign():
    x = torch.linspace(0.5, 30, 20001, dtype=torch.float64)
    for n in (1.5, 3.0, -2.0):
        y = hill(x, 0.0, 1.0, torch.tensor(10.0, dtype=torch.float64), torch.tensor(n, dtype=torch.float64))
        d2 = torch.diff(y, 2)
        where = x[1:-1][torch.nonzero(torch.diff(torch.sign(d2)) != 0)[0, 0]]
        assert float(inflection_point(torch.tensor(10.0), torch.tensor(n))) == pytest.approx(float(where), rel=1e-3)
    assert torch.isnan(inflection_point(torch.tensor(10.0), torch.tensor(0.8)))


def test_additive_nested_polynomial_shapes():
    bump = additive_hill(X, 0.0, 1.0, torch.tensor(1.0), torch.tensor(3.0), 1.0, torch.tensor(100.0),
                         torch.tensor(-3.0))
    top = int(torch.argmax(bump))
    assert 0 < top < X.numel() - 1 and float(bump.max()) > 1.5   # rises then falls
    nested = nested_hill(X, 2.0, 1.0, torch.tensor(0.5), torch.tensor(4.0), torch.tensor(5.0), torch.tensor(2.0))
    assert torch.all(torch.diff(nested) >= 0) and float(nested[0]) == pytest.approx(2.0, abs=1e-3)
    t = torch.linspace(-1, 1, 5, dtype=torch.float64)
    torch.testing.assert_close(polynomial(t, 1.0, torch.tensor([2.0, -1.0], dtype=torch.float64)),
                               1 + 2 * t - t**2)


def _priors(f=2):
    return {"A_mean": torch.full((f,), 0.2), "V_mean": torch.full((f,), 0.5), "scale": torch.ones(f), "cv": 1.0,
            "K_loc": 1.0, "K_scale": 0.5, "x_lo": 1.0, "x_hi": 50.0, "log_x_center": 1.0, "log_x_scale": 1.0}


def test_binomial_curves_stay_inside_zero_one():
    spec = CurveSpec("additive", get_family("binomial"), _priors())
    draws = {"A": torch.full((4, 2), 0.3), "Vfrac1": torch.full((4, 2), 0.9), "K1": torch.ones(4, 2),
             "n1_abs": torch.full((4, 2), 3.0), "gate1": torch.ones(4, 2), "Vfrac2": torch.full((4, 2), 0.9),
             "K2": torch.full((4, 2), 100.0), "n2_abs": torch.full((4, 2), 3.0), "gate2": torch.ones(4, 2)}
    params = curve_params(spec, draws)
    np.testing.assert_allclose(params["Vmax1"].numpy(), 0.63, rtol=1e-6)                # (1 - A) * 0.9
    np.testing.assert_allclose(params["Vmax2"].numpy(), (1 - 0.3 - 0.63) * 0.9, rtol=1e-5)  # what room is left
    mean = curve_mean(spec, params, torch.log(X)[:, None, None])
    assert float(mean.max()) < 1 and float(mean.min()) > 0


def test_multinomial_curves_are_compositions():
    pri = _priors()
    pri["conc"] = torch.ones(2, 3)
    spec = CurveSpec("single", get_family("multinomial"), pri)
    draws = {"p_low": torch.tensor([[[0.7, 0.2, 0.1]] * 2]), "p_high": torch.tensor([[[0.1, 0.1, 0.8]] * 2]),
             "K": torch.full((1, 2), 5.0), "n_abs": torch.full((1, 2), 2.0), "gate": torch.ones(1, 2)}
    params = curve_params(spec, draws)
    mean = curve_mean(spec, params, torch.log(X.float())[:, None, None])
    torch.testing.assert_close(mean.sum(-1), torch.ones(mean.shape[:-1]))
    torch.testing.assert_close(mean[0, 0, 0], torch.tensor([0.7, 0.2, 0.1]), atol=1e-3, rtol=0)
    torch.testing.assert_close(mean[-1, 0, 0], torch.tensor([0.1, 0.1, 0.8]), atol=1e-3, rtol=0)
