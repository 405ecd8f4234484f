"""Plots of flash fits: scree (PVE), factor heatmap, ELBO over time (matplotlib, imported lazily).

Each function draws on ``ax`` when given, otherwise on a new figure, and returns
the figure.
"""

from __future__ import annotations

from ..errors import InputError, MissingExtraError
from .fit import FlashFit

__all__ = ["plot_scree", "plot_heatmap", "plot_elbo_trace"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the environment
        raise MissingExtraError("matplotlib", "notebooks") from None
    return plt


def _axes(ax, figsize):
    plt = _pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def plot_scree(fit: FlashFit, ax=None):
    """Bar chart of the proportion of variance explained by each factor.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> from torchgenetics.flash.fit import _toy
    >>> plot_scree(_toy()).axes[0].get_ylabel()
    'proportion of variance explained'
    """
    fig, ax = _axes(ax, (5, 3.5))
    pve = fit.pve.detach().cpu().numpy()
    ax.bar(range(1, len(pve) + 1), pve, color="#4c72b0")
    ax.set_xlabel("factor")
    ax.set_ylabel("proportion of variance explained")
    ax.set_title(f"flash: {fit.n_factors} factors, total PVE {pve.sum():.3f}")
    ax.set_xticks(range(1, len(pve) + 1))
    return fig


def plot_heatmap(fit: FlashFit, which: str = "loadings", ax=None, max_rows: int = 2000):
    """Heatmap of the posterior means of loadings (rows x factors) or factors (columns x factors).

    Each factor is scaled by its largest absolute value so that the colours compare across factors.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> from torchgenetics.flash.fit import _toy
    >>> plot_heatmap(_toy(), "factors").axes[0].get_xlabel()
    'factor'
    """
    if which not in ("loadings", "factors"):
        raise InputError(f"which must be 'loadings' or 'factors', got {which!r}")
    fig, ax = _axes(ax, (4, 6))
    values = (fit.L_pm if which == "loadings" else fit.F_pm).detach().cpu().numpy()[:max_rows]
    scale = abs(values).max(axis=0)
    scale[scale == 0] = 1.0
    image = ax.imshow(values / scale, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_xlabel("factor")
    ax.set_ylabel("row" if which == "loadings" else "column")
    ax.set_xticks(range(values.shape[1]))
    ax.set_xticklabels([str(k + 1) for k in range(values.shape[1])])
    ax.set_title(f"{which} (scaled per factor)")
    fig.colorbar(image, ax=ax, fraction=0.05)
    return fig


def plot_elbo_trace(fits: dict, ax=None, step: str = "backfit", relative: bool = True):
    """ELBO against elapsed time for several fits (e.g. sequential vs parallel backfit).

    Parameters
    ----------
    fits : dict of str to FlashFit
        Label and fit; each fit's ``history`` rows of ``step`` are drawn.
    ax : matplotlib Axes, optional
        Where to draw.
    step : str
        History step to show (``"backfit"``, ``"greedy"`` or ``"all"``).
    relative : bool
        Time measured from the start of the step rather than of the fit.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> from torchgenetics.flash.fit import _toy
    >>> fit = _toy().backfit()
    >>> plot_elbo_trace({"sequential": fit}).axes[0].get_ylabel()
    'ELBO'
    """
    fig, ax = _axes(ax, (6, 4))
    for label, fit in fits.items():
        h = fit.history if step == "all" else fit.history[fit.history.step == step]
        if not len(h):
            continue
        t = h.time.to_numpy()
        if relative:
            previous = fit.history.time[fit.history.index < h.index[0]]
            t = t - (float(previous.iloc[-1]) if len(previous) else 0.0)
        ax.plot(t, h.elbo.to_numpy(), marker=".", label=label)
    ax.set_xlabel("elapsed time (s)")
    ax.set_ylabel("ELBO")
    ax.set_title(f"flash {step}: ELBO over time")
    ax.legend()
    return fig
