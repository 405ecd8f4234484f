"""Products of mean-imputed, centred genotype blocks with sample-space matrices.

A raw block ``X`` (n x b, NaN = missing) is never centred or imputed in memory:
with ``X0`` its copy with missing calls set to 0 (done in place), the column means
``mu`` over observed calls, and ``x_c = X0 - mu 1_obs`` (centred over observed
calls, 0 at missing ones, which is also mean imputation followed by centring),

    x_c' W = X0' W - mu (1'W) + mu * sum_{i missing} W_i
    x_c' x_c = X0' X0 - mu * sum(X0)

so one product ``X0' [W | 1]`` plus sums over the (few) missing calls give
everything the tests need.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch

__all__ = ["CentredBlock", "centred_products", "block_threads"]


@contextmanager
def block_threads(device):
    """Run per-block CPU work on one torch intra-op thread (restored afterwards).

    The block statistics are memory-bound element-wise passes and skinny products;
    the parallelism of a scan comes from decoding the next block in a background
    thread (bed-reader's own threads). Torch's OpenMP threads competing with those
    stall badly: on 2 shared cores a scan measured 10x slower with 2 intra-op threads
    than with 1. Other devices are left alone.

    Examples
    --------
    >>> with block_threads("cpu"):
    ...     torch.get_num_threads()
    1
    """
    if torch.device(device).type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class CentredBlock:
    """Per-variant quantities of one block (``b`` variants).

    Attributes
    ----------
    count : torch.Tensor
        (b,) observed calls.
    mean : torch.Tensor
        (b,) mean dosage of the observed calls.
    xw : torch.Tensor
        (b, k) ``x_c' W``.
    xx : torch.Tensor
        (b,) ``x_c' x_c``.
    missing_rows, missing_cols : torch.Tensor
        Sample and block-column of each missing call.

    Examples
    --------
    >>> X = torch.tensor([[0.0], [float("nan")], [2.0]], dtype=torch.float64)
    >>> c = centred_products(X, torch.ones(3, 1, dtype=torch.float64))
    >>> c.count.tolist(), c.missing_rows.tolist()
    ([2.0], [1])
    """

    count: torch.Tensor
    mean: torch.Tensor
    xw: torch.Tensor
    xx: torch.Tensor
    missing_rows: torch.Tensor
    missing_cols: torch.Tensor


def centred_products(X: torch.Tensor, W: torch.Tensor) -> CentredBlock:
    """``x_c' W`` and ``x_c' x_c`` for every column of a raw block (``X`` is overwritten).

    Parameters
    ----------
    X : torch.Tensor
        ``n x b`` raw dosages, NaN missing; missing entries are set to 0 in place.
    W : torch.Tensor
        ``n x k`` sample-space matrix.

    Returns
    -------
    CentredBlock

    Examples
    --------
    >>> X = torch.tensor([[0.0, 1.0], [2.0, float("nan")], [1.0, 2.0]], dtype=torch.float64)
    >>> r = centred_products(X, torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64))
    >>> r.mean.tolist(), r.xw[:, 0].tolist(), r.xx.tolist()
    ([1.0, 1.5], [1.0, 1.0], [2.0, 0.5])
    """
    miss = torch.isnan(X).nonzero()
    i, j = miss[:, 0], miss[:, 1]
    n, b = X.shape
    X.index_put_((i, j), torch.zeros((), dtype=X.dtype, device=X.device))
    count = n - torch.bincount(j, minlength=b).to(X.dtype)
    ones = torch.ones(n, 1, dtype=W.dtype, device=W.device)
    prod = X.T @ torch.cat([W, ones], dim=1)
    s = prod[:, -1]
    mean = s / count
    at_missing = torch.zeros(b, W.shape[1], dtype=W.dtype, device=W.device).index_add_(0, j, W[i])
    m1 = mean.unsqueeze(1)
    xw = prod[:, :-1] - m1 * W.sum(0) + m1 * at_missing
    xx = X.square().sum(0) - s * mean
    return CentredBlock(count, mean, xw, xx, i, j)
