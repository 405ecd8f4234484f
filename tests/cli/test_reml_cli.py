"""``torchgen reml`` end to end on the bundled example: outputs, variants, config, errors."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pandas as pd
import pytest
import torch

from torchgenetics.cli.main import main
from torchgenetics.datasets import example, write_plink
from torchgenetics.io import ComponentSpec, align, read_plink, write_components
from torchgenetics.operators import GRM
from torchgenetics.reml import REMLFit, grm_stack, reml, reml_merge

EX = example()
BASE = ["--bfile", EX.bfile, "--pheno", EX.pheno, "--covar", EX.covar, "--method", "exact"]
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: two spinning OpenMP threads on a shared 2-core box are far slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run(tmp, name, *extra, base=BASE):
    """Run ``torchgen reml`` into ``tmp/name``; return the prefix and the parsed outputs."""
    prefix = str(tmp / name)
    assert main(["reml", *base, *extra, "--out", prefix]) == 0
    hsq = pd.read_csv(f"{prefix}.hsq.tsv", sep="\t")
    with open(f"{prefix}.json", encoding="utf-8") as f:
        record = json.load(f)
    return prefix, hsq, record, REMLFit.load(f"{prefix}.fit.h5")


@pytest.fixture(scope="module")
def data():
    genotypes = read_plink(EX.bfile)
    kept = align(genotypes, pheno=EX.pheno, covar=EX.covar)
    return genotypes, kept, kept.subset(genotypes)


@pytest.fixture(scope="module")
def spec_run(tmp_path_factory):
    """The two-chromosome component-spec run (shared by several tests)."""
    return run(tmp_path_factory.mktemp("spec"), "spec", "--component-spec", EX.components)


def close(a, b, atol=1e-10):
    """Same numbers up to rounding (thread counts change the order of sums)."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    assert float((a - b).abs().max()) < atol, (a, b)


def lib_fit(data, kernels, **kw):
    _, kept, _ = data
    return reml(kept.y, kernels, kept.covariates, method="exact", covariate_names=kept.covariate_names,
                report=kept, **kw)


def test_single_grm_outputs_read_back(tmp_path, data, capsys):
    prefix, hsq, record, fit = run(tmp_path / "out", "single")
    ref = lib_fit(data, GRM(data[2]))
    # the .hsq.tsv is GCTA's layout with the fit's own numbers
    assert hsq.columns.tolist() == ["Source", "Variance", "SE"]
    assert hsq["Source"].tolist() == ["V(G)", "V(e)", "Vp", "V(G)/Vp", "logL", "n"]
    table = hsq.set_index("Source")
    np.testing.assert_allclose(table.loc[["V(G)", "V(e)"], "Variance"], ref.variances.numpy(), rtol=1e-7)
    np.testing.assert_allclose(table.loc[["V(G)", "V(e)"], "SE"], ref.se.numpy(), rtol=1e-7)
    np.testing.assert_allclose(table.loc["V(G)/Vp", "Variance"], ref.h2_total, rtol=1e-7)
    assert table.loc["n", "Variance"] == 990 and math.isnan(table.loc["n", "SE"])
    # the HDF5 fit and the JSON equal the library fit
    close(fit.variances, ref.variances)
    close(record["fit"]["variances"], ref.variances)
    assert abs(fit.loglik - ref.loglik) < 1e-9
    assert record["fit"]["covariate_names"] == ["intercept", "age", "sex=M", "pc1", "pc2"]
    assert record["fit"]["loglik_se"] is None  # NaN written as null: strict JSON
    assert record["alignment"]["dropped"]["missing phenotype"] == 10 and fit.n_dropped == 10
    assert set(record["timings_s"]) == {"read_and_align", "kernels", "fit", "write", "total"}
    # the warm start from the written fit is already converged
    assert lib_fit(data, GRM(data[2]), init=fit).n_iter <= 1
    log = open(f"{prefix}.log", encoding="utf-8").read()
    for part in ("command (effective, config merged): torchgen reml --bfile", "samples: 1000 genotyped, 990 used, 10 dropped",
                 "REML fit (exact-band)", "-- timings (s)", f"{prefix}.hsq.tsv"):
        assert part in log
    assert "REML fit (exact-band)" in capsys.readouterr().out
    truth = EX.load_truth()["realized_h2"]
    assert abs(ref.h2_total - truth) < 2 * ref.h2_total_se


def test_component_spec(spec_run, data):
    _, hsq, record, fit = spec_run
    ref = lib_fit(data, grm_stack(data[2], EX.components))
    assert fit.names == ["chr1", "chr2"] and record["fit"]["names"] == ["chr1", "chr2"]
    assert hsq["Source"].tolist()[:3] == ["V(G1)", "V(G2)", "V(e)"]
    total = hsq.set_index("Source").loc["Sum of V(G)/Vp"]
    np.testing.assert_allclose([total["Variance"], total["SE"]], [ref.h2_total, ref.h2_total_se], rtol=1e-7)
    close(fit.variances, ref.variances)


