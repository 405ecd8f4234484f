"""torchgenetics.optim: OneCycle learning-rate trajectory, early stopping, clipping, config checks."""

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.autoguide import AutoNormal

from torchgenetics.errors import ConvergenceError, InputError
from torchgenetics.optim import (
    EarlyStopping,
    OptimConfig,
    constant_adam,
    current_lr,
    fit_svi,
    one_cycle,
    one_cycle_lrs,
    run_svi,
)

Y = torch.randn(200, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 3.0


def model():
    m = pyro.sample("m", dist.Normal(torch.tensor(0.0, dtype=torch.float64), 10.0))
    with pyro.plate("data", Y.shape[0]):
        pyro.sample("y", dist.Normal(m, 1.0), obs=Y)


@pytest.fixture(autouse=True)
def fresh_store():
    with pyro.get_param_store().scope():
        torch.manual_seed(0)
        yield


def test_one_cycle_lr_trajectory_is_stepped_every_iteration():
    max_lr, div, final_div, n, pct = 0.1, 25.0, 1e4, 200, 0.25
    run = run_svi(model, AutoNormal(model), one_cycle(max_lr, n, pct_start=pct, div_factor=div,
                                                       final_div_factor=final_div), n)
    lrs = run.lrs
    assert lrs.shape == (n,)
    assert lrs[0] == pytest.approx(max_lr / div)
    peak = int(np.argmax(lrs))
    assert lrs[peak] == pytest.approx(max_lr)
    assert peak == round(pct * n) - 1
    assert np.all(np.diff(lrs[: peak + 1]) > 0)          # warm-up
    assert np.all(np.diff(lrs[peak:]) < 0)               # annealing
    assert lrs[-1] == pytest.approx(max_lr / (div * final_div))
    cfg = OptimConfig(n_steps=n, lr=max_lr, pct_start=pct, div_factor=div, final_div_factor=final_div)
    np.testing.assert_allclose(lrs, one_cycle_lrs(cfg), rtol=1e-10)


def test_pyro_scheduler_does_not_move_unless_stepped():
    # The bug in the original report: SVI alone never steps the scheduler.
    opt = one_cycle(0.1, 100)
    svi = SVI(model, AutoNormal(model), opt, Trace_ELBO())
    seen = []
    for _ in range(30):
        svi.step()
        seen.append(current_lr(opt))
    assert seen == [pytest.approx(0.1 / 25)] * 30


def test_early_stopping_fires_on_a_converged_fit():
    cfg = OptimConfig(n_steps=5000, lr=0.05, schedule="constant", patience=50, rel_tol=1e-3, smoothing=0.1)
    run = fit_svi(model, AutoNormal(model), cfg)
    assert run.stopped_early
    assert 50 < run.n_steps < 5000
    assert run.smoothed_loss == pytest.approx(np.mean(run.losses[-20:]), rel=0.05)


def test_early_stopping_rule_noise_plateau_and_steady_descent():
    rng = np.random.default_rng(1)
    stop = EarlyStopping(patience=100, rel_tol=1e-3, smoothing=0.05)
    plateau = 1000 + rng.normal(0, 5, 2000)
    fired = next(i for i, v in enumerate(plateau) if stop.update(v))
    assert fired < 400
    steady = EarlyStopping(patience=100, rel_tol=1e-3, smoothing=0.05)
    assert not any(steady.update(1000 * 0.99**i) for i in range(2000))


def test_early_stopping_waits_for_min_steps():
    stop = EarlyStopping(patience=5, rel_tol=0.0, smoothing=1.0, min_steps=50)
    fired = [stop.update(1.0) for _ in range(60)]
    assert fired.index(True) == 49


def test_onecycle_stops_only_once_the_rate_has_annealed():
    cfg = OptimConfig(n_steps=1000, lr=0.1, pct_start=0.2)
    first = cfg.stopper().min_steps
    lrs = one_cycle_lrs(cfg)
    assert lrs[first - 1] <= 0.01 < lrs[first - 2]
    assert first > 200
    assert OptimConfig(n_steps=1000, min_steps=50).stopper().min_steps == 50
    assert OptimConfig(early_stopping=False).stopper() is None


def test_gradient_clipping_applies_to_each_parameter():
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.tensor([300.0, 400.0, 0.0])
    constant_adam(0.01, clip_norm=10.0)([p])
    assert float(p.grad.norm()) == pytest.approx(10.0)


def test_nan_loss_raises_convergence_error():
    def bad():
        pyro.sample("m", dist.Normal(torch.tensor(0.0), 1.0))
        pyro.factor("nan", torch.tensor(math.nan))

    with pyro.validation_enabled(False), pytest.raises(ConvergenceError, match="step 1"):
        run_svi(bad, AutoNormal(bad), constant_adam(0.01), 5)


@pytest.mark.parametrize("bad, match", [
    ({"schedule": "cosine"}, "schedule"),
    ({"n_steps": 5}, "warm-up"),
    ({"lr": -1.0}, "lr"),
    ({"colour": 1}, "unknown"),
])
def test_config_errors_are_clear(bad, match):
    with pytest.raises(InputError, match=match):
        OptimConfig.from_dict(bad)


def test_progress_bar_only_when_verbose(capsys):
    fit_svi(model, AutoNormal(model), OptimConfig(n_steps=30, early_stopping=False))
    assert capsys.readouterr().err == ""
    fit_svi(model, AutoNormal(model), OptimConfig(n_steps=30, early_stopping=False, verbose=True))
    assert "SVI" in capsys.readouterr().err
