"""REML on 2 Gloo ranks with sharded kernels equals single-process REML to 1e-8."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchgenetics.distributed.reml import reml as dist_reml
from torchgenetics.errors import InputError
from torchgenetics.genotypes import Genotypes
from torchgenetics.operators import GRM
from torchgenetics.reml import grm_stack, reml, smile_kernels

DT = torch.float64
STOCHASTIC = dict(method="stochastic", num_probes=16, slq_probes=8, lanczos_steps=20,
                  precond_rank=20, cg_tol=1e-12, seed=3)


def _data(n=150, m=300, seed=7):
    rng = np.random.default_rng(seed)
    X = rng.binomial(2, rng.uniform(0.05, 0.5, m), size=(n, m)).astype(np.float64)
    X[rng.random((n, m)) < 0.02] = np.nan
    Z = np.nan_to_num((X - np.nanmean(X, 0)) / np.nanstd(X, 0))
    h = m // 2
    y = Z[:, :h] @ rng.normal(size=h) * (0.4 / h) ** 0.5 \
        + Z[:, h:] @ rng.normal(size=m - h) * (0.2 / (m - h)) ** 0.5 + rng.normal(size=n) * 0.6
    C = np.column_stack([rng.normal(size=n), rng.integers(0, 2, n)])
    return X, y, C


def _smile_groups(m):
    rng = np.random.default_rng(2)
    blocks = []
    for start in range(0, m, 50):
        A = rng.normal(size=(50, 50))
        blocks.append((np.arange(start, start + 50), A @ A.T / 50 + np.eye(50)))
    return [blocks]


def _fits(X, y, C, distributed):
    """Variance components of every model, fitted with or without sharding."""
    G = Genotypes.from_array(X)
    fit = dist_reml if distributed else reml
    kw = dict(distributed=distributed)
    parts = {"a": np.arange(0, 150), "b": np.arange(150, 300)}
    out = {}
    exact = dict(method="exact", grm_precision="double")  # no float32 block rounding: equal to 1e-8
    out["grm_exact"] = fit(y, GRM(G, **kw), C, **exact)
    out["grm_woodbury"] = fit(y, GRM(G, variants=np.arange(100), **kw), C, **exact)
    out["grm_stochastic"] = fit(y, GRM(G, **kw), C, **STOCHASTIC)
    out["stack_exact"] = fit(y, grm_stack(G, parts, **kw), C, **exact)
    out["stack_stochastic"] = fit(y, grm_stack(G, parts, **kw), C, **STOCHASTIC)
    out["smile_stochastic"] = fit(y, smile_kernels(G, _smile_groups(G.n_variants), **kw), C, **STOCHASTIC)
    return {k: (f.variances, f.method, f.n_iter, f.loglik, f.settings.get("world_size"),
                f.settings.get("ranks_agree")) for k, f in out.items()}


def _sharded(X, y, C):
    return _fits(X, y, C, True)


def _different_phenotype(X, y):
    from torchgenetics.distributed import rank

    y = np.array(y)
    y[0] += rank()  # rank 1 loaded other data
    dist_reml(y, GRM(Genotypes.from_array(X), distributed=True), method="exact")


def test_distributed_reml_equals_single_process(cluster):
    X, y, C = _data()
    ref = _fits(X, y, C, False)
    ranks = cluster.run(_sharded, (X, y, C))
    for key, (theta, method, n_iter, loglik, _, _) in ref.items():
        for r, got in enumerate(ranks):
            g_theta, g_method, g_iter, g_loglik, world, _agree = got[key]
            assert (g_method, world, g_iter) == (method, 2, n_iter), (key, r)
            err = float(((g_theta - theta).abs() / theta.abs().clamp_min(1e-3)).max())
            assert err < 1e-8, f"rank {r} {key}: relative error {err:.3g} in {theta.tolist()}"
            assert abs(g_loglik - loglik) < 1e-8 * max(abs(loglik), 1.0), (key, r)
        # the ranks compute the same iterates, bit for bit
        assert torch.equal(ranks[0][key][0], ranks[1][key][0]), key
        assert ranks[0][key][2] == ranks[1][key][2], key
    assert ref["grm_woodbury"][1] == "exact-woodbury" and ref["stack_exact"][1] == "exact-cholesky"
    assert ref["grm_stochastic"][1] == "stochastic"


def _mixed_precision(X, y, C):
    from torchgenetics.reml.exact import dense_kernel

    K = GRM(Genotypes.from_array(X), distributed=True)
    return dense_kernel(K, "mixed"), dense_kernel(K, "double"), dist_reml(y, K, C, method="exact")


def test_sharded_grm_builds_in_mixed_precision(cluster):
    """Each rank multiplies its share's float32 blocks, the float64 sums are added over the
    ranks: the kernel of one process to float32 rounding, and the default (mixed) fit to it."""
    X, y, C = _data()
    K = GRM(Genotypes.from_array(X))
    ref_double = K.to_dense()
    ref_fit = reml(y, K, C, method="exact")
    for mixed, double, fit in cluster.run(_mixed_precision, (X, y, C)):
        assert torch.allclose(double, ref_double, rtol=0, atol=1e-13)
        err = float((mixed - ref_double).abs().max())
        assert 1e-12 < err < 1e-6 * float(ref_double.abs().max())  # float32 products, not float64
        assert fit.settings["grm_precision"] == "mixed" and fit.method == "exact-band"
        assert torch.allclose(fit.variances, ref_fit.variances, rtol=1e-5, atol=1e-7)


def test_distributed_reml_rejects_different_data(cluster):
    X, y, _ = _data(n=40, m=30)
    with pytest.raises(Exception, match="phenotype y differs between ranks"):
        cluster.run(_different_phenotype, (X, y))


def test_single_process_wrapper_is_plain_reml():
    X, y, C = _data(n=60, m=80)
    G = Genotypes.from_array(X)
    a = dist_reml(y, GRM(G, distributed=True), C, method="exact", grm_precision="double")
    b = reml(y, GRM(G), C, method="exact", grm_precision="double")
    assert torch.equal(a.variances, b.variances) and a.settings["world_size"] == 1
    with pytest.raises(InputError, match="different process groups"):
        from torchgenetics.distributed.reml import _group_of

        _group_of([GRM(G, distributed=True)], group=object())