def test_several_bfiles_equal_the_component_spec(tmp_path, spec_run, data):
    genotypes = data[0]
    dosages = genotypes.read()
    for name, cols in (("chrA", slice(0, 2500)), ("chrB", slice(2500, 5000))):
        write_plink(tmp_path / name, np.ascontiguousarray(dosages[:, cols]), genotypes.samples,
                    genotypes.variants.iloc[cols])
    base = ["--bfile", f"{tmp_path / 'chrA'},{tmp_path / 'chrB'}", *BASE[2:]]
    _, _, record, fit = run(tmp_path, "two", base=base)
    assert fit.names == ["chrA", "chrB"]
    assert float((fit.variances - spec_run[3].variances).abs().max()) < 1e-8


def test_merge_writes_both_fits(tmp_path, data):
    """Eight chunks of 625 SNPs: the weak ones are merged into a background GRM and refitted."""
    spec = ComponentSpec([f"c{i}" for i in range(8)], [np.arange(i * 625, (i + 1) * 625) for i in range(8)])
    write_components(spec, tmp_path / "chunks.json")
    prefix, hsq, record, merged = run(tmp_path, "merge", "--component-spec", str(tmp_path / "chunks.json"), "--merge")
    _, kept, G = data
    ref = reml_merge(kept.y, grm_stack(G, tmp_path / "chunks.json"), kept.covariates, method="exact",
                     covariate_names=kept.covariate_names, report=kept)
    info = record["merge"]
    assert info["refit"] and info["weak"] == ref.weak and info["weak"] and info["kept"] == ref.kept
    assert all(z < info["threshold"] for z, n in zip(info["z"], spec.names, strict=True) if n in info["weak"])
    assert merged.names == ref.kept + ["background"]
    close(merged.variances, ref.merged.variances)
    fine = REMLFit.load(f"{prefix}.fine.fit.h5")
    close(fine.variances, ref.fine.variances)
    assert fine.n_components == 8
    fine_hsq = pd.read_csv(f"{prefix}.fine.hsq.tsv", sep="\t")
    assert "V(G8)" in fine_hsq["Source"].tolist() and len(hsq) == len(fine_hsq) - 2 * len(ref.weak) + 2
    assert "z-score merge" in open(f"{prefix}.log", encoding="utf-8").read()


def test_smile_identity_w_equals_plain_grm(tmp_path):
    """W = I over every SNP: the plain GRM's h2 and logL to 1e-8 (the kernel's scale is c = tr/n, not m)."""
    paths = []
    for i in range(10):
        paths.append(str(tmp_path / f"w{i}.npy"))
        np.save(paths[-1], np.eye(500))
    _, _, _, plain = run(tmp_path, "plain", "--grm-precision", "double")
    _, hsq, _, one = run(tmp_path, "smile", "--smile", "--w-files", ",".join(paths))
    assert one.names == ["SMILE"] and hsq["Source"].tolist()[0] == "V(G)"
    assert abs(one.h2_total - plain.h2_total) < 1e-8 and abs(one.loglik - plain.loglik) < 1e-8
    assert abs(one.residual - plain.residual) < 1e-8
    # two groups (one variance each) are the two chromosome components
    groups = ",".join(paths[:5]) + ";" + ",".join(paths[5:])
    _, _, _, two = run(tmp_path, "groups", "--smile", "--grm-groups", groups)
    _, _, _, spec = run(tmp_path, "spec", "--component-spec", EX.components, "--grm-precision", "double")
    assert two.names == ["SMILE1", "SMILE2"]
    assert float((two.h2 - spec.h2).abs().max()) < 1e-8
    assert abs(two.loglik - spec.loglik) < 1e-8


def test_yaml_config_equals_flags(tmp_path, spec_run):
    """configs/reml.yaml runs the component-spec fit; command-line flags override it."""
    config = os.path.join(REPO, "configs", "reml.yaml")
    prefix, _, record, fit = run(tmp_path, "cfg", "--config", config, base=[])
    close(fit.variances, spec_run[3].variances)
    assert abs(fit.loglik - spec_run[3].loglik) < 1e-9
    same = {k: v for k, v in record["options"].items() if k not in ("config", "out", "memory-budget")}
    assert same == {k: v for k, v in spec_run[2]["options"].items() if k not in ("config", "out", "memory-budget")}
    assert "--memory-budget 4GiB" in record["command"]
    assert record["options"]["config"] == config and "TORCHGEN_MEMORY_BUDGET" not in os.environ
    # a config of our own, relative paths resolved against its folder; a flag beats its method
    data_dir = os.path.dirname(EX.bfile)
    (tmp_path / "mine.yaml").write_text(
        f"bfile: {os.path.relpath(EX.bfile, tmp_path)}\npheno: {EX.pheno}\ncovar: {EX.covar}\n"
        f"component_spec: {os.path.join(data_dir, 'example.components.json')}\nmethod: stochastic\n"
    )
    _, _, _, fit2 = run(tmp_path, "mine", "--config", str(tmp_path / "mine.yaml"), "--method", "exact", base=[])
    assert fit2.method == "exact-cholesky"
    close(fit2.variances, spec_run[3].variances)


