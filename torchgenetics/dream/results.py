"""Results of the technical, cis and trans fits: summaries, tables, HDF5 save/load.

Each fit keeps its losses and learning rates, optimiser settings, prior report,
batch size, posterior draws of its latent sites and (AutoNormal) variational
parameters, which warm-start a new fit (``init=fit``) whether the fit is in
memory or loaded from HDF5.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd
import torch

from ..errors import FileFormatError, InputError
from ..io.store import load_h5, save_h5
from ..optim import SVIRun
from .curves import CurveSpec, curve_mean, curve_params, derived_quantities
from .likelihoods import get_family
from .priors import PriorReport

__all__ = ["summarize_draws", "DreamFit", "TechnicalFit", "CisFit", "TransFit", "load_fit"]

_LEVEL = (0.025, 0.975)


def _quantiles(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = x.to(torch.float64)
    mean = torch.nanmean(x, dim=0)
    q = torch.nanquantile(x, torch.tensor(_LEVEL, dtype=x.dtype), dim=0)
    return mean, q[0], q[1]


def summarize_draws(draws: dict, index, labels: dict | None = None) -> pd.DataFrame:
    """Posterior mean and 95% interval of per-feature draws, one row per feature.

    Parameters
    ----------
    draws : dict of torch.Tensor
        Each ``(S, F)`` or ``(S, F, K)``.
    index : sequence of str
        The F row names.
    labels : dict, optional
        Names of the trailing dimension per site (default ``0, 1, ...``).

    Returns
    -------
    pandas.DataFrame
        Columns ``<site>_mean``, ``<site>_lo``, ``<site>_hi`` (``<site>[<label>]_...``
        for trailing dimensions). NaN draws (e.g. no inflection) are ignored.

    Examples
    --------
    >>> d = {"K": torch.arange(10.0).reshape(10, 1)}
    >>> summarize_draws(d, ["g"]).loc["g", "K_mean"]
    np.float64(4.5)
    """
    labels = labels or {}
    columns = {}
    for name, x in draws.items():
        mean, lo, hi = _quantiles(x)
        if mean.dim() == 1:
            columns.update({f"{name}_mean": mean, f"{name}_lo": lo, f"{name}_hi": hi})
            continue
        mean, lo, hi = (t.reshape(t.shape[0], -1) for t in (mean, lo, hi))
        names = labels.get(name) or [str(k) for k in range(mean.shape[1])]
        for k, lab in enumerate(names):
            columns.update({f"{name}[{lab}]_mean": mean[:, k], f"{name}[{lab}]_lo": lo[:, k],
                            f"{name}[{lab}]_hi": hi[:, k]})
    frame = pd.DataFrame({k: v.cpu().numpy() for k, v in columns.items()}, index=pd.Index(list(index), name="feature"))
    return frame


@dataclass
class DreamFit:
    """Common part of the three fits.

    Attributes
    ----------
    modality : str
        Modality fitted (``"counts"`` for cis).
    family : str
        Likelihood family.
    features : list of str
        Features of the fit.
    run : SVIRun
        Losses, learning rates, steps, time, early stopping.
    config : dict
        :class:`~torchgenetics.optim.OptimConfig` settings.
    prior_report : PriorReport
        How the priors were obtained (fallbacks counted).
    batch_size : int or None
        Cells per SVI step (None: full batch).
    bytes_per_cell : int
        Measured bytes per cell used to plan the batch (0 if not planned).
    draws : dict of torch.Tensor
        Posterior draws of latent sites.
    guide_params : dict
        AutoNormal ``loc``/``scale`` per site (warm start).
    seed : int
        Seed of the fit.

    Examples
    --------
    >>> issubclass(TechnicalFit, DreamFit)
    True
    """

    modality: str
    family: str
    features: list
    run: SVIRun
    config: dict
    prior_report: PriorReport
    batch_size: int | None
    bytes_per_cell: int
    draws: dict
    guide_params: dict
    seed: int

    kind = "fit"

    @property
    def losses(self) -> np.ndarray:
        """Loss of each SVI step."""
        return self.run.losses

    @property
    def lrs(self) -> np.ndarray:
        """Learning rate of each SVI step."""
        return self.run.lrs

    @property
    def n_iter(self) -> int:
        """SVI steps taken."""
        return self.run.n_steps

    @property
    def converged(self) -> bool:
        """Whether early stopping found a plateau of the smoothed loss."""
        return self.run.stopped_early

    def _extra(self) -> dict:
        return {}

    def summary(self) -> str:
        """One line on the fit: steps, loss, early stop, batch, priors.

        Examples
        --------
        >>> from torchgenetics.dream import BayesDream, simulate_screen
        >>> sim = simulate_screen(n_cells=100, n_features=2, seed=0)
        >>> fit = BayesDream(sim.counts, sim.cells, sim.cis_gene).fit_technical(n_steps=50, n_samples=20)
        >>> fit.summary().split(":")[0]
        'technical fit of counts (negbinom)'
        """
        stop = "stopped early on a loss plateau" if self.converged else "ran all steps"
        batch = "all cells" if self.batch_size is None else f"{self.batch_size} cells"
        return (f"{self.kind} fit of {self.modality} ({self.family}): {self.n_iter} SVI steps, {stop}, "
                f"final loss {float(np.mean(self.losses[-20:])):.6g}, {batch} per step; {self.prior_report}")

    def to_dict(self, draws: bool = True) -> dict:
        """Everything as a nested dict of tensors, arrays and plain values.

        Examples
        --------
        >>> from torchgenetics.dream import BayesDream, simulate_screen
        >>> sim = simulate_screen(n_cells=100, n_features=2, seed=0)
        >>> fit = BayesDream(sim.counts, sim.cells, sim.cis_gene).fit_technical(n_steps=50, n_samples=20)
        >>> sorted(fit.to_dict())[:3]
        ['batch_size', 'bytes_per_cell', 'config']
        """
        out = {
            "kind": self.kind, "modality": self.modality, "family": self.family,
            "features": [str(f) for f in self.features], "run": self.run.to_dict(), "config": dict(self.config),
            "prior_report": self.prior_report.to_dict(),
            "batch_size": -1 if self.batch_size is None else int(self.batch_size),
            "bytes_per_cell": int(self.bytes_per_cell), "seed": int(self.seed),
            "draws": dict(self.draws) if draws else {}, "guide_params": self.guide_params,
        }
        out["config"]["betas"] = [float(b) for b in self.config.get("betas", (0.9, 0.999))]
        out["extra"] = self._extra()
        return out

    def save(self, path, draws: bool = True) -> None:
        """Write the fit to HDF5 (format ``BayesDream<Kind>Fit``).

        Parameters
        ----------
        path : str or path-like
            File to write.
        draws : bool, default True
            Keep the posterior draws (summaries need them after loading).

        Examples
        --------
        >>> from torchgenetics.dream import BayesDream, simulate_screen
        >>> sim = simulate_screen(n_cells=100, n_features=2, seed=0)
        >>> fit = BayesDream(sim.counts, sim.cells, sim.cis_gene).fit_technical(n_steps=50, n_samples=20)
        >>> import tempfile, os
        >>> f = os.path.join(tempfile.mkdtemp(), "tech.h5")
        >>> fit.save(f); type(load_fit(f)).__name__
        'TechnicalFit'
        """
        save_h5(path, self.to_dict(draws), format_name=f"BayesDream{type(self).__name__}")

    @classmethod
    def _common(cls, values: dict) -> dict:
        batch = int(values["batch_size"])
        return {
            "modality": values["modality"], "family": values["family"], "features": list(values["features"]),
            "run": SVIRun.from_dict(values["run"]), "config": values["config"],
            "prior_report": PriorReport.from_dict(values["prior_report"]),
            "batch_size": None if batch < 0 else batch, "bytes_per_cell": int(values["bytes_per_cell"]),
            "draws": values.get("draws", {}), "guide_params": values.get("guide_params", {}),
            "seed": int(values["seed"]),
        }

    @classmethod
    def from_dict(cls, values: dict) -> "DreamFit":
        """Inverse of :meth:`to_dict`.

        Examples
        --------
        >>> from torchgenetics.dream import BayesDream, simulate_screen
        >>> sim = simulate_screen(n_cells=100, n_features=2, n_groups=1, seed=0)
        >>> dm = BayesDream(sim.counts, sim.cells, sim.cis_gene)
        >>> fit = dm.fit_trans(x_true=sim.truth["x_true"], n_steps=50, n_samples=20)
        >>> TransFit.from_dict(fit.to_dict()).form
        'single'
        """
        known = {f.name for f in fields(cls)}
        kwargs = cls._common(values)
        kwargs.update({k: v for k, v in values.get("extra", {}).items() if k in known})
        return cls(**kwargs)

    @classmethod
    def load(cls, path) -> "DreamFit":
        """Read a fit written by :meth:`save`.

        Examples
        --------
        >>> from torchgenetics.dream import BayesDream, simulate_screen
        >>> sim = simulate_screen(n_cells=100, n_features=2, n_groups=1, seed=0)
        >>> dm = BayesDream(sim.counts, sim.cells, sim.cis_gene)
        >>> fit = dm.fit_cis(n_steps=50, n_samples=20)
        >>> import tempfile, os
        >>> f = os.path.join(tempfile.mkdtemp(), "cis.h5")
        >>> fit.save(f); CisFit.load(f).x_true.shape
        torch.Size([100])
        """
        return cls.from_dict(load_h5(path, format_name=f"BayesDream{cls.__name__}"))


@dataclass
class TechnicalFit(DreamFit):
    """Technical fit: per-feature baseline, group effects (link scale) and noise.

    Attributes
    ----------
    groups : list of str
        Technical groups, baseline first.
    tech_mean : torch.Tensor
        (groups, features [, categories - 1]) posterior-mean effects; row 0 is zero.
    phi : torch.Tensor or None
        (features,) posterior-mean negative-binomial overdispersion.
    n_cells_used : int
        Cells fitted (NTC cells by default).

    Examples
    --------
    >>> from torchgenetics.dream import BayesDream, simulate_screen
    >>> sim = simulate_screen(n_cells=120, n_features=3, seed=0)
    >>> fit = BayesDream(sim.counts, sim.cells, sim.cis_gene).fit_technical(n_steps=200, n_samples=50)
    >>> fit.tech_mean.shape, fit.group_effects().columns[:3].tolist()
    (torch.Size([2, 4]), ['feature', 'group', 'mean'])
    """

    groups: list = field(default_factory=list)
    tech_mean: torch.Tensor | None = None
    phi: torch.Tensor | None = None
    n_cells_used: int = 0
    categories: list | None = None

    kind = "technical"

    def _extra(self):
        return {"groups": list(self.groups), "tech_mean": self.tech_mean, "phi": self.phi,
                "n_cells_used": int(self.n_cells_used), "categories": self.categories}

    def group_effects(self) -> pd.DataFrame:
        """Posterior mean and 95% interval of every group effect, long format.

        Returns
        -------
        pandas.DataFrame
            ``feature, group, [category,] mean, lo, hi`` on the link scale, plus
            ``fold`` (``exp(mean)``) for negative-binomial features.

        Examples
        --------
        >>> from torchgenetics.dream import BayesDream, simulate_screen
        >>> sim = simulate_screen(n_cells=100, n_features=2, seed=0)
        >>> fit = BayesDream(sim.counts, sim.cells, sim.cis_gene).fit_technical(n_steps=50, n_samples=20)
        >>> fit.group_effects()[["feature", "group"]].iloc[0].tolist()
        ['CIS', 'line1']
        """
        if "tech" not in self.draws:
            return pd.DataFrame(columns=["feature", "group", "mean", "lo", "hi"])
        mean, lo, hi = _quantiles(self.draws["tech"])
        rows = []
        for c, group in enumerate(self.groups[1:]):
            for j, feat in enumerate(self.features):
                if mean.dim() == 3:
                    for k in range(mean.shape[2]):
                        cat = self.categories[k + 1] if self.categories else str(k + 1)
                        rows.append((feat, group, cat, float(mean[c, j, k]), float(lo[c, j, k]), float(hi[c, j, k])))
                else:
                    rows.append((feat, group, float(mean[c, j]), float(lo[c, j]), float(hi[c, j])))
        cols = ["feature", "group"] + (["category"] if mean.dim() == 3 else []) + ["mean", "lo", "hi"]
        frame = pd.DataFrame(rows, columns=cols)
        if self.family == "negbinom":
            frame["fold"] = np.exp(frame["mean"])
        return frame

    def to_frame(self) -> pd.DataFrame:
        """Per-feature baseline and noise summaries.

        Examples
        --------
        >>> from torchgenetics.dream import BayesDream, simulate_screen
        >>> sim = simulate_screen(n_cells=100, n_features=2, seed=0)
        >>> fit = BayesDream(sim.counts, sim.cells, sim.cis_gene).fit_technical(n_steps=50, n_samples=20)
        >>> fit.to_frame().index.tolist()
        ['CIS', 'gene0', 'gene1']
        """
        keep = {k: v for k, v in self.draws.items() if k in ("baseline", "o", "sigma", "df")}
        frame = summarize_draws(keep, self.features, {"baseline": self.categories})
        if self.phi is not None:
            frame["phi"] = self.phi.cpu().numpy()
        return frame


@dataclass
class CisFit(DreamFit):
    """Cis fit: guide-level and cell-level cis expression.

    Attributes
    ----------
    guides : pandas.DataFrame
        Guide table (``target``, ``is_ntc``, ``n_cells``), index = guide.
    cells : pandas.DataFrame
        Cell table subset (``target``, ``group`` and ``guide`` for low MOI), index = cell.
    x_true : torch.Tensor
        (cells,) posterior mean of x_true.
    technical_used : bool
        Whether a technical fit was plugged in.

    Examples
    --------
    >>> from torchgenetics.dream import BayesDream, simulate_screen
    >>> sim = simulate_screen(n_cells=120, n_features=2, n_groups=1, seed=0)
    >>> fit = BayesDream(sim.counts, sim.cells, sim.cis_gene).fit_cis(n_steps=200, n_samples=50)
    >>> fit.guides_frame().shape[0], fit.x_true.shape
    (14, torch.Size([120]))
    """

    guides: pd.DataFrame | None = None
    cells: pd.DataFrame | None = None
    x_true: torch.Tensor | None = None
    technical_used: bool = False

    kind = "cis"

    def _extra(self):
        return {"guides": self.guides, "cells": self.cells, "x_true": self.x_true,
                "technical_used": bool(self.technical_used)}

    def to_frame(self) -> pd.DataFrame:
        """Per-guide summary (same as :meth:`guides_frame`).

        Examples
        --------
        >>> from torchgenetics.dream import BayesDream, simulate_screen
        >>> sim = simulate_screen(n_cells=100, n_features=2, n_groups=1, seed=0)
        >>> BayesDream(sim.counts, sim.cells, sim.cis_gene).fit_cis(n_steps=50, n_samples=20).to_frame().shape[0]
        14
        """
        return self.guides_frame()

    def guide_log2_draws(self) -> torch.Tensor:
        """(S, guides) draws of guide-level log2 expression ``mu + tau * eps``.

        Examples
        --------
        >>> from torchgenetics.dream import BayesDream, simulate_screen
        >>> sim = simulate_screen(n_cells=100, n_features=2, n_groups=1, seed=0)
        >>> dm = BayesDream(sim.counts, sim.cells, sim.cis_gene)
        >>> fit = dm.fit_cis(n_steps=50, n_samples=20)
        >>> fit.guide_log2_draws().shape
        torch.Size([20, 14])
        """
        d = self.draws
        return d["mu"].unsqueeze(-1) + d["tau"].unsqueeze(-1) * d["eps_guide"]

    def guides_frame(self) -> pd.DataFrame:
        """Per guide: x (posterior mean, 95% interval), log2 fold change vs the NTC guides.

        Examples
        --------
        >>> from torchgenetics.dream import BayesDream, simulate_screen
        >>> sim = simulate_screen(n_cells=100, n_features=2, n_groups=1, seed=0)
        >>> dm = BayesDream(sim.counts, sim.cells, sim.cis_gene)
        >>> fit = dm.fit_cis(n_steps=50, n_samples=20)
        >>> fit.guides_frame().columns[:3].tolist()
        ['target', 'n_cells', 'x_mean']
        """
        gl = self.guide_log2_draws()
        x_mean, x_lo, x_hi = _quantiles(2.0**gl)
        ntc = torch.as_tensor(self.guides["is_ntc"].to_numpy(dtype=bool, copy=True))
        ref = gl[:, ntc].mean(-1, keepdim=True) if bool(ntc.any()) else torch.zeros_like(gl[:, :1])
        fc_mean, fc_lo, fc_hi = _quantiles(gl - ref)
        frame = self.guides[["target", "n_cells"]].copy()
        frame["x_mean"], frame["x_lo"], frame["x_hi"] = x_mean.numpy(), x_lo.numpy(), x_hi.numpy()
        frame["log2fc_mean"], frame["log2fc_lo"], frame["log2fc_hi"] = fc_mean.numpy(), fc_lo.numpy(), fc_hi.numpy()
        return frame

    def cells_frame(self) -> pd.DataFrame:
        """Per cell: x_true posterior mean and 95% interval, log2 mean and sd.

        Examples
        --------
        >>> from torchgenetics.dream import BayesDream, simulate_screen
        >>> sim = simulate_screen(n_cells=100, n_features=2, n_groups=1, seed=0)
        >>> dm = BayesDream(sim.counts, sim.cells, sim.cis_gene)
        >>> fit = dm.fit_cis(n_steps=50, n_samples=20)
        >>> fit.cells_frame().shape[0]
        100
        """
        l2 = self.draws["log2_x_true"].to(torch.float64)
        mean, lo, hi = _quantiles(2.0**l2)
        frame = self.cells.copy()
        frame["x_true_mean"], frame["x_true_lo"], frame["x_true_hi"] = mean.numpy(), lo.numpy(), hi.numpy()
        frame["log2_x_true_mean"] = l2.mean(0).numpy()
        frame["log2_x_true_sd"] = l2.std(0).numpy()
        return frame


@dataclass
class TransFit(DreamFit):
    """Trans fit: each feature's dose-response curve of x_true.

    Attributes
    ----------
    form : str
        Curve form.
    priors : dict
        Priors used (tensors and numbers; also ``x_lo``/``x_hi`` of the fold changes).
    x_true : torch.Tensor
        (cells,) x_true the curves were fitted against.
    categories : list of str or None
        Multinomial categories.
    settings : dict
        ``gate_prior``, ``n_scale``, ``degree``, ``technical_used``.

    Examples
    --------
    >>> from torchgenetics.dream import BayesDream, simulate_screen
    >>> sim = simulate_screen(n_cells=150, n_features=4, n_groups=1, seed=0)
    >>> dm = BayesDream(sim.counts, sim.cells, sim.cis_gene)
    >>> fit = dm.fit_trans(x_true=sim.truth["x_true"], n_steps=200, n_samples=50)
    >>> {"A_mean", "K_mean", "n_mean", "gate_mean", "log2fc_mean"} <= set(fit.to_frame().columns)
    True
    """

    form: str = "single"
    priors: dict = field(default_factory=dict)
    x_true: torch.Tensor | None = None
    categories: list | None = None
    settings: dict = field(default_factory=dict)

    kind = "trans"

    def _extra(self):
        return {"form": self.form, "priors": self.priors, "x_true": self.x_true,
                "categories": self.categories, "settings": self.settings}

    def spec(self) -> CurveSpec:
        """The curve specification of this fit.

        Examples
        --------
        >>> from torchgenetics.dream import BayesDream, simulate_screen
        >>> sim = simulate_screen(n_cells=100, n_features=2, n_groups=1, seed=0)
        >>> dm = BayesDream(sim.counts, sim.cells, sim.cis_gene)
        >>> fit = dm.fit_trans(x_true=sim.truth["x_true"], n_steps=50, n_samples=20)
        >>> fit.spec().form
        'single'
        """
        s = self.settings
        return CurveSpec(self.form, get_family(self.family), self.priors, gate_prior=s.get("gate_prior", 0.2),
                         n_scale=s.get("n_scale", 3.0), degree=int(s.get("degree", 3)))

    def curve_draws(self) -> dict:
        """Posterior draws of all curve parameters (sampled and derived) and derived quantities.

        Examples
        --------
        >>> from torchgenetics.dream import BayesDream, simulate_screen
        >>> sim = simulate_screen(n_cells=100, n_features=2, n_groups=1, seed=0)
        >>> dm = BayesDream(sim.counts, sim.cells, sim.cis_gene)
        >>> fit = dm.fit_trans(x_true=sim.truth["x_true"], n_steps=50, n_samples=20)
        >>> fit.curve_draws()["log2fc"].shape
        torch.Size([20, 2])
        """
        spec = self.spec()
        curve_sites = {k: v for k, v in self.draws.items() if k not in get_family(self.family).noise_sites()}
        params = curve_params(spec, curve_sites)
        params.update(derived_quantities(spec, params))
        for name in get_family(self.family).noise_sites():
            if name in self.draws:
                params[name] = self.draws[name]
        return params

    def to_frame(self) -> pd.DataFrame:
        """Per feature: posterior mean and 95% interval of every parameter.

        ``A``, ``Vmax``, ``K``, ``n``, ``gate`` (per form), ``inflection`` point,
        ``log2fc`` and ``effect`` between the smallest and largest guide-mean x_true,
        and the noise parameters.

        Examples
        --------
        >>> from torchgenetics.dream import BayesDream, simulate_screen
        >>> sim = simulate_screen(n_cells=100, n_features=2, n_groups=1, seed=0)
        >>> dm = BayesDream(sim.counts, sim.cells, sim.cis_gene)
        >>> fit = dm.fit_trans(x_true=sim.truth["x_true"], n_steps=50, n_samples=20)
        >>> fit.to_frame().index.tolist()
        ['gene0', 'gene1']
        """
        draws = {k: v for k, v in self.curve_draws().items() if not k.endswith("_abs")}
        labels = {k: self.categories for k, v in draws.items() if v.dim() == 3 and k != "coef"}
        return summarize_draws(draws, self.features, labels)

    def gate(self) -> torch.Tensor:
        """(features,) posterior-mean gate (largest of the two for the additive form).

        Examples
        --------
        >>> from torchgenetics.dream import BayesDream, simulate_screen
        >>> sim = simulate_screen(n_cells=100, n_features=2, n_groups=1, seed=0)
        >>> dm = BayesDream(sim.counts, sim.cells, sim.cis_gene)
        >>> fit = dm.fit_trans(x_true=sim.truth["x_true"], n_steps=50, n_samples=20)
        >>> fit.gate().shape
        torch.Size([2])
        """
        if self.form == "additive":
            return torch.maximum(self.draws["gate1"].mean(0), self.draws["gate2"].mean(0))
        return self.draws["gate"].mean(0)

    def curve_band(self, x: torch.Tensor, features=None) -> dict:
        """Posterior mean and 95% band of the curves at doses ``x`` (no technical effects).

        Parameters
        ----------
        x : torch.Tensor
            (P,) positive doses.
        features : sequence of str or int, optional
            Features (default all).

        Returns
        -------
        dict
            ``mean``, ``lo``, ``hi``: (P, F[, K]) tensors.

        Examples
        --------
        >>> from torchgenetics.dream import BayesDream, simulate_screen
        >>> sim = simulate_screen(n_cells=100, n_features=2, n_groups=1, seed=0)
        >>> dm = BayesDream(sim.counts, sim.cells, sim.cis_gene)
        >>> fit = dm.fit_trans(x_true=sim.truth["x_true"], n_steps=50, n_samples=20)
        >>> fit.curve_band(torch.tensor([1.0, 10.0]))["mean"].shape
        torch.Size([2, 2])
        """
        spec = self.spec()
        params = curve_params(spec, {k: v for k, v in self.draws.items()
                                     if k not in get_family(self.family).noise_sites()})
        cols = self._columns(features)
        params = {k: v[:, cols] for k, v in params.items()}
        x = torch.as_tensor(x, dtype=next(iter(params.values())).dtype)
        stats = [_quantiles(curve_mean(spec, params, torch.log(xi))) for xi in x]
        return {name: torch.stack([s[i] for s in stats]) for i, name in enumerate(("mean", "lo", "hi"))}

    def _columns(self, features) -> list:
        if features is None:
            return list(range(len(self.features)))
        out = []
        for f in features:
            if isinstance(f, (int, np.integer)):
                out.append(int(f))
            elif f in self.features:
                out.append(self.features.index(f))
            else:
                raise InputError(f"feature {f!r} is not in this trans fit")
        return out


_KINDS = {"technical": TechnicalFit, "cis": CisFit, "trans": TransFit}


def load_fit(path) -> DreamFit:
    """Load any bayesDREAM fit saved with ``fit.save(path)``.

    Examples
    --------
    >>> import tempfile, os
    >>> from torchgenetics.dream import BayesDream, simulate_screen
    >>> sim = simulate_screen(n_cells=100, n_features=2, n_groups=1, seed=0)
    >>> fit = BayesDream(sim.counts, sim.cells, sim.cis_gene).fit_cis(n_steps=50, n_samples=20)
    >>> f = os.path.join(tempfile.mkdtemp(), "fit.h5")
    >>> fit.save(f); load_fit(f).kind
    'cis'
    """
    values = load_h5(path)
    kind = values.get("kind")
    if kind not in _KINDS:
        raise FileFormatError(path, f"not a bayesDREAM fit (kind {kind!r})")
    return _KINDS[kind].from_dict(values)
