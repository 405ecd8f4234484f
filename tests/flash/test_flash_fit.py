"""FlashFit: summaries, save/load to HDF5, warm starts and pipeable steps."""

import pandas as pd
import pytest
import torch
from flash_sim import block_factors

import torchgenetics.flash as fl
from torchgenetics.errors import FileFormatError, InputError
from torchgenetics.flash import FlashFit, steps


@pytest.fixture(scope="module")
def fitted():
    torch.set_num_threads(1)
    Y, _, _ = block_factors(n=90, p=60, seed=20)
    frame = pd.DataFrame(Y.numpy(), index=[f"r{i}" for i in range(90)], columns=[f"c{j}" for j in range(60)])
    return frame, fl.flash(frame, greedy_max=5, backfit="sequential")


def test_fields_and_summaries(fitted):
    frame, fit = fitted
    K = fit.n_factors
    assert K == 3 and fit.shape == (90, 60)
    assert fit.L_pm.shape == (90, K) and fit.F_psd.shape == (60, K)
    assert bool(((fit.L_lfsr >= 0) & (fit.L_lfsr <= 1)).all())
    assert len(fit.L_ghat) == K and fit.L_ghat[0].family == "point_normal"
    assert 0 < float(fit.pve.sum()) < 1
    assert fit.residuals_sd.ndim == 0
    assert set(fit.history.step) >= {"greedy", "backfit"}
    assert fit.history.time.is_monotonic_increasing
    tables = fit.frames()
    assert list(tables["loadings"].index[:2]) == ["r0", "r1"] and "lfsr1" in tables["factors"].columns
    assert len(fit.summary()) == K
    assert set(fit.priors_frame().parameter) >= {"pi0", "sd", "mode"}
    torch.testing.assert_close(fit.fitted() + fit.residuals(), torch.as_tensor(frame.to_numpy()))


def test_save_load_round_trip_and_warm_start(fitted, tmp_path):
    frame, fit = fitted
    path = tmp_path / "fit.h5"
    fit.save(path)
    back = FlashFit.load(path)
    for name in ("L_pm", "F_pm", "L_pm2", "F_pm2", "kl", "tau", "fixed"):
        torch.testing.assert_close(getattr(back, name), getattr(fit, name))
    assert back.elbo == fit.elbo and back.row_names == fit.row_names
    assert back.L_ghat[1].params() == fit.L_ghat[1].params()
    pd.testing.assert_frame_equal(back.history, fit.history, check_dtype=False)
    with pytest.raises(InputError, match="no data"):
        back.residuals()
    resumed = fl.flash(frame, init=back, greedy_max=0, nullcheck=False)
    assert resumed.elbo == pytest.approx(fit.elbo, rel=1e-12)
    more = fl.flash(frame, init=back, greedy_max=0, backfit="sequential", nullcheck=False)
    assert more.elbo >= fit.elbo - 1e-9 * abs(fit.elbo)
    with pytest.raises(InputError, match="warm-start fit"):
        fl.flash(frame.iloc[:10], init=back)
    other = tmp_path / "other.h5"
    from torchgenetics.io.store import save_h5

    save_h5(other, {"a": 1}, format_name="SusieFit")
    with pytest.raises(FileFormatError):
        FlashFit.load(other)


def test_steps_pipe_like_flash(fitted):
    frame, fit = fitted
    piped = steps.init(frame).greedy(K_max=5).backfit().nullcheck()
    torch.testing.assert_close(piped.L_pm, fit.L_pm)
    assert piped.elbo == pytest.approx(fit.elbo)


def test_parallel_fit_reports_its_method(fitted):
    frame, _ = fitted
    fit = fl.flash(frame, greedy_max=5, backfit="parallel")
    assert fit.backfit_info["method"] == "parallel"
    assert set(fit.history[fit.history.step == "backfit"].method) <= {"parallel", "sequential"}
