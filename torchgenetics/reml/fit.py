"""``REMLFit``: variance components, heritabilities and their standard errors.

Heritability uses trace-weighted denominators so kernels whose mean diagonal is
not 1 are handled: with ``t_g = tr(K_g) / n``,
``Vp = sum_k s2_k t_k + s2_e``, ``h2_g = s2_g t_g / Vp`` and ``h2 = sum_g h2_g``.
Standard errors come from the inverse average information (delta method for h2
and Vp); a stochastic fit also carries Monte Carlo standard errors (the spread the
estimates would have over probe draws).
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields

import pandas as pd
import torch

from ..errors import InputError
from ..io.store import load_h5, save_h5

__all__ = ["REMLFit", "derived"]

_FORMAT = "REMLFit"


def _jacobians(theta: torch.Tensor, t: torch.Tensor):
    """Values and Jacobians (w.r.t. theta) of h2_g, total h2 and Vp."""
    G = t.numel()
    tt = torch.cat([t, torch.ones(1, dtype=t.dtype, device=t.device)])
    vp = (theta * tt).sum()
    gen = theta[:G] * t
    h2 = gen / vp
    eye = torch.eye(G, G + 1, dtype=t.dtype, device=t.device)
    j_h2 = eye * t.unsqueeze(1) / vp - torch.outer(gen, tt) / vp**2
    total = gen.sum() / vp
    j_total = torch.cat([t, torch.zeros(1, dtype=t.dtype, device=t.device)]) / vp - gen.sum() * tt / vp**2
    return h2, j_h2, total, j_total, vp, tt


def derived(theta: torch.Tensor, cov: torch.Tensor, trace_scale: torch.Tensor) -> dict:
    """h2 per component, total h2 and Vp with delta-method standard errors.

    Parameters
    ----------
    theta : torch.Tensor
        (G+1,) variances, residual last.
    cov : torch.Tensor
        (G+1, G+1) covariance of ``theta`` (inverse AI, or a Monte Carlo covariance).
    trace_scale : torch.Tensor
        (G,) ``tr(K_g) / n``.

    Returns
    -------
    dict
        ``h2, h2_se`` (G,), ``h2_total, h2_total_se, vp, vp_se`` (floats).

    Examples
    --------
    >>> d = derived(torch.tensor([1.0, 1.0]), torch.eye(2) * 0.01, torch.tensor([1.0]))
    >>> float(d["h2"][0]), round(d["h2_total_se"], 4)
    (0.5, 0.0354)
    """
    h2, j_h2, total, j_total, vp, tt = _jacobians(theta, trace_scale)

    def se(j):
        return torch.sqrt(((j @ cov) * j).sum(-1).clamp_min(0.0))

    return {
        "h2": h2, "h2_se": se(j_h2), "h2_total": float(total), "h2_total_se": float(se(j_total)),
        "vp": float(vp), "vp_se": float(se(tt)),
    }


@dataclass
class REMLFit:
    """A fitted variance-component model ``V = sum_g s2_g K_g + s2_e I``.

    Attributes
    ----------
    names : list of str
        Names of the G genetic components.
    variances : torch.Tensor
        (G+1,) estimates ``s2_1..s2_G, s2_e``.
    se : torch.Tensor
        (G+1,) standard errors (square roots of the diagonal of ``cov``).
    cov : torch.Tensor
        (G+1, G+1) inverse average information at the estimate.
    ai : torch.Tensor
        (G+1, G+1) average information at the estimate.
    trace_scale : torch.Tensor
        (G,) ``tr(K_g) / n``.
    h2, h2_se : torch.Tensor
        (G,) ``s2_g t_g / Vp`` and delta-method SEs.
    h2_total, h2_total_se : float
        Sum of the ``h2_g`` and its SE.
    vp, vp_se : float
        ``sum_g s2_g t_g + s2_e`` and its SE.
    beta, beta_se : torch.Tensor
        (p,) GLS fixed effects (intercept included) and SEs.
    covariate_names : list of str
    loglik : float
        Restricted log-likelihood ``-0.5 (log|V| + log|X'V^-1X| + y'Py)`` (no
        ``2 pi`` constant, as GCTA reports it).
    loglik_se : float
        Its Monte Carlo SE (NaN for exact fits).
    n_iter : int
    converged : bool
    delta_loglik, delta_theta : float
        Change of log-likelihood and largest parameter change (relative to
        ``sum(theta)``) at the last step: the two convergence measures.
    message : str
    history : list of dict
        Per iterate: ``iteration, step ("init"/"AI"/"EM"), step_size, loglik,
        loglik_se, delta_loglik, delta_theta, theta``.
    method : str
        ``"exact-band"``, ``"exact-eigh"``, ``"exact-woodbury"``, ``"exact-cholesky"`` or ``"stochastic"``.
    n : int
        Samples used.
    n_dropped : int
        Samples dropped before the fit (from an alignment report; 0 if none given).
    dropped : dict
        Dropped samples per reason.
    mc_se : torch.Tensor or None
        (G+1,) Monte Carlo SEs of ``variances`` (stochastic fits).
    h2_mc_se : torch.Tensor or None
        (G,) Monte Carlo SEs of ``h2``.
    h2_total_mc_se : float
        Monte Carlo SE of ``h2_total`` (NaN for exact fits).
    settings : dict
        The options the fit ran with (``seed`` is -1 when a ``torch.Generator`` was
        passed) and solver counters: ``kernel_products`` (each one genotype pass
        when the kernels share a GRMStack), ``genotype_passes`` (GRMStack only),
        ``cg_iterations`` per block solve and ``cg_failures`` (stochastic only).

    Examples
    --------
    >>> from torchgenetics.reml import reml
    >>> g = torch.Generator().manual_seed(0)
    >>> Z = torch.randn(200, 100, generator=g, dtype=torch.float64)
    >>> y = Z @ torch.randn(100, generator=g, dtype=torch.float64) / 10 + torch.randn(200, generator=g, dtype=torch.float64)
    >>> fit = reml(y, Z @ Z.T / 100)
    >>> fit.converged, fit.names
    (True, ['G'])
    >>> list(fit.hsq_table()["Source"])[:3]
    ['V(G)', 'V(e)', 'Vp']
    """

    names: list
    variances: torch.Tensor
    se: torch.Tensor
    cov: torch.Tensor
    ai: torch.Tensor
    trace_scale: torch.Tensor
    h2: torch.Tensor
    h2_se: torch.Tensor
    h2_total: float
    h2_total_se: float
    vp: float
    vp_se: float
    beta: torch.Tensor
    beta_se: torch.Tensor
    covariate_names: list
    loglik: float
    loglik_se: float
    n_iter: int
    converged: bool
    delta_loglik: float
    delta_theta: float
    message: str
    history: list
    method: str
    n: int
    n_dropped: int = 0
    dropped: dict = field(default_factory=dict)
    mc_se: torch.Tensor | None = None
    h2_mc_se: torch.Tensor | None = None
    h2_total_mc_se: float = math.nan
    settings: dict = field(default_factory=dict)

    # -- views ---------------------------------------------------------------------------------
    @property
    def n_components(self) -> int:
        """Number of genetic components G."""
        return len(self.names)

    @property
    def residual(self) -> float:
        """Residual variance ``s2_e``."""
        return float(self.variances[-1])

    @property
    def stochastic(self) -> bool:
        """Whether the fit used the stochastic (matrix-free) likelihood."""
        return self.method == "stochastic"

    def to_frame(self) -> pd.DataFrame:
        """One row per genetic component and one for the residual.

        Columns ``variance, se, h2, h2_se`` (h2 NaN for the residual) and, for a
        stochastic fit, ``mc_se, h2_mc_se``.

        Examples
        --------
        >>> fit = _example_fit()
        >>> list(fit.to_frame().index)
        ['G', 'residual']
        """
        nan = [math.nan]
        data = {
            "variance": self.variances.tolist(),
            "se": self.se.tolist(),
            "h2": self.h2.tolist() + nan,
            "h2_se": self.h2_se.tolist() + nan,
        }
        if self.mc_se is not None:
            data["mc_se"] = self.mc_se.tolist()
            data["h2_mc_se"] = self.h2_mc_se.tolist() + nan
        return pd.DataFrame(data, index=pd.Index(list(self.names) + ["residual"], name="component"))

    def history_frame(self) -> pd.DataFrame:
        """The per-iteration history as a DataFrame (one ``theta_<name>`` column per variance).

        Examples
        --------
        >>> _example_fit().history_frame().columns[:3].tolist()
        ['iteration', 'step', 'step_size']
        """
        rows = []
        for h in self.history:
            row = {k: v for k, v in h.items() if k != "theta"}
            for name, v in zip(list(self.names) + ["residual"], h["theta"], strict=True):
                row[f"theta_{name}"] = v
            rows.append(row)
        return pd.DataFrame(rows)

    def hsq_table(self) -> pd.DataFrame:
        """GCTA ``.hsq``-style rows: ``Source``, ``Variance``, ``SE``.

        Rows ``V(G)`` (``V(G1)``, ``V(G2)``, ... for several components), ``V(e)``,
        ``Vp``, ``V(G)/Vp`` per component, ``Sum of V(G)/Vp`` (several components),
        ``logL`` and ``n``. ``Vp`` and the ratios use trace-weighted denominators
        (identical to GCTA's when every kernel has mean diagonal 1). A stochastic fit's
        ``logL`` row carries its Monte Carlo SE.

        Examples
        --------
        >>> _example_fit().hsq_table()["Source"].tolist()
        ['V(G)', 'V(e)', 'Vp', 'V(G)/Vp', 'logL', 'n']
        """
        G = self.n_components
        labels = ["G"] if G == 1 else [f"G{g + 1}" for g in range(G)]
        rows = [(f"V({lab})", float(v), float(s)) for lab, v, s in zip(labels, self.variances[:G], self.se[:G], strict=True)]
        rows.append(("V(e)", self.residual, float(self.se[-1])))
        rows.append(("Vp", self.vp, self.vp_se))
        rows += [(f"V({lab})/Vp", float(h), float(s)) for lab, h, s in zip(labels, self.h2, self.h2_se, strict=True)]
        if G > 1:
            rows.append(("Sum of V(G)/Vp", self.h2_total, self.h2_total_se))
        rows.append(("logL", self.loglik, self.loglik_se))
        rows.append(("n", float(self.n), math.nan))
        return pd.DataFrame(rows, columns=["Source", "Variance", "SE"])

    def summary(self) -> str:
        """A short human-readable report.

        Examples
        --------
        >>> print(_example_fit().summary().splitlines()[0])
        REML fit (exact-band): n = 200, 1 genetic component, converged in 5 iterations
        """
        G = self.n_components
        state = f"converged in {self.n_iter} iterations" if self.converged else f"NOT converged ({self.message})"
        lines = [f"REML fit ({self.method}): n = {self.n}, {G} genetic component{'s' if G > 1 else ''}, {state}"]
        if self.n_dropped:
            lines.append(f"  samples dropped before the fit: {self.n_dropped} " + str(self.dropped))
        ll = f"{self.loglik:.4f}" + (f" +- {self.loglik_se:.4f} (MC)" if math.isfinite(self.loglik_se) else "")
        lines.append(f"  logL = {ll}; last change {self.delta_loglik:.2g} (logL), {self.delta_theta:.2g} (theta)")
        lines.append(self.to_frame().to_string(float_format=lambda v: f"{v:.6g}"))
        lines.append(f"  h2 (total) = {self.h2_total:.4f} (SE {self.h2_total_se:.4f})"
                     + (f", MC SE {self.h2_total_mc_se:.4f}" if math.isfinite(self.h2_total_mc_se) else ""))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"REMLFit(method={self.method!r}, n={self.n}, components={self.names}, "
                f"h2_total={self.h2_total:.4f}, loglik={self.loglik:.4f}, converged={self.converged})")

    def to_dict(self) -> dict:
        """The fit as plain JSON-ready Python values (lists, floats, strings; NaN kept as NaN).

        Examples
        --------
        >>> import json
        >>> d = _example_fit().to_dict()
        >>> sorted(d)[:4], "h2" in json.dumps(d)
        (['ai', 'beta', 'beta_se', 'converged'], True)
        """
        out = {}
        for key, value in asdict(self).items():
            out[key] = value.tolist() if torch.is_tensor(value) else value
        return out

    # -- persistence --------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the fit to HDF5 (``load`` reads it back; usable as ``init=`` for a warm start).

        Examples
        --------
        >>> import tempfile, os
        >>> f = os.path.join(tempfile.mkdtemp(), "fit.h5")
        >>> fit = _example_fit(); fit.save(f)
        >>> REMLFit.load(f).variances.tolist() == fit.variances.tolist()
        True
        """
        save_h5(path, asdict(self), format_name=_FORMAT)

    @classmethod
    def load(cls, path) -> "REMLFit":
        """Read a fit written by :meth:`save`.

        Examples
        --------
        See :meth:`save`.
        """
        data = load_h5(path, format_name=_FORMAT)
        known = {f.name for f in fields(cls)}
        missing = [f.name for f in fields(cls) if f.name not in data
                   and f.default is MISSING and f.default_factory is MISSING]
        if missing:
            raise InputError(f"{path}: REMLFit file lacks fields {missing}")
        return cls(**{k: v for k, v in data.items() if k in known})


def _example_fit() -> REMLFit:
    """A small exact fit used by the docstring examples."""
    from .model import reml

    g = torch.Generator().manual_seed(0)
    Z = torch.randn(200, 100, generator=g, dtype=torch.float64)
    y = Z @ torch.randn(100, generator=g, dtype=torch.float64) / 10 + torch.randn(200, generator=g, dtype=torch.float64)
    return reml(y, Z @ Z.T / 100)
