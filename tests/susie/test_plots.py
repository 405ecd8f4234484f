"""susie_plot and elbo_plot draw the right points in the right colours (Agg backend)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402
from susie_helpers import simulate, univariate_z  # noqa: E402

from torchgenetics.errors import InputError  # noqa: E402
from torchgenetics.susie import elbo_plot, susie, susie_plot  # noqa: E402


@pytest.fixture(scope="module")
def fitted():
    X, y = simulate(n=300, p=50, causal=(8, 35), effect=0.6, rho=0.8, seed=3)
    fit = susie(X, y, L=5)
    assert len(fit.sets["cs"]) == 2
    return fit, univariate_z(X.numpy(), y.numpy())


def _points(collection):
    return collection.get_offsets().shape[0]


def test_pip_plot_colours_each_credible_set(fitted):
    fit, _ = fitted
    ax = susie_plot(fit)
    by_label = {c.get_label(): c for c in ax.collections}
    sizes = {f"L{int(e) + 1}": len(idx) for e, idx in zip(fit.sets["cs_index"], fit.sets["cs"], strict=True)}
    assert set(by_label) == {"not in a CS"} | set(sizes)
    for label, size in sizes.items():
        assert _points(by_label[label]) == size
    assert _points(by_label["not in a CS"]) == fit.p - sum(sizes.values())
    colours = {tuple(np.round(c.get_facecolor()[0], 6)) for c in ax.collections}
    assert len(colours) == len(ax.collections)  # grey plus one colour per set
    y = np.concatenate([np.asarray(c.get_offsets())[:, 1] for c in ax.collections])
    assert sorted(y) == pytest.approx(sorted(fit.pip.numpy()))
    assert ax.get_ylabel() == "PIP" and ax.get_legend() is not None
    plt.close(ax.figure)


def test_z_and_log10p_plots_with_positions_and_causal_rings(fitted):
    fit, z = fitted
    pos = np.arange(fit.p) * 1000 + 5
    ax = susie_plot(fit, y="log10p", z=z, pos=pos, causal=[8, 35], max_cs=1, title="t")
    labels = [c.get_label() for c in ax.collections]
    assert labels == ["not in a CS", f"L{int(fit.sets['cs_index'][0]) + 1}", "causal"]
    assert _points(ax.collections[-1]) == 2 and _points(ax.collections[1]) == len(fit.sets["cs"][0])
    xy = np.concatenate([np.asarray(c.get_offsets()) for c in ax.collections[:2]])
    order = np.argsort(xy[:, 0])
    expected = -np.log10(2 * stats.norm.sf(np.abs(z)))
    assert xy[order, 1] == pytest.approx(expected, rel=1e-10)
    assert xy[order, 0].tolist() == pos.tolist()
    plt.close(ax.figure)
    fig, ax = plt.subplots()
    assert susie_plot(fit, y="z", z=z, ax=ax) is ax
    assert ax.get_ylabel() == "z"
    plt.close(fig)


def test_plot_input_errors(fitted):
    fit, z = fitted
    with pytest.raises(InputError, match="needs the z-scores"):
        susie_plot(fit, y="z")
    with pytest.raises(InputError, match="pos has 3 values"):
        susie_plot(fit, pos=[1, 2, 3])
    with pytest.raises(InputError, match="y must be one of"):
        susie_plot(fit, y="beta")
    plt.close("all")


def test_elbo_plot_and_warm_overlay(fitted):
    fit, _ = fitted
    ax = elbo_plot(fit, label="cold")
    line = ax.lines[0]
    assert line.get_xdata().tolist() == list(range(1, fit.n_iter + 1))
    assert line.get_ydata() == pytest.approx(fit.elbo.numpy())
    elbo_plot(fit, ax=ax, offset=3, label="warm")
    assert ax.lines[1].get_xdata()[0] == 4 and len(ax.get_legend().get_texts()) == 2
    plt.close(ax.figure)
