import numpy as np
import pytest
import torch

from torchgenetics.errors import ComponentSpecError
from torchgenetics.io.components import ComponentSpec
from torchgenetics.operators import GRM, GRMStack

# contiguous, interleaved (non-contiguous) and an overlapping set with monomorphics
PARTITION = [np.arange(0, 20), np.arange(20, 60, 2), np.arange(21, 60, 2), np.array([1, 2, 11, 40, 41])]


def counting(G):
    calls = []
    inner = G.blocks

    def blocks(*args, **kwargs):
        calls.append([])
        for idx, block in inner(*args, **kwargs):
            calls[-1].append(np.asarray(idx))
            yield idx, block

    G.blocks = blocks
    return calls


def dense_components(Z, poly, partition):
    out = []
    for idx in partition:
        keep = idx[poly[idx]]
        out.append(Z[:, keep] @ Z[:, keep].T / keep.size)
    return out


@pytest.mark.parametrize("resident", [True, False])
def test_components_match_dense(geno, hand_z, dense_twin, resident):
    Z, poly = hand_z
    S = GRMStack(geno, PARTITION, resident=resident, block_size=9)
    dense = dense_components(Z, poly, PARTITION)
    assert S.m_eff == [int(poly[idx].sum()) for idx in PARTITION]
    for K, D in zip(S.components, dense, strict=True):
        dense_twin(K, D)
    np.testing.assert_allclose(S.diagonals().numpy(), np.stack([np.diag(D) for D in dense]),
                               rtol=1e-12)


@pytest.mark.parametrize("resident", [True, False])
def test_stacked_and_weighted_are_one_pass(geno, hand_z, resident):
    Z, poly = hand_z
    dense = dense_components(Z, poly, PARTITION)
    S = GRMStack(geno, PARTITION, resident=resident, block_size=7)
    calls = counting(geno)
    V = torch.randn(geno.n_samples, 5, dtype=torch.float64)
    KV = S.stacked_matmul(V)
    assert KV.shape == (4, geno.n_samples, 5)
    for g, D in enumerate(dense):
        np.testing.assert_allclose(KV[g].numpy(), D @ V.numpy(), rtol=1e-10, atol=1e-12)
    theta = torch.tensor([0.5, 1.5, 0.25, 2.0], dtype=torch.float64)
    W = S.weighted_matmul(theta, V)
    ref = sum(t * D for t, D in zip(theta.tolist(), dense, strict=True)) @ V.numpy()
    np.testing.assert_allclose(W.numpy(), ref, rtol=1e-10, atol=1e-12)
    union = np.unique(np.concatenate([idx[poly[idx]] for idx in PARTITION]))
    if resident:
        assert len(calls) == 1  # loaded once, then swept in memory
    else:
        assert len(calls) == 2 and S.passes == 2  # one pass per product
    for call in calls:  # each pass decodes every column of the union exactly once
        assert np.array_equal(np.sort(np.concatenate(call)), union)


def test_weighted_operator_uses_one_pass_and_gradients(geno, hand_z, dense_twin):
    Z, poly = hand_z
    dense = dense_components(Z, poly, PARTITION)
    S = GRMStack(geno, PARTITION, resident=False, block_size=11)
    theta = torch.tensor([0.3, 0.9, 0.1, 0.4], dtype=torch.float64, requires_grad=True)
    K = S.weighted(theta)
    ref = sum(float(t) * D for t, D in zip(theta.detach(), dense, strict=True))
    dense_twin(K.detach(), ref)
    before = S.passes
    V = torch.randn(geno.n_samples, 3, dtype=torch.float64, requires_grad=True)
    out = K.matmul(V)
    assert S.passes == before + 1
    (out * V.detach()).sum().backward()
    expected = [float((V.detach() * (torch.as_tensor(D) @ V.detach())).sum()) for D in dense]
    np.testing.assert_allclose(theta.grad.numpy(), expected, rtol=1e-10)


def test_stack_autograd_functions(tiny_geno):
    small = tiny_geno
    S = GRMStack(small, [np.arange(0, 5), np.arange(5, 12, 2), np.arange(6, 12, 2)], resident=True)
    V = torch.randn(small.n_samples, 2, dtype=torch.float64, requires_grad=True)
    theta = torch.tensor([0.2, 0.7, 1.1], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: S.stacked_matmul(x), (V,))
    assert torch.autograd.gradcheck(lambda t, x: S.weighted_matmul(t, x), (theta, V))
    assert torch.autograd.gradgradcheck(lambda t, x: S.weighted_matmul(t, x), (theta, V))


def test_vector_and_batched_rhs(geno):
    S = GRMStack(geno, PARTITION[:2])
    v = torch.randn(geno.n_samples, dtype=torch.float64)
    Vb = torch.randn(3, geno.n_samples, 2, dtype=torch.float64)
    assert S.stacked_matmul(v).shape == (2, geno.n_samples)
    out = S.stacked_matmul(Vb)
    assert out.shape == (2, 3, geno.n_samples, 2)
    K0 = S.components[0].to_dense()
    assert torch.allclose(out[0], K0 @ Vb, rtol=1e-10, atol=1e-12)
    assert torch.allclose(S.weighted_matmul([1.0, 0.0], v), K0 @ v, rtol=1e-10, atol=1e-12)


def test_component_spec_and_match_standalone_grm(geno):
    spec = ComponentSpec(["a", "b"], [np.arange(0, 30), np.arange(30, 60)])
    S = GRMStack(geno, spec, resident=False)
    assert S.names == ["a", "b"]
    V = torch.randn(geno.n_samples, 4, dtype=torch.float64)
    for K, idx in zip(S.components, spec.indices, strict=True):
        assert K.stack_component[0] is S
        assert torch.allclose(K.matmul(V), GRM(geno, variants=idx).matmul(V), rtol=1e-12, atol=1e-14)


def test_stack_errors(geno):
    with pytest.raises(ComponentSpecError, match="polymorphic"):
        GRMStack(geno, [np.arange(10), np.array([2, 11, 37])])
    with pytest.raises(ComponentSpecError, match="out of range"):
        GRMStack(geno, [[0, 1, 999]])
    with pytest.raises(ComponentSpecError, match="at least one"):
        GRMStack(geno, [])
    S = GRMStack(geno, PARTITION[:2])
    with pytest.raises(Exception, match="2 components"):
        S.weighted_matmul([1.0, 2.0, 3.0], torch.ones(geno.n_samples, dtype=torch.float64))
