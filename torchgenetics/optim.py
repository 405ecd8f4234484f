"""Optimisation recipes shared by the Pyro models: OneCycleLR, SVI loops, early stopping.

Pyro's :class:`~pyro.optim.PyroLRScheduler` only moves the learning rate when its
``step()`` is called; :func:`run_svi` calls it after **every** SVI iteration, so a
OneCycle schedule really warms up to ``max_lr`` and anneals to
``max_lr / (div_factor * final_div_factor)``. The loop records the loss and the
learning rate of each step, shows a tqdm bar when ``verbose=True``, clips
gradients through Pyro's ``clip_args`` and stops early once an exponentially
smoothed loss has stopped improving (:class:`EarlyStopping`).

Examples
--------
>>> import torch, pyro, pyro.distributions as dist
>>> from pyro.infer.autoguide import AutoNormal
>>> def model():
...     pyro.sample("m", dist.Normal(torch.tensor(0.0), 1.0))
>>> cfg = OptimConfig(n_steps=20, lr=0.05, early_stopping=False)
>>> with pyro.get_param_store().scope():
...     run = fit_svi(model, AutoNormal(model), cfg)
>>> run.n_steps, len(run.lrs)
(20, 20)
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable

import numpy as np
import pyro
import pyro.optim
import torch
from pyro.infer import SVI, Trace_ELBO
from tqdm.auto import tqdm

from .errors import ConvergenceError, InputError

__all__ = [
    "OptimConfig",
    "EarlyStopping",
    "SVIRun",
    "one_cycle",
    "constant_adam",
    "make_optimizer",
    "current_lr",
    "one_cycle_lrs",
    "run_svi",
    "fit_svi",
    "as_config",
]

SCHEDULES = ("onecycle", "constant")


@dataclass
class OptimConfig:
    """Settings of one SVI fit: schedule, clipping, early stopping, progress.

    Parameters
    ----------
    n_steps : int, default 2000
        Maximum number of SVI steps (and ``total_steps`` of the OneCycle schedule).
    lr : float, default 0.01
        Peak learning rate (``max_lr``) for ``"onecycle"``, the fixed rate for ``"constant"``.
    schedule : {"onecycle", "constant"}
        Learning-rate schedule.
    pct_start : float, default 0.1
        Fraction of the steps spent warming up.
    div_factor : float, default 25
        Initial rate is ``lr / div_factor``.
    final_div_factor : float, default 1e4
        Final rate is ``lr / (div_factor * final_div_factor)``.
    betas : tuple of float, default (0.9, 0.999)
        Adam's moment decay rates (kept fixed: no momentum cycling).
    clip_norm : float or None, default 10
        Clip each parameter's gradient to this norm (None: no clipping).
    early_stopping : bool, default True
        Stop once the smoothed loss has stopped improving.
    patience : int, default 200
        Steps without a relative improvement of ``rel_tol`` before stopping.
    rel_tol : float, default 1e-4
        Relative improvement of the smoothed loss that counts as progress.
    smoothing : float, default 0.05
        Weight of the newest loss in the exponential moving average.
    min_steps : int or None
        Never stop before this step. Default: for OneCycle, the step at which the
        rate has annealed to 10% of its peak (stopping earlier keeps the noisy
        high-rate estimate and skips the annealing); 0 for a constant rate.
    num_particles : int, default 1
        ELBO particles per step.
    verbose : bool, default False
        Show a tqdm progress bar.

    Examples
    --------
    >>> OptimConfig(n_steps=500, lr=0.02).warmup_steps
    50
    >>> OptimConfig.from_dict({"n_steps": 10, "schedule": "constant"}).schedule
    'constant'
    """

    n_steps: int = 2000
    lr: float = 0.01
    schedule: str = "onecycle"
    pct_start: float = 0.1
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    betas: tuple = (0.9, 0.999)
    clip_norm: float | None = 10.0
    early_stopping: bool = True
    patience: int = 200
    rel_tol: float = 1e-4
    smoothing: float = 0.05
    min_steps: int | None = None
    num_particles: int = 1
    verbose: bool = False

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise InputError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if int(self.n_steps) < 1:
            raise InputError(f"n_steps must be >= 1, got {self.n_steps}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise InputError(f"lr must be a positive number, got {self.lr}")
        if not (0 < self.pct_start < 1):
            raise InputError(f"pct_start must be in (0, 1), got {self.pct_start}")
        if self.div_factor <= 0 or self.final_div_factor <= 0:
            raise InputError("div_factor and final_div_factor must be positive")
        if not (0 < self.smoothing <= 1):
            raise InputError(f"smoothing must be in (0, 1], got {self.smoothing}")
        if self.clip_norm is not None and self.clip_norm <= 0:
            raise InputError(f"clip_norm must be positive or None, got {self.clip_norm}")
        self.n_steps = int(self.n_steps)
        if self.schedule == "onecycle" and self.pct_start * self.n_steps <= 1:
            raise InputError(
                f"a OneCycle schedule needs more than one warm-up step: n_steps * pct_start = "
                f"{self.n_steps} * {self.pct_start} <= 1; raise n_steps or pct_start"
            )
        self.betas = tuple(float(b) for b in self.betas)

    @property
    def warmup_steps(self) -> int:
        """Steps of the OneCycle warm-up (0 for a constant rate).

        Examples
        --------
        >>> OptimConfig(n_steps=100, schedule="constant").warmup_steps
        0
        """
        if self.schedule != "onecycle":
            return 0
        return int(round(self.pct_start * self.n_steps))

    @classmethod
    def from_dict(cls, values: dict | None = None, **overrides) -> "OptimConfig":
        """Build a config from a mapping (e.g. a YAML section), naming unknown keys.

        Parameters
        ----------
        values : dict, optional
            Field values.
        **overrides
            Field values that win over ``values``.

        Returns
        -------
        OptimConfig

        Raises
        ------
        InputError
            On a key that is not a field.

        Examples
        --------
        >>> OptimConfig.from_dict({"lr": 0.1}, n_steps=50).n_steps
        50
        """
        merged = dict(values or {})
        merged.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(merged) - known)
        if unknown:
            raise InputError(f"unknown optimiser setting(s) {unknown}; known: {sorted(known)}")
        return cls(**merged)

    def to_dict(self) -> dict:
        """The settings as a plain dict (for saving with a result).

        Examples
        --------
        >>> OptimConfig().to_dict()["schedule"]
        'onecycle'
        """
        out = asdict(self)
        out["betas"] = list(self.betas)
        return out

    def stopper(self) -> "EarlyStopping | None":
        """The :class:`EarlyStopping` this config asks for (None when disabled).

        Examples
        --------
        >>> OptimConfig(n_steps=1000).stopper().min_steps
        816
        >>> OptimConfig(n_steps=1000, schedule="constant").stopper().min_steps
        0
        """
        if not self.early_stopping:
            return None
        if self.min_steps is not None:
            min_steps = int(self.min_steps)
        elif self.schedule == "onecycle":
            lrs = one_cycle_lrs(self)
            peak = int(np.argmax(lrs))
            min_steps = peak + int(np.argmax(lrs[peak:] <= 0.1 * self.lr)) + 1
        else:
            min_steps = 0
        return EarlyStopping(
            patience=self.patience, rel_tol=self.rel_tol, smoothing=self.smoothing, min_steps=min_steps
        )


class EarlyStopping:
    """Stop when an exponentially smoothed loss has stopped improving.

    The loss is smoothed by a bias-corrected exponential moving average. The best
    smoothed value is remembered; a step counts as progress only when it beats the
    best by more than ``rel_tol * |best| + abs_tol``. After ``patience`` steps
    without progress (and not before ``min_steps``) :meth:`update` returns True.
    Noise alone cannot keep resetting the counter, so the rule fires on a plateau.

    Parameters
    ----------
    patience : int, default 200
        Steps without progress before stopping.
    rel_tol : float, default 1e-4
        Relative improvement that counts as progress.
    smoothing : float, default 0.05
        Weight of the newest loss in the moving average.
    min_steps : int, default 0
        Earliest step at which stopping is allowed.
    abs_tol : float, default 0
        Absolute improvement added to the relative one.

    Examples
    --------
    >>> stop = EarlyStopping(patience=3, rel_tol=1e-3, smoothing=1.0)
    >>> [stop.update(v) for v in [10.0, 5.0, 5.0, 5.0, 5.0]]
    [False, False, False, False, True]
    """

    def __init__(
        self,
        patience: int = 200,
        rel_tol: float = 1e-4,
        smoothing: float = 0.05,
        min_steps: int = 0,
        abs_tol: float = 0.0,
    ):
        if patience < 1:
            raise InputError(f"patience must be >= 1, got {patience}")
        if not (0 < smoothing <= 1):
            raise InputError(f"smoothing must be in (0, 1], got {smoothing}")
        if rel_tol < 0 or abs_tol < 0:
            raise InputError("rel_tol and abs_tol must be >= 0")
        self.patience = int(patience)
        self.rel_tol = float(rel_tol)
        self.abs_tol = float(abs_tol)
        self.smoothing = float(smoothing)
        self.min_steps = int(min_steps)
        self.step = 0
        self.wait = 0
        self.best = math.inf
        self.smoothed = math.nan
        self.stopped_at: int | None = None
        self._ewma = 0.0

    def update(self, loss: float) -> bool:
        """Take one loss; return True when training should stop.

        Parameters
        ----------
        loss : float
            The newest loss.

        Returns
        -------
        bool
            Whether the plateau rule fired at this step.

        Examples
        --------
        >>> EarlyStopping(patience=1, min_steps=5).update(1.0)
        False
        """
        self.step += 1
        a = self.smoothing
        self._ewma = (1 - a) * self._ewma + a * float(loss)
        self.smoothed = self._ewma / (1 - (1 - a) ** self.step)
        if self.best - self.smoothed > self.rel_tol * abs(self.best) + self.abs_tol or not math.isfinite(self.best):
            self.best = self.smoothed
            self.wait = 0
        else:
            self.wait += 1
        if self.wait >= self.patience and self.step >= self.min_steps:
            self.stopped_at = self.step
            return True
        return False


@dataclass
class SVIRun:
    """What an SVI loop did: losses, learning rates, time, whether it stopped early.

    Attributes
    ----------
    losses : numpy.ndarray
        Loss (negative ELBO estimate) of each step.
    lrs : numpy.ndarray
        Learning rate used at each step.
    n_steps : int
        Steps taken.
    stopped_early : bool
        Whether :class:`EarlyStopping` ended the loop.
    seconds : float
        Wall time of the loop.
    smoothed_loss : float
        Final smoothed loss (NaN without early stopping).

    Examples
    --------
    >>> run = SVIRun(np.ones(3), np.full(3, 0.1), 3, False, 0.5)
    >>> run.steps_per_second
    6.0
    """

    losses: np.ndarray
    lrs: np.ndarray
    n_steps: int
    stopped_early: bool
    seconds: float
    smoothed_loss: float = math.nan

    @property
    def steps_per_second(self) -> float:
        """SVI steps per second of wall time.

        Examples
        --------
        >>> SVIRun(np.ones(4), np.ones(4), 4, False, 2.0).steps_per_second
        2.0
        """
        return self.n_steps / self.seconds if self.seconds > 0 else math.inf

    def to_dict(self) -> dict:
        """Plain dict for saving.

        Examples
        --------
        >>> sorted(SVIRun(np.ones(1), np.ones(1), 1, False, 1.0).to_dict())[:2]
        ['losses', 'lrs']
        """
        return {
            "losses": np.asarray(self.losses, dtype=np.float64),
            "lrs": np.asarray(self.lrs, dtype=np.float64),
            "n_steps": int(self.n_steps),
            "stopped_early": bool(self.stopped_early),
            "seconds": float(self.seconds),
            "smoothed_loss": float(self.smoothed_loss),
        }

    @classmethod
    def from_dict(cls, values: dict) -> "SVIRun":
        """Inverse of :meth:`to_dict`.

        Examples
        --------
        >>> SVIRun.from_dict(SVIRun(np.ones(1), np.ones(1), 1, True, 1.0).to_dict()).stopped_early
        True
        """
        return cls(
            losses=np.asarray(values["losses"], dtype=np.float64),
            lrs=np.asarray(values["lrs"], dtype=np.float64),
            n_steps=int(values["n_steps"]),
            stopped_early=bool(values["stopped_early"]),
            seconds=float(values["seconds"]),
            smoothed_loss=float(values.get("smoothed_loss", math.nan)),
        )


def one_cycle(
    max_lr: float,
    total_steps: int,
    pct_start: float = 0.1,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    betas=(0.9, 0.999),
    clip_norm: float | None = 10.0,
) -> pyro.optim.PyroLRScheduler:
    """Adam under a OneCycle learning-rate schedule, as a Pyro optimiser.

    The rate starts at ``max_lr / div_factor``, rises (cosine) to ``max_lr`` over
    ``pct_start * total_steps`` steps, then anneals to
    ``max_lr / (div_factor * final_div_factor)``. The scheduler moves only when its
    ``step()`` is called: use :func:`run_svi`, which calls it every iteration.

    Parameters
    ----------
    max_lr : float
        Peak learning rate.
    total_steps : int
        Length of the schedule in SVI steps.
    pct_start, div_factor, final_div_factor : float
        As in :class:`torch.optim.lr_scheduler.OneCycleLR`.
    betas : tuple of float
        Adam's betas (kept fixed: momentum is not cycled).
    clip_norm : float or None
        Per-parameter gradient-norm clip.

    Returns
    -------
    pyro.optim.PyroLRScheduler

    Examples
    --------
    >>> opt = one_cycle(0.01, total_steps=100)
    >>> type(opt).__name__
    'PyroLRScheduler'
    """
    optim_args = {
        "optimizer": torch.optim.Adam,
        "optim_args": {"lr": max_lr / div_factor, "betas": tuple(betas)},
        "max_lr": max_lr,
        "total_steps": int(total_steps),
        "pct_start": pct_start,
        "div_factor": div_factor,
        "final_div_factor": final_div_factor,
        "anneal_strategy": "cos",
        "cycle_momentum": False,
    }
    clip = None if clip_norm is None else {"clip_norm": float(clip_norm)}
    return pyro.optim.PyroLRScheduler(torch.optim.lr_scheduler.OneCycleLR, optim_args, clip_args=clip)


def constant_adam(lr: float, betas=(0.9, 0.999), clip_norm: float | None = 10.0) -> pyro.optim.PyroOptim:
    """Adam with a fixed learning rate and gradient clipping, as a Pyro optimiser.

    Parameters
    ----------
    lr : float
        Learning rate.
    betas : tuple of float
        Adam's betas.
    clip_norm : float or None
        Per-parameter gradient-norm clip.

    Returns
    -------
    pyro.optim.PyroOptim

    Examples
    --------
    >>> type(constant_adam(0.01)).__name__
    'PyroOptim'
    """
    clip = None if clip_norm is None else {"clip_norm": float(clip_norm)}
    return pyro.optim.Adam({"lr": lr, "betas": tuple(betas)}, clip_args=clip)


def make_optimizer(config: OptimConfig) -> pyro.optim.PyroOptim:
    """The Pyro optimiser a config describes.

    Parameters
    ----------
    config : OptimConfig

    Returns
    -------
    pyro.optim.PyroOptim
        :func:`one_cycle` or :func:`constant_adam`.

    Examples
    --------
    >>> type(make_optimizer(OptimConfig(schedule="constant"))).__name__
    'PyroOptim'
    """
    if config.schedule == "onecycle":
        return one_cycle(
            config.lr,
            config.n_steps,
            pct_start=config.pct_start,
            div_factor=config.div_factor,
            final_div_factor=config.final_div_factor,
            betas=config.betas,
            clip_norm=config.clip_norm,
        )
    return constant_adam(config.lr, betas=config.betas, clip_norm=config.clip_norm)


def current_lr(optim: pyro.optim.PyroOptim) -> float:
    """Learning rate the optimiser applies now (NaN before its first step).

    Parameters
    ----------
    optim : pyro.optim.PyroOptim
        A plain or scheduled Pyro optimiser.

    Returns
    -------
    float

    Examples
    --------
    >>> math.isnan(current_lr(constant_adam(0.01)))
    True
    """
    for obj in optim.optim_objs.values():
        if isinstance(obj, torch.optim.lr_scheduler.LRScheduler):
            return float(obj.get_last_lr()[0])
        return float(obj.param_groups[0]["lr"])
    return math.nan


def one_cycle_lrs(config: OptimConfig) -> np.ndarray:
    """The learning rate of every step of a OneCycle config, without training.

    Parameters
    ----------
    config : OptimConfig
        A ``schedule="onecycle"`` config.

    Returns
    -------
    numpy.ndarray
        ``n_steps`` rates.

    Examples
    --------
    >>> r = one_cycle_lrs(OptimConfig(n_steps=20, lr=1.0, div_factor=10, final_div_factor=100))
    >>> round(float(r[0]), 6), float(r.max()), round(float(r[-1]), 6)
    (0.1, 1.0, 0.001)
    """
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([param], lr=config.lr / config.div_factor)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=config.lr,
        total_steps=config.n_steps,
        pct_start=config.pct_start,
        div_factor=config.div_factor,
        final_div_factor=config.final_div_factor,
        cycle_momentum=False,
    )
    out = []
    for _ in range(config.n_steps):
        out.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return np.asarray(out)


def run_svi(
    model: Callable,
    guide: Callable,
    optim: pyro.optim.PyroOptim,
    n_steps: int,
    *,
    loss=None,
    args: tuple = (),
    kwargs: dict | None = None,
    step_kwargs: Callable[[int], dict] | None = None,
    early_stopping: EarlyStopping | None = None,
    verbose: bool = False,
    desc: str = "SVI",
) -> SVIRun:
    """Run SVI for up to ``n_steps`` steps, stepping any LR scheduler every step.

    Parameters
    ----------
    model, guide : callable
        Pyro model and guide taking the same arguments.
    optim : pyro.optim.PyroOptim
        Optimiser; a :class:`~pyro.optim.PyroLRScheduler` is stepped after each SVI step.
    n_steps : int
        Maximum number of steps.
    loss : pyro.infer.ELBO, optional
        Default :class:`~pyro.infer.Trace_ELBO`.
    args : tuple
        Positional arguments of model and guide.
    kwargs : dict, optional
        Keyword arguments of model and guide.
    step_kwargs : callable, optional
        ``step_kwargs(i)`` returns extra keyword arguments for step ``i`` (e.g. an
        annealed temperature).
    early_stopping : EarlyStopping, optional
        Plateau rule; None runs all steps.
    verbose : bool
        Show a tqdm bar with the smoothed loss and learning rate.
    desc : str
        Label of the progress bar.

    Returns
    -------
    SVIRun

    Raises
    ------
    ConvergenceError
        If the loss becomes NaN or infinite (the step is named).

    Examples
    --------
    >>> import pyro.distributions as dist
    >>> from pyro.infer.autoguide import AutoNormal
    >>> def model():
    ...     pyro.sample("m", dist.Normal(torch.tensor(0.0), 1.0))
    >>> with pyro.get_param_store().scope():
    ...     run = run_svi(model, AutoNormal(model), one_cycle(0.05, 30), 30)
    >>> run.n_steps
    30
    """
    kwargs = dict(kwargs or {})
    svi = SVI(model, guide, optim, loss=Trace_ELBO() if loss is None else loss)
    scheduled = isinstance(optim, pyro.optim.PyroLRScheduler)
    losses, lrs = [], []
    stopped = False
    start = time.perf_counter()
    bar = tqdm(range(n_steps), desc=desc, disable=not verbose, leave=False)
    for i in bar:
        extra = step_kwargs(i) if step_kwargs is not None else {}
        value = float(svi.step(*args, **kwargs, **extra))
        if not math.isfinite(value):
            bar.close()
            raise ConvergenceError(
                f"SVI loss became {value} at step {i + 1}; lower the learning rate (lr) or "
                "check the data for extreme values"
            )
        losses.append(value)
        lrs.append(current_lr(optim))
        if scheduled:
            optim.step()
        if verbose and (i % 25 == 0 or i == n_steps - 1):
            shown = early_stopping.smoothed if early_stopping is not None else value
            bar.set_postfix(loss=f"{shown:.4g}", lr=f"{lrs[-1]:.2e}")
        if early_stopping is not None and early_stopping.update(value):
            stopped = True
            break
    bar.close()
    seconds = time.perf_counter() - start
    smoothed = early_stopping.smoothed if early_stopping is not None else math.nan
    return SVIRun(np.asarray(losses), np.asarray(lrs), len(losses), stopped, seconds, smoothed)


def fit_svi(
    model: Callable,
    guide: Callable,
    config: OptimConfig,
    *,
    args: tuple = (),
    kwargs: dict | None = None,
    step_kwargs: Callable[[int], dict] | None = None,
    desc: str = "SVI",
    loss=None,
) -> SVIRun:
    """Run SVI with the optimiser, clipping, early stopping and progress a config asks for.

    Parameters
    ----------
    model, guide : callable
        Pyro model and guide.
    config : OptimConfig
        Settings.
    args, kwargs, step_kwargs, desc, loss
        As in :func:`run_svi`; ``loss`` defaults to ``Trace_ELBO(num_particles=config.num_particles)``.

    Returns
    -------
    SVIRun

    Examples
    --------
    >>> import pyro.distributions as dist
    >>> from pyro.infer.autoguide import AutoNormal
    >>> def model():
    ...     pyro.sample("m", dist.Normal(torch.tensor(1.0), 1.0))
    >>> with pyro.get_param_store().scope():
    ...     run = fit_svi(model, AutoNormal(model), OptimConfig(n_steps=40, early_stopping=False))
    >>> float(run.lrs[-1]) < float(run.lrs.max())
    True
    """
    loss = Trace_ELBO(num_particles=config.num_particles) if loss is None else loss
    return run_svi(
        model,
        guide,
        make_optimizer(config),
        config.n_steps,
        loss=loss,
        args=args,
        kwargs=kwargs,
        step_kwargs=step_kwargs,
        early_stopping=config.stopper(),
        verbose=config.verbose,
        desc=desc,
    )


def as_config(config: Any = None, **overrides) -> OptimConfig:
    """An :class:`OptimConfig` from None, a dict or a config, with keyword overrides.

    Parameters
    ----------
    config : OptimConfig or dict or None
        Base settings.
    **overrides
        Settings that win (None values are ignored).

    Returns
    -------
    OptimConfig

    Examples
    --------
    >>> as_config({"lr": 0.1}, n_steps=70).n_steps
    70
    """
    if isinstance(config, OptimConfig):
        base = config.to_dict()
    elif config is None:
        base = {}
    elif isinstance(config, dict):
        base = dict(config)
    else:
        raise InputError(f"config must be an OptimConfig or a dict, got {type(config).__name__}")
    return OptimConfig.from_dict(base, **overrides)
