"""``torchrun -m torchgenetics <command> --distributed`` on 2 processes equals the one-process command.

Each test starts ``python -m torch.distributed.run --standalone --nproc-per-node 2``
(torchrun) on the bundled example data and compares rank 0's outputs with those of
the same command run here in one process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from torchgenetics.cli.main import main
from torchgenetics.datasets import example

ROOT = Path(__file__).resolve().parents[2]
REGIONS = "1:22000000-24000000\n1:32000000-33000000\n2:0-3000000\n"


def torchrun(args, timeout=240):
    """Run ``torchgen <args> --distributed`` on 2 local ranks; returns the finished process."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "torchgenetics", *map(str, args), "--distributed"]
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="module")
def ex():
    return example()


def test_reml(tmp_path, ex, capsys):
    args = ["reml", "--bfile", ex.bfile, "--pheno", ex.pheno, "--covar", ex.covar, "--method", "exact",
            "--grm-precision", "double"]  # float64 products: the one-process table to 1e-8
    assert main(args + ["--out", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    proc = torchrun(args + ["--out", tmp_path / "two"])
    assert proc.stdout.count("REML fit (") == 1  # rank 0 alone prints
    assert "distributed: 2 ranks" in (tmp_path / "two.log").read_text()
    one = pd.read_csv(tmp_path / "one.hsq.tsv", sep="\t")
    two = pd.read_csv(tmp_path / "two.hsq.tsv", sep="\t")
    pd.testing.assert_frame_equal(one, two, rtol=1e-8)
    assert json.loads((tmp_path / "two.json").read_text())["fit"]["settings"]["world_size"] == 2


def test_gwas(tmp_path, ex, capsys):
    args = ["gwas", "--bfile", ex.bfile, "--pheno", ex.pheno, "--covar", ex.covar, "--block-size", "700"]
    assert main(args + ["--out", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    proc = torchrun(args + ["--out", tmp_path / "two"])
    assert proc.stdout.count("wrote ") == 1
    one, two = sorted(tmp_path.glob("one.*.glm.tsv")), sorted(tmp_path.glob("two.*.glm.tsv"))
    assert len(one) == len(two) == 1
    assert one[0].read_text() == two[0].read_text()  # identical tables
    assert len(pd.read_csv(two[0], sep="\t")) == 5000


def test_gwas_lmm(tmp_path, ex, capsys):
    keep = tmp_path / "keep.txt"  # 400 samples keep the REML fit quick
    keep.write_text("".join(f"fam{i:04d} ind{i:04d}\n" for i in range(1, 401)))
    args = ["gwas", "--bfile", ex.bfile, "--pheno", ex.pheno, "--covar", ex.covar, "--keep", keep,
            "--lmm", "--precond-rank", "20", "--block-size", "700"]
    assert main([str(a) for a in args] + ["--out", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    proc = torchrun(args + ["--out", tmp_path / "two"])
    assert proc.stdout.count("wrote ") == 1 and "calibration gamma per kernel: 1 " in proc.stdout
    one, two = sorted(tmp_path.glob("one.*.glm.tsv")), sorted(tmp_path.glob("two.*.glm.tsv"))
    assert len(one) == len(two) == 1
    assert one[0].read_bytes() == two[0].read_bytes()  # byte-identical tables
    table = pd.read_csv(two[0], sep="\t")
    assert len(table) == 5000 and (table["OBS_CT"] <= 400).all()
    torchrun(args + ["--shard-grm", "--out", tmp_path / "shard"])  # GRM variants split: equal to rounding
    shard = pd.read_csv(next(tmp_path.glob("shard.*.glm.tsv")), sep="\t")
    pd.testing.assert_frame_equal(shard, pd.read_csv(one[0], sep="\t"), rtol=1e-4)


def test_scan(tmp_path, ex, capsys):
    regions = tmp_path / "regions.txt"
    regions.write_text(REGIONS)
    args = ["scan", "--bfile", ex.bfile, "--pheno", ex.pheno, "--covar", ex.covar, "--regions",
            regions, "--chunk-size", "1", "--L", "5"]
    assert main([str(a) for a in args] + ["--out", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    proc = torchrun(args + ["--out", tmp_path / "two"])
    assert proc.stdout.count(" loci: ") == 1  # rank 0 alone prints
    assert "3 loci over 2 ranks" in proc.stdout
    for suffix in ("scan.tsv", "cs.tsv", "pip.tsv"):
        one = pd.read_csv(tmp_path / f"one.{suffix}", sep="\t")
        two = pd.read_csv(tmp_path / f"two.{suffix}", sep="\t")
        pd.testing.assert_frame_equal(one, two)
    table = pd.read_csv(tmp_path / "two.scan.tsv", sep="\t")
    assert len(table) == 3 and table["n_cs"].sum() >= 1
    assert (tmp_path / "two.scan.rank0-of-2.h5").exists() and (tmp_path / "two.scan.rank1-of-2.h5").exists()


def test_deepwas_train(tmp_path):
    from torchgenetics.deepwas.fit import DeepWASFit
    from torchgenetics.deepwas.simulate import simulate_example

    sim = simulate_example(n_variants=600, n_reference=300, block_size=100, chromosomes=2, seed=1)
    sim.sumstats.write(tmp_path / "ss.tsv")
    sim.annotations.write(tmp_path / "ann.tsv")
    (tmp_path / "ld").mkdir()
    sim.ld.save(tmp_path / "ld" / "chr1_2.h5")
    (tmp_path / "cfg.yaml").write_text("prior: {kind: mlp, hidden: [8]}\ntraining: {epochs: 4}\n"
                                       "data: {batch_size: 3}\nlikelihood: {method: exact}\n"
                                       "optim: {pct_start: 0.3}\n")
    args = ["deepwas", "train", "--sumstats", tmp_path / "ss.tsv", "--annotations", tmp_path / "ann.tsv",
            "--ld", tmp_path / "ld", "--config", tmp_path / "cfg.yaml", "--val-chrom", "2"]
    assert main([str(a) for a in args] + ["--out", str(tmp_path / "one")]) == 0
    proc = torchrun(args + ["--out", tmp_path / "two"])
    assert proc.stdout.count("DeepWAS fit:") == 1
    one, two = DeepWASFit.load(tmp_path / "one.model.h5"), DeepWASFit.load(tmp_path / "two.model.h5")
    for (name, a), (_, b) in zip(one.module.state_dict().items(), two.module.state_dict().items(),
                                 strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-10), name
    h1 = pd.read_csv(tmp_path / "one.history.tsv", sep="\t").drop(columns="seconds")
    h2 = pd.read_csv(tmp_path / "two.history.tsv", sep="\t").drop(columns="seconds")
    pd.testing.assert_frame_equal(h1, h2, rtol=1e-7)
    assert len(h1) == 4
