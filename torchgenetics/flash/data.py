"""``FlashData``: the checked data matrix of a flash fit (values, missingness, standard errors).

Missing entries (NaN in ``Y``) are stored as zeros with a 0/1 mask, so every
product over observed entries is a plain product. All checks raise
:class:`~torchgenetics.errors.InputError` naming the offending row or column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError

__all__ = ["FlashData"]

VAR_TYPES = (0, 1, 2, None)


def _first(mask: torch.Tensor) -> tuple[int, int]:
    i, j = (int(v) for v in torch.nonzero(mask)[0])
    return i, j


@dataclass
class FlashData:
    """A data matrix ready for flash.

    Attributes
    ----------
    Y : torch.Tensor
        ``(n, p)`` values, zeros where missing.
    mask : torch.Tensor or None
        ``(n, p)`` 1.0 where observed, 0.0 where missing (``None``: nothing missing).
    S2 : torch.Tensor or None
        Squared standard errors broadcastable to ``(n, p)`` (``None``: not given).
    var_type : int or None
        0 constant, 1 one variance per row, 2 one per column, ``None`` only ``S``.
    row_obs, col_obs : torch.Tensor
        Observed entries in each row / column.
    y2_mean : float
        Mean of ``Y^2`` over observed entries (sets the scale of variance floors).
    row_names, col_names : list of str or None
        Labels carried to the outputs.

    Examples
    --------
    >>> d = FlashData.build(torch.tensor([[1.0, float("nan")], [0.5, 2.0]]))
    >>> d.n_obs, d.mask is not None
    (3, True)
    """

    Y: torch.Tensor
    mask: torch.Tensor | None
    S2: torch.Tensor | None
    var_type: int | None
    row_obs: torch.Tensor
    col_obs: torch.Tensor
    row_names: list | None = None
    col_names: list | None = None
    y2_mean: float = 1.0

    @property
    def n(self) -> int:
        """Number of rows."""
        return int(self.Y.shape[0])

    @property
    def p(self) -> int:
        """Number of columns."""
        return int(self.Y.shape[1])

    @property
    def n_obs(self) -> int:
        """Number of observed entries."""
        return int(self.row_obs.sum())

    @property
    def implicit(self) -> bool:
        """Whether residuals can stay implicit (constant variance, nothing missing, no ``S``)."""
        return self.mask is None and self.S2 is None and self.var_type == 0

    @classmethod
    def build(
        cls,
        Y,
        S=None,
        var_type: int | None = 0,
        dtype: torch.dtype = torch.float64,
        device=None,
        row_names=None,
        col_names=None,
    ) -> FlashData:
        """Check and store ``Y`` (NaN = missing) and optional standard errors ``S``.

        Parameters
        ----------
        Y : array-like
            ``(n, p)`` matrix; NaN marks a missing value.
        S : float or array-like, optional
            Standard errors broadcastable to ``(n, p)`` (scalar, ``(n, 1)``,
            ``(1, p)`` or ``(n, p)``); positive and finite where ``Y`` is observed.
        var_type : {0, 1, 2, None}
            Residual variance structure to estimate; ``None`` uses ``S`` alone.
        dtype, device : optional
            Storage precision and device.
        row_names, col_names : sequence of str, optional
            Labels of rows and columns.

        Returns
        -------
        FlashData

        Raises
        ------
        InputError
            Not a 2-D numeric matrix, infinite values, a row or column with no
            observed value, bad ``S`` or ``var_type``.

        Examples
        --------
        >>> FlashData.build(torch.ones(2, 3), S=0.5, var_type=None).S2.item()
        0.25
        """
        if var_type not in VAR_TYPES:
            raise InputError(f"var_type must be 0 (constant), 1 (by row), 2 (by column) or None, got {var_type!r}")
        try:
            Y = torch.as_tensor(np.asarray(Y, dtype=np.float64) if not isinstance(Y, torch.Tensor) else Y)
        except (TypeError, ValueError) as err:
            raise InputError(f"Y must be a numeric matrix: {err}") from None
        Y = Y.to(dtype=dtype, device=device)
        if Y.ndim != 2 or Y.shape[0] < 1 or Y.shape[1] < 1:
            raise InputError(f"Y must be a non-empty 2-D matrix, got shape {tuple(Y.shape)}")
        missing = torch.isnan(Y)
        infinite = torch.isinf(Y)
        if bool(infinite.any()):
            i, j = _first(infinite)
            raise InputError(f"Y must be finite or NaN (missing); found {float(Y[i, j])} at row {i}, column {j}")
        observed = ~missing
        row_obs = observed.sum(1)
        col_obs = observed.sum(0)
        if bool((row_obs == 0).any()):
            i = int(torch.nonzero(row_obs == 0)[0])
            label = f" ({row_names[i]})" if row_names is not None else ""
            raise InputError(f"row {i}{label} of Y has no observed values (all NaN); drop it before fitting")
        if bool((col_obs == 0).any()):
            j = int(torch.nonzero(col_obs == 0)[0])
            label = f" ({col_names[j]})" if col_names is not None else ""
            raise InputError(f"column {j}{label} of Y has no observed values (all NaN); drop it before fitting")
        S2 = None
        if S is not None:
            S2 = cls._check_S(S, observed, dtype, Y.device)
        elif var_type is None:
            raise InputError("var_type=None (no variance estimated) needs standard errors S")
        for name, labels, size in (("row_names", row_names, Y.shape[0]), ("col_names", col_names, Y.shape[1])):
            if labels is not None and len(labels) != size:
                raise InputError(f"{name} has {len(labels)} labels but Y has {size}")
        mask = observed.to(dtype) if bool(missing.any()) else None
        Y = torch.where(missing, torch.zeros_like(Y), Y)
        n_obs = int(row_obs.sum())
        return cls(
            Y=Y,
            mask=mask,
            S2=S2,
            var_type=var_type,
            row_obs=row_obs.to(dtype),
            col_obs=col_obs.to(dtype),
            row_names=None if row_names is None else [str(r) for r in row_names],
            col_names=None if col_names is None else [str(c) for c in col_names],
            y2_mean=float((Y * Y).sum()) / n_obs,
        )

    @staticmethod
    def _check_S(S, observed, dtype, device) -> torch.Tensor:
        n, p = observed.shape
        try:
            S = torch.as_tensor(S, dtype=dtype, device=device)
        except (TypeError, ValueError, RuntimeError) as err:
            raise InputError(f"S must be numeric: {err}") from None
        if S.ndim == 1:
            if S.shape[0] == n:
                S = S.unsqueeze(1)
            elif S.shape[0] == p:
                S = S.unsqueeze(0)
        try:
            full = torch.broadcast_to(S, (n, p))
        except RuntimeError:
            raise InputError(f"S of shape {tuple(S.shape)} does not broadcast to Y's shape ({n}, {p})") from None
        bad = observed & ~(torch.isfinite(full) & (full > 0))
        if bool(bad.any()):
            i, j = _first(bad)
            raise InputError(
                f"standard errors S must be positive and finite where Y is observed; found {float(full[i, j])} "
                f"at row {i}, column {j}"
            )
        S = torch.where(observed if S.shape == (n, p) else torch.ones_like(S, dtype=torch.bool), S, torch.ones_like(S))
        return S * S

    def weights(self, tau: torch.Tensor) -> torch.Tensor:
        """Precisions times the observed mask, broadcastable to ``(n, p)``.

        Examples
        --------
        >>> d = FlashData.build(torch.ones(2, 2))
        >>> d.weights(torch.tensor(2.0)).item()
        2.0
        """
        return tau if self.mask is None else tau * self.mask
