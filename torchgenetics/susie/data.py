"""Data backends for IBSS: what the loop needs from individual data, sufficient statistics or RSS.

IBSS touches the data through five things only, so each backend provides exactly
those: the fitted values of one effect (``X b`` for individual data, ``X^T X b``
for the others), ``X^T r`` for a residual given the fitted values, the column norms
``d = diag(X^T X)``, the expected residual sum of squares, and correlations among
a few variables (for credible-set purity). ``X^T X`` may be a dense tensor or any
``linear_operator.LinearOperator``: only products ``R @ v`` and ``diag(R)`` are
used, so a p x p matrix is never formed.

A null column (``null_weight > 0``) is virtual: it adds one variable with
``d = 0`` and no data, without copying X or the LD matrix.
"""

from __future__ import annotations

import math

import torch
from linear_operator.operators import LinearOperator

from ..errors import InputError

# IndividualData sweeps an X above this size (bytes) once per effect, in row blocks of
# about _BLOCK_BYTES, instead of twice (see fitted_and_xtr).
_FUSE_BYTES = 16 * 2**20
_BLOCK_BYTES = 2 * 2**20

__all__ = [
    "IndividualData",
    "SuffStatData",
    "matvec",
    "operator_diagonal",
    "cov_to_cor",
    "check_symmetric",
]


def matvec(op, v: torch.Tensor) -> torch.Tensor:
    """``op @ v`` for a dense tensor or a LinearOperator, ``v`` of shape (p,) or (p, k).

    Examples
    --------
    >>> matvec(torch.eye(2), torch.tensor([1.0, 2.0]))
    tensor([1., 2.])
    """
    if isinstance(op, LinearOperator):
        out = op.matmul(v.unsqueeze(-1) if v.dim() == 1 else v)
        out = out.to_dense() if isinstance(out, LinearOperator) else out
        return out.squeeze(-1) if v.dim() == 1 else out
    return op @ v


def operator_diagonal(op) -> torch.Tensor:
    """Diagonal of a dense tensor or a LinearOperator.

    Examples
    --------
    >>> operator_diagonal(torch.diag(torch.tensor([1.0, 3.0])))
    tensor([1., 3.])
    """
    if isinstance(op, LinearOperator):
        return op.diagonal(dim1=-2, dim2=-1)
    return torch.diagonal(op, dim1=-2, dim2=-1)


def cov_to_cor(block: torch.Tensor, diag: torch.Tensor) -> torch.Tensor:
    """Correlations from a covariance block (R's ``cov2cor``, non-finite entries set to 0).

    Examples
    --------
    >>> cov_to_cor(torch.tensor([[4.0, 2.0], [2.0, 1.0]]), torch.tensor([4.0, 1.0]))
    tensor([[1., 1.],
            [1., 1.]])
    """
    s = torch.sqrt(diag)
    cor = block / (s[:, None] * s[None, :])
    cor = torch.where(torch.isfinite(cor), cor, torch.zeros_like(cor))
    cor.fill_diagonal_(1.0)
    return cor


class _Backend:
    """Shared bookkeeping: variable count with the optional virtual null column."""

    kind = "base"
    n: float
    p_data: int
    null_column: bool
    d: torch.Tensor
    csd: torch.Tensor
    var_y: float

    @property
    def p(self) -> int:
        """Number of variables including the null column."""
        return self.p_data + int(self.null_column)

    def _data_part(self, b: torch.Tensor) -> torch.Tensor:
        return b[..., : self.p_data, :] if b.dim() == 2 else b[: self.p_data]

    def _pad(self, v: torch.Tensor) -> torch.Tensor:
        if not self.null_column:
            return v
        return torch.cat([v, v.new_zeros(1)])

    @property
    def m(self) -> int:
        """Length of the fitted-value vector (n for individual data, p otherwise)."""
        return self.p

    def eloglik(self, er2: float, sigma2: float) -> float:
        """Expected log-likelihood ``-n/2 log(2 pi sigma2) - ER2 / (2 sigma2)``."""
        return -0.5 * self.n * math.log(2.0 * math.pi * sigma2) - er2 / (2.0 * sigma2)

    def fitted_and_xtr(self, b: torch.Tensor, without: torch.Tensor, next_fit: torch.Tensor):
        """The fitted values ``f`` of effect ``b``, and ``X^T r`` for the next effect's residual,
        ``r = y - ((without + f) - next_fit)`` (IBSS moving from one effect to the next)."""
        fit = self.effect_fitted(b)
        return fit, self.xtr((without + fit) - next_fit)


