"""One-call DeepWAS fit and its result: :func:`fit_deepwas` and :class:`DeepWASFit`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from torchgenetics.errors import FileFormatError, InputError

from .config import DeepWASConfig
from .data import Annotations, SumStats
from .datamodule import RegionDataModule
from .module import DeepWASModule
from .predict import predict_variance
from .priors import build_prior
from .regions import build_regions
from .trainer import Trainer, TrainingHistory

__all__ = ["DeepWASFit", "fit_deepwas", "feature_stats"]

_FORMAT = "DeepWASFit"


def feature_stats(annotations: Annotations) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature (per-track) mean and standard deviation, sd floored at 1e-8 for constants.

    Examples
    --------
    >>> m, s = feature_stats(Annotations(["a", "b"], np.array([[0.0, 1.0], [2.0, 1.0]]), ["x", "y"]))
    >>> m.tolist(), s.tolist()
    ([1.0, 1.0], [1.0, 1e-08])
    """
    v = annotations.values
    axes = (0,) if v.ndim == 2 else (0, 2)
    return v.mean(axis=axes), np.maximum(v.std(axis=axes), 1e-8)


@dataclass
class DeepWASFit:
    """A trained DeepWAS prior with its history and held-out metrics.

    Attributes
    ----------
    module : DeepWASModule
        The trained module (prior, scale, noise, feature standardization).
    history : TrainingHistory
    config : dict
        The run configuration (see :class:`DeepWASConfig`).
    report : dict
        Input matching counts (see :class:`~torchgenetics.deepwas.regions.RegionSet`).
    metrics : dict
        ``val`` and ``train`` likelihood metrics per scored variant (``nll``,
        ``null_nll``, ``delta``, ``se``, ``n_scored``).
    feature_names : list of str

    Examples
    --------
    >>> from torchgenetics.deepwas.simulate import simulate_example
    >>> ex = simulate_example(n_variants=400, n_reference=300, block_size=100, chromosomes=2, seed=0)
    >>> fit = fit_deepwas(ex.sumstats, ex.annotations, ex.ld,
    ...                   {"prior": {"kind": "linear"}, "training": {"epochs": 10},
    ...                    "data": {"val_chromosomes": ["2"], "batch_size": 1}})
    >>> fit.metrics["val"]["delta"] < 0
    True
    """

    module: DeepWASModule
    history: TrainingHistory
    config: dict
    report: dict
    metrics: dict
    feature_names: list

    @property
    def sigma(self) -> float:
        """Noise scale."""
        return float(self.module.sigma.detach())

    def predict(self, annotations: Annotations) -> pd.DataFrame:
        """Prior variance of every variant of ``annotations`` (see :func:`predict_variance`).

        Examples
        --------
        >>> DeepWASFit.predict.__name__
        'predict'
        """
        return predict_variance(self.module, annotations)

    def summary(self) -> str:
        """A few lines for people: data, prior, held-out likelihood.

        Examples
        --------
        >>> DeepWASFit.summary.__name__
        'summary'
        """
        lines = [f"DeepWAS fit: prior {self.config['prior'].get('kind')}, objective "
                 f"{self.config['training'].get('objective')}, {self.history.n_steps} steps "
                 f"in {self.history.seconds:.1f} s",
                 f"regions: {self.report.get('n_regions', 0)}, scored variants: "
                 f"{self.report.get('n_scored', 0):,}; sigma {self.sigma:.3f}"]
        for part in ("train", "val"):
            m = self.metrics.get(part)
            if m and m.get("n_scored"):
                lines.append(f"{part}: NLL/variant {m['nll']:.4f} (null {m['null_nll']:.4f}, "
                             f"change {m['delta']:+.4f} +/- {m['se']:.4f}) over {m['n_scored']:,} variants")
        return "\n".join(lines)

    def save(self, path) -> None:
        """Write the fit to HDF5 (weights, prior spec, history, config, metrics).

        Examples
        --------
        >>> DeepWASFit.save.__name__
        'save'
        """
        from torchgenetics.io import save_h5

        spec = getattr(self.module.prior, "spec", None)
        m = self.module
        save_h5(path, {
            "prior_spec": spec() if callable(spec) else None,
            "state": {k: v.detach().cpu() for k, v in m.state_dict().items()},
            "module": {"objective": m.objective, "link": m.link, "learn_sigma": m.learn_sigma,
                       "weight_decay": m.weight_decay, "likelihood": m.likelihood.config(),
                       "optim": m.optim_config.to_dict(), "dtype": str(m.log_scale.dtype)},
            "history": self.history.to_dict(),
            "config": self.config,
            "report": {k: int(v) for k, v in self.report.items()},
            "metrics": self.metrics,
            "feature_names": list(self.feature_names),
        }, format_name=_FORMAT)

    @classmethod
    def load(cls, path, prior: torch.nn.Module | None = None) -> "DeepWASFit":
        """Read a fit written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like
        prior : torch.nn.Module, optional
            An untrained instance of the prior, needed when it is not a built-in one.

        Returns
        -------
        DeepWASFit

        Examples
        --------
        >>> DeepWASFit.load.__name__
        'load'
        """
        from torchgenetics.io import load_h5

        data = load_h5(path, format_name=_FORMAT)
        info = data["module"]
        dtype = getattr(torch, info["dtype"].replace("torch.", ""))
        if prior is None:
            if data["prior_spec"] is None:
                raise FileFormatError(path, "the fit's prior is not a built-in one; pass prior= "
                                            "(an untrained instance of the same network)")
            prior = build_prior(data["prior_spec"], dtype=dtype)
        state = data["state"]
        module = DeepWASModule(prior, likelihood=info["likelihood"], objective=info["objective"],
                               learn_sigma=info["learn_sigma"], link=info["link"],
                               optim=info["optim"], weight_decay=info["weight_decay"],
                               feature_mean=state.get("feature_mean"),
                               feature_sd=state.get("feature_sd"), dtype=dtype)
        try:
            module.load_state_dict(state)
        except RuntimeError as err:
            raise FileFormatError(path, f"weights do not fit the prior network ({err})") from None
        return cls(module, TrainingHistory.from_dict(data["history"]), data["config"],
                   data["report"], data["metrics"], list(data["feature_names"]))


