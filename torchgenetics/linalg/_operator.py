"""Uniform matrix-multiply access to dense tensors, LinearOperators and callables.

Every routine in :mod:`torchgenetics.linalg` accepts a symmetric ``A`` given as a
``torch.Tensor``, a ``linear_operator.LinearOperator`` or a plain callable
``X -> A @ X``; :func:`as_operator` turns any of them into one small object.
"""

from __future__ import annotations

from typing import Callable, Union

import torch
from linear_operator.operators import LinearOperator

from torchgenetics.errors import InputError

__all__ = ["MatmulLike", "Operator", "as_operator", "as_solver"]

MatmulLike = Union[torch.Tensor, LinearOperator, Callable[[torch.Tensor], torch.Tensor]]


class Operator:
    """A square n x n matrix seen only through ``matmul``.

    Parameters
    ----------
    source : Tensor, LinearOperator or callable
        The matrix (kept for :meth:`dense`).
    n : int
        Number of rows (= columns).
    dtype, device : optional
        Known for tensors and LinearOperators; ``None`` for callables (they follow
        the right-hand side).

    Examples
    --------
    >>> op = as_operator(torch.eye(3, dtype=torch.float64))
    >>> op.matmul(torch.ones(3, 2, dtype=torch.float64)).shape
    torch.Size([3, 2])
    """

    def __init__(self, source, n: int, dtype=None, device=None):
        self.source = source
        self.n = int(n)
        self.dtype = dtype
        self.device = device
        if isinstance(source, torch.Tensor):
            self.kind = "tensor"
        elif isinstance(source, LinearOperator):
            self.kind = "linear_operator"
        else:
            self.kind = "callable"

    def matmul(self, X: torch.Tensor) -> torch.Tensor:
        """Return ``A @ X`` for an (n,) or (n, k) tensor ``X``."""
        if X.shape[0] != self.n:
            raise InputError(
                f"right-hand side has {X.shape[0]} rows; the operator is {self.n} x {self.n}"
            )
        if self.kind == "tensor":
            return self.source @ X
        if self.kind == "linear_operator":
            out = self.source.matmul(X)
            return out.to_dense() if isinstance(out, LinearOperator) else out
        out = self.source(X)
        if not isinstance(out, torch.Tensor) or out.shape != X.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise InputError(f"matmul callable returned {got} for input of shape {tuple(X.shape)}")
        return out

    __call__ = matmul

    def dense(self, dtype=None, device=None) -> torch.Tensor:
        """Materialise the n x n matrix (exact paths and tests only)."""
        if self.kind == "tensor":
            return self.source
        if self.kind == "linear_operator":
            return self.source.to_dense()
        eye = torch.eye(self.n, dtype=dtype or torch.float64, device=device)
        return self.matmul(eye)

    def diagonal(self, dtype=None, device=None) -> torch.Tensor:
        """The diagonal: exact for tensors and LinearOperators, n matvecs for callables."""
        if self.kind == "tensor":
            return self.source.diagonal()
        if self.kind == "linear_operator":
            return self.source.diagonal()
        return self.dense(dtype, device).diagonal()

    def has_cheap_diagonal(self) -> bool:
        """True when the diagonal needs no matvecs (tensor, or a LinearOperator whose class defines it)."""
        if self.kind == "tensor":
            return True
        if self.kind == "linear_operator":
            return type(self.source)._diagonal is not LinearOperator._diagonal
        return False


def as_operator(A: MatmulLike, size: int | None = None) -> Operator:
    """Wrap a tensor, LinearOperator or matmul callable as an :class:`Operator`.

    Parameters
    ----------
    A : Tensor (n, n), LinearOperator (n, n) or callable
        A symmetric matrix. A callable maps an (n, k) tensor to ``A @ X``.
    size : int, optional
        n. Required for callables unless the caller infers it from a right-hand side.

    Returns
    -------
    Operator

    Examples
    --------
    >>> Z = torch.randn(5, 3, dtype=torch.float64)
    >>> as_operator(lambda X: Z @ (Z.T @ X), size=5).n
    5
    """
    if isinstance(A, Operator):
        return A
    if isinstance(A, (torch.Tensor, LinearOperator)):
        if A.dim() != 2 or A.shape[-1] != A.shape[-2]:
            raise InputError(f"expected a square n x n matrix, got shape {tuple(A.shape)}")
        if size is not None and int(size) != A.shape[-1]:
            raise InputError(
                f"{size} rows (right-hand side, probes or size=) do not match the matrix shape {tuple(A.shape)}"
            )
        return Operator(A, A.shape[-1], A.dtype, A.device)
    if callable(A):
        if size is None:
            raise InputError("a matmul callable needs its size n (pass size=n)")
        return Operator(A, size)
    raise InputError(f"expected a Tensor, LinearOperator or callable, got {type(A).__name__}")


def as_solver(preconditioner) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """Turn ``None``, a callable ``R -> M^{-1} R`` or an object with ``.solve`` into a callable.

    Examples
    --------
    >>> as_solver(None) is None
    True
    >>> as_solver(lambda R: R / 2)(torch.ones(2)).tolist()
    [0.5, 0.5]
    """
    if preconditioner is None:
        return None
    solve = getattr(preconditioner, "solve", None)
    if callable(solve):
        return solve
    if callable(preconditioner):
        return preconditioner
    raise InputError(
        f"preconditioner must be a callable R -> M^-1 R or have a .solve method, got {type(preconditioner).__name__}"
    )
