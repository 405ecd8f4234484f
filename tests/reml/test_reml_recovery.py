"""Recovery of known variance components over 20 simulated replicates (exact path).

Genotypes are fixed; each replicate draws a new phenotype from the model, so the
true components are known exactly and the reported SEs (inverse AI) should match
the spread of the estimates. Criteria (issue 4): the mean estimate is within 2
standard errors of the mean of the truth, and the mean reported SE matches the
standard deviation of the estimates within 25%.

Issue 4 asks for 20 replicates; these tests use 100 (exact fits are cheap here).
With 20 the standard deviation of the estimates is itself uncertain by about 16%,
so a perfectly calibrated estimator misses the 25% band for roughly one seed block
in four (measured: over 300 replicates of the single-component design the SE/spread
ratios were 1.04 and 1.08, while blocks of 20 ranged from 0.86 to 1.39). With 100
replicates the band is about 3.5 of its standard errors wide.
"""

from __future__ import annotations

import math

import torch

from torchgenetics.linalg import EigenKernel
from torchgenetics.reml import reml

REPS = 100


def check_recovery(estimates, ses, truth, what):
    est, se = torch.stack(estimates), torch.stack(ses)
    mean, spread = est.mean(0), est.std(0)
    truth = torch.as_tensor(truth, dtype=est.dtype)
    se_of_mean = spread / math.sqrt(REPS)
    assert bool(((mean - truth).abs() <= 2 * se_of_mean).all()), (what, mean, truth, se_of_mean)
    ratio = se.mean(0) / spread
    assert bool(((ratio - 1).abs() <= 0.25).all()), (what, ratio)


def test_single_component_h2_half(rh):
    """h2 = 0.5 (s2_g = s2_e = 1) with one covariate; n = 800, m = 400 (Woodbury-sized kernel)."""
    n, m = 800, 400
    Z = rh.standardize(rh.sim(n, m, seed=21).dosages)
    eig = EigenKernel.from_factor(Z, scale=Z.shape[1])  # decomposed once, reused by every fit
    x = torch.randn(n, 1, generator=rh.gen(0), dtype=rh.DT)
    X = torch.cat([torch.ones(n, 1, dtype=rh.DT), x], 1)
    est, ses, h2, h2se = [], [], [], []
    for r in range(REPS):
        y = rh.model_phenotype([Z], [1.0], 1.0, seed=1000 + r, X=X, beta=[2.0, 0.5])
        fit = reml(y, eig, x)
        assert fit.converged
        est.append(fit.variances)
        ses.append(fit.se)
        h2.append(torch.tensor([fit.h2_total], dtype=rh.DT))
        h2se.append(torch.tensor([fit.h2_total_se], dtype=rh.DT))
    check_recovery(est, ses, [1.0, 1.0], "variances")
    check_recovery(h2, h2se, [0.5], "h2")


def test_two_component_truth(rh):
    """s2 = (0.3, 0.2), s2_e = 0.5 from two disjoint SNP sets; n = 400, dense Cholesky path."""
    n = 400
    Z = rh.standardize(rh.sim(n, 300, seed=22).dosages)
    Z1, Z2 = Z[:, :150], Z[:, 150:]
    Ks = [Z1 @ Z1.T / Z1.shape[1], Z2 @ Z2.T / Z2.shape[1]]
    est, ses = [], []
    for r in range(REPS):
        y = rh.model_phenotype([Z1, Z2], [0.3, 0.2], 0.5, seed=2000 + r)
        fit = reml(y, Ks, tol=1e-5, param_tol=1e-4)
        assert fit.converged and fit.method == "exact-cholesky"
        est.append(fit.variances)
        ses.append(fit.se)
    check_recovery(est, ses, [0.3, 0.2, 0.5], "two components")
