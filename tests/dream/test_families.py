"""Each likelihood family fits its own simulated data and recovers its parameters."""

import numpy as np
import pytest

from torchgenetics.dream import BayesDream, simulate_screen
from torchgenetics.dream.simulate import _mean_curve


@pytest.mark.parametrize("family", ["normal", "studentt", "binomial", "multinomial"])
def test_family_recovers_technical_and_curve_parameters(family):
    sim = simulate_screen(n_cells=240, n_features=5, family=family, n_guides=10, n_ntc_guides=4,
                          frac_activator=0.4, frac_repressor=0.4, seed=7)
    dm = BayesDream(sim.counts, sim.cells, sim.cis_gene, modalities=sim.modalities)
    tech = dm.fit_technical(family, n_steps=250, lr=0.05, n_samples=100)
    assert tech.family == family
    est, truth = tech.tech_mean[1].numpy().ravel(), sim.truth["tech"][1].ravel()
    assert np.corrcoef(est, truth)[0, 1] > 0.7
    assert np.abs(est - truth).max() < 0.5 * (np.abs(truth).max() + 0.3)

    fit = dm.fit_trans(family, x_true=sim.truth["x_true"], n_steps=400, lr=0.05, n_samples=200)
    frame = fit.to_frame()
    active = sim.truth["kind"] != "flat"
    # the fitted curve at the extremes of the guide levels matches the true curve
    x = np.array([fit.priors["x_lo"], fit.priors["x_hi"]])
    true_curve = _mean_curve(sim.truth, x)                 # (2, F[, K])
    if family == "multinomial":
        cats = fit.categories
        lo = frame[[f"mean_lo[{c}]_mean" for c in cats]].to_numpy()
        hi = frame[[f"mean_hi[{c}]_mean" for c in cats]].to_numpy()
        assert np.abs(lo - true_curve[0]).max() < 0.08 and np.abs(hi - true_curve[1]).max() < 0.08
    else:
        scale = np.abs(true_curve).max() if family == "binomial" else sim.truth["V"].max()
        assert np.abs(frame["mean_lo_mean"] - true_curve[0]).max() < 0.15 * scale
        assert np.abs(frame["mean_hi_mean"] - true_curve[1]).max() < 0.15 * scale
        assert np.all(np.sign(frame["n_mean"].to_numpy()[active]) == np.sign(sim.truth["n"][active]))
    ratio = frame["K_mean"].to_numpy()[active] / sim.truth["K"][active]
    assert np.all((ratio > 0.5) & (ratio < 2.0))
    on = frame["gate_on_mean"].to_numpy()                  # posterior probability that the gate is on
    assert np.all(on[active] > 0.9)
    assert np.all(on[~active] < on[active].min() - 0.3)
    if family in ("normal", "studentt"):
        ratio = frame["sigma_mean"].to_numpy() / sim.truth["sigma"]
        assert np.all((ratio > 0.7) & (ratio < 1.4))
    if family == "studentt":
        assert np.median(frame["df_mean"]) < 10          # heavy tails found (true df = 4)
