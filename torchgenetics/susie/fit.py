"""``SusieFit``: the result of a SuSiE fit, with susieR's field names.

Holds the variational posterior (``alpha, mu, mu2``), Bayes factors, prior and
residual variances, ELBO trace, PIPs and credible sets, and turns them into
coefficients, predictions, posterior summaries, lfsr, tables and HDF5 files.
A fit loaded from HDF5 warm-starts a new fit exactly like the one in memory.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, fields

import pandas as pd
import torch

from ..errors import InputError
from ..io.store import StoredDataclass

__all__ = ["SusieFit"]

_FORMAT = "SusieFit"


@dataclass
class SusieFit(StoredDataclass):
    """A fitted SuSiE model (susieR's ``"susie"`` object).

    Attributes
    ----------
    alpha, mu, mu2 : torch.Tensor
        (L, p') inclusion probabilities and posterior first/second moments of each
        effect given each variable, on the standardised scale (p' = p + 1 with a
        null column).
    lbf : torch.Tensor
        (L,) log Bayes factor of each effect.
    lbf_variable : torch.Tensor
        (L, p') log Bayes factor of each variable in each effect.
    KL : torch.Tensor
        (L,) KL divergence of each effect.
    V : torch.Tensor
        (L,) prior variances (0 for pruned effects).
    sigma2 : float
        Residual variance.
    elbo : torch.Tensor
        ELBO after each iteration.
    n_iter : int
        Iterations run.
    converged : bool
        Whether the tolerance was reached within ``max_iter``.
    pip : torch.Tensor
        (p,) posterior inclusion probabilities.
    sets : dict
        Credible sets: ``cs`` (list of index tensors), ``cs_index`` (effect of each
        set), ``coverage``, ``purity`` ((k, 3) min/mean/median |corr|),
        ``requested_coverage``.
    pi : torch.Tensor
        (p',) prior inclusion weights.
    null_index : int
        Column of the null variable, -1 without one.
    intercept : float
        Intercept (NaN when summary data cannot give it).
    fitted : torch.Tensor or None
        Fitted values ``intercept + X b`` (individual data only).
    X_column_scale_factors : torch.Tensor
        (p,) column scales used in fitting (1 when not standardised).
    trace : list or None
        With ``track_fit``: one dict per iteration (alpha, V, sigma2, elbo).
    seed : int
        Seed of the purity subsample generator.
    data_kind : str
        "individual", "ss" or "rss".
    variable_names : list of str or None
        Names of the p variables.
    greedy_history : list or None
        With ``L_greedy``: one dict per round (L, min_lbf, action).

    Examples
    --------
    >>> from torchgenetics.susie import susie
    >>> g = torch.Generator().manual_seed(0)
    >>> X = torch.randn(100, 20, generator=g, dtype=torch.float64)
    >>> y = 2 * X[:, 3] + torch.randn(100, generator=g, dtype=torch.float64)
    >>> fit = susie(X, y, L=3)
    >>> fit.sets["cs"][0].tolist(), round(float(fit.pip[3]), 3)
    ([3], 1.0)
    """

    h5_format_name = _FORMAT

    alpha: torch.Tensor
    mu: torch.Tensor
    mu2: torch.Tensor
    lbf: torch.Tensor
    lbf_variable: torch.Tensor
    KL: torch.Tensor
    V: torch.Tensor
    sigma2: float
    elbo: torch.Tensor
    n_iter: int
    converged: bool
    pip: torch.Tensor
    sets: dict
    pi: torch.Tensor
    null_index: int = -1
    intercept: float = math.nan
    fitted: torch.Tensor | None = None
    X_column_scale_factors: torch.Tensor | None = None
    trace: list | None = None
    seed: int = 0
    data_kind: str = "individual"
    variable_names: list | None = None
    greedy_history: list | None = field(default=None)

    # ---- shapes -------------------------------------------------------------
    @property
    def L(self) -> int:
        """Number of single effects."""
        return self.alpha.shape[0]

    @property
    def p(self) -> int:
        """Number of variables (without the null column)."""
        return self.pip.shape[0]

    def _data_cols(self, t: torch.Tensor) -> torch.Tensor:
        return t[..., : self.p]

    def _scale(self) -> torch.Tensor:
        if self.X_column_scale_factors is None:
            return torch.ones(self.p, dtype=self.alpha.dtype, device=self.alpha.device)
        return self.X_column_scale_factors.to(self.alpha)

    def _included(self, prior_tol: float) -> torch.Tensor:
        return self.V > prior_tol

    # ---- posterior summaries --------------------------------------------------
    def posterior_mean(self, prior_tol: float = 1e-9) -> torch.Tensor:
        """Posterior mean of each coefficient on the original scale of X.

        Effects with ``V <= prior_tol`` are left out (``susie_get_posterior_mean``).

        Examples
        --------
        >>> fit = _toy_fit()
        >>> fit.posterior_mean().shape
        torch.Size([2])
        """
        keep = self._included(prior_tol)
        b = (self.alpha * self.mu)[keep].sum(dim=0)
        return self._data_cols(b) / self._scale()

    def posterior_sd(self, prior_tol: float = 1e-9) -> torch.Tensor:
        """Posterior standard deviation of each coefficient on the original scale.

        Examples
        --------
        >>> bool((_toy_fit().posterior_sd() >= 0).all())
        True
        """
        keep = self._included(prior_tol)
        var = (self.alpha * self.mu2 - (self.alpha * self.mu) ** 2)[keep].sum(dim=0)
        return torch.sqrt(torch.clamp(self._data_cols(var), min=0.0)) / self._scale()

    def lfsr(self) -> torch.Tensor:
        """Local false sign rate of each effect (``susie_get_lfsr``).

        ``1 - sum_j alpha_lj max(P(b_lj < 0), P(b_lj > 0))``. An effect whose
        posterior is a point mass at zero (``V = 0``) has no sign, so its lfsr is 1
        (R's ``pnorm`` with sd 0 would give it 0).

        Examples
        --------
        >>> _toy_fit().lfsr().shape
        torch.Size([1])
        """
        sd = torch.sqrt(torch.clamp(self.mu2 - self.mu**2, min=0.0))
        safe = torch.where(sd > 0, sd, torch.ones_like(sd))
        below = torch.special.ndtr(-self.mu / safe)
        best = torch.maximum(below, 1.0 - below)
        point = torch.where(self.mu != 0, torch.ones_like(sd), torch.zeros_like(sd))
        best = torch.where(sd > 0, best, point)
        return torch.clamp(1.0 - (self.alpha * best).sum(dim=1), 0.0, 1.0)

    def coef(self) -> torch.Tensor:
        """Intercept followed by the p coefficients on the original scale (``coef.susie``).

        Examples
        --------
        >>> _toy_fit().coef().shape
        torch.Size([3])
        """
        b = self._data_cols((self.alpha * self.mu).sum(dim=0)) / self._scale()
        return torch.cat([b.new_tensor([self.intercept]), b])

    def predict(self, newx=None) -> torch.Tensor:
        """Fitted values (``newx=None``) or ``intercept + newx @ coef`` for new data.

        Examples
        --------
        >>> _toy_fit().predict(torch.ones(4, 2, dtype=torch.float64)).shape
        torch.Size([4])
        """
        if newx is None:
            if self.fitted is None:
                raise InputError("this fit has no fitted values (summary data); pass newx")
            return self.fitted
        coef = self.coef()
        newx = torch.as_tensor(newx, dtype=coef.dtype, device=coef.device)
        if newx.dim() != 2 or newx.shape[1] != self.p:
            raise InputError(f"newx must have shape (m, {self.p}), got {tuple(newx.shape)}")
        intercept = coef[0]
        if math.isnan(float(intercept)):
            warnings.warn("the intercept is unknown (summary data): predicting with intercept 0",
                          RuntimeWarning, stacklevel=2)
            intercept = coef.new_zeros(())
        return intercept + newx @ coef[1:]

    # ---- tables -----------------------------------------------------------------
    def _names(self) -> list:
        if self.variable_names is not None:
            return list(self.variable_names)
        return list(range(self.p))

    def to_frame(self, prior_tol: float = 1e-9) -> pd.DataFrame:
        """One row per variable: PIP, credible set(s), lbf, posterior mean and sd.

        ``cs`` names the sets holding the variable (``"L2"`` is the set of effect 2,
        joined by commas in the rare case of overlap); ``lbf`` is the variable's
        log Bayes factor in the retained effect where its alpha is largest.

        Examples
        --------
        >>> list(_toy_fit().to_frame().columns)
        ['variable', 'pip', 'cs', 'lbf', 'posterior_mean', 'posterior_sd']
        """
        labels = [[] for _ in range(self.p)]
        for eff, idx in zip(self.sets["cs_index"].tolist(), self.sets["cs"], strict=True):
            for j in idx.tolist():
                if j < self.p:
                    labels[j].append(f"L{eff + 1}")
        keep = self._included(prior_tol)
        alpha = self._data_cols(self.alpha)
        lbf_var = self._data_cols(self.lbf_variable)
        if bool(keep.any()):
            a = torch.where(keep[:, None], alpha, torch.full_like(alpha, -1.0))
            best = a.argmax(dim=0)
            lbf = lbf_var.gather(0, best[None, :])[0]
        else:
            lbf = torch.full((self.p,), math.nan, dtype=alpha.dtype, device=alpha.device)
        return pd.DataFrame({
            "variable": self._names(),
            "pip": self.pip.detach().cpu().numpy(),
            "cs": pd.array([",".join(x) if x else None for x in labels], dtype="string"),
            "lbf": lbf.detach().cpu().numpy(),
            "posterior_mean": self.posterior_mean(prior_tol).detach().cpu().numpy(),
            "posterior_sd": self.posterior_sd(prior_tol).detach().cpu().numpy(),
        })

    def summary(self) -> pd.DataFrame:
        """One row per credible set: size, coverage, log10 BF, purity and lead variable.

        Examples
        --------
        >>> list(_toy_fit().summary().columns)[:4]
        ['cs', 'effect', 'size', 'coverage']
        """
        names = self._names()
        rows = []
        pip = self.pip.detach().cpu()
        for k, (eff, idx) in enumerate(zip(self.sets["cs_index"].tolist(), self.sets["cs"], strict=True)):
            members = [j for j in idx.tolist() if j < self.p]
            lead = max(members, key=lambda j: float(pip[j])) if members else None
            pur = self.sets["purity"][k].tolist()
            rows.append({
                "cs": f"L{eff + 1}", "effect": eff + 1, "size": len(idx),
                "coverage": float(self.sets["coverage"][k]),
                "log10bf": float(self.lbf[eff]) / math.log(10.0),
                "min_abs_corr": pur[0], "mean_abs_corr": pur[1], "median_abs_corr": pur[2],
                "lead_variable": names[lead] if lead is not None else None,
                "lead_pip": float(pip[lead]) if lead is not None else math.nan,
                "variables": ",".join(str(names[j]) for j in members),
            })
        columns = ["cs", "effect", "size", "coverage", "log10bf", "min_abs_corr", "mean_abs_corr",
                   "median_abs_corr", "lead_variable", "lead_pip", "variables"]
        return pd.DataFrame(rows, columns=columns)

    def __repr__(self) -> str:
        return (f"SusieFit(L={self.L}, p={self.p}, n_iter={self.n_iter}, converged={self.converged}, "
                f"n_cs={len(self.sets['cs'])}, elbo={float(self.elbo[-1]) if len(self.elbo) else math.nan:.4f})")

    # ---- storage ------------------------------------------------------------------
    @classmethod
    def from_dict(cls, content: dict, source="dict") -> "SusieFit":
        """Rebuild a fit from :meth:`to_dict` output (e.g. read back from HDF5).

        Examples
        --------
        >>> fit = _toy_fit()
        >>> SusieFit.from_dict(fit.to_dict()).n_iter
        3
        """
        content = dict(content)
        names = {f.name for f in fields(cls)}
        unknown = set(content) - names
        if unknown:
            raise InputError(f"{source}: unexpected SusieFit fields {sorted(unknown)}")
        sets = dict(content["sets"])
        sets["cs"] = list(sets.get("cs") or [])
        content["sets"] = sets
        if content.get("trace") is not None:
            content["trace"] = list(content["trace"])
        return cls(**content)


def _toy_fit() -> SusieFit:
    """A small hand-made fit for the docstring examples."""
    f64 = torch.float64
    alpha = torch.tensor([[0.9, 0.1]], dtype=f64)
    mu = torch.tensor([[1.0, 0.5]], dtype=f64)
    return SusieFit(
        alpha=alpha, mu=mu, mu2=mu**2 + 0.1, lbf=torch.tensor([3.0], dtype=f64),
        lbf_variable=torch.tensor([[3.0, 0.8]], dtype=f64), KL=torch.tensor([0.5], dtype=f64),
        V=torch.tensor([1.0], dtype=f64), sigma2=1.0, elbo=torch.tensor([-3.0, -2.0, -1.9], dtype=f64),
        n_iter=3, converged=True, pip=alpha[0].clone(),
        sets={"cs": [torch.tensor([0, 1])], "cs_index": torch.tensor([0]),
              "coverage": torch.tensor([1.0], dtype=f64), "purity": torch.ones(1, 3, dtype=f64),
              "requested_coverage": 0.95},
        pi=torch.full((2,), 0.5, dtype=f64), intercept=0.0, X_column_scale_factors=torch.ones(2, dtype=f64),
    )
