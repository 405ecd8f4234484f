"""Plots of a SuSiE fit: susieR's ``susie_plot`` (PIP, z or -log10 p, coloured by
credible set) and the ELBO trace. matplotlib is imported only when a plot is drawn.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import InputError, MissingExtraError

__all__ = ["susie_plot", "elbo_plot"]

_Y_KINDS = ("PIP", "z", "log10p")


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingExtraError("matplotlib", "notebooks") from None
    return plt


def _axes(ax):
    if ax is not None:
        return ax
    _, ax = _pyplot().subplots(figsize=(7, 3.5))
    return ax


def _numpy(values, name: str, p: int) -> np.ndarray:
    if torch.is_tensor(values):
        values = values.detach().cpu().numpy()
    out = np.asarray(values, dtype=np.float64).reshape(-1)
    if out.shape[0] != p:
        raise InputError(f"{name} has {out.shape[0]} values, expected one per variable (p = {p})")
    return out


def susie_plot(fit, y: str = "PIP", *, z=None, pos=None, causal=None, max_cs: int | None = None,
               ax=None, title: str | None = None, legend: bool = True):
    """Per-variable PIP, z-score or -log10 p-value, credible sets in colour (susieR's ``susie_plot``).

    Variables outside every credible set are grey; each set gets its own colour
    (one scatter collection per set, labelled ``L<effect>``); ``causal`` variables
    are ringed in red.

    Parameters
    ----------
    fit : SusieFit
        The fit.
    y : {"PIP", "z", "log10p"}
        What to plot; "z" and "log10p" need ``z``.
    z : array-like, optional
        (p,) marginal z-scores.
    pos : array-like, optional
        (p,) x coordinates (e.g. base-pair positions); default 1..p.
    causal : array-like of int, optional
        Indices of variables to ring (e.g. the true causal variants of a simulation).
    max_cs : int, optional
        Colour at most this many sets (the purest first, in ``fit.sets`` order).
    ax : matplotlib Axes, optional
        Where to draw (default: a new figure).
    title : str, optional
        Axes title.
    legend : bool
        Add a legend of the sets.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from torchgenetics.susie import susie
    >>> g = torch.Generator().manual_seed(0)
    >>> X = torch.randn(200, 30, generator=g, dtype=torch.float64)
    >>> fit = susie(X, X[:, 4] + torch.randn(200, generator=g, dtype=torch.float64), L=3)
    >>> ax = susie_plot(fit)
    >>> [c.get_label() for c in ax.collections]
    ['not in a CS', 'L1']
    """
    if y not in _Y_KINDS:
        raise InputError(f"y must be one of {_Y_KINDS}, got {y!r}")
    p = fit.p
    if y == "PIP":
        values, label = _numpy(fit.pip, "pip", p), "PIP"
    else:
        if z is None:
            raise InputError(f"y={y!r} needs the z-scores (z=...)")
        zs = _numpy(z, "z", p)
        if y == "z":
            values, label = zs, "z"
        else:  # -log10(2 Phi(-|z|)), stable for large |z|
            log_p = math.log(2.0) + torch.special.log_ndtr(torch.as_tensor(-np.abs(zs))).numpy()
            values, label = -log_p / math.log(10.0), "-log10 p"
    x = np.arange(1, p + 1, dtype=np.float64) if pos is None else _numpy(pos, "pos", p)
    ax = _axes(ax)
    sets = list(zip(fit.sets["cs_index"].tolist(), fit.sets["cs"], strict=True))
    if max_cs is not None:
        sets = sets[:max_cs]
    in_cs = np.zeros(p, dtype=bool)
    for _, idx in sets:
        in_cs[[j for j in idx.tolist() if j < p]] = True
    ax.scatter(x[~in_cs], values[~in_cs], s=10, color="0.6", label="not in a CS", zorder=1)
    colours = _pyplot().get_cmap("tab10")
    for k, (effect, idx) in enumerate(sets):
        members = np.array([j for j in idx.tolist() if j < p], dtype=np.int64)
        ax.scatter(x[members], values[members], s=24, color=colours(k % 10), label=f"L{effect + 1}",
                   zorder=2)
    if causal is not None:
        ring = np.asarray(causal, dtype=np.int64).reshape(-1)
        ax.scatter(x[ring], values[ring], s=70, facecolors="none", edgecolors="red", linewidths=1.2,
                   label="causal", zorder=3)
    ax.set_xlabel("variable" if pos is None else "position")
    ax.set_ylabel(label)
    if y == "PIP":
        ax.set_ylim(-0.03, 1.03)
    if title:
        ax.set_title(title)
    if legend and (sets or causal is not None):
        ax.legend(loc="best", fontsize="small", frameon=False)
    return ax


def elbo_plot(fit, *, ax=None, offset: int = 0, label: str | None = None, **style):
    """ELBO per IBSS iteration; call again with ``ax=`` and ``offset=`` to overlay a warm continuation.

    Parameters
    ----------
    fit : SusieFit
        The fit (its ``elbo`` trace; with ``track_fit`` and ``L_greedy`` the trace of every round).
    ax : matplotlib Axes, optional
        Where to draw (default: a new figure).
    offset : int
        Iterations before this fit's first one (the first-pass budget of a warm start).
    label : str, optional
        Legend label.
    **style
        Passed to ``Axes.plot`` (colour, marker, ...).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from torchgenetics.susie.fit import _toy_fit
    >>> ax = elbo_plot(_toy_fit())
    >>> ax.lines[0].get_xdata().tolist()
    [1, 2, 3]
    """
    if fit.trace and len(fit.trace) > len(fit.elbo):
        elbo = np.array([float(step["elbo"]) for step in fit.trace])
    else:
        elbo = fit.elbo.detach().cpu().numpy()
    ax = _axes(ax)
    steps = list(range(offset + 1, offset + 1 + len(elbo)))
    style.setdefault("marker", "o")
    ax.plot(steps, elbo, label=label, **style)
    ax.set_xlabel("iteration")
    ax.set_ylabel("ELBO")
    if label:
        ax.legend(loc="best", fontsize="small", frameon=False)
    return ax