def fit_deepwas(sumstats: SumStats, annotations: Annotations, ld, config=None, prior=None,
                init: DeepWASFit | None = None, device=None, dtype=torch.float64,
                verbose: bool = False, distributed: bool = False, group=None) -> DeepWASFit:
    """Train a functional prior on summary statistics, annotations and LD.

    Matches the inputs by variant id and cuts regions (:func:`build_regions`), holds
    out ``data.val_chromosomes``, builds the prior from ``config.prior`` (or uses
    ``prior``), starts the global scale at the moment estimate and trains with the
    plain trainer (AdamW + OneCycle, clipping, early stopping on held-out NLL).

    Parameters
    ----------
    sumstats : SumStats
    annotations : Annotations
    ld : BlockLD, BandedLD or list of them
    config : DeepWASConfig, dict or YAML path, optional
    prior : torch.nn.Module, optional
        Any network mapping features to log-variances (overrides ``config.prior``).
    init : DeepWASFit, optional
        Warm start: continue from this fit's weights, scale, noise and feature
        standardization (same prior architecture); a fit loaded from HDF5 works as well.
    device, dtype : optional
        Where to train (default CPU, float64).
    verbose : bool
        Progress bar.
    distributed : bool
        Data-parallel training over the ranks of an initialised process group (call
        on every rank with the same inputs; see :class:`Trainer`): the same fit as one
        process with the same ``data.batch_size`` and seed, returned on every rank.
    group : ProcessGroup, optional
        Process group of distributed training (default: the world group).

    Returns
    -------
    DeepWASFit

    Examples
    --------
    >>> from torchgenetics.deepwas.simulate import simulate_example
    >>> ex = simulate_example(n_variants=300, n_reference=300, block_size=100, seed=0)
    >>> fit = fit_deepwas(ex.sumstats, ex.annotations, ex.ld, {"training": {"epochs": 4},
    ...                   "prior": {"hidden": [8]}, "data": {"batch_size": 1}})
    >>> fit.history.n_steps   # 4 regions (2 chromosomes of 150 variants, blocks of 100) x 4 epochs
    16
    """
    cfg = DeepWASConfig.coerce(config)
    tr, dcfg = cfg.training, cfg.data
    if int(dcfg["track_half_width"]) > 0:
        annotations = annotations.windowed(int(dcfg["track_half_width"]))
    regions = build_regions(sumstats, annotations, ld, window_size=dcfg["window_size"],
                            flank=dcfg["flank"], dense_max=int(dcfg["dense_max"]), dtype=dtype,
                            device=device)
    dm = RegionDataModule(regions, batch_size=int(dcfg["batch_size"]),
                          val_chromosomes=dcfg["val_chromosomes"] or [], seed=int(tr["seed"]))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(tr["seed"]))
        net = prior if prior is not None else build_prior(cfg.prior_spec(), annotations.feature_shape,
                                                          dtype=dtype)
    mean, sd = feature_stats(annotations)
    likelihood = dict(cfg.likelihood, seed=int(tr["seed"]))
    module = DeepWASModule(net, likelihood=likelihood, objective=tr["objective"],
                           sigma=float(tr["sigma"]), learn_sigma=bool(tr["learn_sigma"]),
                           link=tr["link"], log_scale=dm.moment_log_variance(float(tr["sigma"])),
                           optim=cfg.optim, weight_decay=float(tr["weight_decay"]),
                           feature_mean=mean, feature_sd=sd, dtype=dtype)
    if init is not None:
        try:
            module.load_state_dict(init.module.state_dict())
        except RuntimeError as err:
            raise InputError(f"init: the previous fit's weights do not fit this prior ({err})") from None
    if device is not None:
        module = module.to(device)
    if int(tr["epochs"]) * dm.steps_per_epoch * float(cfg.optim.get("pct_start", 0.1)) <= 1:
        raise InputError(f"{tr['epochs']} epoch(s) x {dm.steps_per_epoch} step(s) are too few for a "
                         "OneCycle warm-up; raise training.epochs or lower data.batch_size")
    trainer = Trainer(max_epochs=int(tr["epochs"]), patience=tr["patience"],
                      restore_best=bool(tr["restore_best"]), eval_train=bool(tr["eval_train"]),
                      verbose=verbose, distributed=distributed, group=group)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(tr["seed"]))  # dropout masks
        history = trainer.fit(module, dm)
    if distributed:
        from torchgenetics.distributed.training import sharded_evaluate

        def evaluate(regions):
            return sharded_evaluate(module, regions, group=group)
    else:
        evaluate = module.evaluate
    metrics = {"train": evaluate(dm.train_regions)}
    if dm.val_regions:
        metrics["val"] = evaluate(dm.val_regions)
    return DeepWASFit(module, history, cfg.to_dict(), dict(regions.report), metrics,
                      list(annotations.names))
