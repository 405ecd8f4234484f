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

During IBSS each locus is driven through an engine (:class:`IndividualEngine`,
:class:`SuffStatEngine`) that keeps every effect's products cached, so an effect
update costs ``X b`` and ``X^T (X b)`` (one pass over a row-major float64 X on CPU,
both products at once in the compiled ``_products`` module; else two BLAS passes),
one product with R for summary data, and nothing when the effect is exactly zero.
On CPU the engines and the column statistics work on numpy views of the tensors
(numpy's BLAS and its smaller per-call cost on these vector-sized operations);
elsewhere on the tensors.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from linear_operator.operators import LinearOperator

from ..errors import InputError
from .ser import as_tensor, engine_array

try:  # one-pass X b and X^T (X b) (setup.py builds it with the package)
    from . import _products
except ImportError:  # a source tree that was never built: two BLAS passes
    _products = None

# Effect updates of row-major float64 X through the one-pass product (when built).
USE_FUSED_PRODUCTS = True

# Column statistics: squared deviations in row blocks of about this size (cache resident).
_STATS_BLOCK_BYTES = 256 * 2**10

__all__ = [
    "IndividualData",
    "SuffStatData",
    "matvec",
    "operator_diagonal",
    "cov_to_cor",
    "check_symmetric",
    "all_finite",
    "column_moments",
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


def all_finite(x: torch.Tensor) -> bool:
    """Whether every entry of x is finite, from its column sums when they are finite.

    A NaN or infinite entry makes its column sum non-finite, so finite sums prove a
    finite matrix in one pass without a mask; only non-finite sums (or an overflow)
    fall back to the elementwise check.

    Examples
    --------
    >>> all_finite(torch.tensor([[1.0, 2.0], [3.0, float("nan")]]))
    False
    """
    if x.numel() == 0:
        return True
    a = engine_array(x)
    if isinstance(a, np.ndarray):
        with np.errstate(over="ignore", invalid="ignore"):
            sums = a.sum(axis=0) if a.ndim > 1 else a.sum(keepdims=True)
        if np.isfinite(sums).all():
            return True
        return bool(np.isfinite(a).all())
    return bool(torch.isfinite(x).all())


def column_moments(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Column means and unbiased standard deviations of X (n, p).

    Two passes as in a textbook variance: column sums (one product with a ones
    vector), then squared deviations from the mean accumulated over row blocks
    small enough to stay in cache. Fine for numerically awkward columns (large
    mean, small spread), and several times faster than ``torch.std`` on CPU.

    Examples
    --------
    >>> m, s = column_moments(torch.tensor([[1.0, 2.0], [3.0, 2.0]], dtype=torch.float64))
    >>> m.tolist(), s.tolist()
    ([2.0, 2.0], [1.4142135623730951, 0.0])
    """
    n, p = X.shape
    a = engine_array(X)
    if not isinstance(a, np.ndarray):
        mean = X.mean(dim=0)
        return mean, (X.std(dim=0) if n > 1 else torch.zeros_like(mean))
    ones = np.ones(n, dtype=a.dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        return _numpy_moments(a, ones, n, p, X.dtype)


def _numpy_moments(a: np.ndarray, ones: np.ndarray, n: int, p: int, dtype):
    mean = (ones @ a) / n
    if n < 2:
        return torch.from_numpy(mean), torch.zeros(p, dtype=dtype)
    rows = min(n, max(16, _STATS_BLOCK_BYTES // max(1, p * a.itemsize)))
    buf = np.empty((rows, p), dtype=a.dtype)
    ss = np.zeros(p, dtype=a.dtype)
    for start in range(0, n, rows):
        block = a[start: start + rows]
        dev = buf[: block.shape[0]]
        np.subtract(block, mean, out=dev)
        np.multiply(dev, dev, out=dev)
        ss += ones[: block.shape[0]] @ dev
    return torch.from_numpy(mean), torch.from_numpy(np.sqrt(ss / (n - 1)))


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

    def data_bytes(self) -> int:
        """Bytes of data an effect update streams (X, or a dense X'X / R; 0 for operators)."""
        data = getattr(self, "X", None)
        if data is None:
            data = getattr(self, "R", None)
        return data.numel() * data.element_size() if torch.is_tensor(data) else 0

    def eloglik(self, er2: float, sigma2: float) -> float:
        """Expected log-likelihood ``-n/2 log(2 pi sigma2) - ER2 / (2 sigma2)``."""
        return -0.5 * self.n * math.log(2.0 * math.pi * sigma2) - er2 / (2.0 * sigma2)


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
    moments : tuple of torch.Tensor, optional
        ``column_moments(X)`` when already computed.

    Examples
    --------
    >>> X = torch.tensor([[0.0, 1.0], [1.0, 1.0], [2.0, 0.0]], dtype=torch.float64)
    >>> data = IndividualData(X, torch.tensor([0.0, 1.0, 3.0], dtype=torch.float64))
    >>> [round(v, 12) for v in data.d.tolist()]
    [2.0, 2.0]
    """

    kind = "individual"

    def __init__(self, X: torch.Tensor, y: torch.Tensor, standardize: bool = True,
                 intercept: bool = True, null_column: bool = False, moments=None):
        n, p = X.shape
        self.X, self.n, self.p_data, self.null_column = X, n, p, null_column
        self.mean_y = float(y.mean()) if intercept else 0.0
        self.y = y - self.mean_y if intercept else y
        col_mean, col_sd = column_moments(X) if moments is None else moments
        col_mean, col_sd = col_mean.to(X.device), col_sd.to(X.device)
        self.col_mean, self.col_sd = col_mean, col_sd
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
        self._engine = None

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

    def _arrays(self) -> dict:
        """Engine arrays (numpy views on CPU) of X, y, 1/csd, the centring shift and X^T y."""
        if self._engine is None:
            X = self.X
            if not (X.is_contiguous() or X.T.is_contiguous()):
                X = X.contiguous()
            e = {"X": engine_array(X), "y": engine_array(self.y),
                 "inv_csd": engine_array(1.0 / self.csd_data),
                 "shift": engine_array(self._shift),
                 "centred": bool((self._shift != 0).any())}
            e["fused"] = (USE_FUSED_PRODUCTS and _products is not None and isinstance(e["X"], np.ndarray)
                          and e["X"].dtype == np.float64 and e["X"].flags.c_contiguous)
            e["xty"] = self._pad_e(self._xt(e, e["y"]))
            self._engine = e
        return self._engine

    def _pad_e(self, v):
        if not self.null_column:
            return v
        return np.concatenate([v, np.zeros(1, dtype=v.dtype)]) if isinstance(v, np.ndarray) \
            else torch.cat([v, v.new_zeros(1)])

    @staticmethod
    def _xt(e: dict, r):
        g = (r @ e["X"]) * e["inv_csd"]
        if e["centred"]:
            g = g - e["shift"] * r.sum()
        return g

    def products(self, b):
        """``f = X_std b`` and ``X_std^T f`` for an engine array b of length p (null entry ignored)."""
        e = self._arrays()
        b = b[: self.p_data]
        if e["fused"]:  # both products in one pass over X
            f, g = np.empty(self.n), np.empty(self.p_data)
            _products.fused(e["X"], b * e["inv_csd"], float(e["shift"] @ b) if e["centred"] else 0.0, f, g)
            g *= e["inv_csd"]
            if e["centred"]:
                g -= e["shift"] * f.sum()
            return f, self._pad_e(g)
        f = e["X"] @ (b * e["inv_csd"])
        if e["centred"]:
            f = f - e["shift"] @ b
        return f, self._pad_e(self._xt(e, f))

    def engine(self, alpha: torch.Tensor, mu: torch.Tensor) -> "IndividualEngine":
        """IBSS bookkeeping for this locus, starting from the effects ``alpha * mu`` (L, p)."""
        return IndividualEngine(self, alpha, mu)

    def er2(self, fitted: torch.Tensor, B: torch.Tensor, effect_fits: torch.Tensor,
            postb2: torch.Tensor) -> float:
        """Expected residual sum of squares ``E||y - X b||^2`` under the variational posterior."""
        resid = self.y - fitted
        return float(resid @ resid - (effect_fits * effect_fits).sum() + (postb2 @ self.d).sum())

    def correlations(self, idx: torch.Tensor) -> torch.Tensor:
        """Pearson correlations among the columns ``idx`` of X (NaN for constant columns).

        On CPU from the gathered columns' Gram matrix and the known column means and
        sds, ``(C^T C - n m m^T) / ((n - 1) s s^T)``, when no column's mean exceeds
        1000 of its sds (cancellation stays below 1e-10); otherwise, and off the CPU,
        from explicitly centred columns.
        """
        X = engine_array(self.X)
        if isinstance(X, np.ndarray):  # numpy gathers columns of a row-major X far faster
            cols = X[:, idx.cpu().numpy()]
            m = self.col_mean.numpy()[idx.cpu().numpy()]
            sd = self.col_sd.numpy()[idx.cpu().numpy()]
            with np.errstate(invalid="ignore", divide="ignore"):
                if bool((sd > 0).all()) and float(np.max(np.abs(m) / sd)) <= 1e3:
                    cov = (cols.T @ cols - self.n * np.outer(m, m)) / (self.n - 1)
                    return torch.from_numpy(cov / np.outer(sd, sd))
                cols = cols - cols.mean(axis=0)
                cols = cols / np.sqrt((cols * cols).sum(axis=0))
            return torch.from_numpy(cols.T @ cols)
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
        self._engine = None

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

    def fitted_e(self, b):
        """``X^T X b`` for an engine array b of length p (null row zero)."""
        if self._engine is None:
            R = self.R
            self._engine = {"R": R if isinstance(R, LinearOperator) else engine_array(R),
                            "w": engine_array(self.w), "xty": engine_array(self.Xty)}
        e = self._engine
        v = e["w"] * b[: self.p_data]
        if isinstance(e["R"], LinearOperator):
            out = engine_array(matvec(e["R"], as_tensor(v)).contiguous())
        else:
            out = e["R"] @ v
        out = (self.c * e["w"]) * out
        if not self.null_column:
            return out
        return np.concatenate([out, np.zeros(1, dtype=out.dtype)]) if isinstance(out, np.ndarray) \
            else torch.cat([out, out.new_zeros(1)])

    def engine(self, alpha: torch.Tensor, mu: torch.Tensor) -> "SuffStatEngine":
        """IBSS bookkeeping for this locus, starting from the effects ``alpha * mu`` (L, p)."""
        return SuffStatEngine(self, alpha, mu)

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



class _Engine:
    """IBSS bookkeeping of one locus on engine arrays (numpy on CPU, torch elsewhere).

    Keeps each effect's fitted values ``F[l]`` and their sum, and tells IBSS the
    ``X^T r`` of an effect's residual. An effect whose coefficients are exactly zero
    (prior variance 0) has ``F[l] = 0`` and costs no product; ``version`` changes
    whenever the fitted values do, so two zero effects updated at the same version
    see the very same residual.
    """

    def __init__(self, L: int, m: int, like):
        self.F = _zeros((L, m), like)
        self.fn = [0.0] * L          # f_l . f_l (individual) or b_l . f_l (summary)
        self.nonzero = [False] * L
        self.version = 0

    def state_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Effect fits (L, m) and fitted values (m,) as tensors."""
        return as_tensor(self.F), as_tensor(self.fitted)


def _zeros(shape, like):
    if isinstance(like, np.ndarray):
        return np.zeros(shape, dtype=like.dtype)
    return like.new_zeros(shape)


def _as_engine(t: torch.Tensor, like) -> object:
    return t.detach().cpu().numpy().astype(like.dtype, copy=True) if isinstance(like, np.ndarray) \
        else t.to(like).clone()


class IndividualEngine(_Engine):
    """:class:`_Engine` for individual data: ``F[l] = X b_l`` (n), ``G[l] = X^T X b_l`` (p) and
    ``xtr_full = X^T (y - fitted)``; the residual product of effect l is ``xtr_full + G[l]``
    and an update costs the two products of :meth:`IndividualData.products`.

    Examples
    --------
    >>> X = torch.eye(3, dtype=torch.float64)
    >>> data = IndividualData(X, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    >>> eng = data.engine(torch.full((1, 3), 1 / 3, dtype=X.dtype), torch.zeros(1, 3, dtype=X.dtype))
    >>> eng.nonzero
    [False]
    """

    def __init__(self, data: IndividualData, alpha: torch.Tensor, mu: torch.Tensor):
        e = data._arrays()
        like = e["xty"]
        L = alpha.shape[0]
        super().__init__(L, data.n, like)
        self.data = data
        self.G = _zeros((L, data.p), like)
        self.fitted = _zeros((data.n,), like)
        self.xtr_full = e["xty"].copy() if isinstance(like, np.ndarray) else e["xty"].clone()
        b = _as_engine(alpha * mu, like)
        for k in range(L):
            if bool((b[k] != 0).any()):
                f, g = data.products(b[k])
                self.F[k], self.G[k] = f, g
                self.fitted = self.fitted + f
                self.xtr_full = self.xtr_full - g
                self.fn[k] = float(f @ f)
                self.nonzero[k] = True

    def xtr_into(self, k: int, out) -> None:
        """Write ``X^T r`` of effect k's residual into ``out[:p]``."""
        p = self.data.p
        if self.nonzero[k]:
            out[:p] = self.xtr_full + self.G[k]
        else:
            out[:p] = self.xtr_full

    def set_effect(self, k: int, b, xtr) -> None:
        """Effect k is now ``b`` (None: exactly zero); ``xtr`` is its residual product."""
        p = self.data.p
        if b is None:
            if not self.nonzero[k]:
                return
            self.fitted = self.fitted - self.F[k]
            self.xtr_full = xtr[:p].copy() if isinstance(xtr, np.ndarray) else xtr[:p].clone()
            self.F[k] = 0.0
            self.G[k] = 0.0
            self.fn[k] = 0.0
            self.nonzero[k] = False
        else:
            f, g = self.data.products(b[:p])
            self.fitted = (self.fitted - self.F[k]) + f if self.nonzero[k] else self.fitted + f
            self.xtr_full = xtr[:p] - g
            self.F[k], self.G[k] = f, g
            self.fn[k] = float(f @ f)
            self.nonzero[k] = True
        self.version += 1

    def er2(self, q_sum: float) -> float:
        """Expected residual sum of squares, given ``sum_l d . (alpha_l mu2_l)``."""
        r = self.data._arrays()["y"] - self.fitted
        return float(r @ r) - sum(self.fn) + q_sum


class SuffStatEngine(_Engine):
    """:class:`_Engine` for sufficient statistics and RSS: ``F[l] = X^T X b_l`` (p); the
    residual product of effect l is ``X^T y - (fitted - F[l])``, an update one product with R.

    Examples
    --------
    >>> R = torch.eye(2, dtype=torch.float64)
    >>> ss = SuffStatData(R, torch.tensor([3.0, 1.0], dtype=torch.float64), yty=9.0, n=10, c=9.0)
    >>> eng = ss.engine(torch.full((1, 2), 0.5, dtype=R.dtype), torch.zeros(1, 2, dtype=R.dtype))
    >>> eng.nonzero
    [False]
    """

    def __init__(self, data: SuffStatData, alpha: torch.Tensor, mu: torch.Tensor):
        like = engine_array(data.Xty)
        L = alpha.shape[0]
        super().__init__(L, data.p, like)
        self.data = data
        self.xty = like
        self.fitted = _zeros((data.p,), like)
        self.Bm = _as_engine(alpha * mu, like)
        for k in range(L):
            if bool((self.Bm[k] != 0).any()):
                f = data.fitted_e(self.Bm[k])
                self.F[k] = f
                self.fitted = self.fitted + f
                self.fn[k] = float(self.Bm[k] @ f)
                self.nonzero[k] = True

    def xtr_into(self, k: int, out) -> None:
        """Write ``X^T r`` of effect k's residual into ``out[:p]``."""
        p = self.data.p
        if self.nonzero[k]:
            out[:p] = self.xty - (self.fitted - self.F[k])
        else:
            out[:p] = self.xty - self.fitted

    def set_effect(self, k: int, b, xtr) -> None:
        """Effect k is now ``b`` (None: exactly zero)."""
        p = self.data.p
        if b is None:
            if not self.nonzero[k]:
                return
            self.fitted = self.fitted - self.F[k]
            self.F[k] = 0.0
            self.Bm[k] = 0.0
            self.fn[k] = 0.0
            self.nonzero[k] = False
        else:
            b = b[:p]
            f = self.data.fitted_e(b)
            self.fitted = (self.fitted - self.F[k]) + f if self.nonzero[k] else self.fitted + f
            self.F[k] = f
            self.Bm[k] = b
            self.fn[k] = float(b @ f)
            self.nonzero[k] = True
        self.version += 1

    def er2(self, q_sum: float) -> float:
        """Expected residual sum of squares from the sufficient statistics."""
        bbar = self.Bm.sum(0)
        return (self.data.yty - 2.0 * float(bbar @ self.xty) + float(bbar @ self.fitted)
                - sum(self.fn) + q_sum)


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