class IndividualData(_Backend):
    """Individual-level X (n x p) and y with susieR's centring and scaling, applied lazily.

    Columns are centred (``intercept``) and scaled to unit sample sd
    (``standardize``) without copying X: products use
    ``X_std b = X (b / csd) - sum(cm * b / csd)``. Zero-variance columns keep
    scale 1 and get ``d = 0``.

    Parameters
    ----------
    X : torch.Tensor
        (n, p) covariates (float, finite).
    y : torch.Tensor
        (n,) response.
    standardize, intercept : bool
        As in susieR.
    null_column : bool
        Add the virtual null variable.

    Examples
    --------
    >>> X = torch.tensor([[0.0, 1.0], [1.0, 1.0], [2.0, 0.0]], dtype=torch.float64)
    >>> data = IndividualData(X, torch.tensor([0.0, 1.0, 3.0], dtype=torch.float64))
    >>> [round(v, 12) for v in data.d.tolist()]
    [2.0, 2.0]
    """

    kind = "individual"

    def __init__(self, X: torch.Tensor, y: torch.Tensor, standardize: bool = True,
                 intercept: bool = True, null_column: bool = False):
        n, p = X.shape
        self.X, self.n, self.p_data, self.null_column = X, n, p, null_column
        self.mean_y = float(y.mean()) if intercept else 0.0
        self.y = y - self.mean_y if intercept else y
        col_mean = X.mean(dim=0)
        col_sd = X.std(dim=0) if n > 1 else torch.zeros_like(col_mean)
        self.cm = col_mean if intercept else torch.zeros_like(col_mean)
        csd = col_sd.clone() if standardize else torch.ones_like(col_sd)
        csd[csd == 0] = 1.0
        d = n * col_mean**2 + (n - 1) * col_sd**2
        d = (d - n * self.cm**2) / csd**2
        self.csd_data, self.d_data = csd, d
        self.csd = self._pad_one(csd)
        self.d = self._pad(d)
        self.var_y = float(self.y.var()) if n > 1 else 0.0
        self._shift = self.cm / csd

    @property
    def m(self) -> int:
        """Length of the fitted-value vector ``X b``: n."""
        return self.n

    def _pad_one(self, v: torch.Tensor) -> torch.Tensor:
        return torch.cat([v, v.new_ones(1)]) if self.null_column else v

    def effect_fitted(self, b: torch.Tensor) -> torch.Tensor:
        """``X_std b`` for b of shape (p,) or (p, k)."""
        b = self._data_part(b)
        scaled = b / self.csd_data[:, None] if b.dim() == 2 else b / self.csd_data
        return self.X @ scaled - self._shift @ b

    def xtr(self, fitted: torch.Tensor) -> torch.Tensor:
        """``X_std^T (y - fitted)``."""
        r = self.y - fitted
        return self._pad((r @ self.X) / self.csd_data - self._shift * r.sum())

    def fitted_and_xtr(self, b: torch.Tensor, without: torch.Tensor, next_fit: torch.Tensor):
        """``X_std b`` and the next effect's ``X_std^T r`` (see the base class).

        An X larger than the cache is swept once in row blocks for both products
        (the residual of a block only needs that block's fitted values) instead of
        twice; a small X takes the two plain products.
        """
        if self.X.numel() * self.X.element_size() <= _FUSE_BYTES:
            return super().fitted_and_xtr(b, without, next_fit)
        b = self._data_part(b)
        scaled, shift_b = b / self.csd_data, self._shift @ b
        rows = max(1, _BLOCK_BYTES // (self.X.shape[1] * self.X.element_size()))
        fit = torch.empty_like(self.y)
        r = torch.empty_like(self.y)
        acc = torch.zeros_like(scaled)
        for a in range(0, self.n, rows):
            block = self.X[a: a + rows]
            fit[a: a + rows] = block @ scaled - shift_b
            r[a: a + rows] = self.y[a: a + rows] - ((without[a: a + rows] + fit[a: a + rows])
                                                     - next_fit[a: a + rows])
            acc += r[a: a + rows] @ block
        return fit, self._pad(acc / self.csd_data - self._shift * r.sum())

    def er2(self, fitted: torch.Tensor, B: torch.Tensor, effect_fits: torch.Tensor,
            postb2: torch.Tensor) -> float:
        """Expected residual sum of squares ``E||y - X b||^2`` under the variational posterior."""
        resid = self.y - fitted
        return float(resid @ resid - (effect_fits * effect_fits).sum() + (postb2 @ self.d).sum())

    def correlations(self, idx: torch.Tensor) -> torch.Tensor:
        """Pearson correlations among the columns ``idx`` of X (NaN for constant columns)."""
        cols = self.X[:, idx]
        cols = cols - cols.mean(dim=0)
        norm = torch.sqrt((cols * cols).sum(dim=0))
        cols = cols / norm
        return cols.T @ cols

    def default_sigma2_lower_bound(self) -> float:
        """susieR's default lower bound on the residual variance, ``var(y) / 1e4``."""
        return self.var_y / 1e4


class SuffStatData(_Backend):
    """Sufficient statistics ``X^T X = c * diag(w) R diag(w)``, ``X^T y``, ``y^T y`` and n.

    ``R`` is a dense tensor or a LinearOperator; ``c`` and ``w`` carry the
    sample-size factor of RSS, the ``bhat/shat`` rescaling and the column
    standardisation, so ``R`` itself is never modified or densified.

    Parameters
    ----------
    R : torch.Tensor or LinearOperator
        (p, p) symmetric matrix.
    Xty : torch.Tensor
        (p,) ``X^T y`` on the scale of ``c * diag(w) R diag(w)`` *before* standardisation.
    yty : float
        ``y^T y`` (centred y).
    n : float
        Sample size (2 for RSS without n, as susieR).
    c : float
        Scalar factor of R.
    w : torch.Tensor, optional
        (p,) column scale of R (ones by default).
    standardize : bool
        Scale columns of ``X^T X`` to ``diag = n - 1`` (zero-diagonal columns kept).
    null_column : bool
        Add the virtual null variable.

    Examples
    --------
    >>> R = torch.tensor([[1.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    >>> ss = SuffStatData(R, torch.tensor([3.0, 1.0], dtype=torch.float64), yty=9.0, n=10, c=9.0)
    >>> ss.d
    tensor([9., 9.], dtype=torch.float64)
    """

    kind = "ss"

    def __init__(self, R, Xty: torch.Tensor, yty: float, n: float, c: float = 1.0,
                 w: torch.Tensor | None = None, standardize: bool = True,
                 null_column: bool = False):
        p = Xty.shape[0]
        self.R, self.n, self.p_data, self.null_column, self.yty = R, n, p, null_column, float(yty)
        w = torch.ones_like(Xty) if w is None else w
        self.R_diag = operator_diagonal(R).to(Xty)
        raw_d = c * w * w * self.R_diag
        if standardize:
            csd = torch.sqrt(raw_d / (n - 1))
            csd[csd == 0] = 1.0
        else:
            csd = torch.ones_like(Xty)
        self.c, self.w = float(c), w / csd
        self.csd_data = csd
        self.csd = torch.cat([csd, csd.new_ones(1)]) if null_column else csd
        self.Xty = self._pad(Xty / csd)
        self.d = self._pad(raw_d / csd**2)
        self.var_y = self.yty / (n - 1)

    def effect_fitted(self, b: torch.Tensor) -> torch.Tensor:
        """``X^T X b`` for b of shape (p,) or (p, k) (null row zero)."""
        b = self._data_part(b)
        w = self.w[:, None] if b.dim() == 2 else self.w
        out = self.c * w * matvec(self.R, w * b)
        if not self.null_column:
            return out
        return torch.cat([out, out.new_zeros((1,) + tuple(out.shape[1:]))])

    def xtr(self, fitted: torch.Tensor) -> torch.Tensor:
        """``X^T y - X^T X b`` given the fitted ``X^T X b``."""
        return self.Xty - fitted

    def er2(self, fitted: torch.Tensor, B: torch.Tensor, effect_fits: torch.Tensor,
            postb2: torch.Tensor) -> float:
        """Expected residual sum of squares from the sufficient statistics."""
        bbar = B.sum(dim=0)
        return float(self.yty - 2.0 * (bbar @ self.Xty) + bbar @ fitted
                     - (B * effect_fits).sum() + (postb2 @ self.d).sum())

    def correlations(self, idx: torch.Tensor) -> torch.Tensor:
        """Correlations among variables ``idx`` from ``R`` (``cov2cor`` of its sub-block)."""
        basis = torch.zeros(self.p_data, idx.shape[0], dtype=self.Xty.dtype, device=self.Xty.device)
        basis[idx, torch.arange(idx.shape[0], device=idx.device)] = 1.0
        block = matvec(self.R, basis)[idx]
        block = 0.5 * (block + block.T)
        return cov_to_cor(block, self.R_diag[idx])

    def default_sigma2_lower_bound(self) -> float:
        """susieR's default lower bound on the residual variance for summary data (0)."""
        return 0.0


def check_symmetric(R, name: str = "R", tol: float = 1e-8, seed: int = 0) -> None:
    """Raise :class:`InputError` unless ``R`` is square and symmetric.

    Dense matrices are compared with their transpose; LinearOperators are probed
    with two seeded random vectors (``u^T R v`` against ``v^T R u``).

    Examples
    --------
    >>> check_symmetric(torch.eye(3))
    """
    if R.dim() != 2 or R.shape[0] != R.shape[1]:
        raise InputError(f"{name} must be a square p x p matrix, got shape {tuple(R.shape)}")
    if isinstance(R, LinearOperator):
        gen = torch.Generator().manual_seed(seed)
        probes = torch.randn(R.shape[0], 2, generator=gen, dtype=R.dtype).to(R.device)
        prod = matvec(R, probes)
        a, b = probes[:, 0] @ prod[:, 1], probes[:, 1] @ prod[:, 0]
        scale = float(prod.abs().max()) * R.shape[0] ** 0.5 + 1.0
        asym = float((a - b).abs())
    else:
        asym = float((R - R.T).abs().max()) if R.numel() else 0.0
        scale = max(1.0, float(R.abs().max())) if R.numel() else 1.0
    if not math.isfinite(asym) or asym > tol * scale:
        raise InputError(
            f"{name} is not symmetric (largest asymmetry {asym:.3g}); "
            f"an LD / X'X matrix must equal its transpose"
        )
