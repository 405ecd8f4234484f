"""technical -> cis -> trans on a simulated screen with known Hill parameters."""

import numpy as np
import pytest
import torch

from torchgenetics.dream import BayesDream, TransFit, load_fit


def test_technical_effects_are_recovered(pipeline, screen):
    fit = pipeline.technical["counts"]
    truth = np.concatenate([[screen.truth["cis_tech"][1]], screen.truth["tech"][1]])
    est = fit.tech_mean[1].numpy()
    assert np.corrcoef(est, truth)[0, 1] > 0.8
    assert np.all(np.abs(est - truth) < 0.35)
    assert fit.groups == ["line0", "line1"] and fit.n_cells_used == int((screen.cells.target == "ntc").sum())
    effects = fit.group_effects()
    covered = ((effects["lo"] <= truth) & (truth <= effects["hi"])).mean()
    assert covered >= 0.75


def test_cis_expression_is_recovered(pipeline, screen):
    fit = pipeline.cis
    assert fit.technical_used
    r = np.corrcoef(np.log(fit.x_true.numpy()), np.log(screen.truth["x_true"]))[0, 1]
    assert r > 0.95
    guides = fit.guides_frame()
    shift = screen.guides.set_index("guide").loc[guides.index, "log2_shift"]
    covered = ((guides["log2fc_lo"] - 0.1 <= shift) & (shift <= guides["log2fc_hi"] + 0.1)).mean()
    assert covered >= 0.75
    cells = fit.cells_frame()
    assert (cells["x_true_lo"] <= cells["x_true_mean"]).all() and (cells["x_true_mean"] <= cells["x_true_hi"]).all()
    assert not [w for w in pipeline.caught_warnings if "not corrected" in w]


def test_activators_repressors_and_flat_features(pipeline, screen):
    frame = pipeline.trans["counts"].to_frame()
    kind = screen.truth["kind"]
    active = kind != "flat"
    assert np.all(np.sign(frame["n_mean"].to_numpy()[active]) == np.sign(screen.truth["n"][active]))
    assert np.all(frame["effect_lo"].to_numpy()[kind == "activator"] > 0)
    assert np.all(frame["effect_hi"].to_numpy()[kind == "repressor"] < 0)
    gates = frame["gate_mean"].to_numpy()
    assert np.all(gates[~active] < 0.3)
    assert np.all(gates[active] > 0.5)
    report = pipeline.trans["counts"].prior_report
    assert report.guide_level == 12 and report.median_fallback == report.default_fallback == 0


def test_structured_guide_intervals_cover_true_k_and_n(screen):
    dm = BayesDream(screen.counts, screen.cells, screen.cis_gene)
    dm.fit_technical(n_steps=300, lr=0.05, n_samples=100)
    fit = dm.fit_trans(x_true=screen.truth["x_true"], guide="structured", n_steps=1000, lr=0.05,
                       early_stopping=False, n_samples=300)
    frame = fit.to_frame()
    active = screen.truth["kind"] != "flat"
    K, n = screen.truth["K"], screen.truth["n"]
    cover_k = ((frame["K_lo"] <= K) & (K <= frame["K_hi"])).to_numpy()[active].mean()
    cover_n = ((frame["n_lo"] <= n) & (n <= frame["n_hi"])).to_numpy()[active].mean()
    assert cover_k >= 0.6 and cover_n >= 0.6, (cover_k, cover_n)
    assert np.all(np.sign(frame["n_mean"].to_numpy()[active]) == np.sign(n[active]))


def test_subsampled_svi_matches_full_batch(pipeline, screen):
    full = pipeline.trans["counts"]
    sub = pipeline.fit_trans(n_steps=600, lr=0.05, n_samples=300, batch_size=100)
    assert sub.batch_size == 100 and full.batch_size is None
    a, b = full.to_frame(), sub.to_frame()
    active = screen.truth["kind"] != "flat"
    rel = np.abs(b["effect_mean"] - a["effect_mean"]) / np.abs(a["effect_mean"])
    assert rel.to_numpy()[active].max() < 0.15
    assert np.abs(np.log(b["K_mean"] / a["K_mean"])).to_numpy()[active].max() < np.log(1.25)
    assert np.abs(b["A_mean"] - a["A_mean"]).max() < 0.15 * a["A_mean"].max()
    pipeline.trans["counts"] = full
    cis_full = pipeline.cis
    cis_sub = pipeline.fit_cis(n_steps=500, lr=0.05, n_samples=200, batch_size=100)
    pipeline.cis = cis_full
    ga, gb = cis_full.guides_frame(), cis_sub.guides_frame()
    assert np.abs(ga["log2fc_mean"] - gb["log2fc_mean"]).max() < 0.35
    assert np.corrcoef(np.log(cis_full.x_true.numpy()), np.log(cis_sub.x_true.numpy()))[0, 1] > 0.98


def test_save_load_and_warm_start(pipeline, screen, tmp_path):
    path = tmp_path / "dream.h5"
    pipeline.save(path)
    again = BayesDream(screen.counts, screen.cells, screen.cis_gene).load_fits(path)
    fit = pipeline.trans["counts"]
    loaded = again.trans["counts"]
    assert isinstance(loaded, TransFit) and loaded.form == fit.form
    np.testing.assert_allclose(loaded.to_frame().to_numpy(), fit.to_frame().to_numpy())
    np.testing.assert_array_equal(loaded.lrs, fit.lrs)
    fit.save(tmp_path / "trans.h5")
    assert isinstance(load_fit(tmp_path / "trans.h5"), TransFit)
    np.testing.assert_allclose(again.cis.guides_frame()["x_mean"], pipeline.cis.guides_frame()["x_mean"])
    # a warm start from the loaded fit begins where the fit ended; a cold start does not
    warm = again.fit_trans(init=loaded, n_steps=40, lr=0.002, early_stopping=False, n_samples=20)
    cold = again.fit_trans(n_steps=40, lr=0.002, early_stopping=False, n_samples=20)
    end = np.mean(fit.losses[-50:])
    assert abs(warm.losses[:10].mean() - end) < 0.02 * abs(end)
    assert cold.losses[:10].mean() > end + 0.1 * abs(end)


def test_auto_batch_size_follows_the_memory_budget(screen, monkeypatch):
    from torchgenetics.memory import plan_block

    dm = BayesDream(screen.counts, screen.cells, screen.cis_gene)
    fit = dm.fit_technical(cells="all", n_steps=10, n_samples=5, schedule="constant")
    assert fit.batch_size is None and fit.bytes_per_cell >= 13 * 8
    budget = 120 * fit.bytes_per_cell
    monkeypatch.setenv("TORCHGEN_MEMORY_BUDGET", str(budget))
    fit = dm.fit_technical(cells="all", n_steps=10, n_samples=5, schedule="constant")
    assert fit.batch_size == plan_block(300, fit.bytes_per_cell, budget=budget) < 300


def test_plots(pipeline, screen):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from torchgenetics.dream import plot_hill, plot_losses

    fit = pipeline.trans["counts"]
    y = screen.counts["gene0"].to_numpy() / screen.cells["size_factor"].to_numpy()
    ax = plot_hill(fit, "gene0", observed=y)
    assert ax.get_xscale() == "log" and len(ax.lines) == 1
    band = fit.curve_band(torch.tensor([1.0, 10.0, 50.0]), ["gene0"])
    assert band["lo"].shape == (3, 1) and bool((band["lo"] <= band["hi"]).all())
    ax = plot_losses([pipeline.technical["counts"], pipeline.cis, fit])
    assert len(ax.lines) == 3
