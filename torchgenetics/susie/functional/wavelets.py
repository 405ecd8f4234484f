"""Orthonormal periodic discrete wavelet transform written in torch.

:func:`dwt` maps the last dimension of a tensor (a power of two ``T``) to its full
wavelet decomposition and :func:`idwt` inverts it exactly. The transform is batched
over all leading dimensions, runs on any device/dtype and is differentiable (it is
built from gathers and small matrix products). Coefficient layout, as used by the
functional SuSiE model: index 0 holds the coarsest scaling coefficient, then the
detail coefficients scale by scale from the coarsest (1 coefficient) to the finest
(``T/2`` coefficients); :func:`scale_index` labels them.

Filters: ``"haar"``, Daubechies extremal phase ``"d4" ... "d20"`` (wavethresh
``DaubExPhase``, filter.number 2..10) and least asymmetric ``"la8" ... "la20"``
(wavethresh ``DaubLeAsymm`` filter.number 4..10, the symlets). The number is the
filter length. Filters are derived numerically by spectral factorisation of
Daubechies' polynomial; the least asymmetric ones pick the root set recorded in
``_LA_ROOT_CHOICE`` (the choice that reproduces Daubechies' published tables).
Boundaries are periodic: when a level is shorter than the filter the filter is
wrapped around (periodised), which keeps every level orthonormal.
"""

from __future__ import annotations

import functools
from math import comb

import numpy as np
import torch

from ...errors import InputError

__all__ = ["WAVELETS", "wavelet_filter", "dwt", "idwt", "wavelet_matrix", "scale_index"]

# For each least asymmetric filter with N vanishing moments: for each group of
# conjugate roots of Daubechies' polynomial (sorted as in `_root_groups`), 1 takes the
# root outside the unit circle, 0 the one inside.
_LA_ROOT_CHOICE = {
    4: (1, 0),
    5: (0, 1),
    6: (0, 1, 0),
    7: (0, 1, 1),
    8: (1, 0, 1, 0),
    9: (1, 0, 0, 1),
    10: (0, 1, 0, 1, 0),
}

WAVELETS = ("haar",) + tuple(f"d{2 * n}" for n in range(2, 11)) + tuple(
    f"la{2 * n}" for n in sorted(_LA_ROOT_CHOICE)
)


def _root_groups(n_moments: int) -> list[list[complex]]:
    """Roots y of Daubechies' polynomial sum_k C(N-1+k, k) y^k, grouped in conjugate
    pairs (real roots alone), sorted by real part then imaginary part."""
    coefs = [comb(n_moments - 1 + k, k) for k in range(n_moments)]
    roots = np.roots(coefs[::-1]) if n_moments > 1 else np.array([])
    upper = sorted((r for r in roots if r.imag > -1e-12), key=lambda r: (round(r.real, 9), r.imag))
    return [[complex(r.real, 0.0)] if abs(r.imag) <= 1e-12 else [complex(r), complex(r).conjugate()]
            for r in upper]


def _z_roots(y: complex) -> tuple[complex, complex]:
    """The two roots z, 1/z of z + 1/z = 2 - 4y (y = sin^2(w/2)), inside one first."""
    b = 2.0 - 4.0 * y
    disc = np.sqrt(b * b - 4.0 + 0j)
    z1, z2 = (b + disc) / 2.0, (b - disc) / 2.0
    return (z1, z2) if abs(z1) <= abs(z2) else (z2, z1)


def _daubechies(n_moments: int, choice: tuple[int, ...]) -> np.ndarray:
    roots = [-1.0 + 0j] * n_moments
    for group, outside in zip(_root_groups(n_moments), choice, strict=True):
        roots += [_z_roots(y)[outside] for y in group]
    h = np.real(np.poly(roots))
    return h * (np.sqrt(2.0) / h.sum())


