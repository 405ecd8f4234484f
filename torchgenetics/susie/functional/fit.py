"""``MfsusieFit``: the result of a (multi-outcome) functional SuSiE fit.

Holds the variational posterior in the wavelet domain (``alpha, mu, mu2``), each
effect's coefficient prior (mixture weights ``prior_pi`` and scales
``prior_scale``), residual variances, the ELBO trace, PIPs and credible sets (as
``susie`` computes them), and what is needed to return to the data domain: effect
curves with pointwise credible bands, per-variable coefficient curves,
predictions, tables and HDF5 files. A loaded fit warm-starts a new one exactly
like the fit in memory.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields

import pandas as pd
import torch

from ...errors import InputError
from ...io.store import StoredDataclass
from ..fit import SusieFit
from .curves import band_quantile, coefficient_curves, effect_curve_moments, synthesis_matrix

__all__ = ["MfsusieFit", "load_mfsusie"]

_FORMAT = "MfsusieFit"


@dataclass
class MfsusieFit(StoredDataclass):
    """A fitted multi-outcome functional SuSiE model.

    Attributes
    ----------
    alpha : torch.Tensor
        (L, p) inclusion probabilities.
    mu, mu2 : torch.Tensor
        (L, p, T) posterior first and second moments of every wavelet coefficient
        given each variable (standardised X, scaled outcomes); outcome m occupies
        the columns :meth:`coef_slice` (m).
    lbf, KL, V : torch.Tensor
        (L,) log Bayes factor, KL divergence and mean prior variance of a
        coefficient (``V = 0``: a null effect, left out of PIPs and sets).
    lbf_variable : torch.Tensor
        (L, p) log Bayes factor of each variable in each effect.
    sigma2 : list of torch.Tensor
        Residual variance of each outcome: shape (1,) per outcome, or one per
        wavelet scale with ``residual_scope="per_scale"`` (scaled-outcome units).
    prior_family, prior_scope : str
        Coefficient prior family and grouping ("per_outcome" / "per_scale").
    prior_pi, prior_scale : torch.Tensor
        (L, G, K) mixture weights and component scales of each effect's prior in
        each group (scale 0: the null point mass).
    prior_group : torch.Tensor
        (T,) prior group of each coefficient column.
    elbo : torch.Tensor
        ELBO after each iteration.
    n_iter : int
        Iterations run (last greedy round).
    converged : bool
        Whether the tolerance was reached within ``max_iter``.
    pip : torch.Tensor
        (p,) posterior inclusion probabilities.
    sets : dict
        Credible sets as in ``susie``: ``cs``, ``cs_index``, ``coverage``, ``purity``,
        ``requested_coverage``.
    pi : torch.Tensor
        (p,) prior inclusion weights.
    grid_pos : list of torch.Tensor
        Grid positions of each outcome.
    n_coef : list of int
        Coefficients (grid size) of each outcome (1 for a scalar outcome).
    col_scale : torch.Tensor
        (T,) wavelet scale of each column (0 for scaling coefficients and scalars).
    outcome_center : list of torch.Tensor
        Centre of each outcome at its grid positions.
    outcome_scale : torch.Tensor
        (M,) scale of each outcome.
    outcome_names : list of str
        Names of the outcomes.
    wavelet : str
        Wavelet filter.
    residual_scope : str
        Residual-variance grouping.
    X_column_scale_factors, X_center : torch.Tensor
        (p,) column scales and centres of X used in fitting.
    fitted : list of torch.Tensor
        (n, T_m) fitted curves of each outcome (data domain).
    trace : list or None
        With ``track_fit``: per iteration a dict with ``alpha``, ``sigma2``,
        ``prior_pi``, ``V`` and ``elbo``.
    seed : int
        Seed of the purity subsample.
    variable_names : list of str or None
        Names of the p variables.
    greedy_history : list or None
        With ``L_greedy``: one dict per round (L, min_lbf, action, n_iter, converged).

    Examples
    --------
    >>> from torchgenetics.susie.functional import mfsusie
    >>> g = torch.Generator().manual_seed(0)
    >>> X = torch.randn(120, 10, generator=g, dtype=torch.float64)
    >>> Y = X[:, [2]] * torch.sin(torch.linspace(0, 3, 16, dtype=torch.float64)) + \\
    ...     0.3 * torch.randn(120, 16, generator=g, dtype=torch.float64)
    >>> fit = mfsusie(X, [Y], L=3, L_greedy=None)
    >>> fit.sets["cs"][0].tolist(), fit.niter == fit.n_iter
    ([2], True)
    """

    h5_format_name = _FORMAT

    alpha: torch.Tensor
    mu: torch.Tensor
    mu2: torch.Tensor
    lbf: torch.Tensor
    lbf_variable: torch.Tensor
    KL: torch.Tensor
    V: torch.Tensor
    sigma2: list
    prior_family: str
    prior_scope: str
    prior_pi: torch.Tensor
    prior_scale: torch.Tensor
    prior_group: torch.Tensor
    elbo: torch.Tensor
    n_iter: int
    converged: bool
    pip: torch.Tensor
    sets: dict
    pi: torch.Tensor
    grid_pos: list
    n_coef: list
    col_scale: torch.Tensor
    outcome_center: list
    outcome_scale: torch.Tensor
    outcome_names: list
    wavelet: str
    residual_scope: str
    X_column_scale_factors: torch.Tensor
    X_center: torch.Tensor
    fitted: list | None = None
    trace: list | None = None
    seed: int = 0
    variable_names: list | None = None
    greedy_history: list | None = field(default=None)

    # ---- shapes --------------------------------------------------------------------------
    @property
    def L(self) -> int:
        """Number of single effects."""
        return self.alpha.shape[0]

    @property
    def p(self) -> int:
        """Number of variables."""
        return self.alpha.shape[1]

    @property
    def M(self) -> int:
        """Number of outcomes."""
        return len(self.n_coef)

    @property
    def niter(self) -> int:
        """Iterations run (mfsusieR's name for ``n_iter``)."""
        return self.n_iter

    def coef_slice(self, outcome: int) -> slice:
        """Columns of ``mu`` / ``mu2`` holding outcome ``outcome``.

        Examples
        --------
        >>> _toy_fit().coef_slice(0)
        slice(0, 2, None)
        """
        m = self._outcome(outcome)
        start = sum(self.n_coef[:m])
        return slice(start, start + self.n_coef[m])

    def _outcome(self, outcome) -> int:
        if isinstance(outcome, str):
            if outcome not in self.outcome_names:
                raise InputError(f"unknown outcome {outcome!r}; the outcomes are {self.outcome_names}")
            return self.outcome_names.index(outcome)
        m = int(outcome)
        if not 0 <= m < self.M:
            raise InputError(f"outcome must be in 0..{self.M - 1}, got {outcome}")
        return m

    def _effect(self, effect) -> int:
        k = int(effect)
        if not 0 <= k < self.L:
            raise InputError(f"effect must be in 0..{self.L - 1}, got {effect}")
        return k

    def _W(self, m: int) -> torch.Tensor:
        return synthesis_matrix(self.n_coef[m], self.wavelet, dtype=self.mu.dtype, device=self.mu.device)

    def _csd(self) -> torch.Tensor:
        return self.X_column_scale_factors.to(self.mu)

    # ---- curves ----------------------------------------------------------------------------
    def effect_curve(self, effect: int, outcome=0, level: float = 0.95) -> pd.DataFrame:
        """Curve of one effect in the data domain with a pointwise credible band.

        The effect of one unit of X on the outcome at each grid position: the
        posterior mean over variables (weighted by alpha) and coefficients, its sd,
        and ``mean -+ z sd`` for the normal quantile z of ``level``.

        Parameters
        ----------
        effect : int
            Effect index (0-based; the effect of credible set ``"L1"`` is 0).
        outcome : int or str
            Outcome index or name.
        level : float
            Coverage of the pointwise band.

        Returns
        -------
        pandas.DataFrame
            Columns ``pos, mean, sd, lower, upper``.

        Examples
        --------
        >>> list(_toy_fit().effect_curve(0).columns)
        ['pos', 'mean', 'sd', 'lower', 'upper']
        """
        if not 0 < level < 1:
            raise InputError(f"level must be in (0, 1), got {level}")
        k, m = self._effect(effect), self._outcome(outcome)
        cols = self.coef_slice(m)
        mean, sd = effect_curve_moments(self.alpha[k], self.mu[k][:, cols], self.mu2[k][:, cols],
                                        self._csd(), self._W(m), float(self.outcome_scale[m]))
        z = band_quantile(level)
        frame = {"pos": self.grid_pos[m], "mean": mean, "sd": sd, "lower": mean - z * sd,
                 "upper": mean + z * sd}
        return pd.DataFrame({k: v.detach().cpu().numpy() for k, v in frame.items()})

    def curves(self, level: float = 0.95, effects=None) -> pd.DataFrame:
        """Curves of several effects and all outcomes in one long table.

        Parameters
        ----------
        level : float
            Coverage of the pointwise bands.
        effects : sequence of int, optional
            Effects to report (default: the effects with a credible set, in the
            order of ``sets``).

        Returns
        -------
        pandas.DataFrame
            Columns ``effect, cs, outcome, pos, mean, sd, lower, upper`` (``cs`` is
            the set label, e.g. ``"L1"``, or empty).

        Examples
        --------
        >>> _toy_fit().curves()["cs"].unique().tolist()
        ['L1']
        """
        if effects is None:
            effects = self.sets["cs_index"].tolist()
        labelled = set(self.sets["cs_index"].tolist())
        frames = []
        for k in effects:
            for m in range(self.M):
                frame = self.effect_curve(k, m, level)
                frame.insert(0, "outcome", self.outcome_names[m])
                frame.insert(0, "cs", f"L{int(k) + 1}" if int(k) in labelled else "")
                frame.insert(0, "effect", int(k))
                frames.append(frame)
        columns = ["effect", "cs", "outcome", "pos", "mean", "sd", "lower", "upper"]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)

    def coef(self, outcome=0) -> torch.Tensor:
        """(p, T_m) posterior mean effect curve of every variable (data domain, per unit of X).

        Examples
        --------
        >>> _toy_fit().coef(0).shape
        torch.Size([2, 2])
        """
        m = self._outcome(outcome)
        B = (self.alpha.unsqueeze(-1) * self.mu[..., self.coef_slice(m)]).sum(dim=0)
        return coefficient_curves(B, self._csd(), self._W(m), float(self.outcome_scale[m]))

    def intercept_curve(self, outcome=0) -> torch.Tensor:
        """(T_m,) intercept of the fitted curves (the prediction at X = 0).

        Examples
        --------
        >>> _toy_fit().intercept_curve(0).tolist()
        [0.0, 0.0]
        """
        m = self._outcome(outcome)
        return self.outcome_center[m].to(self.mu) - self.X_center.to(self.mu) @ self.coef(m)

    def predict(self, newx=None) -> list:
        """Predicted curves of every outcome, ``intercept + newx @ coef``.

        Parameters
        ----------
        newx : array-like, optional
            (n_new, p) new covariates; None returns the fitted curves.

        Returns
        -------
        list of torch.Tensor
            (n_new, T_m) per outcome.

        Examples
        --------
        >>> [t.shape for t in _toy_fit().predict(torch.zeros(3, 2, dtype=torch.float64))]
        [torch.Size([3, 2])]
        """
        if newx is None:
            if self.fitted is None:
                raise InputError("this fit holds no fitted values; pass newx")
            return list(self.fitted)
        newx = torch.as_tensor(newx, dtype=self.mu.dtype, device=self.mu.device)
        if newx.dim() != 2 or newx.shape[1] != self.p:
            raise InputError(f"newx must have shape (n, {self.p}), got {tuple(newx.shape)}")
        return [self.intercept_curve(m) + newx @ self.coef(m) for m in range(self.M)]

    # ---- tables ----------------------------------------------------------------------------------
    def _susie_view(self) -> SusieFit:
        """The selection part of the fit as a SusieFit (same set and PIP tables)."""
        zeros = torch.zeros_like(self.alpha)
        return SusieFit(alpha=self.alpha, mu=zeros, mu2=zeros, lbf=self.lbf, lbf_variable=self.lbf_variable,
                        KL=self.KL, V=self.V, sigma2=math.nan, elbo=self.elbo, n_iter=self.n_iter,
                        converged=self.converged, pip=self.pip, sets=self.sets, pi=self.pi,
                        variable_names=self.variable_names)

    def to_frame(self, prior_tol: float = 1e-9) -> pd.DataFrame:
        """One row per variable: ``variable, pip, cs, lbf`` (as ``SusieFit.to_frame``).

        Examples
        --------
        >>> list(_toy_fit().to_frame().columns)
        ['variable', 'pip', 'cs', 'lbf']
        """
        frame = self._susie_view().to_frame(prior_tol)
        return frame[["variable", "pip", "cs", "lbf"]]

    def summary(self) -> pd.DataFrame:
        """One row per credible set (as ``SusieFit.summary``).

        Examples
        --------
        >>> _toy_fit().summary()["lead_variable"].tolist()
        [0]
        """
        return self._susie_view().summary()

    def __repr__(self) -> str:
        last = float(self.elbo[-1]) if len(self.elbo) else math.nan
        return (f"MfsusieFit(L={self.L}, p={self.p}, M={self.M}, n_iter={self.n_iter}, "
                f"converged={self.converged}, n_cs={len(self.sets['cs'])}, elbo={last:.4f})")

    # ---- storage ------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, content: dict, source="dict") -> "MfsusieFit":
        """Rebuild a fit from :meth:`to_dict` output (e.g. read back from HDF5).

        Examples
        --------
        >>> MfsusieFit.from_dict(_toy_fit().to_dict()).n_iter
        2
        """
        content = dict(content)
        names = {f.name for f in fields(cls)}
        unknown = set(content) - names
        if unknown:
            raise InputError(f"{source}: unexpected MfsusieFit fields {sorted(unknown)}")
        missing = {f.name for f in fields(cls)
                   if f.default is MISSING and f.default_factory is MISSING} - set(content)
        if missing:
            raise InputError(f"{source}: not an MfsusieFit (missing fields {sorted(missing)})")
        sets = dict(content["sets"])
        sets["cs"] = list(sets.get("cs") or [])
        content["sets"] = sets
        for name in ("sigma2", "grid_pos", "n_coef", "outcome_center", "outcome_names", "fitted", "trace"):
            if content.get(name) is not None:
                content[name] = list(content[name])
        content["n_coef"] = [int(t) for t in content["n_coef"]]
        return cls(**content)


