"""Additive two-Hill, nested and polynomial forms fit and describe their data."""

import numpy as np

from torchgenetics.dream import BayesDream, simulate_screen
from torchgenetics.dream.simulate import _mean_curve


def test_additive_form_beats_single_hill_on_non_monotone_responses():
    sim = simulate_screen(n_cells=240, n_features=3, form="additive", n_groups=1, frac_activator=1.0,
                          frac_repressor=0.0, seed=5)
    dm = BayesDream(sim.counts, sim.cells, sim.cis_gene)
    kw = dict(x_true=sim.truth["x_true"], n_steps=400, lr=0.05, n_samples=100, early_stopping=False)
    single = dm.fit_trans(form="single", **kw)
    additive = dm.fit_trans(form="additive", **kw)
    assert additive.losses[-50:].mean() < single.losses[-50:].mean() - 20
    frame = additive.to_frame()
    assert {"Vmax1_mean", "K1_mean", "n1_mean", "Vmax2_mean", "K2_mean", "n2_mean", "inflection2_mean"} <= set(frame)
    assert np.all(frame["n1_lo"] > 0) and np.all(frame["n2_hi"] < 0)
    x = np.geomspace(additive.priors["x_lo"], additive.priors["x_hi"], 7)
    band = additive.curve_band(x)["mean"].numpy()
    truth = _mean_curve(sim.truth, x)
    assert np.abs(band - truth).max() < 0.2 * truth.max()


def test_nested_and_polynomial_forms_find_the_direction_of_each_response():
    sim = simulate_screen(n_cells=200, n_features=4, n_groups=1, frac_activator=0.5, frac_repressor=0.5, seed=6)
    dm = BayesDream(sim.counts, sim.cells, sim.cis_gene)
    sign = np.sign(sim.truth["n"])
    for form in ("nested", "polynomial"):
        fit = dm.fit_trans(form=form, x_true=sim.truth["x_true"], n_steps=300, lr=0.05, n_samples=100)
        frame = fit.to_frame()
        assert np.all(np.sign(frame["effect_mean"].to_numpy()) == sign), form
        assert np.all(frame["gate_on_mean"] > 0.9), form
        assert np.isfinite(frame.drop(columns=[c for c in frame if c.startswith("log2fc")]).to_numpy()).all()
