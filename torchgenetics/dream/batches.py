"""Cell batches: per-batch row access and a batch size planned from measured memory.

:class:`CellRows` hands a model the rows of the cells in the current plate
subsample (dense tensors are indexed; scipy sparse matrices too large to densify
stay sparse and only the batch is densified). :func:`measure_bytes_per_cell`
measures, with :class:`~torchgenetics.dream.memtrack.TensorMemoryTracker`, the
peak bytes of one ELBO forward and backward pass at two batch sizes; the slope is
the bytes each extra cell costs. :func:`plan_batch_size` asks
:func:`torchgenetics.memory.plan_block` how many such cells fit the budget
(cgroup/SLURM/CUDA aware).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pyro
import scipy.sparse as sp
import torch
from pyro.infer import Trace_ELBO

from ..memory import available_bytes, dtype_bytes, plan_block
from .memtrack import TensorMemoryTracker

__all__ = ["CellRows", "measure_bytes_per_cell", "plan_batch_size"]


class CellRows:
    """Rows of a cells-first array, for the cells of a batch.

    Parameters
    ----------
    values : numpy.ndarray or scipy.sparse matrix
        cells x ... values.
    device : torch.device or str, optional
        Where batches live.
    dtype : torch.dtype, default float64
        Batch dtype.
    budget : int, optional
        Bytes a dense copy may take; a sparse matrix larger than this stays sparse.
        Default: :func:`torchgenetics.memory.available_bytes` on ``device``.

    Examples
    --------
    >>> rows = CellRows(np.arange(6.0).reshape(3, 2))
    >>> rows(torch.tensor([2, 0])).tolist()
    [[4.0, 5.0], [0.0, 1.0]]
    >>> rows(None).shape
    torch.Size([3, 2])
    """

    def __init__(self, values, *, device=None, dtype=torch.float64, budget: int | None = None):
        self.device = torch.device("cpu" if device is None else device)
        self.dtype = dtype
        self.shape = tuple(values.shape)
        self.n = self.shape[0]
        dense_bytes = int(np.prod(self.shape)) * dtype_bytes(dtype)
        budget = available_bytes(self.device) if budget is None else int(budget)
        if sp.issparse(values) and dense_bytes > budget:
            self.sparse = sp.csr_matrix(values)
            self.tensor = None
        else:
            dense = values.toarray() if sp.issparse(values) else np.asarray(values)
            self.sparse = None
            self.tensor = torch.as_tensor(dense, dtype=dtype, device=self.device)

    @property
    def is_dense(self) -> bool:
        """Whether the whole array is held as one dense tensor."""
        return self.tensor is not None

    def __call__(self, ind: torch.Tensor | None) -> torch.Tensor:
        """Rows ``ind`` (all rows when None or when ``ind`` covers every cell)."""
        if self.tensor is not None:
            if ind is None or ind.numel() == self.n:
                return self.tensor
            return self.tensor.index_select(0, ind.to(self.device))
        rows = np.arange(self.n) if ind is None else ind.detach().cpu().numpy()
        return torch.as_tensor(self.sparse[rows].toarray(), dtype=self.dtype, device=self.device)


def measure_bytes_per_cell(model: Callable, make_guide: Callable, n_cells: int, *,
                           model_kwargs: dict | None = None, probe: tuple = (16, 64)) -> int:
    """Bytes one more cell adds to an SVI step, measured on two small batches.

    Each probe builds a fresh guide in a private parameter store, then tracks the
    peak tensor bytes of one ``Trace_ELBO`` loss and its backward pass with the
    cells plate subsampled to the probe size. The result is the slope between the
    two probes (or the per-cell mean when only one size is possible).

    Parameters
    ----------
    model : callable
        Pyro model taking ``subsample_size=``.
    make_guide : callable
        ``make_guide(model)`` returns a fresh guide.
    n_cells : int
        Cells in the data.
    model_kwargs : dict, optional
        Other keyword arguments of the model.
    probe : tuple of int
        The two batch sizes.

    Returns
    -------
    int
        Bytes per cell (at least 1).

    Examples
    --------
    >>> import pyro.distributions as dist
    >>> from pyro.infer.autoguide import AutoNormal
    >>> y = torch.randn(500, 50, dtype=torch.float64)
    >>> def model(subsample_size=None):
    ...     m = pyro.sample("m", dist.Normal(torch.zeros(50, dtype=torch.float64), 1.0).to_event(1))
    ...     with pyro.plate("cells", 500, subsample_size=subsample_size, dim=-2) as ind:
    ...         pyro.sample("y", dist.Normal(m, 1.0).to_event(1), obs=y[ind])
    >>> measure_bytes_per_cell(model, AutoNormal, 500) >= 50 * 8
    True
    """
    kwargs = dict(model_kwargs or {})
    sizes = sorted({max(1, min(int(p), n_cells)) for p in probe})
    peaks = []
    for size in sizes:
        kw = {**kwargs, "subsample_size": size}
        with pyro.get_param_store().scope():
            guide = make_guide(model)
            guide(**kw)  # create the parameters outside the measurement
            with TensorMemoryTracker() as mem:
                loss = Trace_ELBO().differentiable_loss(model, guide, **kw)
                loss.backward()
                del loss
            peaks.append(mem.peak)
    if len(sizes) == 1:
        return max(int(math.ceil(peaks[0] / sizes[0])), 1)
    slope = (peaks[-1] - peaks[0]) / (sizes[-1] - sizes[0])
    return max(int(math.ceil(slope)), 1)


def plan_batch_size(n_cells: int, bytes_per_cell: int, *, budget=None, device=None,
                    safety: float = 0.5, min_batch: int = 64) -> int | None:
    """Cells per SVI step that fit the memory budget; None when all cells fit.

    Parameters
    ----------
    n_cells : int
        Cells in the data.
    bytes_per_cell : int
        From :func:`measure_bytes_per_cell`.
    budget : int or str, optional
        Bytes available; default ``available_bytes(device, safety)``.
    device : torch.device or str, optional
        Device whose budget is used.
    safety : float, default 0.5
        Fraction of free memory to claim when ``budget`` is None.
    min_batch : int, default 64
        Smallest useful batch; less raises :class:`~torchgenetics.errors.MemoryBudgetError`.

    Returns
    -------
    int or None
        Batch size, or None for full-batch SVI.

    Examples
    --------
    >>> plan_batch_size(10_000, 1000, budget="1MB")
    1000
    >>> plan_batch_size(100, 1000, budget="1GB") is None
    True
    """
    if budget is None:
        budget = available_bytes(device, safety=safety)
    size = plan_block(n_cells, bytes_per_cell, budget=budget, device=device, min_block=min(min_batch, n_cells))
    return None if size >= n_cells else int(size)
