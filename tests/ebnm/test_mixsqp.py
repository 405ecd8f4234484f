"""mix-SQP reaches the optimum of scipy's constrained optimiser (SLSQP), batched and masked."""

import numpy as np
import pytest
import torch
from scipy import optimize, stats

from torchgenetics.ebnm import mixsqp, mixture_objective


def _likelihood(n=300, seed=0):
    rng = np.random.default_rng(seed)
    sd = np.array([0.0, 0.3, 0.7, 1.5, 3.0, 6.0])
    theta = np.where(rng.random(n) < 0.5, 0.0, rng.normal(scale=2.0, size=n))
    x = theta + rng.normal(size=n)
    return stats.norm.pdf(x[:, None], scale=np.sqrt(1.0 + sd[None, :] ** 2))


def _slsqp(L, w=None):
    n, K = L.shape
    w = np.full(n, 1.0 / n) if w is None else w / w.sum()
    fun = lambda x: -np.sum(w * np.log(L @ x))  # noqa: E731
    jac = lambda x: -(L * (w / (L @ x))[:, None]).sum(0)  # noqa: E731
    res = optimize.minimize(fun, np.full(K, 1.0 / K), jac=jac, method="SLSQP",
                            bounds=[(0.0, 1.0)] * K,
                            constraints=[{"type": "eq", "fun": lambda x: x.sum() - 1.0, "jac": lambda x: np.ones(K)}],
                            options={"ftol": 1e-14, "maxiter": 1000})
    return res.x, -res.fun


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reaches_the_slsqp_optimum(seed):
    L = _likelihood(seed=seed)
    x_ref, f_ref = _slsqp(L)
    res = mixsqp(torch.as_tensor(L))
    assert bool(res.converged)
    assert float(res.x.sum()) == pytest.approx(1.0)
    assert float(res.objective) >= f_ref - 1e-10
    assert float(res.objective) == pytest.approx(f_ref, abs=1e-8)
    np.testing.assert_allclose(res.x.numpy(), x_ref, atol=2e-4)


def test_kkt_conditions_hold():
    L = torch.as_tensor(_likelihood(seed=3))
    res = mixsqp(L)
    grad = 1.0 - (L / (L @ res.x).unsqueeze(-1)).mean(0)
    assert float(grad.min()) >= -1e-7
    assert float((res.x * grad).abs().max()) <= 1e-7


def test_batch_mask_weights_and_log_input():
    L1, L2 = (torch.as_tensor(_likelihood(seed=s)) for s in (4, 5))
    batch = mixsqp(torch.stack([L1, L2]))
    for k, L in enumerate((L1, L2)):
        torch.testing.assert_close(batch.x[k], mixsqp(L).x, atol=1e-8, rtol=0)
    mask = torch.tensor([True, True, False, True, True, False])
    masked = mixsqp(L1, mask=mask)
    assert torch.all(masked.x[~mask] == 0)
    ref, f_ref = _slsqp(L1.numpy()[:, mask.numpy()])
    assert float(masked.objective) == pytest.approx(f_ref, abs=1e-8)
    # log-likelihood input gives the same weights
    torch.testing.assert_close(mixsqp(torch.log(L1), log=True).x, mixsqp(L1).x, atol=1e-8, rtol=0)
    # integer row weights equal repeated rows
    w = torch.ones(L1.shape[0], dtype=torch.float64)
    w[:10] = 3.0
    repeated = torch.cat([L1, L1[:10], L1[:10]])
    torch.testing.assert_close(mixsqp(L1, weights=w).x, mixsqp(repeated).x, atol=1e-7, rtol=0)


def test_warm_start_never_loses_ground():
    L = torch.as_tensor(_likelihood(seed=6))
    start = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    res = mixsqp(L, x0=start, max_iter=2)
    assert float(res.objective) >= float(mixture_objective(L.unsqueeze(0), start.unsqueeze(0))[0])