@functools.lru_cache(maxsize=None)
def _filter(name: str) -> tuple[float, ...]:
    if name == "haar":
        return (2.0**-0.5, 2.0**-0.5)
    if name.startswith("la") and name[2:].isdigit() and int(name[2:]) // 2 in _LA_ROOT_CHOICE \
            and int(name[2:]) % 2 == 0:
        n = int(name[2:]) // 2
        return tuple(_daubechies(n, _LA_ROOT_CHOICE[n]).tolist())
    if name.startswith("d") and name[1:].isdigit() and int(name[1:]) % 2 == 0 \
            and 2 <= int(name[1:]) <= 20:
        n = int(name[1:]) // 2
        return tuple(_daubechies(n, (1,) * len(_root_groups(n))).tolist())
    raise InputError(f"unknown wavelet {name!r}: expected one of {', '.join(WAVELETS)}")


def wavelet_filter(wavelet: str = "haar") -> np.ndarray:
    """Low-pass (scaling) filter of an orthonormal Daubechies wavelet.

    Parameters
    ----------
    wavelet : str
        One of :data:`WAVELETS`: ``"haar"``, ``"d4" ... "d20"`` (extremal phase) or
        ``"la8" ... "la20"`` (least asymmetric); the number is the filter length.

    Returns
    -------
    numpy.ndarray
        The filter ``h`` (float64): unit norm, orthogonal to its even shifts, sums to
        ``sqrt(2)``. The high-pass filter is ``g[n] = (-1)^n h[L-1-n]``.

    Examples
    --------
    >>> h = wavelet_filter("la10")
    >>> len(h), round(float(h.sum()) ** 2, 12)
    (10, 2.0)
    """
    return np.array(_filter(str(wavelet).lower()))


def _filters(wavelet: str, dtype, device) -> torch.Tensor:
    """(L, 2) matrix whose columns are the low- and high-pass filters."""
    h = np.array(_filter(str(wavelet).lower()))
    g = h[::-1] * (-1.0) ** np.arange(len(h))
    return torch.tensor(np.stack([h, g], axis=1), dtype=dtype, device=device)


def _n_levels(T: int, what: str) -> int:
    if T < 1 or T & (T - 1):
        raise InputError(f"{what} has length {T} along its last dimension: expected a power of two")
    return T.bit_length() - 1