def test_stochastic_with_keep_and_remove(tmp_path, data):
    """--keep/--remove subset the samples; a stochastic fit carries Monte Carlo SEs into its outputs."""
    genotypes, _, _ = data
    ids = genotypes.samples[["fid", "iid"]]
    ids.iloc[:400].to_csv(tmp_path / "keep.txt", sep="\t", header=False, index=False)
    ids.iloc[:50].to_csv(tmp_path / "remove.txt", sep="\t", header=False, index=False)
    base = ["--bfile", EX.bfile, "--pheno", EX.pheno, "--keep", str(tmp_path / "keep.txt"),
            "--remove", str(tmp_path / "remove.txt"), "--method", "stochastic", "--probes", "30",
            "--precond-rank", "30", "--seed", "3"]
    prefix, hsq, record, fit = run(tmp_path, "sto", base=base)
    dropped = record["alignment"]["dropped"]
    assert dropped["not in keep file"] == 600 and dropped["in remove file"] == 50
    assert fit.n == 350 - dropped["missing phenotype"] and fit.method == "stochastic"
    assert fit.mc_se is not None and record["fit"]["settings"]["num_probes"] == 30
    assert hsq.set_index("Source").loc["logL", "SE"] == pytest.approx(fit.loglik_se, rel=1e-6)
    kept = align(genotypes, pheno=EX.pheno, keep=tmp_path / "keep.txt", remove=tmp_path / "remove.txt")
    exact = reml(kept.y, GRM(kept.subset(genotypes)), kept.covariates, method="exact")
    assert abs(fit.h2_total - exact.h2_total) < 0.05


@pytest.mark.parametrize("args, message", [
    (["--bfile", EX.bfile, "--out", "x"], "--pheno is required"),
    ([*BASE, "--merge", "--out", "x"], "--merge merges the components"),
    ([*BASE, "--smile", "--out", "x"], "--smile needs the W blocks"),
    ([*BASE, "--w-files", "a.npy", "--out", "x"], "add --smile"),
    ([*BASE, "--memory-budget", "lots", "--out", "x"], "cannot read memory size"),
    (["--bfile", "/nonexistent/cohort", "--pheno", EX.pheno, "--out", "x"], "/nonexistent/cohort"),
])
def test_bad_options_are_clean_errors(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["reml", *args]) == 2
    assert message in capsys.readouterr().err


def test_bad_config_and_collinear_covariates(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("bfile: x\nprobez: 3\n")
    assert main(["reml", "--config", str(tmp_path / "bad.yaml")]) == 2
    assert "unknown option 'probez'" in capsys.readouterr().err
    covar = pd.read_csv(EX.covar, sep="\t")
    covar["pc1_twice"] = 2 * covar["pc1"]
    covar.to_csv(tmp_path / "collinear.covar", sep="\t", index=False)
    prefix = str(tmp_path / "col")
    args = ["reml", "--bfile", EX.bfile, "--pheno", EX.pheno, "--covar", str(tmp_path / "collinear.covar"),
            "--method", "exact", "--out", prefix]
    assert main(args) == 2
    assert "collinear" in capsys.readouterr().err and "pc1_twice" in open(f"{prefix}.log").read()


def test_demo_step_prints_tables_and_truth(capsys):
    from torchgenetics.demo import DEMO_STEPS
    from torchgenetics.reml.demo import demo_reml

    assert demo_reml in [step for _, step in DEMO_STEPS]
    single, parts = demo_reml()
    out = capsys.readouterr().out
    assert "V(G)/Vp" in out and "Sum of V(G)/Vp" in out and "truth (target / realized h2)" in out
    assert parts.names == ["chr1", "chr2"] and single.converged and parts.converged
    assert f"{parts.h2_total:.3f}" in out and "0.500 / 0.479" in out


def test_pfile_equals_bfile(tmp_path, data):
    """The example written as PLINK 2 (.pgen/.pvar/.psam) gives the --bfile fit."""
    pgenlib = pytest.importorskip("pgenlib")
    genotypes = data[0]
    values = genotypes.read()
    n, m = values.shape
    s, v = genotypes.samples, genotypes.variants
    (tmp_path / "ex.psam").write_text("#FID\tIID\tSEX\n" + "".join(
        f"{f}\t{i}\tNA\n" for f, i in zip(s["fid"], s["iid"], strict=True)))
    (tmp_path / "ex.pvar").write_text("#CHROM\tPOS\tID\tREF\tALT\n" + "".join(
        f"{c}\t{p}\t{i}\t{a2}\t{a1}\n" for c, p, i, a1, a2 in zip(v["chrom"], v["pos"], v["id"], v["a1"], v["a2"], strict=True)))
    calls = np.where(np.isnan(values), -9, values).T.astype(np.int8)
    with pgenlib.PgenWriter(str(tmp_path / "ex.pgen").encode(), n, variant_ct=m, nonref_flags=False) as writer:
        writer.append_biallelic_batch(np.ascontiguousarray(calls))
    _, _, _, from_pgen = run(tmp_path, "pgen", base=["--pfile", str(tmp_path / "ex"), *BASE[2:]])
    ref = lib_fit(data, GRM(data[2]))
    close(from_pgen.variances, ref.variances, atol=1e-8)
