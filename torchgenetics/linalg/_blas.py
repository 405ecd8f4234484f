"""Symmetric level-3 BLAS (``syrk``, ``dsymm``, ``dsyr2k``) on column-major arrays.

numpy and torch expose general matrix products only; a symmetric rank-2k update
of the lower triangle does half of their work. SciPy publishes the BLAS it links
to as ``scipy.linalg.cython_blas`` (function pointers in ``__pyx_capi__``); they
are called here through ctypes with an explicit leading dimension, so a trailing
sub-matrix is updated in place without a copy.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache

import numpy as np

__all__ = ["one_thread", "symm_lower", "syr2k_lower", "syrk_lower"]

_INT, _DBL = ctypes.c_int, ctypes.c_double
_SIGNATURE = ctypes.CFUNCTYPE(
    None, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(_INT), ctypes.POINTER(_INT),
    ctypes.POINTER(_DBL), ctypes.c_void_p, ctypes.POINTER(_INT), ctypes.c_void_p, ctypes.POINTER(_INT),
    ctypes.POINTER(_DBL), ctypes.c_void_p, ctypes.POINTER(_INT),
)


_FLT = ctypes.c_float
_SYRK = {
    np.float64: ("dsyrk", _DBL), np.float32: ("ssyrk", _FLT),
}


def _syrk_signature(scalar):
    return ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(_INT), ctypes.POINTER(_INT),
                            ctypes.POINTER(scalar), ctypes.c_void_p, ctypes.POINTER(_INT), ctypes.POINTER(scalar),
                            ctypes.c_void_p, ctypes.POINTER(_INT))


@lru_cache(maxsize=None)
def _routine(name: str):
    from scipy.linalg import cython_blas

    api = ctypes.pythonapi
    api.PyCapsule_GetName.restype = ctypes.c_char_p
    api.PyCapsule_GetName.argtypes = [ctypes.py_object]
    api.PyCapsule_GetPointer.restype = ctypes.c_void_p
    api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    capsule = cython_blas.__pyx_capi__[name]
    signature = {"dsyrk": _syrk_signature(_DBL), "ssyrk": _syrk_signature(_FLT)}.get(name, _SIGNATURE)
    return signature(api.PyCapsule_GetPointer(capsule, api.PyCapsule_GetName(capsule)))


@lru_cache(maxsize=None)
def _pools():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def one_thread():
    """Context in which every BLAS and OpenMP pool of the process runs one thread.

    For many small dense operations (blocks of ~100 x 100): handing each to a
    thread pool costs more than the work, and idle threads of one pool spinning
    while another pool works slows both (measured: the block-tridiagonal REML
    evaluations took 6.6 s with two threads against 0.2 s with one, n = 8,000).

    Examples
    --------
    >>> with one_thread():
    ...     float(np.ones((2, 2)) @ np.ones(2) @ np.ones(2))
    4.0
    """
    return _pools().limit(limits=1)


def _address(a: np.ndarray, row: int, col: int) -> int:
    return a.ctypes.data + (row + col * a.shape[0]) * a.itemsize


def _fortran(x: np.ndarray, name: str) -> np.ndarray:
    if x.dtype != np.float64 or not x.flags.f_contiguous:
        raise ValueError(f"{name} must be a column-major float64 array")
    return x


def symm_lower(A: np.ndarray, start: int, B: np.ndarray) -> np.ndarray:
    """``A[start:, start:] @ B`` reading only the lower triangle of that block.

    Parameters
    ----------
    A : np.ndarray
        (n, n) column-major float64; its trailing block from ``start`` is symmetric
        with the lower triangle stored.
    start : int
    B : np.ndarray
        (n - start, k) column-major float64.

    Returns
    -------
    np.ndarray
        (n - start, k) column-major.

    Examples
    --------
    >>> A = np.asfortranarray(np.tril(np.arange(9.0).reshape(3, 3)))
    >>> S = np.tril(A) + np.tril(A, -1).T
    >>> B = np.asfortranarray(np.ones((2, 1)))
    >>> bool(np.allclose(symm_lower(A, 1, B), S[1:, 1:] @ B))
    True
    """
    _fortran(A, "A"), _fortran(B, "B")
    r, k = B.shape
    out = np.zeros((r, k), order="F")
    _routine("dsymm")(b"L", b"L", _INT(r), _INT(k), _DBL(1.0), _address(A, start, start), _INT(A.shape[0]),
                      B.ctypes.data, _INT(r), _DBL(0.0), out.ctypes.data, _INT(r))
    return out


def syr2k_lower(A: np.ndarray, start: int, V: np.ndarray, W: np.ndarray) -> None:
    """In place ``A[start:, start:] -= V W' + W V'`` on the lower triangle only.

    Parameters
    ----------
    A : np.ndarray
        (n, n) column-major float64.
    start : int
    V, W : np.ndarray
        (n - start, k) column-major float64.

    Examples
    --------
    >>> A = np.asfortranarray(np.zeros((3, 3)))
    >>> V = np.asfortranarray(np.ones((3, 1)))
    >>> syr2k_lower(A, 0, V, V)
    >>> float(A[2, 0]), float(A[0, 2])
    (-2.0, 0.0)
    """
    _fortran(A, "A"), _fortran(V, "V"), _fortran(W, "W")
    r, k = V.shape
    _routine("dsyr2k")(b"L", b"N", _INT(r), _INT(k), _DBL(-1.0), V.ctypes.data, _INT(r), W.ctypes.data,
                       _INT(r), _DBL(1.0), _address(A, start, start), _INT(A.shape[0]))


def syrk_lower(C: np.ndarray, Z: np.ndarray, beta: float = 1.0) -> None:
    """In place ``C = beta C + Z Z'`` on the lower triangle.

    Parameters
    ----------
    C : np.ndarray
        (n, n) column-major, float32 or float64 (the dtype of ``Z``).
    Z : np.ndarray
        (n, k), C- or column-contiguous (read in place either way).
    beta : float

    Examples
    --------
    >>> Z = np.arange(6.0).reshape(3, 2)
    >>> C = np.zeros((3, 3), order="F")
    >>> syrk_lower(C, Z)
    >>> syrk_lower(C, np.asfortranarray(Z))
    >>> bool(np.allclose(np.tril(C), 2 * np.tril(Z @ Z.T)))
    True
    """
    if Z.dtype.type not in _SYRK or C.dtype != Z.dtype or not C.flags.f_contiguous:
        raise ValueError("Z must be float32/float64 and C a column-major array of the same dtype")
    n, k = Z.shape
    if Z.flags.f_contiguous:
        trans, lda = b"N", max(n, 1)
    elif Z.flags.c_contiguous:
        trans, lda = b"T", max(k, 1)  # Z' is column-major
    else:
        raise ValueError("Z must be C- or column-contiguous")
    name, scalar = _SYRK[Z.dtype.type]
    _routine(name)(b"L", trans, _INT(n), _INT(k), scalar(1.0), Z.ctypes.data, _INT(lda), scalar(beta),
                   C.ctypes.data, _INT(C.shape[0]))
