"""Sharded genotype operators on 2 Gloo ranks equal the single-process ones to 1e-12."""

from __future__ import annotations

import numpy as np
import torch

from torchgenetics.genotypes import Genotypes
from torchgenetics.operators import GRM, GRMStack, WeightedBlockGRM
from torchgenetics.operators._common import Shard

DT = torch.float64
TOL = 1e-12


def _dosages(n=30, m=50, seed=4):
    rng = np.random.default_rng(seed)
    X = rng.binomial(2, rng.uniform(0.05, 0.5, m), size=(n, m)).astype(np.float64)
    X[rng.random((n, m)) < 0.05] = np.nan
    X[:, 3] = 1.0  # monomorphic
    X[:, 17] = np.nan
    X[0, 17] = 2.0  # a single call
    return X


def _w_blocks(m, seed=5):
    rng = np.random.default_rng(seed)
    out, start = [], 0
    for size in (7, 3, 12, 5, 9, 14):
        A = rng.normal(size=(size, size))
        out.append((np.arange(start, min(start + size, m)), (A @ A.T / size)[: min(size, m - start), : min(size, m - start)]))
        start += size
    return out


def _products(X, distributed):
    """Everything the tests compare, computed with or without sharding."""
    G = Genotypes.from_array(X)
    n = G.n_samples
    g = torch.Generator().manual_seed(0)
    V = torch.randn(n, 4, generator=g, dtype=DT)
    out = {}
    for resident in (True, False):
        K = GRM(G, variants=np.arange(1, 48), resident=resident, block_size=5, distributed=distributed)
        x = V.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad((K.matmul(x) * V).sum(), x)
        out[f"grm{resident}"] = dict(KV=K.matmul(V), Kv=K.matmul(V[:, 0]), diag=K.diagonal(),
                                     dense=K.to_dense(), grad=grad, m_eff=K.m_eff,
                                     local=K.local_variant_index, all=K.variant_index)
    tiny = GRM(G, variants=[2, 3], distributed=distributed)  # one polymorphic variant for 2 ranks
    out["tiny"] = dict(KV=tiny.matmul(V), diag=tiny.diagonal(), m_eff=tiny.m_eff,
                       local=tiny.local_variant_index)
    parts = [np.arange(0, 20), np.arange(15, 35), np.arange(35, 50), [3, 40]]
    S = GRMStack(G, parts, block_size=6, distributed=distributed)
    theta = torch.tensor([0.2, 0.5, 0.3, 0.7], dtype=DT, requires_grad=True)
    x = V.clone().requires_grad_(True)
    W = S.weighted_matmul(theta, x)
    g_theta, g_x = torch.autograd.grad((W * V).sum(), (theta, x))
    out["stack"] = dict(stacked=S.stacked_matmul(V), weighted=W.detach(), g_theta=g_theta, g_x=g_x,
                        diags=S.diagonals(), comp=S.components[1].matmul(V),
                        comp_diag=S.components[2].diagonal(), m_eff=S.m_eff,
                        cov=S.weighted([0.1, 0.2, 0.3, 0.4]).matmul(V))
    Kw = WeightedBlockGRM(G, _w_blocks(G.n_variants), distributed=distributed)
    out["weighted"] = dict(KV=Kw.matmul(V), diag=Kw.diagonal(), dense=Kw.to_dense(),
                           scale=torch.tensor(Kw.scale), n_blocks=Kw.n_blocks,
                           local_blocks=Kw.n_local_blocks)
    return out


def _sharded(X):
    out = _products(X, True)
    G = Genotypes.from_array(X)
    K, S = GRM(G, distributed=True), GRMStack(G, [np.arange(0, 30), np.arange(25, 50)], distributed=True)
    W = WeightedBlockGRM(G, _w_blocks(G.n_variants), distributed=True)
    V = torch.ones(G.n_samples, 1, dtype=DT)
    K.matmul(V), K.diagonal(), S.stacked_matmul(V), S.diagonals(), W.matmul(V), W.diagonal()
    # no rank decoded the whole matrix: statistics came from each rank's own share
    out["whole_stats_computed"] = G._cached_stats() is not None
    return out


def _close(a, b, what):
    a, b = torch.as_tensor(a, dtype=DT), torch.as_tensor(b, dtype=DT)
    assert a.shape == b.shape, what
    err = float((a - b).abs().max())
    assert err <= TOL * max(float(b.abs().max()), 1.0), f"{what}: {err:.3g}"


def test_sharded_operators_equal_single_process(cluster):
    X = _dosages()
    ref = _products(X, False)
    ranks = cluster.run(_sharded, (X,))
    for r, got in enumerate(ranks):
        for op in ("grmTrue", "grmFalse", "tiny", "stack", "weighted"):
            for key, value in ref[op].items():
                if key in ("local", "local_blocks"):
                    continue
                if isinstance(value, (int, list)) or (isinstance(value, np.ndarray) and value.dtype != float):
                    assert np.array_equal(np.asarray(got[op][key]), np.asarray(value)), (r, op, key)
                else:
                    _close(got[op][key], value, f"rank {r} {op} {key}")
    # every rank streamed a different share; together they cover every variant once
    for op in ("grmTrue", "tiny"):
        shares = [np.asarray(got[op]["local"]) for got in ranks]
        assert min(s.size for s in shares) < ref[op]["local"].size
        assert np.array_equal(np.concatenate(shares), ref[op]["local"])
    assert ranks[1]["tiny"]["local"].size == 0  # a rank with nothing to stream still takes part
    assert not any(got["whole_stats_computed"] for got in ranks)
    blocks = [got["weighted"]["local_blocks"] for got in ranks]
    assert sum(blocks) == ref["weighted"]["n_blocks"] and min(blocks) > 0


def test_shard_single_process_is_everything():
    s = Shard(distributed=True)  # no process group: a world of one rank
    assert (s.active, s.world, s.rank, s.take(7)) == (True, 1, 0, slice(0, 7))
    assert s.owner_slices([3, 4, 5]) == slice(0, 3)
    G = Genotypes.from_array(_dosages(n=12, m=20))
    V = torch.randn(12, 2, dtype=DT)
    assert torch.equal(GRM(G, distributed=True).matmul(V), GRM(G).matmul(V))
    assert GRM(G, distributed=True).to(torch.float32).distributed


def test_owner_slices_balance_whole_blocks():
    sizes = [7, 3, 12, 5, 9, 14]

    class Fixed(Shard):
        def __init__(self, r, w):
            super().__init__(True)
            self._r, self._w = r, w

        rank = property(lambda self: self._r)
        world = property(lambda self: self._w)

    for world in (1, 2, 3, 4, 8):
        parts = [Fixed(r, world).owner_slices(sizes) for r in range(world)]
        covered = [i for p in parts for i in range(len(sizes))[p]]
        assert covered == list(range(len(sizes)))
