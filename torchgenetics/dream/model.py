"""``BayesDream``: a CRISPR screen and its three fits (technical, cis, trans).

Typical use::

    dm = BayesDream(counts, cells, cis_gene="GFI1B")
    dm.fit_technical()          # group effects and noise on NTC cells
    dm.fit_cis()                # guide- and cell-level cis expression x_true
    dm.fit_trans()              # each trans feature as a curve of x_true

Each fit takes optimiser settings (an :class:`~torchgenetics.optim.OptimConfig`,
a dict, or keyword overrides such as ``n_steps=``, ``lr=``), a cell ``batch_size``
(``"auto"`` plans it from measured memory), an optional guide factory, ``init=``
a previous fit to warm-start from, and ``n_samples`` posterior draws.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..errors import InputError
from ..io.store import load_h5, save_h5
from ..optim import as_config
from .cis import cis_model
from .data import DreamData, prepare_data
from .inference import run_inference
from .results import CisFit, TechnicalFit, TransFit
from .technical import technical_model
from .trans import temperature_schedule, trans_model

__all__ = ["BayesDream"]

_OPTIM_KEYS = ("n_steps", "lr", "schedule", "pct_start", "div_factor", "final_div_factor", "clip_norm",
               "early_stopping", "patience", "rel_tol", "smoothing", "min_steps", "num_particles", "verbose")


def _split_optim(kwargs: dict) -> dict:
    unknown = sorted(set(kwargs) - set(_OPTIM_KEYS))
    if unknown:
        raise InputError(f"unknown argument(s) {unknown}; optimiser settings are {list(_OPTIM_KEYS)}")
    return kwargs


class BayesDream:
    """A CRISPR perturbation screen with technical, cis and trans dose-response fits.

    Parameters
    ----------
    counts : array-like, scipy sparse, DataFrame or AnnData-like
        cells x features counts holding the cis feature (see :func:`prepare_data`).
    cells : pandas.DataFrame
        Cell table (``cell``, ``guide``, ``target``, optional ``size_factor``, ``group``).
    cis_gene : str
        The perturbed cis feature.
    modalities : dict or list of Modality, optional
        Extra modalities (binomial, multinomial, normal, Student-t).
    guide_assignment, guides
        High-MOI cells x guides matrix and guide table.
    features, cell_ids, ntc_label, baseline_group, columns
        As in :func:`~torchgenetics.dream.data.prepare_data`.
    device : torch.device or str, optional
        Device of the fits (default CPU).
    dtype : torch.dtype, default float64
        Floating dtype of the fits.
    seed : int, default 0
        Base seed; each fit may override it.

    Examples
    --------
    >>> from torchgenetics.dream import simulate_screen
    >>> sim = simulate_screen(n_cells=150, n_features=4, seed=0)
    >>> dm = BayesDream(sim.counts, sim.cells, sim.cis_gene)
    >>> _ = dm.fit_technical(n_steps=150, n_samples=50)
    >>> _ = dm.fit_cis(n_steps=150, n_samples=50)
    >>> fit = dm.fit_trans(n_steps=150, n_samples=50)
    >>> fit.to_frame().shape[0]
    4
    """

    def __init__(self, counts, cells: pd.DataFrame, cis_gene: str, *, modalities=None, guide_assignment=None,
                 guides=None, features=None, cell_ids=None, ntc_label: str = "ntc", baseline_group=None,
                 columns=None, device=None, dtype=torch.float64, seed: int = 0):
        data = prepare_data(counts, cells, cis_gene, features=features, cell_ids=cell_ids, modalities=modalities,
                            guide_assignment=guide_assignment, guides=guides, ntc_label=ntc_label,
                            baseline_group=baseline_group, columns=columns)
        self._setup(data, device, dtype, seed)

    def _setup(self, data: DreamData, device, dtype, seed) -> None:
        self.data = data
        self.device = torch.device("cpu" if device is None else device)
        self.dtype = dtype
        self.seed = int(seed)
        self.technical: dict[str, TechnicalFit] = {}
        self.cis: CisFit | None = None
        self.trans: dict[str, TransFit] = {}

    @classmethod
    def from_data(cls, data: DreamData, *, device=None, dtype=torch.float64, seed: int = 0) -> "BayesDream":
        """Wrap an already prepared :class:`DreamData`.

        Examples
        --------
        >>> from torchgenetics.dream import simulate_screen, prepare_data
        >>> sim = simulate_screen(n_cells=40, n_features=2, seed=0)
        >>> BayesDream.from_data(prepare_data(sim.counts, sim.cells, sim.cis_gene)).data.n_cells
        40
        """
        self = cls.__new__(cls)
        self._setup(data, device, dtype, seed)
        return self

    # ------------------------------------------------------------------ fits
    def fit_technical(self, modality: str = "counts", *, cells="ntc", config=None, batch_size="auto", guide=None,
                      init: TechnicalFit | None = None, n_samples: int = 500, seed: int | None = None,
                      **optim) -> TechnicalFit:
        """Fit technical-group effects and noise of every feature of a modality (NTC cells by default).

        Parameters
        ----------
        modality : str, default "counts"
            Modality to fit.
        cells : {"ntc", "all"} or array of bool
            Cells to fit on.
        config : OptimConfig or dict, optional
            Optimiser settings; keyword overrides in ``**optim``.
        batch_size : "auto", int or None
            Cells per SVI step.
        guide : None, str or callable
            ``"autonormal"`` (default), ``"structured"`` (per-feature covariance,
            see :mod:`~torchgenetics.dream.guides`) or ``guide(model) -> guide``.
        init : TechnicalFit, optional
            Warm start.
        n_samples : int
            Posterior draws kept.
        seed : int, optional
            Default the object's seed.
        **optim
            :class:`~torchgenetics.optim.OptimConfig` fields (``n_steps``, ``lr``, ...).

        Returns
        -------
        TechnicalFit
            Also stored in ``self.technical[modality]``.

        Raises
        ------
        InputError
            No NTC cells, or a group without cells to fit.

        Examples
        --------
        >>> from torchgenetics.dream import simulate_screen
        >>> sim = simulate_screen(n_cells=120, n_features=3, seed=0)
        >>> fit = BayesDream(sim.counts, sim.cells, sim.cis_gene).fit_technical(n_steps=150, n_samples=50)
        >>> fit.groups, fit.phi.shape
        (['line0', 'line1'], torch.Size([4]))
        """
        cfg = as_config(config, **_split_optim(optim))
        seed = self.seed if seed is None else int(seed)
        model, report, rows = technical_model(self.data, modality, cells, device=self.device, dtype=self.dtype)
        res = run_inference(model, model.n_cells, cfg, batch_size=batch_size, guide=guide,
                            init_values=model.init_values(), warm_start=None if init is None else init.guide_params,
                            n_samples=n_samples, seed=seed, device=self.device, desc=f"technical {modality}")
        mod = self.data.modality(modality)
        draws = res.draws
        if "tech" in draws:
            tech = draws["tech"].mean(0)
            tech_mean = torch.cat([torch.zeros_like(tech[:1]), tech]).cpu()
        else:
            shape = (1, mod.n_features) + ((mod.values.shape[2] - 1,) if mod.family == "multinomial" else ())
            tech_mean = torch.zeros(shape, dtype=self.dtype)
        phi = (1.0 / draws["o"].clamp(min=1e-4) ** 2).mean(0).cpu() if "o" in draws else None
        fit = TechnicalFit(
            modality=modality, family=mod.family, features=list(mod.features), run=res.run, config=cfg.to_dict(),
            prior_report=report, batch_size=res.batch_size, bytes_per_cell=res.bytes_per_cell,
            draws={k: v.cpu() for k, v in draws.items()}, guide_params=res.guide_params, seed=seed,
            groups=list(self.data.groups), tech_mean=tech_mean, phi=phi, n_cells_used=int(rows.size),
            categories=mod.categories,
        )
        self.technical[modality] = fit
        return fit

    def fit_cis(self, *, technical: bool = True, config=None, batch_size="auto", guide=None,
                init: CisFit | None = None, n_samples: int = 500, seed: int | None = None, **optim) -> CisFit:
        """Fit guide-level cis expression and each cell's x_true.

        Parameters
        ----------
        technical : bool, default True
            Plug in ``self.technical["counts"]`` when it exists.
        config, batch_size, guide, init, n_samples, seed, **optim
            As in :meth:`fit_technical`.

        Returns
        -------
        CisFit
            Also stored in ``self.cis``.

        Examples
        --------
        >>> from torchgenetics.dream import simulate_screen
        >>> sim = simulate_screen(n_cells=120, n_features=2, n_groups=1, seed=0)
        >>> fit = BayesDream(sim.counts, sim.cells, sim.cis_gene).fit_cis(n_steps=150, n_samples=50)
        >>> bool((fit.x_true > 0).all())
        True
        """
        cfg = as_config(config, **_split_optim(optim))
        seed = self.seed if seed is None else int(seed)
        tech_fit = self.technical.get(self.data.primary) if technical else None
        model, report, init_values = cis_model(self.data, tech_fit, device=self.device, dtype=self.dtype)
        res = run_inference(model, model.n_cells, cfg, batch_size=batch_size, guide=guide, init_values=init_values,
                            warm_start=None if init is None else init.guide_params, n_samples=n_samples, seed=seed,
                            device=self.device, desc="cis")
        draws = {k: v.cpu() for k, v in res.draws.items()}
        x_true = (2.0 ** draws["log2_x_true"]).mean(0)
        cell_cols = [c for c in ("guide", "target", "group") if c in self.data.cells.columns]
        fit = CisFit(
            modality=self.data.primary, family="negbinom", features=[self.data.cis_gene], run=res.run,
            config=cfg.to_dict(), prior_report=report, batch_size=res.batch_size,
            bytes_per_cell=res.bytes_per_cell, draws=draws, guide_params=res.guide_params, seed=seed,
            guides=self.data.guides[["target", "is_ntc", "n_cells"]].copy(),
            cells=self.data.cells[cell_cols].copy(), x_true=x_true, technical_used=tech_fit is not None,
        )
        self.cis = fit
        return fit

    def fit_trans(self, modality: str = "counts", *, form: str = "single", x_true=None, technical: bool = True,
                  gate_prior: float = 0.2, n_scale: float = 3.0, degree: int = 3, prior_cv: float = 1.0,
                  temperature=(1.0, 0.1), x_uncertainty: bool = True, config=None, batch_size="auto", guide=None,
                  init: TransFit | None = None, n_samples: int = 500, seed: int | None = None,
                  **optim) -> TransFit:
        """Fit every trans feature of a modality as a dose-response curve of x_true.

        Parameters
        ----------
        modality : str, default "counts"
            Modality whose trans features are fitted.
        form : {"single", "additive", "nested", "polynomial"}
            Curve form.
        x_true : array-like, optional
            (cells,) cis expression taken as known; default the cis fit's posterior.
        technical : bool, default True
            Plug in ``self.technical[modality]`` when it exists.
        gate_prior : float, default 0.2
            Prior probability that a feature responds.
        n_scale : float, default 3
            Prior sd of signed Hill coefficients.
        degree : int, default 3
            Polynomial degree.
        prior_cv : float, default 1
            CV of the log-normal A and Vmax priors.
        temperature : (float, float)
            Gate temperature at the first and last step (geometric annealing).
        x_uncertainty : bool, default True
            With the cis fit's x_true, make log2 x_true a per-cell latent whose prior
            is the cis posterior (its mean and sd): the curves then carry the
            uncertainty of x_true instead of treating its posterior mean as exact.
        config, batch_size, guide, init, n_samples, seed, **optim
            As in :meth:`fit_technical`.

        Returns
        -------
        TransFit
            Also stored in ``self.trans[modality]``.

        Raises
        ------
        InputError
            No x_true (run :meth:`fit_cis` or pass ``x_true``), bad x_true.

        Examples
        --------
        >>> from torchgenetics.dream import simulate_screen
        >>> sim = simulate_screen(n_cells=150, n_features=3, n_groups=1, seed=0)
        >>> dm = BayesDream(sim.counts, sim.cells, sim.cis_gene)
        >>> dm.fit_trans(x_true=sim.truth["x_true"], n_steps=150, n_samples=50).form
        'single'
        """
        cfg = as_config(config, **_split_optim(optim))
        seed = self.seed if seed is None else int(seed)
        x_sd = None
        if x_true is None:
            if self.cis is None:
                raise InputError("fit_trans needs x_true: run fit_cis first or pass x_true=")
            l2 = self.cis.draws["log2_x_true"].to(torch.float64)
            x_true = 2.0 ** l2.mean(0)
            x_sd = l2.std(0).clamp(min=1e-3).numpy() if x_uncertainty else None
        x_np = x_true.detach().cpu().numpy() if isinstance(x_true, torch.Tensor) else np.asarray(x_true, dtype=float)
        tech_fit = self.technical.get(modality) if technical else None
        model, report = trans_model(self.data, modality, x_np, technical=tech_fit, form=form, gate_prior=gate_prior,
                                    n_scale=n_scale, degree=degree, prior_cv=prior_cv, x_sd=x_sd, device=self.device,
                                    dtype=self.dtype)
        schedule = temperature_schedule(cfg.n_steps, *temperature)
        res = run_inference(model, model.n_cells, cfg, batch_size=batch_size, guide=guide,
                            init_values=model.init_values(),
                            warm_start=None if init is None else init.guide_params, step_kwargs=schedule,
                            n_samples=n_samples, exclude_sites=("log2_x_true",), seed=seed, device=self.device,
                            desc=f"trans {modality}")
        mod = self.data.modality(modality)
        priors = {k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in model.spec.priors.items()}
        fit = TransFit(
            modality=modality, family=mod.family, features=self.data.trans_features(modality), run=res.run,
            config=cfg.to_dict(), prior_report=report, batch_size=res.batch_size,
            bytes_per_cell=res.bytes_per_cell, draws={k: v.cpu() for k, v in res.draws.items()},
            guide_params=res.guide_params, seed=seed, form=form, priors=priors,
            x_true=torch.as_tensor(x_np), categories=mod.categories,
            settings={"gate_prior": float(gate_prior), "n_scale": float(n_scale), "degree": int(degree),
                      "technical_used": tech_fit is not None, "temperature": [float(t) for t in temperature]},
        )
        self.trans[modality] = fit
        return fit

    # -------------------------------------------------------------- storage
    def save(self, path, draws: bool = True) -> None:
        """Write every fit to one HDF5 file (format ``BayesDream``).

        Examples
        --------
        >>> import tempfile, os
        >>> from torchgenetics.dream import simulate_screen
        >>> sim = simulate_screen(n_cells=60, n_features=2, seed=0)
        >>> dm = BayesDream(sim.counts, sim.cells, sim.cis_gene)
        >>> f = os.path.join(tempfile.mkdtemp(), "dream.h5")
        >>> dm.save(f); dm.load_fits(f).cis is None
        True
        """
        content = {
            "cis_gene": self.data.cis_gene,
            "technical": {k: v.to_dict(draws) for k, v in self.technical.items()},
            "cis": {} if self.cis is None else self.cis.to_dict(draws),
            "trans": {k: v.to_dict(draws) for k, v in self.trans.items()},
        }
        save_h5(path, content, format_name="BayesDream")

    def load_fits(self, path) -> "BayesDream":
        """Attach the fits saved by :meth:`save` (same screen) to this object.

        Returns
        -------
        BayesDream
            ``self``.

        Examples
        --------
        >>> import tempfile, os
        >>> from torchgenetics.dream import simulate_screen
        >>> sim = simulate_screen(n_cells=80, n_features=2, seed=0)
        >>> dm = BayesDream(sim.counts, sim.cells, sim.cis_gene)
        >>> _ = dm.fit_technical(n_steps=50, n_samples=10)
        >>> f = os.path.join(tempfile.mkdtemp(), "dream.h5")
        >>> dm.save(f)
        >>> list(BayesDream(sim.counts, sim.cells, sim.cis_gene).load_fits(f).technical)
        ['counts']
        """
        content = load_h5(path, format_name="BayesDream")
        if content["cis_gene"] != self.data.cis_gene:
            raise InputError(f"{path} holds fits for cis gene {content['cis_gene']!r}, not {self.data.cis_gene!r}")
        self.technical = {k: TechnicalFit.from_dict(v) for k, v in content["technical"].items()}
        self.cis = CisFit.from_dict(content["cis"]) if content["cis"] else None
        self.trans = {k: TransFit.from_dict(v) for k, v in content["trans"].items()}
        return self

    def summary(self) -> str:
        """A few lines on the screen and the fits done.

        Examples
        --------
        >>> from torchgenetics.dream import simulate_screen
        >>> sim = simulate_screen(n_cells=60, n_features=2, seed=0)
        >>> print(BayesDream(sim.counts, sim.cells, sim.cis_gene).summary().splitlines()[0])
        bayesDREAM screen: 60 cells, 14 guides (3 NTC), 2 technical groups, cis gene CIS
        """
        d = self.data
        lines = [
            f"bayesDREAM screen: {d.n_cells} cells, {d.n_guides} guides ({int(d.guides['is_ntc'].sum())} NTC), "
            f"{d.n_groups} technical groups, cis gene {d.cis_gene}",
            "modalities: " + ", ".join(f"{m.name} ({m.family}, {m.n_features} features)" for m in d.modalities.values()),
        ]
        for name, fit in self.technical.items():
            lines.append(f"technical[{name}]: {fit.n_iter} steps, final loss {fit.losses[-1]:.4g}; {fit.prior_report}")
        if self.cis is not None:
            lines.append(f"cis: {self.cis.n_iter} steps, final loss {self.cis.losses[-1]:.4g}")
        for name, fit in self.trans.items():
            lines.append(f"trans[{name}] ({fit.form}): {fit.n_iter} steps, final loss {fit.losses[-1]:.4g}; "
                         f"{fit.prior_report}")
        return "\n".join(lines)