@functools.lru_cache(maxsize=256)
def _analysis_index(n: int, taps: int, device: torch.device) -> torch.Tensor:
    """(n/2, taps) positions (2k + t) mod n read by output k of a level of length n."""
    k = torch.arange(n // 2, device=device)[:, None]
    return (2 * k + torch.arange(taps, device=device)[None, :]) % n


@functools.lru_cache(maxsize=256)
def _synthesis_index(half: int, taps: int, device: torch.device) -> torch.Tensor:
    """(half, taps/2) coefficient positions (i - j) mod half feeding samples 2i, 2i+1."""
    i = torch.arange(half, device=device)[:, None]
    return (i - torch.arange(taps // 2, device=device)[None, :]) % half


def _as_float(x, name: str) -> torch.Tensor:
    x = torch.as_tensor(x)
    if not (x.is_floating_point() or x.is_complex()):
        x = x.to(torch.float64)
    if x.dim() == 0:
        raise InputError(f"{name} is a scalar: expected a tensor (..., T)")
    return x


def dwt(x, wavelet: str = "haar") -> torch.Tensor:
    """Orthonormal periodic discrete wavelet transform along the last dimension.

    Parameters
    ----------
    x : torch.Tensor
        Signals of shape (..., T), T a power of two (T = 1 is the identity).
    wavelet : str
        Filter name, see :func:`wavelet_filter`.

    Returns
    -------
    torch.Tensor
        Coefficients (..., T), same dtype/device: index 0 is the coarsest scaling
        coefficient, then detail coefficients from the coarsest scale (1 coefficient)
        to the finest (T/2); see :func:`scale_index`. ``dwt(x) == x @ wavelet_matrix(T).T``.

    Examples
    --------
    >>> x = torch.tensor([1.0, 3.0, 5.0, 7.0], dtype=torch.float64)
    >>> dwt(x).round(decimals=6).tolist()  # [sum/2, (x0+x1-x2-x3)/2, (x0-x1)/√2, (x2-x3)/√2]
    [8.0, -4.0, -1.414214, -1.414214]
    >>> torch.allclose(idwt(dwt(x, "la10"), "la10"), x)
    True
    """
    x = _as_float(x, "x")
    levels = _n_levels(x.shape[-1], "x")
    hg = _filters(wavelet, x.dtype, x.device)
    details = []
    a = x
    for _ in range(levels):
        parts = a[..., _analysis_index(a.shape[-1], hg.shape[0], x.device)] @ hg  # (..., n/2, 2)
        a = parts[..., 0]
        details.append(parts[..., 1])
    return torch.cat([a] + details[::-1], dim=-1) if levels else x.clone()


def idwt(coeffs, wavelet: str = "haar") -> torch.Tensor:
    """Inverse of :func:`dwt` (exact up to rounding: the transform is orthogonal).

    Parameters
    ----------
    coeffs : torch.Tensor
        Coefficients (..., T) in the layout returned by :func:`dwt`.
    wavelet : str
        The filter used by the forward transform.

    Returns
    -------
    torch.Tensor
        Signals (..., T).

    Examples
    --------
    >>> c = torch.tensor([8.0, -4.0, -2 ** 0.5, -2 ** 0.5], dtype=torch.float64)
    >>> idwt(c).round(decimals=12).tolist()
    [1.0, 3.0, 5.0, 7.0]
    """
    c = _as_float(coeffs, "coeffs")
    levels = _n_levels(c.shape[-1], "coeffs")
    if not levels:
        return c.clone()
    hg = _filters(wavelet, c.dtype, c.device)
    taps = hg.shape[0]
    # even/odd output samples read the even/odd filter taps
    even, odd = hg[0::2], hg[1::2]  # (taps/2, 2)
    a = c[..., :1]
    for level in range(levels):
        half = 1 << level
        d = c[..., half:2 * half]
        idx = _synthesis_index(half, taps, c.device)
        A, D = a[..., idx], d[..., idx]  # (..., half, taps/2)
        out_even = A @ even[:, 0] + D @ even[:, 1]
        out_odd = A @ odd[:, 0] + D @ odd[:, 1]
        a = torch.stack([out_even, out_odd], dim=-1).reshape(*c.shape[:-1], 2 * half)
    return a


@functools.lru_cache(maxsize=64)
def _matrix64(T: int, wavelet: str) -> torch.Tensor:
    return dwt(torch.eye(T, dtype=torch.float64), wavelet).T.contiguous()


def wavelet_matrix(T: int, wavelet: str = "haar", dtype=torch.float64, device=None) -> torch.Tensor:
    """The T x T orthogonal matrix of :func:`dwt`.

    Parameters
    ----------
    T : int
        Signal length, a power of two.
    wavelet : str
        Filter name, see :func:`wavelet_filter`.
    dtype, device
        Of the returned matrix (computed once in float64 per (T, wavelet) and cached).

    Returns
    -------
    torch.Tensor
        ``W`` with ``dwt(x) == x @ W.T`` and ``W @ W.T == I``.

    Examples
    --------
    >>> W = wavelet_matrix(8, "la8")
    >>> torch.allclose(W @ W.T, torch.eye(8, dtype=torch.float64))
    True
    """
    _n_levels(int(T), "wavelet_matrix")
    return _matrix64(int(T), str(wavelet).lower()).to(dtype=dtype, device=device, copy=True)


def scale_index(T: int) -> torch.Tensor:
    """Scale label of each wavelet coefficient in the :func:`dwt` layout.

    Parameters
    ----------
    T : int
        Signal length, a power of two.

    Returns
    -------
    torch.LongTensor
        (T,): 0 for the scaling coefficient, then 1 .. log2(T) for the detail
        coefficients from the coarsest scale to the finest (scale s has 2^(s-1)).

    Examples
    --------
    >>> scale_index(8).tolist()
    [0, 1, 2, 2, 3, 3, 3, 3]
    """
    levels = _n_levels(int(T), "scale_index")
    labels = [torch.zeros(1, dtype=torch.long)]
    labels += [torch.full((1 << (s - 1),), s, dtype=torch.long) for s in range(1, levels + 1)]
    return torch.cat(labels)
