"""DeepWASModule: a functional prior trained on region likelihoods, Lightning-shaped.

The module maps annotation features to per-variant effect variances

    f_j = exp(log_scale + g_theta(standardize(a_j)))        (link="exp")
    f_j = exp(log_scale) * softplus(g_theta(...)) / log 2    (link="softplus")

with ``g_theta`` any prior network, and scores a mini-batch of LD regions by the
full marginal likelihood (:class:`~torchgenetics.deepwas.likelihood.RegionLikelihood`)
or by the LDSC-style objective (:class:`~torchgenetics.deepwas.ldsc.LDSCObjective`).
It has Lightning's hooks (``training_step``, ``validation_step``,
``configure_optimizers``) but is a plain ``nn.Module``: the plain trainer in
:mod:`~torchgenetics.deepwas.trainer` drives it, and
:func:`~torchgenetics.deepwas.lightning.lightning_module` wraps it for Lightning.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from torchgenetics.errors import InputError
from torchgenetics.optim import OptimConfig, as_config

from .ldsc import LDSCObjective
from .likelihood import RegionLikelihood

__all__ = ["DeepWASModule", "summarize_validation", "OBJECTIVES", "LINKS"]

OBJECTIVES = ("likelihood", "ldsc")
LINKS = ("exp", "softplus")


def summarize_validation(outputs: list) -> dict:
    """Combine ``validation_step`` outputs into per-variant held-out metrics.

    Returns ``nll`` (held-out NLL per scored variant), ``null_nll`` (the same under
    ``F -> 0``), ``delta`` (``nll - null_nll``, negative when the prior explains the
    held-out statistics better than no genetic signal), ``se`` and ``n_scored``.

    Examples
    --------
    >>> summarize_validation([{"nll": 10.0, "null_nll": 12.0, "n_scored": 4, "var": 0.0}])["delta"]
    -0.5
    """
    n = sum(o["n_scored"] for o in outputs)
    if n == 0:
        return {"nll": math.nan, "null_nll": math.nan, "delta": math.nan, "se": math.nan, "n_scored": 0}
    nll = sum(o["nll"] for o in outputs) / n
    null = sum(o["null_nll"] for o in outputs) / n
    se = math.sqrt(sum(o["var"] for o in outputs)) / n
    return {"nll": nll, "null_nll": null, "delta": nll - null, "se": se, "n_scored": n}


def _as_likelihood(likelihood) -> RegionLikelihood:
    if likelihood is None:
        return RegionLikelihood()
    if isinstance(likelihood, RegionLikelihood):
        return likelihood
    if isinstance(likelihood, dict):
        try:
            return RegionLikelihood(**likelihood)
        except TypeError as err:
            raise InputError(f"bad likelihood settings: {err}") from None
    raise InputError(f"likelihood must be a RegionLikelihood or a dict, got {type(likelihood).__name__}")


class DeepWASModule(nn.Module):
    """A functional prior over annotations, trained on GWAS region likelihoods.

    Parameters
    ----------
    prior : torch.nn.Module
        Maps features ``(n, ...)`` to ``(n,)`` log-variances (e.g. :class:`MLPPrior`).
    likelihood : RegionLikelihood or dict, optional
        Region likelihood (default ``RegionLikelihood()``, exact/iterative by size).
    objective : {"likelihood", "ldsc"}
        Training objective; validation always reports the likelihood.
    sigma : float
        Noise scale (fixed unless ``learn_sigma``).
    learn_sigma : bool
        Learn ``log sigma`` with the prior.
    link : {"exp", "softplus"}
        Positive link from the network output to the variance.
    log_scale : float
        Initial global log-variance (e.g. ``RegionDataModule.moment_log_variance()``).
    optim : OptimConfig or dict, optional
        Learning-rate schedule and clipping (``torchgenetics.optim``'s OneCycle recipe);
        ``n_steps`` is set by the trainer.
    weight_decay : float
        AdamW weight decay of the network's weight matrices.
    feature_mean, feature_sd : torch.Tensor, optional
        Per-feature (per-track) standardization applied before the prior.
    dtype : torch.dtype

    Examples
    --------
    >>> from torchgenetics.deepwas.priors import MLPPrior
    >>> module = DeepWASModule(MLPPrior(3, hidden=(8,)), log_scale=-9.0)
    >>> module.variance(torch.zeros(2, 3, dtype=torch.float64)).shape
    torch.Size([2])
    """

    def __init__(self, prior: nn.Module, likelihood=None, objective: str = "likelihood",
                 sigma: float = 1.0, learn_sigma: bool = False, link: str = "exp",
                 log_scale: float = 0.0, optim=None, weight_decay: float = 0.01,
                 feature_mean=None, feature_sd=None, dtype=torch.float64):
        super().__init__()
        if objective not in OBJECTIVES:
            raise InputError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        if link not in LINKS:
            raise InputError(f"link must be one of {LINKS}, got {link!r}")
        if not float(sigma) > 0:
            raise InputError(f"sigma must be > 0, got {sigma}")
        self.prior = prior.to(dtype)
        self.objective = objective
        self.link = link
        self.learn_sigma = bool(learn_sigma)
        self.log_scale = nn.Parameter(torch.tensor(float(log_scale), dtype=dtype))
        log_sigma = torch.tensor(math.log(float(sigma)), dtype=dtype)
        if self.learn_sigma:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)
        self.register_buffer("feature_mean", None if feature_mean is None
                             else torch.as_tensor(feature_mean, dtype=dtype))
        self.register_buffer("feature_sd", None if feature_sd is None
                             else torch.as_tensor(feature_sd, dtype=dtype))
        self.likelihood = _as_likelihood(likelihood)
        self.ldsc = LDSCObjective()
        self.optim_config = as_config(optim)
        self.weight_decay = float(weight_decay)
        self.logged: dict = {}

    # ------------------------------------------------------------------ the prior

    @property
    def sigma(self) -> torch.Tensor:
        """Noise scale ``exp(log_sigma)``."""
        return self.log_sigma.exp()

    def _standardize(self, features: torch.Tensor) -> torch.Tensor:
        x = features.to(self.log_scale.dtype)
        if self.feature_mean is None:
            return x
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return (x - self.feature_mean.reshape(shape)) / self.feature_sd.reshape(shape)

    def log_variance(self, features: torch.Tensor) -> torch.Tensor:
        """Per-variant log prior variance ``log f`` (n,).

        Examples
        --------
        >>> from torchgenetics.deepwas.priors import LinearPrior
        >>> DeepWASModule(LinearPrior(2), log_scale=-5.0).log_variance(torch.zeros(1, 2)).tolist()
        [-5.0]
        """
        g = self.prior(self._standardize(features))
        if g.shape != features.shape[:1]:
            raise InputError(f"the prior returned shape {tuple(g.shape)} for {features.shape[0]} "
                             "variants; it must return one log-variance per variant")
        if self.link == "exp":
            return self.log_scale + g
        return self.log_scale + torch.log(nn.functional.softplus(g) / math.log(2.0))

    def variance(self, features: torch.Tensor) -> torch.Tensor:
        """Per-variant prior effect variance ``f`` (n,), for standardized genotypes.

        Examples
        --------
        >>> from torchgenetics.deepwas.priors import LinearPrior
        >>> round(DeepWASModule(LinearPrior(1), link="softplus").variance(torch.zeros(1, 1)).item(), 12)
        1.0
        """
        return self.log_variance(features).exp()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.variance(features)

    # ----------------------------------------------------------- region objectives

    def region_outputs(self, batch: list, objective: str | None = None) -> list:
        """Score each region of a batch (one prior forward pass for the whole batch).

        Parameters
        ----------
        batch : list of Region
        objective : {"likelihood", "ldsc"}, optional
            Default the module's training objective.

        Returns
        -------
        list of RegionNLL

        Examples
        --------
        >>> DeepWASModule.region_outputs.__name__
        'region_outputs'
        """
        objective = objective or self.objective
        if not batch:
            raise InputError("empty batch of regions")
        feats = torch.cat([r.features for r in batch], dim=0)
        f_all = self.variance(feats).to(batch[0].dtype)
        sigma = self.sigma.to(batch[0].dtype)
        score = self.likelihood if objective == "likelihood" else self.ldsc
        parts = torch.split(f_all, [r.n_variants for r in batch])
        return [score(r, f, sigma) for r, f in zip(batch, parts, strict=True)]

    def log(self, name: str, value) -> None:
        """Record a metric (Lightning's wrapper logs the same names).

        Examples
        --------
        >>> from torchgenetics.deepwas.priors import LinearPrior
        >>> m = DeepWASModule(LinearPrior(1)); m.log("x", 1.0); m.logged["x"]
        1.0
        """
        self.logged[name] = float(value)

    def training_step(self, batch: list, batch_idx: int = 0) -> torch.Tensor:
        """Mean objective per scored variant over a batch of regions (differentiable).

        Examples
        --------
        >>> DeepWASModule.training_step.__name__
        'training_step'
        """
        outs = self.region_outputs(batch)
        n = sum(o.n_scored for o in outs)
        loss = torch.stack([o.loss for o in outs]).sum() / n
        self.log("train_loss", loss.detach())
        return loss

    def validation_step(self, batch: list, batch_idx: int = 0) -> dict:
        """Held-out likelihood of a batch: sums of NLL and null NLL, and the Monte Carlo variance.

        Examples
        --------
        >>> DeepWASModule.validation_step.__name__
        'validation_step'
        """
        with torch.no_grad():
            outs = self.region_outputs(batch, objective="likelihood")
            sigma = float(self.sigma)
            nulls = []
            for r, o in zip(batch, outs, strict=True):
                key = ("null", o.method, sigma)
                if key not in r.cache:
                    r.cache[key] = self.likelihood.null(r, sigma, method=o.method).value
                nulls.append(r.cache[key])
        return {"nll": sum(o.value for o in outs), "null_nll": sum(nulls),
                "n_scored": sum(o.n_scored for o in outs), "var": sum(o.se ** 2 for o in outs)}

    def evaluate(self, regions, batch_size: int = 16) -> dict:
        """Likelihood metrics per scored variant over regions (see :func:`summarize_validation`).

        Examples
        --------
        >>> DeepWASModule.evaluate.__name__
        'evaluate'
        """
        regions = list(regions)
        was_training = self.training
        self.eval()
        try:
            outs = [self.validation_step(regions[i:i + batch_size], i)
                    for i in range(0, len(regions), batch_size)]
        finally:
            self.train(was_training)
        return summarize_validation(outs)

    # ---------------------------------------------------------------- optimisation

    def set_total_steps(self, n_steps: int) -> OptimConfig:
        """Fix the length of the OneCycle schedule (called by the trainers).

        Examples
        --------
        >>> from torchgenetics.deepwas.priors import LinearPrior
        >>> DeepWASModule(LinearPrior(1)).set_total_steps(100).n_steps
        100
        """
        self.optim_config = as_config(self.optim_config, n_steps=int(n_steps))
        return self.optim_config

    def configure_optimizers(self) -> dict:
        """AdamW under ``torchgenetics.optim``'s OneCycle recipe, stepped every step.

        The schedule starts at ``lr / div_factor``, warms up (cosine) to ``lr`` over
        ``pct_start * n_steps`` steps and anneals to ``lr / (div_factor * final_div_factor)``
        -- the rates of :func:`torchgenetics.optim.one_cycle_lrs`. Weight decay applies
        to the network's weight matrices only.

        Returns
        -------
        dict
            Lightning's format: ``{"optimizer": ..., "lr_scheduler": {"scheduler": ...,
            "interval": "step", "frequency": 1}}``.

        Examples
        --------
        >>> from torchgenetics.deepwas.priors import LinearPrior
        >>> opt = DeepWASModule(LinearPrior(1), optim={"n_steps": 50}).configure_optimizers()
        >>> type(opt["lr_scheduler"]["scheduler"]).__name__
        'OneCycleLR'
        """
        cfg = self.optim_config
        if cfg.schedule != "onecycle":
            raise InputError("DeepWAS trains with the OneCycle schedule; set optim.schedule: onecycle")
        decay, no_decay = [], []
        for p in self.parameters():
            if p.requires_grad:
                (decay if p.dim() >= 2 else no_decay).append(p)
        groups = [{"params": decay, "weight_decay": self.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr / cfg.div_factor,
                                betas=tuple(cfg.betas))
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.lr, total_steps=cfg.n_steps, pct_start=cfg.pct_start,
            div_factor=cfg.div_factor, final_div_factor=cfg.final_div_factor,
            anneal_strategy="cos", cycle_momentum=False)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}
