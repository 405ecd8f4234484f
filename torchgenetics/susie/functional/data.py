"""Data of a functional SuSiE fit: X as susie sees it, and the outcomes in the wavelet domain.

X is centred and scaled lazily, exactly as :class:`~torchgenetics.susie.data.IndividualData`
does for ``susie`` (its column statistics are reused). Each outcome ``Y_m`` (n x T_m) is
mapped to an evenly spaced power-of-two grid (:func:`.grid.to_grid`), centred per grid
position, divided by one scale per outcome (the root mean column variance, so the
shape of a curve is kept) and transformed row-wise by the DWT (:func:`.wavelets.dwt`).
A scalar outcome (T_m = 1) is only centred and scaled. The M outcomes' coefficients
are concatenated into one n x T matrix ``D``; each column carries its outcome and its
wavelet scale, which define the groups sharing a residual variance or a prior.
"""

from __future__ import annotations

import torch

from ...errors import InputError
from ..data import IndividualData
from .grid import to_grid
from .wavelets import dwt, scale_index

__all__ = ["FunctionalData", "SCOPES", "column_groups"]

#: Ways to share residual variances and priors among wavelet coefficients.
SCOPES = ("per_outcome", "per_scale")


def column_groups(outcome: torch.Tensor, scale: torch.Tensor, scope: str):
    """Group of each coefficient column: one per outcome, or one per (outcome, scale).

    Parameters
    ----------
    outcome, scale : torch.LongTensor
        (T,) outcome and wavelet scale of each column.
    scope : {"per_outcome", "per_scale"}
        Grouping.

    Returns
    -------
    (torch.LongTensor, torch.LongTensor, torch.LongTensor)
        Group of each column (T,), outcome of each group (G,) and scale of each
        group (G,; -1 for "per_outcome").

    Examples
    --------
    >>> g, o, s = column_groups(torch.tensor([0, 0, 0, 0, 1]), torch.tensor([0, 1, 2, 2, 0]), "per_scale")
    >>> g.tolist(), o.tolist(), s.tolist()
    ([0, 1, 2, 2, 3], [0, 0, 0, 1], [0, 1, 2, 0])
    """
    if scope not in SCOPES:
        raise InputError(f"scope must be one of {SCOPES}, got {scope!r}")
    if scope == "per_outcome":
        n_out = int(outcome.max()) + 1 if outcome.numel() else 0
        return (outcome.clone(), torch.arange(n_out, device=outcome.device),
                torch.full((n_out,), -1, dtype=torch.long, device=outcome.device))
    keys = outcome * (int(scale.max()) + 1) + scale
    uniq, group = torch.unique(keys, sorted=True, return_inverse=True)
    width = int(scale.max()) + 1
    return group, uniq // width, uniq % width


def _outcome_tensor(Y, m: int, name: str, n: int, dtype, device) -> torch.Tensor:
    """Outcome m as an (n, T) tensor, checked for its sample count and missing values."""
    if hasattr(Y, "to_numpy") and not torch.is_tensor(Y):  # pandas
        Y = Y.to_numpy(copy=True)
    try:
        Y = torch.as_tensor(Y, dtype=dtype, device=device)
    except (TypeError, ValueError) as exc:
        raise InputError(f"outcome {name!r} (Y[{m}]) must be numeric: {exc}") from None
    if Y.dim() == 1:
        Y = Y[:, None]
    if Y.dim() != 2:
        raise InputError(f"outcome {name!r} (Y[{m}]) must be an (n, T) matrix or an (n,) vector, "
                         f"got shape {tuple(Y.shape)}")
    if Y.shape[0] != n:
        raise InputError(f"outcome {name!r} (Y[{m}]) has {Y.shape[0]} rows but X has n = {n} samples; "
                         "every outcome needs one row per sample of X")
    if Y.shape[1] == 0:
        raise InputError(f"outcome {name!r} (Y[{m}]) has no columns")
    bad = (~torch.isfinite(Y)).any(dim=1).nonzero().flatten()
    if bad.numel():
        rows = ", ".join(str(int(i)) for i in bad[:5])
        more = f" (and {bad.numel() - 5} more)" if bad.numel() > 5 else ""
        raise InputError(f"outcome {name!r} (Y[{m}]) has missing or infinite values in row {rows}{more}; "
                         "remove or impute those samples in X and every outcome")
    return Y


