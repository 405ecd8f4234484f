"""Differentiable REML likelihood: gradients, and learning SNP-group kernel weights."""

from __future__ import annotations

import numpy as np
import torch

from torchgenetics.operators import GRMStack
from torchgenetics.reml import combine_kernels, reml, reml_loglik


def test_gradient_matches_finite_differences_for_weighted_stack(rh):
    """reml_loglik through GRMStack.weighted(w): autograd equals central differences in w and theta."""
    sim = rh.sim(120, 90, seed=51)
    stack = GRMStack(sim.to_genotypes(), [np.arange(30), np.arange(30, 60), np.arange(60, 90)])
    y = torch.randn(120, generator=rh.gen(1), dtype=rh.DT)
    w = torch.tensor([0.5, 1.0, 1.5], dtype=rh.DT, requires_grad=True)
    theta = torch.tensor([0.4, 0.6], dtype=rh.DT, requires_grad=True)
    ll = reml_loglik(theta, y, [stack.weighted(w)])
    ll.backward()

    def value(wv, tv):
        with torch.no_grad():
            return float(reml_loglik(tv, y, [stack.weighted(wv)]))

    eps = 1e-6
    for j in range(3):
        e = torch.zeros(3, dtype=rh.DT)
        e[j] = eps
        fd = (value(w.detach() + e, theta.detach()) - value(w.detach() - e, theta.detach())) / (2 * eps)
        assert abs(fd - float(w.grad[j])) < 1e-5 * max(1.0, abs(fd))
    for j in range(2):
        e = torch.zeros(2, dtype=rh.DT)
        e[j] = eps
        fd = (value(w.detach(), theta.detach() + e) - value(w.detach(), theta.detach() - e)) / (2 * eps)
        assert abs(fd - float(theta.grad[j])) < 1e-5 * max(1.0, abs(fd))


def test_learned_group_weights_beat_equal_weights(rh):
    """Gradient ascent on softmax group weights (and the two variances) of K(w) = sum_j w_j K_j.

    Signal sits in SNP group 0 (and a little in group 1), so the equal-weight kernel
    (the plain GRM) is misspecified: the learned kernel must reach a clearly higher
    maximised REML likelihood and put its largest weight on group 0.
    """
    n, per = 400, 100
    Z = rh.standardize(rh.sim(n, 4 * per, seed=52).dosages)
    groups = [Z[:, j * per:(j + 1) * per] for j in range(4)]
    Ks = [Zj @ Zj.T / Zj.shape[1] for Zj in groups]
    y = rh.model_phenotype(groups, [0.5, 0.1, 0.0, 0.0], 0.4, seed=12)
    equal = reml(y, combine_kernels(Ks, torch.ones(4, dtype=rh.DT)))

    logits = torch.zeros(4, dtype=rh.DT, requires_grad=True)
    log_theta = torch.log(torch.tensor([0.5, 0.5], dtype=rh.DT)).requires_grad_(True)
    opt = torch.optim.Adam([logits, log_theta], lr=0.05)
    for _ in range(150):
        opt.zero_grad()
        loss = -reml_loglik(log_theta.exp(), y, [combine_kernels(Ks, torch.softmax(logits, 0))])
        loss.backward()
        opt.step()
    w = torch.softmax(logits.detach(), 0)
    learned = reml(y, combine_kernels(Ks, w))
    assert int(w.argmax()) == 0
    assert learned.loglik > equal.loglik + 5.0, (learned.loglik, equal.loglik, w)
    assert abs(-float(loss.detach()) - learned.loglik) < 0.05  # ascent reached the profile maximum
