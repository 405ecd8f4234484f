"""Map a functional outcome onto an evenly spaced power-of-two grid.

The wavelet transform of :mod:`.wavelets` needs ``2^J`` evenly spaced positions.
:func:`to_grid` leaves an outcome that already has that shape alone and otherwise
interpolates each row linearly (in torch, so on the outcome's device) onto ``2^J``
evenly spaced points spanning the observed positions.
"""

from __future__ import annotations

import math

import torch

from ...errors import InputError

__all__ = ["to_grid"]


def _check_outcome(Y) -> torch.Tensor:
    Y = torch.as_tensor(Y)
    if not Y.is_floating_point():
        Y = Y.to(torch.float64)
    if Y.dim() != 2:
        raise InputError(f"Y has shape {tuple(Y.shape)}: expected a 2-D matrix (samples x positions)")
    if Y.shape[1] == 0:
        raise InputError("Y has no columns: expected at least one position")
    bad = torch.isnan(Y).any(dim=1).nonzero().flatten()
    if bad.numel():
        rows = ", ".join(str(int(i)) for i in bad[:5])
        more = f" (and {bad.numel() - 5} more)" if bad.numel() > 5 else ""
        raise InputError(
            f"Y has missing values (NaN) in row {rows}{more}: remove or impute these samples"
        )
    return Y


def _check_positions(pos, T: int, device) -> torch.Tensor:
    pos = torch.as_tensor(pos).to(dtype=torch.float64, device=device)
    if pos.dim() != 1 or pos.numel() != T:
        raise InputError(f"pos has shape {tuple(pos.shape)}: expected {T} positions, one per column of Y")
    if not torch.isfinite(pos).all():
        i = int((~torch.isfinite(pos)).nonzero()[0])
        raise InputError(f"pos[{i}] = {pos[i].item()} is not finite")
    step = pos[1:] - pos[:-1]
    if (step <= 0).any():
        i = int((step <= 0).nonzero()[0]) + 1
        raise InputError(
            f"pos is not strictly increasing: pos[{i}] = {pos[i].item():g} follows pos[{i - 1}] = "
            f"{pos[i - 1].item():g}"
        )
    return pos


def _evenly_spaced(pos: torch.Tensor) -> bool:
    if pos.numel() < 3:
        return True
    step = pos[1:] - pos[:-1]
    return bool(((step - step[0]).abs() <= 1e-9 * step[0].abs()).all())


def to_grid(Y, pos=None, max_log2: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Put the columns of a functional outcome on an evenly spaced ``2^J`` grid.

    Parameters
    ----------
    Y : torch.Tensor
        n x T outcome (one row per sample, one column per position), no NaN.
    pos : array-like, optional
        The T positions of the columns, strictly increasing; default ``0 .. T-1``.
    max_log2 : int
        The grid has at most ``2^max_log2`` points.

    Returns
    -------
    Y_grid : torch.Tensor
        n x 2^J. ``Y`` itself when T is a power of two no larger than
        ``2^max_log2`` and the positions are evenly spaced; otherwise each row
        linearly interpolated onto the grid, with ``J = min(ceil(log2 T), max_log2)``.
    grid_pos : torch.Tensor
        The 2^J grid positions (float64, evenly spaced over [min(pos), max(pos)]).

    Raises
    ------
    InputError
        Y not 2-D or with NaN rows (naming the rows); pos of the wrong length, not
        finite or not strictly increasing (naming the first offending index).

    Examples
    --------
    >>> Y = torch.tensor([[0.0, 1.0, 4.0]], dtype=torch.float64)
    >>> Yg, grid = to_grid(Y, pos=[0.0, 1.0, 2.0])
    >>> Yg.round(decimals=4).tolist(), grid.round(decimals=4).tolist()
    ([[0.0, 0.6667, 2.0, 4.0]], [0.0, 0.6667, 1.3333, 2.0])
    """
    Y = _check_outcome(Y)
    T = Y.shape[1]
    if int(max_log2) != max_log2 or max_log2 < 0:
        raise InputError(f"max_log2 = {max_log2}: expected a non-negative integer")
    if pos is None:
        pos = torch.arange(T, dtype=torch.float64, device=Y.device)
    else:
        pos = _check_positions(pos, T, Y.device)
    J = min(math.ceil(math.log2(T)), int(max_log2))
    if T == 1 << J and _evenly_spaced(pos):
        return Y, pos
    grid = torch.linspace(float(pos[0]), float(pos[-1]), 1 << J, dtype=torch.float64, device=Y.device)
    right = torch.searchsorted(pos, grid, right=True).clamp(1, T - 1)
    left = right - 1
    weight = ((grid - pos[left]) / (pos[right] - pos[left])).clamp(0.0, 1.0).to(Y.dtype)
    return Y[:, left] * (1 - weight) + Y[:, right] * weight, grid
