"""P-values and their log10 against closed forms and 60-digit mpmath values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from torchgenetics.gwas.pvalues import (
    chi2_log10_pvalue,
    chi2_pvalue,
    format_pvalue,
    t_log10_pvalue,
    t_pvalue,
)


def test_t_pvalue_matches_scipy_in_the_bulk():
    t = np.linspace(-8, 8, 41)
    for df in (3, 50, 10_000):
        np.testing.assert_allclose(t_pvalue(t, df), 2 * stats.t.sf(np.abs(t), df), rtol=1e-10)
        np.testing.assert_allclose(t_log10_pvalue(t, df), np.log10(2 * stats.t.sf(np.abs(t), df)), rtol=1e-10)


@pytest.mark.parametrize("t", [1e10, 1e100, 1e200, 1e300])
def test_t_log10_closed_forms_far_below_1e_300(t):
    # df = 1 (Cauchy): p = (2/pi) atan(1/t); df = 2: p = 1 - t / sqrt(2 + t^2) = 2 / (s (s + t))
    assert t_log10_pvalue(t, 1) == pytest.approx(math.log10(2 / math.pi) - math.log10(t), rel=1e-12)
    assert t_log10_pvalue(-t, 2) == pytest.approx(-2 * math.log10(t), rel=1e-12)


@pytest.mark.parametrize(("t", "df", "expected"), [
    # mpmath (60 digits): log10 betainc(df/2, 1/2, 0, df/(df+t^2), regularized=True)
    (300.0, 5000, -3198.8198333129856332),
    (60.0, 1_000_000, -782.20187281106514903),
    (45.0, 2000, -305.33556182335377744),
])
def test_t_log10_against_mpmath(t, df, expected):
    assert float(t_log10_pvalue(t, df)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("chi2", "expected"), [
    # mpmath (60 digits): log10 erfc(sqrt(chi2 / 2))
    (3000.0, -653.27848806514050374),
    (1e4, -2173.5705128733703953),
    (5e5, -108576.56802162222462),
])
def test_chi2_log10_against_mpmath(chi2, expected):
    assert float(chi2_log10_pvalue(chi2)) == pytest.approx(expected, rel=1e-12)


def test_chi2_pvalue_bulk_nan_and_tensors():
    x = torch.tensor([0.0, 1.0, 3.841458820694124, float("nan")], dtype=torch.float64)
    p = chi2_pvalue(x)
    np.testing.assert_allclose(p[:3], [1.0, stats.chi2.sf(1.0, 1), 0.05], rtol=1e-12)
    assert np.isnan(p[3]) and np.isnan(chi2_log10_pvalue(x)[3])
    assert np.isnan(t_log10_pvalue(np.nan, 10))


def test_format_pvalue_below_double_range():
    assert format_pvalue([-2173.5705128733703953, -0.30103, np.nan]) == ["2.68836e-2174", "0.5", "NA"]
    assert format_pvalue([-1.0]) == ["0.1"]
