"""The seed's variants: several genotype files, component specs, z-score merge, SMILE kernels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchgenetics.datasets import write_plink
from torchgenetics.errors import InputError, SampleError
from torchgenetics.io import ComponentSpec, write_components
from torchgenetics.operators import GRM, GRMStack
from torchgenetics.reml import (
    Z_THRESHOLD,
    grm_stack,
    grms_from_prefixes,
    reml,
    reml_merge,
    smile_kernels,
)

EXACT = dict(tol=1e-12, param_tol=1e-10, grm_precision="double")  # model identities, not GRM rounding


@pytest.fixture(scope="module")
def cohort(rh):
    """400 samples x 600 SNPs (no missing calls), signal in the first 200 SNPs only."""
    sim = rh.sim(400, 600, seed=41)
    Z = rh.standardize(sim.dosages)
    y = rh.model_phenotype([Z[:, :200]], [0.6], 0.5, seed=6)
    return sim, sim.to_genotypes(), y


def test_kernels_from_several_prefixes(cohort, tmp_path):
    sim, G, y = cohort
    a, b = tmp_path / "part_a", tmp_path / "part_b"
    write_plink(a, np.ascontiguousarray(sim.dosages[:, :300]), sim.samples, sim.variants.iloc[:300])
    write_plink(b, np.ascontiguousarray(sim.dosages[:, 300:]), sim.samples, sim.variants.iloc[300:])
    kernels = grms_from_prefixes([a, b])
    assert list(kernels) == ["part_a", "part_b"]
    fit = reml(y, kernels, **EXACT)
    ref = reml(y, GRMStack(G, [np.arange(300), np.arange(300, 600)]), **EXACT)
    assert fit.names == ["part_a", "part_b"]
    assert torch.allclose(fit.variances, ref.variances, atol=1e-8)
    # a sample subset applies to every file
    keep = np.arange(0, 400, 2)
    sub = grms_from_prefixes([a, b], samples=keep)
    assert all(k.shape == (200, 200) for k in sub.values())
    # files whose samples differ are refused, naming the first mismatch
    samples = sim.samples.copy()
    samples.loc[5, "iid"] = "someone_else"
    c = tmp_path / "part_c"
    write_plink(c, np.ascontiguousarray(sim.dosages[:, :10]), samples, sim.variants.iloc[:10])
    with pytest.raises(SampleError, match="sample 5 .*someone_else"):
        grms_from_prefixes([a, c])


def test_partitioned_components_from_a_spec_file(cohort, tmp_path):
    sim, G, y = cohort
    spec = ComponentSpec(["low", "mid", "high"], [np.arange(0, 200), np.arange(200, 400), np.arange(400, 600)])
    path = tmp_path / "spec.json"
    write_components(spec, path)
    stack = grm_stack(G, path)
    assert stack.names == ["low", "mid", "high"]
    fit = reml(y, stack, **EXACT)
    dense = reml(y, [k.to_dense() for k in stack.components], **EXACT)
    assert fit.names == ["low", "mid", "high"]
    assert torch.allclose(fit.variances, dense.variances, atol=1e-8)
    assert grm_stack(G, {"x": [0, 1, 2], "y": [3, 4]}).names == ["x", "y"]


def test_merge_with_one_component_is_the_plain_fit(cohort):
    sim, G, y = cohort
    plain = reml(y, GRM(G), **EXACT)
    stack = GRMStack(G, [np.arange(600)], names=["all"])
    kept = reml_merge(y, stack, **EXACT)  # strong: kept, nothing to merge, no refit
    assert kept.kept == ["all"] and not kept.weak and not kept.refit and kept.merged is kept.fine
    assert float((kept.merged.variances - plain.variances).abs().max()) < 1e-8
    merged = reml_merge(y, stack, threshold=float("inf"), **EXACT)  # forced: one background kernel, refit
    assert merged.weak == ["all"] and merged.refit and merged.merged.names == ["background"]
    assert float((merged.merged.variances - plain.variances).abs().max()) < 1e-8
    assert abs(merged.merged.loglik - plain.loglik) < 1e-8


def test_merge_keeps_strong_and_merges_weak_components(cohort):
    sim, G, y = cohort
    parts = [np.arange(0, 200), np.arange(200, 300), np.arange(300, 400), np.arange(400, 600)]
    stack = GRMStack(G, parts, names=["signal", "w1", "w2", "w3"])
    res = reml_merge(y, stack)
    z = res.fine.variances[:-1] / res.fine.se[:-1]
    assert torch.allclose(res.z, torch.where(res.fine.se[:-1] > 0, z, torch.zeros_like(z)))
    assert res.kept == [n for n, v in zip(stack.names, res.z.tolist(), strict=True) if v >= Z_THRESHOLD]
    assert "signal" in res.kept and res.weak and res.refit
    assert res.merged.names == res.kept + ["background"]
    # the background kernel is the GRM over the union of the weak components' SNPs
    weak_snps = np.concatenate([parts[stack.names.index(w)] for w in res.weak])
    ref = reml(y, GRMStack(G, [parts[stack.names.index(k)] for k in res.kept] + [np.sort(weak_snps)]))
    assert torch.allclose(res.merged.variances, ref.variances, atol=1e-6)
    assert res.merged.loglik <= res.fine.loglik + 1e-6  # nested in the fine model
    frame = res.to_frame()
    assert frame["kept"].tolist() == [n in res.kept for n in stack.names]
    assert "merged fit" in res.summary()


def test_smile_identity_w_equals_plain_grm(cohort):
    """W = I blocks over every SNP give the plain GRM (no missing calls): same fit to 1e-8."""
    sim, G, y = cohort
    ks = smile_kernels(G, [[np.eye(250), np.eye(350)]])
    assert list(ks) == ["SMILE"]
    assert torch.allclose(ks["SMILE"].to_dense(), GRM(G).to_dense(), atol=1e-12)
    a, b = reml(y, ks, **EXACT), reml(y, GRM(G), **EXACT)
    assert float((a.variances - b.variances).abs().max()) < 1e-8 and abs(a.loglik - b.loglik) < 1e-8
    # two groups (one variance each) equal the GRMStack of the same partition
    groups = smile_kernels(G, [[np.eye(200)], [(np.arange(200, 600), np.eye(400))]], names=["A", "B"])
    stacked = reml(y, GRMStack(G, [np.arange(200), np.arange(200, 600)]), **EXACT)
    fit = reml(y, groups, **EXACT)
    assert fit.names == ["A", "B"]
    assert float((fit.variances - stacked.variances).abs().max()) < 1e-8


def test_smile_weighted_kernel_fits(cohort, tmp_path):
    """A non-identity PSD W from .npy files: a valid kernel, a converged fit."""
    sim, G, y = cohort
    rng = np.random.default_rng(0)
    A = rng.standard_normal((300, 300))
    W1 = A @ A.T / 300 + np.eye(300)
    np.save(tmp_path / "w1.npy", W1)
    np.save(tmp_path / "w2.npy", np.eye(300))
    ks = smile_kernels(G, [[tmp_path / "w1.npy", tmp_path / "w2.npy"]])
    fit = reml(y, ks)
    assert fit.converged and abs(float(fit.trace_scale[0]) - 1.0) < 1e-12


def test_smile_rejects_bad_w(cohort):
    sim, G, y = cohort
    bad = np.eye(10)
    bad[0, 0] = -1.0
    with pytest.raises(InputError, match="not positive semi-definite"):
        smile_kernels(G, [[bad]])
    with pytest.raises(InputError, match="not symmetric"):
        smile_kernels(G, [[np.triu(np.ones((4, 4)))]])
    with pytest.raises(InputError, match="genotypes have 600 variants"):
        smile_kernels(G, [[np.eye(50), np.eye(560)]])
