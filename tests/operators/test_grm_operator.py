import numpy as np
import pytest
import torch

from torchgenetics.errors import InputError
from torchgenetics.genotypes import Genotypes
from torchgenetics.memory import ENV_BUDGET
from torchgenetics.operators import GRM


def counting(G):
    """Wrap G.blocks to record the columns each call decodes."""
    calls = []
    inner = G.blocks

    def blocks(*args, **kwargs):
        calls.append([])
        for idx, block in inner(*args, **kwargs):
            calls[-1].append(np.asarray(idx))
            yield idx, block

    G.blocks = blocks
    return calls


@pytest.mark.parametrize("resident", [True, False])
def test_grm_matches_hand_computed_dense(geno, hand_z, dense_twin, resident):
    Z, poly = hand_z
    K = GRM(geno, resident=resident, block_size=7)
    dense = Z @ Z.T / poly.sum()
    assert K.m_eff == poly.sum() and K.n_monomorphic == (~poly).sum()
    dense_twin(K, dense)
    assert K.resident is resident


def test_grm_variant_subset_and_mask(geno, hand_z, dense_twin):
    Z, poly = hand_z
    idx = np.array([40, 1, 2, 3, 11, 23, 30, 31, 55, 59])
    K = GRM(geno, variants=idx, block_size=3)
    keep = idx[poly[idx]]
    assert K.m_eff == keep.size and K.n_monomorphic == idx.size - keep.size
    dense_twin(K, Z[:, keep] @ Z[:, keep].T / keep.size)
    mask = np.zeros(geno.n_variants, dtype=bool)
    mask[idx] = True
    assert torch.equal(GRM(geno, variants=mask).to_dense(), GRM(geno, variants=np.sort(idx)).to_dense())


def test_grm_diagonal_exact_with_missing_and_cheap(geno, hand_z):
    Z, poly = hand_z
    _ = geno.stats  # statistics are computed before the operator, not inside
    calls = counting(geno)
    K = GRM(geno, resident=False)
    assert calls == [] and K.passes == 0  # __init__ reads no genotypes
    d = K.diagonal()
    np.testing.assert_allclose(d.numpy(), (Z**2).sum(1) / poly.sum(), rtol=1e-12)
    # the diagonal is not 1 for samples with missing calls (mean imputation)
    assert np.ptp(d.numpy()) > 0.05
    K.diagonal()
    assert len(calls) == 1  # sample_sq_norms is one pass, then cached


def test_grm_streams_one_pass_per_product(geno):
    calls = counting(geno)
    K = GRM(geno, resident=False, block_size=8)
    V = torch.randn(geno.n_samples, 64, dtype=torch.float64)
    K.matmul(V)
    K.matmul(V)
    assert K.passes == 2 and len(calls) == 2
    poly = geno.polymorphic_index()
    assert np.array_equal(np.sort(np.concatenate(calls[0])), poly)


def test_grm_resident_reads_once(geno):
    calls = counting(geno)
    K = GRM(geno, resident=True)
    V = torch.randn(geno.n_samples, 5, dtype=torch.float64)
    a = K.matmul(V)
    b = K.matmul(V)
    assert torch.equal(a, b) and len(calls) == 1 and K.passes == 1


def test_grm_resident_decided_by_budget(geno, monkeypatch):
    V = torch.randn(geno.n_samples, 2, dtype=torch.float64)
    need = geno.n_samples * len(geno.polymorphic_index()) * 8
    monkeypatch.setenv(ENV_BUDGET, str(need // 2))
    small = GRM(geno)
    assert small.resident is None  # decided at first use, from the budget
    small.matmul(V)
    assert small.resident is False
    monkeypatch.setenv(ENV_BUDGET, str(need * 4))
    big = GRM(geno)
    big.matmul(V)
    assert big.resident is True
    assert torch.allclose(small.matmul(V), big.matmul(V), rtol=1e-12, atol=1e-14)


def test_grm_float32_and_dtype_mismatch(geno, hand_z):
    Z, poly = hand_z
    K = GRM(geno, dtype=torch.float32)
    V = torch.randn(geno.n_samples, 3)
    ref = (Z @ (Z.T @ V.double().numpy())) / poly.sum()
    np.testing.assert_allclose(K.matmul(V).numpy(), ref, rtol=1e-4, atol=1e-4)
    with pytest.raises(InputError, match="float64"):
        K.matmul(V.double())
    K64 = K.to(torch.float64)
    assert K64.dtype == torch.float64 and K64.m_eff == K.m_eff


def test_grm_second_order_gradient(tiny_geno):
    K = GRM(tiny_geno, resident=True)
    V = torch.randn(tiny_geno.n_samples, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: K.matmul(x), (V,))
    assert torch.autograd.gradgradcheck(lambda x: (K.matmul(x) ** 2).sum(), (V,))


def test_grm_rebuilt_by_linear_operator_shares_state(geno):
    K = GRM(geno, resident=True)
    K2 = K.representation_tree()(*K.representation())
    V = torch.randn(geno.n_samples, 2, dtype=torch.float64)
    K.matmul(V)
    K2.matmul(V)
    assert isinstance(K2, GRM) and K2.passes == 1


def test_grm_errors(geno):
    with pytest.raises(InputError, match="polymorphic"):
        GRM(geno, variants=[2, 11, 23, 37])
    with pytest.raises(InputError, match="out of range"):
        GRM(geno, variants=[0, 1000])
    with pytest.raises(InputError, match="more than once"):
        GRM(geno, variants=[0, 0])
    K = GRM(geno)
    with pytest.raises(InputError, match="rows"):
        K._matmul(torch.ones(3, 1, dtype=torch.float64))


def test_grm_plink_scale_example():
    # two samples, one variant 0/2: z = -1, +1 -> K = [[1, -1], [-1, 1]]
    K = GRM(Genotypes.from_array(np.array([[0.0], [2.0]])))
    assert K.to_dense().tolist() == [[1.0, -1.0], [-1.0, 1.0]]
