"""Additive two-Hill, nested and polynomial forms fit and describe their data."""

import numpy as np

from torchgenetics.dream import BayesDream, simulate_screen
from torchgenetics.dream.simulate import _mean_curve


def test_additive_form_follows_non_monotone_responses_that_a_single_hill_misses():
    sim = simulate_screen(n_cells=300, n_features=3, form="additive", n_groups=1, frac_activator=1.0,
                          frac_repressor=0.0, seed=5)
    dm = BayesDream(sim.counts, sim.cells, sim.cis_gene)
    kw = dict(x_true=sim.truth["x_true"], n_steps=400, lr=0.05, n_samples=100, early_stopping=False)
    single = dm.fit_trans(form="single", **kw)
    additive = dm.fit_trans(form="additive", **kw)
    x = np.geomspace(additive.priors["x_lo"], additive.priors["x_hi"], 9)
    truth = _mean_curve(sim.truth, x)
    err_single = np.sqrt(np.mean((single.curve_band(x)["mean"].numpy() - truth) ** 2))
    err_additive = np.sqrt(np.mean((additive.curve_band(x)["mean"].numpy() - truth) ** 2))
    assert err_additive < 0.6 * err_single
    frame = additive.to_frame()
    assert {"Vmax1_mean", "K1_mean", "n1_mean", "Vmax2_mean", "K2_mean", "n2_mean", "gate2_on_mean"} <= set(frame)
    assert np.all(frame["K1_mean"] < frame["K2_mean"])          # the rise comes before the fall


def test_nested_and_polynomial_forms_find_the_direction_of_each_response():
    sim = simulate_screen(n_cells=200, n_features=4, n_groups=1, frac_activator=0.5, frac_repressor=0.5, seed=6)
    dm = BayesDream(sim.counts, sim.cells, sim.cis_gene)
    sign = np.sign(sim.truth["n"])
    for form in ("nested", "polynomial"):
        fit = dm.fit_trans(form=form, x_true=sim.truth["x_true"], n_steps=300, lr=0.05, n_samples=100)
        frame = fit.to_frame()
        assert np.all(np.sign(frame["effect_mean"].to_numpy()) == sign), form
        assert np.all(np.sign(frame["effect_lo"]) == np.sign(frame["effect_hi"])), form   # interval excludes 0
        assert np.isfinite(frame.drop(columns=[c for c in frame if c.startswith("log2fc")]).to_numpy()).all()