class FunctionalData:
    """X and the M outcomes of a functional SuSiE fit, ready for the IBSS loop.

    Parameters
    ----------
    X : torch.Tensor
        (n, p) covariates, finite.
    outcomes : list of array-like
        M outcomes, each (n, T_m) or (n,).
    pos : list
        M entries: None or the T_m positions of outcome m.
    names : list of str
        Outcome names (for messages and tables).
    wavelet : str
        DWT filter.
    max_log2 : int
        Grid size cap ``2^max_log2``.
    standardize, intercept : bool
        As in ``susie`` (X columns; ``intercept`` also centres the outcomes).

    Attributes
    ----------
    D : torch.Tensor
        (n, T) wavelet coefficients of all outcomes, side by side.
    col_outcome, col_scale : torch.LongTensor
        (T,) outcome and wavelet scale of each column.
    n_coef : list of int
        Columns of each outcome (its grid size, 1 for a scalar outcome).
    grid_pos, center : list of torch.Tensor
        Grid positions and centring curve of each outcome (data units).
    scale : torch.Tensor
        (M,) scale of each outcome.
    col_var : torch.Tensor
        (T,) sample variance of each column of D.
    x : IndividualData
        The column statistics of X (``d``, ``csd_data``, ``cm``, ``correlations``).

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> X = torch.randn(20, 3, generator=g, dtype=torch.float64)
    >>> data = FunctionalData(X, [torch.randn(20, 8, generator=g, dtype=torch.float64),
    ...                           torch.randn(20, generator=g, dtype=torch.float64)], [None, None], ["a", "b"])
    >>> data.D.shape, data.n_coef, data.col_scale.tolist()
    (torch.Size([20, 9]), [8, 1], [0, 1, 2, 2, 3, 3, 3, 3, 0])
    """

    def __init__(self, X: torch.Tensor, outcomes, pos, names, wavelet: str = "la10",
                 max_log2: int = 10, standardize: bool = True, intercept: bool = True):
        n, p = X.shape
        self.n, self.p = n, p
        self.x = IndividualData(X, X.new_zeros(n), standardize=standardize, intercept=intercept)
        self.X = X
        self._shift = self.x.cm / self.x.csd_data
        self.wavelet, self.names = wavelet, list(names)
        blocks, outcome, scales = [], [], []
        self.n_coef, self.grid_pos, self.center, scale = [], [], [], []
        for m, (Y, where, name) in enumerate(zip(outcomes, pos, names, strict=True)):
            Y = _outcome_tensor(Y, m, name, n, X.dtype, X.device)
            if Y.shape[1] > 1:
                Y, grid = to_grid(Y, where, max_log2)
                grid = grid.to(dtype=X.dtype, device=X.device)
            else:
                grid = self._scalar_position(where, name, m, X)
            center = Y.mean(dim=0) if intercept else torch.zeros_like(Y[0])
            Z = Y - center
            s = float(torch.sqrt(Y.var(dim=0).mean())) if n > 1 else 0.0
            if not s > 0:
                raise InputError(f"outcome {name!r} (Y[{m}]) is constant: there is nothing to fine-map")
            Z = Z / s
            T = Z.shape[1]
            blocks.append(dwt(Z, wavelet) if T > 1 else Z)
            scales.append(scale_index(T).to(X.device) if T > 1
                          else torch.zeros(1, dtype=torch.long, device=X.device))
            outcome.append(torch.full((T,), m, dtype=torch.long, device=X.device))
            self.n_coef.append(T)
            self.grid_pos.append(grid)
            self.center.append(center)
            scale.append(s)
        self.D = torch.cat(blocks, dim=1)
        self.col_outcome = torch.cat(outcome)
        self.col_scale = torch.cat(scales)
        self.scale = torch.tensor(scale, dtype=X.dtype, device=X.device)
        self.col_var = self.D.var(dim=0) if n > 1 else torch.zeros(self.D.shape[1], dtype=X.dtype, device=X.device)

    @staticmethod
    def _scalar_position(where, name, m, X) -> torch.Tensor:
        if where is None:
            return torch.zeros(1, dtype=X.dtype, device=X.device)
        grid = torch.as_tensor(where, dtype=X.dtype, device=X.device).reshape(-1)
        if grid.numel() != 1:
            raise InputError(f"outcome {name!r} (Y[{m}]) has 1 column but pos[{m}] has {grid.numel()} entries")
        return grid

    @property
    def M(self) -> int:
        """Number of outcomes."""
        return len(self.n_coef)

    @property
    def T(self) -> int:
        """Total number of coefficient columns."""
        return self.D.shape[1]

    @property
    def d(self) -> torch.Tensor:
        """(p,) ``diag(X_std^T X_std)``."""
        return self.x.d_data

    def coef_slice(self, m: int) -> slice:
        """Columns of outcome m in ``D``."""
        start = sum(self.n_coef[:m])
        return slice(start, start + self.n_coef[m])

    def xtr(self, R: torch.Tensor) -> torch.Tensor:
        """``X_std^T R`` for residuals R of shape (n, T): (p, T)."""
        return (self.X.T @ R) / self.x.csd_data[:, None] - self._shift[:, None] * R.sum(dim=0)

    def fitted(self, B: torch.Tensor) -> torch.Tensor:
        """``X_std B`` for coefficients B of shape (p, T): (n, T)."""
        return self.X @ (B / self.x.csd_data[:, None]) - self._shift @ B
