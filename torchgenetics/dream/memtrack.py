"""Count the bytes of tensors alive during a block of code, on any device.

CPU tensors are invisible to :mod:`tracemalloc` and CPU PyTorch keeps no
allocation statistics, so :class:`TensorMemoryTracker` watches every ATen
operation through a ``TorchDispatchMode``: each new storage an operation returns
adds its size, and the storage is subtracted when the last tensor seen holding it
is freed. ``peak`` is the largest number of tracked bytes alive at once.
Tensors created before the block (inputs, parameters) are not counted.
"""

from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

__all__ = ["TensorMemoryTracker"]


class TensorMemoryTracker(TorchDispatchMode):
    """Context manager measuring the peak bytes of tensors created inside it.

    Attributes
    ----------
    current : int
        Bytes of tracked storages alive now.
    peak : int
        Largest ``current`` seen.
    allocated : int
        Bytes of all storages created (freed or not).

    Examples
    --------
    >>> with TensorMemoryTracker() as mem:
    ...     a = torch.zeros(1000, dtype=torch.float64)
    ...     b = a * 2
    ...     del a, b
    ...     c = torch.ones(10, dtype=torch.float64)
    >>> mem.peak, mem.current
    (16000, 80)
    """

    def __init__(self):
        super().__init__()
        self.current = 0
        self.peak = 0
        self.allocated = 0
        self._refs: dict[int, int] = {}
        self._sizes: dict[int, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for item in tree_flatten(out)[0]:
            if isinstance(item, torch.Tensor):
                self._track(item)
        return out

    def _track(self, tensor: torch.Tensor) -> None:
        if tensor.layout != torch.strided:
            return
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key == 0:
            return
        if key in self._refs:
            self._refs[key] += 1
        else:
            size = storage.nbytes()
            self._refs[key] = 1
            self._sizes[key] = size
            self.current += size
            self.allocated += size
            self.peak = max(self.peak, self.current)
        weakref.finalize(tensor, self._release, key)

    def _release(self, key: int) -> None:
        count = self._refs.get(key)
        if count is None:
            return
        if count > 1:
            self._refs[key] = count - 1
            return
        del self._refs[key]
        self.current -= self._sizes.pop(key)

    def reset_peak(self) -> None:
        """Start a new peak from the bytes alive now.

        Examples
        --------
        >>> with TensorMemoryTracker() as mem:
        ...     a = torch.zeros(100)
        ...     del a
        ...     mem.reset_peak()
        >>> mem.peak
        0
        """
        self.peak = self.current
