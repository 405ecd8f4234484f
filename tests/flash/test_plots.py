"""Scree, heatmap and ELBO-trace figures render (Agg backend)."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from flash_sim import block_factors  # noqa: E402

import torchgenetics.flash as fl  # noqa: E402
from torchgenetics.errors import InputError  # noqa: E402


@pytest.fixture(scope="module")
def fits():
    Y, _, _ = block_factors(n=60, p=40, seed=40)
    base = fl.flash(Y, greedy_max=4, nullcheck=False)
    return {"sequential": base.backfit(method="sequential"), "parallel": base.backfit(method="parallel")}


def test_scree_and_heatmaps(fits, tmp_path):
    fit = fits["sequential"]
    fig = fl.plot_scree(fit)
    assert len(fig.axes[0].patches) == fit.n_factors
    fig.savefig(tmp_path / "scree.png")
    for which in ("loadings", "factors"):
        fig = fl.plot_heatmap(fit, which)
        image = fig.axes[0].images[0].get_array()
        assert image.shape == (fit.shape[0] if which == "loadings" else fit.shape[1], fit.n_factors)
        assert float(abs(image).max()) == pytest.approx(1.0)
    with pytest.raises(InputError):
        fl.plot_heatmap(fit, "rows")


def test_elbo_trace_sequential_vs_parallel(fits, tmp_path):
    fig = fl.plot_elbo_trace(fits)
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["sequential", "parallel"]
    assert all(line.get_xdata()[0] >= 0 for line in lines)
    fig.savefig(tmp_path / "elbo.png")
    assert (tmp_path / "elbo.png").stat().st_size > 1000
