"""Bad input gives a clear error, never a silent fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from torchgenetics.errors import InputError, PhenotypeError
from torchgenetics.reml import reml, reml_loglik


@pytest.fixture(scope="module")
def small(rh):
    Z = rh.standardize(rh.sim(80, 60, seed=61).dosages)
    y = rh.model_phenotype([Z], [0.5], 0.5, seed=1)
    return y, Z @ Z.T / Z.shape[1]


def test_nan_in_y(small):
    y, K = small
    y = y.clone()
    y[7] = float("nan")
    with pytest.raises(PhenotypeError, match=r"missing or non-finite .*positions \[7\]"):
        reml(y, K)


def test_constant_phenotype(small):
    _, K = small
    with pytest.raises(PhenotypeError, match="constant"):
        reml(torch.full((80,), 2.5, dtype=torch.float64), K)


def test_kernel_of_wrong_size(small):
    y, K = small
    with pytest.raises(InputError, match=r"'G2' is 79 x 79 but y has 80 samples"):
        reml(y, [K, K[:79, :79]])
    with pytest.raises(InputError, match="not symmetric"):
        reml(y, K + torch.triu(torch.ones(80, 80, dtype=torch.float64), 1))
    with pytest.raises(InputError, match="kernel 'G' is a str"):
        reml(y, "grm.bin")


def test_collinear_covariates(small):
    y, K = small
    g = torch.Generator().manual_seed(0)
    a = torch.randn(80, generator=g, dtype=torch.float64)
    b = torch.randn(80, generator=g, dtype=torch.float64)
    C = pd.DataFrame({"age": a.numpy(), "bmi": b.numpy(), "age_plus_bmi": (a + 2 * b).numpy()})
    with pytest.raises(InputError, match="collinear: column 'age_plus_bmi'"):
        reml(y, K, C)
    with pytest.raises(InputError, match="collinear: column 'covar2'"):
        reml(y, K, torch.stack([a, 2 * a], 1))
    C_nan = torch.stack([a, b], 1)
    C_nan[3, 1] = float("nan")
    with pytest.raises(InputError, match="'covar2' is missing or non-finite for sample position 3"):
        reml(y, K, C_nan)
    with pytest.raises(InputError, match="80 rows"):
        reml(y, K, torch.randn(79, 2, dtype=torch.float64))


def test_intercept_is_added_once(small):
    y, K = small
    a = torch.randn(80, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with_ones = reml(y, K, torch.stack([torch.ones(80, dtype=torch.float64), a], 1),
                     covariate_names=["intercept", "a"])
    without = reml(y, K, a.unsqueeze(1), covariate_names=["a"])
    assert with_ones.covariate_names == without.covariate_names == ["intercept", "a"]
    assert torch.allclose(with_ones.variances, without.variances)


def test_bad_options(small):
    y, K = small
    with pytest.raises(InputError, match="method must be one of"):
        reml(y, K, method="fast")
    with pytest.raises(InputError, match="num_probes must be >= 2"):
        reml(y, K, method="stochastic", num_probes=1)
    with pytest.raises(InputError, match="init has 3 values; expected 2"):
        reml(y, K, init=[0.1, 0.2, 0.3])
    with pytest.raises(InputError, match="positive residual"):
        reml(y, K, init=[0.5, 0.0])
    with pytest.raises(InputError, match="non-positive trace"):
        reml(y, [K, torch.zeros(80, 80, dtype=torch.float64)])
    with pytest.raises(InputError, match="theta must hold 2 variances"):
        reml_loglik(torch.ones(3, dtype=torch.float64), y, K)
    with pytest.raises(InputError, match="used twice"):
        reml(y, [K, K], names=["a", "a"])
    with pytest.raises(InputError, match="works in torch.float32"):
        from linear_operator.operators import DiagLinearOperator

        reml(y, DiagLinearOperator(torch.ones(80, dtype=torch.float32)), dtype=torch.float64)
    assert np.isfinite(reml(y, K).loglik)
