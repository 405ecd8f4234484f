"""Manhattan and QQ plots of association results, written as PNG.

matplotlib (optional extra ``notebooks``) is imported only when a plot is drawn.
Plots use ``LOG10_P``, so p-values below 1e-308 are drawn where they belong.
A figure saved to ``path`` is drawn on a bare ``matplotlib.figure.Figure`` (no
pyplot, no display backend needed); without ``path`` or ``ax`` a pyplot figure is
made, for notebooks.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .errors import InputError, MissingExtraError

__all__ = ["manhattan", "qq", "gwas_plots"]

_COLOURS = ("#1f4e79", "#6fa8dc")


def _figure(ax, path, size):
    """The axes to draw on: given, on a bare Figure (to save), or on a pyplot figure."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingExtraError("matplotlib", "notebooks") from None
    if ax is not None:
        return ax.figure, ax
    if path is not None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=size)
        return fig, fig.subplots()
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(figsize=size)
    return fig, axes


def _finish(fig, path):
    if path is not None:
        path = Path(path)
        if not path.parent.is_dir():
            raise InputError(f"cannot write {path}: folder {path.parent} does not exist")
        fig.savefig(path, dpi=110, bbox_inches="tight")


def _columns(result, phenotype):
    """Chromosome, position and -log10 p of one phenotype of a GWASResult or a frame."""
    frame = result.to_frame(phenotype if phenotype is not None else 0) if hasattr(result, "to_frame") else result
    missing = {"#CHROM", "POS", "LOG10_P"} - set(frame.columns)
    if missing:
        raise InputError(f"results need the columns #CHROM, POS, LOG10_P; missing {sorted(missing)}")
    keep = np.isfinite(frame["LOG10_P"].to_numpy(dtype=np.float64))
    frame = frame.loc[keep]
    return (frame["#CHROM"].astype(str).to_numpy(), frame["POS"].to_numpy(dtype=np.float64),
            -frame["LOG10_P"].to_numpy(dtype=np.float64))


def _chrom_key(name: str):
    digits = re.sub(r"^chr", "", name, flags=re.IGNORECASE)
    return (0, int(digits), "") if digits.isdigit() else (1, 0, digits)


def manhattan(result, phenotype=None, *, path=None, ax=None, threshold: float = 5e-8,
              suggestive: float | None = 1e-5, title: str | None = None):
    """Manhattan plot: -log10 p along the genome, chromosomes in alternating colours.

    Parameters
    ----------
    result : GWASResult or pandas.DataFrame
        A result, or a frame with ``#CHROM``, ``POS`` and ``LOG10_P``.
    phenotype : str or int, optional
        Phenotype of a multi-phenotype result (default the first).
    path : str or path, optional
        Write the figure here as PNG.
    ax : matplotlib Axes, optional
        Draw into these axes.
    threshold : float, default 5e-8
        Genome-wide significance line (None: none).
    suggestive : float, optional
        Suggestive line (default 1e-5; None: none).
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import tempfile, os
    >>> from torchgenetics.gwas.result import _example
    >>> f = os.path.join(tempfile.mkdtemp(), "m.png")
    >>> _ = manhattan(_example(), path=f); os.path.getsize(f) > 0
    True
    """
    fig, ax = _figure(ax, path, (10, 3.6))
    chrom, pos, score = _columns(result, phenotype)
    order = sorted(set(chrom), key=_chrom_key)
    offset, ticks = 0.0, []
    for k, c in enumerate(order):
        sel = chrom == c
        x = pos[sel] - pos[sel].min() + offset if sel.any() else pos[sel]
        ax.scatter(x, score[sel], s=4, color=_COLOURS[k % 2], rasterized=True)
        span = float(x.max() - offset) if x.size else 0.0
        ticks.append(offset + span / 2)
        offset += max(span, 1.0) * 1.02 + 1.0
    for level, style in ((threshold, "-"), (suggestive, "--")):
        if level is not None:
            ax.axhline(-np.log10(level), color="#c00000", linestyle=style, linewidth=0.8)
    ax.set_xticks(ticks)
    ax.set_xticklabels(order, fontsize=8)
    ax.set_xlabel("chromosome")
    ax.set_ylabel(r"$-\log_{10} p$")
    ax.set_ylim(bottom=0)
    if title:
        ax.set_title(title)
    _finish(fig, path)
    return ax


def qq(result, phenotype=None, *, path=None, ax=None, title: str | None = None, band: bool = True):
    """QQ plot of observed against expected -log10 p, with lambda_GC and a 95% band.

    Parameters
    ----------
    result : GWASResult or pandas.DataFrame
        A result, or a frame with ``LOG10_P`` (and ``#CHROM``, ``POS``).
    phenotype : str or int, optional
        Default the first.
    path : str or path, optional
        Write the figure here as PNG.
    ax : matplotlib Axes, optional
    title : str, optional
    band : bool, default True
        Draw the pointwise 95% interval of uniform order statistics.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import tempfile, os
    >>> from torchgenetics.gwas.result import _example
    >>> f = os.path.join(tempfile.mkdtemp(), "q.png")
    >>> _ = qq(_example(), path=f); os.path.getsize(f) > 0
    True
    """
    from scipy import stats

    fig, ax = _figure(ax, path, (4.2, 4.2))
    _, _, score = _columns(result, phenotype)
    observed = np.sort(score)[::-1]
    m = observed.size
    ranks = np.arange(1, m + 1)
    expected = -np.log10(ranks / (m + 1))
    if band and m:
        ax.fill_between(expected, -np.log10(stats.beta.ppf(0.975, ranks, m - ranks + 1)),
                        -np.log10(stats.beta.ppf(0.025, ranks, m - ranks + 1)), color="#dddddd")
    ax.scatter(expected, observed, s=5, color=_COLOURS[0], rasterized=True)
    top = float(expected.max()) if m else 1.0
    ax.plot([0, top], [0, top], color="#c00000", linewidth=0.8)
    if m:
        lam = np.median(stats.chi2.isf(10.0 ** -observed, 1)) / stats.chi2.ppf(0.5, 1)
        ax.text(0.05, 0.92, rf"$\lambda_{{GC}}$ = {lam:.3f}", transform=ax.transAxes)
    ax.set_xlabel(r"expected $-\log_{10} p$")
    ax.set_ylabel(r"observed $-\log_{10} p$")
    if title:
        ax.set_title(title)
    _finish(fig, path)
    return ax


def gwas_plots(result, prefix) -> list[Path]:
    """Write ``PREFIX.<phenotype>.manhattan.png`` and ``.qq.png`` for every phenotype.

    Parameters
    ----------
    result : GWASResult
    prefix : str or path

    Returns
    -------
    list of pathlib.Path
        The files written.

    Examples
    --------
    >>> import tempfile, os
    >>> from torchgenetics.gwas.result import _example
    >>> [p.name for p in gwas_plots(_example(), os.path.join(tempfile.mkdtemp(), "out"))]
    ['out.PHENO1.manhattan.png', 'out.PHENO1.qq.png']
    """
    prefix = Path(prefix)
    written = []
    for name in result.phenotypes:
        label = f"{name} ({result.method})"
        for kind, draw in (("manhattan", manhattan), ("qq", qq)):
            target = prefix.parent / f"{prefix.name}.{name}.{kind}.png"
            draw(result, name, path=target, title=label)
            written.append(target)
    return written