def load_mfsusie(path) -> MfsusieFit:
    """Read a fit saved with :meth:`MfsusieFit.save`.

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "fit.h5")
    >>> _toy_fit().save(path)
    >>> load_mfsusie(path).M
    1
    """
    return MfsusieFit.load(path)


def _toy_fit() -> MfsusieFit:
    """A small hand-made fit (one outcome of 2 positions) for the docstring examples."""
    f64 = torch.float64
    alpha = torch.tensor([[0.9, 0.1]], dtype=f64)
    mu = torch.tensor([[[1.0, 0.5], [0.2, 0.0]]], dtype=f64)
    return MfsusieFit(
        alpha=alpha, mu=mu, mu2=mu**2 + 0.1, lbf=torch.tensor([3.0], dtype=f64),
        lbf_variable=torch.tensor([[3.0, 0.8]], dtype=f64), KL=torch.tensor([0.5], dtype=f64),
        V=torch.tensor([1.0], dtype=f64), sigma2=[torch.ones(1, dtype=f64)], prior_family="mixture_normal",
        prior_scope="per_outcome", prior_pi=torch.tensor([[[0.5, 0.5]]], dtype=f64),
        prior_scale=torch.tensor([[[0.0, 1.0]]], dtype=f64), prior_group=torch.zeros(2, dtype=torch.long),
        elbo=torch.tensor([-3.0, -2.0], dtype=f64), n_iter=2, converged=True, pip=alpha[0].clone(),
        sets={"cs": [torch.tensor([0])], "cs_index": torch.tensor([0]),
              "coverage": torch.tensor([0.9], dtype=f64), "purity": torch.ones(1, 3, dtype=f64),
              "requested_coverage": 0.95},
        pi=torch.full((2,), 0.5, dtype=f64), grid_pos=[torch.tensor([0.0, 1.0], dtype=f64)], n_coef=[2],
        col_scale=torch.tensor([0, 1]), outcome_center=[torch.zeros(2, dtype=f64)],
        outcome_scale=torch.ones(1, dtype=f64), outcome_names=["y"], wavelet="haar",
        residual_scope="per_outcome", X_column_scale_factors=torch.ones(2, dtype=f64),
        X_center=torch.zeros(2, dtype=f64),
    )
