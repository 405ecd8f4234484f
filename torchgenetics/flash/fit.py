"""``FlashFit``: the result of a flash fit, its summaries, and HDF5 save/load.

A fit keeps the full variational state (posterior first and second moments of
loadings and factors, fitted priors, KL terms, residual precisions), so it is a
warm start for any further step, in memory or after :meth:`FlashFit.load`.
The data it was fitted on travel with a fit in memory (for ``fitted()``,
``residuals()`` and further steps) but are not saved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import pandas as pd
import torch

from ..ebnm import prior_from_dict
from ..errors import InputError
from .data import FlashData

__all__ = ["FlashFit"]

_FORMAT = "FlashFit"
_HISTORY_COLUMNS = ["step", "iteration", "factor", "elbo", "time", "method"]


def _empty_history() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64" if c in ("elbo", "time") else "int64" if c in ("iteration", "factor") else "object") for c in _HISTORY_COLUMNS})


@dataclass
class FlashFit:
    """A flash (empirical Bayes matrix factorization) fit ``Y ~ L F^T + E``.

    Attributes
    ----------
    L_pm, F_pm : torch.Tensor
        ``(n, K)`` / ``(p, K)`` posterior means of loadings and factors.
    L_pm2, F_pm2 : torch.Tensor
        Posterior second moments.
    L_lfsr, F_lfsr : torch.Tensor
        Local false sign rates (NaN for fixed modes).
    L_ghat, F_ghat : list
        Fitted prior of each factor (a batch-of-one :class:`~torchgenetics.ebnm.Prior`, or ``None``).
    kl : torch.Tensor
        ``(K, 2)`` KL divergence of each factor's posterior from its prior.
    priors : list of tuple
        ``(loadings spec, factors spec)`` prior family of each factor.
    fixed : torch.Tensor
        ``(K, 2)`` booleans: loadings / factors held fixed.
    tau : torch.Tensor
        Residual precisions, broadcastable to ``(n, p)``.
    sigma2 : torch.Tensor or None
        Variance estimated on top of given standard errors.
    var_type : int or None
        Residual variance structure.
    elbo : float
        Evidence lower bound of the current state.
    history : pandas.DataFrame
        One row per iteration: ``step``, ``iteration``, ``factor``, ``elbo``,
        ``time`` (seconds since the first step), ``method``.
    tol : float
        Convergence tolerance used (default ``n p sqrt(eps)``).
    converged : bool or None
        Whether the last backfit converged (``None`` before any backfit).
    backfit_info : dict
        Method, iterations and any fall-back of the last backfit.
    seed : int
        Seed of the greedy initialisations.
    row_names, col_names : list or None
        Labels of rows and columns.

    Examples
    --------
    >>> import torchgenetics.flash as fl
    >>> g = torch.Generator().manual_seed(0)
    >>> Y = torch.randn(40, 1, generator=g, dtype=torch.float64) @ torch.randn(1, 30, generator=g, dtype=torch.float64)
    >>> fit = fl.flash(Y + 0.1 * torch.randn(40, 30, generator=g, dtype=torch.float64))
    >>> fit.n_factors
    1
    """

    L_pm: torch.Tensor
    F_pm: torch.Tensor
    L_pm2: torch.Tensor
    F_pm2: torch.Tensor
    L_lfsr: torch.Tensor
    F_lfsr: torch.Tensor
    L_ghat: list
    F_ghat: list
    kl: torch.Tensor
    priors: list
    fixed: torch.Tensor
    tau: torch.Tensor
    sigma2: torch.Tensor | None
    var_type: int | None
    elbo: float
    history: pd.DataFrame = field(default_factory=_empty_history)
    tol: float = math.nan
    converged: bool | None = None
    backfit_info: dict = field(default_factory=dict)
    seed: int = 0
    row_names: list | None = None
    col_names: list | None = None
    data: FlashData | None = field(default=None, repr=False, compare=False)

    # ---- sizes and summaries --------------------------------------------------
    @property
    def n_factors(self) -> int:
        """Number of factors ``K``.

        Examples
        --------
        >>> _toy().n_factors
        1
        """
        return int(self.L_pm.shape[1])

    @property
    def shape(self) -> tuple[int, int]:
        """``(n, p)`` of the data.

        Examples
        --------
        >>> _toy().shape
        (20, 15)
        """
        return int(self.L_pm.shape[0]), int(self.F_pm.shape[0])

    @property
    def L_psd(self) -> torch.Tensor:
        """Posterior standard deviations of the loadings.

        Examples
        --------
        >>> _toy().L_psd.shape
        torch.Size([20, 1])
        """
        return torch.sqrt(torch.clamp(self.L_pm2 - self.L_pm**2, min=0.0))

    @property
    def F_psd(self) -> torch.Tensor:
        """Posterior standard deviations of the factors.

        Examples
        --------
        >>> bool((_toy().F_psd >= 0).all())
        True
        """
        return torch.sqrt(torch.clamp(self.F_pm2 - self.F_pm**2, min=0.0))

    @property
    def residuals_sd(self) -> torch.Tensor:
        """Residual standard deviations ``tau^{-1/2}`` (scalar, per row, per column or per entry).

        Examples
        --------
        >>> _toy().residuals_sd.ndim
        0
        """
        sd = torch.rsqrt(self.tau)
        if sd.ndim == 2 and sd.shape[1] == 1:
            return sd[:, 0]
        if sd.ndim == 2 and sd.shape[0] == 1:
            return sd[0]
        return sd

    @property
    def pve(self) -> torch.Tensor:
        """Proportion of variance explained by each factor (flashier's definition).

        ``S_k / (sum_k S_k + sum_ij 1/tau_ij)`` with ``S_k = sum_i E l_ik^2 sum_j E f_jk^2``.

        Examples
        --------
        >>> float(_toy().pve.sum()) < 1
        True
        """
        S = self.L_pm2.sum(0) * self.F_pm2.sum(0)
        n, p = self.shape
        noise = torch.broadcast_to(1.0 / self.tau, (n, p))
        if self.data is not None and self.data.mask is not None:
            noise = noise * self.data.mask
        return S / (S.sum() + noise.sum())

    def fitted(self) -> torch.Tensor:
        """Posterior mean of ``L F^T``.

        Examples
        --------
        >>> _toy().fitted().shape
        torch.Size([20, 15])
        """
        return self.L_pm @ self.F_pm.T

    def residuals(self, Y=None) -> torch.Tensor:
        """``Y - L F^T`` (NaN where ``Y`` is missing); ``Y`` defaults to the fitted data.

        Examples
        --------
        >>> _toy().residuals().shape
        torch.Size([20, 15])
        """
        if Y is None:
            if self.data is None:
                raise InputError("this fit carries no data (it was loaded from a file); pass Y to residuals()")
            Y = self.data.Y if self.data.mask is None else torch.where(self.data.mask > 0, self.data.Y, float("nan"))
        Y = torch.as_tensor(Y, dtype=self.L_pm.dtype, device=self.L_pm.device)
        if tuple(Y.shape) != self.shape:
            raise InputError(f"Y has shape {tuple(Y.shape)} but the fit is {self.shape}")
        return Y - self.fitted()

    def summary(self) -> pd.DataFrame:
        """One row per factor: PVE, prior families, fitted prior parameters, fixed modes.

        Examples
        --------
        >>> list(_toy().summary().columns)[:3]
        ['factor', 'pve', 'loadings_prior']
        """
        rows = []
        pve = self.pve
        for k in range(self.n_factors):
            rows.append(
                {
                    "factor": k,
                    "pve": float(pve[k]),
                    "loadings_prior": self.priors[k][0]["family"],
                    "factors_prior": self.priors[k][1]["family"],
                    "loadings_g": None if self.L_ghat[k] is None else str(self.L_ghat[k].params()),
                    "factors_g": None if self.F_ghat[k] is None else str(self.F_ghat[k].params()),
                    "loadings_fixed": bool(self.fixed[k, 0]),
                    "factors_fixed": bool(self.fixed[k, 1]),
                }
            )
        return pd.DataFrame(rows, columns=["factor", "pve", "loadings_prior", "factors_prior", "loadings_g", "factors_g", "loadings_fixed", "factors_fixed"])

    def priors_frame(self) -> pd.DataFrame:
        """Fitted priors as a long table: one row per factor, mode and parameter.

        Examples
        --------
        >>> sorted(set(_toy().priors_frame()["mode"]))
        ['factors', 'loadings']
        """
        rows = []
        for k in range(self.n_factors):
            for mode, ghat in (("loadings", self.L_ghat[k]), ("factors", self.F_ghat[k])):
                if ghat is None:
                    rows.append({"factor": k, "mode": mode, "family": "fixed" if self.fixed[k, 0 if mode == "loadings" else 1] else "none", "parameter": "", "component": -1, "value": math.nan})
                    continue
                for name, value in ghat.params().items():
                    if name == "family":
                        continue
                    values = value if isinstance(value, list) else [value]
                    for c, v in enumerate(values):
                        rows.append({"factor": k, "mode": mode, "family": ghat.family, "parameter": name, "component": c if isinstance(value, list) else -1, "value": v})
        return pd.DataFrame(rows, columns=["factor", "mode", "family", "parameter", "component", "value"])

    def frames(self) -> dict[str, pd.DataFrame]:
        """Tables of loadings and factors (posterior mean, sd, lfsr), labelled by row/column names.

        Examples
        --------
        >>> sorted(_toy().frames())
        ['factors', 'loadings']
        """
        out = {}
        for name, pm, psd, lfsr, labels in (
            ("loadings", self.L_pm, self.L_psd, self.L_lfsr, self.row_names),
            ("factors", self.F_pm, self.F_psd, self.F_lfsr, self.col_names),
        ):
            index = pd.Index(labels if labels is not None else [str(i) for i in range(pm.shape[0])], name="name")
            cols = {}
            for k in range(self.n_factors):
                cols[f"pm{k + 1}"] = pm[:, k].detach().cpu().numpy()
                cols[f"psd{k + 1}"] = psd[:, k].detach().cpu().numpy()
                cols[f"lfsr{k + 1}"] = lfsr[:, k].detach().cpu().numpy()
            out[name] = pd.DataFrame(cols, index=index)
        return out

    # ---- persistence ----------------------------------------------------------
    def to_dict(self) -> dict:
        """Everything needed to resume, as a nested dict for :func:`~torchgenetics.io.save_h5`.

        Examples
        --------
        >>> sorted(_toy().to_dict())[:3]
        ['F_ghat', 'F_lfsr', 'F_pm']
        """
        ghat = lambda gs: [{} if g is None else g.to_dict() for g in gs]  # noqa: E731
        return {
            "L_pm": self.L_pm, "F_pm": self.F_pm, "L_pm2": self.L_pm2, "F_pm2": self.F_pm2,
            "L_lfsr": self.L_lfsr, "F_lfsr": self.F_lfsr,
            "L_ghat": ghat(self.L_ghat), "F_ghat": ghat(self.F_ghat),
            "kl": self.kl, "priors": [[dict(a), dict(b)] for a, b in self.priors],
            "fixed": self.fixed, "tau": self.tau, "sigma2": self.sigma2,
            "var_type": -1 if self.var_type is None else int(self.var_type),
            "elbo": float(self.elbo), "history": self.history.reset_index(drop=True),
            "tol": float(self.tol), "converged": -1 if self.converged is None else int(self.converged),
            "backfit_info": dict(self.backfit_info), "seed": int(self.seed),
            "row_names": self.row_names, "col_names": self.col_names,
        }

    def save(self, path) -> None:
        """Write the fit to an HDF5 file (format ``"FlashFit"``); the data are not saved.

        Examples
        --------
        >>> import tempfile, os
        >>> f = os.path.join(tempfile.mkdtemp(), "fit.h5")
        >>> _toy().save(f)
        >>> FlashFit.load(f).n_factors
        1
        """
        from ..io.store import save_h5

        save_h5(path, self.to_dict(), format_name=_FORMAT)

    @classmethod
    def load(cls, path) -> FlashFit:
        """Read a fit written by :meth:`save` (warm-start it with ``flash(Y, init=fit)``).

        Examples
        --------
        >>> import tempfile, os
        >>> f = os.path.join(tempfile.mkdtemp(), "fit.h5")
        >>> _toy().save(f)
        >>> FlashFit.load(f).var_type
        0
        """
        from ..io.store import load_h5

        d = load_h5(path, format_name=_FORMAT)
        ghat = lambda gs: [None if not g else prior_from_dict(g) for g in gs]  # noqa: E731
        history = d["history"]
        return cls(
            L_pm=d["L_pm"], F_pm=d["F_pm"], L_pm2=d["L_pm2"], F_pm2=d["F_pm2"],
            L_lfsr=d["L_lfsr"], F_lfsr=d["F_lfsr"],
            L_ghat=ghat(d["L_ghat"]), F_ghat=ghat(d["F_ghat"]),
            kl=d["kl"], priors=[(a, b) for a, b in d["priors"]], fixed=d["fixed"], tau=d["tau"],
            sigma2=d["sigma2"], var_type=None if d["var_type"] == -1 else d["var_type"],
            elbo=d["elbo"], history=history if len(history.columns) else _empty_history(),
            tol=d["tol"], converged=None if d["converged"] == -1 else bool(d["converged"]),
            backfit_info=d["backfit_info"], seed=d["seed"],
            row_names=d["row_names"], col_names=d["col_names"],
        )

    def with_data(self, data: FlashData) -> FlashFit:
        """The same fit attached to ``data`` (shapes must agree).

        Examples
        --------
        >>> fit = _toy()
        >>> fit.with_data(fit.data).data is fit.data
        True
        """
        if (data.n, data.p) != self.shape:
            raise InputError(f"the data are {data.n} x {data.p} but the fit is {self.shape[0]} x {self.shape[1]}")
        return replace(self, data=data)

    # ---- pipeable steps -------------------------------------------------------
    def greedy(self, *args, **kwargs) -> FlashFit:
        """:func:`torchgenetics.flash.greedy` on this fit.

        Examples
        --------
        >>> _toy().greedy(K_max=2).n_factors
        1
        """
        from . import steps

        return steps.greedy(self, *args, **kwargs)

    def backfit(self, *args, **kwargs) -> FlashFit:
        """:func:`torchgenetics.flash.backfit` on this fit.

        Examples
        --------
        >>> _toy().backfit(method="parallel").converged
        True
        """
        from . import steps

        return steps.backfit(self, *args, **kwargs)

    def nullcheck(self, *args, **kwargs) -> FlashFit:
        """:func:`torchgenetics.flash.nullcheck` on this fit.

        Examples
        --------
        >>> _toy().nullcheck().n_factors
        1
        """
        from . import steps

        return steps.nullcheck(self, *args, **kwargs)

    def fix_factors(self, *args, **kwargs) -> FlashFit:
        """:func:`torchgenetics.flash.fix_factors` on this fit.

        Examples
        --------
        >>> _toy().fix_factors([0], mode=0).fixed.tolist()
        [[True, False]]
        """
        from . import steps

        return steps.fix_factors(self, *args, **kwargs)

    def remove(self, *args, **kwargs) -> FlashFit:
        """:func:`torchgenetics.flash.remove` on this fit.

        Examples
        --------
        >>> _toy().remove([0]).n_factors
        0
        """
        from . import steps

        return steps.remove(self, *args, **kwargs)


def _toy() -> FlashFit:
    """A small rank-one fit used in the examples."""
    from .api import flash

    g = torch.Generator().manual_seed(0)
    Y = torch.randn(20, 1, generator=g, dtype=torch.float64) @ torch.randn(1, 15, generator=g, dtype=torch.float64)
    return flash(Y + 0.1 * torch.randn(20, 15, generator=g, dtype=torch.float64))
