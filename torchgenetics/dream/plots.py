"""Plots: fitted dose-response curves over the observed x_true, and loss curves.

matplotlib is optional (``pip install 'torchgenetics[notebooks]'``).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import MissingExtraError

__all__ = ["plot_hill", "plot_losses"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingExtraError("matplotlib", "notebooks") from None
    return plt


def plot_hill(fit, feature, *, observed=None, ax=None, n_points: int = 100, category: int = 0):
    """Posterior mean curve and 95% band of one feature over the observed x_true range.

    Parameters
    ----------
    fit : TransFit
        A trans fit (with draws).
    feature : str or int
        Feature to draw.
    observed : array-like, optional
        (cells,) normalised observations of the feature (e.g. counts / size factor)
        plotted against ``fit.x_true``.
    ax : matplotlib Axes, optional
        Where to draw (default a new figure).
    n_points : int, default 100
        Points of the curve (log-spaced).
    category : int, default 0
        Category shown for multinomial features.

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from torchgenetics.dream import BayesDream, simulate_screen
    >>> sim = simulate_screen(n_cells=100, n_features=2, n_groups=1, seed=0)
    >>> fit = BayesDream(sim.counts, sim.cells, sim.cis_gene).fit_trans(
    ...     x_true=sim.truth["x_true"], n_steps=100, n_samples=30)
    >>> plot_hill(fit, "gene0").get_xscale()
    'log'
    """
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3))
    x = fit.x_true.detach().cpu().numpy()
    grid = torch.as_tensor(np.geomspace(x.min(), x.max(), n_points), dtype=torch.float64)
    band = fit.curve_band(grid, [feature])
    mean, lo, hi = (band[k][:, 0] for k in ("mean", "lo", "hi"))
    if mean.dim() == 2:
        mean, lo, hi = mean[:, category], lo[:, category], hi[:, category]
    name = feature if isinstance(feature, str) else fit.features[int(feature)]
    if observed is not None:
        ax.scatter(x, np.asarray(observed), s=6, alpha=0.4, color="0.4", label="cells")
    ax.fill_between(grid.numpy(), lo.numpy(), hi.numpy(), alpha=0.3, label="95% band")
    ax.plot(grid.numpy(), mean.numpy(), lw=2, label="posterior mean")
    ax.set_xscale("log")
    ax.set_xlabel("x_true (cis expression)")
    ax.set_ylabel(name)
    ax.set_title(f"{name} ({fit.form}, {fit.family})")
    ax.legend(fontsize="small", frameon=False)
    return ax


def plot_losses(fits, *, ax=None, labels=None, show_lr: bool = True):
    """Loss of each SVI step for one or several fits, with the learning rate on a twin axis.

    Parameters
    ----------
    fits : DreamFit or sequence of DreamFit
        Fits to draw.
    ax : matplotlib Axes, optional
        Where to draw.
    labels : sequence of str, optional
        Legend labels (default the fit kinds).
    show_lr : bool, default True
        Draw the learning rate of the first fit on a right-hand axis.

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from torchgenetics.dream import BayesDream, simulate_screen
    >>> sim = simulate_screen(n_cells=80, n_features=2, seed=0)
    >>> fit = BayesDream(sim.counts, sim.cells, sim.cis_gene).fit_technical(n_steps=60, n_samples=10)
    >>> plot_losses(fit).get_ylabel()
    'loss (-ELBO)'
    """
    plt = _pyplot()
    fits = list(fits) if isinstance(fits, (list, tuple)) else [fits]
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3))
    labels = labels or [f"{f.kind} {f.modality}" for f in fits]
    for fit, label in zip(fits, labels, strict=True):
        losses = np.asarray(fit.losses)
        ax.plot(np.arange(1, losses.size + 1), losses, lw=1, label=label)
    ax.set_xlabel("SVI step")
    ax.set_ylabel("loss (-ELBO)")
    ax.set_yscale("symlog")
    ax.legend(fontsize="small", frameon=False)
    if show_lr:
        twin = ax.twinx()
        twin.plot(np.arange(1, fits[0].lrs.size + 1), fits[0].lrs, color="0.5", lw=1, ls="--")
        twin.set_ylabel("learning rate")
    return ax
