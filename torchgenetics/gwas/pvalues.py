"""P-values of t and 1-df chi-square statistics, with log10 p exact far below 1e-300.

``p`` itself underflows to 0 below about 1e-308; ``log10 p`` does not. For the
two-sided t test, ``p = I_x(df/2, 1/2)`` with ``x = df / (df + t^2)`` (regularized
incomplete beta); when that underflows (or is tiny) ``log I_x`` comes from the
continued fraction of the incomplete beta in log space. For a 1-df chi-square,
``p = 2 Phi(-sqrt(chi2))`` and ``log p = log 2 + log Phi(-sqrt(chi2))`` from
``log_ndtr``, which is accurate for any argument.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import special

__all__ = ["t_pvalue", "t_log10_pvalue", "chi2_pvalue", "chi2_log10_pvalue", "format_pvalue"]

_LN10 = math.log(10.0)
# Below this p the continued fraction gives log p directly (betainc loses digits as it
# approaches the smallest normal double).
_TINY = 1e-280
_CF_TERMS = 400


def _numpy(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float64)


def _log_betainc_cf(a: np.ndarray, b: np.ndarray, x: np.ndarray, log_x: np.ndarray) -> np.ndarray:
    """``log I_x(a, b)`` by the modified Lentz continued fraction (x < (a+1)/(a+b+2)).

    ``log_x`` is passed separately because ``x`` may underflow to 0.
    """
    tiny = 1e-300
    log_front = (a * log_x + b * np.log1p(-x) - np.log(a)
                 - (special.gammaln(a) + special.gammaln(b) - special.gammaln(a + b)))
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = np.ones_like(x)
    d = 1.0 - qab * x / qap
    d = np.where(np.abs(d) < tiny, tiny, d)
    d = 1.0 / d
    h = d.copy()
    for m in range(1, _CF_TERMS + 1):
        m2 = 2.0 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                    -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = np.where(np.abs(d) < tiny, tiny, d)
            c = 1.0 + num / c
            c = np.where(np.abs(c) < tiny, tiny, c)
            d = 1.0 / d
            h = h * d * c
            last = d * c
        if np.all(np.abs(last - 1.0) < 1e-15):
            break
    return log_front + np.log(h)


def t_pvalue(t, df) -> np.ndarray:
    """Two-sided p-value of a t statistic.

    Parameters
    ----------
    t : array-like or torch.Tensor
        Statistics (NaN gives NaN).
    df : array-like or float
        Degrees of freedom (broadcast against ``t``).

    Returns
    -------
    numpy.ndarray of float64
        ``P(|T_df| >= |t|)``; 0 where it underflows (use :func:`t_log10_pvalue`).

    Examples
    --------
    >>> round(float(t_pvalue(2.0, 10)), 6)
    0.073388
    """
    t, df = np.broadcast_arrays(_numpy(t), _numpy(df))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return special.betainc(df / 2.0, 0.5, df / (df + t * t))


def t_log10_pvalue(t, df) -> np.ndarray:
    """``log10`` of the two-sided t p-value, exact where ``p`` itself underflows.

    Parameters
    ----------
    t : array-like or torch.Tensor
        Statistics.
    df : array-like or float
        Degrees of freedom.

    Returns
    -------
    numpy.ndarray of float64
        ``log10 p`` (<= 0; NaN where ``t`` or ``df`` is NaN).

    Examples
    --------
    >>> float(t_log10_pvalue(100.0, 1000)) < -300
    True
    >>> bool(np.isclose(t_log10_pvalue(2.0, 10), np.log10(t_pvalue(2.0, 10))))
    True
    """
    t, df = np.broadcast_arrays(_numpy(t), _numpy(df))
    shape = t.shape
    t, df = t.astype(np.float64).ravel(), df.astype(np.float64).ravel()
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        p = special.betainc(df / 2.0, 0.5, df / (df + t * t))
        out = np.log10(p)
        small = np.isfinite(t) & np.isfinite(df) & (df > 0) & (p < _TINY)
        if small.any():
            a, nu, at = df[small] / 2.0, df[small], np.abs(t[small])
            # log x = log(nu / (nu + t^2)) without forming t^2 (it overflows for |t| > 1e154)
            log_x = np.log(nu) - 2.0 * np.log(at) - np.log1p(nu / at / at)
            out[small] = _log_betainc_cf(a, np.full_like(a, 0.5), np.exp(log_x), log_x) / _LN10
    return out.reshape(shape)


def chi2_pvalue(chi2) -> np.ndarray:
    """Upper-tail p-value of a chi-square statistic with one degree of freedom.

    Parameters
    ----------
    chi2 : array-like or torch.Tensor
        Statistics (>= 0; NaN gives NaN).

    Returns
    -------
    numpy.ndarray of float64

    Examples
    --------
    >>> round(float(chi2_pvalue(3.841459)), 6)
    0.05
    """
    chi2 = _numpy(chi2)
    with np.errstate(invalid="ignore"):
        return special.erfc(np.sqrt(np.clip(chi2, 0.0, None) / 2.0)) + np.where(np.isnan(chi2), np.nan, 0.0)


def chi2_log10_pvalue(chi2) -> np.ndarray:
    """``log10`` of the 1-df chi-square p-value, exact for any statistic.

    Parameters
    ----------
    chi2 : array-like or torch.Tensor

    Returns
    -------
    numpy.ndarray of float64

    Examples
    --------
    >>> round(float(chi2_log10_pvalue(2000.0)), 3)
    -436.043
    """
    chi2 = _numpy(chi2)
    with np.errstate(invalid="ignore"):
        z = np.sqrt(np.clip(chi2, 0.0, None))
        return (math.log(2.0) + special.log_ndtr(-z)) / _LN10 + np.where(np.isnan(chi2), np.nan, 0.0)


def format_pvalue(log10_p, digits: int = 6) -> list[str]:
    """Print p-values from their log10 with ``digits`` significant digits, below 1e-308 too.

    Parameters
    ----------
    log10_p : array-like
        ``log10 p`` values.
    digits : int, default 6
        Significant digits (as plink2's ``%g``).

    Returns
    -------
    list of str
        ``"NA"`` for NaN.

    Examples
    --------
    >>> format_pvalue([-1.0, -412.5, float("nan")])
    ['0.1', '3.16228e-413', 'NA']
    """
    out = []
    for lp in np.asarray(log10_p, dtype=np.float64).ravel():
        if not np.isfinite(lp):
            out.append("NA")
        elif lp > -300:
            out.append(f"{10.0 ** lp:.{digits}g}")
        else:
            exponent = math.floor(lp)
            mantissa = float(f"{10.0 ** (lp - exponent):.{digits}g}")
            if mantissa >= 10.0:
                mantissa, exponent = mantissa / 10.0, exponent + 1
            out.append(f"{mantissa:.{digits}g}e{exponent:+04d}".replace("e+", "e"))
    return out
